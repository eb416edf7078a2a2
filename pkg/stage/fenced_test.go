package stage

import (
	"bytes"
	"context"
	"errors"
	"testing"

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
	srv := testenv.StartNATS(t)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{srv.URL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
	s, err := js.Stream(ctx, "OBJ_fenced")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs != 3 {
		t.Fatalf("%d messages in the store, want the state's chunk and two metas", info.State.Msgs)
	}
}

// A put whose meta's answer was lost may have landed: the writer's next
// put finds its own meta last, and goes on over it.
func TestFencedObjectsGoOnOverAPutWhoseAnswerWasLost(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	srv := testenv.StartNATS(t)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{srv.URL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
	f.lost["state"], f.last["state"] = f.last["state"].nuid, before
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
	srv := testenv.StartNATS(t)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{srv.URL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
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
