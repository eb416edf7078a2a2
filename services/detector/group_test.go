package detector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/detect/synth"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage/stagetest"
)

// groupPipeline is a pipeline with one group of method pca over the
// asset's channels, one asset per host.
func groupPipeline(t testing.TB, channels []string, settings string) *pipeline.Pipeline {
	t.Helper()
	p, err := pipeline.Parse("g.yaml", []byte(fmt.Sprintf("detect:\n  groups:\n    - name: pump\n      by: [host]\n      channels: [%s]\n      wait: 10s\n      method: pca\n      settings: {%s}\n", strings.Join(channels, ", "), settings)))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// votePipeline is a pipeline with one group of the default method, vote,
// over the asset's channels, one asset per host.
func votePipeline(t testing.TB, channels []string) *pipeline.Pipeline {
	t.Helper()
	p, err := pipeline.Parse("g.yaml", []byte(fmt.Sprintf("detect:\n  groups:\n    - name: pump\n      by: [host]\n      channels: [%s]\n      wait: 10s\n", strings.Join(channels, ", "))))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestAssetAssemblesRows(t *testing.T) {
	p := groupPipeline(t, []string{"a", "b", "c"}, "")
	g, _ := p.Group("pump")
	a, err := newAsset("k", g, "svc", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	now := t0
	add := func(at time.Time, ch int, v float64, id string) ([]closedRow, addResult) {
		return a.add(at, ch, v, id, now)
	}
	// A complete row closes on its last channel, in channel order whatever
	// the arrival order; timestamps in the same second meet.
	if rows, what := add(t0, 2, 3, "s1"); len(rows) != 0 || what != added {
		t.Fatalf("first sample: %v %v", rows, what)
	}
	if rows, what := add(t0.Add(300*time.Millisecond), 2, 99, "s1b"); len(rows) != 0 || what != duplicate {
		t.Fatalf("second value of a channel: %v %v, want duplicate", rows, what)
	}
	// The same sample again (redelivered after a restart whose snapshot
	// held the open row) is no second label set the group's by merged.
	if rows, what := add(t0, 2, 3, "s1"); len(rows) != 0 || what != again {
		t.Fatalf("the row's own sample again: %v %v, want again", rows, what)
	}
	add(t0.Add(100*time.Millisecond), 0, 1, "s2")
	rows, _ := add(t0.Add(900*time.Millisecond), 1, 2, "s3")
	if len(rows) != 1 || !rows[0].complete || !rows[0].time.Equal(t0) || !slices.Equal(rows[0].values, []float64{1, 2, 3}) || !slices.Equal(rows[0].links, []string{"s1", "s2", "s3"}) {
		t.Fatalf("complete row %+v", rows)
	}
	// Anything not after the closed row is late.
	if rows, what := add(t0.Add(500*time.Millisecond), 0, 1, "late"); len(rows) != 0 || what != late {
		t.Fatalf("sample of a closed row: %v %v, want late", rows, what)
	}
	// A later second closes the open row with its missing channel.
	t1, t2 := t0.Add(time.Second), t0.Add(2*time.Second)
	add(t1, 0, 10, "x1")
	add(t1, 1, 20, "x2")
	rows, what := add(t2, 1, 21, "y1")
	if what != added || len(rows) != 1 || rows[0].complete || !rows[0].time.Equal(t1) || rows[0].values[0] != 10 || rows[0].values[1] != 20 || !math.IsNaN(rows[0].values[2]) {
		t.Fatalf("row closed by a later second: %+v %v", rows, what)
	}
	// Out of order: older than the open row.
	if _, what := add(t1, 2, 30, "old"); what != late {
		t.Fatalf("sample older than the open row: %v, want late", what)
	}
	// The wait closes an open row; not before.
	if _, ok := a.expire(t0.Add(g.Wait - time.Nanosecond)); ok {
		t.Fatal("closed before its wait")
	}
	r, ok := a.expire(t0.Add(g.Wait))
	if !ok || !r.time.Equal(t2) || r.complete || r.values[1] != 21 {
		t.Fatalf("expired row %+v %v", r, ok)
	}
	if _, ok := a.expire(t0.Add(time.Hour)); ok {
		t.Fatal("no open row, yet closed one")
	}
	if _, what := add(t2, 0, 1, "z"); what != late {
		t.Fatalf("sample of the expired row: %v, want late", what)
	}
}

// brokenChannel finds the channel a GroupBreak offsets: the one whose level
// steps up (or down) at the onset and back at the end of the fault, in
// units of its own standard deviation.
func brokenChannel(g synth.Group) int {
	on := g.Onset
	end := on
	for end < len(g.Labels) && g.Labels[end] {
		end++
	}
	mean := func(c, from, to int) float64 {
		var s float64
		for i := from; i < to; i++ {
			s += g.Values[c][i]
		}
		return s / float64(to-from)
	}
	best, bestStep := -1, 0.0
	for c := range g.Channels {
		m := mean(c, 0, on)
		var v float64
		for i := 0; i < on; i++ {
			v += (g.Values[c][i] - m) * (g.Values[c][i] - m)
		}
		sd := math.Sqrt(v / float64(on))
		step := ((mean(c, on, on+5) - mean(c, on-5, on)) - (mean(c, end, end+5) - mean(c, end-5, end))) / sd
		if math.Abs(step) > bestStep {
			best, bestStep = c, math.Abs(step)
		}
	}
	return best
}

// assetSamples encodes the rows of a generated asset as metric samples of
// host pump-1, channel by channel within each row.
func assetSamples(t testing.TB, g synth.Group) [][]byte {
	var out [][]byte
	for i, ts := range g.Times {
		for c, name := range g.Channels {
			_, d := sample(t, "plant", name, map[string]string{"host": "pump-1"}, ts, g.Values[c][i], "")
			out = append(out, d)
		}
	}
	return out
}

type groupEvent struct {
	env  *event.Envelope
	body groupAnomalyBody
}

func groupAnomalies(t testing.TB, datas [][]byte) []groupEvent {
	t.Helper()
	var out []groupEvent
	for _, d := range datas {
		e, err := event.Parse(d)
		if err != nil {
			t.Fatalf("anomaly does not parse: %v", err)
		}
		var b groupAnomalyBody
		if err := json.Unmarshal(e.Body, &b); err != nil {
			t.Fatal(err)
		}
		if b.Detector == GroupDetector {
			out = append(out, groupEvent{e, b})
		}
	}
	return out
}

// offlineGroupAnomalies runs the default detect.Group over asset a and
// returns the episode events the service must publish (offlineEpisodes),
// whether the asset was changing at each, and how many rows the Group
// flags in all.
func offlineGroupAnomalies(a synth.Group) (times []time.Time, kinds []string, changing []bool, flagged int) {
	offline, _ := detect.NewGroup(detect.GroupConfig{}, len(a.Channels))
	var results []detect.GroupResult
	times, kinds = offlineEpisodes(a, func(ts time.Time, row []float64) bool {
		r := offline.Observe(ts, row)
		results = append(results, r)
		if r.Anomaly {
			flagged++
		}
		return r.Anomaly
	})
	for _, ts := range times {
		i := slices.Index(a.Times, ts)
		changing = append(changing, results[i].Changing)
	}
	return times, kinds, changing, flagged
}

// offlineEpisodes runs flagged over the rows of asset a and returns the
// rows where the service must publish an episode event (a flagged row
// after one that was not opens, every 5 minutes of flagged rows updates,
// the first row not flagged after flagged ones closes) and the event's
// kind.
func offlineEpisodes(a synth.Group, flagged func(time.Time, []float64) bool) (times []time.Time, kinds []string) {
	row := make([]float64, len(a.Channels))
	was := false
	var lastUpd time.Time
	for i, ts := range a.Times {
		for c := range row {
			row[c] = a.Values[c][i]
		}
		anomaly := flagged(ts, row)
		kind := ""
		switch {
		case anomaly && !was:
			kind, lastUpd = event.EpisodeOpen, ts
		case anomaly && ts.Sub(lastUpd) >= detect.DefaultEpisodeUpdateEvery:
			kind, lastUpd = event.EpisodeUpdate, ts
		case !anomaly && was:
			kind = event.EpisodeClose
		}
		was = anomaly
		if kind != "" {
			times, kinds = append(times, ts), append(kinds, kind)
		}
	}
	return times, kinds
}

// publishAsset feeds asset a's samples to a new service with a group over
// its channels and returns the service and the group anomalies it
// published.
func publishAsset(t *testing.T, a synth.Group) (*Service, []groupEvent) {
	t.Helper()
	s, h := newTestService(t, Config{}, WithPipeline(groupPipeline(t, a.Channels, "")))
	for _, d := range assetSamples(t, a) {
		ack(t, h, d)
	}
	return s, published(t, h.Pub)
}

// published returns the group anomalies pub stored.
func published(t testing.TB, pub *stagetest.Publisher) []groupEvent {
	var datas [][]byte
	for _, m := range pub.Messages() {
		datas = append(datas, m.Data)
	}
	return groupAnomalies(t, datas)
}

// A group anomaly says whether the asset is still moving: on a fault that
// comes in and goes out over up to 50 rows, its episode's events are
// changing while it does and settled in between, as the offline group says.
func TestGroupAnomalyChanging(t *testing.T) {
	// rows 10 s apart, so that the alarm lasts long enough for updates
	a, err := synth.GenerateGroup(synth.GroupShift, synth.GroupOptions{Seed: 2, Magnitude: 3, Transition: 50, Step: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	_, got := publishAsset(t, a)
	want, kinds, changing, _ := offlineGroupAnomalies(a)
	if !slices.Contains(changing, true) || !slices.Contains(changing, false) {
		t.Fatalf("the offline group's episode events are all changing or all settled (%d of them): the test proves nothing", len(changing))
	}
	if len(got) != len(want) {
		t.Fatalf("%d group anomalies, the offline group's episodes make %d events", len(got), len(want))
	}
	for i, ge := range got {
		if ge.body.Episode != kinds[i] {
			t.Fatalf("anomaly %d: episode %q, want %q", i, ge.body.Episode, kinds[i])
		}
		checkChanging(t, i, ge, changing[i])
	}
}

// checkChanging fails the test when anomaly i's changing flag, or its
// reason, disagrees with the offline group's.
func checkChanging(t *testing.T, i int, ge groupEvent, want bool) {
	t.Helper()
	if b := ge.body; b.Changing != want || strings.Contains(b.Reason, "still moving") != want {
		t.Fatalf("anomaly %d at %v: changing %v, reason %q; the offline group says changing %v", i, ge.env.Time, b.Changing, b.Reason, want)
	}
}

// The service gathers an asset's samples into rows and publishes one
// anomaly for each row the offline detect.Group flags on the same rows,
// explained, with a stable id; the channel it names most is the broken one.
func TestGroupAnomaliesFromSamples(t *testing.T) {
	a, err := synth.GenerateGroup(synth.GroupBreak, synth.GroupOptions{Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, got := publishAsset(t, a)

	want, kinds, wantChanging, flagged := offlineGroupAnomalies(a)
	if len(want) == 0 {
		t.Fatal("the offline group flags nothing: the test proves nothing")
	}
	if len(got) != len(want) {
		t.Fatalf("%d group anomalies, the offline group's episodes make %d events", len(got), len(want))
	}
	// episodes, not a flood: a handful of events for the flagged rows
	if len(got)*10 > flagged {
		t.Errorf("%d group anomalies for %d flagged rows", len(got), flagged)
	}
	broken := a.Channels[brokenChannel(a)]
	named := map[string]int{}
	inFault := 0
	for i, ge := range got {
		e, b := ge.env, ge.body
		if !e.Time.Equal(want[i]) {
			t.Fatalf("anomaly %d at %v, want %v", i, e.Time, want[i])
		}
		if e.Subject() != "events.anomaly.plant" || e.Labels["host"] != "pump-1" || e.Labels["group"] != "pump" || e.Source != Source {
			t.Fatalf("anomaly %d: subject %s labels %v source %s", i, e.Subject(), e.Labels, e.Source)
		}
		if b.Episode != kinds[i] || b.EpisodeID == "" || b.Start.After(e.Time) || b.End.Before(b.Start) || *b.Peak < 0.5 {
			t.Fatalf("anomaly %d: episode %q id %q start %v end %v peak %v, want %q", i, b.Episode, b.EpisodeID, b.Start, b.End, *b.Peak, kinds[i])
		}
		if i > 0 && b.Episode != event.EpisodeOpen && b.EpisodeID != got[i-1].body.EpisodeID {
			t.Fatalf("anomaly %d: episode id %s, the episode's open had %s", i, b.EpisodeID, got[i-1].body.EpisodeID)
		}
		if b.Episode == event.EpisodeClose {
			continue // a calm row: what names the fault is the rows before
		}
		if len(e.Links) != len(a.Channels) || *b.Score < 0.5 || *b.Score > 1 || b.Group != "pump" || b.Metric != b.Channel || len(b.Channels) != len(a.Channels) || b.T2Limit <= 0 || b.QLimit <= 0 {
			t.Fatalf("anomaly %d: links %d body %+v", i, len(e.Links), b)
		}
		checkChanging(t, i, ge, wantChanging[i])
		c := slices.Index(a.Channels, b.Channel)
		if c < 0 || b.Channels[c].Value == nil || *b.Channels[c].Value != *b.Value || b.Channels[c].Expected != b.Expected || !strings.Contains(b.Reason, b.Channel) {
			t.Fatalf("anomaly %d names channel %q inconsistently: %+v", i, b.Channel, b)
		}
		ri := slices.IndexFunc(a.Times, func(x time.Time) bool { return x.Equal(e.Time) })
		if a.Labels[ri] {
			inFault++
			named[b.Channel]++
		}
	}
	if inFault*2 < len(got) {
		t.Errorf("%d of %d group anomalies inside the fault", inFault, len(got))
	}
	for ch, n := range named {
		if ch != broken && n >= named[broken] {
			t.Errorf("fault rows name %s %d times, the broken channel %s %d times", ch, n, broken, named[broken])
		}
	}
	if n := testutil.ToFloat64(s.m.groupAnomalies); int(n) != len(got) {
		t.Errorf("group_anomalies_total %v, want %d", n, len(got))
	}
	if n := testutil.ToFloat64(s.m.rows); int(n) != len(a.Times) {
		t.Errorf("group_rows_total %v, want %d", n, len(a.Times))
	}
	// The id comes from the asset and the row time: the same row scored
	// by another instance (or after a restore) is the same message.
	_, h2 := newTestService(t, Config{}, WithPipeline(groupPipeline(t, a.Channels, "")))
	for _, d := range assetSamples(t, a) {
		ack(t, h2, d)
	}
	again := published(t, h2.Pub)
	for i, ge := range got {
		if i >= len(again) || again[i].env.ID != ge.env.ID {
			t.Fatalf("group anomaly %d: id %s, not the same in a second run", i, ge.env.ID)
		}
	}
}

// cleanAsset generates an asset without a fault and feeds its rows to the
// runner as samples of host h; it returns the asset.
func cleanAsset(t *testing.T, h *stagetest.Harness, channels int) synth.Group {
	t.Helper()
	a, err := synth.GenerateGroup(synth.GroupClean, synth.GroupOptions{Seed: 5, Channels: channels, Factors: 1})
	if err != nil {
		t.Fatal(err)
	}
	for i, ts := range a.Times {
		for c, name := range a.Channels {
			_, d := sample(t, "plant", name, map[string]string{"host": "h"}, ts, a.Values[c][i], "")
			if r := h.FeedRaw(d); r.Outcome != stagetest.Acked {
				t.Fatalf("row %d channel %s: %v (%v)", i, name, r.Outcome, r.Err)
			}
		}
	}
	return a
}

// groupAnomaliesAt returns the group anomalies pub stored for time ts.
func groupAnomaliesAt(t *testing.T, pub *stagetest.Publisher, ts time.Time) []groupEvent {
	var out []groupEvent
	for _, ge := range published(t, pub) {
		if ge.env.Time.Equal(ts) {
			out = append(out, ge)
		}
	}
	return out
}

// pending returns the unsettled anomaly publishes of the only asset.
func pending(t *testing.T, s *Service) int32 {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.assets.Len() != 1 {
		t.Fatalf("%d assets, want 1", s.assets.Len())
	}
	for _, a := range s.assets.Values() {
		return a.pending
	}
	return 0
}

// A sample that completes an anomalous row is acked only after the row's
// anomaly is; when that publish fails it is naked, and on redelivery the
// same anomaly goes out again.
func TestGroupAnomalyFailedPublishIsRetried(t *testing.T) {
	s, h := newTestService(t, Config{}, WithPipeline(groupPipeline(t, []string{"ch0", "ch1"}, "")))
	a := cleanAsset(t, h, 2)
	n := len(a.Times)
	ts := a.Times[n-1].Add(time.Second)
	_, d0 := sample(t, "plant", "ch0", map[string]string{"host": "h"}, ts, a.Values[0][n-1], "")
	_, d1 := sample(t, "plant", "ch1", map[string]string{"host": "h"}, ts, a.Values[1][n-1]+1000, "") // the relation breaks
	ack(t, h, d0)
	h.Pub.FailNext(2) // the series' anomaly and the row's
	if r := h.FeedRaw(d1); r.Outcome != stagetest.Naked {
		t.Fatalf("the sample closing an anomalous row: %v (%v), want naked: its anomaly's publish failed", r.Outcome, r.Err)
	}
	if got := groupAnomaliesAt(t, h.Pub, ts); len(got) != 0 {
		t.Fatalf("%d group anomalies published before the retry", len(got))
	}
	if p := pending(t, s); p != 0 {
		t.Errorf("the asset waits for %d publishes after the failure settled them", p)
	}
	ack(t, h, d1)
	if got := groupAnomaliesAt(t, h.Pub, ts); len(got) != 1 || got[0].body.Channel != "ch1" {
		t.Fatalf("after redelivery: %d group anomalies %+v, want one naming ch1", len(got), got)
	}
	if st := h.Runner.Stats(); st.Replayed != 1 {
		t.Errorf("replayed %d, want the redelivery answered with the kept anomalies", st.Replayed)
	}
	if n := testutil.ToFloat64(s.m.rows); int(n) != len(a.Times)+1 {
		t.Errorf("group_rows_total %v, want %d: the redelivery was assembled again", n, len(a.Times)+1)
	}
}

// A row missing a channel is scored once its wait has passed, at a tick;
// when its anomaly's publish fails, the next tick publishes it.
func TestFlushRowsClosesRowsOnTheirWait(t *testing.T) {
	clock := &testClock{t: t0}
	s, h := newTestService(t, Config{}, WithPipeline(groupPipeline(t, []string{"ch0", "ch1", "ch2"}, "")), WithClock(clock.now))
	a := cleanAsset(t, h, 3)
	n := len(a.Times)
	// ch0 and ch1 only, far out; ch2 never comes
	ts := a.Times[n-1].Add(time.Second)
	_, d0 := sample(t, "plant", "ch0", map[string]string{"host": "h"}, ts, a.Values[0][n-1]+1000, "")
	_, d1 := sample(t, "plant", "ch1", map[string]string{"host": "h"}, ts, a.Values[1][n-1]-1000, "")
	ack(t, h, d0)
	ack(t, h, d1)
	sent := h.Pub.Sent()
	if err := s.FlushRows(context.Background()); err != nil {
		t.Fatal(err)
	}
	if v := testutil.ToFloat64(s.m.rowsIncomplete); v != 0 {
		t.Fatalf("FlushRows closed %v rows before their wait", v)
	}
	clock.add(10 * time.Second)
	h.Pub.FailNext(1)
	if err := s.FlushRows(context.Background()); !errors.Is(err, stagetest.ErrPublish) {
		t.Fatalf("tick whose publish failed: %v, want %v", err, stagetest.ErrPublish)
	}
	if v := testutil.ToFloat64(s.m.rowsIncomplete); v != 1 {
		t.Fatalf("group_rows_incomplete_total %v after the wait, want 1", v)
	}
	if got, kept := groupAnomaliesAt(t, h.Pub, ts), h.Runner.Unsent(); len(got) != 0 || kept != 1 || h.Pub.Sent() != sent+1 {
		t.Fatalf("after a failed publish: %d stored, %d kept for the next tick, %d sent; want 0, 1, 1", len(got), kept, h.Pub.Sent()-sent)
	}
	if p := pending(t, s); p != 0 {
		t.Errorf("the asset waits for %d publishes after the failure settled them", p)
	}
	if err := s.FlushRows(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := groupAnomaliesAt(t, h.Pub, ts)
	if len(got) != 1 || got[0].body.Channels[2].Value != nil || got[0].body.Channels[0].Value == nil {
		t.Fatalf("group anomalies %+v, want one at %v with ch2 missing", got, ts)
	}
	if v := testutil.ToFloat64(s.m.rowsIncomplete); v != 1 || h.Runner.Unsent() != 0 {
		t.Errorf("group_rows_incomplete_total %v, %d kept; want 1, 0: the retry closed the row again", v, h.Runner.Unsent())
	}
}

func TestLeastRecentlySeenAssetIsEvicted(t *testing.T) {
	var logs strings.Builder
	s, err := newService(Config{MaxAssets: 2}, zerolog.New(&logs), WithPipeline(groupPipeline(t, []string{"a", "b"}, "")), WithClock(func() time.Time { return replayNow }))
	if err != nil {
		t.Fatal(err)
	}
	h := run(t, s, s)
	for _, host := range []string{"h1", "h2", "h1", "h3"} {
		_, d := sample(t, "plant", "a", map[string]string{"host": host}, t0, 1, "")
		ack(t, h, d)
	}
	if n := s.Assets(); n != 2 {
		t.Errorf("%d assets, want 2", n)
	}
	if n := testutil.ToFloat64(s.m.assetsEvicted); n != 1 {
		t.Errorf("evicted %v, want 1", n)
	}
	if n := testutil.ToFloat64(s.m.assetsLimit); n != 2 {
		t.Errorf("group_assets_limit %v, want 2", n)
	}
	if !strings.Contains(logs.String(), `"setting":"detector.max_assets"`) || !strings.Contains(logs.String(), `"limit":2`) {
		t.Errorf("log %q, want the eviction told with detector.max_assets and its limit", logs.String())
	}
	for host, want := range map[string]bool{"h1": true, "h2": false, "h3": true} {
		s.mu.Lock()
		ok := s.assets.Contains(assetKey(&s.pipeline.Groups[0], []string{host}))
		s.mu.Unlock()
		if ok != want {
			t.Errorf("asset %s in memory: %v, want %v", host, ok, want)
		}
	}
}

// TestAssetsOfReplacedPodsAreForgottenAfterSnapshotMaxAge runs a month of
// pods replaced every day under a group by pod, each pod an asset of its
// own: an asset that took no sample for snapshot.max_age is dropped from
// memory, as its snapshot expires from the bucket then, so that memory
// holds the assets of the last max_age, not of every pod the month had
// (up to max_assets, whose evictions would warn about assets long gone).
// None of it counts as an eviction for max_assets, set above the pods of
// max_age and under those of the month.
func TestAssetsOfReplacedPodsAreForgottenAfterSnapshotMaxAge(t *testing.T) {
	p, err := pipeline.Parse("g.yaml", []byte("detect:\n  groups:\n    - name: pod\n      by: [pod]\n      channels: [cpu, mem]\n      wait: 10s\n"))
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	clock := &testClock{t: t0}
	s, err := newService(Config{MaxAssets: 200}, zerolog.New(&logs), WithPipeline(p), WithClock(clock.now))
	if err != nil {
		t.Fatal(err)
	}
	held := monthOfReplacedPods(t, s, clock, []string{"cpu", "mem"}, func(c, hour int) float64 { return float64(10*c + hour%3) }, s.Assets)
	t.Logf("assets held: day 7 %d, day 30 %d", held[7], held[30])
	if want := (maxAgeDays(s) + 1) * replacedPods; held[30] > want {
		t.Errorf("assets held at day 30: %d, want at most %d (the pods of the last %d days); day 7: %d", held[30], want, maxAgeDays(s)+1, held[7])
	}
	if n, warned := testutil.ToFloat64(s.m.assetsEvicted), strings.Contains(logs.String(), "max_assets"); n != 0 || warned {
		t.Errorf("%v assets counted as evicted for max_assets (warned: %v): an asset gone silent is no eviction", n, warned)
	}
}

// onlyAssetSnapshot returns the one asset s holds and its snapshot.
func onlyAssetSnapshot(t *testing.T, s *Service) (*asset, []byte) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.assets.Len() != 1 {
		t.Fatalf("%d assets, want 1", s.assets.Len())
	}
	orig := s.assets.Values()[0]
	data, err := s.encodeAsset(nil, orig)
	if err != nil {
		t.Fatal(err)
	}
	return orig, data
}

// An asset's snapshot brings back its model, its open row and its last
// row; a group whose channels changed, or a damaged value, is refused.
func TestAssetSnapshotRoundTrip(t *testing.T) {
	p := groupPipeline(t, []string{"ch0", "ch1", "ch2"}, "")
	s, h := newTestService(t, Config{}, WithPipeline(p))
	a := cleanAsset(t, h, 3)
	ts := a.Times[len(a.Times)-1].Add(time.Second)
	_, d := sample(t, "plant", "ch1", map[string]string{"host": "h"}, ts, 42, "")
	ack(t, h, d)
	orig, data := onlyAssetSnapshot(t, s)
	s2 := newCore(t, Config{}, WithPipeline(p))
	got, err := s2.decodeAsset(orig.key, data)
	if err != nil {
		t.Fatal(err)
	}
	if !got.open || !got.rowTime.Equal(ts) || got.have != 1 || got.row[1] != 42 || !math.IsNaN(got.row[0]) || !got.lastClosed.Equal(a.Times[len(a.Times)-1]) ||
		got.service != "plant" || got.labels["host"] != "h" || got.labels["group"] != "pump" || got.group.Name != "pump" {
		t.Fatalf("restored asset %+v", got)
	}
	want, _ := orig.det.MarshalBinary()
	if st, _ := got.det.MarshalBinary(); string(st) != string(want) || !got.det.(*detect.Group).Warm() {
		t.Fatal("the restored group state differs")
	}
	// The restored asset closes the open row as the original would.
	r1, _ := orig.add(ts, 0, 1, "x", t0)
	r2, _ := got.add(ts, 0, 1, "x", t0)
	r1b, _ := orig.add(ts, 2, 2, "y", t0)
	r2b, _ := got.add(ts, 2, 2, "y", t0)
	if len(r1) != 0 || len(r2) != 0 || len(r1b) != 1 || len(r2b) != 1 || !slices.Equal(r1b[0].values, r2b[0].values) {
		t.Fatalf("rows after restore %+v, original %+v", r2b, r1b)
	}
	if a, b := orig.det.(*detect.Group).Observe(r1b[0].time, r1b[0].values), got.det.(*detect.Group).Observe(r2b[0].time, r2b[0].values); a.Score != b.Score || a.T2 != b.T2 {
		t.Errorf("restored scores %+v, original %+v", b, a)
	}

	other := newCore(t, Config{}, WithPipeline(groupPipeline(t, []string{"ch0", "ch2", "ch1"}, "")))
	if _, err := other.decodeAsset(orig.key, data); !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "channels") {
		t.Errorf("reordered channels: %v", err)
	}
	voting := newCore(t, Config{}, WithPipeline(votePipeline(t, []string{"ch0", "ch1", "ch2"})))
	if _, err := voting.decodeAsset(orig.key, data); !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "method") {
		t.Errorf("a pca asset restored into a vote group: %v", err)
	}
	for _, n := range []int{0, 1, 5, 40, len(data) - 1} {
		if _, err := s2.decodeAsset(orig.key, data[:n]); !errors.Is(err, ErrSnapshot) {
			t.Errorf("truncated to %d bytes: %v", n, err)
		}
	}
}

// faultRows is the length of faultAsset's fault, in rows of a minute.
const faultRows = 20

// faultAsset is a day and a half at one minute of channels channels of
// host pump-1 (a daily sine and noise, each its own phase), with a shift
// of 10σ on the channels in fault for the faultRows minutes from row
// faultAt.
func faultAsset(channels int, fault []int, faultAt int) synth.Group {
	rng := rand.New(rand.NewPCG(7, 7))
	const rows = 36 * 60
	a := synth.Group{Name: "fault", Onset: faultAt, Labels: make([]bool, rows), Values: make([][]float64, channels)}
	for c := range channels {
		a.Channels = append(a.Channels, fmt.Sprintf("ch%d", c))
		a.Values[c] = make([]float64, rows)
	}
	for i := range rows {
		a.Times = append(a.Times, t0.Add(time.Duration(i)*time.Minute))
		a.Labels[i] = i >= faultAt && i < faultAt+faultRows
		for c := range channels {
			a.Values[c][i] = 50 + 5*math.Sin(2*math.Pi*float64(i)/1440+float64(c)) + rng.NormFloat64()
			if a.Labels[i] && slices.Contains(fault, c) {
				a.Values[c][i] += 10
			}
		}
	}
	return a
}

// offlineVoteEvents runs a detect.Vote of the default profile over asset a
// and returns the episode events the service must publish
// (offlineEpisodes).
func offlineVoteEvents(t testing.TB, a synth.Group) (times []time.Time, kinds []string) {
	p, err := detect.NewProfile(detect.Config{})
	if err != nil {
		t.Fatal(err)
	}
	v, err := detect.NewVote(p, len(a.Channels))
	if err != nil {
		t.Fatal(err)
	}
	return offlineEpisodes(a, func(ts time.Time, row []float64) bool { return v.Observe(ts, row).Anomaly })
}

// checkAssetEpisode checks that the group anomalies got are one episode of
// the asset over the fault of faultAsset(…, fault, faultAt): an open in
// the fault's first rows, updates at most every 5 minutes, a close right
// after it (or once its channels have settled on the shifted level, half
// their window into it), one episode id, and the channels in fault named.
func checkAssetEpisode(t *testing.T, got []groupEvent, a synth.Group, fault []int) {
	t.Helper()
	if len(got) < 2 {
		t.Fatalf("%d group anomalies, want an episode's open and close", len(got))
	}
	open, last := got[0], got[len(got)-1]
	start := a.Times[a.Onset]
	// the fault ends, or its channels have settled on the shifted level:
	// their windows' medians take it after half a window of rows
	end := a.Times[a.Onset+min(faultRows, detect.DefaultWindow/2)]
	if open.body.Episode != event.EpisodeOpen || open.env.Time.Before(start) || open.env.Time.Sub(start) > 2*time.Minute {
		t.Errorf("first event %s at %v, want an open within 2 minutes of the fault's start %v", open.body.Episode, open.env.Time, start)
	}
	if last.body.Episode != event.EpisodeClose || last.env.Time.Before(end) || last.env.Time.Sub(end) > 2*time.Minute {
		t.Errorf("last event %s at %v, want a close within 2 minutes of the fault's end or settling %v", last.body.Episode, last.env.Time, end)
	}
	for i, ge := range got {
		b := ge.body
		if b.EpisodeID != open.body.EpisodeID || b.Method != detect.MethodVote || !b.Start.Equal(open.env.Time) {
			t.Fatalf("event %d: episode %s id %s method %s start %v, not the open's episode", i, b.Episode, b.EpisodeID, b.Method, b.Start)
		}
		if i > 0 && i < len(got)-1 {
			if b.Episode != event.EpisodeUpdate || ge.env.Time.Sub(got[i-1].env.Time) < detect.DefaultEpisodeUpdateEvery {
				t.Errorf("event %d: %s at %v, %v after the one before", i, b.Episode, ge.env.Time, ge.env.Time.Sub(got[i-1].env.Time))
			}
		}
		if b.Episode == event.EpisodeClose {
			if !strings.Contains(b.Reason, "back to normal") {
				t.Errorf("close reason %q", b.Reason)
			}
			continue
		}
		var inFault []string
		for _, c := range fault {
			inFault = append(inFault, a.Channels[c])
		}
		if len(b.Contributors) < 2 || !slices.Contains(inFault, b.Channel) || b.Surprise < b.SurpriseLimit || *b.Score < 0.5 {
			t.Errorf("event %d: channel %s, contributors %v, surprise %g of %g, score %g; the fault is on %v", i, b.Channel, b.Contributors, b.Surprise, b.SurpriseLimit, *b.Score, inFault)
		}
		for _, c := range b.Contributors {
			k := slices.Index(a.Channels, c)
			if !slices.Contains(fault, k) || !b.Channels[k].InAlarm || b.Channels[k].Surprise <= 0 || !strings.Contains(b.Reason, c) && slices.Index(b.Contributors, c) < maxReasonChannels {
				t.Errorf("event %d: contributor %s (in alarm %v, surprise %g) not in fault or not in the reason %q", i, c, b.Channels[k].InAlarm, b.Channels[k].Surprise, b.Reason)
			}
		}
		if ch := b.Channels[slices.Index(a.Channels, b.Channel)]; ch.Lower == nil || ch.Upper == nil || *ch.Lower > *ch.Upper || ch.Detector == "" {
			t.Errorf("event %d: the top channel %s has no band or detector: %+v", i, b.Channel, ch)
		}
	}
}

// A group of method vote publishes, for a fault across three of six
// channels, the events of the offline detect.Vote's flagged run: one asset
// episode, not one per row or per channel.
func TestVoteGroupEpisode(t *testing.T) {
	fault := []int{1, 3, 4}
	a := faultAsset(6, fault, 30*60)
	// the service's clock at the end of the 36 h of rows, as for a replay:
	// samples over a day ahead of it are ignored (maxFuture)
	end := a.Times[len(a.Times)-1]
	s, h := newTestService(t, Config{}, WithPipeline(votePipeline(t, a.Channels)), WithClock(func() time.Time { return end }))
	for _, d := range assetSamples(t, a) {
		ack(t, h, d)
	}
	got := published(t, h.Pub)
	want, kinds := offlineVoteEvents(t, a)
	if len(got) != len(want) {
		t.Fatalf("%d group anomalies, the offline vote's runs make %d events", len(got), len(want))
	}
	for i, ge := range got {
		if !ge.env.Time.Equal(want[i]) || ge.body.Episode != kinds[i] {
			t.Fatalf("anomaly %d: %s at %v, the offline vote: %s at %v", i, ge.body.Episode, ge.env.Time, kinds[i], want[i])
		}
	}
	checkAssetEpisode(t, got, a, fault)
	t.Logf("%d events; the open: %s", len(got), got[0].body.Reason)
	if n := testutil.ToFloat64(s.m.groupAnomalies); int(n) != len(got) {
		t.Errorf("group_anomalies_total %v, want %d", n, len(got))
	}
}

// A vote asset's snapshot brings back its channels' detectors: restored,
// it scores the next row as the original does.
func TestVoteAssetSnapshotRoundTrip(t *testing.T) {
	a := faultAsset(3, nil, 0)
	p := votePipeline(t, a.Channels)
	s, h := newTestService(t, Config{}, WithPipeline(p))
	for _, d := range assetSamples(t, a)[:3*600] {
		ack(t, h, d)
	}
	orig, data := onlyAssetSnapshot(t, s)
	got, err := newCore(t, Config{}, WithPipeline(p)).decodeAsset(orig.key, data)
	if err != nil {
		t.Fatal(err)
	}
	if got.det.(*detect.Vote).Rows() != 600 {
		t.Fatalf("restored vote counted %d rows, want 600", got.det.(*detect.Vote).Rows())
	}
	row := closedRow{time: a.Times[600], values: []float64{a.Values[0][600] + 50, a.Values[1][600] + 50, a.Values[2][600]}}
	if x, y := orig.observe(row), got.observe(row); x.score != y.score || x.anomaly != y.anomaly || x.vote.Surprise != y.vote.Surprise {
		t.Errorf("restored %+v, original %+v", y, x)
	}
	if _, err := newCore(t, Config{}, WithPipeline(groupPipeline(t, a.Channels, ""))).decodeAsset(orig.key, data); !errors.Is(err, ErrSnapshot) || !strings.Contains(err.Error(), "method") {
		t.Errorf("a vote asset restored into a pca group: %v", err)
	}
}

// Two samples for one channel of one row (label sets the group's by does
// not tell apart) keep the first and count the others.
func TestGroupDuplicateSamplesAreCounted(t *testing.T) {
	s, h := newTestService(t, Config{}, WithPipeline(votePipeline(t, []string{"temp", "flow"})))
	for _, disk := range []string{"sda", "sdb"} {
		_, data := sample(t, "plant", "temp", map[string]string{"host": "pump-1", "disk": disk}, t0, 10, "")
		ack(t, h, data)
	}
	if n := testutil.ToFloat64(s.m.groupDuplicates); n != 1 {
		t.Fatalf("group_samples_duplicate_total %v, want 1", n)
	}
}

// A sample of an open row held by the snapshot comes again after a
// restart (the consumer rewinds to its ack floor): it is the row's own
// sample delivered again, not a second label set the group's by does not
// tell apart, which the restored row knows only if its snapshot kept the
// row's links. The restored row's anomaly links its samples as well.
func TestRestoredOpenRowTakesItsOwnSampleAgainAsARedelivery(t *testing.T) {
	p := votePipeline(t, []string{"temp", "flow"})
	s, h := newTestService(t, Config{}, WithPipeline(p))
	e, data := sample(t, "plant", "temp", map[string]string{"host": "pump-1"}, t0, 10, "")
	ack(t, h, data)
	orig, snap := onlyAssetSnapshot(t, s)

	restarted, h2 := newTestService(t, Config{}, WithPipeline(p))
	if ok, err := restarted.restoreAsset(assetKeyPrefix+orig.key, snap); !ok || err != nil {
		t.Fatalf("restoreAsset: %v, %v", ok, err)
	}
	ack(t, h2, data) // delivered again
	if n := testutil.ToFloat64(restarted.m.groupDuplicates); n != 0 {
		t.Errorf("group_samples_duplicate_total %v after the row's own sample came again, want 0", n)
	}
	restarted.mu.Lock()
	got, _ := restarted.assets.Get(orig.key)
	rows, _ := got.add(t0, 1, 3, "flow-1", t0)
	restarted.mu.Unlock()
	if len(rows) != 1 || !slices.Equal(rows[0].links, []string{e.ID, "flow-1"}) {
		t.Errorf("rows closed after the restore %+v, want one linking %s and flow-1", rows, e.ID)
	}

	// A snapshot of version 2, which kept no links, still restores, and
	// its detector state is still found (an orphan's alarm).
	hd, err := readAssetHeader(orig.key, snap)
	if err != nil {
		t.Fatal(err)
	}
	at := 8 + 2 + 8*2
	r := &snapReader{p: hd.rowState[at:]}
	readLinks(r, 2)
	v2 := slices.Concat(hd.prefix, hd.rowState[:at], r.p)
	v2[0] = 2
	older, err := newCore(t, Config{}, WithPipeline(p)).decodeAsset(orig.key, v2)
	if err != nil || !older.open || older.row[0] != 10 || len(older.links) != 0 {
		t.Fatalf("version 2 snapshot restored as %+v (%v)", older, err)
	}
	for _, v := range [][]byte{snap, v2} {
		h, err := readAssetHeader(orig.key, v)
		if err != nil {
			t.Fatal(err)
		}
		if at, ok := h.stateAt(); !ok || len(h.rowState)-at != len(r.p) {
			t.Errorf("version %d: detector state at %d (%v), want the last %d bytes", v[0], at, ok, len(r.p))
		}
	}
}

// assetWritesFailing fails the snapshot writes of group assets while on,
// and passes every other write to the bucket's stand-in.
type assetWritesFailing struct {
	kvRecorder
	on atomic.Bool
}

func (k *assetWritesFailing) PublishAsync(subject string, data []byte, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if k.on.Load() && strings.Contains(subject, "."+assetKeyPrefix) {
		f := &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
		f.err <- errors.New("fake: no ack")
		return f, nil
	}
	return k.kvRecorder.PublishAsync(subject, data, opts...)
}

// The samples group assets took since their last stored snapshot are kept
// for a crash's rewind by one held ack, the first such sample's since the
// assets' last snapshot began, not one per sample or per asset (each
// counts against the consumer's max_ack_pending): it is released once
// every asset that took a sample since is stored, and an asset whose
// write failed keeps it until a later snapshot stores the asset.
func TestGroupRowsHoldOneSampleUntilTheirAssetsAreStored(t *testing.T) {
	kv := &assetWritesFailing{}
	s := newCore(t, Config{}, WithPipeline(votePipeline(t, []string{"temp", "flow"})))
	s.snap = kv
	h := run(t, s, s)
	held := func(what string, want stagetest.LaterAcks) {
		t.Helper()
		if got := h.Later(); got.Waiting != want.Waiting || got.Acked != want.Acked {
			t.Fatalf("%s: acks %+v, want %d held and %d released", what, got, want.Waiting, want.Acked)
		}
	}
	rows := func(from, to int, hosts ...string) {
		for i := from; i < to; i++ {
			for _, host := range hosts {
				for c, name := range []string{"temp", "flow"} {
					_, d := sample(t, "plant", name, map[string]string{"host": host}, t0.Add(time.Duration(i)*time.Minute), float64(10*c+i%3), "")
					ack(t, h, d)
				}
			}
		}
	}
	rows(0, 5, "pump-1", "pump-2") // 20 samples, 10 rows of two assets
	held("before any snapshot", stagetest.LaterAcks{Waiting: 1})

	kv.on.Store(true)
	if _, err := s.Snapshot(context.Background()); err == nil {
		t.Fatal("snapshot with the assets' writes failing: no error")
	}
	held("the assets' writes failed", stagetest.LaterAcks{Waiting: 1})
	// The assets not stored are covered by the first hold still; a third
	// asset's first sample since the snapshot began is held for it.
	rows(5, 7, "pump-1", "pump-2", "pump-3")
	held("samples after the failed snapshot", stagetest.LaterAcks{Waiting: 2})

	kv.on.Store(false)
	if _, err := s.Snapshot(context.Background()); err != nil {
		t.Fatal(err)
	}
	held("the assets stored", stagetest.LaterAcks{Acked: 2})
	rows(7, 8, "pump-1")
	held("a sample after the snapshot", stagetest.LaterAcks{Waiting: 1, Acked: 2})
}

// An asset evicted (max_assets) before a snapshot stored it no longer
// keeps its samples' hold: its state is dropped, as an evicted series'
// is, and nothing would ever store it.
func TestEvictedAssetNoLongerHoldsItsSamples(t *testing.T) {
	kv := &assetWritesFailing{}
	s := newCore(t, Config{MaxAssets: 1}, WithPipeline(votePipeline(t, []string{"temp", "flow"})))
	s.snap = kv
	h := run(t, s, s)
	row := func(i int, host string) {
		for c, name := range []string{"temp", "flow"} {
			_, d := sample(t, "plant", name, map[string]string{"host": host}, t0.Add(time.Duration(i)*time.Minute), float64(10*c), "")
			ack(t, h, d)
		}
	}
	row(0, "pump-1")
	kv.on.Store(true)
	if _, err := s.Snapshot(context.Background()); err == nil {
		t.Fatal("snapshot with the assets' writes failing: no error")
	}
	if got := h.Later(); got.Waiting != 1 || got.Acked != 0 {
		t.Fatalf("pump-1 not stored: acks %+v, want its first sample held", got)
	}
	row(1, "pump-2") // evicts pump-1
	if got := h.Later(); got.Waiting != 1 || got.Acked != 1 {
		t.Fatalf("pump-1 evicted: acks %+v, want its sample released and pump-2's first held", got)
	}
}

// gatedAssetWrites holds the snapshot writes of group assets until the
// test settles them, telling each on put; the other writes pass.
type gatedAssetWrites struct {
	kvRecorder
	put     chan struct{}
	mu      sync.Mutex
	pending []*future
}

func (k *gatedAssetWrites) PublishAsync(subject string, data []byte, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error) {
	if !strings.Contains(subject, "."+assetKeyPrefix) {
		return k.kvRecorder.PublishAsync(subject, data, opts...)
	}
	f := &future{ok: make(chan *jetstream.PubAck, 1), err: make(chan error, 1)}
	k.mu.Lock()
	k.pending = append(k.pending, f)
	k.mu.Unlock()
	k.put <- struct{}{}
	return f, nil
}

// settle acks (ok) or fails the writes held so far.
func (k *gatedAssetWrites) settle(ok bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	for _, f := range k.pending {
		if ok {
			f.ok <- &jetstream.PubAck{}
		} else {
			f.err <- errors.New("fake: no ack")
		}
	}
	k.pending = nil
}

// A sample an asset takes after the snapshot encoded it, while the write
// is in flight, is not in that write: whatever the write's outcome, and
// if another asset evicts this one meanwhile, that sample stays held until
// a later snapshot stores the asset (or the one that evicted it), however
// many snapshots fail first, and the samples the write holds are released
// once it is stored. Released with the write, the sample was acked and a
// crash before the asset's next stored snapshot lost it.
func TestSampleTakenWhileItsAssetIsWrittenStaysHeld(t *testing.T) {
	for _, c := range []struct {
		name   string
		stored bool // the write in flight is stored
		evict  bool // another asset evicts this one during the write
		want   stagetest.LaterAcks
	}{
		{"stored", true, false, stagetest.LaterAcks{Waiting: 1, Acked: 1}},
		{"failed", false, false, stagetest.LaterAcks{Waiting: 2}},
		{"stored and evicted", true, true, stagetest.LaterAcks{Waiting: 1, Acked: 1}},
		{"failed and evicted", false, true, stagetest.LaterAcks{Waiting: 1, Acked: 1}},
	} {
		t.Run(c.name, func(t *testing.T) {
			kv := &gatedAssetWrites{put: make(chan struct{}, 4)}
			maxAssets := 10
			if c.evict {
				maxAssets = 1
			}
			s := newCore(t, Config{MaxAssets: maxAssets}, WithPipeline(votePipeline(t, []string{"temp", "flow"})))
			s.snap = kv
			h := run(t, s, s)
			feed := func(row, ch int, host string) {
				_, d := sample(t, "plant", []string{"temp", "flow"}[ch], map[string]string{"host": host}, t0.Add(time.Duration(row)*time.Minute), float64(10*ch+row%3), "")
				ack(t, h, d)
			}
			feed(0, 0, "pump-1")
			feed(0, 1, "pump-1")
			feed(1, 0, "pump-1") // row 1 open
			if got := h.Later(); got != (stagetest.LaterAcks{Waiting: 1}) {
				t.Fatalf("before the snapshot: acks %+v, want the first sample held", got)
			}
			done := make(chan error, 1)
			go func() {
				_, err := s.Snapshot(context.Background())
				done <- err
			}()
			<-kv.put             // pump-1 encoded, its write in flight
			feed(1, 1, "pump-1") // closes row 1, not in the write
			if c.evict {
				feed(1, 0, "pump-2")
			}
			kv.settle(c.stored)
			if err := <-done; (err == nil) != c.stored {
				t.Fatalf("snapshot: %v, want stored %v", err, c.stored)
			}
			if got := h.Later(); got != c.want {
				t.Fatalf("after the write: acks %+v, want %+v", got, c.want)
			}
			// The next snapshot fails to write the asset(s) again: what
			// was held stays held, the sample taken during the write too.
			stored := make(chan bool, 1)
			stored <- false
			go func() {
				for range kv.put {
					ok := <-stored
					kv.settle(ok)
					stored <- ok
				}
			}()
			t.Cleanup(func() { close(kv.put) })
			if _, err := s.Snapshot(context.Background()); err == nil {
				t.Fatal("snapshot with the assets' writes failing: no error")
			}
			if got := h.Later(); got != c.want {
				t.Fatalf("the next write failed too: acks %+v, want %+v", got, c.want)
			}
			<-stored
			stored <- true
			if _, err := s.Snapshot(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := h.Later(); got.Waiting != 0 {
				t.Fatalf("every asset stored: acks %+v, want none held", got)
			}
		})
	}
}
