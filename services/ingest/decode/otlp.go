package decode

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math/bits"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/event"
	"go.opentelemetry.io/collector/pdata/pcommon"
	"go.opentelemetry.io/collector/pdata/plog"
	"go.opentelemetry.io/collector/pdata/plog/plogotlp"
	"go.opentelemetry.io/collector/pdata/pmetric"
	"go.opentelemetry.io/collector/pdata/pmetric/pmetricotlp"
)

// Encoding is how an OTLP/HTTP body is serialized.
type Encoding int

const (
	// Protobuf is application/x-protobuf (or application/protobuf).
	Protobuf Encoding = iota
	// JSON is application/json (the OTLP JSON mapping: hex ids, lowerCamelCase).
	JSON
)

func (e Encoding) String() string {
	if e == JSON {
		return "JSON"
	}
	return "protobuf"
}

// otelServiceName is the resource attribute OpenTelemetry names the service with.
const otelServiceName = "service.name"

// OTLPLogs decodes an OTLP ExportLogsServiceRequest into one log event per
// log record. Item is the index in resourceLogs; Field the path below it
// ("scopeLogs[0].logRecords[3].body").
//
// The message is the body as a string (maps and arrays as JSON), else the
// event name. The time is timeUnixNano, else observedTimeUnixNano, else the
// receive time; the observed time is observedTimeUnixNano, else the receive
// time. The severity comes from severityNumber when set (1-8 debug, 9-12
// info, 13-16 warning, 17-20 error, 21-24 critical), else from severityText.
// The service is the resource attribute service.name (else "unknown"); the
// resource attributes become Resource and the record's attributes Labels,
// every value as a string (maps and arrays as JSON). Trace and span ids go in
// the body as hex.
//
// An invalid record (invalid UTF-8 in its body or event name included,
// which its JSON body would hold as U+FFFD) is refused alone (counted in
// Skipped[SkippedInvalid], its problems in Problems) and the others are
// taken: the OpenTelemetry
// exporters drop a whole request answered 400, so one record outside the
// time window would lose the good ones with it. A request with no valid
// record is refused.
func OTLPLogs(body []byte, enc Encoding, o Options) (*Batch, error) {
	o = o.withDefaults()
	if err := checkOTLPSize(body, enc, "ExportLogsServiceRequest"); err != nil {
		return nil, err
	}
	req := plogotlp.NewExportRequest()
	if err := unmarshalOTLP(req.UnmarshalProto, req.UnmarshalJSON, body, enc); err != nil {
		return nil, requestProblem("", "is not an OTLP ExportLogsServiceRequest (%s): %v", enc, err)
	}
	logs := req.Logs()
	if n := logs.LogRecordCount(); n > o.MaxEvents {
		return nil, tooManyEvents(o.MaxEvents)
	}
	var (
		c       problems
		refused int
	)
	batch := &Batch{Events: make([]*event.Envelope, 0, logs.LogRecordCount())}
	rls := logs.ResourceLogs()
	for i := 0; i < rls.Len(); i++ {
		rl := rls.At(i)
		if err := batch.charge(structuredSize(rl.Resource().Attributes()), o, func() string {
			return fmt.Sprintf("resourceLogs[%d]'s map and array attributes as JSON", i)
		}); err != nil {
			return nil, err
		}
		resource := attributes(rl.Resource().Attributes())
		batch.Truncated += cutLabels(resource)
		if field, problem, bad := attributeProblem(rl.Resource().Attributes()); bad {
			c.add(i, "resource.attributes."+field, "%s", problem)
			for j := 0; j < rl.ScopeLogs().Len(); j++ {
				refused += rl.ScopeLogs().At(j).LogRecords().Len()
			}
			continue
		}
		service := serviceFromResource(resource)
		// Every record's event carries the whole resource.
		perEvent := eventOverhead + len(service) + labelsSize(resource)
		sls := rl.ScopeLogs()
		for j := 0; j < sls.Len(); j++ {
			lrs := sls.At(j).LogRecords()
			for k := 0; k < lrs.Len(); k++ {
				lr := lrs.At(k)
				path := func() string { return fmt.Sprintf("scopeLogs[%d].logRecords[%d]", j, k) }
				if err := batch.charge(perEvent, o, func() string {
					return fmt.Sprintf("resourceLogs[%d] has %d attributes, copied into each of its records", i, len(resource))
				}); err != nil {
					return nil, err
				}
				if field, problem, bad := recordProblem(lr); bad {
					c.add(i, path()+"."+field, "%s", problem)
					refused++
					continue
				}
				structured := structuredSize(lr.Attributes())
				if t := lr.Body().Type(); t == pcommon.ValueTypeMap || t == pcommon.ValueTypeSlice {
					structured += valueJSONLen(lr.Body())
				}
				if err := batch.charge(structured, o, func() string { return "the records' map and array bodies and attributes as JSON" }); err != nil {
					return nil, err
				}
				e, cut := logEvent(lr, service, resource, o.Now)
				if err := batch.charge(len(e.Body)+labelsSize(e.Labels), o, func() string { return "the records' bodies and attributes" }); err != nil {
					return nil, err
				}
				// Records alike in body, time and severity are several lines
				// (a shipper's second-precision times): their place in the
				// request and their observed time keep them apart, and a
				// retry of the request, which repeats both, keeps the ids.
				// The same lines in two requests are told apart only by the
				// requests' Idempotency-Keys, when the producer sends them.
				var place [20]byte
				binary.BigEndian.PutUint32(place[0:], uint32(i))
				binary.BigEndian.PutUint32(place[4:], uint32(j))
				binary.BigEndian.PutUint32(place[8:], uint32(k))
				binary.BigEndian.PutUint64(place[12:], uint64(lr.ObservedTimestamp()))
				var parts [5][]byte
				identity := append(parts[:0], e.Body, []byte(e.Severity), place[:])
				if o.IdempotencyKey != "" {
					// Without a key the ids stay what they were, so a request
					// retried across an upgrade of the gateway is stored once.
					identity = append(identity, []byte("idempotency-key"), []byte(o.IdempotencyKey))
				}
				if err := seal(e, SourceOTLP, o, identity...); err != nil {
					c.addInvalid(i, err, func(field string) string {
						switch {
						case field == "service":
							return "resource.attributes." + otelServiceName
						case strings.HasPrefix(field, "resource"):
							return "resource.attributes" + strings.TrimPrefix(field, "resource")
						case field == "body.message":
							return path() + ".body"
						case field == "time":
							return path() + ".timeUnixNano"
						case field == "observed_time":
							return path() + ".observedTimeUnixNano"
						case strings.HasPrefix(field, "labels"):
							return path() + ".attributes" + strings.TrimPrefix(field, "labels")
						}
						return path() + "." + field
					})
					refused++
					continue
				}
				batch.Truncated += cut
				batch.Events = append(batch.Events, e)
			}
		}
	}
	if err := c.partialCount(batch, refused); err != nil {
		return nil, err
	}
	return batch, nil
}

