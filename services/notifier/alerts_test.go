package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// amtool's `alert query` lists the open incidents the notifier routes, as
// it lists an Alertmanager's alerts: by default the active ones, with -s
// and -i the silenced and the inhibited instead (-a: the active too), each with its state, the
// silence or incident that holds it back and its receivers; a matcher and
// --receiver select, and a resolved incident is not listed. A standby
// instance, which holds none of them in memory, lists them from the
// bucket the holder writes.
func TestAlertsWithAmtool(t *testing.T) {
	r := newJSRig(t, zerolog.ErrorLevel)
	bin := testenv.Binary(t, "amtool")
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte(`route:
  receiver: ops
  group_wait: 0s
  group_by: [team]
  routes:
  - matchers: [team="dba"]
    receiver: dba
receivers:
- name: ops
  webhook_configs: [{url: `+hook.URL+`}]
- name: dba
  webhook_configs: [{url: `+hook.URL+`}]
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity="warning"]
  equal: [team]
`), 0o600)
	home := t.TempDir()
	os.WriteFile(filepath.Join(home, "token"), []byte(silencesToken), 0o600)
	os.WriteFile(filepath.Join(home, "http.yml"), []byte("authorization:\n  credentials_file: token\n"), 0o600)
	cfg := Config{Routes: routes, Lease: bus.LeaseConfig{TTL: 3 * time.Second}}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	cfg.API = httpapi.Config{Listen: "127.0.0.1:0", Token: silencesToken}
	holder, stopHolder := r.start(cfg)
	defer stopHolder()
	for deadline := time.Now().Add(20 * time.Second); !holder.lease.Valid(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no lease in 20s")
		}
	}
	standby, stopStandby := r.start(cfg)
	defer stopStandby()

	now := time.Now().UTC()
	for _, e := range []*event.Envelope{
		incidentAt(t, "db-crit", "payments-db", "dba", event.SeverityCritical, event.IncidentOpened, now.Add(-time.Hour), now),
		incidentAt(t, "db-warn", "payments-db", "dba", event.SeverityWarning, event.IncidentOpened, now, now),
		incidentAt(t, "web-warn", "web", "web", event.SeverityWarning, event.IncidentOpened, now, now),
		incidentAt(t, "gone", "cart", "web", event.SeverityCritical, event.IncidentOpened, now, now),
		incidentAt(t, "gone", "cart", "web", event.SeverityCritical, event.IncidentResolved, now, now.Add(time.Second)),
	} {
		data, _ := e.MarshalJSON()
		if _, err := r.js.Publish(context.Background(), e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
	}
	tool := func(svc *Service) amtool {
		return amtool{t: t, bin: bin, home: home, url: svc.Addr().String(), httpConfig: "http.yml"}
	}
	am := tool(holder)
	am.must("silence", "add", "service=web", "--comment=deploy", "--author=ops", "--duration=1h")

	type listed struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			State       string   `json:"state"`
			SilencedBy  []string `json:"silencedBy"`
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
		Annotations map[string]string       `json:"annotations"`
		Receivers   []struct{ Name string } `json:"receivers"`
		StartsAt    time.Time               `json:"startsAt"`
		Fingerprint string                  `json:"fingerprint"`
	}
	query := func(a amtool, args ...string) map[string]listed {
		t.Helper()
		var got []listed
		out := a.must(append([]string{"alert", "query", "-o", "json"}, args...)...)
		if err := json.Unmarshal([]byte(out), &got); err != nil {
			t.Fatalf("amtool alert query %v: %v: %s", args, err, out)
		}
		byID := map[string]listed{}
		for _, l := range got {
			byID[l.Labels["incident_id"]] = l
		}
		return byID
	}
	ids := func(m map[string]listed) []string {
		out := []string{}
		for id := range m {
			out = append(out, id)
		}
		slices.Sort(out)
		return out
	}
	var all map[string]listed
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if all = query(am, "-a", "-s", "-i"); len(all) == 3 {
			break
		}
		if time.Now().After(deadline) {
			req, _ := http.NewRequest(http.MethodGet, "http://"+holder.Addr().String()+"/api/v2/alerts", nil)
			req.Header.Set("Authorization", "Bearer "+silencesToken)
			resp, _ := http.DefaultClient.Do(req)
			b, _ := io.ReadAll(resp.Body)
			t.Fatalf("amtool lists %v, want the three open incidents; the API: %s", ids(all), b)
		}
	}
	if got := ids(query(am)); !slices.Equal(got, []string{"db-crit"}) {
		t.Errorf("amtool alert query lists %v, want the one neither silenced nor inhibited", got)
	}
	crit, warn, web := all["db-crit"], all["db-warn"], all["web-warn"]
	if crit.Status.State != "active" || crit.Annotations["summary"] != "down: payments-db" || !crit.StartsAt.Equal(now.Add(-time.Hour).Truncate(time.Millisecond)) ||
		len(crit.Receivers) != 1 || crit.Receivers[0].Name != "dba" {
		t.Errorf("db-crit listed %+v, want active, titled, opened an hour ago, routed to dba", crit)
	}
	if warn.Status.State != "suppressed" || !slices.Equal(warn.Status.InhibitedBy, []string{crit.Fingerprint}) {
		t.Errorf("db-warn listed %+v, want suppressed, inhibited by db-crit (%s)", warn, crit.Fingerprint)
	}
	if web.Status.State != "suppressed" || len(web.Status.SilencedBy) != 1 || len(web.Status.InhibitedBy) != 0 || web.Receivers[0].Name != "ops" {
		t.Errorf("web-warn listed %+v, want suppressed by the silence, routed to ops", web)
	}
	if got := ids(query(am, "-s", "service=web")); !slices.Equal(got, []string{"web-warn"}) {
		t.Errorf("amtool alert query -s service=web lists %v", got)
	}
	if got := ids(query(am, "-a", "-s", "-i", "--receiver=dba")); !slices.Equal(got, []string{"db-crit", "db-warn"}) {
		t.Errorf("amtool alert query --receiver=dba lists %v", got)
	}
	// Grouped as Alertmanager groups them: by route, then by its
	// group_by labels; the receiver selects groups by their route's.
	groupsOf := func(addr, query string) (got []string) {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/api/v2/alerts/groups"+query, nil)
		req.Header.Set("Authorization", "Bearer "+silencesToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var gs []struct {
			Labels   map[string]string `json:"labels"`
			Receiver struct{ Name string }
			Alerts   []listed `json:"alerts"`
		}
		if err := json.NewDecoder(resp.Body).Decode(&gs); err != nil {
			t.Fatal(err)
		}
		for _, g := range gs {
			var members []string
			for _, a := range g.Alerts {
				members = append(members, a.Labels["incident_id"])
			}
			slices.Sort(members)
			got = append(got, fmt.Sprintf("%s %v %v", g.Receiver.Name, g.Labels, members))
		}
		return got
	}
	groups := func(query string) []string { return groupsOf(holder.Addr().String(), query) }
	if got, want := groups(""), []string{"dba map[team:dba] [db-crit db-warn]", "ops map[team:web] [web-warn]"}; !slices.Equal(got, want) {
		t.Errorf("groups %q, want %q", got, want)
	}
	if got, want := groups("?receiver=dba&inhibited=false"), []string{"dba map[team:dba] [db-crit]"}; !slices.Equal(got, want) {
		t.Errorf("groups of dba, not inhibited: %q, want %q", got, want)
	}
	// The real Alertmanager, with the same routes and alerts of the same
	// labels, groups and orders them alike.
	real := testenv.Alertmanager(t, routes)
	var posted []map[string]any
	for _, a := range all {
		posted = append(posted, map[string]any{"labels": a.Labels, "startsAt": now.Format(time.RFC3339)})
	}
	body, _ := json.Marshal(posted)
	if resp, err := http.Post("http://"+real+"/api/v2/alerts", "application/json", bytes.NewReader(body)); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("posting to Alertmanager: %v %v", resp, err)
	}
	// Alertmanager takes the posted alerts in on its own time: until
	// all three are in its groups, or 20 s.
	var fromAM []string
	got := groups("")
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if fromAM = groupsOf(real, ""); slices.Equal(got, fromAM) || time.Now().After(deadline) {
			break
		}
	}
	if !slices.Equal(got, fromAM) {
		t.Errorf("groups %q, Alertmanager's %q", got, fromAM)
	}
	// The standby lists what the holder wrote to the bucket.
	var fromStandby map[string]listed
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if fromStandby = query(tool(standby), "-a", "-s", "-i"); len(fromStandby) == 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the standby lists %v, want the three open incidents", ids(fromStandby))
		}
	}
	if s := fromStandby["db-warn"]; s.Status.State != "suppressed" || s.Annotations["summary"] != "down: payments-db" {
		t.Errorf("the standby lists db-warn as %+v", s)
	}
	// A POST is Prometheus's, meant for the gateway.
	req, _ := http.NewRequest(http.MethodPost, "http://"+holder.Addr().String()+"/api/v2/alerts", strings.NewReader("[]"))
	req.Header.Set("Authorization", "Bearer "+silencesToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /api/v2/alerts to the notifier: %s, want 405 naming the gateway", resp.Status)
	}
	// A filter whose regular expression compiles past a silence's bound
	// is refused before it is compiled.
	if out, err := am.run("alert", "query", `service=~"`+strings.Repeat(`\pL{1000}`, 17)+`"`); err == nil {
		t.Errorf("a huge filter was answered: %s", out)
	}
}

