package detector

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/detect/synth"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// streamGroupAnomalies reads the group anomalies on the stream.
func (r *rig) groupAnomalies() []groupEvent {
	var datas [][]byte
	for _, e := range r.anomalies() {
		d, err := e.MarshalJSON()
		if err != nil {
			r.t.Fatal(err)
		}
		datas = append(datas, d)
	}
	return groupAnomalies(r.t, datas)
}

// startPump runs a detector whose pipeline has one pca group, pump (its
// keys of yaml added), with only the shutdown snapshot, and publishes the
// samples of a generated pump with a broken sensor.
func (r *rig) startPump(yaml string) (synth.Group, Config, *Service, func(crash bool)) {
	a, err := synth.GenerateGroup(synth.GroupBreak, synth.GroupOptions{Seed: 1})
	if err != nil {
		r.t.Fatal(err)
	}
	file := filepath.Join(r.t.TempDir(), "p.yaml")
	yaml = "detect:\n  groups:\n    - name: pump\n      by: [host]\n      channels: [" + strings.Join(a.Channels, ", ") + "]\n      method: pca\n" + yaml
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		r.t.Fatal(err)
	}
	cfg := Config{Pipeline: file, Snapshot: SnapshotConfig{Interval: time.Hour}}
	svc, stop := r.start(cfg)
	r.publish(assetSamples(r.t, a)...)
	return a, cfg, svc, stop
}

// publishOffRow publishes a row of a's first n channels a second after
// its last, the first channel 1000 away from its last value, and returns
// the row's time.
func (r *rig) publishOffRow(a synth.Group, n int) time.Time {
	last := len(a.Times) - 1
	at := a.Times[last].Add(time.Second)
	var row [][]byte
	for c, name := range a.Channels[:n] {
		v := a.Values[c][last]
		if c == 0 {
			v += 1000
		}
		_, d := sample(r.t, "plant", name, map[string]string{"host": "pump-1"}, at, v, "")
		row = append(row, d)
	}
	r.publish(row...)
	return at
}

// waitRows waits until svc scored n rows.
func waitRows(t *testing.T, svc *Service, n int) {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); testutil.ToFloat64(svc.m.rows) < float64(n); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%v rows scored within a minute, want %d", testutil.ToFloat64(svc.m.rows), n)
		}
	}
}