// recordProblem returns the first problem of a log record that making it
// an event would hide rather than refuse (field is its path below the
// record): a repeated attribute key, or invalid UTF-8 in the body or the
// event name, which the event's JSON body would hold as U+FFFD, as
// event.CheckJSON refuses it in the gateway's JSON inputs.
func recordProblem(lr plog.LogRecord) (field, problem string, bad bool) {
	if field, problem, bad := attributeProblem(lr.Attributes()); bad {
		return "attributes." + field, problem, true
	}
	if sub, problem, bad := invalidUTF8(lr.Body()); bad {
		return "body" + sub, problem, true
	}
	if !utf8.ValidString(lr.EventName()) {
		return "eventName", invalidUTF8Problem, true
	}
	return "", "", false
}

// logEvent makes a log record's event; cut is how many of its attribute
// values and message were cut to fit a label (cutLabel) or a message
// (cutMessage).
func logEvent(lr plog.LogRecord, service string, resource map[string]string, now time.Time) (e *event.Envelope, cut int) {
	t, observed := lr.Timestamp(), lr.ObservedTimestamp()
	if t == 0 {
		t = observed
	}
	e = &event.Envelope{
		Kind:     event.KindLog,
		Time:     now,
		Service:  service,
		Resource: resource, // shared by the resource's records, read-only
		Labels:   attributes(lr.Attributes()),
		Severity: logSeverity(lr.SeverityNumber(), lr.SeverityText()),
	}
	cut = cutLabels(e.Labels)
	if t != 0 {
		e.Time = t.AsTime()
	}
	if observed != 0 {
		e.ObservedTime = observed.AsTime()
	}
	b := event.LogBody{Message: lr.Body().AsString()}
	if b.Message == "" {
		b.Message = lr.EventName()
	}
	if event.JSONStringLen(b.Message) > event.MaxLogMessageBytes {
		b.Message = cutMessage(b.Message)
		cut++
	}
	if id := lr.TraceID(); !id.IsEmpty() {
		b.TraceID = id.String()
	}
	if id := lr.SpanID(); !id.IsEmpty() {
		b.SpanID = id.String()
	}
	e.Body, _ = event.MarshalBody(b)
	return e, cut
}

// cutLabels cuts the values of m over a label's limit to fit it, marked
// so, as the OpenTelemetry SDKs' attribute value length limit does, and
// returns how many it cut. For a log record's attributes and for any
// resource's: OpenTelemetry's exception.stacktrace of a Java error, a
// db.query.text, a Java process.command_line with its classpath are
// routinely larger, and refusing them would lose exactly the error logs,
// or every record and point of the process. A data point's own
// attributes name its series and are refused instead: cut, two series
// would become one (a resource's cut keeps its own 4 KiB and its length).
func cutLabels(m map[string]string) (cut int) {
	for k, v := range m {
		if len(v) > event.MaxLabelBytes {
			m[k] = cutLabel(v)
			cut++
		}
	}
	return cut
}

// cutLabel cuts v to fit a label, marked with its length and a hash of
// the whole: a resource's values are part of a series' fingerprint, and
// two long values alike in their first 4 KiB stay two series.
func cutLabel(v string) string {
	h := fnv.New64a()
	h.Write([]byte(v))
	marker := fmt.Sprintf(" …[cut from %d bytes, %016x]", len(v), h.Sum64())
	return event.Prefix(v, event.MaxLabelBytes-len(marker)) + marker
}

// cutMessage cuts a log record's message over event.MaxLogMessageBytes
// as JSON to fit it, on a character, marked as cutLabel marks: a stack
// trace a shipper joined into one record (the Collector's filelog
// recombine, a StackOverflowError's thousand frames) is routinely larger,
// and refusing the record would lose exactly the error logs. The log
// miner mines a message's first line and first 16 KiB at most, so its
// template is the same. The message holds valid UTF-8 (recordProblem).
func cutMessage(m string) string {
	marker := fmt.Sprintf(" …[cut from %d bytes]", len(m))
	n, keep := event.JSONStringLen(marker), 0
	for keep < len(m) {
		_, size := utf8.DecodeRuneInString(m[keep:])
		w := event.JSONStringLen(m[keep:keep+size]) - 2 // its escape, without the quotes
		if n+w > event.MaxLogMessageBytes {
			break
		}
		n += w
		keep += size
	}
	return m[:keep] + marker
}

