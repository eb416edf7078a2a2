package detect

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// TestGroupAlarmOfAndEndGroupAlarmIn: the alarm a Group's or a Vote's
// state holds is read without a group of its shape, and ending it in the
// bytes gives the state EndAlarm gives, which restores without an alarm.
func TestGroupAlarmOfAndEndGroupAlarmIn(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	g, ts := warmGroup(t, GroupConfig{}, rng)
	for range 10 {
		row := correlatedRow(rng)
		row[1] += 40
		g.Observe(ts, row)
		ts = ts.Add(time.Second)
	}
	const faultAt = 2*1440 + 600
	times, rows := voteAsset(4, []int{0, 2}, faultAt)
	p, _ := NewProfile(Config{})
	v, _ := NewVote(p, 4)
	for i := range faultAt + 5 {
		v.Observe(times[i], rows[i])
	}
	type alarmed interface {
		Alarming() bool
		AlarmSince() time.Time
		EndAlarm()
		MarshalBinary() ([]byte, error)
		UnmarshalBinary([]byte) error
	}
	fresh := map[string]func() alarmed{
		"group": func() alarmed { n, _ := NewGroup(GroupConfig{}, 3); return n },
		"vote":  func() alarmed { n, _ := NewVote(p, 4); return n },
	}
	for name, a := range map[string]alarmed{"group": g, "vote": v} {
		if !a.Alarming() {
			t.Fatalf("%s: not in alarm", name)
		}
		data, _ := a.MarshalBinary()
		since, on, err := GroupAlarmOf(data)
		if err != nil || !on || !since.Equal(a.AlarmSince()) {
			t.Errorf("%s: GroupAlarmOf = %v, %v, %v; want %v, true", name, since, on, err, a.AlarmSince())
		}
		ended, err := EndGroupAlarmIn(data)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if _, on, _ := GroupAlarmOf(ended); on {
			t.Errorf("%s: alarm still on after EndGroupAlarmIn", name)
		}
		a.EndAlarm()
		want, _ := a.MarshalBinary()
		if !bytes.Equal(ended, want) {
			t.Errorf("%s: EndGroupAlarmIn differs from the state after EndAlarm", name)
		}
		b := fresh[name]()
		if err := b.UnmarshalBinary(ended); err != nil || b.Alarming() {
			t.Errorf("%s: restored ended state: %v, alarming %v", name, err, b.Alarming())
		}
		if n := GroupStateChannels(data); n != map[string]int{"group": 3, "vote": 4}[name] {
			t.Errorf("%s: %d channels", name, n)
		}
	}
	for _, bad := range [][]byte{nil, []byte("gp"), []byte("not a state at all, long enough to pass a length check")} {
		if _, _, err := GroupAlarmOf(bad); !errors.Is(err, ErrStateVersion) {
			t.Errorf("GroupAlarmOf(%q): %v", bad, err)
		}
		if _, err := EndGroupAlarmIn(bad); !errors.Is(err, ErrStateVersion) {
			t.Errorf("EndGroupAlarmIn(%q): %v", bad, err)
		}
	}
}
