package detector

import (
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
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

// rowScorer is the detector of an asset's rows, by its group's method: a
// *detect.Vote (vote) or a *detect.Group (pca). Both hold an alarm from
// the row that starts it to the row that ends it (its episode) and
// snapshot their state.
type rowScorer interface {
	Alarming() bool
	AlarmSince() time.Time
	EndAlarm()
	MarshalBinary() ([]byte, error)
	AppendBinary([]byte) ([]byte, error)
	UnmarshalBinary([]byte) error
}

// asset is the state of one asset of a pipeline group: its detector and
// the row being assembled. It sits in the asset LRU (front: most recent).
type asset struct {
	key     string // assetKey(group, by values)
	group   *pipeline.Group
	service string            // envelope service of its anomalies
	labels  map[string]string // the by labels (and "group"), for its anomalies
	det     rowScorer

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
	// every is the time between the last two rows closed and seen the
	// service's clock at the last sample: an asset silent in an alarm has
	// it ended (silence.go)
	every time.Duration
	seen  time.Time

	// idle: dropped for its silence (forgetIdleAssets), not for max_assets
	dirty, evicted, idle bool
	publishWaits         // its anomalies being published, or failed and not stored

	// the current alarm episode of the asset's detector (in memory: after
	// a restore an episode in progress continues with its peak from then on)
	ep groupEpisode

	// holds keep the samples it took since its last stored snapshot
	// coming again after a crash (rowsHold); empty: none since
	holds []*rowsHold
}

// groupEpisode follows an asset's alarm episode between its events.
type groupEpisode struct {
	lastUpd, end, peakTime time.Time
	peak, peakValue        float64
}

// closedRow is a row the assembler closed, ready for the asset's detector.
type closedRow struct {
	time     time.Time
	values   []float64
	links    []string
	complete bool
	// silent: no row closed it; the asset sent nothing for this long, or
	// was evicted (-1), and its alarm was ended (silence.go)
	silent time.Duration
}

// addResult says what add did with a sample.
type addResult int

const (
	added     addResult = iota // joined the open row
	late                       // older than the open or the last closed row: left out
	duplicate                  // its channel is already in the row: first wins
	again                      // the row holds it already: delivered again
)

// newAsset returns the asset of group g; a group of method vote scores its
// channels with detectors of profile votes (the pipeline's defaults).
func newAsset(key string, g *pipeline.Group, service string, labels map[string]string, votes *detect.Profile) (*asset, error) {
	a := &asset{key: key, group: g, service: service, labels: labels}
	var err error
	switch g.Method {
	case detect.MethodPCA:
		a.det, err = detect.NewGroup(g.Settings, len(g.Channels))
	case detect.MethodVote, "":
		a.det, err = detect.NewVote(votes, len(g.Channels))
	default:
		err = fmt.Errorf("%w %q", detect.ErrInvalidMethod, g.Method)
	}
	if err != nil {
		return nil, err
	}
	return a, nil
}

// add puts the value of channel ch at time t into the asset's rows. It
// returns the rows it closed, oldest first (the open row when t is a later
// second; the new row when it is complete), and what it did with the sample.
func (a *asset) add(t time.Time, ch int, v float64, id string, now time.Time) ([]closedRow, addResult) {
	t = t.Truncate(RowResolution)
	a.seen = now
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
		case !math.IsNaN(a.row[ch]) && slices.Contains(a.links, id):
			// A redelivery after a restart whose snapshot held the
			// open row with it: no second label set.
			return nil, again
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
	if !a.lastClosed.IsZero() {
		a.every = a.rowTime.Sub(a.lastClosed)
	}
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
	stale staleKey // of an evicted asset, deleted once the close is stored
}

// routeToGroups feeds the sample to every group that takes it and scores
// the rows that closes. It appends their anomalies to out; em is the
// sample's emitter, whose ack an asset may hold (holdRows). s.mu is held.
func (s *Service) routeToGroups(e *event.Envelope, body *event.MetricBody, em stage.Emitter, out []rowAnomaly) ([]rowAnomaly, error) {
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
		switch what {
		case added:
			s.holdRows(a, em)
		case late:
			s.m.groupLate.Inc()
		case duplicate:
			// Two label sets the group's by does not tell apart (disk=sda
			// and disk=sdb under by: [host]): the first value is the row's.
			s.m.groupDuplicates.Inc()
			if s.loggedDuplicate.CompareAndSwap(false, true) {
				s.log.Warn().Str("group", gc.Group.Name).Str("asset", key).Str("metric", body.Name).
					Msg("two samples for one channel of one row: the first is kept, the others counted in group_samples_duplicate_total (does the group's by tell every label set apart?)")
			}
		}
		for _, r := range rows {
			ev, err := s.scoreRow(a, r)
			if err != nil {
				return out, err
			}
			if ev != nil {
				out = append(out, rowAnomaly{event: ev, asset: a})
			}
		}
		s.markAssetDirty(a)
	}
	return out, nil
}

