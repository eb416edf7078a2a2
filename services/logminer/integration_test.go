package logminer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// rig is one test's embedded JetStream with the default streams.
type rig struct {
	t    *testing.T
	nats *testenv.NATSServer
	log  zerolog.Logger
}

func newRig(t *testing.T) *rig {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	r := &rig{t: t, nats: testenv.StartNATS(t), log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)}
	_, js := r.connect()
	if err := bus.EnsureTopology(context.Background(), js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rig) connect() (*nats.Conn, jetstream.JetStream) {
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{r.nats.URL()}}, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(nc.Close)
	return nc, js
}

// start runs a logminer on a connection of its own; stop cancels it and
// waits for Run (which saves the state) to return.
func (r *rig) start(cfg Config) (l *Logminer, stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	_, js := r.connect()
	l, err := New(ctx, js, cfg, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	finished := make(chan error, 1)
	go func() { finished <- l.Run(ctx) }()
	return l, func() {
		cancel()
		select {
		case err := <-finished:
			if err != nil {
				r.t.Errorf("logminer Run: %v", err)
			}
		case <-time.After(time.Minute):
			r.t.Fatal("logminer did not stop within a minute")
		}
	}
}

// rawLog is one raw log the test publishes and what the miner must find.
type rawLog struct {
	env      *event.Envelope
	template string
	params   []string
}

// rawLogs makes n raw logs of three kinds over two services, the maskers'
// variables (numbers, durations, addresses, hex) in known places. The
// lines of kind 2 ("payment ... failed") are of error severity.
func rawLogs(t testing.TB, n, offset int, at time.Time) []rawLog {
	out := make([]rawLog, 0, n)
	for j := range n {
		i := j + offset
		svc := []string{"checkout", "payments"}[i%2]
		var msg, tpl string
		var params []string
		sev := event.SeverityInfo
		switch i % 3 {
		case 0:
			params = []string{fmt.Sprint(1000 + i), fmt.Sprintf("%dms", 5+i%300)}
			msg, tpl = fmt.Sprintf("request %s served in %s", params[0], params[1]), "request <*> served in <*>"
		case 1:
			params = []string{fmt.Sprintf("10.0.%d.%d", i%200, i%250), fmt.Sprint(1024 + i%5000)}
			msg, tpl = fmt.Sprintf("connection from %s:%s refused", params[0], params[1]), "connection from <*>:<*> refused"
		case 2:
			params = []string{fmt.Sprintf("0x%x", 0x10000+i*7919), fmt.Sprint(500 + i%4)}
			msg, tpl = fmt.Sprintf("payment %s failed with code %s", params[0], params[1]), "payment <*> failed with code <*>"
			sev = event.SeverityError
		}
		e, err := event.New(event.KindLog, svc, at.Add(time.Duration(i)*time.Millisecond), event.LogBody{Message: msg, TraceID: fmt.Sprintf("trace-%d", i)})
		if err != nil {
			t.Fatal(err)
		}
		e.Severity = sev
		e.Labels = map[string]string{"env": "test"}
		e.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, e.Resource)
		out = append(out, rawLog{env: e, template: tpl, params: params})
	}
	return out
}

func publishRaw(t testing.TB, js jetstream.JetStream, logs []rawLog) {
	pub, err := bus.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]bus.Message, len(logs))
	for i, l := range logs {
		data, err := json.Marshal(l.env)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = bus.Message{Subject: l.env.Subject(), ID: l.env.ID, Data: data}
	}
	if _, err := pub.PublishAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// received is one output of the miner as it lies in the stream.
type received struct {
	subject string
	env     event.Envelope
}

// collect reads the EVENTS stream on filter from the start until want
// messages arrived (or fails after limit).
func collect(t *testing.T, js jetstream.JetStream, filter string, want int, limit time.Duration) []received {
	t.Helper()
	ctx := context.Background()
	c, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{filter}})
	if err != nil {
		t.Fatal(err)
	}
	var out []received
	deadline := time.Now().Add(limit)
	for len(out) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: got %d messages within %s, want %d", filter, len(out), limit, want)
		}
		batch, err := c.Fetch(want-len(out), jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			var e event.Envelope
			if err := json.Unmarshal(m.Data(), &e); err != nil {
				t.Fatalf("%s: %v", m.Subject(), err)
			}
			out = append(out, received{subject: m.Subject(), env: e})
		}
	}
	return out
}

