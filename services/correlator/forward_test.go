package correlator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
)

// apiCall sends one request to the API at addr and returns its status,
// headers and body.
func apiCall(t *testing.T, addr, method, path, token, key, body string) (int, http.Header, string) {
	t.Helper()
	req, _ := http.NewRequest(method, "http://"+addr+path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// Two instances behind one address (a Kubernetes Service over the active
// correlator and its standby): whichever the request reaches answers it as
// the active one would. The standby used to answer every request 503.
func TestStandbyPassesAPIRequestsToTheActiveInstance(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}, API: APIConfig{Listen: "127.0.0.1:0", Token: apiToken}})
	a, stopA := r.start()
	defer stopA()
	b, stopB := r.start()
	defer stopB()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)
	standby := b
	if b.proc.leading.Load() {
		standby = a
	}
	addr := standby.Addr().String()

	code, _, body := apiCall(t, addr, "GET", "/v1/incidents?status=open", apiToken, "", "")
	var list struct {
		Incidents []correlate.State `json:"incidents"`
	}
	if err := json.Unmarshal([]byte(body), &list); code != http.StatusOK || err != nil || len(list.Incidents) != 2 {
		t.Fatalf("list from the standby: %d %s, want the two open incidents", code, body)
	}
	id := opened[0].IncidentID
	code, _, body = apiCall(t, addr, "GET", "/v1/incidents/"+id, apiToken, "", "")
	var st correlate.State
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || st.IncidentID != id || len(st.Timeline) == 0 {
		t.Fatalf("incident from the standby: %d %s", code, body)
	}
	code, _, body = apiCall(t, addr, "POST", "/v1/incidents/"+id+"/ack", apiToken, "k1", `{"by":"ana"}`)
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || st.State != "acknowledged" || st.AcknowledgedAt.IsZero() {
		t.Fatalf("ack through the standby: %d %s", code, body)
	}
	// The key went along: the same command again is the same command.
	if code, _, body = apiCall(t, addr, "POST", "/v1/incidents/"+id+"/ack", apiToken, "k1", `{"by":"ana"}`); code != http.StatusOK {
		t.Fatalf("the ack again under its key: %d %s", code, body)
	}
	if acked := waitIncidents(t, r.js, event.IncidentAcknowledged, 1); len(acked) != 1 || acked[0].IncidentID != id {
		t.Fatalf("acknowledged: %+v, want one event for %s", acked, id)
	}
	// The active instance's refusals come back as they are.
	if code, _, body = apiCall(t, addr, "POST", "/v1/incidents/"+id+"/assign", apiToken, "", `{"by":"ana"}`); code != http.StatusBadRequest || !strings.Contains(body, "assignee") {
		t.Fatalf("assign without an assignee through the standby: %d %s, want the active instance's 400", code, body)
	}
	if code, _, body = apiCall(t, addr, "GET", "/v1/incidents/nope", apiToken, "", ""); code != http.StatusNotFound || !strings.Contains(body, `"error"`) {
		t.Fatalf("unknown incident through the standby: %d %s", code, body)
	}
	// The bearer is checked where the request came in.
	if code, _, _ = apiCall(t, addr, "GET", "/v1/incidents", "", "", ""); code != http.StatusUnauthorized {
		t.Fatalf("no token at the standby: %d, want 401", code)
	}
}

// A standby with nobody answering (the lease held by an instance that is
// gone, until its TTL passes) says so at once, with Retry-After.
func TestStandbyWithNoActiveInstanceAnswers503(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: time.Minute}, API: APIConfig{Listen: "127.0.0.1:0", Token: apiToken}})
	// A holder that crashed: its key stays until the TTL.
	svc, err := New(context.Background(), r.js, r.cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := r.js.KeyValue(context.Background(), r.cfg.WithDefaults().Lease.WithDefaults().Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Create(context.Background(), "correlator."+svc.proc.cfg.Consumer.Durable, []byte("gone/1/x")); err != nil && !errors.Is(err, jetstream.ErrKeyExists) {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	defer func() { cancel(); <-done }()
	var code int
	var hdr http.Header
	var body string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if code, hdr, body = apiCall(t, svc.Addr().String(), "GET", "/v1/incidents", apiToken, "", ""); code != 0 {
			break
		}
	}
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" || !strings.Contains(body, "no active instance answers") {
		t.Fatalf("standby alone: %d %v %s, want 503 naming that no active instance answers", code, hdr, body)
	}
}

