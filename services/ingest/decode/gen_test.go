package decode

import (
	"math"
	"strings"

	"google.golang.org/protobuf/encoding/protowire"
)

// Generators of hostile OTLP and remote-write bodies, written straight in the
// wire format so they can reach sizes and depths no SDK would build: the
// depth tests and the structure-aware fuzz targets use them.

// pbMsg appends field num holding the message content.
func pbMsg(b []byte, num protowire.Number, content []byte) []byte {
	b = protowire.AppendTag(b, num, protowire.BytesType)
	return protowire.AppendBytes(b, content)
}

// nestedAnyValue is an AnyValue holding levels ArrayValues (or, with kv,
// KeyValueLists) each holding the next, around a string leaf. It is built
// outside in with the lengths computed first, so a million levels cost
// linear time.
func nestedAnyValue(levels int, kv bool, leaf string) []byte {
	inner := protowire.AppendTag(nil, 1, protowire.BytesType) // AnyValue.string_value
	inner = protowire.AppendString(inner, leaf)
	// sizes[i] is the size of the AnyValue at depth i (0 outermost).
	sizes := make([]int, levels+1)
	sizes[levels] = len(inner)
	for i := levels - 1; i >= 0; i-- {
		child := sizes[i+1]
		var wrapper int // ArrayValue{values: child} or KeyValueList{values: KeyValue{key, value: child}}
		if kv {
			keyValue := 1 + 1 + 1 + 1 + protowire.SizeVarint(uint64(child)) + child // key "k", value
			wrapper = 1 + protowire.SizeVarint(uint64(keyValue)) + keyValue
		} else {
			wrapper = 1 + protowire.SizeVarint(uint64(child)) + child
		}
		sizes[i] = 1 + protowire.SizeVarint(uint64(wrapper)) + wrapper
	}
	b := make([]byte, 0, sizes[0])
	for i := 0; i < levels; i++ {
		child := sizes[i+1]
		if kv {
			keyValue := 4 + protowire.SizeVarint(uint64(child)) + child
			wrapper := 1 + protowire.SizeVarint(uint64(keyValue)) + keyValue
			b = protowire.AppendTag(b, 6, protowire.BytesType) // AnyValue.kvlist_value
			b = protowire.AppendVarint(b, uint64(wrapper))
			b = protowire.AppendTag(b, 1, protowire.BytesType) // KeyValueList.values
			b = protowire.AppendVarint(b, uint64(keyValue))
			b = protowire.AppendTag(b, 1, protowire.BytesType) // KeyValue.key
			b = protowire.AppendString(b, "k")
			b = protowire.AppendTag(b, 2, protowire.BytesType) // KeyValue.value
			b = protowire.AppendVarint(b, uint64(child))
			continue
		}
		wrapper := 1 + protowire.SizeVarint(uint64(child)) + child
		b = protowire.AppendTag(b, 5, protowire.BytesType) // AnyValue.array_value
		b = protowire.AppendVarint(b, uint64(wrapper))
		b = protowire.AppendTag(b, 1, protowire.BytesType) // ArrayValue.values
		b = protowire.AppendVarint(b, uint64(child))
	}
	return append(b, inner...)
}

// otlpLogsWithBody is an ExportLogsServiceRequest of one resource (with
// service.name) and records log records with the given AnyValue body.
func otlpLogsWithBody(body []byte, records int, ts uint64) []byte {
	var record []byte
	record = protowire.AppendTag(record, 1, protowire.Fixed64Type) // time_unix_nano
	record = protowire.AppendFixed64(record, ts)
	record = pbMsg(record, 5, body)
	var scope []byte
	for range records {
		scope = pbMsg(scope, 2, record)
	}
	return pbMsg(nil, 1, pbMsg(otlpResource("svc"), 2, scope))
}

// otlpResource is ResourceLogs/ResourceMetrics field 1: a Resource with service.name.
func otlpResource(service string) []byte {
	value := protowire.AppendTag(nil, 1, protowire.BytesType)
	value = protowire.AppendString(value, service)
	kv := protowire.AppendTag(nil, 1, protowire.BytesType)
	kv = protowire.AppendString(kv, "service.name")
	kv = pbMsg(kv, 2, value)
	return pbMsg(nil, 1, pbMsg(nil, 1, kv))
}

// otlpGaugeWithAttribute is an ExportMetricsServiceRequest of one gauge
// with points data points, each with one attribute whose value is attr.
func otlpGaugeWithAttribute(attr []byte, points int, ts uint64) []byte {
	kv := protowire.AppendTag(nil, 1, protowire.BytesType)
	kv = protowire.AppendString(kv, "a")
	kv = pbMsg(kv, 2, attr)
	var dp []byte
	dp = protowire.AppendTag(dp, 3, protowire.Fixed64Type) // time_unix_nano
	dp = protowire.AppendFixed64(dp, ts)
	dp = protowire.AppendTag(dp, 4, protowire.Fixed64Type) // as_double
	dp = protowire.AppendFixed64(dp, math.Float64bits(1))
	dp = pbMsg(dp, 7, kv)
	var gauge []byte
	for range points {
		gauge = pbMsg(gauge, 1, dp)
	}
	metric := protowire.AppendTag(nil, 1, protowire.BytesType)
	metric = protowire.AppendString(metric, "m")
	metric = pbMsg(metric, 5, gauge)
	return pbMsg(nil, 1, pbMsg(otlpResource("svc"), 2, pbMsg(nil, 2, metric)))
}

// nestedJSONBody is an OTLP JSON logs request whose one record's body nests
// levels arrayValues.
func nestedJSONBody(levels int, ts string) string {
	return `{"resourceLogs":[{"scopeLogs":[{"logRecords":[{"timeUnixNano":"` + ts + `","body":` +
		strings.Repeat(`{"arrayValue":{"values":[`, levels) + `{"stringValue":"x"}` + strings.Repeat(`]}}`, levels) +
		`}]}]}]}`
}
