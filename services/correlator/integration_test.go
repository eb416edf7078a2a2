package correlator

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// stormRig is a JetStream with the default streams, correlators on it,
// and the storm the tests send in two halves.
type stormRig struct {
	t   *testing.T
	url string
	js  jetstream.JetStream
	log zerolog.Logger
	cfg Config
}

// startCrashable starts the correlator on a connection of its own; crash
// closes that connection (neither an ack nor a save reaches the server)
// and ends the run, as a crash would.
func (r *stormRig) startCrashable() (svc *Service, crash func()) {
	t := r.t
	t.Helper()
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.url}}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	svc, err = New(context.Background(), js, r.cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- svc.Run(ctx) }()
	return svc, func() {
		nc.Close()
		cancel()
		<-ran
	}
}

func newStormRig(t *testing.T, cfg Config) *stormRig {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	srv := testenv.StartNATS(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{srv.URL()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.EnsureTopology(context.Background(), js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	cfg.Catalog = writeCatalog(t)
	cfg.State.SaveEvery = 200 * time.Millisecond
	cfg.Consumer.FetchWait = 50 * time.Millisecond
	return &stormRig{t: t, url: srv.URL(), js: js, log: log, cfg: cfg}
}

// start runs a correlator; stop cancels it and waits for it.
func (r *stormRig) start() (svc *Service, stop func()) {
	svc, err := New(context.Background(), r.js, r.cfg, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	return svc, func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Fatal(err)
		}
	}
}

func (r *stormRig) publish(es ...*event.Envelope) {
	for _, e := range es {
		data, _ := e.MarshalJSON()
		if _, err := r.js.Publish(context.Background(), e.Subject(), data, jetstream.WithMsgID(e.ID)); err != nil {
			r.t.Fatal(err)
		}
	}
}

// firstHalf opens the cascade (web, checkout) and search; secondHalf adds
// the cascade's root, resolves everything and moves event time on.
func (r *stormRig) firstHalf() {
	r.publish(alertEvent(r.t, "HighLatency", "web", 0, 0), alertEvent(r.t, "HighErrorRate", "checkout", 10*time.Second, 0),
		alertEvent(r.t, "HighLatency", "search", 12*time.Second, 0))
}

func (r *stormRig) secondHalf() {
	r.resolutions()
	r.later()
}

// resolutions adds the cascade's root and resolves everything.
func (r *stormRig) resolutions() {
	r.publish(alertEvent(r.t, "ReplicationLag", "payments-db", 30*time.Second, 0),
		alertEvent(r.t, "HighLatency", "web", 0, 2*time.Minute), alertEvent(r.t, "HighErrorRate", "checkout", 10*time.Second, 2*time.Minute),
		alertEvent(r.t, "ReplicationLag", "payments-db", 30*time.Second, 3*time.Minute), alertEvent(r.t, "HighLatency", "search", 12*time.Second, 3*time.Minute))
}

// later is a signal far later, which moves event time past the quiet
// periods.
func (r *stormRig) later() { r.publish(alertEvent(r.t, "DiskFull", "search", time.Hour, 0)) }

// checkNoDuplicates waits for the storm's end: two resolved incidents, both
// opened in the first half, and three opened in all.
func (r *stormRig) checkNoDuplicates(opened []correlate.State) {
	resolved := waitIncidents(r.t, r.js, event.IncidentResolved, 2)
	if got := waitIncidents(r.t, r.js, event.IncidentOpened, 3); len(got) != 3 {
		r.t.Fatalf("%d incidents opened, want 3 (cascade, search, the late DiskFull)", len(got))
	}
	ids := map[string]bool{}
	for _, o := range opened {
		ids[o.IncidentID] = true
	}
	for _, b := range resolved {
		if !ids[b.IncidentID] {
			r.t.Fatalf("resolved incident %s was not opened in the first half: a duplicate", b.IncidentID)
		}
	}
}

// On a real JetStream: a storm goes in, its incidents come out; the
// correlator is stopped mid-storm and started again, and the rest of the
// storm joins the incidents it already had (no duplicate opens), which then
// resolve.
func TestStormAcrossARestart(t *testing.T) {
	r := newStormRig(t, Config{})
	_, stop := r.start()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)
	stop()
	_, stop = r.start()
	defer stop()
	r.secondHalf()
	r.checkNoDuplicates(opened)
}

// A crash loses nothing the correlator took in: the resolutions, which
// emit nothing until the quiet period passed, and the signals before them
// are acked only once a saved state holds them, so an instance that dies
// before its save leaves them to the next one, which makes the same
// incidents again (their events stored once) and resolves them.
func TestStormAcrossACrash(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}})
	r.cfg.State.SaveEvery = time.Hour // no save before the crash
	r.cfg.Consumer.AckWait = 2 * time.Second
	a, crash := r.startCrashable()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)
	r.resolutions()
	for deadline := time.Now().Add(10 * time.Second); a.ConsumerStats().Delivered < 8; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d signals delivered to the first instance, want 8", a.ConsumerStats().Delivered)
		}
	}
	crash() // the crash: neither an ack nor a save reaches the server
	_, stopB := r.start()
	defer stopB()
	r.later()
	r.checkNoDuplicates(opened)
}

