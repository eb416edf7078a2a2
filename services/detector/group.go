package detector

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// GroupDetector is the detector field of the anomalies of pipeline groups.
const GroupDetector = "group"

// RowResolution is the resolution of a row's time: samples of one asset
// whose timestamps fall in the same second make one row, so exporters that
// stamp the channels of one scrape a few milliseconds apart still meet.
const RowResolution = time.Second

// asset is the state of one asset of a pipeline group: its detect.Group and
// the row being assembled. It sits in the asset LRU (front: most recent).
type asset struct {
	key     string // assetKey(group, by values)
	group   *pipeline.Group
	service string            // envelope service of its anomalies
	labels  map[string]string // the by labels (and "group"), for its anomalies
	det     *detect.Group

	// The open row: channels arrived so far for rowTime, NaN where missing.
	open    bool
	rowTime time.Time
	row     []float64
	have    int
	links   []string  // ids of the samples in the row
	opened  time.Time // wall clock when the row opened, for the group's wait
	// lastClosed is the time of the last row closed: anything not after it
	// is late (or a redelivery) and left out.
	lastClosed time.Time

	dirty, evicted bool
	pending        int32 // anomalies of this asset whose publish is not settled

	// the current alarm episode of the asset's Group (in memory: after a
	// restore an episode in progress continues with its peak from then on)
	ep groupEpisode
}

// groupEpisode follows an asset's alarm episode between its events.
type groupEpisode struct {
	lastUpd, end, peakTime time.Time
	peak, peakValue        float64
}

// closedRow is a row the assembler closed, ready for the asset's Group.
type closedRow struct {
	time     time.Time
	values   []float64
	links    []string
	complete bool
}

// addResult says what add did with a sample.
type addResult int

const (
	added     addResult = iota // joined the open row
	late                       // older than the open or the last closed row: left out
	duplicate                  // its channel is already in the row: first wins
)

func newAsset(key string, g *pipeline.Group, service string, labels map[string]string) (*asset, error) {
	det, err := detect.NewGroup(g.Settings, len(g.Channels))
	if err != nil {
		return nil, err
	}
	return &asset{key: key, group: g, service: service, labels: labels, det: det}, nil
}

// add puts the value of channel ch at time t into the asset's rows. It
// returns the rows it closed, oldest first (the open row when t is a later
// second; the new row when it is complete), and what it did with the sample.
func (a *asset) add(t time.Time, ch int, v float64, id string, now time.Time) ([]closedRow, addResult) {
	t = t.Truncate(RowResolution)
	if !a.lastClosed.IsZero() && !t.After(a.lastClosed) {
		return nil, late
	}
	var closed []closedRow
	if a.open {
		switch {
		case t.Before(a.rowTime):
			return nil, late
		case t.After(a.rowTime):
			closed = append(closed, a.close())
		case !math.IsNaN(a.row[ch]):
			return nil, duplicate
		}
	}
	if !a.open {
		a.open, a.rowTime, a.have, a.opened = true, t, 0, now
		a.links = a.links[:0]
		if a.row == nil {
			a.row = make([]float64, len(a.group.Channels))
		}
		for i := range a.row {
			a.row[i] = math.NaN()
		}
	}
	if math.IsNaN(v) {
		v = math.Inf(1) // present but invalid: the Group takes it as missing; NaN marks "not arrived"
	}
	a.row[ch] = v
	a.have++
	a.links = append(a.links, id)
	if a.have == len(a.row) {
		closed = append(closed, a.close())
	}
	return closed, added
}

// expire closes the open row if it has waited its group's wait.
func (a *asset) expire(now time.Time) (closedRow, bool) {
	if !a.open || now.Sub(a.opened) < a.group.Wait {
		return closedRow{}, false
	}
	return a.close(), true
}

