package decode

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/aiops-dev/aiops/pkg/event"

	"google.golang.org/protobuf/encoding/protowire"
)

// MaxOTLPMessages bounds the protobuf messages (resources, scopes, records,
// data points, attributes, values...) one OTLP request may contain. The
// pdata decoders allocate about 85 bytes per message, so a body of empty
// messages two bytes each (a few kilobytes once gzipped) would otherwise
// make a 10 MiB request allocate 850 MB before any limit is looked at. At a
// million messages a request holds at most about 100 MB, while a full batch
// of 10,000 records still has room for 100 messages each (about 50
// attributes).
const MaxOTLPMessages = 1 << 20

// otlpSchema maps a message type to its message-typed fields (field number
// to field type) in the OTLP v1 protos; other fields are scalars, strings or
// packed arrays, which allocate no more than their size.
type otlpSchema map[protowire.Number]string

var otlpMessages = map[string]otlpSchema{
	"ExportLogsServiceRequest":    {1: "ResourceLogs"},
	"ExportMetricsServiceRequest": {1: "ResourceMetrics"},
	"ResourceLogs":                {1: "Resource", 2: "ScopeLogs"},
	"ResourceMetrics":             {1: "Resource", 2: "ScopeMetrics"},
	"Resource":                    {1: "KeyValue", 3: "EntityRef"},
	"EntityRef":                   {},
	"ScopeLogs":                   {1: "InstrumentationScope", 2: "LogRecord"},
	"ScopeMetrics":                {1: "InstrumentationScope", 2: "Metric"},
	"InstrumentationScope":        {3: "KeyValue"},
	"LogRecord":                   {5: "AnyValue", 6: "KeyValue"},
	"KeyValue":                    {2: "AnyValue"},
	"AnyValue":                    {5: "ArrayValue", 6: "KeyValueList"},
	"ArrayValue":                  {1: "AnyValue"},
	"KeyValueList":                {1: "KeyValue"},
	"Metric":                      {5: "Gauge", 7: "Sum", 9: "Histogram", 10: "ExponentialHistogram", 11: "Summary", 12: "KeyValue"},
	"Gauge":                       {1: "NumberDataPoint"},
	"Sum":                         {1: "NumberDataPoint"},
	"Histogram":                   {1: "HistogramDataPoint"},
	"ExponentialHistogram":        {1: "ExponentialHistogramDataPoint"},
	"Summary":                     {1: "SummaryDataPoint"},
	"NumberDataPoint":             {5: "Exemplar", 7: "KeyValue"},
	"HistogramDataPoint":          {8: "Exemplar", 9: "KeyValue"},
	"ExponentialHistogramDataPoint": {
		1: "KeyValue", 8: "Buckets", 9: "Buckets", 11: "Exemplar",
	},
	"Buckets":          {},
	"SummaryDataPoint": {6: "ValueAtQuantile", 7: "KeyValue"},
	"ValueAtQuantile":  {},
	"Exemplar":         {7: "KeyValue"},
}

// errTooManyMessages stops the count early.
var errTooManyMessages = fmt.Errorf("more than %d protobuf messages", MaxOTLPMessages)

// checkOTLPSize refuses a request that would make pdata allocate too much:
// for protobuf it counts the messages by the schema, for JSON it counts the
// '{' bytes (every message is an object; braces inside strings only
// overcount).
//
// Both also bound the nesting (event.MaxNesting): pdata decodes an AnyValue
// inside an ArrayValue inside an AnyValue... by recursion, and so does the
// JSON encoding of the value that makes the log message, so a 10 MiB body
// of a million nested arrays overflowed the process's stack. The walk here
// is itself recursive but stops at the limit.
func checkOTLPSize(body []byte, enc Encoding, root string) error {
	if enc == JSON {
		if err := event.CheckJSONNesting(body); err != nil {
			return tooDeep(err)
		}
		if n := bytes.Count(body, []byte{'{'}); n > MaxOTLPMessages {
			return tooManyMessages()
		}
		return nil
	}
	count := 0
	var walk func(b []byte, typ string, depth int) error
	walk = func(b []byte, typ string, depth int) error {
		if depth > event.MaxNesting {
			return errTooDeep
		}
		schema := otlpMessages[typ]
		for len(b) > 0 {
			num, wt, n := protowire.ConsumeTag(b)
			if n < 0 {
				return nil // malformed: the real decoder reports it
			}
			b = b[n:]
			n = protowire.ConsumeFieldValue(num, wt, b)
			if n < 0 {
				return nil
			}
			child, isMessage := schema[num]
			if isMessage && wt == protowire.BytesType {
				count++
				if count > MaxOTLPMessages {
					return errTooManyMessages
				}
				content, _ := protowire.ConsumeBytes(b)
				if err := walk(content, child, depth+1); err != nil {
					return err
				}
			}
			b = b[n:]
		}
		return nil
	}
	switch err := walk(body, root, 0); err {
	case nil:
		return nil
	case errTooDeep:
		return tooDeep(fmt.Errorf("%s %w", root, event.ErrTooDeep))
	}
	return tooManyMessages()
}

var errTooDeep = errors.New("too deep")

// tooDeep is a request-wide problem: 400, not 413, since the size is not
// what is wrong.
func tooDeep(err error) error {
	return requestProblem("", "is %v (arrays and maps inside values count two levels each)", err)
}

func tooManyMessages() error {
	return tooLargeErr(fmt.Sprintf("more than %d OTLP messages (records, points, attributes, values) in one request", MaxOTLPMessages))
}