// Two instances on one durable at the same time: one holds the lease and
// makes the incidents, the other stands by (its API says so); when the
// active one stops, the standby takes over with the saved state, and the
// rest of the storm joins the same incidents: no duplicate anywhere.
func TestSecondInstanceStandsBy(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}})
	a, stopA := r.start()
	b, stopB := r.start()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)
	active, standby, stopActive, stopStandby := a, b, stopA, stopB
	if b.proc.leading.Load() {
		active, standby, stopActive, stopStandby = b, a, stopB, stopA
	}
	if !active.proc.leading.Load() || standby.proc.leading.Load() {
		t.Fatalf("leading: a %v, b %v; want exactly one", a.proc.leading.Load(), b.proc.leading.Load())
	}
	if _, err := standby.proc.Submit(context.Background(), correlate.Command{IncidentID: opened[0].IncidentID, Action: "ack"}); !errors.Is(err, ErrStandby) {
		t.Fatalf("a command to the standby: %v, want ErrStandby", err)
	}
	stopActive()
	deadline := time.Now().Add(10 * time.Second)
	for !standby.proc.leading.Load() && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !standby.proc.leading.Load() {
		t.Fatal("the standby did not take over after the active instance stopped")
	}
	defer stopStandby()
	r.secondHalf()
	r.checkNoDuplicates(opened)
}

// A command taken from incidents.command.<id> for an incident merged into
// another applies to that one (not dead-lettered as unknown), and the
// incident event it causes says which merged incident it was given to.
func TestNATSCommandOnAMergedIncident(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	_, stop := r.start()
	defer stop()
	// web and mobile alert first, each opening an incident; checkout,
	// what both depend on, arrives late and merges one into the other.
	r.publish(alertEvent(t, "HighLatency", "web", 0, 0), alertEvent(t, "HighLatency", "mobile", 5*time.Second, 0),
		alertEvent(t, "HighErrorRate", "checkout", 10*time.Second, 0))
	merged := waitIncidents(t, r.js, event.IncidentResolved, 1)[0]
	if merged.MergedInto == "" {
		t.Fatalf("resolved %s without merged_into, want the merge", merged.IncidentID)
	}
	cmd, _ := json.Marshal(correlate.Command{Action: "ack", By: "ana"})
	if _, err := r.js.Publish(context.Background(), event.IncidentCommandPrefix+"."+merged.IncidentID, cmd); err != nil {
		t.Fatal(err)
	}
	acked := waitIncidents(t, r.js, event.IncidentAcknowledged, 1)[0]
	if acked.IncidentID != merged.MergedInto || acked.State != correlate.StatusAcknowledged {
		t.Fatalf("the ack acknowledged %s (%s), want %s, where %s went", acked.IncidentID, acked.State, merged.MergedInto, merged.IncidentID)
	}
	want := "acknowledged by ana (ack of merged incident " + merged.IncidentID + ")"
	if !slices.ContainsFunc(acked.Timeline, func(e correlate.Entry) bool { return e.What == want }) {
		t.Fatalf("the timeline does not say %q: %+v", want, acked.Timeline)
	}
}

