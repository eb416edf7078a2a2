package aiops

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
)

// The demo's story, on the example catalog (pipelines/catalog.yaml):
// payments deploys v2.14.0; its latency climbs and it logs a burst of
// card-authorization timeouts; checkout and web, which depend on it, slow
// down and alert with it; meanwhile, elsewhere in the graph, the search
// index runs short of heap and search slows. Payments rolls back, the
// alerts resolve, and a later, harmless config change to cart moves event
// time on past the correlator's quiet period. Two incidents are expected.

// demoSeries are the latency series of the demo, with their normal level
// (p99 ms) and the level during the fault (0: no fault).
var demoSeries = []struct {
	service       string
	normal, fault float64
}{
	{"web", 180, 420},
	{"checkout", 140, 610},
	{"payments", 95, 900},
	{"search", 60, 0},
	{"search-index", 25, 0},
}

// demoMetric is the name of the latency series.
const demoMetric = "http_request_duration_p99_ms"

// demoPhase is one step of the story: what is sent to the gateway, and
// what it should make the pipeline do.
type demoPhase struct {
	Title string
	// Events are NDJSON envelopes for /v1/events, Changes JSON objects for
	// /v1/changes, Alerts Alertmanager webhooks for /v1/alertmanager.
	Events  []map[string]any
	Changes []map[string]any
	Alerts  []webhook.AlertmanagerPayload
}

// demoExpected is an incident the demo must produce and deliver.
type demoExpected struct {
	Root     string   // the first root-cause candidate
	Services []string // at least these services are members
	Team     string
	Owner    string
	Change   string // a linked change's version ("" for none)
}

var demoExpectations = []demoExpected{
	{Root: "payments", Services: []string{"payments", "checkout", "web"}, Team: "payments", Owner: "cy", Change: "v2.14.0"},
	{Root: "search-index", Services: []string{"search-index", "search"}, Team: "discovery", Owner: "gi"},
}

// demoScenario is the story anchored at now: history before it, the fault
// up to it, the storm at it, and the recovery in the ten minutes after it
// (event time, so the demo need not wait for them: the gateway accepts
// events up to an hour ahead). The same now and seed give the same events.
type demoScenario struct {
	Now    time.Time
	Phases []demoPhase
}

