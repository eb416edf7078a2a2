package detector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// An episode is closed by an observation back in the normal range. A series
// that stops (its host is gone, its exporter crashed) sends none, and one
// evicted from memory is never scored again: without the closes here their
// episodes would stay open for ever, in ClickHouse and in the correlator's
// incidents. Tick closes the episode of a series silent for its
// detect.Detector.Silence, and that of a series evicted with one open; and
// it ends the alarm of a group asset silent for its silence, or evicted.

// lastSample is what the close of an open episode needs of its series: the
// identity of the last sample it scored (held only while an episode is open,
// and saved in its snapshot).
type lastSample struct {
	ID          string            `json:"id"`
	Time        time.Time         `json:"time"`
	Service     string            `json:"service"`
	Fingerprint string            `json:"fingerprint"`
	Metric      string            `json:"metric"`
	Labels      map[string]string `json:"labels,omitempty"`
	Resource    map[string]string `json:"resource,omitempty"`
	Value       float64           `json:"value"` // as the detectors saw it (a counter's rate)
	// Series is what the episode's id is derived from: the seriesID when
	// the episode opened. Empty in a snapshot written before it was kept,
	// whose episode's id was derived from the fingerprint alone.
	Series string `json:"series,omitempty"`
	// Member is the series the episode's anomalies name (body.series, the
	// correlator's member): what its open named. Empty in a snapshot
	// written before it was kept, whose open named the fingerprint.
	Member string `json:"member,omitempty"`
}

// member is the series the anomalies of l's episode name: what its open
// named. An episode open at the upgrade that made it anomalySeries had
// its open name the fingerprint; named otherwise after it, its update and
// close would be another member of the correlator's incident than its
// open, which the incident would hold open.
func (l *lastSample) member() string {
	if l.Member != "" {
		return l.Member
	}
	return l.Fingerprint
}

// episodeSeries is what the id of the episode of l is derived from.
func (l *lastSample) episodeSeries() string {
	if l.Series != "" {
		return l.Series
	}
	return l.Fingerprint
}

// track follows ser's episode after a sample scored at the service's clock
// seen: while one is open the series keeps its last sample and is in the
// open set Tick looks at. s.mu is held.
func (s *Service) track(ser *series, e *event.Envelope, metric string, scored float64, seen time.Time) {
	ser.seen = seen.UnixNano()
	if !ser.det.InEpisode() {
		ser.fingerprintEpisode = false
		if ser.last != nil {
			ser.last = nil
			delete(s.open, ser)
		}
		return
	}
	if ser.last == nil {
		id := seriesID(e.Fingerprint, metric, e.Labels)
		ser.last = &lastSample{Service: e.Service, Fingerprint: e.Fingerprint, Metric: metric, Labels: e.Labels, Resource: e.Resource,
			Series: id, Member: anomalySeries(id)}
		if ser.fingerprintEpisode {
			// opened by a build that kept no last sample: named by the
			// fingerprint, its id derived from it (member, episodeSeries)
			ser.last.Series, ser.last.Member = "", ""
			ser.fingerprintEpisode = false
		}
		s.open[ser] = struct{}{}
	}
	ser.last.ID, ser.last.Time, ser.last.Value = e.ID, e.Time, scored
}

// evicting is called for a series dropped from memory: its open episode is
// closed at the next tick. s.mu is held.
func (s *Service) evicting(ser *series) {
	if ser.last != nil {
		delete(s.open, ser)
		s.ended = append(s.ended, ser)
	}
}

// forgetIdle drops from memory the series that sent nothing for
// snapshot.max_age by the service's clock, the least recently seen first:
// their snapshots, written no more, expire from the bucket then, and a
// restart would not bring them back. Pods replaced every day leave a
// month of series behind otherwise, held until max_series evicts them
// (and warns about series long gone). One with an episode open, an
// anomaly in flight, acks held or a snapshot to write stays. s.mu is held.
func (s *Service) forgetIdle(now time.Time) {
	cut := now.Add(-s.cfg.Snapshot.MaxAge).UnixNano()
	dropIdle(s.series, func(ser *series) bool {
		return ser.seen > cut || ser.last != nil || ser.dirty || ser.pending > 0 || len(ser.acks) > 0
	}, func(ser *series) { ser.idle = true })
}