// rowScore is what an asset's detector said of a row, whatever its method.
type rowScore struct {
	anomaly bool
	score   float64
	channel int // the channel that contributes most, -1 if none
	pca     *detect.GroupResult
	vote    *detect.VoteResult
}

// observe scores row r with the asset's detector.
func (a *asset) observe(r closedRow) rowScore {
	switch det := a.det.(type) {
	case *detect.Vote:
		res := det.Observe(r.time, r.values)
		return rowScore{anomaly: res.Anomaly, score: res.Score, channel: res.Channel, vote: &res}
	case *detect.Group:
		res := det.Observe(r.time, r.values)
		return rowScore{anomaly: res.Anomaly, score: res.Score, channel: res.Channel, pca: &res}
	}
	panic(fmt.Sprintf("detector: asset %s has a detector of type %T", a.key, a.det))
}

// scoreRow observes a closed row with its asset's detector and returns the
// anomaly to publish, if any; the asset's pending count then waits for it.
// s.mu is held.
func (s *Service) scoreRow(a *asset, r closedRow) (*event.Envelope, error) {
	s.m.rows.Inc()
	if !r.complete {
		s.m.rowsIncomplete.Inc()
	}
	// one event when the detector's alarm starts, updates at most every
	// detect.DefaultEpisodeUpdateEvery of row time while it lasts, one when
	// it ends: not one per anomalous row
	was, since := a.det.Alarming(), a.det.AlarmSince()
	res := a.observe(r)
	var kind string
	switch {
	case res.anomaly && !was:
		kind, since = event.EpisodeOpen, a.det.AlarmSince()
		a.ep = groupEpisode{lastUpd: r.time}
	case res.anomaly:
		if r.time.Sub(a.ep.lastUpd) >= detect.DefaultEpisodeUpdateEvery {
			kind = event.EpisodeUpdate
			a.ep.lastUpd = r.time
		}
	case was:
		kind = event.EpisodeClose
	}
	if res.anomaly {
		a.ep.end = r.time
		if res.score > a.ep.peak || a.ep.peakTime.IsZero() {
			a.ep.peak, a.ep.peakTime = res.score, r.time
			if c := max(res.channel, 0); c < len(r.values) {
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
		if err := s.emitWaited(out, r.event, &r.asset.publishWaits, s.m.groupAnomalies, r.stale); err != nil {
			s.log.Error().Err(err).Str("group", r.asset.group.Name).Str("asset", r.asset.key).Msg("group anomaly dropped")
		}
	}
}

// markSeriesDirty puts ser on the list of the next snapshot; without
// snapshots there is none (nothing would ever empty the list). s.mu is
// held.
func (s *Service) markSeriesDirty(ser *series) {
	if s.snap == nil || ser.dirty {
		return
	}
	ser.dirty = true
	s.dirty = appendDirty(s.dirty, ser, s.cfg.MaxSeries, func(ser *series) bool { return ser.evicted })
}

func (s *Service) markAssetDirty(a *asset) {
	if s.snap == nil || a.dirty {
		return
	}
	a.dirty = true
	s.dirtyAssets = appendDirty(s.dirtyAssets, a, s.cfg.MaxAssets, func(a *asset) bool { return a.evicted })
}

// appendDirty appends x to a dirty list of at most max live entries,
// first dropping the evicted ones once the list reached twice that: while
// snapshots cannot be written (the bucket is down), series created and
// evicted would otherwise pile up on it, each holding its detector.
func appendDirty[T any](list []T, x T, max int, evicted func(T) bool) []T {
	if len(list) >= 2*max {
		list = slices.DeleteFunc(list, evicted)
	}
	return append(list, x)
}

// lookupAsset returns the asset of key, creating it (and evicting the least
// recently seen asset beyond MaxAssets) if needed. s.mu is held.
func (s *Service) lookupAsset(key string, g *pipeline.Group, service string, labels map[string]string) (*asset, error) {
	if a, ok := s.assets.Get(key); ok {
		return a, nil
	}
	a, err := newAsset(key, g, service, labels, s.voteProfile())
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("detector: group %s: %w", g.Name, err))
	}
	s.assets.Add(key, a)
	return a, nil
}