// A NATS command waiting for the tick that applies it when the service
// stops is answered at once (and naked for the next holder): it used to
// wait for its 30s timeout while the stop waited for it, outlasting the
// service's shutdown timeout.
func TestCommandPendingAtTheStopIsAnswered(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	svc, err := New(context.Background(), r.js, r.cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	// Commands wait for the second's tick, not one they ask for: the stop
	// must catch one waiting.
	svc.proc.tickSoon = nil
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)[0]
	pending := func() int {
		svc.proc.mu.Lock()
		defer svc.proc.mu.Unlock()
		return len(svc.proc.commands)
	}
	cmd, _ := json.Marshal(correlate.Command{Action: "ack", By: "ana"})
	for pending() == 0 {
		// Until one is taken between two ticks (each applies what waits).
		if _, err := r.js.Publish(context.Background(), event.IncidentCommandPrefix+"."+opened.IncidentID, cmd); err != nil {
			t.Fatal(err)
		}
		for deadline := time.Now().Add(500 * time.Millisecond); pending() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the stop still waits for a command no tick will apply")
	}
}

// An incident event a tick made (a command's, here) that the stream had
// not stored when the correlator stopped is saved with the state, and the
// next run sends it: the state already holds the acknowledgement, so
// nothing else would. A command given again under its id (an API retry, a
// NATS command redelivered) is not applied twice, and is not answered as
// done until a checkpoint holds its first application (and its outbox
// the event): the command asks for one at once.
func TestTickEventNotStoredAtTheStopIsSentAfterTheRestart(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	r.cfg.State.SaveEvery = time.Hour // only the stop's checkpoint
	svc, stop := r.start()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)[0]

	// EVENTS stops taking incident events, and only them.
	ctx := context.Background()
	restore := testenv.NarrowStream(t, r.js, bus.StreamEvents, event.KindFilterAll(event.KindLog), event.KindFilterAll(event.KindMetric), event.KindFilterAll(event.KindAlert),
		event.KindFilterAll(event.KindChange), event.KindFilterAll(event.KindAnomaly))
	submit, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := svc.proc.Submit(submit, correlate.Command{IncidentID: opened.IncidentID, Action: "ack", By: "ana"}); !errors.Is(err, ErrNotStored) {
		t.Fatalf("ack while the stream refuses incident events: %v, want ErrNotStored", err)
	}
	note := correlate.Command{IncidentID: opened.IncidentID, Action: "comment", By: "bo", Text: "failing over", ID: "key:k1"}
	if _, err := svc.proc.Submit(submit, note); !errors.Is(err, ErrNotStored) {
		t.Fatalf("comment under an id while its event is not stored: %v, want ErrNotStored", err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		_, err := svc.proc.Submit(submit, note)
		if err == nil {
			break // the checkpoint holds it, its outbox the event
		}
		if !errors.Is(err, ErrNotStored) || time.Now().After(deadline) {
			t.Fatalf("the comment again: %v, want ErrNotStored until a checkpoint holds it, then done", err)
		}
	}
	// A NATS command whose event is not stored is naked, then acked once a
	// checkpoint holds it.
	cmd, _ := json.Marshal(correlate.Command{Action: "comment", By: "bo", Text: "rolling back"})
	if _, err := r.js.Publish(ctx, event.IncidentCommandPrefix+"."+opened.IncidentID, cmd); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(30 * time.Second); svc.commands.Stats().Naked == 0 || svc.commands.Stats().Acked == 0; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the comment command was not naked, then acked: %+v", svc.commands.Stats())
		}
	}
	stop()
	restore()

	svc, stop = r.start()
	defer stop()
	acked := waitIncidents(t, r.js, event.IncidentAcknowledged, 1)
	if len(acked) != 1 || acked[0].IncidentID != opened.IncidentID || acked[0].AcknowledgedAt.IsZero() {
		t.Fatalf("acknowledged after the restart: %+v, want %s's", acked, opened.IncidentID)
	}
	// The comment given once more finds itself applied and held by the
	// last checkpoint: done.
	if st := svc.commands.Stats(); st.DeadLettered != 0 {
		t.Fatalf("command consumer %+v: want no dead letter", st)
	}
	if _, err := svc.proc.Submit(submit, note); err != nil {
		t.Fatalf("the comment under its id after the restart: %v, want done", err)
	}
	var comments []correlate.Comment
	for _, st := range svc.proc.Incidents() {
		if st.IncidentID == opened.IncidentID {
			comments = st.Comments
		}
	}
	if len(comments) != 2 {
		t.Fatalf("comments after the restart: %+v, want the API's and the NATS command's, once each", comments)
	}
}