// A standby lists what the holder would: not an entry of an incident of
// which no notifier took an event for max_age. The holder forgot it
// (forgetOpen) and writes it no more, but its last refresh, written just
// before, stays in the bucket until the bucket's TTL (max_age again).
func TestStandbyDoesNotListAnIncidentForgottenForItsAge(t *testing.T) {
	store := &memOpen{kept: map[string]openIncident{}}
	proc, err := NewProcessor(Config{Routes: inhibitRoutes(t, "http://127.0.0.1:1")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	proc.WithOpenStore(store)
	now := time.Now()
	proc.now = func() time.Time { return now }
	maxAge := proc.cfg.State.WithDefaults().MaxAge
	labels := func(id string) map[string]string {
		return map[string]string{"incident_id": id, "severity": "critical", "team": "dba"}
	}
	store.kept["quiet"] = openIncident{ID: "quiet", Labels: labels("quiet"), Revision: 1, At: now.Add(-maxAge - time.Hour), Seen: now.Add(-maxAge - time.Minute)}
	store.kept["recent"] = openIncident{ID: "recent", Labels: labels("recent"), Revision: 1, At: now.Add(-time.Hour), Seen: now.Add(-time.Hour)}
	store.kept["older-build"] = openIncident{ID: "older-build", Labels: labels("older-build"), Revision: 1, At: now.Add(-maxAge - time.Hour)} // no Seen
	listed := func() []string {
		t.Helper()
		alerts, err := proc.Alerts(context.Background(), now)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, a := range alerts {
			ids = append(ids, a.Labels["incident_id"])
		}
		slices.Sort(ids)
		return ids
	}
	standby := listed()
	if err := proc.restoreOpen(context.Background()); err != nil {
		t.Fatal(err)
	}
	holder := listed()
	if want := []string{"older-build", "recent"}; !slices.Equal(holder, want) || !slices.Equal(standby, holder) {
		t.Errorf("the standby lists %v, the holder %v; want both %v", standby, holder, want)
	}
}

// Groups are ordered as Alertmanager orders them (dispatch.AlertGroups):
// a group of fewer labels first, then label by label in name order (the
// one without the label first), then by receiver, and a group's alerts by
// job, instance, then their labels alike; not by the labels
// written out in one string, which puts {env="a", team="y"} before
// {team="x"}, {team="x"} before {zone="q"}, and a value before its
// prefix followed by a character below '"'.
func TestGroupsAreOrderedAsAlertmanagerOrdersThem(t *testing.T) {
	hook := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer hook.Close()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte(`route:
  receiver: ops
  group_by: [team]
  routes:
  - matchers: [team="y"]
    receiver: web
    group_by: [env, team]
  - matchers: [team="z"]
    receiver: ops
    group_by: [zone]
receivers:
- name: ops
  webhook_configs: [{url: `+hook.URL+`}]
- name: web
  webhook_configs: [{url: `+hook.URL+`}]
`), 0o600)
	store := &memOpen{kept: map[string]openIncident{}}
	proc, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	proc.WithOpenStore(store)
	now := time.Now().UTC().Truncate(time.Second)
	var posted []map[string]any
	for i, l := range []map[string]string{
		{"team": "x", "env": "a"},
		{"team": "y", "env": "a"},
		{"team": "x!", "env": "a"},
		{"team": "z", "zone": "q"},
		{"team": "x", "env": "a", "instance": "d"},
		{"team": "x", "env": "a", "instance": "c"},
		{"team": "x", "env": "a", "instance": "b"},
	} {
		id := fmt.Sprintf("inc-%d", i)
		l["alertname"], l["incident_id"] = "down", id
		store.kept[id] = openIncident{ID: id, Labels: l, Revision: 1, At: now, Seen: now}
		posted = append(posted, map[string]any{"labels": l, "startsAt": now.Format(time.RFC3339)})
	}
	alerts, err := proc.Alerts(context.Background(), now)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, g := range groupAlerts(alerts) {
		var members []string
		for _, a := range g.Alerts {
			members = append(members, a.Labels["incident_id"])
		}
		got = append(got, fmt.Sprintf("%s %v %v", g.Receiver.Name, g.Labels, members))
	}

	real := testenv.Alertmanager(t, routes)
	body, _ := json.Marshal(posted)
	if resp, err := http.Post("http://"+real+"/api/v2/alerts", "application/json", bytes.NewReader(body)); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("posting to Alertmanager: %v %v", resp, err)
	}
	// Alertmanager takes the posted alerts in on its own time: until its
	// groups hold them all, or 20 s.
	var want []string
	for deadline := time.Now().Add(20 * time.Second); !slices.Equal(got, want); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			break
		}
		resp, err := http.Get("http://" + real + "/api/v2/alerts/groups")
		if err != nil {
			t.Fatal(err)
		}
		var gs []struct {
			Labels   map[string]string `json:"labels"`
			Receiver struct{ Name string }
			Alerts   []struct {
				Labels map[string]string `json:"labels"`
			} `json:"alerts"`
		}
		err = json.NewDecoder(resp.Body).Decode(&gs)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		want = want[:0]
		for _, g := range gs {
			var members []string
			for _, a := range g.Alerts {
				members = append(members, a.Labels["incident_id"])
			}
			want = append(want, fmt.Sprintf("%s %v %v", g.Receiver.Name, g.Labels, members))
		}
	}
	if !slices.Equal(got, want) {
		t.Errorf("groups %q, Alertmanager's %q", got, want)
	}
}

