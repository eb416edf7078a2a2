package logminer

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// FuzzProcess: whatever arrives on events.log.*, the logminer on its runner
// either dead-letters it (a permanent error, never a retry loop) or
// publishes a templated log that event.Parse accepts, whose template id is
// the id of its template and whose message is the input's.
func FuzzProcess(f *testing.F) {
	at := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	for _, msg := range []string{"request 42 served in 10ms", "081109 203615 ERROR dfs.DataNode: user alice", " ", "a\x00b", strings.Repeat("x ", 1000)} {
		for _, svc := range []string{"api", "hdfs"} {
			e, err := event.New(event.KindLog, svc, at, event.LogBody{Message: msg})
			if err != nil {
				f.Fatal(err)
			}
			data, err := json.Marshal(e)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	f.Add([]byte(`{"kind":"log"}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		l := newTestLogminer(t, Config{Formats: map[string]string{"hdfs": "<Date> <Time> <Level> <Component>: <Content>"}})
		h := startHarness(t, l)
		switch r := h.FeedRaw(data); r.Outcome {
		case stagetest.DeadLettered:
			return
		case stagetest.Naked:
			t.Fatalf("transient error for bad input: %v", r.Err)
		}
		raw, err := event.Parse(data)
		if err != nil {
			t.Fatalf("processed input that event.Parse refuses: %v", err)
		}
		msgs := h.Pub.Messages()
		if len(msgs) == 0 {
			t.Fatal("acked without publishing the templated log")
		}
		out := decode(t, msgs[0]) // event.Parse: validated
		var in, b event.LogBody
		if err := raw.DecodeBody(&in); err != nil {
			t.Fatal(err)
		}
		if err := out.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		if b.Message != in.Message || b.TemplateID != logmine.IDOf(b.Template).String() || msgs[0].Subject != event.TemplatedLogSubject(raw.Service) || msgs[0].ID != out.ID {
			t.Fatalf("templated %+v from %+v on %s", b, in, msgs[0].Subject)
		}
	})
}