// An incident event an input made (an alert opening an incident) that the
// stream had not stored when the correlator stopped is saved with the
// state, and the next run sends it: the state already holds the incident,
// so the alert's redelivery is a repeat that makes no event.
func TestInputEventNotStoredAtTheStopIsSentAfterTheRestart(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	r.cfg.State.SaveEvery = time.Hour // only the stop's checkpoint
	restore := testenv.NarrowStream(t, r.js, bus.StreamEvents, event.KindFilterAll(event.KindLog), event.KindFilterAll(event.KindMetric), event.KindFilterAll(event.KindAlert),
		event.KindFilterAll(event.KindChange), event.KindFilterAll(event.KindAnomaly))
	svc, stop := r.start()
	r.firstHalf()
	for deadline := time.Now().Add(30 * time.Second); len(svc.proc.Incidents()) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the correlator holds %d incidents, want 2", len(svc.proc.Incidents()))
		}
	}
	stop()
	restore()
	_, stop = r.start()
	defer stop()
	if got := waitIncidents(t, r.js, event.IncidentOpened, 2); len(got) != 2 {
		t.Fatalf("%d incidents opened after the restart, want the 2 the state holds", len(got))
	}
}

// A command published while no correlator runs is applied by the next one
// once its state is restored: taken before, it found no such incident and
// was dead-lettered.
func TestCommandWaitsForTheRestore(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	_, stop := r.start()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)[0]
	stop()
	cmd, _ := json.Marshal(correlate.Command{Action: "ack", By: "ana"})
	if _, err := r.js.Publish(context.Background(), event.IncidentCommandPrefix+"."+opened.IncidentID, cmd); err != nil {
		t.Fatal(err)
	}
	svc, stop := r.start()
	defer stop()
	acked := waitIncidents(t, r.js, event.IncidentAcknowledged, 1)
	if len(acked) != 1 || acked[0].IncidentID != opened.IncidentID {
		t.Fatalf("acknowledged: %+v, want %s", acked, opened.IncidentID)
	}
	if st := svc.commands.Stats(); st.DeadLettered != 0 {
		t.Fatalf("command consumer %+v: want no dead letter", st)
	}
}

// A state the correlator cannot restore (a newer version's, here) ends its
// term with the error, rather than leaving it holding the lease and taking
// commands while consuming no signal.
func TestStateNotRestoredEndsTheTerm(t *testing.T) {
	for _, api := range []bool{false, true} {
		r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
		if api {
			// The API ends with the term: left answering 503, it would
			// keep the service up doing nothing.
			r.cfg.API = APIConfig{Listen: "127.0.0.1:0", Token: apiToken}
		}
		svc, err := New(context.Background(), r.js, r.cfg, r.log)
		if err != nil {
			t.Fatal(err)
		}
		st := svc.proc.cfg.State
		store, err := r.js.ObjectStore(context.Background(), st.Bucket)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := store.PutBytes(context.Background(), st.Key, []byte(`{"version":999}`)); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- svc.Run(ctx) }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "restore") {
				t.Fatalf("api %v: Run = %v, want the restore's error", api, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("api %v: the service goes on with a state it could not restore", api)
		}
		if svc.proc.leading.Load() {
			t.Fatal("still leading after the term ended")
		}
	}
}