// Listing the open incidents costs about what they take, not their
// number squared: every incident's inhibition was looked up in a copy of
// every source of every rule, and 20,000 open critical incidents (a
// storm, while dashboards poll the list every minute) made one GET
// /api/v2/alerts allocate 9.4 GB in 8 s of CPU.
func TestAlertsOfManyOpenIncidentsCostLinearly(t *testing.T) {
	store := &memOpen{kept: map[string]openIncident{}}
	proc, err := NewProcessor(Config{Routes: inhibitRoutes(t, "http://127.0.0.1:1")}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	proc.WithOpenStore(store)
	now := time.Now()
	const n = 5_000
	for i := range n {
		id := fmt.Sprintf("inc-%d", i)
		severity := "critical"
		if i%2 == 1 {
			severity = "warning"
		}
		// teams 0 to 99: the criticals are of teams 0 to 49, so half the
		// warnings have a critical incident of their team
		team := (i / 2) % 100
		if severity == "critical" {
			team %= 50
		}
		store.kept[id] = openIncident{ID: id, Labels: map[string]string{"incident_id": id, "severity": severity, "team": fmt.Sprint(team)}, Revision: 1, At: now, Seen: now}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	alerts, err := proc.Alerts(context.Background(), now)
	runtime.ReadMemStats(&after)
	if err != nil || len(alerts) != n {
		t.Fatalf("%d alerts listed, %v", len(alerts), err)
	}
	inhibited := 0
	for _, a := range alerts {
		if len(a.Status.InhibitedBy) > 0 {
			inhibited++
			if a.Labels["severity"] != "warning" {
				t.Fatalf("%v listed inhibited", a.Labels)
			}
		}
	}
	if inhibited != n/4 {
		t.Errorf("%d listed inhibited, want %d", inhibited, n/4)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
		t.Errorf("listing %d open incidents allocated %d MiB, want at most 64", n, got>>20)
	}
}