func (a *asset) close() closedRow {
	r := closedRow{time: a.rowTime, values: append([]float64(nil), a.row...), links: append([]string(nil), a.links...), complete: a.have == len(a.row)}
	a.open, a.lastClosed = false, a.rowTime
	return r
}

// assetKey names the asset of group g with the given by values: 16 hex
// digits of a hash, a valid snapshot key token.
func assetKey(g *pipeline.Group, values []string) string {
	h := fnv.New64a()
	h.Write([]byte(g.Name))
	for _, v := range values {
		h.Write([]byte{0xff})
		h.Write([]byte(v))
	}
	return fmt.Sprintf("%016x", h.Sum64())
}

// assetOf returns the by values of a sample for group g, and the labels
// its anomalies carry.
func assetOf(g *pipeline.Group, service string, labels map[string]string) (values []string, out map[string]string) {
	values = make([]string, len(g.By))
	out = make(map[string]string, len(g.By)+1)
	out["group"] = g.Name
	for i, l := range g.By {
		if l == pipeline.ByService {
			values[i] = service
			continue
		}
		values[i] = labels[l]
		out[l] = labels[l]
	}
	return values, out
}

// rowAnomaly is the anomaly of a closed row and the asset whose snapshot
// waits for its publish.
type rowAnomaly struct {
	event *event.Envelope
	asset *asset
}

// routeToGroups feeds the sample to every group that takes it and scores
// the rows that closes. It appends their anomalies to out. s.mu is held.
func (s *Service) routeToGroups(e *event.Envelope, body *event.MetricBody, out []rowAnomaly) ([]rowAnomaly, error) {
	if len(s.pipeline.Groups) == 0 || body.Type == event.MetricCounter {
		return out, nil
	}
	s.groupBuf = s.pipeline.SelectGroups(s.groupBuf[:0], body.Name, e.Service, e.Labels)
	for _, gc := range s.groupBuf {
		values, labels := assetOf(gc.Group, e.Service, e.Labels)
		key := assetKey(gc.Group, values)
		a, err := s.lookupAsset(key, gc.Group, e.Service, labels)
		if err != nil {
			return out, err
		}
		rows, what := a.add(e.Time, gc.Channel, *body.Value, e.ID, s.now())
		if what == late {
			s.m.groupLate.Inc()
		}
		for _, r := range rows {
			ev, err := s.scoreRow(a, r)
			if err != nil {
				return out, err
			}
			if ev != nil {
				out = append(out, rowAnomaly{ev, a})
			}
		}
		s.markAssetDirty(a)
	}
	return out, nil
}

// scoreRow observes a closed row with its asset's Group and returns the
// anomaly to publish, if any; the asset's pending count then waits for it.
// s.mu is held.
func (s *Service) scoreRow(a *asset, r closedRow) (*event.Envelope, error) {
	s.m.rows.Inc()
	if !r.complete {
		s.m.rowsIncomplete.Inc()
	}
	// one event when the Group's alarm starts, updates at most every
	// detect.DefaultEpisodeUpdateEvery of row time while it lasts, one when
	// it ends: not one per anomalous row
	was, since := a.det.Alarming(), a.det.AlarmSince()
	res := a.det.Observe(r.time, r.values)
	var kind string
	switch {
	case res.Anomaly && !was:
		kind, since = event.EpisodeOpen, a.det.AlarmSince()
		a.ep = groupEpisode{lastUpd: r.time}
	case res.Anomaly:
		if r.time.Sub(a.ep.lastUpd) >= detect.DefaultEpisodeUpdateEvery {
			kind = event.EpisodeUpdate
			a.ep.lastUpd = r.time
		}
	case was:
		kind = event.EpisodeClose
	}
	if res.Anomaly {
		a.ep.end = r.time
		if res.Score > a.ep.peak || a.ep.peakTime.IsZero() {
			a.ep.peak, a.ep.peakTime = res.Score, r.time
			if c := max(res.Channel, 0); c < len(r.values) {
				a.ep.peakValue = r.values[c]
			}
		}
	}
	if kind == "" {
		return nil, nil
	}
	if since.IsZero() { // an alarm restored from a snapshot of an older layout
		since = r.time
	}
	if a.ep.end.IsZero() || a.ep.end.Before(since) {
		a.ep.end = since
	}
	e, err := s.groupAnomaly(a, r, &res, kind, since)
	if err != nil {
		return nil, err
	}
	a.pending++
	return e, nil
}

