package decode

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

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