// activeAndStandby starts two instances on the rig's durable and tells
// which one holds the lease once the first half of the storm is in.
func activeAndStandby(t *testing.T, r *stormRig) (active, standby *Service, opened []correlate.State) {
	t.Helper()
	a, stopA := r.start()
	t.Cleanup(stopA)
	b, stopB := r.start()
	t.Cleanup(stopB)
	r.firstHalf()
	opened = waitIncidents(t, r.js, event.IncidentOpened, 2)
	if b.proc.leading.Load() {
		return b, a, opened
	}
	return a, b, opened
}

// An answer larger than one NATS message (an incident of many members
// with long labels, the list in a storm) comes through the standby whole,
// as the active instance's own listener gives it. It was refused with 502,
// even for a command the active instance had applied.
func TestStandbyPassesOnAnAnswerLargerThanANATSMessage(t *testing.T) {
	// No idle advance: the states stay as they are between the two GETs.
	r := newStormRig(t, Config{IdleAdvance: time.Hour, Lease: LeaseConfig{TTL: 3 * time.Second}, API: APIConfig{Listen: "127.0.0.1:0", Token: apiToken}})
	active, standby, _ := activeAndStandby(t, r)
	long := strings.Repeat("x", 4000)
	const extra = 100
	for i := range extra {
		e := alertEvent(t, fmt.Sprintf("Slow%03d", i), "web", time.Duration(i)*time.Millisecond, 0)
		e.Labels["a"], e.Labels["b"], e.Labels["c"] = long, long, long
		r.publish(e)
	}
	max := int(r.js.Conn().MaxPayload())
	var big correlate.State
	for deadline := time.Now().Add(30 * time.Second); big.MemberCount < extra && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		for _, st := range active.proc.Incidents() {
			if st.MemberCount > big.MemberCount {
				big = st
			}
		}
	}
	for _, path := range []string{"/v1/incidents", "/v1/incidents/" + big.IncidentID} {
		code, _, direct := apiCall(t, active.Addr().String(), "GET", path, apiToken, "", "")
		if code != http.StatusOK || len(direct) <= max {
			t.Fatalf("GET %s from the active instance: %d, %d bytes; want 200 and more than max_payload (%d)", path, code, len(direct), max)
		}
		code, hdr, passed := apiCall(t, standby.Addr().String(), "GET", path, apiToken, "", "")
		if code != http.StatusOK || passed != direct || hdr.Get("Content-Type") != "application/json" {
			t.Fatalf("GET %s through the standby: %d %q, %d bytes (%.80s); want the active instance's 200 answer of %d bytes", path, code, hdr.Get("Content-Type"), len(passed), passed, len(direct))
		}
	}
	code, _, body := apiCall(t, standby.Addr().String(), "POST", "/v1/incidents/"+big.IncidentID+"/ack", apiToken, "big", `{"by":"ana"}`)
	var st correlate.State
	if err := json.Unmarshal([]byte(body), &st); code != http.StatusOK || err != nil || st.State != "acknowledged" || len(body) <= max {
		t.Fatalf("ack of the large incident through the standby: %d, %d bytes (%.200s); want 200 with its state", code, len(body), body)
	}
}

