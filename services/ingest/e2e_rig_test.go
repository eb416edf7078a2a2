package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/aiops-dev/aiops/services/logminer"
	"github.com/aiops-dev/aiops/services/writer"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// e2eToken is the bearer token of the rig's gateway.
const e2eToken = "e2e-token-0123456789abcdef"

// e2eRig is the whole path a producer's request takes, on real servers: the
// gateway on a real listener publishing through bus.Publisher to an
// embedded JetStream (file storage, the production default), and the writer
// consuming from it into a fresh, migrated ClickHouse database.
type e2eRig struct {
	t    testing.TB
	nats *testenv.NATSServer
	js   jetstream.JetStream
	conn driver.Conn // for the test's queries; nil without ClickHouse
	url  string      // http://127.0.0.1:port of the gateway
	http *http.Client
	// consumers are the durables drained waits for, upstream first.
	consumers []string
}

type rigOptions struct {
	// noStore leaves ClickHouse and the writer out (the benchmark).
	noStore bool
	// streams replaces bus.DefaultStreams().
	streams []jetstream.StreamConfig
	// change adjusts the gateway's config.
	change func(*ServerConfig)
	// logminer also runs the log miner, whose templated copies the writer
	// stores beside the raw logs.
	logminer bool
}

func newE2ERig(t testing.TB, o rigOptions) *e2eRig {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: needs JetStream and ClickHouse")
	}
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	r := &e2eRig{t: t, nats: testenv.StartNATS(t), http: &http.Client{Timeout: time.Minute}}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() {
		if r.url == "" { // the rig failed to build
			cancel()
		}
	}()
	var run []func(context.Context) error // started once everything is built
	streams := o.streams
	if streams == nil {
		streams = bus.DefaultStreams()
	}
	// Fast reconnects, so the outage test sees the bus come back quickly.
	busCfg := bus.Config{URLs: []string{r.nats.URL()}, ReconnectWait: 100 * time.Millisecond}
	nc, js, err := bus.Connect(ctx, busCfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	r.js = js
	if err := bus.EnsureTopology(ctx, js, streams); err != nil {
		t.Fatal(err)
	}

	if !o.noStore {
		dsn := testenv.ClickHouse(t)
		st, err := store.Open(ctx, store.Config{DSN: dsn}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		if _, err := st.Migrate(ctx, store.Schema); err != nil {
			t.Fatal(err)
		}
		r.conn = st.Conn
		// The writer gets connections of its own, as in production.
		wnc, wjs, err := bus.Connect(ctx, busCfg, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(wnc.Close)
		wst, err := store.Open(ctx, store.Config{DSN: dsn}, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { wst.Close() })
		w, err := writer.New(ctx, wjs, wst.Conn, writer.Config{MaxAge: 100 * time.Millisecond}, log)
		if err != nil {
			t.Fatal(err)
		}
		run = append(run, w.Run)
		r.consumers = append(r.consumers, "writer")
	}
	if o.logminer {
		lnc, ljs, err := bus.Connect(ctx, busCfg, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(lnc.Close)
		lm, err := logminer.New(ctx, ljs, logminer.Config{}, log)
		if err != nil {
			t.Fatal(err)
		}
		run = append(run, lm.Run)
		r.consumers = append([]string{"logminer"}, r.consumers...)
	}

	pub, err := bus.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	cfg := ServerConfig{Config: Config{Tokens: []string{e2eToken}}, Listen: "127.0.0.1:0"}
	if o.change != nil {
		o.change(&cfg)
	}
	srv, err := NewServer(cfg, BusPublisher{Publisher: pub}, log)
	if err != nil {
		t.Fatal(err)
	}
	run = append(run, srv.Run)

	// Registered after every connection's cleanup, so it runs before them:
	// the gateway and the writer stop while their servers are still up.
	var running []chan error
	t.Cleanup(func() {
		cancel()
		for _, done := range running {
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stopping the rig: %v", err)
				}
			case <-time.After(time.Minute):
				t.Error("a rig component did not stop within a minute")
			}
		}
	})
	for _, f := range run {
		done := make(chan error, 1)
		go func() { done <- f(ctx) }()
		running = append(running, done)
	}
	r.url = "http://" + srv.Addr().String()
	return r
}

// answer is the gateway's answer to one POST.
type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) String() string { return fmt.Sprintf("%d %s", a.status, bytes.TrimSpace(a.body)) }

