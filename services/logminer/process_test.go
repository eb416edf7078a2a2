package logminer

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
)

// newTestLogminer builds the processing part alone, without JetStream.
func newTestLogminer(t *testing.T, cfg Config) *Logminer {
	t.Helper()
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	miner, err := logmine.New(logmine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	l := &Logminer{cfg: cfg, miner: miner, counts: newCounts(cfg), formats: map[string]*compiledFormat{},
		now: func() time.Time { return time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC) }}
	for svc, spec := range cfg.Formats {
		f, err := logmine.CompileFormat(spec)
		if err != nil {
			t.Fatal(err)
		}
		l.formats[svc] = &compiledFormat{Format: f, level: -1}
		for i, name := range f.Fields() {
			if name == "Level" {
				l.formats[svc].level = i
			}
		}
	}
	return l
}

func rawJSON(t *testing.T, svc, msg string, sev event.Severity) (*event.Envelope, []byte) {
	t.Helper()
	e, err := event.New(event.KindLog, svc, time.Date(2026, 11, 21, 11, 59, 0, 0, time.UTC), event.LogBody{Message: msg})
	if err != nil {
		t.Fatal(err)
	}
	e.Severity = sev
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return e, data
}

// TestProcessFormatAndMerge: a service with a header format is mined on its
// content, its Level gives the severity; a generalised template is announced
// as changed, and its counts move to the new id.
func TestProcessFormatAndMerge(t *testing.T) {
	l := newTestLogminer(t, Config{Formats: map[string]string{"hdfs": "<Date> <Time> <Level> <Component>: <Content>"}})

	raw, data := rawJSON(t, "hdfs", "081109 203615 ERROR dfs.DataNode: session closed for user alice", "")
	msgs, err := l.process(data, new(scratch))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[0].Subject != "events.log.hdfs.templated" || msgs[1].Subject != "events.log_template.hdfs" {
		t.Fatalf("messages %+v", msgs)
	}
	var out event.Envelope
	if err := json.Unmarshal(msgs[0].Data, &out); err != nil {
		t.Fatal(err)
	}
	var body event.LogBody
	if err := out.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if body.Template != "session closed for user alice" || body.Message != "081109 203615 ERROR dfs.DataNode: session closed for user alice" || out.Severity != event.SeverityError {
		t.Fatalf("templated %+v body %+v", out, body)
	}
	if msgs[0].ID != out.ID || out.ID != derivedID(idTime(raw.ID), "templated_log", raw.ID) {
		t.Errorf("message id %s, envelope id %s: not the derived id", msgs[0].ID, out.ID)
	}
	// Redelivery: the same raw log gives the same ids.
	again, err := l.process(data, new(scratch))
	if err != nil || again[0].ID != msgs[0].ID {
		t.Fatalf("redelivered raw log: id %s, first %s (%v)", again[0].ID, msgs[0].ID, err)
	}

	_, data = rawJSON(t, "hdfs", "081109 203616 INFO dfs.DataNode: session closed for user bob", "")
	msgs, err = l.process(data, new(scratch))
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("generalising line: %d messages, want the templated log and a changed event", len(msgs))
	}
	var te event.Envelope
	if err := json.Unmarshal(msgs[1].Data, &te); err != nil {
		t.Fatal(err)
	}
	var tb event.LogTemplateBody
	if err := te.DecodeBody(&tb); err != nil {
		t.Fatal(err)
	}
	oldID, newID := logmine.IDOf("session closed for user alice"), logmine.IDOf("session closed for user <*>")
	if te.Kind != event.KindLogTemplate || tb.Status != event.TemplateChanged || tb.TemplateID != newID.String() || tb.PreviousID != oldID.String() || len(tb.MergedFrom) != 1 || tb.MergedFrom[0] != oldID.String() {
		t.Fatalf("changed event %+v body %+v", te, tb)
	}
	samples, bursts := l.counts.flush()
	if len(samples) != 1 || samples[0].ID != newID || samples[0].Count != 3 {
		t.Fatalf("counts %v, want the 3 lines under %s", samples, newID)
	}
	if len(bursts) != 0 {
		t.Errorf("bursts %v from 2 error lines", bursts)
	}

	// A line without the header is mined whole and counted.
	_, data = rawJSON(t, "hdfs", "no header here", event.SeverityWarning)
	if _, err := l.process(data, new(scratch)); err != nil {
		t.Fatal(err)
	}
	if got := l.metrics.unmatchedFormat.Load(); got != 1 {
		t.Errorf("unmatched %d, want 1", got)
	}
}

// TestStateRoundTrip: the encoded state restores templates and series; the
// counts of the interval in progress survive a restart within the interval
// and are dropped (averages kept) after it, when they may have been emitted.
func TestStateRoundTrip(t *testing.T) {
	clock := time.Date(2026, 11, 21, 10, 0, 30, 0, time.UTC)
	now := func() time.Time { return clock }
	l := newTestLogminer(t, Config{})
	l.now = now
	for i := range 12 {
		_, data := rawJSON(t, "api", "request "+string(rune('0'+i%10))+" failed", event.SeverityError)
		if _, err := l.process(data, new(scratch)); err != nil {
			t.Fatal(err)
		}
	}
	l.counts.flush() // seeds the error average with 12
	_, data := rawJSON(t, "api", "request 7 failed", event.SeverityError)
	if _, err := l.process(data, new(scratch)); err != nil {
		t.Fatal(err)
	}
	state, err := l.encodeState()
	if err != nil {
		t.Fatal(err)
	}
	id := logmine.IDOf("request <*> failed")

	for _, c := range []struct {
		restoredAt time.Time
		count      uint64
	}{
		{clock.Add(15 * time.Second), 1}, // same interval
		{clock.Add(35 * time.Second), 0}, // the next one
	} {
		m := newTestLogminer(t, Config{})
		m.now = func() time.Time { return c.restoredAt }
		if err := m.decodeState(state); err != nil {
			t.Fatal(err)
		}
		if tpl, ok := m.miner.Lookup(id); !ok || tpl.Count != 13 {
			t.Fatalf("restored at %v: template %v %v", c.restoredAt, tpl, ok)
		}
		s := m.counts.byID[id]["api"]
		if s == nil || s.Count != c.count || s.ErrAvg != 12 {
			t.Fatalf("restored at %v: series %+v, want count %d and average 12", c.restoredAt, s, c.count)
		}
	}

	m := newTestLogminer(t, Config{})
	for _, bad := range [][]byte{[]byte("{"), []byte(`{"version":9}`), []byte(`{"version":1,"miner":"AAAA"}`)} {
		if err := m.decodeState(bad); !errors.Is(err, ErrInvalidState) {
			t.Errorf("state %q: got %v, want ErrInvalidState", bad, err)
		}
	}
}