// logSeverity maps OpenTelemetry's severity number ranges, falling back to
// the text when the number is unset.
func logSeverity(n plog.SeverityNumber, text string) event.Severity {
	switch {
	case n >= 1 && n <= 8:
		return event.SeverityDebug
	case n >= 9 && n <= 12:
		return event.SeverityInfo
	case n >= 13 && n <= 16:
		return event.SeverityWarning
	case n >= 17 && n <= 20:
		return event.SeverityError
	case n >= 21 && n <= 24:
		return event.SeverityCritical
	}
	if sev, ok := event.ParseSeverity(text); ok {
		return sev
	}
	return ""
}

// OTLPMetrics decodes an OTLP ExportMetricsServiceRequest into metric
// events. Item is the index in resourceMetrics; Field the path below it
// ("scopeMetrics[0].metrics[2].sum.dataPoints[1].timeUnixNano").
//
//   - gauge and sum data points: one event each, named after the metric; a
//     monotonic cumulative sum is a counter, anything else a gauge (a delta
//     sum's value is the increase over its interval, not a running total).
//   - histogram points: the Prometheus series, <name>_count, <name>_sum
//     (when the point has a sum) and <name>_bucket{le=...} (cumulative
//     counts per explicit bound and le="+Inf"), counters when cumulative;
//     a point whose buckets OTLP calls invalid is refused (buckets).
//     Exponential histogram points: <name>_count and <name>_sum only
//     (their buckets are not kept).
//   - summary points: <name>_count and <name>_sum as counters, and one gauge
//     <name> per quantile with the label quantile="0.99".
//
// Labels are the point's attributes plus __name__; resource, service and
// stringification are as for logs. A point with an attribute the
// gateway's own label would overwrite (reservedLabels) is refused. The
// time is timeUnixNano, required. Points flagged "no recorded value" are
// skipped and counted as stale markers, NaN and infinite values as
// non-finite.
//
// An invalid data point is refused whole (all the events it makes, counted
// once in Skipped[SkippedInvalid]) and the other points are taken, as for
// logs; a request with no valid point is refused.
//
// The instrumentation scope's name and version, when set, are the labels
// otel.scope.name and otel.scope.version (a point's own attribute of that
// name is kept): OpenTelemetry identifies a metric stream by its scope
// too, so two libraries exporting the same metric name and attributes
// are two series, as OpenTelemetry's Prometheus exporters keep them with
// otel_scope_name and otel_scope_version. As one series, the detector
// dropped one library's sample as a duplicate of the other's at the same
// time and scored their values as one stream. The ids derive from the
// series, the time, the value and the scope.
func OTLPMetrics(body []byte, enc Encoding, o Options) (*Batch, error) {
	o = o.withDefaults()
	if err := checkOTLPSize(body, enc, "ExportMetricsServiceRequest"); err != nil {
		return nil, err
	}
	req := pmetricotlp.NewExportRequest()
	if err := unmarshalOTLP(req.UnmarshalProto, req.UnmarshalJSON, body, enc); err != nil {
		return nil, requestProblem("", "is not an OTLP ExportMetricsServiceRequest (%s): %v", enc, err)
	}
	metrics := req.Metrics()
	if n := metrics.DataPointCount(); n > o.MaxEvents {
		return nil, tooManyEvents(o.MaxEvents)
	}
	m := metricDecoder{o: o, batch: &Batch{}}
	rms := metrics.ResourceMetrics()
	for i := 0; i < rms.Len(); i++ {
		rm := rms.At(i)
		m.item = i
		if err := m.batch.charge(structuredSize(rm.Resource().Attributes()), o, func() string {
			return fmt.Sprintf("resourceMetrics[%d]'s map and array attributes as JSON", i)
		}); err != nil {
			return nil, err
		}
		m.resource = attributes(rm.Resource().Attributes())
		m.batch.Truncated += cutLabels(m.resource)
		sms := rm.ScopeMetrics()
		if field, problem, bad := attributeProblem(rm.Resource().Attributes()); bad {
			m.c.add(i, "resource.attributes."+field, "%s", problem)
			for j := 0; j < sms.Len(); j++ {
				for k := 0; k < sms.At(j).Metrics().Len(); k++ {
					m.refused += dataPointCount(sms.At(j).Metrics().At(k))
				}
			}
			continue
		}
		m.service = serviceFromResource(m.resource)
		m.resourceSize = labelsSize(m.resource)
		for j := 0; j < sms.Len(); j++ {
			m.setScope(fmt.Sprintf("scopeMetrics[%d].scope", j), sms.At(j).Scope())
			ms := sms.At(j).Metrics()
			for k := 0; k < ms.Len(); k++ {
				if err := m.metric(fmt.Sprintf("scopeMetrics[%d].metrics[%d]", j, k), ms.At(k)); err != nil {
					return nil, err
				}
			}
		}
	}
	if err := m.c.partialCount(m.batch, m.refused); err != nil {
		return nil, err
	}
	return m.batch, nil
}