// streamIncidentEvents reads every incident event on the stream, in order.
func streamIncidentEvents(t *testing.T, js jetstream.JetStream) []*event.Envelope {
	t.Helper()
	c, err := js.OrderedConsumer(context.Background(), bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{event.KindFilterAll(event.KindIncident)}})
	if err != nil {
		t.Fatal(err)
	}
	var out []*event.Envelope
	for {
		batch, err := c.FetchNoWait(100)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			e, err := event.Parse(m.Data())
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, e)
		}
		if n == 0 {
			return out
		}
	}
}

// waitIncidents reads the incident events with status until want arrived
// (or 30 s passed) and returns their states.
func waitIncidents(t *testing.T, js jetstream.JetStream, status string, want int) []correlate.State {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		var got []correlate.State
		for _, e := range streamIncidentEvents(t, js) {
			var b correlate.State
			if err := e.DecodeBody(&b); err != nil {
				t.Fatal(err)
			}
			if b.Status == status {
				got = append(got, b)
			}
		}
		if len(got) >= want || time.Now().After(deadline) {
			if len(got) != want {
				t.Fatalf("%d %s incident events, want %d", len(got), status, want)
			}
			return got
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A command taken from incidents.command.<id> is timed when the stream
// stored it, what MTTA is measured to, whatever time its body names (no
// server's clock); a restart keeps that time in the saved state.
func TestNATSCommandIsTimedWhenStored(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	_, stop := r.start()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)[0]
	ctx := context.Background()
	cmd := []byte(`{"action":"ack","by":"ana","time":"2020-01-01T00:00:00Z"}`)
	ack, err := r.js.Publish(ctx, event.IncidentCommandPrefix+"."+opened.IncidentID, cmd)
	if err != nil {
		t.Fatal(err)
	}
	stream, err := r.js.Stream(ctx, bus.StreamIncidents)
	if err != nil {
		t.Fatal(err)
	}
	stored, err := stream.GetMsg(ctx, ack.Sequence)
	if err != nil {
		t.Fatal(err)
	}
	acked := waitIncidents(t, r.js, event.IncidentAcknowledged, 1)[0]
	if !acked.AcknowledgedAt.Equal(stored.Time) {
		t.Fatalf("acknowledged at %v, want when the stream stored the command (%v)", acked.AcknowledgedAt, stored.Time)
	}
	stop()
	svc, stop := r.start()
	defer stop()
	// restored before it leads: then the incident is in memory
	var st correlate.State
	for deadline := time.Now().Add(20 * time.Second); st.IncidentID == ""; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("after a restart: incident %s not in memory", opened.IncidentID)
		}
		for _, s := range svc.proc.Incidents() {
			if s.IncidentID == opened.IncidentID {
				st = s
			}
		}
	}
	if st.State != correlate.StatusAcknowledged || !st.AcknowledgedAt.Equal(stored.Time) {
		t.Fatalf("after a restart: %s, acknowledged at %v; want acknowledged at %v", st.State, st.AcknowledgedAt, stored.Time)
	}
}

// A correlator opens an incident (its event stored: on call is paged) and
// crashes before its next save; on call acknowledges the incident over
// NATS. The next instance restores a state without the incident, and
// takes the command before the signal that opened it comes back (after
// ack_wait): it waits for it (ErrCatchingUp), instead of dead-lettering
// the command for an unknown incident, so the incident comes back
// acknowledged.
func TestCommandWaitsForTheSignalsFromBeforeARestore(t *testing.T) {
	for _, ackWait := range []time.Duration{3 * time.Second, time.Minute} {
		t.Run(ackWait.String(), func(t *testing.T) { commandWaitsForTheSignals(t, ackWait) })
	}
}