// dropIdle removes from l, the least recently seen first, each value keep
// does not keep, marked (idle: its eviction callback counts no eviction
// for the limit) before it goes; it stops at the first it keeps, which
// leaves at a later tick.
func dropIdle[V any](l *simplelru.LRU[string, V], keep func(V) bool, mark func(V)) {
	for {
		key, v, ok := l.GetOldest()
		if !ok || keep(v) {
			return
		}
		mark(v)
		l.Remove(key)
	}
}

// forgetIdleAssets drops from memory the group assets that took no sample
// for snapshot.max_age by the service's clock, as forgetIdle drops series:
// a group by pod over pods replaced every day kept every dead pod's asset
// otherwise, until max_assets evicted it. One in an alarm, with an anomaly
// in flight, a row being assembled, samples held (rowsHold) or a snapshot
// to write stays. s.mu is held.
func (s *Service) forgetIdleAssets(now time.Time) {
	cut := now.Add(-s.cfg.Snapshot.MaxAge)
	dropIdle(s.assets, func(a *asset) bool {
		return a.seen.After(cut) || a.det.Alarming() || a.open || a.dirty || a.pending > 0 || len(a.holds) > 0
	}, func(a *asset) { a.idle = true })
}

// silentFor tells whether a series (or asset) whose last sample was at
// event time last, seen at the service's clock seen, has been silent for
// silence at now. Two clocks must agree: the samples' own time (the latest
// of any series, s.watermark) has moved on by silence, so that a backlog
// after an outage, replayed in stream order, closes nothing before the
// series' own samples had their turn; and the service's clock has too, so
// that a series whose samples come late but come is not silent. When no
// sample of any series comes at all (the bus or every producer down, or
// one collector for every series gone), the watermark stands still:
// fallbackSilences of silence by the service's clock alone then close it.
func (s *Service) silentFor(last time.Time, seen, now time.Time, silence time.Duration) bool {
	wall := now.Sub(seen)
	return wall >= fallbackSilences*silence ||
		wall >= silence && time.Unix(0, s.watermark).Sub(last) >= silence
}

// fallbackSilences: see silentFor (an hour for the default 5 minutes).
const fallbackSilences = 12

// maxWatermarkSkew caps how far ahead of the service's clock a sample's
// time moves the watermark: a producer whose clock runs ahead must not
// make every other series silent.
const maxWatermarkSkew = time.Minute

// observed moves the watermark to sample time t seen at now. s.mu is held.
func (s *Service) observed(t, now time.Time) {
	ns := min(t.UnixNano(), now.Add(maxWatermarkSkew).UnixNano())
	s.watermark = max(s.watermark, ns)
}

// mayClose: no event of its episode is being published (pending) or
// waits for a redelivery to store it (unstored), so that the close cannot
// overtake it. An event the runner dropped (past its MaxKept) is never
// stored: after fallbackSilences of silence, unstored no longer holds the
// close back.
func (w *publishWaits) mayClose(seen, now time.Time, silence time.Duration) bool {
	return w.pending == 0 && (w.unstored == 0 || now.Sub(seen) >= fallbackSilences*silence)
}