type metricDecoder struct {
	o        Options
	batch    *Batch
	c        problems
	item     int
	resource map[string]string
	service  string
	// resourceSize is labelsSize(resource), charged for every point.
	resourceSize int
	// scope is the instrumentation scope's name and version, parts of
	// the ids of its points; nil for a scope with neither, so that such
	// points keep the ids they had before scopes counted (a request
	// retried across an upgrade of the gateway is still stored once).
	scope [][]byte
	// scopeLabels are the labels naming the scope (ScopeNameLabel,
	// ScopeVersionLabel), added to each of its points' labels.
	scopeLabels map[string]string
	scopePath   string // the input path of the scope, "scopeMetrics[0].scope"
	metricPath  string // the input path of the metric, "scopeMetrics[0].metrics[2]"
	// pointBad is set when the data point being decoded has a problem;
	// refused counts the points refused.
	pointBad bool
	refused  int
}

// Labels naming a data point's instrumentation scope, the attribute
// names OpenTelemetry's semantic conventions give them outside OTLP.
const (
	ScopeNameLabel    = "otel.scope.name"
	ScopeVersionLabel = "otel.scope.version"
)

func (m *metricDecoder) setScope(path string, s pcommon.InstrumentationScope) {
	m.scope, m.scopeLabels, m.scopePath = nil, nil, path
	if s.Name() != "" || s.Version() != "" {
		m.scope = [][]byte{[]byte(s.Name()), []byte(s.Version())}
		m.scopeLabels = make(map[string]string, 2)
		if s.Name() != "" {
			m.scopeLabels[ScopeNameLabel] = s.Name()
		}
		if s.Version() != "" {
			m.scopeLabels[ScopeVersionLabel] = s.Version()
		}
	}
}

// dataPoint makes the events of one OTLP data point (at path, with
// attributes attrs, of the metric name) with build and keeps them only
// when none had a problem: a point is taken or refused whole (a
// histogram's count and sum without its buckets would be a series the
// producer never had). added is the label the point's series get beside
// __name__ (le, quantile), if any.
func (m *metricDecoder) dataPoint(path, name string, attrs pcommon.Map, added string, build func() error) error {
	start := len(m.batch.Events)
	m.pointBad = false
	stale, nonFinite := m.batch.Skipped[SkippedStaleMarkers], m.batch.Skipped[SkippedNonFinite]
	if field, problem, bad := attributeProblem(attrs); bad {
		m.refusePoint(path+".attributes."+field, "%s", problem)
	} else if k, ok := reservedAttribute(attrs, added); ok {
		m.refusePoint(path+".attributes."+k, "is a label the gateway sets on the series of metric %q (%s): points that differ only in it would be one series; rename the attribute", name, reservedLabels[k])
	} else if err := build(); err != nil {
		return err
	}
	// A data point counts once (OTLP's rejected_data_points counts points),
	// though a histogram's or a summary's makes many series: refused, or
	// skipped once for each reason its values were.
	once := func(reason string, before int) {
		switch n := m.batch.Skipped[reason]; {
		case n == before:
		case m.pointBad && before == 0:
			delete(m.batch.Skipped, reason)
		case m.pointBad:
			m.batch.Skipped[reason] = before
		default:
			m.batch.Skipped[reason] = before + 1
		}
	}
	once(SkippedStaleMarkers, stale)
	once(SkippedNonFinite, nonFinite)
	if m.pointBad {
		m.batch.Events = m.batch.Events[:start]
		m.refused++
	}
	return nil
}

// reservedLabels are the labels the gateway sets on a point's series,
// with what they hold. A point's own attribute of that name would be
// overwritten, as Prometheus's OTLP translator does (it only logs "label
// le is overwritten"), and two points that differ only in it would
// silently become one series with two values at a time: such a point is
// refused alone, naming the attribute.
var reservedLabels = map[string]string{
	"__name__": "the metric's name",
	"le":       "the bound of each bucket of a histogram",
	"quantile": "the quantile of each value of a summary",
}

// reservedAttribute returns the attribute of attrs that the gateway's own
// label would overwrite: __name__ on any point, added (le, quantile) on
// the points that get it.
func reservedAttribute(attrs pcommon.Map, added string) (string, bool) {
	if _, ok := attrs.Get("__name__"); ok {
		return "__name__", true
	}
	if added == "" {
		return "", false
	}
	_, ok := attrs.Get(added)
	return added, ok
}

// refusePoint records a problem of the data point being decoded.
func (m *metricDecoder) refusePoint(field, format string, args ...any) {
	m.pointBad = true
	m.c.add(m.item, field, format, args...)
}

// dataPointCount is the number of data points of a metric, refused with it.
func dataPointCount(metric pmetric.Metric) int {
	switch metric.Type() {
	case pmetric.MetricTypeGauge:
		return metric.Gauge().DataPoints().Len()
	case pmetric.MetricTypeSum:
		return metric.Sum().DataPoints().Len()
	case pmetric.MetricTypeHistogram:
		return metric.Histogram().DataPoints().Len()
	case pmetric.MetricTypeExponentialHistogram:
		return metric.ExponentialHistogram().DataPoints().Len()
	case pmetric.MetricTypeSummary:
		return metric.Summary().DataPoints().Len()
	}
	return 0
}