// accepted decodes a 200 answer of a JSON endpoint, failing on anything else.
func (a answer) accepted(t testing.TB) Response {
	t.Helper()
	if a.status != http.StatusOK {
		t.Fatalf("answer %s, want 200", a)
	}
	var resp Response
	if err := json.Unmarshal(a.body, &resp); err != nil {
		t.Fatalf("answer %s: %v", a, err)
	}
	return resp
}

// post sends body to path with the rig's token.
func (r *e2eRig) post(path, contentType, encoding string, body []byte) answer {
	r.t.Helper()
	h := http.Header{"Content-Type": {contentType}}
	if encoding != "" {
		h.Set("Content-Encoding", encoding)
	}
	return r.postHeaders(path, h, body)
}

// postHeaders sends body to path with the rig's token and the headers h.
func (r *e2eRig) postHeaders(path string, h http.Header, body []byte) answer {
	r.t.Helper()
	req, err := http.NewRequest(http.MethodPost, r.url+path, bytes.NewReader(body))
	if err != nil {
		r.t.Fatal(err)
	}
	req.Header = h.Clone()
	req.Header.Set("Authorization", "Bearer "+e2eToken)
	resp, err := r.http.Do(req)
	if err != nil {
		r.t.Fatalf("POST %s: %v", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		r.t.Fatalf("POST %s: reading the answer: %v", path, err)
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// drained waits until the writer's consumer (and the log miner's, first,
// when it runs) has acked everything in the stream; the writer acks only
// after the insert returned, so every accepted event is then in ClickHouse.
func (r *e2eRig) drained() {
	r.t.Helper()
	for _, durable := range r.consumers {
		r.drainedBy(durable)
	}
}

func (r *e2eRig) drainedBy(durable string) {
	r.t.Helper()
	ctx := context.Background()
	var state string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		s, err := r.js.Stream(ctx, bus.StreamEvents)
		if err != nil {
			state = err.Error()
			continue
		}
		c, err := r.js.Consumer(ctx, bus.StreamEvents, durable)
		if err != nil {
			state = err.Error()
			continue
		}
		info, err := c.Info(ctx)
		if err != nil {
			state = err.Error()
			continue
		}
		state = fmt.Sprintf("stream last seq %d, consumer acked floor %d, pending %d, ack pending %d",
			s.CachedInfo().State.LastSeq, info.AckFloor.Stream, info.NumPending, info.NumAckPending)
		if info.NumPending == 0 && info.NumAckPending == 0 && (durable != "writer" || info.AckFloor.Stream == s.CachedInfo().State.LastSeq) {
			return
		}
	}
	r.t.Fatalf("%s did not drain the stream within a minute: %s", durable, state)
}

// count runs a query answering one number.
func (r *e2eRig) count(query string, args ...any) uint64 {
	r.t.Helper()
	var n uint64
	if err := r.conn.QueryRow(context.Background(), query, args...).Scan(&n); err != nil {
		r.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// rows runs query and scans each row with scan, which gets a fresh scanner.
func (r *e2eRig) rows(query string, scan func(rows driver.Rows) error, args ...any) int {
	r.t.Helper()
	rows, err := r.conn.Query(context.Background(), query, args...)
	if err != nil {
		r.t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		if err := scan(rows); err != nil {
			r.t.Fatalf("%s: scan: %v", query, err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		r.t.Fatalf("%s: %v", query, err)
	}
	return n
}

// assertCounts checks, after the writer drained, that each table holds
// exactly the given number of rows, each id once: FINAL folds redelivered
// duplicates as the analyst's queries do, and count() = uniqExact(id) says
// no id is there twice under different sorting keys.
func (r *e2eRig) assertCounts(want map[string]uint64) {
	r.t.Helper()
	for _, table := range writer.EventTables {
		n := r.count("SELECT count() FROM " + table + " FINAL")
		ids := r.count("SELECT uniqExact(id) FROM " + table + " FINAL")
		if n != want[table] || ids != want[table] {
			r.t.Errorf("%s: %d rows with %d distinct ids, want %d", table, n, ids, want[table])
		}
	}
}

// storedEvent is one row of the events table.
type storedEvent struct {
	Kind, Source, Service, Severity, Fingerprint string
	Time, ObservedTime                           time.Time
	Labels, Resource                             map[string]string
	Links                                        []string
	Body                                         any // the body column, JSON-decoded
	Extra                                        any // the extra column, JSON-decoded; nil when empty
	SchemaVersion                                uint16
}

// event reads the events row of id, failing unless there is exactly one.
func (r *e2eRig) event(id string) storedEvent {
	r.t.Helper()
	var got []storedEvent
	// The writer inserts each table apart: a test that waited for the
	// alerts table's row may look here before this one is in.
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(200 * time.Millisecond) {
		got = r.eventRows(id)
		if len(got) > 0 || time.Now().After(deadline) {
			break
		}
	}
	if len(got) != 1 {
		r.t.Fatalf("events: %d rows with id %s, want 1", len(got), id)
	}
	return got[0]
}

// eventRows are the events table's rows of id.
func (r *e2eRig) eventRows(id string) []storedEvent {
	r.t.Helper()
	var got []storedEvent
	r.rows(`SELECT kind, time, observed_time, source, service, severity, fingerprint,
		labels.key, labels.value, resource.key, resource.value, links, body, extra, schema_version
		FROM events FINAL WHERE id = ?`, func(rows driver.Rows) error {
		var (
			e              storedEvent
			lk, lv, rk, rv []string
			body, extra    string
		)
		if err := rows.Scan(&e.Kind, &e.Time, &e.ObservedTime, &e.Source, &e.Service, &e.Severity, &e.Fingerprint,
			&lk, &lv, &rk, &rv, &e.Links, &body, &extra, &e.SchemaVersion); err != nil {
			return err
		}
		e.Time, e.ObservedTime = e.Time.UTC(), e.ObservedTime.UTC()
		e.Labels, e.Resource = nested(lk, lv), nested(rk, rv)
		if len(e.Links) == 0 {
			e.Links = nil
		}
		e.Body = jsonValue(r.t, "body", body)
		if extra != "" {
			e.Extra = jsonValue(r.t, "extra", extra)
		}
		got = append(got, e)
		return nil
	}, id)
	return got
}

// nested turns a Nested(key, value) column pair into a map (nil when empty).
func nested(keys, values []string) map[string]string {
	if len(keys) == 0 {
		return nil
	}
	m := make(map[string]string, len(keys))
	for i, k := range keys {
		m[k] = values[i]
	}
	return m
}

// jsonValue decodes s; numbers stay json.Number so 0.25 compares exactly.
func jsonValue(t testing.TB, what, s string) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader([]byte(s)))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s column %q is not JSON: %v", what, s, err)
	}
	return v
}

// mustJSON decodes a JSON literal written in a test, the way jsonValue does.
func mustJSON(t testing.TB, s string) any { return jsonValue(t, "expected", s) }

// same reports a difference between got and want (times are compared in
// UTC by the callers, so DeepEqual is exact).
func same[T any](t testing.TB, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// labels builds a map from alternating keys and values.
func labels(kv ...string) map[string]string {
	m := make(map[string]string, len(kv)/2)
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// withName is m plus __name__.
func withName(m map[string]string, name string) map[string]string {
	out := maps.Clone(m)
	if out == nil {
		out = map[string]string{}
	}
	out["__name__"] = name
	return out
}

// storedLog is one row of the logs table.
type storedLog struct {
	ID                                 string
	Time, ObservedTime                 time.Time
	Service, Source, Severity, Message string
	TemplateID, Template               string
	Params                             []string
	TraceID, SpanID, Fingerprint       string
	Labels                             map[string]string
	Links                              []string
	Derived                            uint8
}

// logs reads the logs rows matching where, by time then message.
func (r *e2eRig) logs(where string, args ...any) []storedLog {
	r.t.Helper()
	var out []storedLog
	r.rows(`SELECT id, time, observed_time, service, source, severity, message, template_id, template, params,
		trace_id, span_id, fingerprint, labels.key, labels.value, links, derived
		FROM logs FINAL WHERE `+where+` ORDER BY time, message`, func(rows driver.Rows) error {
		var (
			l      storedLog
			lk, lv []string
		)
		if err := rows.Scan(&l.ID, &l.Time, &l.ObservedTime, &l.Service, &l.Source, &l.Severity, &l.Message, &l.TemplateID, &l.Template,
			&l.Params, &l.TraceID, &l.SpanID, &l.Fingerprint, &lk, &lv, &l.Links, &l.Derived); err != nil {
			return err
		}
		l.Time, l.ObservedTime = l.Time.UTC(), l.ObservedTime.UTC()
		l.Labels = nested(lk, lv)
		if len(l.Params) == 0 {
			l.Params = nil
		}
		if len(l.Links) == 0 {
			l.Links = nil
		}
		out = append(out, l)
		return nil
	}, args...)
	return out
}

// storedSample is one row of the metric_samples table.
type storedSample struct {
	ID                   string
	Time                 time.Time
	Name                 string
	Value                float64
	Type, Unit           string
	Fingerprint, Service string
	Labels               map[string]string
}

// samples reads the metric_samples rows matching where, by name, time, value.
func (r *e2eRig) samples(where string, args ...any) []storedSample {
	r.t.Helper()
	var out []storedSample
	r.rows(`SELECT id, time, name, value, type, unit, fingerprint, service, labels.key, labels.value
		FROM metric_samples FINAL WHERE `+where+` ORDER BY name, time, value`, func(rows driver.Rows) error {
		var (
			s      storedSample
			lk, lv []string
		)
		if err := rows.Scan(&s.ID, &s.Time, &s.Name, &s.Value, &s.Type, &s.Unit, &s.Fingerprint, &s.Service, &lk, &lv); err != nil {
			return err
		}
		s.Time = s.Time.UTC()
		s.Labels = nested(lk, lv)
		out = append(out, s)
		return nil
	}, args...)
	return out
}

// storedAlert is one row of the alerts table.
type storedAlert struct {
	ID                  string
	Time                time.Time
	AlertName, Status   string
	Fingerprint         string
	StartsAt, EndsAt    time.Time
	Severity, Service   string
	Labels, Annotations map[string]string
	GeneratorURL        string
}

// alerts reads the alerts rows matching where, by time then status.
func (r *e2eRig) alerts(where string, args ...any) []storedAlert {
	r.t.Helper()
	var out []storedAlert
	r.rows(`SELECT id, time, alert_name, status, fingerprint, starts_at, ends_at, severity, service,
		labels.key, labels.value, annotations.key, annotations.value, generator_url
		FROM alerts FINAL WHERE `+where+` ORDER BY time, alert_name, status`, func(rows driver.Rows) error {
		var (
			a              storedAlert
			lk, lv, ak, av []string
		)
		if err := rows.Scan(&a.ID, &a.Time, &a.AlertName, &a.Status, &a.Fingerprint, &a.StartsAt, &a.EndsAt, &a.Severity, &a.Service,
			&lk, &lv, &ak, &av, &a.GeneratorURL); err != nil {
			return err
		}
		a.Time, a.StartsAt, a.EndsAt = a.Time.UTC(), a.StartsAt.UTC(), a.EndsAt.UTC()
		a.Labels, a.Annotations = nested(lk, lv), nested(ak, av)
		out = append(out, a)
		return nil
	}, args...)
	return out
}

// storedChange is one row of the changes table.
type storedChange struct {
	ID                                     string
	Time                                   time.Time
	Service, Type, Version, Author, Commit string
	URL, Description                       string
	Labels                                 map[string]string
}

// changes reads the changes rows matching where, by time then service.
func (r *e2eRig) changes(where string, args ...any) []storedChange {
	r.t.Helper()
	var out []storedChange
	r.rows(`SELECT id, time, service, change_type, version, author, commit, url, description, labels.key, labels.value
		FROM changes FINAL WHERE `+where+` ORDER BY time, service`, func(rows driver.Rows) error {
		var (
			c      storedChange
			lk, lv []string
		)
		if err := rows.Scan(&c.ID, &c.Time, &c.Service, &c.Type, &c.Version, &c.Author, &c.Commit, &c.URL, &c.Description, &lk, &lv); err != nil {
			return err
		}
		c.Time = c.Time.UTC()
		c.Labels = nested(lk, lv)
		out = append(out, c)
		return nil
	}, args...)
	return out
}
