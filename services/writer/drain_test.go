package writer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// The drain tests stop a writer that holds a batch it has not inserted (its
// MaxAge is an hour, its MaxRows above what was published) and check what
// becomes of the messages: inserted and acked when ClickHouse answers,
// naked when it does not, so that they come back at once and not after the
// consumer's ack wait, which is three hours here (max_age may be a third of
// it at most) so that only a nak can bring them back while the test runs.

const drainHeld = 300

func drainConfig() Config {
	return Config{
		MaxRows:      5000,
		MaxAge:       time.Hour,
		DrainTimeout: 2 * time.Second,
		Consumer: bus.ConsumerConfig{
			AckWait: 3 * time.Hour,
			Backoff: []time.Duration{100 * time.Millisecond},
		},
	}
}

// runningWriter is a writer whose stop is graceful (its context cancelled,
// its NATS connection left open), as on SIGTERM.
type runningWriter struct {
	*Writer
	cancel   context.CancelFunc
	finished chan error
	store    *store.Store
}

func (r *rig) runWriter(dsn string, cfg Config) *runningWriter {
	ctx, cancel := context.WithCancel(context.Background())
	_, js := r.connect()
	// The default dial timeout, as a service has: it also bounds the
	// handshake of a connection opened to a hung server, which the insert's
	// context does not interrupt.
	st, err := store.Open(ctx, store.Config{DSN: dsn}, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { st.Close() })
	w, err := New(ctx, js, st.Conn, cfg, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	rw := &runningWriter{Writer: w, cancel: cancel, finished: make(chan error, 1), store: st}
	go func() { rw.finished <- w.Run(ctx) }()
	r.t.Cleanup(func() { rw.stop(r.t) })
	return rw
}

// stop cancels the writer and returns what Run returned; a second call
// returns nil. Run must return within the time a service has to stop: past
// it the process ends, and what the writer did not nak by then waits for
// the ack wait.
func (w *runningWriter) stop(t *testing.T) error {
	t.Helper()
	w.cancel()
	select {
	case err, ok := <-w.finished:
		if ok {
			close(w.finished)
		}
		return err
	case <-time.After(service.DefaultShutdownTimeout):
		t.Fatalf("writer did not return within %s (service.DefaultShutdownTimeout) of its cancellation", service.DefaultShutdownTimeout)
		return nil
	}
}

// warmPool leaves a few idle connections in st's pool.
func warmPool(t *testing.T, st *store.Store) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if err := st.Conn.Ping(context.Background()); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

func publishEvents(t *testing.T, js jetstream.JetStream, n int) {
	t.Helper()
	pub, err := bus.NewPublisher(js)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	msgs := make([]bus.Message, n)
	for i := range msgs {
		e, raw := envelope(t, i, now.Add(time.Duration(i)*time.Millisecond))
		msgs[i] = bus.Message{Subject: e.Subject(), ID: e.ID, Data: raw}
	}
	if _, err := pub.PublishAll(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
}

// holding waits until the writer was handed all n messages and settled none
// (Outstanding also counts the slots of the fetch under way).
func (r *rig) holding(w *runningWriter, n int) {
	r.waitFor(time.Minute, fmt.Sprintf("writer holds %d messages", n), func() (bool, string) {
		s := w.Stats()
		return s.Delivered == uint64(n), fmt.Sprintf("%+v", s)
	})
	if s := w.Stats(); s.Acked != 0 || s.Naked != 0 {
		r.t.Fatalf("before the stop: %+v, want nothing settled", s)
	}
}

// TestDrainInsertsWhatItHolds: ClickHouse answers, so the stop inserts the
// held batch and acks it.
func TestDrainInsertsWhatItHolds(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	w := r.runWriter(r.dsn, drainConfig())
	publishEvents(t, js, drainHeld)
	r.holding(w, drainHeld)
	if n := r.count("SELECT count() FROM events"); n != 0 {
		t.Fatalf("%d rows inserted before the stop, want the batch held", n)
	}

	if err := w.stop(t); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if s := w.Stats(); s.Acked != drainHeld || s.Naked != 0 || s.Outstanding != 0 {
		t.Fatalf("after the stop: %+v, want %d acked", s, drainHeld)
	}
	if n := r.count("SELECT count() FROM events"); n != drainHeld {
		t.Fatalf("%d rows after the stop, want %d", n, drainHeld)
	}
	if ok, state := r.drained(js); !ok {
		t.Fatalf("consumer after the stop: %s", state)
	}
}

// TestDrainNaksWhatItCouldNotWrite: ClickHouse is gone (connections refused)
// or hangs (connections open, no answer) when the writer stops. Every held
// message is naked before Run returns, comes back at its next fetch with
// its delivery count up, and a writer started after ClickHouse is back
// stores each one exactly once.
func TestDrainNaksWhatItCouldNotWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		cut  func(t *testing.T, target string) (addr string, cutIt func())
	}{
		{"refused", func(t *testing.T, target string) (string, func()) {
			p := testenv.NewProxy(t, target)
			return p.Addr(), p.Cut
		}},
		{"hung", func(t *testing.T, target string) (string, func()) {
			p := newStallProxy(t, target)
			return p.Addr(), p.Stall
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRig(t)
			_, js := r.connect()
			u, err := url.Parse(r.dsn)
			if err != nil {
				t.Fatal(err)
			}
			addr, breakClickHouse := tc.cut(t, u.Host)
			u.Host = addr
			w := r.runWriter(u.String(), drainConfig())
			publishEvents(t, js, drainHeld)
			r.holding(w, drainHeld)

			// Connections opened before ClickHouse hangs are what an insert
			// then waits on until its context ends.
			warmPool(t, w.store)
			breakClickHouse()
			if err := w.stop(t); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if s := w.Stats(); s.Acked != 0 || s.Naked != drainHeld || s.Outstanding != 0 || s.AckFailed != 0 {
				t.Fatalf("after the stop: %+v, want all %d naked", s, drainHeld)
			}

			// A fetch gets them all again, long before their ack wait: they
			// were naked. They are naked once more for the next writer, after
			// the loop (within it they would come straight back).
			cons, err := js.Consumer(context.Background(), bus.StreamEvents, "writer")
			if err != nil {
				t.Fatal(err)
			}
			var redelivered []jetstream.Msg
			seqs := map[uint64]bool{}
			for len(redelivered) < drainHeld {
				batch, err := cons.Fetch(drainHeld-len(redelivered), jetstream.FetchMaxWait(time.Minute))
				if err != nil {
					t.Fatal(err)
				}
				before := len(redelivered)
				for m := range batch.Messages() {
					meta, err := m.Metadata()
					if err != nil {
						t.Fatal(err)
					}
					// More than 2 when the stopping writer's last fetch got
					// it back after the nak and gave it back again.
					if meta.NumDelivered < 2 || seqs[meta.Sequence.Stream] {
						t.Fatalf("stream seq %d: delivery %d (seen before: %t), want a redelivery", meta.Sequence.Stream, meta.NumDelivered, seqs[meta.Sequence.Stream])
					}
					seqs[meta.Sequence.Stream] = true
					redelivered = append(redelivered, m)
				}
				if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, jetstream.ErrNoMessages) {
					t.Fatal(err)
				}
				if len(redelivered) == before {
					t.Fatalf("%d of %d held messages redelivered within a minute; the rest wait for the ack wait", len(redelivered), drainHeld)
				}
			}
			for _, m := range redelivered {
				if err := m.Nak(); err != nil {
					t.Fatal(err)
				}
			}

			// ClickHouse is back (the writer dials it directly): every
			// event is stored once.
			next := r.runWriter(r.dsn, Config{MaxAge: 100 * time.Millisecond, Consumer: drainConfig().Consumer})
			r.waitFor(2*time.Minute, "held events stored after the restart", func() (bool, string) {
				n := r.count("SELECT count() FROM events")
				return n >= drainHeld, fmt.Sprintf("%d rows", n)
			})
			r.waitFor(time.Minute, "consumer drained", func() (bool, string) { return r.drained(js) })
			if n := r.count("SELECT count() FROM events"); n != drainHeld {
				t.Fatalf("%d rows, want each of %d events once", n, drainHeld)
			}
			if n := r.count("SELECT uniqExact(id) FROM events"); n != drainHeld {
				t.Fatalf("%d distinct ids, want %d", n, drainHeld)
			}
			if err := next.stop(t); err != nil {
				t.Fatalf("second writer's Run: %v", err)
			}
		})
	}
}

