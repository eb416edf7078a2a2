package detect

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect/synth"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// A group restored from a snapshot taken at any point (mid warm-up, just
// after the first fit, in an alarm, long after) scores every following row
// exactly as the original does.
func TestGroupStateRoundTrip(t *testing.T) {
	a, err := synth.GenerateGroup(synth.GroupBreak, synth.GroupOptions{Seed: 2, Rows: 2000, Magnitude: 2})
	if err != nil {
		t.Fatal(err)
	}
	cfg := GroupConfig{Memory: 200} // refits every 10 rows: the restored model must carry pc between fits
	rowAt := func(i int) []float64 {
		row := make([]float64, len(a.Channels))
		for c := range row {
			row[c] = a.Values[c][i]
		}
		if i%97 == 0 {
			row[i%len(row)] = math.NaN()
		}
		return row
	}
	first := -1 // the first anomalous row: a cut just after it is in an alarm
	probe, _ := NewGroup(cfg, len(a.Channels))
	for i := range a.Times {
		if probe.Observe(a.Times[i], rowAt(i)).Anomaly {
			first = i
			break
		}
	}
	if first < 0 {
		t.Fatal("no anomalous row: the alarm state would not be exercised")
	}
	for _, cut := range []int{0, 150, DefaultGroupWarmup, DefaultGroupWarmup + 7, first + 3, 1900} {
		g, _ := NewGroup(cfg, len(a.Channels))
		for i := range cut {
			g.Observe(a.Times[i], rowAt(i))
		}
		if cut == first+3 && !g.alarm {
			t.Fatalf("cut %d: not in an alarm", cut)
		}
		data, err := g.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		h, _ := NewGroup(cfg, len(a.Channels))
		if err := h.UnmarshalBinary(data); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		if h.Warm() != g.Warm() {
			t.Fatalf("cut %d: warm %v, original %v", cut, h.Warm(), g.Warm())
		}
		again, _ := h.MarshalBinary()
		if string(again) != string(data) {
			t.Fatalf("cut %d: re-encoding differs", cut)
		}
		for i := cut; i < len(a.Times); i++ {
			want, got := g.Observe(a.Times[i], rowAt(i)), h.Observe(a.Times[i], rowAt(i))
			if got.Score != want.Score || got.Anomaly != want.Anomaly || got.T2 != want.T2 || got.Q != want.Q || got.Channel != want.Channel || got.Flags != want.Flags ||
				got.Changing != want.Changing || got.Change != want.Change || got.ChangeLimit != want.ChangeLimit {
				t.Fatalf("cut %d, row %d: restored %+v, original %+v", cut, i, got, want)
			}
		}
	}
	// The same rows replayed after restore are duplicates: a redelivered
	// sample cannot be learnt twice.
	g, _ := NewGroup(cfg, len(a.Channels))
	for i := range 400 {
		g.Observe(a.Times[i], rowAt(i))
	}
	data, _ := g.MarshalBinary()
	h, _ := NewGroup(cfg, len(a.Channels))
	h.UnmarshalBinary(data)
	if r := h.Observe(a.Times[399], rowAt(399)); r.Flags&FlagDuplicate == 0 {
		t.Errorf("the last row again after restore: flags %v, want duplicate", r.Flags)
	}
}

// A version 1 state (before the change window) still loads: the model and
// the alarm are restored, the change detector stays off until the model is
// learnt again.
func TestGroupStateVersion1(t *testing.T) {
	a, _ := synth.GenerateGroup(synth.GroupShift, synth.GroupOptions{Seed: 3, Magnitude: 3})
	g, _ := NewGroup(GroupConfig{}, len(a.Channels))
	row := make([]float64, len(a.Channels))
	observe := func(g *Group, i int) GroupResult {
		for c := range row {
			row[c] = a.Values[c][i]
		}
		return g.Observe(a.Times[i], row)
	}
	for i := range 500 {
		observe(g, i)
	}
	if g.change.w == 0 {
		t.Fatal("the change window is off after the warm-up")
	}
	data, _ := g.MarshalBinary()
	v1 := append([]byte(nil), data[:len(data)-(4+8+1+8+8*len(g.change.rows))]...)
	v1[2] = 1
	h, _ := NewGroup(GroupConfig{}, len(a.Channels))
	if err := h.UnmarshalBinary(v1); err != nil {
		t.Fatalf("version 1: %v", err)
	}
	for i := 500; i < len(a.Times); i++ {
		want, got := observe(g, i), observe(h, i)
		if got.Score != want.Score || got.Changing || got.ChangeLimit != 0 {
			t.Fatalf("row %d: restored from version 1 %+v, original %+v", i, got, want)
		}
	}
}

func TestGroupStateErrors(t *testing.T) {
	g, _ := NewGroup(GroupConfig{Warmup: 10}, 3)
	for i := range 20 {
		g.Observe(t0.Add(time.Duration(i)*time.Second), []float64{float64(i % 3), float64(i % 5), float64(i % 7)})
	}
	good, _ := g.MarshalBinary()
	other, _ := NewGroup(GroupConfig{}, 4)
	if err := other.UnmarshalBinary(good); !errors.Is(err, ErrStateMismatch) || !errs.IsPermanent(err) {
		t.Errorf("4 channels from a 3-channel state: %v", err)
	}
	bad := func(mut func([]byte) []byte) []byte { return mut(append([]byte(nil), good...)) }
	for name, c := range map[string]struct {
		data []byte
		want error
	}{
		"empty":     {nil, ErrStateVersion},
		"detector":  {bad(func(b []byte) []byte { b[0] = 'd'; b[1] = 't'; return b }), ErrStateVersion},
		"version":   {bad(func(b []byte) []byte { b[2] = 99; return b }), ErrStateVersion},
		"truncated": {good[:len(good)-1], ErrStateCorrupt},
		"longer":    {append(append([]byte(nil), good...), 0), ErrStateCorrupt},
		"flags":     {bad(func(b []byte) []byte { b[5] |= 0x80; return b }), ErrStateCorrupt},
		"k":         {bad(func(b []byte) []byte { b[6], b[7] = 9, 0; return b }), ErrStateCorrupt},
		"nan limit": {bad(func(b []byte) []byte { copy(b[groupHeaderBytes-8:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f}); return b }), ErrStateCorrupt},
		"nan mean":  {bad(func(b []byte) []byte { copy(b[groupHeaderBytes:], []byte{0, 0, 0, 0, 0, 0, 0xf8, 0x7f}); return b }), ErrStateCorrupt},
	} {
		h, _ := NewGroup(GroupConfig{Warmup: 10}, 3)
		before, _ := h.MarshalBinary()
		err := h.UnmarshalBinary(c.data)
		if !errors.Is(err, c.want) || !errs.IsPermanent(err) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
		if after, _ := h.MarshalBinary(); string(after) != string(before) {
			t.Errorf("%s: a failed restore changed the group", name)
		}
	}
}