// silentCloses ends the episodes of the series silent for their Silence
// (silentFor), and of those evicted with one open once their last event is
// out, and returns their closes. s.mu is held.
func (s *Service) silentCloses(now time.Time) []seriesAnomaly {
	var out []seriesAnomaly
	end := func(ser *series, why string) {
		info, ok := ser.det.EndEpisode()
		last := ser.last
		ser.last = nil
		if !ok || last == nil {
			return
		}
		e, err := s.silentClose(ser, last, info, now, why)
		if err != nil {
			s.log.Error().Err(err).Str("series", ser.key).Msg("episode close dropped")
			return
		}
		ser.pending++ // the snapshot waits for the close, as for an anomaly
		if !ser.evicted {
			s.markSeriesDirty(ser)
			s.snapshotSoon(ser)
		}
		a := seriesAnomaly{event: e, series: ser}
		if ser.evicted && s.kv != nil {
			// its snapshot still holds the episode open: once the close is
			// stored, a restart must not close it again
			a.stale = staleKey{kv: s.keyOf(ser.key), series: ser.key}
			if v, err := s.encode(nil, ser); err == nil {
				a.stale.value = v
			}
			if ser.legacy != "" {
				a.stale.legacy, ser.legacy = s.keyOf(ser.legacy), ""
			}
		}
		out = append(out, a)
	}
	for ser := range s.open {
		seen, silence := time.Unix(0, ser.seen), ser.det.Silence()
		if ser.mayClose(seen, now, silence) && s.silentFor(ser.last.Time, seen, now, silence) {
			delete(s.open, ser)
			end(ser, "silent")
		}
	}
	waiting := s.ended[:0]
	for _, ser := range s.ended {
		if !ser.mayClose(time.Unix(0, ser.seen), now, ser.det.Silence()) {
			waiting = append(waiting, ser) // an event of its episode is not stored yet
			continue
		}
		end(ser, "evicted")
	}
	s.ended = waiting
	return out
}

// seriesAnomaly is an anomaly of a series a tick made.
type seriesAnomaly struct {
	event  *event.Envelope
	series *series
	stale  staleKey // of an evicted series, deleted once the close is stored
}

// staleKey is the snapshot of an evicted series or asset, or of one a
// restart could not load, whose episode a tick closed: it holds the
// episode open, and a restart would close it again. Once the close is
// stored it is replaced by value, the same state with the episode ended
// (so that a restart, or a rollback of the configuration, still restores
// the baseline), or deleted when value is nil; unless the series (or
// asset) is back in memory by then (its next snapshot writes it anew).
// legacy is the key of a series' snapshot under its fingerprint alone that
// takeOver moved it from before any snapshot wrote its own: it holds the
// episode open too, and is deleted in any case.
type staleKey struct {
	kv, series, asset, legacy string
	value                     []byte
}

// storedStale queues k for deletion at the next tick. Safe to call from a
// Settled.
func (s *Service) storedStale(k staleKey) {
	if k.kv == "" {
		return
	}
	s.mu.Lock()
	s.stale = append(s.stale, k)
	s.mu.Unlock()
}

// dropStale deletes the snapshots queued by storedStale (or rewrites them),
// for at most staleBudget a tick; those it did not reach wait for the next.
func (s *Service) dropStale(ctx context.Context) {
	s.mu.Lock()
	var keys []staleKey
	for _, k := range s.stale {
		if k.series != "" && s.series.Contains(k.series) || k.asset != "" && s.assets.Contains(k.asset) {
			if k.legacy == "" {
				continue // back in memory: its next snapshot replaces the key
			}
			k.kv = "" // only the legacy key: a new series writes its own
		}
		keys = append(keys, k)
	}
	s.stale = nil
	s.mu.Unlock()
	if len(keys) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, staleBudget)
	defer cancel()
	for i, k := range keys {
		if ctx.Err() != nil {
			s.requeueStale(keys[i:])
			return
		}
		var err error
		switch {
		case k.kv == "":
		case k.value != nil:
			_, err = s.kv.Put(ctx, k.kv, k.value)
		default:
			if err = s.kv.Delete(ctx, k.kv); errors.Is(err, jetstream.ErrKeyNotFound) {
				err = nil
			}
		}
		if err != nil && ctx.Err() != nil {
			s.requeueStale(keys[i:])
			return
		}
		if err != nil {
			s.log.Warn().Err(err).Str("key", k.kv).Msg("snapshot whose episode was closed not rewritten: a restart may close its episode again")
			continue // a legacy key keeps the state the series' own does not hold
		}
		if k.legacy != "" {
			if err := s.kv.Delete(ctx, k.legacy); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
				if ctx.Err() != nil {
					k.kv = "" // written: only the legacy key is left
					s.requeueStale(append([]staleKey{k}, keys[i+1:]...))
					return
				}
				s.log.Warn().Err(err).Str("key", k.legacy).Msg("snapshot whose episode was closed not deleted: a restart may close its episode again")
			}
		}
	}
}