// stallProxy forwards TCP to a server until Stall; from then on it forwards
// nothing in either direction and answers no new connection, while keeping
// every connection open: a server that hangs, or a route that drops packets,
// which a client notices only by its own timeouts (testenv.Proxy's Cut
// refuses at once instead).
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled chan struct{} // closed by Stall
	closed  chan struct{} // closed when the test ends

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target, stalled: make(chan struct{}), closed: make(chan struct{})}
	p.wg.Go(p.accept)
	t.Cleanup(p.close)
	return p
}

func (p *stallProxy) Addr() string { return p.ln.Addr().String() }

func (p *stallProxy) Stall() { close(p.stalled) }

func (p *stallProxy) close() {
	close(p.closed)
	_ = p.ln.Close()
	p.mu.Lock()
	for _, c := range p.conns {
		_ = c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *stallProxy) track(c net.Conn) {
	p.mu.Lock()
	p.conns = append(p.conns, c)
	p.mu.Unlock()
}

func (p *stallProxy) accept() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.track(client)
		p.wg.Go(func() {
			if !p.pass() {
				return // held open, unanswered, until the test ends
			}
			server, err := net.Dial("tcp", p.target)
			if err != nil {
				_ = client.Close()
				return
			}
			p.track(server)
			p.wg.Go(func() { p.pipe(server, client) })
			p.pipe(client, server)
		})
	}
}

// pass reports whether data may flow; once stalled it blocks until the test
// ends and reports false.
func (p *stallProxy) pass() bool {
	select {
	case <-p.stalled:
		<-p.closed
		return false
	default:
		return true
	}
}

// pipe copies src to dst, one read at a time, until the stall.
func (p *stallProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.pass() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
			}
			return
		}
	}
}