// emitRows emits the anomalies of closed rows; each one's Settled ends its
// asset's snapshot wait. One that cannot be encoded is logged and dropped,
// as a row that could not be scored.
func (s *Service) emitRows(out stage.Emitter, rows []rowAnomaly) {
	for _, r := range rows {
		a := r.asset
		if err := out.Emit(stage.Output{Event: r.event, Settled: func(err error) { s.settledAsset(a, err) }}); err != nil {
			s.settledAsset(a, err)
			s.log.Error().Err(err).Str("group", a.group.Name).Str("asset", a.key).Msg("group anomaly dropped")
		}
	}
}

// settledAsset ends the wait of a's snapshot for one anomaly publish, and
// counts the anomaly if it was stored.
func (s *Service) settledAsset(a *asset, err error) {
	s.mu.Lock()
	a.pending--
	s.mu.Unlock()
	if err == nil {
		s.m.groupAnomalies.Inc()
	}
}

func (s *Service) markAssetDirty(a *asset) {
	if !a.dirty {
		a.dirty = true
		s.dirtyAssets = append(s.dirtyAssets, a)
	}
}

// lookupAsset returns the asset of key, creating it (and evicting the least
// recently seen asset beyond MaxAssets) if needed. s.mu is held.
func (s *Service) lookupAsset(key string, g *pipeline.Group, service string, labels map[string]string) (*asset, error) {
	if a, ok := s.assets.Get(key); ok {
		return a, nil
	}
	a, err := newAsset(key, g, service, labels)
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("detector: group %s: %w", g.Name, err))
	}
	s.assets.Add(key, a)
	return a, nil
}

// Assets returns the number of group assets in memory.
func (s *Service) Assets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.assets.Len()
}

// groupChannelValue is one channel of a group anomaly's row.
type groupChannelValue struct {
	Name     string   `json:"name"`
	Value    *float64 `json:"value"` // null: missing from the row
	Expected float64  `json:"expected"`
}

