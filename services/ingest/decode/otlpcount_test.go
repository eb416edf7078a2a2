package decode

import (
	"bytes"
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/event"

	"google.golang.org/protobuf/encoding/protowire"
)

// emptyRecords is an ExportLogsServiceRequest whose one scope holds n empty
// log records nested under an attribute-heavy record, two bytes each: the
// cheapest way to make a decoder allocate.
func emptyRecords(n int) []byte {
	var sl []byte
	for range n {
		sl = protowire.AppendTag(sl, 2, protowire.BytesType)
		sl = protowire.AppendBytes(sl, nil)
	}
	var rl []byte
	rl = protowire.AppendTag(rl, 2, protowire.BytesType)
	rl = protowire.AppendBytes(rl, sl)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rl)
}

// emptyAttributes is one log record with n empty attributes.
func emptyAttributes(n int) []byte {
	var lr []byte
	for range n {
		lr = protowire.AppendTag(lr, 6, protowire.BytesType)
		lr = protowire.AppendBytes(lr, nil)
	}
	var sl []byte
	sl = protowire.AppendTag(sl, 2, protowire.BytesType)
	sl = protowire.AppendBytes(sl, lr)
	var rl []byte
	rl = protowire.AppendTag(rl, 2, protowire.BytesType)
	rl = protowire.AppendBytes(rl, sl)
	var req []byte
	req = protowire.AppendTag(req, 1, protowire.BytesType)
	return protowire.AppendBytes(req, rl)
}

func TestOTLPMessageBombIsRefusedBeforeDecoding(t *testing.T) {
	for name, body := range map[string][]byte{
		"records":    emptyRecords(MaxOTLPMessages + 1),
		"attributes": emptyAttributes(MaxOTLPMessages + 1),
	} {
		t.Run(name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := OTLPLogs(body, Protobuf, opts())
			runtime.ReadMemStats(&after)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("want ErrTooLarge, got %v", err)
			}
			// pdata would allocate about 85 bytes per message (180 MB here).
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("allocated %d MB refusing a %d-byte body", alloc>>20, len(body))
			}
		})
	}
	json := append([]byte(`{"resourceLogs":[{"scopeLogs":[{"logRecords":[`), bytes.Repeat([]byte("{},"), MaxOTLPMessages)...)
	json = append(json, []byte(`{}]}]}]}`)...)
	if _, err := OTLPLogs(json, JSON, opts()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("JSON: want ErrTooLarge, got %v", err)
	}
	// For metrics the same bytes are a million empty Metric messages.
	if _, err := OTLPMetrics(emptyRecords(MaxOTLPMessages+1), Protobuf, opts()); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("metrics: want ErrTooLarge, got %v", err)
	}
}

func TestOTLPMessageCountAllowsRealBatches(t *testing.T) {
	// Just under the limit: the count does not refuse it (the event limit
	// does, after decoding).
	if err := checkOTLPSize(emptyRecords(MaxOTLPMessages-2), Protobuf, "ExportLogsServiceRequest"); err != nil {
		t.Fatalf("refused %d messages: %v", MaxOTLPMessages, err)
	}
	if err := checkOTLPSize(encodeLogs(t, sampleLogs(), Protobuf), Protobuf, "ExportLogsServiceRequest"); err != nil {
		t.Fatal(err)
	}
}

// TestOTLPRefusesDeepNesting is the reproduction of issue #14 item 1: a body
// nested a million levels (9.5 MB, under the 10 MiB limit) overflowed the
// stack in pdata and encoding/json and killed the process; it is now a 400
// before pdata runs, for logs and metrics, protobuf and JSON.
func TestOTLPRefusesDeepNesting(t *testing.T) {
	ts := uint64(testNow.UnixNano())
	for name, c := range map[string]struct {
		body []byte
		enc  Encoding
		dec  func([]byte, Encoding, Options) (*Batch, error)
	}{
		"logs array":      {otlpLogsWithBody(nestedAnyValue(1_000_000, false, "x"), 1, ts), Protobuf, OTLPLogs},
		"logs kvlist":     {otlpLogsWithBody(nestedAnyValue(300_000, true, "x"), 1, ts), Protobuf, OTLPLogs},
		"metrics attr":    {otlpGaugeWithAttribute(nestedAnyValue(1_000_000, false, "x"), 1, ts), Protobuf, OTLPMetrics},
		"logs JSON":       {[]byte(nestedJSONBody(300_000, "1")), JSON, OTLPLogs},
		"logs just above": {otlpLogsWithBody(nestedAnyValue(31, false, "x"), 1, ts), Protobuf, OTLPLogs},
	} {
		t.Run(name, func(t *testing.T) {
			if len(c.body) > DefaultMaxDecodedBytes {
				t.Fatalf("the body is %d bytes, over the gateway's limit: it would not test the decoder", len(c.body))
			}
			_, err := c.dec(c.body, c.enc, opts())
			p := hasProblem(t, err, NoItem, "")
			if !strings.Contains(p.Problem, "nested more than 64 levels") {
				t.Fatalf("problem %q does not name the nesting", p.Problem)
			}
		})
	}
	// 30 levels of arrays inside a record's body (4 + 2×30 = 64 messages
	// deep) still decode, to the JSON of the value.
	b, err := OTLPLogs(otlpLogsWithBody(nestedAnyValue(30, false, "x"), 1, ts), Protobuf, opts())
	if err != nil {
		t.Fatal(err)
	}
	var body event.LogBody
	if err := json.Unmarshal(b.Events[0].Body, &body); err != nil {
		t.Fatal(err)
	}
	if want := strings.Repeat("[", 30) + `"x"` + strings.Repeat("]", 30); body.Message != want {
		t.Fatalf("message %q, want %q", body.Message, want)
	}
}
