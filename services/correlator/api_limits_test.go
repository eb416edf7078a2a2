package correlator

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
)

// A team filter matches whatever the case, as the service filter does.
func TestTeamFilterIgnoresCase(t *testing.T) {
	r := newAPIRig(t)
	r.h.Feed(alertEvent(t, "ReplicationLag", "payments-db", 0, 0))
	var list struct{ Incidents []correlate.State }
	for _, q := range []string{"team=dba", "team=DBA"} {
		code, body := r.do("GET", "/v1/incidents?"+q, apiToken, "")
		if code != 200 || json.Unmarshal([]byte(body), &list) != nil || len(list.Incidents) != 1 {
			t.Errorf("%s: %d %s, want dba's incident (service=PAYMENTS-DB finds it)", q, code, body)
		}
	}
}

// Two different commands under one Idempotency-Key are two commands (the
// key is hashed with the request), also when a NUL in a field would make
// the fields of one run into the next.
func TestIdempotencyHashTellsFieldsApart(t *testing.T) {
	r := newAPIRig(t)
	id := r.oneIncident()
	code, body := r.doKeyed("POST", "/v1/incidents/"+id+"/assign", apiToken, "k", `{"by":"ana\u0000bo","assignee":"cy"}`)
	if code != 200 {
		t.Fatalf("first assign: %d %s", code, body)
	}
	code, body = r.doKeyed("POST", "/v1/incidents/"+id+"/assign", apiToken, "k", `{"by":"ana","assignee":"bo\u0000cy"}`)
	var st correlate.State
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil {
		t.Fatalf("second assign: %d %s", code, body)
	}
	if st.Assignee != "bo\x00cy" {
		t.Errorf("a different assign under the same key answered 200 with assignee %q, want %q (applied) or a refusal", st.Assignee, "bo\x00cy")
	}
}

// An Idempotency-Key of bytes other than printable ASCII is refused,
// naming the header, and nothing is applied: the key goes into the
// command's id, which the state keeps as JSON, and a byte that is not
// UTF-8 comes back from a restore as U+FFFD, so that the retry the key
// is for was applied a second time.
func TestIdempotencyKeyIsPrintableASCII(t *testing.T) {
	r := newAPIRig(t)
	id := r.oneIncident()
	for _, key := range []string{"k\xff", "caf\u00e9", "a b"} {
		code, body := r.doKeyed("POST", "/v1/incidents/"+id+"/comment", apiToken, key, `{"by":"ana","text":"keyed"}`)
		if code != http.StatusBadRequest || !strings.Contains(body, "Idempotency-Key") {
			t.Errorf("Idempotency-Key %q: %d %s, want 400 naming the header", key, code, body)
		}
	}
	if _, body := r.do("GET", "/v1/incidents/"+id, apiToken, ""); strings.Contains(body, "keyed") {
		t.Errorf("a command under a refused key was applied: %s", body)
	}
}

// A list, and an incident, is built whole in memory before it is sent
// (every incident held with its members and their labels: megabytes in
// a storm), so the API builds at most MaxConcurrentReads of them at once:
// dashboards polling, or a script in a loop, would otherwise multiply
// that until the process, the embedded NATS with it, runs out of memory.
// Past the limit a read waits for one to end, and is answered 503 with
// Retry-After when none does within readWait; a command is not held back
// by reads.
func TestReadsAnsweredAtOnceAreBounded(t *testing.T) {
	r := newAPIRig(t)
	id := r.oneIncident()
	for range MaxConcurrentReads {
		r.api.reads <- struct{}{} // reads in progress
	}
	r.api.readWait = 10 * time.Millisecond
	for _, path := range []string{"/v1/incidents", "/v1/incidents/" + id} {
		if code, body := r.do("GET", path, apiToken, ""); code != http.StatusServiceUnavailable || !strings.Contains(body, fmt.Sprint(MaxConcurrentReads)) {
			t.Errorf("GET %s with %d reads in progress: %d %s, want 503 naming the limit", path, MaxConcurrentReads, code, body)
		}
	}
	if code, body := r.do("POST", "/v1/incidents/"+id+"/comment", apiToken, `{"by":"ana","text":"still taken"}`); code != 200 {
		t.Errorf("a command while reads are at their limit: %d %s", code, body)
	}
	<-r.api.reads
	if code, body := r.do("GET", "/v1/incidents/"+id, apiToken, ""); code != 200 {
		t.Errorf("GET with a read free: %d %s", code, body)
	}

	// One that finds every slot taken is answered once one is freed.
	r.api.reads <- struct{}{}
	r.api.readWait = time.Minute
	answered := make(chan int)
	go func() {
		code, _ := r.do("GET", "/v1/incidents/"+id, apiToken, "")
		answered <- code
	}()
	time.Sleep(100 * time.Millisecond) // the request waits for a slot
	<-r.api.reads
	if code := <-answered; code != 200 {
		t.Errorf("GET waiting for a read to end: %d, want 200 once it ended", code)
	}
}

// Every answer of the API is JSON: a path the mux would clean (a double
// slash, a dot segment), with a redirect in HTML, is a JSON 404.
func TestUncleanPathAnsweredInJSON(t *testing.T) {
	r := newAPIRig(t)
	id := r.oneIncident()
	for _, c := range []struct{ method, path string }{
		{"GET", "//v1/incidents"},
		{"GET", "/v1/incidents/./" + id},
		{"POST", "/v1//incidents/" + id + "/ack"},
	} {
		req, _ := http.NewRequest(c.method, r.base+c.path, strings.NewReader(`{"by":"ana"}`))
		req.Header.Set("Authorization", "Bearer "+apiToken)
		noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var e map[string]any
		err = json.NewDecoder(resp.Body).Decode(&e)
		resp.Body.Close()
		if err != nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %s, body not JSON (%v)", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), err)
		}
	}
	_ = time.Second
}

// An incident whose services list alone would pass the 512 KiB body
// limit (a storm on 3,000 services with names of 245 bytes, each valid)
// still takes an ack: its event lists fewer services, and goes out.
func TestAckOfAnIncidentOnThousandsOfServices(t *testing.T) {
	r, p := newAPIRigWithProc(t)
	pad := strings.Repeat("x", 240)
	r.h.Feed(alertEvent(t, "Down", pad+"-0", 0, 0))
	p.mu.Lock()
	for i := 1; i < 3000; i++ {
		p.c.Observe(correlate.Signal{Kind: correlate.SignalAlert, EventID: fmt.Sprint("e", i), Fingerprint: fmt.Sprint("fp", i),
			Service: fmt.Sprintf("%s-%d", pad, i), Name: "Down", Severity: event.SeverityCritical, Time: t0.Add(time.Duration(i) * time.Millisecond)})
	}
	p.mu.Unlock()
	incs := p.Incidents()
	if len(incs) != 1 {
		t.Fatalf("%d incidents, want the storm's one", len(incs))
	}
	id := incs[0].IncidentID
	code, body := r.do("POST", "/v1/incidents/"+id+"/ack", apiToken, `{"by":"ana"}`)
	acked := len(incidentEvents(t, r.h, "acknowledged"))
	state := p.Incidents()[0].State
	if code != 200 || state != correlate.StatusAcknowledged || acked != 1 {
		t.Errorf("ack answered %d %.200s; the incident is %s with %d acknowledged events published, want 200, acknowledged, 1", code, body, state, acked)
	}
}
