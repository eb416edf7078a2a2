package stage_test

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// The outputs held come back as they went in; within a byte limit, the
// newest that fit do, and the encoding is within the limit.
func TestHeldOutputsRoundTripWithinALimit(t *testing.T) {
	var held stage.HeldOutputs
	var msgs []bus.Message
	for i := range 10 {
		// a service token may hold what JSON escapes (event.SubjectToken)
		msgs = append(msgs, bus.Message{Subject: fmt.Sprintf(`events.anomaly.check"out\%d`, i), ID: fmt.Sprintf("id-%d", i),
			Data: fmt.Appendf(nil, `{"id":"id-%d","body":{"message":"p99 <%d ms> & rising"}}`, i, 100+i)})
	}
	held.Hold(msgs)
	all, err := held.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	var back stage.HeldOutputs
	if err := back.UnmarshalBinary(all); err != nil {
		t.Fatal(err)
	}
	if got := back.Held(); !slices.EqualFunc(got, msgs, sameMessage) {
		t.Fatalf("round trip: %d outputs, not the 10 held", len(got))
	}
	for limit := len(all); limit > 0; limit -= 7 {
		data, left, err := held.MarshalWithin(limit)
		if err != nil {
			t.Fatal(err)
		}
		if len(data) > limit && left < len(msgs) {
			t.Fatalf("limit %d: %d bytes", limit, len(data))
		}
		if err := back.UnmarshalBinary(data); err != nil {
			t.Fatal(err)
		}
		got := back.Held()
		if left+len(got) != len(msgs) || !slices.EqualFunc(got, msgs[left:], sameMessage) {
			t.Fatalf("limit %d: %d left out, %d kept: want the newest that fit", limit, left, len(got))
		}
		if limit == len(all) && left != 0 || limit < len(all) && left == 0 {
			t.Fatalf("limit %d of %d bytes: %d left out", limit, len(all), left)
		}
	}
	for _, bad := range []string{`{`, `[{"id":"a","data":{}}]`, `[{"subject":"s","id":"a"}]`} {
		if err := back.UnmarshalBinary([]byte(bad)); !errors.Is(err, stage.ErrOutbox) {
			t.Errorf("%s: %v, want ErrOutbox", bad, err)
		}
	}
	if err := back.UnmarshalBinary(nil); err != nil || len(back.Held()) != 0 {
		t.Fatalf("nothing saved: %v, %d held", err, len(back.Held()))
	}
}

func sameMessage(a, b bus.Message) bool {
	return a.Subject == b.Subject && a.ID == b.ID && string(a.Data) == string(b.Data)
}
