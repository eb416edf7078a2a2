package decode

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/klauspost/compress/snappy"
	"google.golang.org/protobuf/encoding/protowire"
)

// errStop ends a field walk early without an error of the input.
var errStop = errors.New("stop")

// staleNaN is the bit pattern Prometheus writes as a staleness marker.
const staleNaN uint64 = 0x7ff0000000000002

// Field numbers of the remote-write 1.0 protobuf (prometheus/prompb).
const (
	wrTimeseries = 1 // WriteRequest.timeseries
	wrMetadata   = 3 // WriteRequest.metadata
	tsLabels     = 1 // TimeSeries.labels
	tsSamples    = 2 // TimeSeries.samples
	tsHistograms = 4 // TimeSeries.histograms (native)
	labelName    = 1
	labelValue   = 2
	sampleValue  = 1
	sampleTime   = 2
	mdType       = 1 // MetricMetadata.type
	mdFamily     = 2 // MetricMetadata.metric_family_name
	mdUnit       = 5 // MetricMetadata.unit
)

// MetricMetadata.MetricType values of prompb.
const (
	promCounter        = 1
	promGauge          = 2
	promHistogram      = 3
	promGaugeHistogram = 4
	promSummary        = 5
)

// promServiceLabels name the service of a series, in order.
var promServiceLabels = []string{"service", "job"}

// RemoteWrite decodes a Prometheus remote-write 1.0 request (a snappy
// block-compressed prometheus.WriteRequest protobuf) into one metric event
// per sample. Item is the index of the time series; Field is a path in it
// ("labels", "samples[2].timestamp").
//
// Each event carries every label of its series (__name__ included) as
// labels, the service from the label service, else job, else "unknown", the
// sample's millisecond timestamp as its time and an event.MetricBody with the
// metric name, the value, and the type and unit from the request's metadata
// for the metric family. Without metadata (Prometheus sends it in separate
// requests) a name ending in _total, _count, _sum or _bucket is a counter,
// any other a gauge. Labels with an empty value are dropped (Prometheus
// treats them as absent).
//
// Staleness markers and other NaN or infinite values are skipped and counted
// in Batch.Skipped rather than refused, because Prometheus drops a batch
// answered with 4xx and one stale series would otherwise lose all the
// others; native histogram samples are skipped and counted too.
func RemoteWrite(body []byte, o Options) (*Batch, error) {
	o = o.withDefaults()
	n, err := snappy.DecodedLen(body)
	if err != nil {
		return nil, requestProblem("", "is not snappy block-compressed: %v", err)
	}
	if n > o.MaxDecodedBytes {
		return nil, tooLarge(n, o.MaxDecodedBytes)
	}
	buf, err := snappy.Decode(nil, body)
	if err != nil {
		return nil, requestProblem("", "is not snappy block-compressed: %v", err)
	}
	var series [][]byte
	meta := map[string]familyMeta{}
	err = eachField(buf, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch num {
		case wrTimeseries:
			if typ != protowire.BytesType {
				return fmt.Errorf("field timeseries has wire type %d, want bytes", typ)
			}
			if len(series) > o.MaxEvents {
				return errStop
			}
			series = append(series, v)
		case wrMetadata:
			if typ != protowire.BytesType {
				return fmt.Errorf("field metadata has wire type %d, want bytes", typ)
			}
			if len(meta) >= o.MaxEvents {
				return nil // a family's type and unit only help; more are not kept
			}
			return parseMetadata(v, meta)
		}
		return nil
	})
	if err != nil && err != errStop {
		return nil, requestProblem("", "is not a remote-write WriteRequest: %v", err)
	}
	// Every series costs a label map even without samples, so their number
	// is bounded like the events'.
	if len(series) > o.MaxEvents {
		return nil, tooManyEvents(o.MaxEvents)
	}
	var c problems
	batch := &Batch{}
	for i, ts := range series {
		if err := seriesEvents(i, ts, meta, o, batch, &c); err != nil {
			return nil, err
		}
	}
	if err := c.partial(batch); err != nil {
		return nil, err
	}
	return batch, nil
}

type familyMeta struct {
	typ  uint64
	unit string
}

func parseMetadata(b []byte, meta map[string]familyMeta) error {
	var (
		m    familyMeta
		name string
	)
	err := eachField(b, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch {
		case num == mdType && typ == protowire.VarintType:
			m.typ, _ = protowire.ConsumeVarint(v)
		case num == mdFamily && typ == protowire.BytesType:
			name = string(v)
		case num == mdUnit && typ == protowire.BytesType:
			m.unit = string(v)
		}
		return nil
	})
	if err == nil && name != "" {
		meta[name] = m
	}
	return err
}

// errTooManySamples stops reading a series once the request's samples
// would pass MaxEvents.
var errTooManySamples = errors.New("too many samples")

type sample struct {
	value float64
	ms    int64
	index int // in the series, skipped ones counted
}