// A path not in its clean form is refused by the active instance's own
// listener; passed on by a standby it was read as a URL with a host
// ("//x/v1/incidents": host x, path /v1/incidents) and served.
func TestStandbyRefusesAPathNotInItsCleanFormAsTheActiveDoes(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}, API: APIConfig{Listen: "127.0.0.1:0", Token: apiToken}})
	active, standby, opened := activeAndStandby(t, r)
	for _, c := range []struct{ method, path, body string }{
		{"GET", "//x/v1/incidents", ""},
		{"POST", "//x/v1/incidents/" + opened[0].IncidentID + "/ack", `{"by":"ana"}`},
	} {
		direct, _, _ := apiCall(t, active.Addr().String(), c.method, c.path, apiToken, "", c.body)
		passed, _, body := apiCall(t, standby.Addr().String(), c.method, c.path, apiToken, "", c.body)
		if direct != http.StatusNotFound || passed != direct {
			t.Fatalf("%s %s: %d from the active instance, %d through the standby (%s); want 404 from both", c.method, c.path, direct, passed, body)
		}
	}
	if st, _ := active.proc.c.Incident(opened[0].IncidentID); st.State != "open" {
		t.Fatalf("incident %s is %s: a command on a path the API does not serve was applied", st.IncidentID, st.State)
	}
}

// The active instance serving as many passed-on requests as it takes says
// when to come back, as every other 503 of the API does.
func TestStandbyPassesOnTheActiveInstancesBusyAnswerWithRetryAfter(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}, API: APIConfig{Listen: "127.0.0.1:0", Token: apiToken}})
	active, standby, _ := activeAndStandby(t, r)
	for range maxForwardedAtOnce {
		active.api.fwd.slots <- struct{}{}
	}
	code, hdr, body := apiCall(t, standby.Addr().String(), "GET", "/v1/incidents", apiToken, "", "")
	for range maxForwardedAtOnce {
		<-active.api.fwd.slots
	}
	if code != http.StatusServiceUnavailable || hdr.Get("Retry-After") == "" {
		t.Fatalf("the active instance at its limit: %d, Retry-After %q (%s); want 503 with Retry-After", code, hdr.Get("Retry-After"), body)
	}
	if code, _, body = apiCall(t, standby.Addr().String(), "GET", "/v1/incidents", apiToken, "", ""); code != http.StatusOK {
		t.Fatalf("once a slot is free: %d %s", code, body)
	}
}

// An active instance cut off without its connection closing (its node
// gone, its link stalled) keeps its subscription on the server until the
// connection times out, minutes after its lease ran out and another
// instance took over. Shared by every holder (one subject, a queue
// group), that subscription took part of the standbys' requests, each
// answered 504 after correlator.ForwardTimeout; a subject of each
// holder's own takes none of them once the lease moved.
func TestRequestsGoToTheHolderNotToAnInstanceCutOff(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}, API: APIConfig{Listen: "127.0.0.1:0", Token: apiToken}})
	bucket := r.cfg.WithDefaults().Lease.WithDefaults().Bucket
	// From its next lease renewal on, nothing the first holder sends
	// reaches the server; what the server sends still reaches it.
	proxy := startHoldingProxy(t, strings.TrimPrefix(r.url, "nats://"), []byte("$KV."+bucket+"."))
	a, _, _ := r.startThrough(proxy)
	waitLeading(t, a)
	b, stopB := r.start()
	defer stopB()
	c, stopC := r.start()
	defer stopC()
	proxy.arm()
	<-proxy.triggered
	_, standby := waitEitherLeading(t, b, c)
	for i := range 6 {
		if code, _, body := apiCall(t, standby.Addr().String(), "GET", "/v1/incidents", apiToken, "", ""); code != http.StatusOK {
			t.Fatalf("request %d through the standby: %d %s", i, code, body)
		}
	}
}

// waitLeading waits until svc leads (restored its state).
func waitLeading(t *testing.T, svc *Service) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); !svc.proc.leading.Load(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the instance did not take the lease")
		}
	}
}

// waitEitherLeading waits until a or b leads and returns it and the other.
func waitEitherLeading(t *testing.T, a, b *Service) (leading, other *Service) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		switch {
		case a.proc.leading.Load():
			return a, b
		case b.proc.leading.Load():
			return b, a
		}
	}
	t.Fatal("no instance took over")
	return nil, nil
}

