package stage

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the runner's counters.
type metrics struct {
	inputs, invalid, failed, panics, replayed atomic.Uint64
	outputs, outputFailures, keptDropped      atomic.Uint64
	ticks, tickFailures                       atomic.Uint64
	checkpoints, checkpointFailures           atomic.Uint64
}

// Stats counts what a runner did.
type Stats struct {
	Inputs             uint64 // decoded and handed to the processor or sink
	Invalid            uint64 // bad data: dead-lettered
	Failed             uint64 // transient processing failures: redelivered
	Panics             uint64
	Replayed           uint64 // redeliveries answered with kept outputs
	Outputs            uint64 // outputs acked by the stream
	OutputFailures     uint64
	KeptDropped        uint64 // kept outputs dropped beyond MaxKept
	Ticks              uint64
	TickFailures       uint64
	Checkpoints        uint64
	CheckpointFailures uint64
}

// Stats returns the counters so far.
func (r *Runner) Stats() Stats {
	m := &r.m
	return Stats{
		Inputs: m.inputs.Load(), Invalid: m.invalid.Load(), Failed: m.failed.Load(), Panics: m.panics.Load(),
		Replayed: m.replayed.Load(), Outputs: m.outputs.Load(), OutputFailures: m.outputFailures.Load(),
		KeptDropped: m.keptDropped.Load(), Ticks: m.ticks.Load(), TickFailures: m.tickFailures.Load(),
		Checkpoints: m.checkpoints.Load(), CheckpointFailures: m.checkpointFailures.Load(),
	}
}

// Collector exports the runner's counters as aiops_stage_* with a stage
// label.
func (r *Runner) Collector() prometheus.Collector {
	labels := prometheus.Labels{"stage": r.cfg.Name}
	desc := func(name, help string, variable ...string) *prometheus.Desc {
		return prometheus.NewDesc("aiops_stage_"+name, help, variable, labels)
	}
	return &runnerCollector{r: r,
		inputs:      desc("inputs_total", "Inputs by result: processed, invalid (dead-lettered), failed (redelivered), panic, replayed (answered with kept outputs).", "result"),
		outputs:     desc("outputs_total", "Outputs by result: acked, failed (kept for the input's redelivery or the next tick).", "result"),
		keptDropped: desc("kept_dropped_total", "Kept outputs dropped beyond max_kept."),
		kept:        desc("kept_inputs", "Inputs whose outputs wait for their redelivery."),
		ticks:       desc("ticks_total", "Periodic work runs by result.", "result"),
		checkpoints: desc("checkpoints_total", "State checkpoints by result.", "result"),
	}
}

type runnerCollector struct {
	r                                                      *Runner
	inputs, outputs, keptDropped, kept, ticks, checkpoints *prometheus.Desc
}

func (c *runnerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.inputs, c.outputs, c.keptDropped, c.kept, c.ticks, c.checkpoints} {
		ch <- d
	}
}

func (c *runnerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.r.Stats()
	counter := func(d *prometheus.Desc, v uint64, label ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), label...)
	}
	counter(c.inputs, sub(s.Inputs, s.Invalid+s.Failed+s.Panics), "processed")
	counter(c.inputs, s.Invalid, "invalid")
	counter(c.inputs, s.Failed, "failed")
	counter(c.inputs, s.Panics, "panic")
	counter(c.inputs, s.Replayed, "replayed")
	counter(c.outputs, s.Outputs, "acked")
	counter(c.outputs, s.OutputFailures, "failed")
	counter(c.keptDropped, s.KeptDropped)
	ch <- prometheus.MustNewConstMetric(c.kept, prometheus.GaugeValue, float64(c.r.Kept()))
	counter(c.ticks, sub(s.Ticks, s.TickFailures), "ok")
	counter(c.ticks, s.TickFailures, "failed")
	counter(c.checkpoints, s.Checkpoints, "ok")
	counter(c.checkpoints, s.CheckpointFailures, "failed")
}

// sub is a-b, or 0: the counters are read one after the other, so a
// failure counted between the reads could make it negative.
func sub(a, b uint64) uint64 {
	if b > a {
		return 0
	}
	return a - b
}
