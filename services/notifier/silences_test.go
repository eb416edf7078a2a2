package notifier

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/notify/silence"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(testenv.NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

const silencesToken = "silences-test-token-0123456789"

// startSilencesAPI serves a silence store on a fresh bucket.
func startSilencesAPI(t *testing.T, js jetstream.JetStream) (*silence.Store, string) {
	return startSilencesAPIWith(t, js, httpapi.Config{Listen: "127.0.0.1:0", Token: silencesToken})
}

// startSilencesAPIWith serves a silence store on a fresh bucket under cfg.
func startSilencesAPIWith(t *testing.T, js jetstream.JetStream, cfg httpapi.Config) (*silence.Store, string) {
	t.Helper()
	store, err := silence.Open(context.Background(), js, silence.Config{Bucket: "silences-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	api, err := NewSilencesAPI(store, nil, cfg, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return store, api.Addr().String()
}

// startAlertmanager runs the real Alertmanager with a configuration that
// sends nowhere, for its silences API.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "am.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: none\nreceivers:\n- name: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return testenv.Alertmanager(t, cfg)
}

// amtool runs the real amtool against the server at addr (with the
// bearer token when httpConfig is set) and returns its output.
type amtool struct {
	t          *testing.T
	bin, home  string
	url        string
	httpConfig string
}

func (a amtool) run(args ...string) (string, error) {
	a.t.Helper()
	full := append([]string{"--alertmanager.url=http://" + a.url}, args...)
	if a.httpConfig != "" {
		full = append(full, "--http.config.file="+a.httpConfig)
	}
	cmd := exec.Command(a.bin, full...)
	cmd.Env = append(os.Environ(), "HOME="+a.home)
	cmd.Dir = a.home // amtool 0.25 reads credentials_file relative to where it runs
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("amtool %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()+errOut.String()))
	}
	return strings.TrimSpace(out.String()), err
}

func (a amtool) must(args ...string) string {
	a.t.Helper()
	out, err := a.run(args...)
	if err != nil {
		a.t.Fatal(err)
	}
	return out
}

// TestSilencesWithAmtool runs one amtool session against aiops and against
// the real Alertmanager, and requires the same answers: the silences
// listed (matchers, author, comment, state, order), filters, update in
// place, expiry, and the errors for bad silences.
func TestSilencesWithAmtool(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and Alertmanager")
	}
	bin := testenv.Binary(t, "amtool")
	home := t.TempDir()
	_, aiopsAddr := startSilencesAPI(t, jetStream(t))
	// As the README shows: the token from a file named by its absolute
	// path (amtool reads a relative one from the folder above the
	// config's), the config in try/.
	httpConfig := filepath.Join(home, "try", "amtool-http.yml")
	os.MkdirAll(filepath.Join(home, "data"), 0o700)
	os.MkdirAll(filepath.Join(home, "try"), 0o700)
	if err := os.WriteFile(filepath.Join(home, "data", "api-token"), []byte(silencesToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(httpConfig, []byte("authorization:\n  credentials_file: "+filepath.Join(home, "data", "api-token")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tools := map[string]amtool{
		"aiops":        {t: t, bin: bin, home: home, url: aiopsAddr, httpConfig: "try/amtool-http.yml"}, // run in home, as the README does
		"alertmanager": {t: t, bin: bin, home: home, url: startAlertmanager(t)},
	}

	// Without the token aiops refuses.
	noToken := tools["aiops"]
	noToken.httpConfig = ""
	if out, err := noToken.run("silence", "query"); err == nil {
		t.Fatalf("amtool without the token was answered: %s", out)
	}

	start := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)
	end := time.Now().Add(3 * time.Hour).UTC().Format(time.RFC3339)
	session := func(a amtool) (answers []string) {
		add := func(args ...string) string {
			return a.must(append([]string{"silence", "add"}, args...)...)
		}
		db := add("-a", "ann", "-c", "db maintenance", "-d", "2h", "service=db", "env=~prod|stage")
		add("-a", "bob", "-c", "disk later", "--start", start, "--end", end, "Disk")
		web := add("-a", "cy", "-c", "web flapping", "-d", "30m", "service=web", "team!=sre")
		add("-a", "dee", "-c", "short", "-d", "10m", "alertname=~Latency.*")
		query := func(args ...string) string {
			var sils []struct {
				Matchers  []silence.Matcher `json:"matchers"`
				CreatedBy string            `json:"createdBy"`
				Comment   string            `json:"comment"`
				Status    struct{ State string }
			}
			out := a.must(append([]string{"silence", "query", "-o", "json"}, args...)...)
			if err := json.Unmarshal([]byte(out), &sils); err != nil {
				t.Fatalf("%s: %v: %s", args, err, out)
			}
			var b strings.Builder
			for _, s := range sils {
				fmt.Fprintf(&b, "%s/%s/%s/%v ", s.CreatedBy, s.Comment, s.Status.State, s.Matchers)
			}
			return b.String()
		}
		answers = append(answers,
			"all: "+query(),
			"service=db: "+query("service=db"),
			"alertname=Disk: "+query("alertname=Disk"),
			"team!=sre: "+query(`team!=sre`),
		)
		// Update in place (same id), then expire one.
		a.must("silence", "update", web, "-c", "web still flapping")
		answers = append(answers, fmt.Sprintf("update kept the id: %v", slices.Contains(strings.Fields(a.must("silence", "query", "-q")), web)))
		a.must("silence", "expire", db)
		answers = append(answers, "after expire: "+query(), "with expired: "+query("--expired"))
		if _, err := a.run("silence", "expire", db); err == nil {
			answers = append(answers, "second expire: accepted")
		} else {
			answers = append(answers, "second expire: refused")
		}
		_, err := a.run("silence", "add", "-a", "x", "-c", "all", "-d", "1h", "foo=~.*")
		answers = append(answers, fmt.Sprintf("silence of everything refused: %v", err != nil))
		_, err = a.run("silence", "expire", "6d7c6c4c-0000-4000-8000-000000000000")
		answers = append(answers, fmt.Sprintf("expire unknown refused: %v", err != nil))
		return answers
	}
	got, want := session(tools["aiops"]), session(tools["alertmanager"])
	if !slices.Equal(got, want) {
		t.Fatalf("aiops and Alertmanager answered amtool differently:\naiops:\n  %s\nAlertmanager:\n  %s",
			strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	t.Logf("the same answers:\n  %s", strings.Join(got, "\n  "))
}

// TestSilenceMutingAgainstAlertmanager posts the same generated silences
// to aiops and to the real Alertmanager, then generated alerts to
// Alertmanager, and requires Store.Mutes to name the same silences as the
// silencedBy that Alertmanager reports for every alert.
func TestSilenceMutingAgainstAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS and Alertmanager")
	}
	store, aiopsAddr := startSilencesAPI(t, jetStream(t))
	amAddr := startAlertmanager(t)
	rng := rand.New(rand.NewPCG(3, 5))
	names := []string{"alertname", "service", "env", "team"}
	values := []string{"db", "web", "prod", "dev", "", "Disk"}
	patterns := []string{"d.*", "web|db", "prod", ".+", "D.*k", "[a-z]+"}
	post := func(addr, token string, body []byte) string {
		req, _ := http.NewRequest("POST", "http://"+addr+"/api/v2/silences", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ SilenceID string }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return fmt.Sprintf("%d", resp.StatusCode)
	}
	now := time.Now().UTC()
	accepted := 0
	for i := 0; i < 30; i++ {
		var ms []silence.Matcher
		for n := 2 + rng.IntN(2); n > 0; n-- {
			m := silence.Matcher{Name: names[rng.IntN(len(names))], IsRegex: rng.IntN(2) == 0}
			if m.IsRegex {
				m.Value = patterns[rng.IntN(len(patterns))]
			} else {
				m.Value = values[rng.IntN(len(values))]
			}
			eq := rng.IntN(6) != 0
			m.IsEqual = &eq
			ms = append(ms, m)
		}
		// Some pending, most active.
		start := now.Add(-time.Minute)
		if rng.IntN(5) == 0 {
			start = now.Add(time.Hour)
		}
		body, _ := json.Marshal(silence.Silence{Matchers: ms, StartsAt: start, EndsAt: now.Add(2 * time.Hour), CreatedBy: "gen", Comment: fmt.Sprintf("s%d", i)})
		a, b := post(aiopsAddr, silencesToken, body), post(amAddr, "", body)
		if a != b {
			t.Fatalf("silence %s: aiops answered %s, Alertmanager %s", body, a, b)
		}
		if a == "200" {
			accepted++
		}
	}
	if accepted < 15 {
		t.Fatalf("only %d of 30 generated silences are valid: the generator needs fixing", accepted)
	}
	commentOf := map[string]string{}
	for _, s := range store.List(nil) {
		commentOf[s.ID] = s.Comment
	}

	type alert struct {
		Labels map[string]string `json:"labels"`
	}
	var alerts []alert
	for i := 0; i < 200; i++ {
		ls := map[string]string{"n": fmt.Sprint(i)}
		for _, name := range names {
			if v := values[rng.IntN(len(values))]; v != "" {
				ls[name] = v
			}
		}
		alerts = append(alerts, alert{ls})
	}
	body, _ := json.Marshal(alerts)
	resp, err := http.Post("http://"+amAddr+"/api/v2/alerts", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	var mismatches []string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		resp, err := http.Get("http://" + amAddr + "/api/v2/alerts")
		if err != nil {
			t.Fatal(err)
		}
		var got []struct {
			Labels map[string]string `json:"labels"`
			Status struct {
				SilencedBy []string `json:"silencedBy"`
			} `json:"status"`
		}
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		amComments := map[string][]string{}
		for _, a := range got {
			var cs []string
			for _, id := range a.Status.SilencedBy {
				var s struct{ Comment string }
				r, err := http.Get("http://" + amAddr + "/api/v2/silence/" + id)
				if err != nil {
					t.Fatal(err)
				}
				_ = json.NewDecoder(r.Body).Decode(&s)
				r.Body.Close()
				cs = append(cs, s.Comment)
			}
			slices.Sort(cs)
			amComments[a.Labels["n"]] = cs
		}
		mismatches, muted := mismatches[:0], 0
		for _, a := range alerts {
			var cs []string
			for _, id := range store.Mutes(a.Labels, time.Now()) {
				cs = append(cs, commentOf[id])
			}
			slices.Sort(cs)
			if len(cs) > 0 {
				muted++
			}
			if fmt.Sprint(cs) != fmt.Sprint(amComments[a.Labels["n"]]) {
				mismatches = append(mismatches, fmt.Sprintf("%v: aiops %v, Alertmanager %v", a.Labels, cs, amComments[a.Labels["n"]]))
			}
		}
		if len(mismatches) == 0 {
			if muted < 20 || muted > 180 {
				t.Fatalf("%d of 200 alerts muted: the generator needs fixing", muted)
			}
			t.Logf("%d silences, %d of %d alerts muted, as Alertmanager says", accepted, muted, len(alerts))
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d alerts muted differently:\n%s", len(mismatches), strings.Join(mismatches, "\n"))
		}
	}
}

// On a real JetStream, the whole notifier: a silence posted to its API
// for service="payments-db" mutes that incident, another incident still
// reaches the receiver, and a second notifier instance on the same bucket
// has the silence.
func TestSilencedOnJetStream(t *testing.T) {
	r := newJSRig(t, zerolog.WarnLevel)
	js := r.js
	hook := newReceiver(t)
	cfg := Config{Routes: hookRoutes(t, hook.srv.URL), API: httpapi.Config{Listen: "127.0.0.1:0", Token: silencesToken}}
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	run := func() (*Service, func()) { return r.start(cfg) }
	svc, stop := run()
	body := `{"matchers":[{"name":"service","value":"payments-db","isRegex":false}],"startsAt":"` + time.Now().UTC().Format(time.RFC3339) +
		`","endsAt":"` + time.Now().Add(time.Hour).UTC().Format(time.RFC3339) + `","createdBy":"ann","comment":"failover drill"}`
	req, _ := http.NewRequest("POST", "http://"+svc.API().Addr().String()+"/api/v2/silences", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+silencesToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("posting the silence: %s", resp.Status)
	}
	for _, service := range []string{"payments-db", "search"} {
		e := incident(t, service)
		data, _ := e.MarshalJSON()
		if _, err := js.Publish(context.Background(), e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
			t.Fatal(err)
		}
	}
	// Both events are settled once the consumer has nothing pending.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := js.Consumer(context.Background(), bus.StreamEvents, "notifier")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer >= 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incident events not settled: %+v", info)
		}
	}
	_, bodies := hook.requests()
	if len(bodies) != 1 || !strings.Contains(string(bodies[0]), `"service":"search"`) {
		t.Fatalf("the receiver got %d notifications, want only search's: %s", len(bodies), bodies)
	}
	stop()
	svc2, stop2 := run()
	defer stop2()
	if got := svc2.Silences().List(nil); len(got) != 1 || got[0].Comment != "failover drill" {
		t.Fatalf("a restarted notifier has silences %+v", got)
	}
}

// A path the silences API does not serve answers 404, and a method a path
// does not take 405 with Allow, both with a JSON body naming the problem,
// as every other aiops API answers (not the mux's plain text).
func TestSilencesAPIUnknownPathsAndMethods(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS")
	}
	_, addr := startSilencesAPI(t, jetStream(t))
	for _, c := range []struct {
		method, path string
		code         int
		allow, says  string
	}{
		{"GET", "/api/v2/alert/abc", http.StatusNotFound, "", "/api/v2/alerts"},
		{"GET", "/", http.StatusNotFound, "", "/api/v2/silences"},
		{"DELETE", "/api/v2/alerts", http.StatusMethodNotAllowed, "GET, HEAD", "DELETE"},
		{"PUT", "/api/v2/silences", http.StatusMethodNotAllowed, "GET, HEAD, POST", "PUT"},
		{"POST", "/api/v2/silence/abc", http.StatusMethodNotAllowed, "DELETE, GET, HEAD", "POST"},
		{"DELETE", "/api/v2/status", http.StatusMethodNotAllowed, "GET, HEAD", "DELETE"},
	} {
		req, _ := http.NewRequest(c.method, "http://"+addr+c.path, nil)
		req.Header.Set("Authorization", "Bearer "+silencesToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body struct {
			Error string `json:"error"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != c.code || resp.Header.Get("Content-Type") != "application/json" || err != nil || !strings.Contains(body.Error, c.says) {
			t.Errorf("%s %s: %d %q, body %+v (%v); want %d, JSON naming %q", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), body, err, c.code, c.says)
		}
		if got := resp.Header.Get("Allow"); got != c.allow {
			t.Errorf("%s %s: Allow %q, want %q", c.method, c.path, got, c.allow)
		}
	}
}

// The silences API's 401 says where a token it generated is, as the
// incidents API's does (`aiops run` generates data/api-token for both):
// amtool without --http.config.file was told only to send "<silences API
// token>".
func TestSilencesAPIUnauthorizedNamesTheGeneratedTokenFile(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS")
	}
	tokenFile := filepath.Join(t.TempDir(), "api-token")
	_, addr := startSilencesAPIWith(t, jetStream(t), httpapi.Config{Listen: "127.0.0.1:0", GenerateTokenFile: tokenFile})
	resp, err := http.Get("http://" + addr + "/api/v2/silences")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "it is in "+tokenFile) {
		t.Errorf("without a token: %d %s, want 401 naming %s", resp.StatusCode, body, tokenFile)
	}
}

// A silence's regular expressions are bounded by the programs they
// compile to (silence.MaxRegexpInsts), counted before anything compiles
// them: the API's own checks (a severity matcher on an alert's word)
// come after that count, or one POST of `\pL{1000}` 455 times, 4 KiB,
// made the notifier compile 455,000 instructions (117 MiB) before the
// store refused it.
func TestSilenceOfAHugeRegexpIsRefusedBeforeItIsCompiled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS")
	}
	_, addr := startSilencesAPI(t, jetStream(t))
	now := time.Now()
	body, err := json.Marshal(map[string]any{
		"matchers": []map[string]any{{"name": "pod", "value": strings.Repeat(`\pL{1000}`, silence.MaxFieldBytes/9), "isRegex": true}},
		"startsAt": now, "endsAt": now.Add(time.Hour), "createdBy": "ann", "comment": "maintenance",
	})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/api/v2/silences", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+silencesToken)
	req.Header.Set("Content-Type", "application/json")
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	resp, err := http.DefaultClient.Do(req)
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(string(answer), "instructions") {
		t.Errorf("POST of a huge regular expression: %d %s, want 400 naming its program's size", resp.StatusCode, answer)
	}
	if got := after.TotalAlloc - before.TotalAlloc; got > 16<<20 {
		t.Errorf("refusing it allocated %d bytes, want at most 16 MiB (nothing compiled)", got)
	}
}

// A list's filter is compared with the silences' matchers as written
// (silence.MaxRegexpInsts bounds theirs), so a filter's regular expression
// is refused past that bound before anything compiles it: `\pL{1000}`
// 455 times, 4 KiB, made the notifier compile 455,000 instructions (160
// MB allocated) to list nothing, and 3,000 times, 27 KB, still within a
// query's 64 KiB, 3 million (900 MB allocated, 140 MB held for the
// request).
func TestSilencesFilterOfAHugeRegexpIsRefusedBeforeItIsCompiled(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS")
	}
	_, addr := startSilencesAPI(t, jetStream(t))
	get := func(filter string) (int, string) {
		t.Helper()
		return apiGet(t, "http://"+addr+"/api/v2/silences?filter="+url.QueryEscape(filter))
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	code, body := get(`pod=~"` + strings.Repeat(`\pL{1000}`, silence.MaxFieldBytes/9) + `"`)
	runtime.ReadMemStats(&after)
	if code != http.StatusBadRequest || !strings.Contains(body, "instructions") {
		t.Errorf("a filter of a huge regular expression: %d %s, want 400 naming its program's size", code, body)
	}
	// Its parse, counted, costs some 6 MB (each \pL a copy of the class).
	if got := after.TotalAlloc - before.TotalAlloc; got > 32<<20 {
		t.Errorf("refusing it allocated %d bytes, want at most 32 MiB (nothing compiled)", got)
	}
	if code, body := get(`pod=~"web-[0-9]+"`); code != http.StatusOK {
		t.Errorf("a filter of a small regular expression: %d %s", code, body)
	}
}

// The bound holds for a request's filters together, not one at a time:
// 200 filters of `\pL{1000}` 16 times each, every one under a silence's
// bound, 55 KB of query, made the notifier compile 3.2 million
// instructions for one list (1.1 GB allocated, 230 MB held for the
// request), on the silences' list as on the alerts'.
func TestListFiltersAreBoundedTogether(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS")
	}
	_, addr := startSilencesAPI(t, jetStream(t))
	one := `pod=~"` + strings.Repeat(`\pL{1000}`, 16) + `"`
	many := strings.Repeat("&filter="+url.QueryEscape(one), 200)[1:]
	for _, path := range []string{"/api/v2/silences", "/api/v2/alerts", "/api/v2/alerts/groups"} {
		get := func(query string) (int, string) {
			t.Helper()
			return apiGet(t, "http://"+addr+path+"?"+query)
		}
		if code, body := get("filter=" + url.QueryEscape(one)); code != http.StatusOK {
			t.Errorf("%s: one filter within the bound: %d %s", path, code, body)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		code, body := get(many)
		runtime.ReadMemStats(&after)
		if code != http.StatusBadRequest || !strings.Contains(body, "instructions") {
			t.Errorf("%s: 200 filters together past the bound: %d %.200s, want 400 naming their programs' size", path, code, body)
		}
		if got := after.TotalAlloc - before.TotalAlloc; got > 64<<20 {
			t.Errorf("%s: refusing them allocated %d MiB, want at most 64 MiB", path, got>>20)
		}
	}
}

// apiGet GETs u with the API token: its status and body.
func apiGet(t *testing.T, u string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	req.Header.Set("Authorization", "Bearer "+silencesToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// A list of the silences is built whole in memory (up to
// silences.max_bytes, 64 MiB), so the API builds at most
// MaxConcurrentLists of them at once: 50 clients listing 10 MB of
// silences in a loop took the process from 0.5 to 2.3 GB. Past the limit
// a list waits for one to end, and is answered 503 with Retry-After when
// none does within listWait; one silence, and the
// changes, are served all the same.
func TestSilenceListsAnsweredAtOnceAreBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS")
	}
	store, err := silence.Open(context.Background(), jetStream(t), silence.Config{Bucket: "silences-lists-bounded"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	api, err := NewSilencesAPI(store, nil, httpapi.Config{Listen: "127.0.0.1:0", Token: silencesToken}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- api.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	base := "http://" + api.Addr().String()
	id, err := store.Set(context.Background(), silence.Silence{Matchers: []silence.Matcher{{Name: "service", Value: "web"}},
		StartsAt: time.Now(), EndsAt: time.Now().Add(time.Hour), CreatedBy: "ana", Comment: "deploy"})
	if err != nil {
		t.Fatal(err)
	}

	for range MaxConcurrentLists {
		api.lists <- struct{}{} // lists in progress
	}
	api.listWait = 10 * time.Millisecond
	if code, body := apiGet(t, base+"/api/v2/silences"); code != http.StatusServiceUnavailable || !strings.Contains(body, fmt.Sprint(MaxConcurrentLists)) {
		t.Errorf("a list with %d in progress: %d %s, want 503 naming the limit", MaxConcurrentLists, code, body)
	}
	if code, body := apiGet(t, base+"/api/v2/silence/"+id); code != http.StatusOK {
		t.Errorf("one silence while lists are at their limit: %d %s", code, body)
	}
	<-api.lists
	if code, body := apiGet(t, base+"/api/v2/silences"); code != http.StatusOK || !strings.Contains(body, id) {
		t.Errorf("a list with one free: %d %s", code, body)
	}

	// One that finds every slot taken is answered once one is freed
	// (amtool beside a script does not retry a 503).
	api.lists <- struct{}{}
	api.listWait = time.Minute
	answered := make(chan int)
	go func() {
		code, _ := apiGet(t, base+"/api/v2/silences")
		answered <- code
	}()
	time.Sleep(100 * time.Millisecond) // the list waits for a slot
	<-api.lists
	if code := <-answered; code != http.StatusOK {
		t.Errorf("a list waiting for another to end: %d, want 200 once it ended", code)
	}
}
