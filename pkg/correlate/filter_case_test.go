package correlate

import (
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// The service filter matches whatever the case, uncatalogued services too
// (the catalog resolves its own names).
func TestServiceFilterMatchesWhateverTheCase(t *testing.T) {
	c, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	c.Observe(Signal{Kind: SignalAlert, EventID: "e1", Fingerprint: "fp1", Service: "web", Name: "Down", Severity: event.SeverityCritical, Time: at})
	c.Advance(at.Add(time.Minute))
	if got, _ := c.Listed(IncidentFilter{Service: "web"}, nil, 10); len(got) != 1 {
		t.Fatalf("service=web lists %d", len(got))
	}
	if got, _ := c.Listed(IncidentFilter{Service: c.ServiceOf(Signal{Service: "WEB"})}, nil, 10); len(got) != 1 {
		t.Fatalf("service=WEB lists %d incidents, want 1 (doc: service matches whatever the case)", len(got))
	}
}