func seriesEvents(i int, ts []byte, meta map[string]familyMeta, o Options, batch *Batch, c *problems) error {
	labels := map[string]string{}
	seen := map[string]bool{} // label names, those of empty values too
	tooMany := false
	read := 0 // samples read
	var samples []sample
	before := c.total
	err := eachField(ts, func(num protowire.Number, typ protowire.Type, v []byte) error {
		switch num {
		case tsLabels:
			if typ != protowire.BytesType {
				return fmt.Errorf("field labels has wire type %d, want bytes", typ)
			}
			var name, value string
			if err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				if typ != protowire.BytesType {
					return nil
				}
				switch num {
				case labelName:
					name = string(v)
				case labelValue:
					value = string(v)
				}
				return nil
			}); err != nil {
				return err
			}
			switch _, dup := labels[name]; {
			case name == "":
				c.add(i, "labels", "has a label with an empty name")
			case dup || seen[name]:
				c.add(i, "labels."+clip(name), "appears twice")
			case value != "" && len(labels) >= event.MaxLabels, len(seen) >= 8*event.MaxLabels:
				// Refused below; not kept meanwhile.
				if !tooMany {
					tooMany = true
					c.add(i, "labels", "has more than %d labels", event.MaxLabels)
				}
			default:
				seen[name] = true
				if value != "" {
					labels[name] = value
				}
			}
		case tsSamples:
			if typ != protowire.BytesType {
				return fmt.Errorf("field samples has wire type %d, want bytes", typ)
			}
			s := sample{index: read}
			read++
			if err := eachField(v, func(num protowire.Number, typ protowire.Type, v []byte) error {
				switch {
				case num == sampleValue && typ == protowire.Fixed64Type:
					bits, _ := protowire.ConsumeFixed64(v)
					s.value = math.Float64frombits(bits)
				case num == sampleTime && typ == protowire.VarintType:
					u, _ := protowire.ConsumeVarint(v)
					s.ms = int64(u)
				}
				return nil
			}); err != nil {
				return err
			}
			// Skipped values are counted here, so that only the samples
			// that become events are kept, and bounded as they are read.
			switch {
			case math.Float64bits(s.value) == staleNaN:
				batch.skip(SkippedStaleMarkers)
				return nil
			case !finite(s.value):
				batch.skip(SkippedNonFinite)
				return nil
			}
			if len(batch.Events)+len(samples) >= o.MaxEvents {
				return errTooManySamples
			}
			samples = append(samples, s)
		case tsHistograms:
			batch.skip(SkippedNativeHistograms)
		}
		return nil
	})
	if err == errTooManySamples {
		return tooManyEvents(o.MaxEvents)
	}
	if err != nil {
		c.add(i, "", "is not a remote-write TimeSeries: %v", err)
		return nil
	}
	name := labels["__name__"]
	if name == "" {
		c.add(i, "labels.__name__", "is required")
	}
	if c.total > before {
		return nil
	}
	typ, unit := promType(name, meta)
	service := serviceFrom(labels, promServiceLabels)
	// Every sample's event carries every label of the series: refuse a
	// request whose expansion is over the limit before building one.
	perEvent := eventOverhead + len(service) + labelsSize(labels) + 64 + len(name) + len(typ) + len(unit)
	if err := batch.charge(perEvent*len(samples), o, func() string {
		return fmt.Sprintf("series %d has %d samples, each an event carrying its %d labels", i, len(samples), len(labels))
	}); err != nil {
		return err
	}
	// One fingerprint and one label map for the whole series, shared by its
	// events (read-only from here): a copy per sample cost 17 KB per event
	// with 128 labels.
	fingerprint := event.Fingerprint(event.KindMetric, service, labels, nil)
	for _, s := range samples {
		if len(batch.Events) >= o.MaxEvents {
			return tooManyEvents(o.MaxEvents)
		}
		value := s.value
		e := &event.Envelope{
			Kind:        event.KindMetric,
			Time:        time.UnixMilli(s.ms),
			Service:     service,
			Labels:      labels,
			Fingerprint: fingerprint,
		}
		e.Body = metricBody(name, &value, typ, unit)
		if err := seal(e, SourcePrometheus, o, float64Bytes(value)); err != nil {
			c.addInvalid(i, err, func(field string) string {
				switch {
				case field == "time":
					return fmt.Sprintf("samples[%d].timestamp", s.index)
				case strings.HasPrefix(field, "body.value"), field == "id":
					return fmt.Sprintf("samples[%d].value", s.index)
				}
				return field
			})
			continue
		}
		batch.Events = append(batch.Events, e)
	}
	return nil
}

// promType is the event.Metric* type and the unit of a Prometheus series
// name, from the family metadata when the request has it, else by the
// naming conventions.
func promType(name string, meta map[string]familyMeta) (typ, unit string) {
	if m, ok := meta[name]; ok {
		switch m.typ {
		case promCounter:
			return event.MetricCounter, m.unit
		case promGauge, promGaugeHistogram:
			return event.MetricGauge, m.unit
		case promSummary:
			return event.MetricGauge, m.unit // the quantile series
		}
	}
	for _, suffix := range []string{"_bucket", "_count", "_sum"} {
		family, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		if m, ok := meta[family]; ok {
			switch m.typ {
			case promHistogram, promSummary:
				return event.MetricCounter, m.unit
			case promGaugeHistogram:
				return event.MetricGauge, m.unit
			}
		}
	}
	for _, suffix := range []string{"_total", "_count", "_sum", "_bucket"} {
		if strings.HasSuffix(name, suffix) {
			return event.MetricCounter, ""
		}
	}
	return event.MetricGauge, ""
}

// eachField calls fn with every field of one protobuf message; v is the
// payload (the varint or fixed bytes for scalar types, the content for
// bytes fields). Groups are refused: remote-write never uses them.
func eachField(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return protowire.ParseError(n)
		}
		b = b[n:]
		var v []byte
		switch typ {
		case protowire.BytesType:
			content, m := protowire.ConsumeBytes(b)
			if m < 0 {
				return protowire.ParseError(m)
			}
			v, n = content, m
		case protowire.VarintType, protowire.Fixed32Type, protowire.Fixed64Type:
			n = protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return protowire.ParseError(n)
			}
			v = b[:n]
		default:
			return fmt.Errorf("field %d has unsupported wire type %d", num, typ)
		}
		if err := fn(num, typ, v); err != nil {
			return err
		}
		b = b[n:]
	}
	return nil
}
