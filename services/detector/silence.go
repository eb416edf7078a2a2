package detector

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/nats-io/nats.go/jetstream"

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
}

// track follows ser's episode after a sample scored at the service's clock
// seen: while one is open the series keeps its last sample and is in the
// open set Tick looks at. s.mu is held.
func (s *Service) track(ser *series, e *event.Envelope, metric string, scored float64, seen time.Time) {
	ser.seen = seen.UnixNano()
	if !ser.det.InEpisode() {
		if ser.last != nil {
			ser.last = nil
			delete(s.open, ser)
		}
		return
	}
	if ser.last == nil {
		ser.last = &lastSample{Service: e.Service, Fingerprint: e.Fingerprint, Metric: metric, Labels: e.Labels, Resource: e.Resource}
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

// silentCloses ends the episodes of the series silent for their Silence
// (by the service's clock, until the latest sample of any series), and of
// those evicted with one open, and returns their closes. s.mu is held.
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
		if !ser.dirty && !ser.evicted {
			ser.dirty = true
			s.dirty = append(s.dirty, ser)
		}
		out = append(out, seriesAnomaly{event: e, series: ser})
		if ser.evicted && s.kv != nil {
			// its snapshot still holds the episode open: a restart would
			// close it again (seriesAnomaly.stale)
			out[len(out)-1].stale = s.keyOf(ser.key)
		}
	}
	for ser := range s.open {
		// silent while other series' samples came: when none come at all
		// (the bus or the producers are down) nothing tells a series that
		// stopped from one whose samples are held up; and not while the
		// episode's last event is still being published (the close must
		// not overtake it)
		if s.lastSample-ser.seen >= int64(ser.det.Silence()) && ser.pending == 0 {
			delete(s.open, ser)
			end(ser, "silent")
		}
	}
	for _, ser := range s.ended {
		end(ser, "evicted")
	}
	s.ended = nil
	return out
}

// seriesAnomaly is an anomaly of a series a tick made.
type seriesAnomaly struct {
	event  *event.Envelope
	series *series
	// stale is the snapshot key of an evicted series whose episode this
	// closes, to delete ("": none)
	stale string
}

// dropStale deletes the snapshots of evicted series and assets whose
// episode a tick closed: they hold it open, and a restart would close it
// again. A series seen again meanwhile is written anew by the next
// snapshot.
func (s *Service) dropStale(ctx context.Context, keys []string) {
	for _, k := range keys {
		if err := s.kv.Delete(ctx, k); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
			s.log.Warn().Err(err).Str("key", k).Msg("snapshot of an evicted series not deleted: a restart may close its episode again")
		}
	}
}

func (s *Service) emitSeries(out stage.Emitter, as []seriesAnomaly) {
	for _, a := range as {
		ser := a.series
		settled := func(err error) { s.settled(ser, err) }
		if err := out.Emit(stage.Output{Event: a.event, Settled: settled}); err != nil {
			settled(err)
			s.log.Error().Err(err).Str("series", ser.key).Msg("episode close dropped")
		}
	}
}

// silentClose builds the close of ser's episode info, which no observation
// ended: the series sent none for its Silence (why "silent"), or was
// evicted (why "evicted"). Its id is derived from the last sample, so a
// close made again (after a restore, by a second instance) is the same
// message and the stream's duplicate window keeps one.
func (s *Service) silentClose(ser *series, last *lastSample, info detect.Episode, now time.Time, why string) (*event.Envelope, error) {
	var reason string
	if why == "evicted" {
		reason = fmt.Sprintf("%s dropped from the detector's memory (max_series) while anomalous", last.Metric)
	} else {
		reason = fmt.Sprintf("%s sent no sample since %s (%s without one while other series sent theirs)", last.Metric,
			last.Time.UTC().Format(time.RFC3339), time.Duration(s.lastSample-ser.seen).Truncate(time.Second))
	}
	reason += fmt.Sprintf(": the episode from %s to %s peaked at score %.2f (%.4g by %s) (route %s)",
		info.Start.Format(time.RFC3339), info.End.Format(time.RFC3339), info.Peak, info.PeakValue, info.Detector, ser.route)
	value, score, peak, peakValue := last.Value, 0.0, info.Peak, info.PeakValue
	ab := event.AnomalyBody{
		Series:    last.Fingerprint,
		Metric:    last.Metric,
		Value:     &value,
		Score:     &score,
		Detector:  info.Detector.String(),
		Window:    window(ser.det.Profile().Config(), info.Detector),
		Reason:    reason,
		Episode:   event.EpisodeClose,
		EpisodeID: event.DerivedID(info.Start, "episode", last.Fingerprint),
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
	if !a.evicted {
		s.markAssetDirty(a)
	} else if s.kv != nil {
		s.stale = append(s.stale, s.cfg.Instance+"."+assetKeyPrefix+a.key)
	}
	return append(rows, rowAnomaly{e, a})
}