func newDemoScenario(now time.Time, seed uint64) demoScenario {
	now = now.UTC().Truncate(time.Second)
	minute := now.Truncate(time.Minute)
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	noise := func(level float64) float64 {
		// ±4% around the level, rounded to 0.1 ms as a histogram quantile
		// would be.
		return math.Round(level*(1+0.04*(2*r.Float64()-1))*10) / 10
	}
	sample := func(service string, t time.Time, v float64) map[string]any {
		return map[string]any{
			"kind": "metric", "service": service, "time": t.Format(time.RFC3339),
			"labels": map[string]string{"__name__": demoMetric, "service": service, "cluster": "prod-eu1"},
			"body":   map[string]any{"name": demoMetric, "value": v, "type": "gauge", "unit": "ms"},
		}
	}
	logLine := func(t time.Time, severity, msg string) map[string]any {
		return map[string]any{
			"kind": "log", "service": "payments", "time": t.Format(time.RFC3339Nano), "severity": severity,
			"resource": map[string]string{"k8s.pod.name": "payments-7d9f8-x2k4q"},
			"body":     map[string]any{"message": msg},
		}
	}
	faultStart := minute.Add(-4 * time.Minute)

	// 1. Two hours of normal latency, and payments' usual logs.
	var history []map[string]any
	for t := minute.Add(-120 * time.Minute); t.Before(minute.Add(-5 * time.Minute)); t = t.Add(time.Minute) {
		for _, s := range demoSeries {
			history = append(history, sample(s.service, t, noise(s.normal)))
		}
	}
	for t := minute.Add(-30 * time.Minute); t.Before(faultStart); t = t.Add(30 * time.Second) {
		history = append(history, logLine(t, "info", fmt.Sprintf("charge %d authorized in %d ms", 40000+r.IntN(50000), 60+r.IntN(60))))
	}

	// 2. The deploy.
	deploy := []map[string]any{{
		"service": "payments", "type": "deploy", "version": "v2.14.0", "author": "cy", "commit": "3f9c2ab",
		"description": "payments: new card-authorization client", "time": minute.Add(-5 * time.Minute).Format(time.RFC3339),
		"labels": map[string]string{"env": "prod", "cluster": "prod-eu1"},
	}}

	// 3. Latency climbs on payments, then on what depends on it; payments
	// logs a burst of timeouts.
	var fault []map[string]any
	for t := minute.Add(-5 * time.Minute); !t.After(minute); t = t.Add(time.Minute) {
		for _, s := range demoSeries {
			v := noise(s.normal)
			lag := map[string]time.Duration{"payments": 0, "checkout": time.Minute, "web": 2 * time.Minute}[s.service]
			if s.fault > 0 && !t.Before(faultStart.Add(lag)) {
				v = noise(s.fault)
			}
			fault = append(fault, sample(s.service, t, v))
		}
	}
	for i := 0; i < 60; i++ {
		t := faultStart.Add(time.Duration(i) * 4 * time.Second)
		fault = append(fault, logLine(t, "error", fmt.Sprintf("card authorization for order %d failed: upstream timeout after 3000 ms", 88000+r.IntN(9999))))
	}

	// 4. The alert storm, as Alertmanager sends it: one webhook per team's
	// route.
	alert := func(name, service, severity, team, summary string, start time.Time) webhook.AlertmanagerAlert {
		labels := map[string]string{"alertname": name, "service": service, "severity": severity, "team": team,
			"namespace": "shop", "cluster": "prod-eu1"}
		return webhook.AlertmanagerAlert{Status: "firing", Labels: labels, Annotations: map[string]string{"summary": summary},
			StartsAt: start, GeneratorURL: "http://prometheus.example/graph", Fingerprint: event.AlertmanagerFingerprint(labels)}
	}
	payments := []webhook.AlertmanagerAlert{
		alert("PaymentsLatencyHigh", "payments", "critical", "payments", "p99 latency over 500 ms", now.Add(-90*time.Second)),
		alert("CheckoutErrorRateHigh", "checkout", "critical", "payments", "5xx over 5% of checkouts", now.Add(-60*time.Second)),
		alert("HTTP5xxRateHigh", "web", "warning", "storefront", "5xx over 2% of page views", now.Add(-30*time.Second)),
	}
	discovery := []webhook.AlertmanagerAlert{
		alert("ElasticsearchHeapHigh", "search-index", "warning", "discovery", "JVM heap over 90%", now.Add(-80*time.Second)),
		alert("SearchLatencyHigh", "search", "warning", "discovery", "p99 search latency over 800 ms", now.Add(-40*time.Second)),
	}
	payload := func(receiver string, alerts []webhook.AlertmanagerAlert) webhook.AlertmanagerPayload {
		status := "firing"
		if alerts[0].Status == "resolved" {
			status = "resolved"
		}
		return webhook.AlertmanagerPayload{Version: "4", GroupKey: `{}:{team="` + receiver + `"}`, Status: status, Receiver: receiver + "-oncall",
			GroupLabels: map[string]string{}, CommonLabels: map[string]string{}, CommonAnnotations: map[string]string{},
			ExternalURL: "http://alertmanager.example", Alerts: alerts}
	}

	// 5. Recovery: the rollback, latency back to normal, the alerts
	// resolved, and later a harmless change elsewhere.
	rollback := []map[string]any{{
		"service": "payments", "type": "deploy", "version": "v2.13.2", "author": "cy", "commit": "b71e0d4",
		"description": "rollback of v2.14.0", "time": now.Add(time.Minute).Format(time.RFC3339),
		"labels": map[string]string{"env": "prod", "cluster": "prod-eu1"},
	}}
	var recovery []map[string]any
	for t := minute.Add(time.Minute); !t.After(minute.Add(10 * time.Minute)); t = t.Add(time.Minute) {
		for _, s := range demoSeries {
			v := noise(s.normal)
			if s.fault > 0 && t.Before(minute.Add(2*time.Minute)) {
				v = noise((s.normal + s.fault) / 2)
			}
			recovery = append(recovery, sample(s.service, t, v))
		}
	}
	resolve := func(as []webhook.AlertmanagerAlert, end time.Time) []webhook.AlertmanagerAlert {
		out := make([]webhook.AlertmanagerAlert, len(as))
		for i, a := range as {
			a.Status, a.EndsAt = "resolved", end.Add(time.Duration(i)*20*time.Second)
			out[i] = a
		}
		return out
	}
	later := []map[string]any{{
		"service": "cart", "type": "config", "author": "ed", "description": "cart: raise the session cache TTL to 30 min",
		"time": now.Add(10 * time.Minute).Format(time.RFC3339),
	}}

	return demoScenario{Now: now, Phases: []demoPhase{
		{Title: "two hours of normal traffic (latency of 5 services, payments' logs)", Events: history},
		{Title: "payments deploys v2.14.0", Changes: deploy},
		{Title: "payments' latency climbs, then checkout's and web's; payments logs a burst of timeouts", Events: fault},
		{Title: "the alert storm: 5 alerts from 2 Alertmanager routes", Alerts: []webhook.AlertmanagerPayload{payload("payments", payments), payload("discovery", discovery)}},
		{Title: "recovery: payments rolls back, latency returns, the alerts resolve",
			Changes: rollback, Events: recovery,
			Alerts: []webhook.AlertmanagerPayload{payload("payments", resolve(payments, now.Add(2*time.Minute))), payload("discovery", resolve(discovery, now.Add(3*time.Minute)))}},
		// Sent only once the recovery is in: event time moves on with the
		// signals the correlator sees, and this one, ten minutes on, ends
		// the quiet period of both incidents.
		{Title: "ten minutes later: a harmless config change to cart", Changes: later},
	}}
}

// ndjson encodes envelopes one per line.
func ndjson(events []map[string]any) ([]byte, error) {
	var b strings.Builder
	for _, e := range events {
		line, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		b.Write(line)
		b.WriteByte('\n')
	}
	return []byte(b.String()), nil
}

// span is the first and last event time of a scenario, for queries and the
// timeline's axis.
func (s demoScenario) span() (first, last time.Time) {
	var times []time.Time
	add := func(v any) {
		if str, ok := v.(string); ok {
			if t, err := time.Parse(time.RFC3339Nano, str); err == nil {
				times = append(times, t)
			}
		}
	}
	for _, p := range s.Phases {
		for _, e := range p.Events {
			add(e["time"])
		}
		for _, c := range p.Changes {
			add(c["time"])
		}
		for _, w := range p.Alerts {
			for _, a := range w.Alerts {
				times = append(times, a.StartsAt)
				if !a.EndsAt.IsZero() {
					times = append(times, a.EndsAt)
				}
			}
		}
	}
	sort.Slice(times, func(i, j int) bool { return times[i].Before(times[j]) })
	if len(times) == 0 {
		return s.Now, s.Now
	}
	return times[0], times[len(times)-1]
}
