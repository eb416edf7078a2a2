package silence

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

func TestMain(m *testing.M) { testenv.Main(m) }

// clock is a settable time for the stores of one test.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }
func (c *clock) add(d time.Duration) {
	c.ns.Add(int64(d))
}
func (c *clock) now() time.Time { return time.Unix(0, c.ns.Load()).UTC() }

func jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	if testing.Short() {
		t.Skip("needs a JetStream server")
	}
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

func openStore(t *testing.T, js jetstream.JetStream, cfg Config, c *clock) *Store {
	t.Helper()
	s, err := Open(context.Background(), js, cfg, WithClock(c.now))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

// eventually polls cond for up to 5 s: a watch delivers asynchronously.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("not within 5s: %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStoreLifecycle(t *testing.T) {
	ctx := context.Background()
	js := jetStream(t)
	c := newClock(t0)
	cfg := Config{Bucket: "silences-lifecycle"}
	s := openStore(t, js, cfg, c)

	// New: a start in the past becomes now.
	sil := valid()
	sil.StartsAt = t0.Add(-time.Hour)
	id, err := s.Set(ctx, sil)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := s.Get(id)
	if !ok || !got.StartsAt.Equal(t0) || !got.UpdatedAt.Equal(t0) || got.StateAt(t0) != StateActive {
		t.Fatalf("stored %+v %v", got, ok)
	}
	labels := map[string]string{"service": "db", "team": "x"}
	if m := s.Mutes(labels, t0.Add(time.Minute)); len(m) != 1 || m[0] != id {
		t.Fatalf("mutes %v, want [%s]", m, id)
	}
	if m := s.Mutes(map[string]string{"service": "web"}, t0.Add(time.Minute)); len(m) != 0 {
		t.Fatalf("an unmatched incident is muted by %v", m)
	}
	if m := s.Mutes(labels, t0.Add(2*time.Hour)); len(m) != 0 {
		t.Fatalf("muted after the end by %v", m)
	}

	// Extending an active silence keeps its id.
	c.add(10 * time.Minute)
	got.EndsAt = t0.Add(3 * time.Hour)
	if id2, err := s.Set(ctx, got); err != nil || id2 != id {
		t.Fatalf("extend: %s %v, want the same id %s", id2, err, id)
	}
	// Changing the matchers replaces it: the old one expires now.
	got.Matchers = []Matcher{eq("service", "web")}
	id3, err := s.Set(ctx, got)
	if err != nil || id3 == id {
		t.Fatalf("new matchers: %s %v, want a new id", id3, err)
	}
	old, _ := s.Get(id)
	if !old.EndsAt.Equal(c.now()) || old.StateAt(c.now().Add(time.Nanosecond)) != StateExpired {
		t.Fatalf("the replaced silence %+v did not end now (%s)", old, c.now())
	}
	// Expire: active ends now; again is an error; unknown is not found.
	c.add(time.Minute)
	if err := s.Expire(ctx, id3); err != nil {
		t.Fatal(err)
	}
	ended, _ := s.Get(id3)
	c.add(time.Second)
	if err := s.Expire(ctx, id3); err != nil {
		t.Fatalf("expire twice: %v", err)
	}
	if again, _ := s.Get(id3); !again.EndsAt.Equal(ended.EndsAt) {
		t.Fatalf("expiring again moved the end from %s to %s", ended.EndsAt, again.EndsAt)
	}
	if err := s.Expire(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("expire unknown: %v", err)
	}
	if _, err := s.Set(ctx, Silence{ID: "6a7c6c4c-0000-4000-8000-000000000000", Matchers: sil.Matchers, StartsAt: t0, EndsAt: t0.Add(time.Hour), CreatedBy: "a", Comment: "c"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("set with an unknown id: %v", err)
	}
	// A pending silence expired never starts.
	p := valid()
	p.StartsAt, p.EndsAt = c.now().Add(time.Hour), c.now().Add(2*time.Hour)
	pid, err := s.Set(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Expire(ctx, pid); err != nil {
		t.Fatal(err)
	}
	pg, _ := s.Get(pid)
	if !pg.StartsAt.Equal(c.now()) || !pg.EndsAt.Equal(c.now()) {
		t.Fatalf("expired pending silence %+v, want both times %s", pg, c.now())
	}
	if n := len(s.List(nil)); n != 3 {
		t.Fatalf("list has %d silences, want 3", n)
	}

	// A restart (a new store on the bucket) has them all.
	s2 := openStore(t, js, cfg, c)
	if a, b := s.List(nil), s2.List(nil); fmt.Sprint(a) != fmt.Sprint(b) {
		t.Fatalf("after a restart:\n%v\nwant\n%v", b, a)
	}

	// GC drops what expired more than the retention ago, nothing else.
	c.add(119 * time.Hour)
	if n, err := s.GC(ctx); err != nil || n != 0 {
		t.Fatalf("gc before the retention: %d %v", n, err)
	}
	c.add(2 * time.Hour)
	if n, err := s.GC(ctx); err != nil || n != 3 {
		t.Fatalf("gc: %d %v, want 3", n, err)
	}
	eventually(t, "the other instance forgets the collected silences", func() bool { return len(s2.List(nil)) == 0 })
}

// Two instances share the bucket: each sees the other's silences, and
// edits of one silence at the same time never lose one.
func TestStoreTwoInstances(t *testing.T) {
	ctx := context.Background()
	js := jetStream(t)
	c := newClock(t0)
	cfg := Config{Bucket: "silences-two"}
	a, b := openStore(t, js, cfg, c), openStore(t, js, cfg, c)
	id, err := a.Set(ctx, valid())
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"service": "db"}
	eventually(t, "b sees a's silence", func() bool { return len(b.Mutes(labels, t0)) == 1 })

	// Both edit the comment of the same silence at once, many times: every
	// write either lands on the revision it read or is retried on the new
	// one, so the silence keeps its id and ends with one of the comments.
	var wg sync.WaitGroup
	var failures atomic.Int32
	for i, st := range []*Store{a, b, a, b} {
		wg.Go(func() {
			for j := 0; j < 10; j++ {
				sil, _ := st.Get(id)
				sil.Comment = fmt.Sprintf("writer %d edit %d", i, j)
				got, err := st.Set(ctx, sil)
				if err != nil || got != id {
					t.Logf("writer %d: %s %v", i, got, err)
					failures.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d concurrent edits failed or made a new silence", failures.Load())
	}
	if n := len(a.List(nil)); n != 1 {
		t.Fatalf("%d silences after concurrent edits, want 1", n)
	}
	eventually(t, "both copies agree", func() bool {
		x, _ := a.Get(id)
		y, _ := b.Get(id)
		return x.Comment == y.Comment
	})
}

// max_silences counts the silences kept, expired ones included, as
// Alertmanager counts them: a client that creates and expires silences in a
// loop cannot grow the bucket past it during the retention. An edit in
// place is not refused at the bound; an edit that replaces a silence is,
// before it expires the one it would replace. Room comes back as expired
// silences are deleted.
func TestStoreMaxSilences(t *testing.T) {
	ctx := context.Background()
	js := jetStream(t)
	c := newClock(t0)
	s := openStore(t, js, Config{Bucket: "silences-max", MaxSilences: 2, Retention: time.Hour}, c)
	var ids []string
	for i := 0; i < 2; i++ {
		id, err := s.Set(ctx, valid())
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	if _, err := s.Set(ctx, valid()); !errors.Is(err, ErrTooMany) {
		t.Fatalf("a third silence: %v, want ErrTooMany", err)
	}
	if err := s.Expire(ctx, ids[0]); err != nil {
		t.Fatal(err)
	}
	c.add(time.Second)
	_, err := s.Set(ctx, valid())
	if !errors.Is(err, ErrTooMany) || !strings.Contains(err.Error(), "2 kept, at most 2 (silences.max_silences); expired silences count") {
		t.Fatalf("a silence after one expired: %v, want ErrTooMany saying that expired silences count", err)
	}
	if n := len(s.List(nil)); n != 2 {
		t.Fatalf("%d silences kept, want 2", n)
	}

	// At the bound: an edit in place is made, one that would replace the
	// silence is refused and leaves it active.
	edit, _ := s.Get(ids[1])
	edit.Comment = "longer maintenance"
	if id, err := s.Set(ctx, edit); err != nil || id != ids[1] {
		t.Fatalf("an edit in place at the bound: %s, %v", id, err)
	}
	edit.Matchers = []Matcher{eq("service", "db"), eq("env", "prod")}
	if _, err := s.Set(ctx, edit); !errors.Is(err, ErrTooMany) {
		t.Fatalf("an edit that replaces the silence at the bound: %v, want ErrTooMany", err)
	}
	if got, _ := s.Get(ids[1]); got.StateAt(c.now()) != StateActive || got.Comment != "longer maintenance" {
		t.Fatalf("the silence a refused edit would have replaced: %+v, want it active as it was", got)
	}

	// The expired one is deleted after the retention: room for one more.
	c.add(time.Hour + time.Minute)
	if n, err := s.GC(ctx); err != nil || n != 1 {
		t.Fatalf("GC = %d, %v; want the expired silence deleted", n, err)
	}
	if _, err := s.Set(ctx, valid()); err != nil {
		t.Fatalf("after the expired silence was deleted: %v", err)
	}
	if _, err := s.Set(ctx, Silence{Matchers: []Matcher{eq("a", "")}}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("an invalid silence: %v", err)
	}
}

// The silences kept together are bounded in bytes too: 10,000 silences
// of the largest size would hold gigabytes, as JSON in the bucket and as
// compiled programs in every instance.
func TestStoreMaxBytes(t *testing.T) {
	ctx := context.Background()
	js := jetStream(t)
	c := newClock(t0)
	big := func() Silence { s := valid(); s.Comment = strings.Repeat("x", 10_000); return s }
	s := openStore(t, js, Config{Bucket: "silences-bytes", MaxBytes: 25_000, Retention: time.Hour}, c)
	id1, err := s.Set(ctx, big())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Set(ctx, big()); err != nil {
		t.Fatal(err)
	}
	_, err = s.Set(ctx, big())
	if !errors.Is(err, ErrTooMany) || !strings.Contains(err.Error(), "(silences.max_bytes)") {
		t.Fatalf("a third silence of 10 KB under 25 KB: %v, want ErrTooMany naming silences.max_bytes", err)
	}
	if _, err := s.Set(ctx, valid()); err != nil {
		t.Fatalf("a small silence still fits: %v", err)
	}
	// An edit in place that grows past the bound is refused too, and one
	// that does not grow is made.
	edit, _ := s.Get(id1)
	edit.Comment = strings.Repeat("y", 16_000)
	if _, err := s.Set(ctx, edit); !errors.Is(err, ErrTooMany) {
		t.Fatalf("an edit growing a silence past the bound: %v, want ErrTooMany", err)
	}
	edit.Comment = strings.Repeat("y", 9_000)
	if id, err := s.Set(ctx, edit); err != nil || id != id1 {
		t.Fatalf("an edit in place that shrinks: %s, %v", id, err)
	}
	// What another instance wrote counts here as well.
	other := openStore(t, js, Config{Bucket: "silences-bytes", MaxBytes: 25_000, Retention: time.Hour}, c)
	if _, err := other.Set(ctx, big()); !errors.Is(err, ErrTooMany) {
		t.Fatalf("a third big silence from a second instance: %v, want ErrTooMany", err)
	}
	// A silence's regular expressions count as the programs they keep.
	manyInsts := valid()
	manyInsts.Matchers = append(manyInsts.Matchers, Matcher{Name: "host", Value: `\pL{99}\pL{99}`, IsRegex: true})
	s2 := openStore(t, js, Config{Bucket: "silences-bytes-re", MaxBytes: 15_000, Retention: time.Hour}, c)
	if _, err := s2.Set(ctx, manyInsts); !errors.Is(err, ErrTooMany) {
		t.Fatalf("a silence of 300 bytes whose regexp compiles to ~200 instructions (20 KB kept) under 15 KB: %v, want ErrTooMany", err)
	}
	// Deleting the expired ones frees their bytes.
	for _, sil := range s.List(nil) {
		if err := s.Expire(ctx, sil.ID); err != nil {
			t.Fatal(err)
		}
	}
	c.add(time.Hour + time.Minute)
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := s.Set(ctx, big()); err != nil {
			t.Fatalf("after the expired silences were deleted: %v", err)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{}, ""},
		{Config{Replicas: 7}, "replicas"},
		{Config{Retention: -time.Hour}, "retention"},
		{Config{MaxSilences: -1}, "max_silences"},
		{Config{MaxBytes: -1}, "max_bytes"},
	} {
		err := c.cfg.Validate()
		if (c.want == "") != (err == nil) || (err != nil && !errors.Is(err, ErrInvalidConfig)) {
			t.Errorf("%+v: %v, want an error naming %q", c.cfg, err, c.want)
		}
	}
}

// A silence names an OpenTelemetry label (otel.scope.name) as the routes
// can, and mutes the incidents that carry it.
func TestSilenceOnAnOpenTelemetryLabel(t *testing.T) {
	s := openStore(t, jetStream(t), Config{Bucket: "silences-otel"}, newClock(t0))
	sil := valid()
	sil.Matchers = []Matcher{eq("otel.scope.name", "checkout")}
	id, err := s.Set(context.Background(), sil)
	if err != nil {
		t.Fatal(err)
	}
	if m := s.Mutes(map[string]string{"otel.scope.name": "checkout", "service": "db"}, t0.Add(time.Minute)); len(m) != 1 || m[0] != id {
		t.Fatalf("mutes %v, want [%s]", m, id)
	}
	if m := s.Mutes(map[string]string{"otel.scope.name": "search"}, t0.Add(time.Minute)); len(m) != 0 {
		t.Fatalf("another scope is muted by %v", m)
	}
}