func (m *metricDecoder) metric(path string, metric pmetric.Metric) error {
	m.metricPath = path
	name, unit := metric.Name(), metric.Unit()
	if name == "" {
		m.c.add(m.item, path+".name", "is required")
		m.refused += dataPointCount(metric)
		return nil
	}
	if !utf8.ValidString(unit) {
		// The unit goes into the JSON body, which would hold U+FFFD.
		m.c.add(m.item, path+".unit", invalidUTF8Problem)
		m.refused += dataPointCount(metric)
		return nil
	}
	switch metric.Type() {
	case pmetric.MetricTypeGauge:
		return m.numberPoints(path+".gauge", name, unit, event.MetricGauge, metric.Gauge().DataPoints())
	case pmetric.MetricTypeSum:
		sum := metric.Sum()
		typ := event.MetricGauge
		if sum.IsMonotonic() && sum.AggregationTemporality() == pmetric.AggregationTemporalityCumulative {
			typ = event.MetricCounter
		}
		return m.numberPoints(path+".sum", name, unit, typ, sum.DataPoints())
	case pmetric.MetricTypeHistogram:
		h := metric.Histogram()
		typ := cumulativeType(h.AggregationTemporality())
		dps := h.DataPoints()
		for l := 0; l < dps.Len(); l++ {
			dp := dps.At(l)
			p := fmt.Sprintf("%s.histogram.dataPoints[%d]", path, l)
			if err := m.dataPoint(p, name, dp.Attributes(), "le", func() error {
				if err := m.countAndSum(p, name, unit, typ, dp.Attributes(), dp.Timestamp(), dp.Flags(), dp.Count(), dp.HasSum(), dp.Sum()); err != nil {
					return err
				}
				return m.buckets(p, name, typ, dp)
			}); err != nil {
				return err
			}
		}
	case pmetric.MetricTypeExponentialHistogram:
		h := metric.ExponentialHistogram()
		typ := cumulativeType(h.AggregationTemporality())
		dps := h.DataPoints()
		for l := 0; l < dps.Len(); l++ {
			dp := dps.At(l)
			p := fmt.Sprintf("%s.exponentialHistogram.dataPoints[%d]", path, l)
			if err := m.dataPoint(p, name, dp.Attributes(), "", func() error {
				return m.countAndSum(p, name, unit, typ, dp.Attributes(), dp.Timestamp(), dp.Flags(), dp.Count(), dp.HasSum(), dp.Sum())
			}); err != nil {
				return err
			}
		}
	case pmetric.MetricTypeSummary:
		dps := metric.Summary().DataPoints()
		for l := 0; l < dps.Len(); l++ {
			dp := dps.At(l)
			p := fmt.Sprintf("%s.summary.dataPoints[%d]", path, l)
			if err := m.dataPoint(p, name, dp.Attributes(), "quantile", func() error {
				if err := m.countAndSum(p, name, unit, event.MetricCounter, dp.Attributes(), dp.Timestamp(), dp.Flags(), dp.Count(), true, dp.Sum()); err != nil {
					return err
				}
				qs := dp.QuantileValues()
				if !m.fanOut(p, dp.Attributes(), dp.Flags()) {
					return nil
				}
				for q := 0; q < qs.Len(); q++ {
					if !finite(qs.At(q).Value()) {
						m.batch.skip(SkippedNonFinite) // before its labels are copied
						continue
					}
					labels, err := m.attributes(dp.Attributes())
					if err != nil {
						return err
					}
					labels["quantile"] = strconv.FormatFloat(qs.At(q).Quantile(), 'g', -1, 64)
					if err := m.point(fmt.Sprintf("%s.quantileValues[%d]", p, q), name, unit, event.MetricGauge, labels, "quantile", dp.Timestamp(), dp.Flags(), qs.At(q).Value()); err != nil {
						return err
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
	default:
		m.c.add(m.item, path, "has no data (gauge, sum, histogram, exponentialHistogram or summary)")
	}
	return nil
}

func cumulativeType(t pmetric.AggregationTemporality) string {
	if t == pmetric.AggregationTemporalityCumulative {
		return event.MetricCounter
	}
	return event.MetricGauge
}

func (m *metricDecoder) numberPoints(path, name, unit, typ string, dps pmetric.NumberDataPointSlice) error {
	for l := 0; l < dps.Len(); l++ {
		dp := dps.At(l)
		p := fmt.Sprintf("%s.dataPoints[%d]", path, l)
		var v float64
		switch dp.ValueType() {
		case pmetric.NumberDataPointValueTypeDouble:
			v = dp.DoubleValue()
		case pmetric.NumberDataPointValueTypeInt:
			v = float64(dp.IntValue())
		default:
			if dp.Flags().NoRecordedValue() {
				m.batch.skip(SkippedStaleMarkers)
				continue
			}
			m.c.add(m.item, p, "has no value (asDouble or asInt)")
			m.refused++
			continue
		}
		if err := m.dataPoint(p, name, dp.Attributes(), "", func() error {
			labels, err := m.attributes(dp.Attributes())
			if err != nil {
				return err
			}
			return m.point(p, name, unit, typ, labels, "", dp.Timestamp(), dp.Flags(), v)
		}); err != nil {
			return err
		}
	}
	return nil
}

func (m *metricDecoder) countAndSum(path, name, unit, typ string, attrs pcommon.Map, ts pcommon.Timestamp, flags pmetric.DataPointFlags, count uint64, hasSum bool, sum float64) error {
	labels, err := m.attributes(attrs)
	if err != nil {
		return err
	}
	if err := m.point(path+".count", name+"_count", "", typ, labels, "", ts, flags, float64(count)); err != nil {
		return err
	}
	if !hasSum {
		return nil
	}
	if labels, err = m.attributes(attrs); err != nil {
		return err
	}
	return m.point(path+".sum", name+"_sum", unit, typ, labels, "", ts, flags, sum)
}

// buckets makes the Prometheus-style bucket series of an explicit-bounds
// histogram point: <name>_bucket{le="<bound>"} with the count of values at
// or under each bound (cumulative, as Prometheus keeps them) and
// le="+Inf" with them all, so histogram_quantile-style queries work on
// the stored samples. A point without buckets (OTLP allows it, bounds
// and counts both empty) has only its count and sum.
//
// A point OTLP calls invalid is refused: bounds that are not finite or
// not strictly increasing (a second le="+Inf", or an le series whose
// bound means another bucket from one point to the next), counts not
// one more than the bounds, bounds without counts, or counts that do
// not add up to the point's count (le="+Inf" and <name>_count would
// disagree, and every quantile computed from the buckets with them).
func (m *metricDecoder) buckets(path, name, typ string, dp pmetric.HistogramDataPoint) error {
	bounds, counts := dp.ExplicitBounds(), dp.BucketCounts()
	if counts.Len() == 0 && bounds.Len() == 0 {
		return nil
	}
	if counts.Len() != bounds.Len()+1 {
		m.refusePoint(path+".bucketCounts", "has %d entries, want one more than explicitBounds (%d), or none with no bounds, in histogram %q", counts.Len(), bounds.Len(), name)
		return nil
	}
	for i := 0; i < bounds.Len(); i++ {
		switch b := bounds.At(i); {
		case !finite(b):
			m.refusePoint(fmt.Sprintf("%s.explicitBounds[%d]", path, i), "is %v, not a finite bound, in histogram %q (the last bucket's +Inf is implied)", b, name)
			return nil
		case i > 0 && !(b > bounds.At(i-1)):
			m.refusePoint(fmt.Sprintf("%s.explicitBounds[%d]", path, i), "must be greater than the bound before it, in histogram %q", name)
			return nil
		}
	}
	if !m.fanOut(path, dp.Attributes(), dp.Flags()) {
		return nil
	}
	// After fanOut: a point without a recorded value is skipped whatever
	// its counts say.
	if total, ok := sumCounts(counts); !ok || total != dp.Count() {
		m.refusePoint(path+".bucketCounts", "add up to %s, not the point's count %d, in histogram %q", countTotal(total, ok), dp.Count(), name)
		return nil
	}
	var cumulative uint64
	for i := 0; i < counts.Len(); i++ {
		cumulative += counts.At(i)
		le := "+Inf"
		if i < bounds.Len() {
			le = strconv.FormatFloat(bounds.At(i), 'g', -1, 64)
		}
		labels, err := m.attributes(dp.Attributes())
		if err != nil {
			return err
		}
		labels["le"] = le
		if err := m.point(fmt.Sprintf("%s.bucketCounts[%d]", path, i), name+"_bucket", "", typ, labels, "le", dp.Timestamp(), dp.Flags(), float64(cumulative)); err != nil {
			return err
		}
	}
	return nil
}

// sumCounts adds bucket counts; ok is false when they overflow a uint64,
// which no count can equal.
func sumCounts(counts pcommon.UInt64Slice) (total uint64, ok bool) {
	for i := 0; i < counts.Len(); i++ {
		var carry uint64
		if total, carry = bits.Add64(total, counts.At(i), 0); carry != 0 {
			return 0, false
		}
	}
	return total, true
}

func countTotal(total uint64, ok bool) string {
	if !ok {
		return "more than 2^64-1"
	}
	return strconv.FormatUint(total, 10)
}

// fanOut checks a point that becomes a series per bucket or quantile
// before its attributes are copied for each: a stale one is skipped whole
// (a point counts once: dataPoint), and one with more attributes than an
// event holds beside le or quantile is refused (copied for each of
// thousands of buckets, thousands of attributes would cost their product
// in a request of a few hundred KB).
func (m *metricDecoder) fanOut(path string, attrs pcommon.Map, flags pmetric.DataPointFlags) bool {
	if flags.NoRecordedValue() {
		m.batch.skip(SkippedStaleMarkers)
		return false
	}
	if attrs.Len() > event.MaxLabels-1 {
		m.refusePoint(path+".attributes", "has %d attributes, over the %d an event holds beside le or quantile", attrs.Len(), event.MaxLabels-1)
		return false
	}
	return true
}

// attributes is a point's attributes as labels (attributes), their maps
// and arrays charged before they are rendered (structuredSize): a
// histogram's point renders them once for each of its buckets.
func (m *metricDecoder) attributes(attrs pcommon.Map) (map[string]string, error) {
	if err := m.batch.charge(structuredSize(attrs), m.o, func() string {
		return fmt.Sprintf("%s: the map and array attributes of its points as JSON", m.metricPath)
	}); err != nil {
		return nil, err
	}
	return attributes(attrs), nil
}

// point makes one metric event; path names the input value for errors.
// labels are the point's attributes, and the label named by added (le,
// quantile) when the caller added one.
func (m *metricDecoder) point(path, name, unit, typ string, labels map[string]string, added string, ts pcommon.Timestamp, flags pmetric.DataPointFlags, v float64) error {
	switch {
	case flags.NoRecordedValue():
		m.batch.skip(SkippedStaleMarkers)
		return nil
	case !finite(v):
		m.batch.skip(SkippedNonFinite)
		return nil
	}
	if len(m.batch.Events) >= m.o.MaxEvents {
		// A histogram or summary point makes a series per bucket or
		// quantile: a request of far fewer points than max_events (an
		// SDK's whole export, which it cannot split) may make more events.
		// Refused whole with 413, which exporters do not retry, every
		// point of every export was lost; the points past the limit are
		// refused alone (partial_success), the others taken.
		m.refusePoint(m.metricPath, "is past the %d events a request may make (a histogram point makes one per bucket, a summary point one per quantile): its points from here on are not taken; send fewer points per request (the Collector's batch send_batch_max_size) or raise ingest.max_events", m.o.MaxEvents)
		return nil
	}
	// The labels taken from the scope, for their problems' paths.
	var nameFromScope, versionFromScope bool
	for k, v := range m.scopeLabels {
		if _, own := labels[k]; !own {
			labels[k] = v
			nameFromScope = nameFromScope || k == ScopeNameLabel
			versionFromScope = versionFromScope || k == ScopeVersionLabel
		}
	}
	if err := m.batch.charge(eventOverhead+len(m.service)+m.resourceSize+labelsSize(labels)+64+len(name)+len(typ)+len(unit), m.o, func() string {
		return fmt.Sprintf("resourceMetrics[%d] has %d attributes, copied into each of its points", m.item, len(m.resource))
	}); err != nil {
		return err
	}
	// Path of the data point, for the fields that belong to it rather than to
	// the value (.count, .sum, bucketCounts[i] and quantileValues[q] name the
	// value; the last two come with their label added).
	point := path
	switch i := strings.LastIndex(path, "]"); {
	case added != "":
		point = path[:strings.LastIndex(path, ".")]
	case i >= 0:
		point = path[:i+1]
	}
	if ts == 0 {
		m.refusePoint(point+".timeUnixNano", "is required")
		return nil
	}
	labels["__name__"] = name
	if len(labels) > event.MaxLabels {
		// Refused here, naming the labels the gateway added: Validate's
		// "has 129 entries", put on the attributes, counted labels the
		// producer never sent.
		names := []string{"__name__"}
		if added != "" {
			names = append(names, added)
		}
		if nameFromScope {
			names = append(names, ScopeNameLabel)
		}
		if versionFromScope {
			names = append(names, ScopeVersionLabel)
		}
		over, word := len(labels)-event.MaxLabels, "attributes"
		if over == 1 {
			word = "attribute"
		}
		m.refusePoint(point+".attributes", "with %s, which the gateway adds, make %d labels, over the limit of %d: send %d %s fewer",
			strings.Join(names, ", "), len(labels), event.MaxLabels, over, word)
		return nil
	}
	e := &event.Envelope{
		Kind:     event.KindMetric,
		Time:     ts.AsTime(),
		Service:  m.service,
		Resource: m.resource, // shared by the resource's points, read-only
		Labels:   labels,
	}
	e.Body = metricBody(name, &v, typ, unit)
	var identity [3][]byte
	if err := seal(e, SourceOTLP, m.o, append(append(identity[:0], float64Bytes(v)), m.scope...)...); err != nil {
		m.pointBad = true
		m.c.addInvalid(m.item, err, func(field string) string {
			switch {
			case field == "service":
				return "resource.attributes." + otelServiceName
			case strings.HasPrefix(field, "resource"):
				return "resource.attributes" + strings.TrimPrefix(field, "resource")
			case field == "time":
				return point + ".timeUnixNano"
			case field == "labels.__name__":
				return m.metricPath + ".name" // __name__ is the metric's name
			case field == "labels."+ScopeNameLabel && nameFromScope:
				return m.scopePath + ".name"
			case field == "labels."+ScopeVersionLabel && versionFromScope:
				return m.scopePath + ".version"
			case strings.HasPrefix(field, "labels"):
				return point + ".attributes" + strings.TrimPrefix(field, "labels")
			}
			return path + "." + field
		})
		return nil
	}
	m.batch.Events = append(m.batch.Events, e)
	return nil
}

func unmarshalOTLP(proto, jsonFn func([]byte) error, body []byte, enc Encoding) (err error) {
	// The pdata decoders are generated code over untrusted bytes; a panic in
	// one must become a 400 for that request, not a crashed gateway.
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed payload (%v)", r)
		}
	}()
	if enc == JSON {
		return jsonFn(body)
	}
	return proto(body)
}

// duplicateAttribute is the problem of an attribute key given twice.
const duplicateAttribute = "appears more than once (OTLP attribute keys are unique)"

// duplicateKey returns a key m holds more than once, if any: the pdata
// decoders keep every entry of the wire, and attributes keeps the last
// one of a key, so the value of the first was silently lost.
func duplicateKey(m pcommon.Map) (string, bool) {
	if m.Len() < 2 {
		return "", false
	}
	seen := make(map[string]struct{}, m.Len())
	var dup string
	found := false
	m.Range(func(k string, _ pcommon.Value) bool {
		if _, found = seen[k]; found {
			dup = k
			return false
		}
		seen[k] = struct{}{}
		return true
	})
	return dup, found
}

// attributeProblem returns the first problem of OTLP attributes that
// making them labels would hide rather than refuse (field is its path
// below "attributes."): a key given twice (the last value kept), or
// invalid UTF-8 inside a map or array value (made JSON by attributes,
// which holds it as U+FFFD). A string value is a label as it is, and
// event.Validate refuses its invalid UTF-8.
func attributeProblem(m pcommon.Map) (field, problem string, bad bool) {
	if k, dup := duplicateKey(m); dup {
		return clip(k), duplicateAttribute, true
	}
	m.Range(func(k string, v pcommon.Value) bool {
		if t := v.Type(); t != pcommon.ValueTypeMap && t != pcommon.ValueTypeSlice {
			return true
		}
		var sub string
		if sub, problem, bad = invalidUTF8(v); bad {
			field = clip(k) + sub
		}
		return !bad
	})
	return field, problem, bad
}

const invalidUTF8Problem = "is not valid UTF-8"

// invalidUTF8 finds a string in v, map keys included, that is not valid
// UTF-8; sub is its path below v (".user.name", "[2]"). Its depth is
// bounded by event.MaxNesting, checked on the wire before decoding.
func invalidUTF8(v pcommon.Value) (sub, problem string, bad bool) {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		if !utf8.ValidString(v.Str()) {
			return "", invalidUTF8Problem, true
		}
	case pcommon.ValueTypeMap:
		v.Map().Range(func(k string, e pcommon.Value) bool {
			if !utf8.ValidString(k) {
				sub, problem, bad = "", "has a key that is not valid UTF-8", true
				return false
			}
			var s string
			if s, problem, bad = invalidUTF8(e); bad {
				sub = "." + clip(k) + s
			}
			return !bad
		})
	case pcommon.ValueTypeSlice:
		for i := 0; i < v.Slice().Len(); i++ {
			if s, p, b := invalidUTF8(v.Slice().At(i)); b {
				return fmt.Sprintf("[%d]%s", i, s), p, true
			}
		}
	}
	return sub, problem, bad
}

// attributes turns OTLP attributes into string labels; maps and arrays
// become JSON, bytes base64. The caller charged their JSON first
// (structuredSize).
func attributes(m pcommon.Map) map[string]string {
	out := make(map[string]string, m.Len()+1)
	m.Range(func(k string, v pcommon.Value) bool {
		out[k] = v.AsString()
		return true
	})
	return out
}

// structuredSize bounds the JSON that attributes (pcommon.Value.AsString)
// writes of m's maps and arrays, without writing it: a control character
// is a six-byte escape there, so 9 MiB of them in one attribute, a few KB
// gzipped, rendered 54 MiB (held several times over while encoding/json
// wrote it) before a label's cut kept 4 KiB of it. Charged before the
// rendering, such a value is refused as too much output instead. Strings,
// numbers and bytes are not counted: AsString copies no string, and the
// labels they make are charged as events (labelsSize).
func structuredSize(m pcommon.Map) (n int) {
	m.Range(func(_ string, v pcommon.Value) bool {
		if t := v.Type(); t == pcommon.ValueTypeMap || t == pcommon.ValueTypeSlice {
			n += valueJSONLen(v)
		}
		return true
	})
	return n
}

// valueJSONLen bounds the length of v in JSON as AsString writes a map
// or an array's elements (a few bytes over at most); the depth is bounded
// by event.MaxNesting, checked on the wire before decoding.
func valueJSONLen(v pcommon.Value) int {
	switch v.Type() {
	case pcommon.ValueTypeStr:
		return event.JSONStringLen(v.Str())
	case pcommon.ValueTypeBytes:
		return 2 + 4*((v.Bytes().Len()+2)/3) // base64, quoted
	case pcommon.ValueTypeMap:
		n := 2 // {}
		v.Map().Range(func(k string, e pcommon.Value) bool {
			n += event.JSONStringLen(k) + 2 + valueJSONLen(e) // the colon and the comma
			return true
		})
		return n
	case pcommon.ValueTypeSlice:
		n, s := 2, v.Slice() // []
		for i := 0; i < s.Len(); i++ {
			n += 1 + valueJSONLen(s.At(i))
		}
		return n
	}
	return 24 // a number (-1.2345678901234567e-308), a bool or null
}

func serviceFromResource(resource map[string]string) string {
	if s := resource[otelServiceName]; s != "" {
		return s
	}
	return UnknownService
}

// OTLPPartialSuccess is what the partial_success of the answer to an
// accepted OTLP request says: how many of its records or points were
// refused (counted in Batch.Skipped[SkippedInvalid]) and the first of
// their problems. Both are zero when none was.
//
// Points flagged "no recorded value" and NaN or infinite values are not
// counted, nor told: they are valid OTLP, taken and not stored, as the
// gateway takes Prometheus's staleness markers. A summary over no
// observations has NaN quantiles, and the Collector's Prometheus
// receiver flags a scraped series that ended; told as rejected, every
// export of them made the exporter log an error (the Go SDK logs any
// partial_success with a count or a message, the Collector warns), for
// data nothing was wrong with, at every interval. They are counted in
// the answer's skipped and in the gateway's aiops_ingest_skipped_total.
func OTLPPartialSuccess(b *Batch) (rejected int64, message string) {
	rejected = int64(b.Skipped[SkippedInvalid])
	var msg strings.Builder
	// A problem may refuse no point (a metric without data): it is told
	// all the same, as OTLP allows a message with nothing rejected.
	for i, p := range b.Problems {
		if msg.Len() > 0 {
			msg.WriteString("; ")
		}
		if i == maxProblemsTold {
			fmt.Fprintf(&msg, "and %d more problems", len(b.Problems)-i)
			break
		}
		msg.WriteString(p.String())
	}
	return rejected, msg.String()
}

// maxProblemsTold bounds the problems an OTLP partial_success names: it
// ends up in the exporter's log line.
const maxProblemsTold = 10

// OTLPResponse is the protobuf Export*ServiceResponse of an accepted OTLP
// request: empty (full success), or, when some of its records or points
// were refused, a partial_success counting them with their problems
// (OTLPPartialSuccess), as OTLP/HTTP asks, so an exporter can tell what
// was dropped.
func OTLPResponse(logs bool, b *Batch) ([]byte, error) {
	n, msg := OTLPPartialSuccess(b)
	if n == 0 && msg == "" {
		return nil, nil // the empty message
	}
	if logs {
		resp := plogotlp.NewExportResponse()
		resp.PartialSuccess().SetRejectedLogRecords(n)
		resp.PartialSuccess().SetErrorMessage(msg)
		return resp.MarshalProto()
	}
	resp := pmetricotlp.NewExportResponse()
	resp.PartialSuccess().SetRejectedDataPoints(n)
	resp.PartialSuccess().SetErrorMessage(msg)
	return resp.MarshalProto()
}
