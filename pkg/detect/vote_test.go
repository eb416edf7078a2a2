package detect

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// voteAsset is three days at one minute of channels channels (a daily
// sine and noise, each its own phase), with a shift of 10σ on the channels
// in fault for the 30 minutes from faultAt.
func voteAsset(channels int, fault []int, faultAt int) (times []time.Time, rows [][]float64) {
	rng := rand.New(rand.NewPCG(7, 7))
	const n = 3 * 1440
	for i := range n {
		times = append(times, t0.Add(time.Duration(i)*time.Minute))
		row := make([]float64, channels)
		for c := range row {
			row[c] = 50 + 5*math.Sin(2*math.Pi*float64(i)/1440+float64(c)) + rng.NormFloat64()
			if i >= faultAt && i < faultAt+30 && slices.Contains(fault, c) {
				row[c] += 10
			}
		}
		rows = append(rows, row)
	}
	return times, rows
}

// TestVoteFlagsFaultAcrossChannels: a shift on three of six channels is
// flagged as one run of rows whose contributors are the three, the most
// surprising first; the run is one alarm from its first row
// (Alarming/AlarmSince) and ends after the fault.
func TestVoteFlagsFaultAcrossChannels(t *testing.T) {
	const faultAt = 2*1440 + 600
	fault := []int{1, 3, 4}
	times, rows := voteAsset(6, fault, faultAt)
	p, err := NewProfile(Config{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := NewVote(p, 6)
	if err != nil {
		t.Fatal(err)
	}
	first, last, runs := -1, -1, 0
	for i := range times {
		r := v.Observe(times[i], rows[i])
		if r.Limit != VoteSurprise*math.Sqrt(6) {
			t.Fatalf("limit %g", r.Limit)
		}
		if r.Anomaly != (r.Surprise >= r.Limit) || r.Anomaly != (r.Score >= 0.5) || v.Alarming() != r.Anomaly {
			t.Fatalf("row %d: anomaly %v, surprise %g of %g, score %g, alarming %v", i, r.Anomaly, r.Surprise, r.Limit, r.Score, v.Alarming())
		}
		var sum float64
		for j, c := range r.Contributors {
			sum += r.ChannelSurprise[c]
			if !r.Channels[c].Alarm {
				t.Fatalf("row %d: contributor %d not in alarm", i, c)
			}
			if j > 0 && r.ChannelSurprise[c] > r.ChannelSurprise[r.Contributors[j-1]] {
				t.Fatalf("row %d: contributors %v not most surprising first (%v)", i, r.Contributors, r.ChannelSurprise)
			}
		}
		if math.Abs(sum-r.Surprise) > 1e-9*math.Max(1, sum) {
			t.Fatalf("row %d: surprise %g, the channels' sum %g", i, r.Surprise, sum)
		}
		if !r.Anomaly {
			continue
		}
		if i < faultAt || i > faultAt+30 {
			t.Errorf("row %d flagged outside the fault (%d to %d): contributors %v", i, faultAt, faultAt+30, r.Contributors)
			continue
		}
		if first < 0 {
			first = i
		}
		if last != i-1 {
			runs++
		}
		last = i
		if !slices.Contains(fault, r.Channel) {
			t.Errorf("row %d: top channel %d is not in fault", i, r.Channel)
		}
		if !v.AlarmSince().Equal(times[first]) {
			t.Errorf("row %d: alarm since %v, want %v", i, v.AlarmSince(), times[first])
		}
	}
	if first < 0 || first > faultAt+2 {
		t.Fatalf("fault at row %d: first flagged row %d", faultAt, first)
	}
	if runs != 1 {
		t.Errorf("%d flagged runs in the fault, want 1", runs)
	}
	t.Logf("fault at row %d: flagged rows %d to %d", faultAt, first, last)
	if v.Rows() != uint64(len(times)) {
		t.Errorf("rows %d, want %d", v.Rows(), len(times))
	}
}

// TestVoteStateRoundTrip: a vote restored from a snapshot taken at any
// point (warming up, in a fault, after it) scores every following row as
// the original does.
func TestVoteStateRoundTrip(t *testing.T) {
	const faultAt = 2*1440 + 600
	times, rows := voteAsset(4, []int{0, 2}, faultAt)
	p, _ := NewProfile(Config{})
	for _, cut := range []int{0, 10, 1500, faultAt + 5, faultAt + 100} {
		a, _ := NewVote(p, 4)
		for i := range cut {
			a.Observe(times[i], rows[i])
		}
		data, err := a.MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := NewVote(p, 4)
		if err := b.UnmarshalBinary(data); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		for i := cut; i < len(times); i++ {
			ra, rb := a.Observe(times[i], rows[i]), b.Observe(times[i], rows[i])
			if ra.Surprise != rb.Surprise || ra.Anomaly != rb.Anomaly || ra.Channel != rb.Channel || a.AlarmSince() != b.AlarmSince() {
				t.Fatalf("cut %d, row %d: restored %+v, original %+v", cut, i, rb, ra)
			}
		}
	}
}

// TestVoteBadInput: rows of another width, with every channel missing or
// not after the last are flagged and change nothing; bad configurations
// and snapshots are permanent errors naming the problem.
func TestVoteBadInput(t *testing.T) {
	p, _ := NewProfile(Config{})
	for _, n := range []int{0, MaxGroupChannels + 1} {
		if _, err := NewVote(p, n); !errors.Is(err, ErrInvalidGroupConfig) || !errs.IsPermanent(err) {
			t.Errorf("%d channels: %v", n, err)
		}
	}
	if _, err := NewVote(nil, 3); !errs.IsPermanent(err) {
		t.Errorf("nil profile: %v", err)
	}
	v, _ := NewVote(p, 3)
	if r := v.Observe(t0, []float64{1, 2}); r.Flags&FlagInvalid == 0 {
		t.Errorf("short row: flags %v", r.Flags)
	}
	if r := v.Observe(t0, []float64{math.NaN(), math.Inf(1), math.NaN()}); r.Flags&FlagInvalid == 0 {
		t.Errorf("row of missing channels: flags %v", r.Flags)
	}
	v.Observe(t0.Add(time.Minute), []float64{1, 2, 3})
	if r := v.Observe(t0.Add(time.Minute), []float64{1, 2, 3}); r.Flags&FlagDuplicate == 0 {
		t.Errorf("duplicate row: flags %v", r.Flags)
	}
	if r := v.Observe(t0, []float64{1, 2, 3}); r.Flags&FlagOutOfOrder == 0 {
		t.Errorf("older row: flags %v", r.Flags)
	}
	if v.Rows() != 1 {
		t.Errorf("rows %d, want 1", v.Rows())
	}
	data, _ := v.MarshalBinary()
	w, _ := NewVote(p, 4)
	if err := w.UnmarshalBinary(data); !errors.Is(err, ErrStateMismatch) {
		t.Errorf("4 channels from a state of 3: %v", err)
	}
	u, _ := NewVote(p, 3)
	for name, bad := range map[string][]byte{
		"empty": nil, "truncated": data[:len(data)-3], "trailing": append(slices.Clone(data), 0),
		"not a vote": []byte("gp\x02"),
	} {
		if err := u.UnmarshalBinary(bad); err == nil || !errs.IsPermanent(err) {
			t.Errorf("%s: %v", name, err)
		}
	}
	if u.Rows() != 0 {
		t.Error("a failed restore changed the vote")
	}
	if _, err := ParseMethod("kmeans"); !errors.Is(err, ErrInvalidMethod) {
		t.Errorf("ParseMethod(kmeans): %v", err)
	}
	if m, err := ParseMethod(""); m != MethodVote || err != nil {
		t.Errorf("ParseMethod(\"\") = %q, %v", m, err)
	}
}

// TestVoteOneChannelFarOut: one channel of 19 going 200σ out is flagged
// from its first row by itself, by its severity (how far past its bar it
// is); its rarity alone (at most ln(rows), 8.4 after three days at one
// minute) stays under the limit 2.5·√19 = 10.9, so with
// Vote.RarityOnly the row waits for a second channel that never comes. A
// shift of 10σ on one channel, past its alarm level but not far, is
// flagged by neither.
func TestVoteOneChannelFarOut(t *testing.T) {
	const faultAt = 2*1440 + 600
	for _, c := range []struct {
		name       string
		cfg        Config
		shift      float64
		wantFlag   bool
		wantInTime int // rows after faultAt by which the first flag must come
	}{
		{"severity, 200σ", Config{}, 200, true, 0},
		{"rarity only, 200σ", Config{Vote: VoteConfig{RarityOnly: true}}, 200, false, 0},
		{"severity, 10σ", Config{}, 10, false, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			times, rows := voteAsset(19, nil, faultAt)
			for i := faultAt; i < faultAt+10; i++ {
				rows[i][5] += c.shift
			}
			p, err := NewProfile(c.cfg)
			if err != nil {
				t.Fatal(err)
			}
			v, _ := NewVote(p, 19)
			first, inAlarm := -1, false
			for i := range times {
				r := v.Observe(times[i], rows[i])
				if r.Channels[5].Alarm && i >= faultAt && i < faultAt+10 {
					inAlarm = true
				}
				if !r.Anomaly {
					continue
				}
				if i < faultAt || i >= faultAt+10 {
					t.Errorf("row %d flagged outside the fault: contributors %v", i, r.Contributors)
					continue
				}
				if r.Channel != 5 || len(r.Contributors) != 1 {
					t.Errorf("row %d: contributors %v, want channel 5 alone", i, r.Contributors)
				}
				if first < 0 {
					first = i
				}
			}
			if !inAlarm {
				t.Fatal("channel 5 never in an alarm episode in the fault: the test proves nothing")
			}
			switch {
			case c.wantFlag && first != faultAt+c.wantInTime:
				t.Errorf("fault at row %d: first flagged row %d", faultAt, first)
			case !c.wantFlag && first >= 0:
				t.Errorf("row %d flagged: one channel %gσ out", first, c.shift)
			}
		})
	}
}