// commandWaitsForTheSignals is the test with the signals' ack_wait given:
// a minute outlasts what the commands' MaxDeliver (3) would allow
// deliveries held a fixed while and naked.
func commandWaitsForTheSignals(t *testing.T, ackWait time.Duration) {
	r := newStormRig(t, Config{Lease: LeaseConfig{Disabled: true}})
	r.cfg.State.SaveEvery = time.Hour
	r.cfg.Consumer.AckWait = ackWait
	_, crash := r.startCrashable()
	r.publish(alertEvent(t, "HighLatency", "search", 12*time.Second, 0))
	opened := waitIncidents(t, r.js, event.IncidentOpened, 1)[0]
	crash() // a crash: no last save, no ack

	cmd, _ := json.Marshal(correlate.Command{Action: "ack", By: "ana"})
	if _, err := r.js.Publish(context.Background(), event.IncidentCommandPrefix+"."+opened.IncidentID, cmd); err != nil {
		t.Fatal(err)
	}
	next, stop := r.start()
	defer stop()
	for deadline := time.Now().Add(ackWait + 30*time.Second); ; time.Sleep(50 * time.Millisecond) {
		var st correlate.State
		ok := false
		for _, s := range next.proc.Incidents() {
			if s.IncidentID == opened.IncidentID {
				st, ok = s, true
			}
		}
		if ok && !st.AcknowledgedAt.IsZero() {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("incident %s known %v, acknowledged at %v; want it back, acknowledged (commands: %+v)", opened.IncidentID, ok, st.AcknowledgedAt, next.commands.Stats())
		}
	}
	if st := next.commands.Stats(); st.DeadLettered != 0 {
		t.Fatalf("commands: %+v, want none dead-lettered", st)
	}
}

// A term that finds no saved state (deleted since, or never saved) starts
// empty, not with what an earlier term of this process held.
func TestRestoreOfNothingForgetsTheLastTerm(t *testing.T) {
	r := newStormRig(t, Config{})
	_, err := r.js.CreateOrUpdateObjectStore(context.Background(), jetstream.ObjectStoreConfig{Bucket: "restore-nothing"})
	if err != nil {
		t.Fatal(err)
	}
	proc, err := NewProcessor(r.cfg, r.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := stagetest.Start(t, proc, stage.Config{TickEvery: time.Second})
	h.Feed(alertEvent(t, "HighLatency", "web", 0, 0))
	if n := len(proc.Incidents()); n != 1 {
		t.Fatalf("%d incidents after the alert, want 1", n)
	}
	objects, err := stage.NewFencedObjects(context.Background(), r.js, "restore-nothing")
	if err != nil {
		t.Fatal(err)
	}
	d := durable{Processor: proc, HeldOutputs: new(stage.HeldOutputs), objects: objects, key: "correlator", fenced: new(atomic.Bool)}
	if err := d.Restore(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n := len(proc.Incidents()); n != 0 {
		t.Fatalf("%d incidents after restoring nothing, want none", n)
	}
}

// A correlator whose terms end in errors (a state it cannot restore)
// stands by and tries again every few seconds for ever: /readyz says so
// until a term restores, instead of ready while it consumes nothing.
func TestReadinessFailsWhileTermsCannotRestore(t *testing.T) {
	r := newStormRig(t, Config{})
	ctx := context.Background()
	r.cfg.State.Bucket = "ready-broken"
	store, err := stage.OpenStateStore(ctx, r.js, r.cfg.State, "test")
	if err != nil {
		t.Fatal(err)
	}
	restore := testenv.NarrowStream(t, r.js, "OBJ_ready-broken", "$O.ready-broken.M.>")
	if _, err := store.PutBytes(ctx, "correlator", []byte(`{}`)); err == nil {
		t.Fatal("put while the bucket refuses chunks succeeded")
	}
	restore()
	svc, stop := r.start()
	defer stop()
	check := svc.Checks()[0]
	for deadline := time.Now().Add(20 * time.Second); !errors.Is(check.Fn(ctx), stage.ErrBrokenObject); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("readiness %v while the state cannot be restored, want it to name the broken state", check.Fn(ctx))
		}
	}
	// Another instance taking the lease (the failing one releases it at
	// once) makes this one a standby like any other: ready, or a
	// healthy cluster would page for a pod not ready. Let go, the lease
	// comes back here, and so does the failure.
	other, err := r.cfg.Lease.Open(ctx, r.js, "correlator."+svc.proc.cfg.Consumer.Durable)
	if err != nil {
		t.Fatal(err)
	}
	actx, cancelAcquire := context.WithTimeout(ctx, 20*time.Second)
	defer cancelAcquire()
	if err := other.Acquire(actx); err != nil {
		t.Fatal(err)
	}
	if err := check.Fn(ctx); err != nil {
		t.Fatalf("readiness %v while another instance holds the lease, want ready", err)
	}
	if err := other.Release(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); !errors.Is(check.Fn(ctx), stage.ErrBrokenObject); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("readiness %v once the lease is back and the state still cannot be restored", check.Fn(ctx))
		}
	}
	if err := store.Delete(ctx, "correlator"); err != nil {
		t.Fatal(err)
	}
	waitLeading(t, svc)
	if err := check.Fn(ctx); err != nil {
		t.Fatalf("readiness %v once a term restored", err)
	}
}

