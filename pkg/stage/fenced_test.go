package stage

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// Objects written under compare-and-set read back through the object
// store as any other (one chunk, several, none); a writer whose objects
// another claimed since is refused (ErrFenced) and changes nothing; the
// chunks no meta names any more are purged.
func TestFencedObjectsRefuseAWriterClaimedOver(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := testJetStream(t)
	ctx := context.Background()
	store, err := OpenStateStore(ctx, js, StateConfig{Bucket: "fenced"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	old, err := NewFencedObjects(ctx, js, "fenced")
	if err != nil {
		t.Fatal(err)
	}
	if err := old.Put(ctx, "state", []byte("x")); err == nil {
		t.Fatal("a put before the claim was taken")
	}
	if err := old.Claim(ctx, "state", "state.outbox"); err != nil {
		t.Fatal(err)
	}
	if _, err := store.GetBytes(ctx, "state"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("an object claimed, never written: %v, want not found", err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // 320,000 bytes: three chunks
	for _, data := range [][]byte{[]byte("one"), big, {}} {
		if err := old.Put(ctx, "state", data); err != nil {
			t.Fatal(err)
		}
		got, err := store.GetBytes(ctx, "state")
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %d bytes (%v), want the %d written", len(got), err, len(data))
		}
	}
	if err := old.Put(ctx, "state", []byte("old term")); err != nil {
		t.Fatal(err)
	}

	// The next holder claims: the first one's writes are refused, what it
	// claimed stands.
	next, err := NewFencedObjects(ctx, js, "fenced")
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Claim(ctx, "state", "state.outbox"); err != nil {
		t.Fatal(err)
	}
	if got, err := store.GetBytes(ctx, "state"); err != nil || string(got) != "old term" {
		t.Fatalf("after the claim: %q (%v), want the last state written", got, err)
	}
	for _, name := range []string{"state", "state.outbox"} {
		if err := old.Put(ctx, name, []byte("late")); !errors.Is(err, ErrFenced) {
			t.Fatalf("a put of %s after another claimed it: %v, want ErrFenced", name, err)
		}
	}
	if err := next.Put(ctx, "state", []byte("new term")); err != nil {
		t.Fatal(err)
	}
	if got, err := store.GetBytes(ctx, "state"); err != nil || string(got) != "new term" {
		t.Fatalf("read %q (%v), want the new term's", got, err)
	}
	// One object's chunks are left, and its meta messages.
	if n := storedMsgs(t, js, "OBJ_fenced"); n != 3 {
		t.Fatalf("%d messages in the store, want the state's chunk and two metas", n)
	}
}

// A put whose meta's answer was lost may have landed: the writer's next
// put finds its own meta last, and goes on over it.
func TestFencedObjectsGoOnOverAPutWhoseAnswerWasLost(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := testJetStream(t)
	ctx := context.Background()
	store, err := OpenStateStore(ctx, js, StateConfig{Bucket: "lost"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFencedObjects(ctx, js, "lost")
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	before := f.last["state"]
	if err := f.Put(ctx, "state", []byte("landed")); err != nil {
		t.Fatal(err)
	}
	// As if the answer had been lost: the writer does not know it landed.
	f.lost["state"], f.last["state"] = []string{f.last["state"].nuid}, before
	if err := f.Put(ctx, "state", []byte("next")); err != nil {
		t.Fatalf("the put after one whose answer was lost: %v", err)
	}
	if got, err := store.GetBytes(ctx, "state"); err != nil || string(got) != "next" {
		t.Fatalf("read %q (%v), want the last put's", got, err)
	}
}

// GetBytes tells an object no read will ever get (ErrBrokenObject: its
// meta names chunks the bucket does not hold, all of them or one) from
// one that is not there and from one it reads; nats.go's read of a broken
// one waits for its timeout and fails as a read that failed for now does.
func TestFencedObjectsTellABrokenObject(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := testJetStream(t)
	ctx := context.Background()
	store, err := OpenStateStore(ctx, js, StateConfig{Bucket: "broken"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFencedObjects(ctx, js, "broken")
	if err != nil {
		t.Fatal(err)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // three chunks
	for _, name := range []string{"whole", "holed"} {
		if _, err := store.PutBytes(ctx, name, big); err != nil {
			t.Fatal(err)
		}
	}
	// One chunk of "holed" goes.
	info, err := store.GetInfo(ctx, "holed")
	if err != nil {
		t.Fatal(err)
	}
	s, err := js.Stream(ctx, "OBJ_broken")
	if err != nil {
		t.Fatal(err)
	}
	chunk, err := s.GetLastMsgForSubject(ctx, "$O.broken.C."+info.NUID)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMsg(ctx, chunk.Sequence); err != nil {
		t.Fatal(err)
	}
	// "headless": the bucket refuses chunks, and takes the meta nats.go's
	// put sends without waiting for their answers.
	restore := testenv.NarrowStream(t, js, "OBJ_broken", "$O.broken.M.>")
	if _, err := store.PutBytes(ctx, "headless", []byte("state")); err == nil {
		t.Fatal("a put while the bucket refuses chunks succeeded")
	}
	restore()
	if _, err := store.GetInfo(ctx, "headless"); err != nil {
		t.Fatalf("the refused put's meta did not land (%v): no broken object to read", err)
	}

	if got, err := f.GetBytes(ctx, "whole"); err != nil || !bytes.Equal(got, big) {
		t.Fatalf("whole: %d bytes (%v), want the %d written", len(got), err, len(big))
	}
	if _, err := f.GetBytes(ctx, "none"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("none: %v, want not found", err)
	}
	for _, name := range []string{"holed", "headless"} {
		if _, err := f.GetBytes(ctx, name); !errors.Is(err, ErrBrokenObject) {
			t.Errorf("%s: %v, want ErrBrokenObject", name, err)
		}
	}
	// Written over under compare-and-set, it reads again.
	if err := f.Claim(ctx, "headless"); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "headless", []byte("again")); err != nil {
		t.Fatal(err)
	}
	if got, err := f.GetBytes(ctx, "headless"); err != nil || string(got) != "again" {
		t.Fatalf("headless written over: %q (%v)", got, err)
	}
}

// lossyJetStream passes the meta publishes of FencedObjects to the server,
// or not, and answers them as it is told: a nil meta answers as the
// server does.
type lossyJetStream struct {
	jetstream.JetStream
	meta func(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error)
}

func (l *lossyJetStream) PublishMsg(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	if l.meta != nil && strings.Contains(m.Subject, ".M.") {
		return l.meta(ctx, m, opts...)
	}
	return l.JetStream.PublishMsg(ctx, m, opts...)
}

// flakyStream fails the reads of a meta while fail is set, and answers
// them with stale while it is set, as a replica not caught up does; the
// others it reads from metas.
type flakyStream struct {
	jetstream.Stream
	metas lastMsgReader
	fail  atomic.Bool
	stale atomic.Pointer[jetstream.RawStreamMsg]
	// failPurge fails the purges while it is set.
	failPurge atomic.Bool
}

func (s *flakyStream) Purge(ctx context.Context, opts ...jetstream.StreamPurgeOpt) error {
	if s.failPurge.Load() {
		return context.DeadlineExceeded
	}
	return s.Stream.Purge(ctx, opts...)
}

func (s *flakyStream) GetLastMsgForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	if s.fail.Load() {
		return nil, context.DeadlineExceeded
	}
	if m := s.stale.Load(); m != nil && m.Subject == subject {
		return m, nil
	}
	return s.metas.GetLastMsgForSubject(ctx, subject)
}

// fencedWriter is a FencedObjects on a bucket of its own whose meta
// publishes and meta reads a test can fail.
func fencedWriter(t *testing.T, bucket string) (*FencedObjects, *lossyJetStream, *flakyStream, jetstream.ObjectStore, jetstream.JetStream) {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	js := testJetStream(t)
	ctx := context.Background()
	store, err := OpenStateStore(ctx, js, StateConfig{Bucket: bucket}, "test")
	if err != nil {
		t.Fatal(err)
	}
	f, err := NewFencedObjects(ctx, js, bucket)
	if err != nil {
		t.Fatal(err)
	}
	lossy, flaky := &lossyJetStream{JetStream: js}, &flakyStream{Stream: f.stream, metas: f.metas}
	f.js, f.stream, f.metas = lossy, flaky, flaky
	return f, lossy, flaky, store, js
}

// landedAnswerLost publishes the meta and loses its answer.
func landedAnswerLost(js jetstream.JetStream) func(context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
	return func(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
		if _, err := js.PublishMsg(ctx, m, opts...); err != nil {
			return nil, err
		}
		return nil, context.DeadlineExceeded
	}
}

// A writer alone on its objects is never fenced by its own puts whose
// answers were lost, nor by a read failing for now: ErrFenced ends its
// saving for the term (the correlator stops saving while it still holds
// the lease), so it must mean that another holder claimed the objects.
func TestFencedObjectsDoNotFenceAWriterAlone(t *testing.T) {
	ctx := context.Background()
	t.Run("two answers lost in a row, the first landed", func(t *testing.T) {
		f, lossy, _, store, js := fencedWriter(t, "twolost")
		if err := f.Claim(ctx, "state"); err != nil {
			t.Fatal(err)
		}
		lossy.meta = landedAnswerLost(js)
		if err := f.Put(ctx, "state", []byte("one")); err == nil || errors.Is(err, ErrFenced) {
			t.Fatalf("a put whose answer was lost: %v, want a failure for now", err)
		}
		// The next put finds the first's meta last and goes on over it,
		// and that publish is lost before it reached the server.
		calls := 0
		lossy.meta = func(ctx context.Context, m *nats.Msg, opts ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
			if calls++; calls == 1 {
				return js.PublishMsg(ctx, m, opts...)
			}
			return nil, context.DeadlineExceeded
		}
		if err := f.Put(ctx, "state", []byte("two")); err == nil || errors.Is(err, ErrFenced) {
			t.Fatalf("a put whose answer was lost: %v, want a failure for now", err)
		}
		lossy.meta = nil
		if err := f.Put(ctx, "state", []byte("three")); err != nil {
			t.Fatalf("the put after two whose answers were lost: %v", err)
		}
		if got, err := store.GetBytes(ctx, "state"); err != nil || string(got) != "three" {
			t.Fatalf("read %q (%v), want the last put's", got, err)
		}
	})
	t.Run("the meta unreadable for now", func(t *testing.T) {
		f, lossy, flaky, store, js := fencedWriter(t, "unreadable")
		if err := f.Claim(ctx, "state"); err != nil {
			t.Fatal(err)
		}
		lossy.meta = landedAnswerLost(js)
		if err := f.Put(ctx, "state", []byte("one")); err == nil || errors.Is(err, ErrFenced) {
			t.Fatalf("a put whose answer was lost: %v, want a failure for now", err)
		}
		lossy.meta = nil
		flaky.fail.Store(true)
		if err := f.Put(ctx, "state", []byte("two")); err == nil || errors.Is(err, ErrFenced) {
			t.Fatalf("a put that could not read whose meta is last: %v, want a failure for now", err)
		}
		flaky.fail.Store(false)
		if err := f.Put(ctx, "state", []byte("three")); err != nil {
			t.Fatalf("the put after: %v", err)
		}
		if got, err := store.GetBytes(ctx, "state"); err != nil || string(got) != "three" {
			t.Fatalf("read %q (%v), want the last put's", got, err)
		}
	})
}

// A writer whose put's answer was lost, and whose meta landed, is still
// refused once the next holder claimed the object, though the claim
// republished that very meta: the next holder restored from it, and
// reads it while the first writer, its term over, would write over the
// claim and purge the chunks being read.
func TestFencedObjectsRefuseALostPutTheNextHolderClaimed(t *testing.T) {
	ctx := context.Background()
	old, lossy, _, store, js := fencedWriter(t, "claimedlost")
	if err := old.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	lossy.meta = landedAnswerLost(js)
	if err := old.Put(ctx, "state", []byte("last of the old term")); err == nil {
		t.Fatal("a put whose answer was lost succeeded")
	}
	lossy.meta = nil
	next, err := NewFencedObjects(ctx, js, "claimedlost")
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	if err := old.Put(ctx, "state", []byte("late")); !errors.Is(err, ErrFenced) {
		t.Fatalf("the old term's put after the next holder's claim: %v, want ErrFenced", err)
	}
	if got, err := next.GetBytes(ctx, "state"); err != nil || string(got) != "last of the old term" {
		t.Fatalf("the next holder reads %q (%v), want what it claimed", got, err)
	}
	if err := next.Put(ctx, "state", []byte("new term")); err != nil {
		t.Fatalf("the next holder's put: %v", err)
	}
	if got, err := store.GetBytes(ctx, "state"); err != nil || string(got) != "new term" {
		t.Fatalf("read %q (%v), want the new term's", got, err)
	}
}

// The chunks of a put whose answer was lost and whose meta did not land
// are purged by the next claim (a new term of the same writer), as by the
// next put: no meta names them, nor ever will, a late one being refused.
func TestFencedObjectsClaimPurgesTheChunksOfALostPut(t *testing.T) {
	ctx := context.Background()
	f, lossy, _, _, js := fencedWriter(t, "lostchunks")
	if err := f.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "state", []byte("one")); err != nil {
		t.Fatal(err)
	}
	lossy.meta = func(context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
		return nil, context.DeadlineExceeded // not sent
	}
	if err := f.Put(ctx, "state", []byte("two")); err == nil {
		t.Fatal("a put whose meta was not sent succeeded")
	}
	lossy.meta = nil
	if err := f.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "state", []byte("three")); err != nil {
		t.Fatal(err)
	}
	if n := storedMsgs(t, js, "OBJ_lostchunks"); n != 2 {
		t.Fatalf("%d messages in the store, want the state's chunk and its meta", n)
	}
}

// A bucket with replicas answers reads of a meta from any of them (the
// object store allows direct gets), and one not caught up answers with an
// older meta: one whose chunks the last put purged is not a broken object
// (read so, the logminer would start empty and its next save replace a
// good state), and, after a put whose answer was lost, not a sign that
// another holder wrote.
func TestFencedObjectsTakeAStaleReplicasAnswerForAReadThatFailedForNow(t *testing.T) {
	ctx := context.Background()
	t.Run("read", func(t *testing.T) {
		f, _, _, _, js := fencedWriter(t, "stalereplica")
		if err := f.Claim(ctx, "state"); err != nil {
			t.Fatal(err)
		}
		if err := f.Put(ctx, "state", []byte("one")); err != nil {
			t.Fatal(err)
		}
		old, err := f.stream.GetLastMsgForSubject(ctx, f.metaSubject("state"))
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Put(ctx, "state", []byte("two")); err != nil { // purges the chunks of "one"
			t.Fatal(err)
		}
		next, err := NewFencedObjects(ctx, js, "stalereplica")
		if err != nil {
			t.Fatal(err)
		}
		if err := next.Claim(ctx, "state"); err != nil {
			t.Fatal(err)
		}
		replica := &flakyStream{Stream: next.stream, metas: next.metas}
		next.stream, next.metas = replica, replica
		replica.stale.Store(old)
		if _, err := next.GetBytes(ctx, "state"); err == nil || errors.Is(err, ErrBrokenObject) {
			t.Fatalf("a read answered with an older meta: %v, want a failure for now", err)
		}
		replica.stale.Store(nil)
		if got, err := next.GetBytes(ctx, "state"); err != nil || string(got) != "two" {
			t.Fatalf("read %q (%v), want the last put's", got, err)
		}
	})
	t.Run("put after a lost answer", func(t *testing.T) {
		f, lossy, replica, store, js := fencedWriter(t, "stalelost")
		if err := f.Claim(ctx, "state"); err != nil {
			t.Fatal(err)
		}
		claim, err := replica.GetLastMsgForSubject(ctx, f.metaSubject("state"))
		if err != nil {
			t.Fatal(err)
		}
		lossy.meta = landedAnswerLost(js)
		if err := f.Put(ctx, "state", []byte("one")); err == nil {
			t.Fatal("a put whose answer was lost succeeded")
		}
		lossy.meta = nil
		replica.stale.Store(claim) // the replica has not the put's meta yet
		if err := f.Put(ctx, "state", []byte("two")); err == nil || errors.Is(err, ErrFenced) {
			t.Fatalf("a put that read an older meta: %v, want a failure for now", err)
		}
		replica.stale.Store(nil)
		if err := f.Put(ctx, "state", []byte("three")); err != nil {
			t.Fatalf("the put after: %v", err)
		}
		if got, err := store.GetBytes(ctx, "state"); err != nil || string(got) != "three" {
			t.Fatalf("read %q (%v), want the last put's", got, err)
		}
	})
}

// staleStore answers every read as a replica that has no meta of the
// object yet.
type staleStore struct{ jetstream.ObjectStore }

func (staleStore) GetBytes(context.Context, string, ...jetstream.GetObjectOpt) ([]byte, error) {
	return nil, jetstream.ErrObjectNotFound
}

func (staleStore) Get(context.Context, string, ...jetstream.GetObjectOpt) (jetstream.ObjectResult, error) {
	return nil, jetstream.ErrObjectNotFound
}

// behindStore answers every read as a replica that has an older put of
// the object than the leader's: behind holds it.
type behindStore struct {
	jetstream.ObjectStore
	behind jetstream.ObjectStore
}

func (s behindStore) GetBytes(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) ([]byte, error) {
	return s.behind.GetBytes(ctx, name, opts...)
}

func (s behindStore) Get(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) (jetstream.ObjectResult, error) {
	return s.behind.Get(ctx, name, opts...)
}

// The object store reads a meta by a direct get, which any replica of the
// bucket answers. On a cluster, a replica behind, or one that disagrees
// with the leader for good after a crash (seen on nats-server 2.9), named
// chunks the leader had purged since, and the correlator refused to
// start on an object it called broken, advising to delete it; or its meta
// named chunks still there, and an older state was restored. The
// leader's meta is the last object's; a read through a replica that
// answers with another fails for now.
func TestFencedObjectsReadTheLeadersObjectWhateverAReplicaAnswers(t *testing.T) {
	ctx := context.Background()
	f, _, _, _, js := fencedWriter(t, "leaders")
	if err := f.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "state", []byte("one")); err != nil {
		t.Fatal(err)
	}
	old, err := f.stream.GetLastMsgForSubject(ctx, f.metaSubject("state"))
	if err != nil {
		t.Fatal(err)
	}
	behind, err := OpenStateStore(ctx, js, StateConfig{Bucket: "leadersbehind"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := behind.PutBytes(ctx, "state", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "state", []byte("two")); err != nil { // purges the chunks of "one"
		t.Fatal(err)
	}
	next, err := NewFencedObjects(ctx, js, "leaders")
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}

	// A replica whose last meta of the object is "one"'s, at a sequence
	// past the claim's: it answers the stream's direct gets.
	diverged := *old
	diverged.Sequence = 1 << 40
	replica := &flakyStream{Stream: next.stream, metas: next.stream}
	replica.stale.Store(&diverged)
	next.stream = replica
	if got, err := next.GetBytes(ctx, "state"); err != nil || string(got) != "two" {
		t.Fatalf("read %q (%v) while a replica disagrees, want the leader's last put", got, err)
	}

	// The object store's own read answered by a replica with "one".
	store := next.store
	next.store = behindStore{ObjectStore: store, behind: behind}
	if got, err := next.GetBytes(ctx, "state"); err == nil || errors.Is(err, ErrBrokenObject) {
		t.Fatalf("read %q (%v) through a replica behind, want a failure for now", got, err)
	}
	next.store = store
	if got, err := next.GetBytes(ctx, "state"); err != nil || string(got) != "two" {
		t.Fatalf("read %q (%v), want the last put's", got, err)
	}
}

// The object store's own read asks a replica again: one that has no meta
// of an object this writer claimed is not "no object" (the logminer would
// start empty and its next save replace a good state) but a read failing
// for now.
func TestFencedObjectsTakeNotFoundFromAStaleReplicaForAReadThatFailedForNow(t *testing.T) {
	ctx := context.Background()
	f, _, _, _, js := fencedWriter(t, "stalenone")
	if err := f.Claim(ctx, "state", "none"); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "state", []byte("one")); err != nil {
		t.Fatal(err)
	}
	next, err := NewFencedObjects(ctx, js, "stalenone")
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Claim(ctx, "state", "none"); err != nil {
		t.Fatal(err)
	}
	store := next.store
	next.store = staleStore{store}
	if _, err := next.GetBytes(ctx, "state"); err == nil || errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("a claimed object a replica does not have yet: %v, want a failure for now", err)
	}
	if _, err := next.GetBytes(ctx, "none"); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Fatalf("an object claimed, never written: %v, want not found", err)
	}
	next.store = store
	if got, err := next.GetBytes(ctx, "state"); err != nil || string(got) != "one" {
		t.Fatalf("read %q (%v), want the last put's", got, err)
	}
}

// The chunks of a put whose meta was refused (another holder claimed the
// object), whose purge then failed (the server slow, away), are purged by
// the writer's next claim of the object: no meta names them, nor ever
// will, and nothing else would ever remove them; each such failure left
// a whole state's chunks in the bucket for good.
func TestFencedObjectsPurgeTheChunksWhosePurgeFailedLater(t *testing.T) {
	ctx := context.Background()
	f, _, flaky, _, js := fencedWriter(t, "straychunks")
	if err := f.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "state", []byte("one")); err != nil {
		t.Fatal(err)
	}
	next, err := NewFencedObjects(ctx, js, "straychunks") // the next holder
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	flaky.failPurge.Store(true)
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // three chunks
	if err := f.Put(ctx, "state", big); !errors.Is(err, ErrFenced) {
		t.Fatalf("a put after another holder's claim: %v, want ErrFenced", err)
	}
	flaky.failPurge.Store(false)
	// A later term of the first writer.
	if err := f.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	if err := f.Put(ctx, "state", []byte("three")); err != nil {
		t.Fatal(err)
	}
	if n := storedMsgs(t, js, "OBJ_straychunks"); n != 2 {
		t.Fatalf("%d messages in the store, want the state's chunk and its meta: the refused put's chunks stayed", n)
	}
}