// voteProfile is the profile of the channels' detectors of a group of
// method vote: the pipeline's defaults, as `aiops detect eval` scores an
// asset.
func (s *Service) voteProfile() *detect.Profile {
	route, _ := s.pipeline.Lookup(pipeline.DefaultRoute)
	return route.Profile(false)
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
	// Method vote: the channel's own detector, its band (null while it
	// learns), whether it is in an alarm episode, and then its share of
	// the row's surprise and the detector that alarmed.
	Lower    *float64 `json:"lower,omitempty"`
	Upper    *float64 `json:"upper,omitempty"`
	InAlarm  bool     `json:"in_alarm,omitempty"`
	Surprise float64  `json:"surprise,omitempty"`
	Detector string   `json:"detector,omitempty"`
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
	Method  string  `json:"method"` // the group's method: vote or pca
	Channel string  `json:"channel"`
	Sigmas  float64 `json:"sigmas"`
	// Method vote: the summed surprise of the channels in alarm, the limit
	// it must reach, and those channels, the most surprising first.
	Surprise      float64  `json:"surprise,omitempty"`
	SurpriseLimit float64  `json:"surprise_limit,omitempty"`
	Contributors  []string `json:"contributors,omitempty"`
	// Method pca: T² and Q and their limits.
	T2      float64 `json:"t2,omitempty"`
	T2Limit float64 `json:"t2_limit,omitempty"`
	Q       float64 `json:"q,omitempty"`
	QLimit  float64 `json:"q_limit,omitempty"`
	// Changing: the asset's operating point is still moving
	// (detect.GroupResult.Changing, method pca); false once it has
	// settled, abnormal or not, when the group's change detector is off,
	// and for method vote, which has none.
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

// finite returns a pointer to v, or nil when v is NaN or infinite (JSON
// has neither).
func finite(v float64) *float64 {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return nil
	}
	return &v
}

// maxReasonChannels bounds the contributing channels a vote anomaly's
// reason describes (the body lists them all).
const maxReasonChannels = 3