// staleBudget bounds the time a tick spends on stale snapshots: one key
// after another, each waiting up to the client's timeout (5 s) when the
// bucket stalled, they held the tick (the closes of silent series, the
// rows closed on their wait) for as long as keys were queued, thousands
// after a restart that could not load the snapshots of series in episodes.
const staleBudget = time.Second

// requeueStale puts back the stale keys a tick did not reach, before those
// queued since.
func (s *Service) requeueStale(keys []staleKey) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stale = append(slices.Clone(keys), s.stale...)
}

func (s *Service) emitSeries(out stage.Emitter, as []seriesAnomaly) {
	for _, a := range as {
		if err := s.emitWaited(out, a.event, &a.series.publishWaits, s.m.anomalies, a.stale); err != nil {
			s.log.Error().Err(err).Str("series", a.series.key).Msg("episode close dropped")
		}
	}
}

// silentClose builds the close of ser's episode info, which no observation
// ended: the series sent none for its Silence (why "silent"), or was
// evicted (why "evicted").
func (s *Service) silentClose(ser *series, last *lastSample, info detect.Episode, now time.Time, why string) (*event.Envelope, error) {
	cause := fmt.Sprintf("%s sent no sample since %s (%s without one)", last.Metric,
		last.Time.UTC().Format(time.RFC3339), now.Sub(time.Unix(0, ser.seen)).Truncate(time.Second))
	switch {
	case why == "evicted" && ser.ignoredBy != "":
		cause = fmt.Sprintf("%s is not scored any more (rule %s has ignore: true) while anomalous", last.Metric, ser.ignoredBy)
	case why == "evicted" && ser.rerouted:
		cause = fmt.Sprintf("%s restarted under another route, whose detectors have another shape, while anomalous", last.Metric)
	case why == "evicted":
		cause = fmt.Sprintf("%s dropped from the detector's memory (max_series) while anomalous", last.Metric)
	}
	return s.episodeClose(last, info, ser.route, window(ser.det.Profile().Config(), info.Detector), cause, now)
}

// episodeClose builds the close of an episode no observation ended, for
// cause, at its last sample. Its id is derived from the last sample, so a
// close made again (after a restore, by a second instance) is the same
// message and the stream's duplicate window keeps one.
func (s *Service) episodeClose(last *lastSample, info detect.Episode, route, window, cause string, now time.Time) (*event.Envelope, error) {
	reason := cause + fmt.Sprintf(": the episode from %s to %s peaked at score %.2f (%.4g by %s) (route %s)",
		info.Start.Format(time.RFC3339), info.End.Format(time.RFC3339), info.Peak, info.PeakValue, info.Detector, route)
	value, score, peak, peakValue := last.Value, 0.0, info.Peak, info.PeakValue
	ab := event.AnomalyBody{
		Series:    last.member(),
		Metric:    last.Metric,
		Value:     &value,
		Score:     &score,
		Detector:  info.Detector.String(),
		Window:    window,
		Reason:    reason,
		Episode:   event.EpisodeClose,
		EpisodeID: event.DerivedID(info.Start, "episode", last.episodeSeries()),
		Start:     info.Start,
		End:       info.End,
		Peak:      &peak,
		PeakTime:  info.PeakTime,
		PeakValue: &peakValue,
	}
	// at the last sample's time: the series said nothing after it
	a, err := event.New(event.KindAnomaly, last.Service, last.Time, ab)
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("detector: episode close after event %s: %w", last.ID, err))
	}
	a.ID = event.DerivedID(last.Time, "anomaly", "close", last.ID)
	a.Source = Source
	a.Labels, a.Resource = last.Labels, last.Resource
	a.Links = []string{last.ID}
	a.Severity = event.SeverityWarning
	a.Fingerprint = "" // recomputed over the series' labels, as the episode's other events
	a.ObservedTime = now
	a.Normalize(a.ObservedTime)
	return a, nil
}

// silence is how long an asset may send nothing before its alarm is ended:
// ten of its rows' intervals, at least detect.DefaultEpisodeSilence.
func (a *asset) silence() time.Duration {
	return max(10*a.every, detect.DefaultEpisodeSilence)
}

