package notifier

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
)

// merge is the incident events of a failure of payments-db whose
// dependents web and api alerted first, each opening an incident: when
// payments-db's alert becomes the root of one, the other is merged into
// it. merged is that other's last event (resolved, merged_into into).
func merge(t *testing.T) (events []*event.Envelope, merged *event.Envelope, into string) {
	t.Helper()
	cat, err := correlate.ParseCatalog([]byte("services:\n  web: {team: storefront, depends_on: [payments-db]}\n  api: {team: storefront, depends_on: [payments-db]}\n  payments-db: {team: dba}\n"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := correlate.New(correlate.Config{}, cat)
	if err != nil {
		t.Fatal(err)
	}
	for i, svc := range []string{"web", "api", "payments-db"} {
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		for _, u := range c.Observe(correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: "fp-" + svc, Service: svc, Name: "Down",
			Severity: event.SeverityCritical, Time: at, EventID: event.DerivedID(at, svc)}) {
			e, err := correlate.Envelope(u, u.Time)
			if err != nil {
				t.Fatal(err)
			}
			events = append(events, e)
			if u.State.MergedInto != "" {
				merged, into = e, u.State.MergedInto
			}
		}
	}
	if merged == nil {
		t.Fatal("the correlator merged nothing")
	}
	return events, merged, into
}

// A merged incident's resolution reaches every receiver saying where its
// failure went: merged_into in the aiops payload, the
// incident_merged_into annotation in the Alertmanager one, ServiceNow's
// work note and default close notes; the other incidents' payloads have
// none of it.
func TestMergedIncidentNotified(t *testing.T) {
	hooks, am := newReceiver(t), newReceiver(t)
	sn := &fakeServiceNow{records: map[string]map[string]any{}}
	api := newFakeAPI(t, sn.handle)
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "secret"), []byte(secret+"\n"), 0o600)
	h, _ := start(t, dir, `
route: {receiver: all, group_wait: 0s}
receivers:
- name: all
  aiops_webhook_configs: [{url: `+hooks.srv.URL+`, secret_file: secret}]
  webhook_configs: [{url: `+am.srv.URL+`}]
  servicenow_configs: [{api_url: `+api.srv.URL+`}]
`)
	events, merged, into := merge(t)
	for _, e := range events {
		feedAcked(t, h, e)
	}
	var mergedID string
	if err := merged.DecodeBody(&struct {
		ID *string `json:"incident_id"`
	}{&mergedID}); err != nil {
		t.Fatal(err)
	}

	_, bodies := hooks.requests()
	if len(bodies) != len(events) {
		t.Fatalf("%d aiops payloads for %d incident events", len(bodies), len(events))
	}
	for i, b := range bodies {
		d := jsonOf(t, b)["data"].(map[string]any)
		want := any(nil)
		if d["id"] == mergedID && d["transition"] == "resolved" {
			want = into
		}
		if d["merged_into"] != want {
			t.Errorf("aiops payload %d (%v %v): merged_into %v, want %v", i, d["id"], d["transition"], d["merged_into"], want)
		}
	}
	_, bodies = am.requests()
	last := jsonOf(t, bodies[len(bodies)-1])
	if last["status"] != "resolved" || last["commonAnnotations"].(map[string]any)["incident_merged_into"] != into {
		t.Fatalf("alertmanager payload of the merge: %s", bodies[len(bodies)-1])
	}

	var rec map[string]any
	for _, r := range sn.records {
		if r["correlation_id"] == mergedID {
			rec = r
		}
	}
	if len(sn.records) != 2 || rec == nil {
		t.Fatalf("servicenow records %v, want two, one of %s", sn.records, mergedID)
	}
	at := merged.Time.UTC().Format("2006-01-02 15:04:05 UTC")
	if rec["state"] != "6" || rec["close_notes"] != "Merged in aiops into incident "+into+" at "+at+": its failure goes on there." ||
		!strings.Contains(rec["work_notes"].(string), "Merged into incident "+into) {
		t.Fatalf("servicenow record of the merged incident: %v", rec)
	}
}