// groupAnomaly builds the anomaly event of row r of asset a. Its id is
// derived from the asset and the row's time, so the same row closed again
// (a redelivered sample, a restored state) is the same message and the
// stream's duplicate window keeps one.
func (s *Service) groupAnomaly(a *asset, r closedRow, res *rowScore, episode string, start time.Time) (*event.Envelope, error) {
	g := a.group
	top := max(res.channel, 0)
	score := res.score
	b := groupAnomalyBody{
		Series: a.key, Metric: g.Channels[top], Score: &score, Detector: GroupDetector,
		Group: g.Name, Method: g.Method, Channel: g.Channels[top],
	}
	b.Value = finite(r.values[top])
	if b.Value == nil {
		zero := 0.0
		b.Value = &zero // the schema requires a number; every channel was missing or invalid
	}
	b.Channels = make([]groupChannelValue, len(g.Channels))
	for i, name := range g.Channels {
		b.Channels[i].Name = name
		b.Channels[i].Value = finite(r.values[i])
	}
	var state string
	switch {
	case res.vote != nil:
		s.voteExplanation(&b, a, res.vote)
	case res.pca != nil:
		state = pcaExplanation(&b, a, res.pca)
	}
	b.Expected = b.Channels[top].Expected
	peak := a.ep.peak
	b.Episode, b.EpisodeID, b.Start, b.End, b.Peak, b.PeakTime = episode, event.DerivedID(start, "episode", a.key), start, a.ep.end, &peak, a.ep.peakTime
	b.PeakValue = finite(a.ep.peakValue)
	switch {
	case r.silent < 0:
		b.Reason = fmt.Sprintf("group %s: dropped from the detector's memory (max_assets) while anomalous; the alarm from %s to %s peaked at score %.2f",
			g.Name, start.Format(time.RFC3339), a.ep.end.Format(time.RFC3339), peak)
	case r.silent > 0:
		b.Reason = fmt.Sprintf("group %s: no sample since the row of %s (%s without one); the alarm from %s to %s peaked at score %.2f",
			g.Name, r.time.Format(time.RFC3339), r.silent.Truncate(time.Second), start.Format(time.RFC3339), a.ep.end.Format(time.RFC3339), peak)
	case episode == event.EpisodeClose:
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
	if r.silent != 0 { // not the last row's own anomaly
		e.ID = event.DerivedID(r.time, "group", a.key, string(t[:]), "close")
	}
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

// voteExplanation fills the vote's part of b: every channel's expected
// value and band, the channels in alarm and their surprise, the window and
// the reason.
func (s *Service) voteExplanation(b *groupAnomalyBody, a *asset, res *detect.VoteResult) {
	g := a.group
	for i := range b.Channels {
		c, ch := &res.Channels[i], &b.Channels[i]
		if c.HasBaseline {
			ch.Expected, ch.Lower, ch.Upper = c.Expected, finite(c.Lower), finite(c.Upper)
		}
		if c.Alarm {
			ch.InAlarm, ch.Surprise, ch.Detector = true, res.ChannelSurprise[i], c.Detector.String()
		}
	}
	b.Surprise, b.SurpriseLimit = res.Surprise, res.Limit
	if res.Channel >= 0 {
		b.Sigmas = res.Channels[res.Channel].Sigmas
	}
	parts := make([]string, 0, maxReasonChannels+1)
	for _, c := range res.Contributors {
		b.Contributors = append(b.Contributors, g.Channels[c])
		if len(parts) == maxReasonChannels {
			continue
		}
		ch, cr := &b.Channels[c], &res.Channels[c]
		if ch.Value == nil || ch.Lower == nil || ch.Upper == nil {
			parts = append(parts, fmt.Sprintf("%s (in alarm, %s)", g.Channels[c], cr.Detector))
			continue
		}
		parts = append(parts, fmt.Sprintf("%s %.4g, expected %.4g (band %.4g to %.4g), %+.1f sigma, %s",
			g.Channels[c], *ch.Value, ch.Expected, *ch.Lower, *ch.Upper, cr.Sigmas, cr.Detector))
	}
	if n := len(res.Contributors) - maxReasonChannels; n > 0 {
		parts = append(parts, fmt.Sprintf("%d more", n))
	}
	b.Window = fmt.Sprintf("each of the %d channels scored by its own detectors (the pipeline's defaults); a row is anomalous when the channels in alarm are rare enough together (surprise limit %.3g)", len(g.Channels), res.Limit)
	b.Reason = fmt.Sprintf("group %s: %d of %d channels in alarm together, surprise %.3g of its limit %.3g: %s; score %.2f",
		g.Name, len(res.Contributors), len(g.Channels), res.Surprise, res.Limit, strings.Join(parts, "; "), res.Score)
}

// pcaExplanation fills the principal-component model's part of b and
// returns the operating point's state for the reason.
func pcaExplanation(b *groupAnomalyBody, a *asset, res *detect.GroupResult) (state string) {
	g := a.group
	set := g.Settings.WithDefaults()
	for i := range b.Channels {
		if i < len(res.Expected) {
			b.Channels[i].Expected = res.Expected[i]
		}
	}
	b.Sigmas, b.T2, b.T2Limit, b.Q, b.QLimit, b.Changing = res.Sigmas, res.T2, res.T2Limit, res.Q, res.QLimit, res.Changing
	b.Window = fmt.Sprintf("principal components of the %d channels learnt over %d rows, then %d rows of memory", len(g.Channels), set.Warmup, set.Memory)
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
	switch {
	case res.Changing:
		state = "; operating point still moving"
	case res.ChangeLimit > 0: // the change detector runs
		state = "; operating point settled"
	}
	top := max(res.Channel, 0)
	b.Reason = fmt.Sprintf("group %s: %s; %s most: %.4g, expected %.4g, %+.1f sigma%s; score %.2f",
		g.Name, strings.Join(which, ", "), g.Channels[top], *b.Value, b.Channels[top].Expected, res.Sigmas, state, res.Score)
	return state
}
