package logminer

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiops-dev/aiops/pkg/stage"
)

// metrics are the logminer's own counters, exported by Collector. What the
// runtime counts (invalid inputs, failed and kept outputs, ticks, state
// saves by result) is in the stage's aiops_stage_* metrics.
type metrics struct {
	lines, unmatchedFormat, newTemplates, merges     atomic.Uint64
	samples, bursts                                  atomic.Uint64
	stateSaves, stateSaveFailures, stateLoadFailures atomic.Uint64
	stateBytes                                       atomic.Int64
	heldForStore                                     atomic.Int64
}

// Collector exports the logminer's counters and the miner's, and the
// stage's (aiops_stage_*{stage="logminer"}: inputs by result, outputs,
// kept outputs, ticks, checkpoints) and its consumer's, on /metrics. It
// reads counters kept anyway, so scraping adds nothing to the delivery
// path.
func (l *Logminer) Collector() prometheus.Collector {
	return stage.Collectors{collector{l}, l.stage.Collector()}
}

type collector struct{ l *Logminer }

func desc(name, help string) *prometheus.Desc {
	return prometheus.NewDesc("aiops_logminer_"+name, help, nil, nil)
}

var (
	descLines          = desc("lines_total", "Raw log lines mined.")
	descUnmatched      = desc("format_unmatched_total", "Lines that did not have their service's header format and were mined whole.")
	descNewTemplates   = desc("templates_created_total", "Templates created.")
	descMerges         = desc("template_merges_total", "Templates generalised into another.")
	descTemplates      = desc("templates", "Templates held by the miner.")
	descEvicted        = desc("templates_evicted_total", "Templates evicted at max_templates or max_template_bytes.")
	descTemplateBytes  = desc("template_bytes", "Heap the templates held take, as estimated against max_template_bytes.")
	descSeries         = desc("series", "Template count series (service, template) held.")
	descSeriesDropped  = desc("series_dropped_lines_total", "Lines not counted because max_series was reached.")
	descLateLines      = desc("late_lines_total", "Lines templated but not counted (nor in error bursts): timed more than max_lateness before the interval open when they were mined.")
	descSamples        = desc("samples_published_total", "log_template_count samples stored by the stream at their interval's end (a sample retried at a later tick counts in aiops_stage_outputs_total only).")
	descBursts         = desc("error_bursts_total", "Error bursts flagged.")
	descStateSaves     = desc("state_saves_total", "States saved to the object store.")
	descStateSaveFails = desc("state_save_failures_total", "State saves that failed.")
	descStateLoadFails = desc("state_load_failures_total", "Saved states that could not be read at start.")
	descStateBytes     = desc("state_bytes", "Size of the last saved state.")
	descHeldForStore   = desc("held_for_store", "Raw logs whose templated copies wait for room in the stream: the events the writer (logminer.store_consumer) has not stored take logminer.max_store_backlog of its limit (is ClickHouse down or slow?).")
	descHeader         = prometheus.NewDesc("aiops_logminer_header_detected",
		"1 for the header kind detected for a service whose format is auto (none: whole messages are mined).", []string{"service", "kind"}, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descLines, descUnmatched, descNewTemplates, descMerges, descTemplates, descEvicted, descTemplateBytes,
		descSeries, descSeriesDropped, descLateLines, descSamples, descBursts, descStateSaves, descStateSaveFails, descStateLoadFails, descStateBytes, descHeldForStore, descHeader} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	m := &c.l.metrics
	counter := func(d *prometheus.Desc, v uint64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	gauge := func(d *prometheus.Desc, v float64) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v)
	}
	st := c.l.miner.Stats()
	held, dropped, late := c.l.counts.stats()
	counter(descLines, m.lines.Load())
	counter(descUnmatched, m.unmatchedFormat.Load())
	counter(descNewTemplates, m.newTemplates.Load())
	counter(descMerges, m.merges.Load())
	gauge(descTemplates, float64(st.Templates))
	counter(descEvicted, st.Evicted)
	gauge(descTemplateBytes, float64(st.TemplateBytes))
	gauge(descSeries, float64(held))
	counter(descSeriesDropped, dropped)
	counter(descLateLines, late)
	counter(descSamples, m.samples.Load())
	counter(descBursts, m.bursts.Load())
	counter(descStateSaves, m.stateSaves.Load())
	counter(descStateSaveFails, m.stateSaveFailures.Load())
	counter(descStateLoadFails, m.stateLoadFailures.Load())
	gauge(descStateBytes, float64(m.stateBytes.Load()))
	gauge(descHeldForStore, float64(m.heldForStore.Load()))
	if c.l.headers != nil {
		for svc, d := range c.l.headers.detected() {
			ch <- prometheus.MustNewConstMetric(descHeader, prometheus.GaugeValue, 1, svc, string(d.Kind))
		}
	}
}
