package notifier

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// otelIncident is the opened incident event of one anomaly of an
// OpenTelemetry metric, with the labels its sample had (the OTLP decoder
// keeps the scope as otel.scope.name and the point's attributes as they
// are named; the detector's anomaly keeps the sample's labels).
func otelIncident(t *testing.T, scope, route string) *event.Envelope {
	t.Helper()
	c, err := correlate.New(correlate.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	ups := c.Observe(correlate.Signal{Kind: correlate.SignalAnomaly, Fingerprint: "fp-" + scope + route, Service: "shop", Name: "http.server.request.duration",
		Severity: event.SeverityWarning, Time: t0, EventID: event.DerivedID(t0, scope, route),
		Labels: map[string]string{"__name__": "http.server.request.duration", "otel.scope.name": scope, "http.route": route}})
	e, err := correlate.Envelope(ups[0], t0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// startWith runs a notifier on the routes in yml, written to a file; the
// configuration check at start (Config.Validate) must take them.
func startWith(t *testing.T, yml string) *stagetest.Harness {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Routes = routes
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	proc, err := NewProcessor(cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	return stagetest.Start(t, proc, stage.Config{Name: "notifier", TickEvery: time.Second})
}

// alertLabels is the labels of the alerts of each Alertmanager payload r
// got.
func alertLabels(t *testing.T, r *receiver) []map[string]string {
	t.Helper()
	_, bodies := r.requests()
	var out []map[string]string
	for _, b := range bodies {
		var am struct {
			Alerts []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		if err := json.Unmarshal(b, &am); err != nil {
			t.Fatalf("payload %s: %v", b, err)
		}
		for _, a := range am.Alerts {
			out = append(out, a.Labels)
		}
	}
	return out
}

// A route matches an incident by a label whose name is not a classic
// Prometheus name, written as Alertmanager 0.27 and later write it: the
// name double-quoted ("otel.scope.name"="checkout"), or unquoted when it
// has no reserved character (http.route=~...).
func TestRoutesOnUTF8LabelNames(t *testing.T) {
	checkout, cart, rest := newReceiver(t), newReceiver(t), newReceiver(t)
	h := startWith(t, `
route:
  receiver: everyone
  group_wait: 0s
  routes:
  - matchers: ['{"otel.scope.name"="checkout"}']
    receiver: checkout
  - matchers: ['http.route=~"/cart.*"']
    receiver: cart
receivers:
- name: everyone
  webhook_configs: [{url: `+rest.srv.URL+`}]
- name: checkout
  webhook_configs: [{url: `+checkout.srv.URL+`}]
- name: cart
  webhook_configs: [{url: `+cart.srv.URL+`}]
`)
	for _, e := range []*event.Envelope{otelIncident(t, "checkout", "/pay"), otelIncident(t, "cartlib", "/cart/items"), otelIncident(t, "search", "/find")} {
		if r := h.Feed(e)[0]; r.Outcome != stagetest.Acked {
			t.Fatalf("%v %v", r.Outcome, r.Err)
		}
	}
	for _, c := range []struct {
		name  string
		r     *receiver
		route string
	}{{"checkout", checkout, "/pay"}, {"cart", cart, "/cart/items"}, {"everyone", rest, "/find"}} {
		got := alertLabels(t, c.r)
		if len(got) != 1 || got[0]["http.route"] != c.route {
			t.Errorf("receiver %s got alerts %v, want the one of http.route %s", c.name, got, c.route)
		}
	}
}

// group_by names a label whose name is not a classic Prometheus name as it
// is (group_by: [otel.scope.name]), as Alertmanager 0.27 and later take
// it: the notifier starts with it, and the route's incidents go out with
// that label. (An incident is one group, so group_by merges nothing.)
func TestGroupByUTF8LabelName(t *testing.T) {
	scoped := newReceiver(t)
	h := startWith(t, `
route:
  receiver: nobody
  group_wait: 0s
  routes:
  - matchers: ['"otel.scope.name"=~".+"']
    group_by: [otel.scope.name, http.route]
    receiver: scoped
receivers:
- name: nobody
- name: scoped
  webhook_configs: [{url: `+scoped.srv.URL+`}]
`)
	if r := h.Feed(otelIncident(t, "checkout", "/pay"))[0]; r.Outcome != stagetest.Acked {
		t.Fatalf("%v %v", r.Outcome, r.Err)
	}
	if got := alertLabels(t, scoped); len(got) != 1 || got[0]["otel.scope.name"] != "checkout" || got[0]["http.route"] != "/pay" {
		t.Fatalf("receiver got alerts %v, want the incident's, with its otel.scope.name and http.route", got)
	}
}