// A state object naming chunks the bucket does not hold (a nats.go put
// whose chunks were refused and whose meta landed, as an earlier version
// could leave) stops the restore at once, saying how to start without it,
// instead of after nats.go's read timeout with "read pipe: i/o timeout".
func TestRestoreOfABrokenStateSaysHowToStartWithoutIt(t *testing.T) {
	r := newStormRig(t, Config{})
	ctx := context.Background()
	store, err := r.js.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "restore-broken"})
	if err != nil {
		t.Fatal(err)
	}
	restore := testenv.NarrowStream(t, r.js, "OBJ_restore-broken", "$O.restore-broken.M.>")
	if _, err := store.PutBytes(ctx, "correlator", []byte(`{}`)); err == nil {
		t.Fatal("put while the bucket refuses chunks succeeded")
	}
	if _, err := store.GetInfo(ctx, "correlator"); err != nil {
		t.Fatalf("the put's meta did not land (%v): the test makes no broken object", err)
	}
	restore()
	cfg := r.cfg
	cfg.State.Bucket = "restore-broken"
	proc, err := NewProcessor(cfg, r.log, nil)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := stage.NewFencedObjects(ctx, r.js, "restore-broken")
	if err != nil {
		t.Fatal(err)
	}
	d := durable{Processor: proc, HeldOutputs: new(stage.HeldOutputs), objects: objects, key: "correlator", fenced: new(atomic.Bool)}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second) // under nats.go's 5 s read timeout
	defer cancel()
	err = d.Restore(ctx)
	if !errors.Is(err, stage.ErrBrokenObject) || !strings.Contains(err.Error(), "nats object rm restore-broken correlator") {
		t.Fatalf("restore of a broken state: %v, want stage.ErrBrokenObject naming the object to delete", err)
	}
}

// The events stream drops a firing alert's resends within its duplicate
// window (streams.duplicate_window), as they keep the first send's id: the
// correlator waits that long past an alert's expiry for one, or an
// operator's longer window would resolve alerts Prometheus still sends.
func TestAlertExpiryWaitsForTheStreamsDuplicateWindow(t *testing.T) {
	r := newStormRig(t, Config{})
	ctx := context.Background()
	s, err := r.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	sc := s.CachedInfo().Config
	sc.Duplicates = 20 * time.Minute
	if _, err := r.js.UpdateStream(ctx, sc); err != nil {
		t.Fatal(err)
	}
	svc, err := New(ctx, r.js, r.cfg, r.log)
	if err != nil {
		t.Fatal(err)
	}
	if got := svc.proc.cfg.Rules.ResendGap; got != 20*time.Minute {
		t.Errorf("resend gap %s, want the stream's duplicate window, 20m", got)
	}
}