// endAlarm ends a's alarm, which no row ended: it was silent for silent, or
// evicted (silent -1). It appends the close to rows (its id derived from
// the asset's last row and "close"). s.mu is held.
func (s *Service) endAlarm(rows []rowAnomaly, a *asset, silent time.Duration) []rowAnomaly {
	since := a.det.AlarmSince()
	a.det.EndAlarm()
	r := closedRow{time: a.lastClosed, values: make([]float64, len(a.group.Channels)), silent: silent}
	for i := range r.values {
		r.values[i] = math.NaN()
	}
	if since.IsZero() { // an alarm restored from a snapshot of an older layout
		since = r.time
	}
	if a.ep.end.IsZero() || a.ep.end.Before(since) {
		a.ep.end = since
	}
	e, err := s.groupAnomaly(a, r, &rowScore{channel: -1}, event.EpisodeClose, since)
	if err != nil {
		s.log.Error().Err(err).Str("group", a.group.Name).Str("asset", a.key).Msg("group alarm close dropped")
		return rows
	}
	a.pending++
	ra := rowAnomaly{event: e, asset: a}
	if !a.evicted {
		s.markAssetDirty(a)
	} else if s.kv != nil {
		ra.stale = staleKey{kv: s.cfg.Instance + "." + assetKeyPrefix + a.key, asset: a.key}
		if v, err := s.encodeAsset(nil, a); err == nil {
			ra.stale.value = v
		}
	}
	return append(rows, ra)
}

// publishWaits is what a series or an asset waits for: its anomalies
// being published (pending: its snapshot waits for them), and those whose
// publish failed and that a redelivery or a later tick has not stored yet
// (unstored: a close must not overtake them, nor a snapshot; failedAt
// is when the latest of them failed). Guarded by s.mu.
type publishWaits struct {
	pending, unstored int32
	failedAt          time.Time
}

// maxUnstoredHold bounds how long an anomaly not stored yet keeps its
// series (or asset) out of snapshots: one the runner dropped (past its
// MaxKept) is never stored, and the state must not go unsaved for ever.
// A redelivery comes within the consumer's backoff, far sooner.
const maxUnstoredHold = time.Hour

// holdsSnapshot tells whether the state must stay out of a snapshot at
// now: an anomaly of it is being published, or failed and waits for the
// redelivery of its input. Saved with the anomaly's sample in it, the
// state would take the redelivered sample for a duplicate after a crash,
// and the anomaly, kept only in the runner's memory, would be lost.
func (w *publishWaits) holdsSnapshot(now time.Time) bool {
	return w.pending > 0 || w.unstored > 0 && now.Sub(w.failedAt) < maxUnstoredHold
}

// emitWaited emits e, an anomaly of the series or asset whose waits w are
// (pending already counts it): its Settled ends the wait, counts it in
// stored once stored and queues stale for deletion; a failure counts in
// unstored until StoredLate. An event the emitter did not take ends its
// wait at once, and its error is returned.
func (s *Service) emitWaited(out stage.Emitter, e *event.Envelope, w *publishWaits, stored prometheus.Counter, stale staleKey) error {
	m := new(unstoredMark)
	settled := func(err error) {
		s.settledWait(w, err, m, stored)
		if err == nil {
			s.storedStale(stale)
		}
	}
	storedLate := func() {
		s.mu.Lock()
		w.unstored -= m.stored()
		s.mu.Unlock()
		s.storedStale(stale)
	}
	if err := out.Emit(stage.Output{Event: e, Settled: settled, StoredLate: storedLate}); err != nil {
		s.settledWait(w, err, nil, stored) // not taken: nothing to wait for
		return err
	}
	return nil
}

// settledWait ends one wait of w with the publish's result err (m: its
// mark; nil for an event never taken), counting it in stored if stored.
func (s *Service) settledWait(w *publishWaits, err error, m *unstoredMark, stored prometheus.Counter) {
	s.mu.Lock()
	w.pending--
	if n := m.failed(err); n > 0 {
		// from the latest failure: an anomaly never stored (its input
		// dead-lettered) must not let a later one's state into a snapshot
		w.failedAt = s.now()
		w.unstored += n
	}
	s.mu.Unlock()
	if err == nil {
		stored.Inc()
	}
}