// Method pca: the samples of a generated asset with a broken sensor, published as
// metric envelopes, come out as group anomalies on JetStream for the fault's
// rows, naming the broken channel; after a restart the asset's model is
// restored, so a row far outside is flagged at once, with no new warm-up.
func TestGroupAnomaliesOnJetStreamAndRestore(t *testing.T) {
	r := newRig(t)
	a, cfg, svc, stop := r.startPump("")
	waitRows(t, svc, len(a.Times))
	deadline := time.Now().Add(60 * time.Second)
	var got []groupEvent
	for time.Now().Before(deadline) {
		if got = r.groupAnomalies(); len(got) >= int(testutil.ToFloat64(svc.m.groupAnomalies)) && len(got) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	broken := a.Channels[brokenChannel(a)]
	named := map[string]int{}
	ids := map[string]bool{}
	for _, ge := range got {
		ids[ge.env.ID] = true
		i := int(ge.env.Time.Sub(a.Times[0]) / time.Second)
		if i >= 0 && i < len(a.Labels) && a.Labels[i] {
			named[ge.body.Channel]++
		}
	}
	if len(ids) != len(got) {
		t.Errorf("%d group anomalies with %d distinct ids", len(got), len(ids))
	}
	if named[broken] == 0 {
		t.Fatalf("no group anomaly in the fault's rows names the broken channel %s: %v (%d group anomalies)", broken, named, len(got))
	}
	for ch, n := range named {
		if ch != broken && n >= named[broken] {
			t.Errorf("fault rows name %s %d times, the broken channel %s %d times", ch, n, broken, named[broken])
		}
	}
	stop(false)

	key := assetKey(&svc.pipeline.Groups[0], []string{"pump-1"})
	kv, err := r.js.KeyValue(context.Background(), DefaultBucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(context.Background(), "detector.group."+key); err != nil {
		t.Fatalf("no snapshot under detector.group.%s: %v", key, err)
	}

	svc2, stop2 := r.start(cfg)
	defer stop2(false)
	deadline = time.Now().Add(30 * time.Second)
	for svc2.Assets() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the asset was not restored")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// One row right after the restart, the first channel far from the
	// others: a group warming up again would score it 0.
	at := r.publishOffRow(a, len(a.Channels))
	deadline = time.Now().Add(30 * time.Second)
	for {
		var hit *groupEvent
		for _, ge := range r.groupAnomalies() {
			if ge.env.Time.Equal(at) {
				hit = &ge
			}
		}
		if hit != nil {
			if hit.body.Channel != a.Channels[0] || hit.env.Kind != event.KindAnomaly || len(hit.env.Links) != len(a.Channels) {
				t.Errorf("after restart: %+v, want channel %s", hit.body, a.Channels[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no group anomaly for the row after the restart (rows scored %v)", testutil.ToFloat64(svc2.m.rows))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A row a tick closed (its last channel never came) whose anomaly the
// stream had not stored when the detector stopped: the asset's snapshot
// holds the row closed, so only the outbox saved beside it can send the
// anomaly, which the next run does.
func TestTickAnomalyNotStoredAtTheStopIsSentAfterTheRestart(t *testing.T) {
	r := newRig(t)
	a, cfg, svc, stop := r.startPump("      wait: 1s\n")
	waitRows(t, svc, len(a.Times))

	// EVENTS stops taking anomalies, and only them.
	restore := testenv.NarrowStream(t, r.js, bus.StreamEvents,
		event.KindFilterAll(event.KindLog), event.KindFilterAll(event.KindMetric), event.KindFilterAll(event.KindAlert),
		event.KindFilterAll(event.KindChange), event.KindFilterAll(event.KindIncident))
	// A row without its last channel, the first far from the others.
	at := r.publishOffRow(a, len(a.Channels)-1)
	waitRows(t, svc, len(a.Times)+1)
	for deadline := time.Now().Add(30 * time.Second); svc.runner.Unsent() == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the row's anomaly is not waiting to be sent")
		}
	}
	stop(false)
	restore()

	_, stop2 := r.start(cfg)
	defer stop2(false)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var hit *groupEvent
		for _, ge := range r.groupAnomalies() {
			if ge.env.Time.Equal(at) {
				hit = &ge
			}
		}
		if hit != nil {
			if hit.body.Channel != a.Channels[0] {
				t.Errorf("the row's anomaly names %s, want %s", hit.body.Channel, a.Channels[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the row's anomaly never came after the restart")
		}
	}
}

// Method vote, the default: a fault across three of six channels of one
// asset, published as metric envelopes on JetStream, comes out as one
// asset episode (open, updates at most every 5 minutes, close) naming the
// channels in fault, with the events of the offline detect.Vote.
func TestVoteGroupEpisodeOnJetStream(t *testing.T) {
	r := newRig(t)
	fault := []int{0, 2, 5}
	a := faultAsset(6, fault, 30*60)
	file := filepath.Join(t.TempDir(), "p.yaml")
	yaml := "detect:\n  groups:\n    - name: pump\n      by: [host]\n      channels: [" + strings.Join(a.Channels, ", ") + "]\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	svc, stop := r.start(Config{Pipeline: file, Snapshot: SnapshotConfig{Interval: time.Hour}})
	defer stop(false)
	r.publish(assetSamples(t, a)...)
	deadline := time.Now().Add(60 * time.Second)
	for testutil.ToFloat64(svc.m.rows) < float64(len(a.Times)) {
		if time.Now().After(deadline) {
			t.Fatalf("%v rows scored within a minute, want %d", testutil.ToFloat64(svc.m.rows), len(a.Times))
		}
		time.Sleep(100 * time.Millisecond)
	}
	want, kinds := offlineVoteEvents(t, a)
	var got []groupEvent
	for time.Now().Before(deadline) {
		if got = r.groupAnomalies(); len(got) >= len(want) && float64(len(got)) >= testutil.ToFloat64(svc.m.groupAnomalies) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if len(got) != len(want) {
		t.Fatalf("%d group anomalies on the stream, the offline vote's runs make %d events", len(got), len(want))
	}
	for i, ge := range got {
		if !ge.env.Time.Equal(want[i]) || ge.body.Episode != kinds[i] || ge.env.Kind != event.KindAnomaly || ge.env.Labels["group"] != "pump" {
			t.Fatalf("anomaly %d: %s %s at %v labels %v, the offline vote: %s at %v", i, ge.env.Kind, ge.body.Episode, ge.env.Time, ge.env.Labels, kinds[i], want[i])
		}
	}
	checkAssetEpisode(t, got, a, fault)
	t.Logf("%d events: %s", len(got), got[0].body.Reason)
}

// A crash after a row opened (or closed) its asset's alarm and the
// anomaly was stored, before a snapshot held the asset's state, loses
// nothing and doubles nothing: the next instance gets the asset's samples
// since its last stored snapshot again, rebuilds the same rows from it and
// makes the same anomalies, under the same ids. Acked as they joined
// their rows, those samples were gone: restored from before the open, the
// fault going on opened a second episode under another id, and the first
// was never closed (an incident downstream that never resolves); restored
// from before the close, the next calm row closed the episode a second
// time.
func TestGroupAlarmTransitionSurvivesACrashBeforeItsSnapshot(t *testing.T) {
	for _, transition := range []string{event.EpisodeOpen, event.EpisodeClose} {
		t.Run(transition, func(t *testing.T) {
			r := newRig(t)
			// Three channels, two shifted by 10σ for the faultRows rows
			// from row 200: the offline vote opens at 200 and closes at
			// 220, the row after the fault.
			const onset = 200
			a := faultAsset(3, []int{0, 1}, onset)
			// The channels' own series never score (warm-up), so no series
			// episode holds a sample's ack: only the group's rows matter.
			file := filepath.Join(t.TempDir(), "p.yaml")
			yaml := "detect:\n  rules:\n    - name: quiet\n      match: {metric: \"ch.*\"}\n      detectors: {warm_up: 1000000}\n" +
				"  groups:\n    - name: pump\n      by: [host]\n      channels: [" + strings.Join(a.Channels, ", ") + "]\n"
			if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			// no periodic snapshot in the test
			cfg := Config{Pipeline: file, Snapshot: SnapshotConfig{Interval: time.Hour, ShutdownTimeout: 2 * time.Second}}
			var seq uint64 // the stream sequence of the last sample published
			rows := func(from, to int) {
				for i := from; i < to; i++ {
					for c, name := range a.Channels {
						e, d := sample(t, "plant", name, map[string]string{"host": "pump-1"}, a.Times[i], a.Values[c][i], "")
						ack, err := r.js.Publish(context.Background(), e.Subject(), d, jetstream.WithMsgID(e.ID))
						if err != nil {
							t.Fatal(err)
						}
						seq = ack.Sequence
					}
				}
			}
			// scored waits until every sample published was scored and its
			// anomalies stored: all delivered, and all acked but for at
			// most one (a sample whose ack the detector holds).
			scored := func() {
				t.Helper()
				c, err := r.js.Consumer(context.Background(), bus.StreamEvents, DefaultDurable)
				if err != nil {
					t.Fatal(err)
				}
				for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					info, err := c.Info(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					if info.Delivered.Stream >= seq && info.NumAckPending <= 1 {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("samples up to %d not all scored within a minute: delivered %d, ack floor %d, %d pending", seq, info.Delivered.Stream, info.AckFloor.Stream, info.NumAckPending)
					}
				}
			}
			// stored waits until the group's anomalies on the stream end
			// with one of kind.
			stored := func(kind string) {
				t.Helper()
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
					if got := r.groupAnomalies(); len(got) > 0 && got[len(got)-1].body.Episode == kind {
						return
					}
					if time.Now().After(deadline) {
						t.Fatalf("no group %s on the stream within 30s", kind)
					}
				}
			}
			svc, stop := r.start(cfg)
			next := onset
			if transition == event.EpisodeClose {
				next = onset + faultRows/2 // the alarm is open
			}
			rows(0, next)
			scored()
			if transition == event.EpisodeClose {
				stored(event.EpisodeUpdate)
			}
			// the last periodic snapshot
			if n, err := svc.Snapshot(context.Background()); err != nil || n == 0 {
				t.Fatalf("snapshot: %d written, %v", n, err)
			}
			if transition == event.EpisodeOpen {
				rows(next, onset+3) // the fault opens the alarm
				next = onset + 3
			} else {
				rows(next, onset+faultRows+2) // the fault ends
				next = onset + faultRows + 2
			}
			scored()
			stored(transition)
			stop(true) // before any snapshot holds the transition

			_, stop = r.start(cfg)
			rows(next, onset+faultRows+10) // the fault goes on, or calm goes on
			scored()
			stop(false)

			// the events of the offline vote over the same rows, each once,
			// of one episode
			a.Times = a.Times[:onset+faultRows+10]
			want, wantKinds := offlineVoteEvents(t, a)
			got := r.groupAnomalies()
			ids := map[string]bool{}
			same := len(got) == len(want)
			for i, ge := range got {
				ids[ge.body.EpisodeID] = true
				same = same && ge.env.Time.Equal(want[i]) && ge.body.Episode == wantKinds[i]
			}
			if !same || len(ids) != 1 {
				var kinds []string
				for _, ge := range got {
					kinds = append(kinds, fmt.Sprintf("%s at row %d (episode %s)", ge.body.Episode, rowsOf([]time.Time{ge.env.Time})[0], ge.body.EpisodeID))
				}
				t.Errorf("crash before the snapshot of the group's %s: anomalies %v; want the offline vote's %v at rows %v, of one episode", transition, kinds, wantKinds, rowsOf(want))
			}
		})
	}
}

// rowsOf is the row numbers of faultAsset's times ts.
func rowsOf(ts []time.Time) []int {
	var out []int
	for _, at := range ts {
		out = append(out, int(at.Sub(t0)/time.Minute))
	}
	return out
}
