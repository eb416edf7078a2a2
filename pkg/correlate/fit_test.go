package correlate

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
)

// An alert storm over thousands of services with long names makes an
// incident whose services list alone passes the event body limit: its
// events list fewer services, its own first, and stay storable.
func TestStormIncidentOnThousandsOfServicesFits(t *testing.T) {
	c, err := New(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	pad := strings.Repeat("x", 240)
	var ups []Update
	for i := range 3000 {
		ups = append(ups, c.Observe(Signal{Kind: SignalAlert, EventID: fmt.Sprint("e", i), Fingerprint: fmt.Sprint("fp", i),
			Service: fmt.Sprintf("%s-%05d", pad, i), Name: "Down", Severity: event.SeverityCritical, Time: at.Add(time.Duration(i) * time.Millisecond)})...)
	}
	ups = append(ups, c.Advance(at.Add(time.Hour))...)
	most := 0
	for _, st := range c.Incidents() {
		most = max(most, len(st.Services))
	}
	if most*len(pad) < event.MaxBodyBytes {
		t.Fatalf("the largest incident has %d services: its list would fit anyway", most)
	}
	for _, u := range ups {
		e, err := Envelope(u, at)
		if err != nil {
			t.Fatalf("%s: %v", u.Transition, err)
		}
		var st State
		if err := e.DecodeBody(&st); err != nil {
			t.Fatal(err)
		}
		if len(st.Services) == 0 || st.Service != "" && st.Services[0] != st.Service {
			t.Fatalf("%s lists services %.60v…, want its own (%.30s…) first", u.Transition, st.Services, st.Service)
		}
	}
}
