package decode

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

const deployJSON = `{"service":"checkout","version":"v2.14.0","author":"ana@example.com","commit":"9fceb02","url":"https://ci/builds/811","description":"enable new payment provider","time":"2026-11-21T11:30:00Z","labels":{"env":"prod"}}`

func TestChanges(t *testing.T) {
	b, err := Changes([]byte(deployJSON), opts())
	if err != nil {
		t.Fatal(err)
	}
	checkValid(t, b, SourceChanges)
	if len(b.Events) != 1 {
		t.Fatalf("got %d events", len(b.Events))
	}
	e := b.Events[0]
	eq(t, "kind", e.Kind, event.KindChange)
	eq(t, "service", e.Service, "checkout")
	eq(t, "time", e.Time, time.Date(2026, 11, 21, 11, 30, 0, 0, time.UTC))
	eq(t, "labels", e.Labels, map[string]string{"env": "prod"})
	eq(t, "body", body[event.ChangeBody](t, e), event.ChangeBody{
		Type: "deploy", Version: "v2.14.0", Author: "ana@example.com", Commit: "9fceb02",
		URL: "https://ci/builds/811", Description: "enable new payment provider",
	})

	arr := `[` + deployJSON + `, {"id":"01JDCZ0000000000000000000B","service":"search","type":"feature_flag","description":"ranking-v2 on"}]`
	b, err = Changes([]byte(arr), opts())
	if err != nil {
		t.Fatal(err)
	}
	eq(t, "count", len(b.Events), 2)
	flag := b.Events[1]
	eq(t, "kept id", flag.ID, "01JDCZ0000000000000000000B")
	eq(t, "time defaults to receive", flag.Time, testNow)
	eq(t, "type", body[event.ChangeBody](t, flag).Type, "feature_flag")
	eq(t, "same content, same id", b.Events[0].ID, firstID(t, deployJSON))
}

func firstID(t *testing.T, in string) string {
	b, err := Changes([]byte(in), Options{Now: testNow.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	return b.Events[0].ID
}

// The words CI/CD and infrastructure tools use for a change are taken for
// the change types they mean.
func TestChangeTypeSynonyms(t *testing.T) {
	for word, want := range map[string]string{"deploy": "deploy", "Release": "deploy", "rollout": "deploy", "rollback": "deploy",
		"CONFIG": "config", "configuration": "config", "feature-flag": "feature_flag", "infra": "infrastructure", "scaling": "infrastructure", "other": "other"} {
		if got, ok := ChangeType(word); !ok || got != want {
			t.Errorf("%q: %q %v, want %q", word, got, ok, want)
		}
	}
	if got, ok := ChangeType("yolo"); ok {
		t.Errorf("yolo taken for %q", got)
	}
	b, err := Changes([]byte(`{"service":"api","type":"Rollback","time":"2026-11-21T11:00:00Z"}`), opts())
	if err != nil {
		t.Fatal(err)
	}
	var body event.ChangeBody
	if err := b.Events[0].DecodeBody(&body); err != nil || body.Type != "deploy" {
		t.Fatalf("a rollback posted: %+v %v, want a deploy", body, err)
	}
}

func TestChangesErrors(t *testing.T) {
	cases := []struct {
		name, in string
		item     int
		field    string
		says     string
	}{
		{"empty", "  ", NoItem, "", "no changes"},
		{"empty array", "[]", NoItem, "", "no changes"},
		{"no service", `{"version":"1"}`, 0, "service", "is required"},
		{"bad type", `[{"service":"a"},{"service":"a","type":"yolo"}]`, 1, "type", "want one of"},
		{"misspelt field", `{"sevice":"a"}`, 0, "sevice", "not a known field"},
		{"bad time", `{"service":"a","time":"now"}`, 0, "time", "RFC 3339"},
		{"not an object", `[{"service":"a"}, 7]`, 1, "", "not a JSON object"},
		{"wrong type", `{"service":"a","version":2}`, 0, "version", "want string"},
		{"broken array", `[{"service":"a"}`, NoItem, "", "not valid JSON"},
		{"trailing data", `{"service":"a"} {"service":"b"}`, 0, "", "after the object"},
		// The stream keeps one event per id: a second is not "accepted".
		{"an id twice", `[{"id":"01JDD0000000000000000000AA","service":"api"},{"service":"b"},{"id":"01JDD0000000000000000000AA","service":"web"}]`, 2, "id", "is also item 0's"},
		{"the same change twice", `[{"service":"a","time":"2026-11-21T11:30:00Z"},{"service":"a","time":"2026-11-21T11:30:00Z"}]`, 1, "", "the same change as item 0"},
		// encoding/json kept the last of a key given twice, and rewrote
		// invalid UTF-8 to U+FFFD: stored, but not what was sent.
		{"a key twice", `{"service":"checkout","service":"payments"}`, 0, "service", "appears more than once"},
		{"a label twice", `[{"service":"a"},{"service":"b","labels":{"env":"prod","env":"dev"}}]`, 1, "labels.env", "appears more than once"},
		{"invalid UTF-8", "{\"service\":\"a\",\"description\":\"caf\xe9\"}", 0, "", "not valid UTF-8 (at byte 33)"},
		{"a lone surrogate", `{"service":"a","author":"\ud800"}`, 0, "author", "lone UTF-16 surrogate"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Changes([]byte(c.in), opts())
			p := hasProblem(t, err, c.item, c.field)
			if !strings.Contains(p.Problem, c.says) {
				t.Errorf("problem %q does not say %q", p.Problem, c.says)
			}
		})
	}
	o := opts()
	o.MaxEvents = 1
	if _, err := Changes([]byte(`[{"service":"a"},{"service":"b"}]`), o); !errors.Is(err, ErrTooManyEvents) {
		t.Fatalf("want ErrTooManyEvents, got %v", err)
	}
}

// A change without a time is timed at its receipt, so its derived id
// differs on every retry: an Idempotency-Key cannot make that retry safe.
// The gateway took the key and stored each retry as another change (a
// CI job retrying its POST under one key linked its deploy twice); it now
// refuses the change, naming the time, and takes one with a time or an id.
func TestChangeWithoutTimeUnderAnIdempotencyKeyIsRefused(t *testing.T) {
	o := opts()
	o.IdempotencyKey = "deploy-811"
	_, err := Changes([]byte(`[{"service":"a","time":"2026-11-21T11:30:00Z"},{"service":"a","version":"v2"}]`), o)
	p := hasProblem(t, err, 1, "time")
	if !strings.Contains(p.Problem, "Idempotency-Key") {
		t.Errorf("problem %q does not name the Idempotency-Key", p.Problem)
	}
	for _, in := range []string{`{"service":"a","time":"2026-11-21T11:30:00Z"}`, `{"id":"01JDCZ0000000000000000000B","service":"a"}`} {
		if _, err := Changes([]byte(in), o); err != nil {
			t.Errorf("%s under a key: %v", in, err)
		}
	}
}
