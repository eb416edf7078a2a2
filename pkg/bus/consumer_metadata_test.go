package bus

import (
	"testing"
)

// A consumer's metadata is set when it is created, and a service that
// sets a key later (a correlator partition that now runs in another
// layout) changes that key alone on the existing consumer: its other
// keys, its own and the server's, are kept, and a runner that sets none
// keeps them all.
func TestNewConsumerSetsItsMetadataKeysOnAnExistingConsumerAndKeepsTheOthers(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	ctx := testCtx(t)
	cfg := e.consumerConfig("meta")
	cfg.Metadata = map[string]string{"a": "1", "b": "1"}
	if _, err := NewConsumer(ctx, e.js, cfg, testLog(t)); err != nil {
		t.Fatal(err)
	}
	cfg.Metadata = map[string]string{"b": "2"}
	if _, err := NewConsumer(ctx, e.js, cfg, testLog(t)); err != nil {
		t.Fatal(err)
	}
	cfg.Metadata = nil
	if _, err := NewConsumer(ctx, e.js, cfg, testLog(t)); err != nil {
		t.Fatal(err)
	}
	c, err := e.js.Consumer(ctx, e.stream, "meta")
	if err != nil {
		t.Fatal(err)
	}
	if md := c.CachedInfo().Config.Metadata; md["a"] != "1" || md["b"] != "2" {
		t.Fatalf("metadata %v, want a=1 (kept) and b=2 (set later)", md)
	}
}