// At the end of a term the active instance unsubscribed from its
// passed-on requests, and the requests its client had taken but not yet
// handed to the callback were dropped: their standbys waited
// ForwardTimeout and answered 504 to a request any instance could have
// told to come back in a moment. The first request is held in the
// callback, the second waits behind it in the client when the term ends;
// the standby's wait is cut short here, so a dropped request shows as
// 504, not as a slow test.
func TestStandbyIsAnsweredForARequestPendingWhenTheTermEnds(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}, API: APIConfig{Listen: "127.0.0.1:0", Token: apiToken}})
	held := make(chan *nats.Subscription)
	release := make(chan struct{})
	var holdFirst sync.Once
	start := func() (svc *Service, stop func()) {
		svc, err := New(context.Background(), r.js, r.cfg, r.log)
		if err != nil {
			t.Fatal(err)
		}
		svc.api.fwd.timeout = 10 * time.Second
		svc.api.fwd.received = func(m *nats.Msg) {
			holdFirst.Do(func() {
				held <- m.Sub
				<-release
			})
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		var once sync.Once
		stop = func() {
			once.Do(func() {
				cancel()
				if err := <-done; err != nil {
					t.Error(err)
				}
			})
		}
		t.Cleanup(stop)
		return svc, stop
	}
	t.Cleanup(func() {
		select {
		case <-release:
		default:
			close(release)
		}
	})
	a, stopA := start()
	b, stopB := start()
	active, standby := waitEitherLeading(t, a, b)
	stopActive := stopA
	if active == b {
		stopActive = stopB
	}

	type answer struct {
		code int
		hdr  http.Header
		body string
		err  error
	}
	call := func() <-chan answer {
		out := make(chan answer, 1)
		go func() {
			req, _ := http.NewRequest("GET", "http://"+standby.Addr().String()+"/v1/incidents", nil)
			req.Header.Set("Authorization", "Bearer "+apiToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				out <- answer{err: err}
				return
			}
			defer resp.Body.Close()
			b, err := io.ReadAll(resp.Body)
			out <- answer{resp.StatusCode, resp.Header, string(b), err}
		}()
		return out
	}
	first := call()
	sub := <-held // the first request is in the active instance's callback
	second := call()
	// The second is in the client, behind the first (counted until its
	// callback returns).
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if n, _, _ := sub.Pending(); n == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the second request did not reach the active instance's client")
		}
	}
	stopActive()
	// The term's end stops the subscription (after the run, on its own).
	for deadline := time.Now().Add(20 * time.Second); sub.IsValid() && !sub.IsDraining(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the term's end did not stop the subscription")
		}
	}
	close(release)
	for i, ch := range []<-chan answer{first, second} {
		got := <-ch
		if got.err != nil || got.code != http.StatusServiceUnavailable || got.hdr.Get("Retry-After") == "" {
			t.Errorf("request %d, taken by the active instance as its term ended: %d %v (Retry-After %q) %s; want 503 with Retry-After",
				i+1, got.code, got.err, got.hdr.Get("Retry-After"), got.body)
		}
	}
}

// A standby leaves the consumer as the instance holding the lease set it,
// as the notifier's does: in a rolling update the new build's standby
// starts beside the old build's active instance, whose acks wait for its
// checkpoints and whose in-progress signals follow its own ack_wait; a
// shorter one set under it has the server redeliver what it holds. The
// standby's settings apply when it takes the lease.
func TestStandbyDoesNotChangeTheActiveInstancesConsumer(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}})
	ackWait := func() time.Duration {
		t.Helper()
		c, err := r.js.Consumer(context.Background(), "EVENTS", "correlator")
		if err != nil {
			t.Fatal(err)
		}
		return c.CachedInfo().Config.AckWait
	}
	r.cfg.Consumer.AckWait = 5 * time.Minute
	a, stopA := r.start()
	waitLeading(t, a)
	r.cfg.Consumer.AckWait = time.Minute
	b, stopB := r.start()
	defer stopB()
	if got := ackWait(); got != 5*time.Minute {
		t.Fatalf("with a standby started beside the active instance the consumer's ack_wait is %s, want the active one's 5m", got)
	}
	stopA()
	waitLeading(t, b)
	for deadline := time.Now().Add(10 * time.Second); ackWait() != time.Minute; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the standby took the lease and the consumer's ack_wait is still %s, want its own 1m", ackWait())
		}
	}
}