// countsBy sums the log_template_count samples per service and template id
// until they add up to total (samples of one series may fall into several
// intervals).
func countsBy(t *testing.T, js jetstream.JetStream, total int) map[[2]string]float64 {
	t.Helper()
	sums := map[[2]string]float64{}
	ctx := context.Background()
	c, err := js.OrderedConsumer(ctx, bus.StreamEvents, jetstream.OrderedConsumerConfig{FilterSubjects: []string{"events.metric.>"}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	seen := 0.0
	for seen < float64(total) {
		if time.Now().After(deadline) {
			t.Fatalf("template counts add up to %g within 30s, want %d: %v", seen, total, sums)
		}
		batch, err := c.Fetch(100, jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			e, err := event.Parse(m.Data()) // the writer's strict decoder
			if err != nil {
				t.Fatalf("metric sample refused by event.Parse: %v", err)
			}
			var b event.MetricBody
			if err := e.DecodeBody(&b); err != nil {
				t.Fatal(err)
			}
			if b.Name != MetricTemplateCount || b.Type != event.MetricGauge || e.Labels["service"] != e.Service || e.Labels["__name__"] != MetricTemplateCount {
				t.Fatalf("sample %+v body %+v", e, b)
			}
			if e.Time.Truncate(time.Second) != e.Time {
				t.Errorf("sample time %v is not an interval end", e.Time)
			}
			sums[[2]string{e.Service, e.Labels["template_id"]}] += *b.Value
			seen += *b.Value
		}
	}
	return sums
}

// checkTemplated checks that every raw log came back once, templated.
func checkTemplated(t *testing.T, logs []rawLog, got []received) {
	t.Helper()
	byRaw := map[string]received{}
	for _, g := range got {
		if len(g.env.Links) != 1 {
			t.Fatalf("templated log %s links %v, want the raw id", g.env.ID, g.env.Links)
		}
		if _, dup := byRaw[g.env.Links[0]]; dup {
			t.Fatalf("raw log %s templated twice", g.env.Links[0])
		}
		byRaw[g.env.Links[0]] = g
	}
	for _, l := range logs {
		g, ok := byRaw[l.env.ID]
		if !ok {
			t.Fatalf("raw log %s (%q) not templated", l.env.ID, mustBody(t, l.env).Message)
		}
		if err := g.env.Validate(); err != nil {
			t.Fatalf("templated log refused by event.Validate: %v", err)
		}
		if g.env.Kind != event.KindLog || g.subject != "events.log."+l.env.Service+".templated" || g.env.ID == l.env.ID || !event.ValidID(g.env.ID) || g.env.Source != Source {
			t.Fatalf("templated log kind %q subject %q id %q for raw %s", g.env.Kind, g.subject, g.env.ID, l.env.ID)
		}
		b := mustBody(t, &g.env)
		want := logmine.IDOf(l.template).String()
		if b.Template != l.template || b.TemplateID != want || !slices.Equal(b.Params, l.params) {
			t.Fatalf("raw %q: template %q id %s params %q, want %q %s %q", mustBody(t, l.env).Message, b.Template, b.TemplateID, b.Params, l.template, want, l.params)
		}
		if b.Message != mustBody(t, l.env).Message || b.TraceID != mustBody(t, l.env).TraceID {
			t.Fatalf("message or trace changed: %+v", b)
		}
		if g.env.Labels["template_id"] != want || g.env.Labels["env"] != "test" || g.env.Severity != l.env.Severity || !g.env.Time.Equal(l.env.Time) {
			t.Fatalf("envelope %+v lost the raw log's identity", g.env)
		}
	}
}

func mustBody(t *testing.T, e *event.Envelope) event.LogBody {
	var b event.LogBody
	if err := e.DecodeBody(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTemplatedRoundTrip: raw logs published to JetStream come back
// templated; template events, counts and an error burst follow; a restart of
// the logminer and of the NATS server keeps the state and the ids.
func TestTemplatedRoundTrip(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	cfg := Config{Interval: time.Second, State: StateConfig{SaveEvery: time.Hour}}
	l, stop := r.start(cfg)

	base := time.Now().UTC() // live logs: a line late by more than max_lateness is not counted
	first := rawLogs(t, 600, 0, base)
	publishRaw(t, js, first)
	checkTemplated(t, first, collect(t, js, "events.log.*.templated", len(first), 30*time.Second))

	// One "new" event per template, linking the raw log that created it.
	tplEvents := collect(t, js, "events.log_template.>", 3, 10*time.Second)
	ids := map[string]bool{}
	for _, g := range tplEvents {
		var b event.LogTemplateBody
		if err := g.env.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		if b.Status != event.TemplateNew || logmine.IDOf(b.Template).String() != b.TemplateID || len(g.env.Links) != 1 || b.Example == "" {
			t.Fatalf("template event %+v body %+v", g.env, b)
		}
		ids[b.TemplateID] = true
	}
	for _, tpl := range []string{"request <*> served in <*>", "connection from <*>:<*> refused", "payment <*> failed with code <*>"} {
		if !ids[logmine.IDOf(tpl).String()] {
			t.Errorf("no new-template event for %q: %v", tpl, ids)
		}
	}

	// Counts: every line counted once, per service and template.
	sums := countsBy(t, js, len(first))
	want := map[[2]string]float64{}
	for _, l := range first {
		want[[2]string{l.env.Service, logmine.IDOf(l.template).String()}]++
	}
	for k, v := range want {
		if sums[k] != v {
			t.Errorf("count of %v: %g, want %g", k, sums[k], v)
		}
	}

	// 100 error lines per service of a template never seen erring: a burst
	// each, linking some of the raw error logs.
	anomalies := collect(t, js, "events.anomaly.>", 2, 10*time.Second)
	rawIDs := map[string]bool{}
	for _, l := range first {
		rawIDs[l.env.ID] = true
	}
	for _, g := range anomalies {
		e, err := event.Parse(mustJSON(t, g.env))
		if err != nil {
			t.Fatalf("anomaly refused by event.Parse: %v", err)
		}
		var b event.AnomalyBody
		if err := e.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		if b.Detector != BurstDetector || e.Labels["template_id"] != logmine.IDOf("payment <*> failed with code <*>").String() || *b.Value < 10 || len(e.Links) == 0 || !strings.Contains(b.Reason, "payment <*> failed") {
			t.Fatalf("burst %+v body %+v", e, b)
		}
		for _, id := range e.Links {
			if !rawIDs[id] {
				t.Fatalf("burst links %s, not a raw log", id)
			}
		}
	}

	// Restart the logminer and the NATS server under it.
	templatesBefore, statsBefore := l.Miner().Templates(), l.Miner().Stats()
	stop()
	r.nats.Restart()
	_, js = r.connect()
	l2, stop2 := r.start(cfg)
	defer stop2()
	second := rawLogs(t, 300, 600, base.Add(time.Minute))
	publishRaw(t, js, second)
	all := collect(t, js, "events.log.*.templated", len(first)+len(second), 30*time.Second)
	checkTemplated(t, second, all[len(first):])
	// The state was restored before the first delivery: the same
	// templates, their counts going on from where they were.
	wantCounts := map[logmine.TemplateID]uint64{}
	for _, tpl := range templatesBefore {
		wantCounts[tpl.ID] = tpl.Count
	}
	for _, l := range second {
		wantCounts[logmine.IDOf(l.template)]++
	}
	if got := l2.Miner().Templates(); len(got) != len(templatesBefore) || len(got) != len(wantCounts) {
		t.Fatalf("state not restored: %v, want %v", got, templatesBefore)
	} else {
		for _, tpl := range got {
			if tpl.Count != wantCounts[tpl.ID] {
				t.Fatalf("template %q: count %d after the restart, want %d (restored, plus the new lines)", tpl.Template, tpl.Count, wantCounts[tpl.ID])
			}
		}
	}
	// No template is new after the restart: no more template events.
	if tpl := collect(t, js, "events.log_template.>", 3, 5*time.Second); len(tpl) != 3 {
		t.Fatalf("%d template events after restart, want the 3 from before", len(tpl))
	}
	if st := l2.Miner().Stats(); st.Created != statsBefore.Created || st.Lines != statsBefore.Lines+uint64(len(second)) {
		t.Errorf("restored miner: created %d lines %d, want %d (no new template) and %d", st.Created, st.Lines, statsBefore.Created, statsBefore.Lines+uint64(len(second)))
	}

	// The NATS server restarts under the running logminer: it reconnects
	// and goes on mining.
	r.nats.Restart()
	_, js = r.connect()
	third := rawLogs(t, 300, 900, base.Add(2*time.Minute))
	publishRaw(t, js, third)
	all = collect(t, js, "events.log.*.templated", len(first)+len(second)+len(third), 60*time.Second)
	checkTemplated(t, third, all[len(first)+len(second):])
}

func mustJSON(t *testing.T, e event.Envelope) []byte {
	data, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestRejectsWhatIsNotARawLog: events on events.log.* that are not raw logs
// are dead-lettered with a reason naming the problem, and the next valid log
// is still mined.
func TestRejectsWhatIsNotARawLog(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	_, stop := r.start(Config{Interval: time.Minute, State: StateConfig{Disabled: true}})
	defer stop()
	ctx := context.Background()

	metric, err := event.New(event.KindMetric, "api", time.Now(), event.MetricBody{Name: "x", Value: new(float64)})
	if err != nil {
		t.Fatal(err)
	}
	templated := rawLogs(t, 1, 0, time.Now())[0].env
	templated.Body = json.RawMessage(`{"message":"m","template_id":"00000000000000aa"}`)
	bad := []struct {
		data   []byte
		reason string
	}{
		{[]byte(`{"not":"an envelope"`), "not valid JSON"},
		{mustJSON(t, *metric), `kind "metric", want log`},
		{mustJSON(t, *templated), "already has template_id"},
	}
	for i, b := range bad {
		if _, err := js.PublishMsg(ctx, &nats.Msg{Subject: "events.log.api", Data: b.data, Header: nats.Header{"Nats-Msg-Id": []string{fmt.Sprint("bad-", i)}}}); err != nil {
			t.Fatal(err)
		}
	}
	good := rawLogs(t, 1, 0, time.Now())
	publishRaw(t, js, good)
	checkTemplated(t, good, collect(t, js, "events.log.*.templated", 1, 10*time.Second))

	c, err := js.OrderedConsumer(ctx, bus.StreamDeadLetter, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	// Workers settle deliveries concurrently, so dead letters may come in
	// any order: each is matched by the msg id of the message it carries.
	reasons := map[string]string{}
	deadline := time.Now().Add(10 * time.Second)
	for len(reasons) < len(bad) && time.Now().Before(deadline) {
		batch, err := c.Fetch(len(bad), jetstream.FetchMaxWait(500*time.Millisecond))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			reasons[m.Headers().Get(bus.HeaderOriginalMsgID)] = m.Headers().Get(bus.HeaderDeadLetterReason)
		}
	}
	if len(reasons) != len(bad) {
		t.Fatalf("dead letters %v, want %d", reasons, len(bad))
	}
	for i, b := range bad {
		if got := reasons[fmt.Sprint("bad-", i)]; !strings.Contains(got, b.reason) {
			t.Errorf("dead letter bad-%d: reason %q, want it to contain %q", i, got, b.reason)
		}
	}
}

// TestUnreadableStateStartsEmpty: a saved state that cannot be read is
// reported (log and counter) and the logminer starts empty instead of
// refusing to run; the save on shutdown repairs it.
func TestUnreadableStateStartsEmpty(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	ctx := context.Background()
	store, err := openState(ctx, js, StateConfig{Bucket: "logminer"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.PutBytes(ctx, "logminer", []byte(`{"version":1,"miner":"bm90IGEgc25hcHNob3Q="}`)); err != nil {
		t.Fatal(err)
	}
	// Each run mines one line, so it has restored (or failed to) when
	// the line comes back templated.
	at := time.Now().Add(-time.Minute)
	publishRaw(t, js, rawLogs(t, 1, 0, at))
	l, stop := r.start(Config{})
	collect(t, js, "events.log.*.templated", 1, 10*time.Second)
	stop()
	if got, tpls := l.metrics.stateLoadFailures.Load(), l.Miner().Templates(); got != 1 || len(tpls) != 1 || tpls[0].Count != 1 {
		t.Fatalf("load failures %d, templates %v: want 1 and a miner that started empty and mined one line", got, tpls)
	}
	// The state saved on shutdown replaced it: the next run restores it.
	publishRaw(t, js, rawLogs(t, 1, 3, at)) // the same template
	l, stop = r.start(Config{})
	collect(t, js, "events.log.*.templated", 2, 10*time.Second)
	stop()
	if got, tpls := l.metrics.stateLoadFailures.Load(), l.Miner().Templates(); got != 0 || len(tpls) != 1 || tpls[0].Count != 2 {
		t.Fatalf("load failures %d, templates %v after the state was saved over: want 0 and the restored template with both lines", got, tpls)
	}
}

// A minute's counts the stream had not stored when the logminer stopped
// are saved with the state (which no longer counts them), and the next
// run sends them.
func TestCountsNotStoredAtTheStopAreSentAfterTheRestart(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	ctx := context.Background()
	at := time.Now().Add(-time.Minute)
	publishRaw(t, js, rawLogs(t, 6, 0, at))
	l, stop := r.start(Config{})
	collect(t, js, "events.log.*.templated", 6, 10*time.Second)

	// EVENTS stops taking samples and bursts, and only them.
	restore := testenv.NarrowStream(t, js, bus.StreamEvents,
		event.KindFilterAll(event.KindLog), event.KindFilterAll(event.KindAlert), event.KindFilterAll(event.KindChange), event.KindFilterAll(event.KindIncident))
	end := time.Now().Truncate(time.Minute)
	if err := l.Flush(ctx, end); err == nil {
		t.Fatal("flush while the stream refuses samples: no error")
	}
	stop()
	restore()

	l, stop = r.start(Config{})
	defer stop()
	// Ticks until the counts arrived, not waiting for the minute's end.
	counted := make(chan struct{})
	go func() {
		for {
			select {
			case <-counted:
				return
			case <-time.After(100 * time.Millisecond):
				_ = l.Flush(ctx, end.Add(time.Minute))
			}
		}
	}()
	sums := countsBy(t, js, 6)
	close(counted)
	if len(sums) != 6 {
		t.Fatalf("counts after the restart: %v, want the 6 lines' series (2 services, 3 templates)", sums)
	}
}

// A new template's announcement the stream had not stored when the
// logminer stopped is saved with the state, and sent after the restart:
// the state knows the template, so the line's redelivery announces
// nothing.
func TestTemplateEventNotStoredAtTheStopIsSentAfterTheRestart(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	// EVENTS stops taking template events, and only them.
	restore := testenv.NarrowStream(t, js, bus.StreamEvents,
		event.KindFilterAll(event.KindLog), event.KindFilterAll(event.KindMetric), event.KindFilterAll(event.KindAlert),
		event.KindFilterAll(event.KindChange), event.KindFilterAll(event.KindIncident), event.KindFilterAll(event.KindAnomaly))
	publishRaw(t, js, rawLogs(t, 6, 0, time.Now().Add(-time.Minute)))
	l, stop := r.start(Config{})
	for deadline := time.Now().Add(20 * time.Second); l.miner.Stats().Templates < 3; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the miner knows %d templates, want 3", l.miner.Stats().Templates)
		}
	}
	stop()
	restore()
	l, stop = r.start(Config{})
	defer stop()
	// The restored outbox goes out with the first tick: ticked here, not
	// at the minute's end.
	ticking := make(chan struct{})
	go func() {
		for {
			select {
			case <-ticking:
				return
			case <-time.After(100 * time.Millisecond):
				_ = l.Flush(context.Background(), time.Now())
			}
		}
	}()
	if got := collect(t, js, event.KindFilterAll(event.KindLogTemplate), 3, 20*time.Second); len(got) != 3 {
		t.Fatalf("%d template events after the restart, want the 3 new templates'", len(got))
	}
	// The lines whose announcements were refused were naked, and came
	// back after the restart to a state that had counted them: mined
	// again, not counted again. (Every count the two runs made is in the
	// samples once every raw log was acked and an interval closed after.)
	ctx := context.Background()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := js.Consumer(ctx, bus.StreamEvents, "logminer")
		if err != nil {
			t.Fatal(err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.NumPending == 0 && info.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("raw logs not all acked: %d pending, %d not acked", info.NumPending, info.NumAckPending)
		}
	}
	ticking <- struct{}{} // no tick of the loop under way from now on
	if err := l.Flush(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	stream, err := js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx, jetstream.WithSubjectFilter("events.metric.>"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, c := range info.State.Subjects {
		n += int(c)
	}
	total := 0.0
	for _, g := range collect(t, js, "events.metric.>", n, 10*time.Second) {
		var b event.MetricBody
		if err := g.env.DecodeBody(&b); err != nil {
			t.Fatal(err)
		}
		total += *b.Value
	}
	if total != 6 {
		t.Fatalf("the samples count %g lines, want the 6 counted once", total)
	}
}