// groupAnomalyBody is the body of a group anomaly: the fields of
// event.AnomalyBody (series is the asset, metric and value the channel that
// contributes most) and the multivariate explanation.
type groupAnomalyBody struct {
	Series   string   `json:"series"`
	Metric   string   `json:"metric"`
	Value    *float64 `json:"value"`
	Expected float64  `json:"expected"`
	Score    *float64 `json:"score"`
	Detector string   `json:"detector"`
	Window   string   `json:"window"`
	Reason   string   `json:"reason"`

	Group   string  `json:"group"`
	Channel string  `json:"channel"`
	Sigmas  float64 `json:"sigmas"`
	T2      float64 `json:"t2"`
	T2Limit float64 `json:"t2_limit"`
	Q       float64 `json:"q"`
	QLimit  float64 `json:"q_limit"`
	// Changing: the asset's operating point is still moving
	// (detect.GroupResult.Changing); false once it has settled, abnormal
	// or not, and when the group's change detector is off.
	Changing bool                `json:"changing"`
	Channels []groupChannelValue `json:"channels"`

	// The alarm episode, as event.AnomalyBody has it.
	Episode   string    `json:"episode"`
	EpisodeID string    `json:"episode_id"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Peak      *float64  `json:"peak"`
	PeakTime  time.Time `json:"peak_time"`
	PeakValue *float64  `json:"peak_value,omitempty"`
}

// groupAnomaly builds the anomaly event of row r of asset a. Its id is
// derived from the asset and the row's time, so the same row closed again
// (a redelivered sample, a restored state) is the same message and the
// stream's duplicate window keeps one.
func (s *Service) groupAnomaly(a *asset, r closedRow, res *detect.GroupResult, episode string, start time.Time) (*event.Envelope, error) {
	g := a.group
	set := g.Settings.WithDefaults()
	top := max(res.Channel, 0)
	score := res.Score
	b := groupAnomalyBody{
		Series: a.key, Metric: g.Channels[top], Score: &score, Detector: GroupDetector,
		Group: g.Name, Channel: g.Channels[top], Sigmas: res.Sigmas,
		T2: res.T2, T2Limit: res.T2Limit, Q: res.Q, QLimit: res.QLimit, Changing: res.Changing,
		Window: fmt.Sprintf("principal components of the %d channels learnt over %d rows, then %d rows of memory", len(g.Channels), set.Warmup, set.Memory),
	}
	value := r.values[top]
	if !math.IsNaN(value) && !math.IsInf(value, 0) {
		b.Value = &value
	} else {
		zero := 0.0
		b.Value = &zero // the schema requires a number; every channel was missing or invalid
	}
	b.Channels = make([]groupChannelValue, len(g.Channels))
	for i, name := range g.Channels {
		b.Channels[i].Name = name
		if v := r.values[i]; !math.IsNaN(v) && !math.IsInf(v, 0) {
			b.Channels[i].Value = &v
		}
		if i < len(res.Expected) {
			b.Channels[i].Expected = res.Expected[i]
		}
	}
	b.Expected = b.Channels[top].Expected
	var which []string
	if res.T2 > res.T2Limit {
		which = append(which, fmt.Sprintf("T² %.3g over its limit %.3g (the asset moved further than usual)", res.T2, res.T2Limit))
	}
	if res.Q > res.QLimit {
		which = append(which, fmt.Sprintf("Q %.3g over its limit %.3g (the usual relations between the channels broke)", res.Q, res.QLimit))
	}
	if len(which) == 0 {
		which = append(which, "held until the asset is back for "+strconv.Itoa(set.ReleaseRows)+" rows")
	}
	var state string
	switch {
	case res.Changing:
		state = "; operating point still moving"
	case res.ChangeLimit > 0: // the change detector runs
		state = "; operating point settled"
	}
	b.Reason = fmt.Sprintf("group %s: %s; %s most: %g, expected %g, %+.1f sigma%s; score %.2f",
		g.Name, strings.Join(which, ", "), b.Channel, *b.Value, b.Expected, res.Sigmas, state, score)
	peak := a.ep.peak
	b.Episode, b.EpisodeID, b.Start, b.End, b.Peak, b.PeakTime = episode, event.DerivedID(start, "episode", a.key), start, a.ep.end, &peak, a.ep.peakTime
	if v := a.ep.peakValue; !math.IsNaN(v) && !math.IsInf(v, 0) {
		b.PeakValue = &v
	}
	if episode == event.EpisodeClose {
		b.Reason = fmt.Sprintf("group %s: back to normal; the alarm from %s to %s peaked at score %.2f%s",
			g.Name, start.Format(time.RFC3339), a.ep.end.Format(time.RFC3339), peak, state)
	}

	e, err := event.New(event.KindAnomaly, a.service, r.time, b)
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("detector: group %s anomaly: %w", g.Name, err))
	}
	var t [8]byte
	binary.LittleEndian.PutUint64(t[:], uint64(r.time.UnixNano()))
	e.ID = event.DerivedID(r.time, "group", a.key, string(t[:]))
	e.Source = Source
	e.Labels = a.labels
	e.Links = r.links
	e.Severity = event.SeverityWarning
	if a.ep.peak >= 0.9 {
		e.Severity = event.SeverityError
	}
	e.Fingerprint = ""
	e.ObservedTime = s.now()
	e.Normalize(e.ObservedTime)
	return e, nil
}
