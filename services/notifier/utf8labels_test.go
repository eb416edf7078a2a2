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
	c, err := correlate.New(correlate.Config{LoneAnomalies: correlate.Flag(true)}, nil) // opened by the anomaly alone
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

// An anomaly of an OpenTelemetry metric carries its resource (the
// detector keeps the sample's), and a route matches the incident by a
// resource attribute (deployment.environment) as by a label; a label of
// the same name wins. Alertmanager payloads carry the labels alone.
func TestRoutesOnResourceAttributes(t *testing.T) {
	prod, rest := newReceiver(t), newReceiver(t)
	h := startWith(t, `
route:
  receiver: everyone
  group_wait: 0s
  routes:
  - matchers: ['"deployment.environment"="prod"']
    receiver: prod
receivers:
- name: everyone
  webhook_configs: [{url: `+rest.srv.URL+`}]
- name: prod
  webhook_configs: [{url: `+prod.srv.URL+`}]
`)
	incident := func(env, labelEnv string) *event.Envelope {
		a, err := event.New(event.KindAnomaly, "shop", t0, event.AnomalyBody{Series: "s-" + env + labelEnv, Metric: "http.server.request.duration", Value: ptr(3.0), Expected: 1, Lower: 0, Upper: 2, Score: ptr(9.0), Detector: "robust_z"})
		if err != nil {
			t.Fatal(err)
		}
		a.Labels = map[string]string{"__name__": "http.server.request.duration", "http.route": "/pay/" + env + labelEnv}
		if labelEnv != "" {
			a.Labels["deployment.environment"] = labelEnv
		}
		a.Resource = map[string]string{"service.name": "shop", "deployment.environment": env}
		a.Fingerprint = event.Fingerprint(a.Kind, a.Service, a.Labels, a.Resource)
		s, ok, err := correlate.SignalOf(a)
		if err != nil || !ok {
			t.Fatalf("signal of %+v: %v %v", a, ok, err)
		}
		c, err := correlate.New(correlate.Config{LoneAnomalies: correlate.Flag(true)}, nil) // opened by the anomaly alone
		if err != nil {
			t.Fatal(err)
		}
		e, err := correlate.Envelope(c.Observe(s)[0], t0)
		if err != nil {
			t.Fatal(err)
		}
		return e
	}
	for _, e := range []*event.Envelope{incident("prod", ""), incident("staging", ""), incident("prod", "canary")} {
		if r := h.Feed(e)[0]; r.Outcome != stagetest.Acked {
			t.Fatalf("%v %v", r.Outcome, r.Err)
		}
	}
	if got := alertLabels(t, prod); len(got) != 1 || got[0]["http.route"] != "/pay/prod" || got[0]["deployment.environment"] != "" {
		t.Errorf("receiver prod got alerts %v, want the prod one, its resource not among its labels", got)
	}
	if got := alertLabels(t, rest); len(got) != 2 {
		t.Errorf("receiver everyone got alerts %v, want staging's and the one whose label says canary", got)
	}
}

func ptr[T any](v T) *T { return &v }