// unstoredMark follows one emitted anomaly: from a failed Settled until a
// StoredLate it counts once in its series' (or asset's) unstored, however
// often the runner calls either (a kept input's redelivery calls StoredLate
// for each of its outputs it stores, also those stored the first time).
// Guarded by s.mu; nil for an event the runner never took.
type unstoredMark struct{ counted bool }

// failed is what a Settled with err adds to unstored.
func (m *unstoredMark) failed(err error) int32 {
	if m == nil || err == nil || m.counted {
		return 0
	}
	m.counted = true
	return 1
}

// stored is what a StoredLate takes from unstored.
func (m *unstoredMark) stored() int32 {
	if m == nil || !m.counted {
		return 0
	}
	m.counted = false
	return 1
}

// orphan is the open episode of a series snapshot Restore did not load
// (its route left the pipeline, its detector's configuration changed
// shape, or the memory was full), or the alarm of a group asset's (its
// group left the pipeline or changed): no observation will end it, so the
// next tick closes it at its last sample or row.
type orphan struct {
	key, route, window, cause string
	last                      *lastSample
	info                      detect.Episode
	// close is the close of a group asset's alarm (key is the asset's),
	// built at the restore; nil for a series
	close *event.Envelope
	waits publishWaits
	// snapshot is its snapshot with the episode ended, written once the
	// close is stored
	snapshot []byte
}

// orphanSkipped keeps the open episode of the snapshot v of key, which
// failed to restore with err, for the next tick to close. A snapshot with
// no last sample (version 1, or no episode open) or unreadable has none to
// close.
func (s *Service) orphanSkipped(key string, v []byte, err error) {
	h, herr := decodeHeader(key, v)
	if herr != nil || h.last == nil {
		return
	}
	info, open, eerr := detect.OpenEpisodeOf(h.state)
	if eerr != nil || !open {
		return
	}
	o := &orphan{key: key, route: h.route, last: h.last, info: info,
		cause: fmt.Sprintf("%s not restored after a restart (%v)", h.last.Metric, err)}
	if state, err := detect.EndEpisodeIn(h.state); err == nil {
		o.snapshot = h.encode(state)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orphaned(o)
}

// orphaned queues o, up to MaxSeries series' and MaxAssets group assets'
// (each its own bound, as in memory). s.mu is held.
func (s *Service) orphaned(o *orphan) {
	n, limit := &s.orphanSeries, s.cfg.MaxSeries
	if o.close != nil {
		n, limit = &s.orphanAssets, s.cfg.MaxAssets
	}
	if *n >= limit {
		s.orphansDropped++
		return
	}
	*n++
	s.orphans = append(s.orphans, o)
}

// closeOrphans emits the closes of the episodes and alarms Restore could
// not load.
// Once a close is stored the snapshot is deleted, unless the series is
// back in memory by then (its next snapshot replaces it), so that the next
// restart does not close the episode again.
func (s *Service) closeOrphans(out stage.Emitter, now time.Time) {
	s.mu.Lock()
	orphans, dropped := s.orphans, s.orphansDropped
	s.orphans, s.orphansDropped, s.orphanSeries, s.orphanAssets = nil, 0, 0, 0
	s.mu.Unlock()
	if dropped > 0 {
		s.log.Error().Int("episodes", dropped).Msg("more episodes to close after the restore than max_series (series) or max_assets (group assets): those stay open")
	}
	for _, o := range orphans {
		e, err := o.close, error(nil)
		if e == nil {
			e, err = s.episodeClose(o.last, o.info, o.route, o.window, o.cause, now)
		}
		if err != nil {
			s.log.Error().Err(err).Str("series", o.key).Msg("episode close dropped")
			continue
		}
		var stale staleKey
		switch {
		case s.kv == nil:
		case o.close != nil:
			stale = staleKey{kv: s.keyOf(assetKeyPrefix + o.key), asset: o.key, value: o.snapshot}
		default:
			stale = staleKey{kv: s.keyOf(o.key), series: o.key, value: o.snapshot}
		}
		o.waits.pending++
		if err := s.emitWaited(out, e, &o.waits, s.m.anomalies, stale); err != nil {
			s.log.Error().Err(err).Str("series", o.key).Msg("episode close dropped")
		}
	}
}