// storedMsgs is how many messages stream holds: an object store's chunks
// and metas.
func storedMsgs(t *testing.T, js jetstream.JetStream, stream string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// A writer that died left chunks no meta names: a put cut between its
// chunks and its meta, a purge that failed. The next holder's claim of the
// object purges them, and leaves the other objects' chunks alone.
func TestFencedObjectsLeftoversOfAWriterThatDiedArePurgedAtTheNextClaim(t *testing.T) {
	ctx := context.Background()
	f, lossy, flaky, _, js := fencedWriter(t, "leftovers")
	if err := f.Claim(ctx, "state", "other"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"state", "other"} {
		if err := f.Put(ctx, name, []byte(name+" one")); err != nil {
			t.Fatal(err)
		}
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000) // three chunks
	// Its meta never sent (the process died after the chunks).
	lossy.meta = func(context.Context, *nats.Msg, ...jetstream.PublishOpt) (*jetstream.PubAck, error) {
		return nil, context.DeadlineExceeded
	}
	if err := f.Put(ctx, "state", big); err == nil {
		t.Fatal("a put whose meta was not sent succeeded")
	}
	lossy.meta = nil
	// A put whose purge of the chunks it replaced failed.
	flaky.failPurge.Store(true)
	if err := f.Put(ctx, "other", big); err != nil {
		t.Fatal(err)
	}
	before := storedMsgs(t, js, "OBJ_leftovers")
	// The writer is gone; the next one claims and writes "state" only.
	next, err := NewFencedObjects(ctx, js, "leftovers")
	if err != nil {
		t.Fatal(err)
	}
	if err := next.Claim(ctx, "state"); err != nil {
		t.Fatal(err)
	}
	if err := next.Put(ctx, "state", []byte("state two")); err != nil {
		t.Fatal(err)
	}
	// Left: state's chunk and meta, other's three chunks and meta, and
	// other's first chunk, whose purge failed, until other is claimed.
	if n := storedMsgs(t, js, "OBJ_leftovers"); n != 7 {
		t.Fatalf("%d messages in the store (%d before the claim), want 7: the dead writer's chunks of state stayed", n, before)
	}
	if err := next.Claim(ctx, "other"); err != nil {
		t.Fatal(err)
	}
	if n := storedMsgs(t, js, "OBJ_leftovers"); n != 6 {
		t.Fatalf("%d messages in the store, want 6: other's chunk whose purge failed stayed", n)
	}
	for name, want := range map[string][]byte{"state": []byte("state two"), "other": big} {
		if got, err := next.GetBytes(ctx, name); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: %d bytes (%v), want %d", name, len(got), err, len(want))
		}
	}
}

// testJetStream connects to a new test NATS server.
func testJetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	srv := testenv.StartNATS(t)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{srv.URL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return js
}
