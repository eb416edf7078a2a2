// Package detector is the anomaly detection service: it consumes metric
// samples (events.metric.*, including the log miner's template rates), keeps
// one streaming detect.Detector per series, chooses each series' detectors
// from the pipeline file, and publishes an anomaly event, with its
// explanation and a link to the sample, when a sample scores as anomalous.
//
// The service is a stage.Processor (pkg/stage): the stage runner decodes the
// samples, publishes the anomalies, acks each sample once its anomalies are
// stored, keeps the anomalies whose publish failed for the sample's
// redelivery, and drives the service's periodic work (Tick: rows closed on
// their wait) and snapshots (a stage.Checkpointer).
//
// A sample stamped more than Config.MaxEventFuture ahead of the service's
// clock is not scored: its time would become its series' event time.
//
// Series state is bounded (least recently seen series evicted beyond
// Config.MaxSeries, counted in aiops_detector_series_evicted_total, gauged
// against aiops_detector_series_limit and logged: an evicted series warms
// up again) and snapshotted to a JetStream key-value bucket: the series
// changed since the last snapshot, every Snapshot.Interval and on shutdown,
// and restored on start, so a restart loses no warm-up. README.md explains
// scaling out.
//
// Pipeline groups (detect.groups) also gather the samples of several
// metrics of one asset into rows, score each row with the asset's
// detect.Group and publish one anomaly per anomalous row; assets are bounded
// (Config.MaxAssets) and snapshotted like series.
package detector

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// Source is the envelope source of the anomalies this service publishes.
const Source = "detector"

// maxKept bounds the samples (and rows closed on their wait) whose
// anomalies the runner keeps for republishing after a failed publish.
const maxKept = 10_000

// Sentinel errors of Process; all are permanent (the sample is bad).
var (
	ErrNotMetric = errors.New("detector: event is not a metric sample")
	ErrNoValue   = errors.New("detector: metric sample has no value")
)

// ErrNotRunning is returned by FlushRows on a service without a runner.
var ErrNotRunning = errors.New("detector: no stage runner")

// Option adjusts New.
type Option func(*Service)

// WithPipeline routes series with p instead of the file named in Config.
func WithPipeline(p *pipeline.Pipeline) Option { return func(s *Service) { s.pipeline = p } }

// WithClock sets the clock used for observed times and rows' waits
// (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithConsumerOptions passes options to the bus consumer.
func WithConsumerOptions(opts ...bus.ConsumerOption) Option {
	return func(s *Service) { s.consumerOpts = append(s.consumerOpts, opts...) }
}

// series is the state of one series.
type series struct {
	key          string // envelope fingerprint
	route        string
	counter      bool
	dirty        bool // changed since its last snapshot
	evicted      bool
	publishWaits // its anomalies being published, or failed and not stored
	det          *detect.Detector
	// seen is the service's clock (unix ns) at the last sample, and last
	// that sample while an episode is open: Tick closes the episode of a
	// series gone silent (silence.go)
	seen int64
	last *lastSample
	// restored: its route is the one its snapshot named; the labels that
	// choose it come with its next sample (lookup). rerouted: dropped from
	// memory because the route that matches it now has another shape.
	// moved: removed from memory to be added again under another key
	// (takeOver), not dropped; idle: dropped for its silence
	// (forgetIdle), not for max_series
	restored, rerouted, moved, idle bool
	// ignoredBy names the rule that ignores it now, when rerouted for it
	// (ignores)
	ignoredBy string
	// legacy is the key its snapshot had before takeOver moved it, deleted
	// once the snapshot under its key is written
	legacy string
	// fingerprintEpisode: restored from a snapshot of the first format
	// (version 1, no last sample) with an episode open, which that build
	// opened naming the sample's fingerprint and deriving its id from it;
	// the episode keeps both to its end (track)
	fingerprintEpisode bool
	// soon: its episode opened or closed, and its snapshot is written at
	// the next tick once the anomaly is stored (snapshotTransitions)
	soon bool
	// acks release the acks of the samples that opened or closed its
	// episode (stage.HoldAck), held until a snapshot holding the
	// transition is stored: acked before, a crash restored the snapshot
	// from before it, and the sample was not redelivered
	acks []func()
}

// Service is the detector service: a stage.Processor and stage.Ticker, run
// by the stage New opens (with snapshots on, as a stage.Checkpointer too).
// Process is safe for concurrent use, but samples of one series must come
// in stream order (one worker).
type Service struct {
	cfg      Config
	log      zerolog.Logger
	now      func() time.Time
	pipeline *pipeline.Pipeline
	// loggedDuplicate: a group's duplicate samples were told once in the
	// log (they are counted in group_samples_duplicate_total).
	loggedDuplicate atomic.Bool

	snap         asyncPublisher // writes snapshots; nil when they are disabled
	kv           jetstream.KeyValue
	consumerOpts []bus.ConsumerOption
	stage        *stage.Stage    // set by New
	runner       *stage.Runner   // the runner driving the service (New's, or a test's)
	done         <-chan struct{} // Run's context: closed once the service stops
	outbox       stage.HeldOutputs
	outboxEmpty  bool // the bucket holds an empty outbox

	// parts are the metric partitions the instance owns (nil: no check);
	// strayLog, futureLog and evictLog limit the warnings about samples of
	// other partitions, samples stamped ahead of the clock, and series and
	// assets evicted for max_series and max_assets
	parts                                        atomic.Pointer[partitions]
	strayLog, futureLog, evictLog, assetEvictLog logLimiter
	// readParts reads the partitions again (refreshPartitions), after a
	// stray (strayed), at most every partitionsReadEvery (partsRead)
	readParts func(context.Context) (*partitions, error)
	strayed   atomic.Bool
	partsRead time.Time

	// series and assets are bounded by MaxSeries and MaxAssets, the least
	// recently seen evicted first (marked, counted).
	mu     sync.Mutex
	series *simplelru.LRU[string, *series]
	dirty  []*series
	// open holds the series with an open episode, ended those evicted with
	// one: Tick closes the silent ones and the evicted (silence.go)
	open  map[*series]struct{}
	ended []*series
	// endedAssets are the assets evicted in an alarm, ended at the next
	// tick; stale the snapshots of evicted series and assets whose close
	// is stored, to delete; watermark the latest sample time (unix ns) of
	// any series (silence.go)
	endedAssets []*asset
	stale       []staleKey
	watermark   int64
	// orphans are the open episodes of snapshots Restore did not load,
	// closed at the next tick (silence.go): orphanSeries of series,
	// orphanAssets of group assets, each bounded as in memory
	orphans                    []*orphan
	orphanSeries, orphanAssets int
	orphansDropped             int
	// soon are the series whose episode opened or closed since the last
	// tick (series.soon); transitions is closed once the batch of their
	// snapshots in flight is settled (nil: none in flight)
	soon        []*series
	transitions chan struct{}

	assets      *simplelru.LRU[string, *asset] // pipeline group assets by key
	dirtyAssets []*asset
	groupBuf    []pipeline.GroupChannel
	// rowsHold is the hold of the assets' samples since the last snapshot
	// of the assets began (nil: none took one since)
	rowsHold *rowsHold

	m metrics
}

type metrics struct {
	samples, anomalies, evicted           prometheus.Counter
	invalid                               prometheus.CounterFunc
	ignored                               *prometheus.CounterVec
	snapshotted, snapshotErrors, restored prometheus.Counter
	series, seriesLimit                   prometheus.GaugeFunc

	rows, rowsIncomplete, groupLate, groupAnomalies prometheus.Counter
	groupDuplicates                                 prometheus.Counter
	assetsEvicted, assetsRestored                   prometheus.Counter
	assets, assetsLimit                             prometheus.GaugeFunc
}

// newService builds the processing core without touching the network.
func newService(cfg Config, log zerolog.Logger, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg.WithDefaults(), log: log, now: time.Now, open: map[*series]struct{}{}}
	var err error
	if s.series, err = simplelru.NewLRU(s.cfg.MaxSeries, func(_ string, old *series) {
		if old.moved {
			return // taken over under another key (takeOver)
		}
		old.evicted = true
		// Its state is gone from memory and will not be saved: a
		// redelivery would find a new detector, warming up. Its
		// samples are acked as those of any evicted series.
		releaseAcks(old.acks)
		old.acks = nil
		if !old.rerouted && !old.idle { // replaced by lookup, or silent: not dropped for max_series
			s.m.evicted.Inc()
			s.warnEvicted(&s.evictLog, "series", "detector.max_series", s.cfg.MaxSeries)
		}
		s.evicting(old)
	}); err != nil {
		return nil, err
	}
	if s.assets, err = simplelru.NewLRU(s.cfg.MaxAssets, func(_ string, old *asset) {
		old.evicted = true
		// Its rows are gone from memory and will not be saved, as an
		// evicted series' state: its samples need not come again.
		releaseAcks(dropHolds(nil, old.holds))
		old.holds = nil
		if !old.idle { // silent: not dropped for max_assets
			s.m.assetsEvicted.Inc()
			s.warnEvicted(&s.assetEvictLog, "group assets", "detector.max_assets", s.cfg.MaxAssets)
		}
		if old.det.Alarming() {
			s.endedAssets = append(s.endedAssets, old)
		}
	}); err != nil {
		return nil, err
	}
	for _, o := range opts {
		o(s)
	}
	if s.pipeline == nil {
		if s.cfg.Pipeline == "" {
			s.pipeline = pipeline.Default()
		} else {
			p, err := pipeline.Load(s.cfg.Pipeline)
			if err != nil {
				return nil, err
			}
			s.pipeline = p
		}
	}
	copts := func(name, help string) prometheus.CounterOpts {
		return prometheus.CounterOpts{Namespace: "aiops", Subsystem: "detector", Name: name, Help: help}
	}
	counter := func(name, help string) prometheus.Counter { return prometheus.NewCounter(copts(name, help)) }
	s.m = metrics{
		samples:        counter("samples_total", "Metric samples scored."),
		anomalies:      counter("anomalies_total", "Anomaly events published."),
		evicted:        counter("series_evicted_total", "Series dropped from memory because max_series was reached."),
		snapshotted:    counter("snapshot_series_total", "Series states written to the key-value bucket."),
		snapshotErrors: counter("snapshot_errors_total", "Series states whose write failed (retried at the next snapshot)."),
		restored:       counter("series_restored_total", "Series states restored at start."),
		rows:           counter("group_rows_total", "Rows of pipeline group assets scored."),
		rowsIncomplete: counter("group_rows_incomplete_total", "Rows scored with missing channels (a later sample or the group's wait closed them)."),
		groupLate:      counter("group_samples_late_total", "Samples older than their asset's open or last row, left out of the group."),
		groupDuplicates: counter("group_samples_duplicate_total",
			"Samples for a channel its row already has (label sets the group's by does not tell apart), left out of the group."),
		groupAnomalies: counter("group_anomalies_total", "Group anomaly events published."),
		assetsEvicted:  counter("group_assets_evicted_total", "Group assets dropped from memory because max_assets was reached."),
		assetsRestored: counter("group_assets_restored_total", "Group asset states restored at start."),
	}
	// The runner decodes the samples and dead-letters the bad ones, those
	// it cannot decode and those Process refuses.
	s.m.invalid = prometheus.NewCounterFunc(copts("samples_invalid_total", "Samples dead-lettered as bad data."), func() float64 {
		if s.runner == nil {
			return 0
		}
		return float64(s.runner.Stats().Invalid)
	})
	s.m.ignored = prometheus.NewCounterVec(copts("samples_ignored_total",
		"Samples acked but not scored, by reason: invalid_value (NaN, ±Inf, over 1e100, a negative counter), out_of_order, duplicate (a timestamp the series saw), future (stamped more than max_event_future ahead of the service's clock), other_partition (published straight to a partition subject not its service's), alert_state (Prometheus's ALERTS and ALERTS_FOR_STATE), rule (a pipeline rule with ignore: true)."), []string{"reason"})
	s.m.series = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "aiops", Subsystem: "detector", Name: "series", Help: "Series held in memory."},
		func() float64 { return float64(s.Series()) })
	s.m.assets = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "aiops", Subsystem: "detector", Name: "group_assets", Help: "Pipeline group assets held in memory."},
		func() float64 { return float64(s.Assets()) })
	// The limits beside the counts: a series count at its limit means
	// series are evicted and start their warm-up again.
	s.m.seriesLimit = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "aiops", Subsystem: "detector", Name: "series_limit",
		Help: "Series held in memory at most (detector.max_series); beyond it the least recently seen is evicted."},
		func() float64 { return float64(s.cfg.MaxSeries) })
	s.m.assetsLimit = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "aiops", Subsystem: "detector", Name: "group_assets_limit",
		Help: "Pipeline group assets held in memory at most (detector.max_assets); beyond it the least recently seen is evicted."},
		func() float64 { return float64(s.cfg.MaxAssets) })
	return s, nil
}

// stageConfig is how the runner drives the service: one worker, so that the
// samples of a series are scored in stream order; rows closed on their wait
// every second; snapshots every Snapshot.Interval.
func (s *Service) stageConfig() stage.Config {
	return stage.Config{Name: "detector", Workers: 1, MaxKept: maxKept, TickEvery: time.Second,
		CheckpointEvery: s.cfg.Snapshot.Interval, CheckpointTimeout: s.cfg.Snapshot.ShutdownTimeout,
		HoldAcks: !s.cfg.Snapshot.Disabled,
		// A series or asset stays out of snapshots while its anomaly is
		// not stored (publishWaits), a tick's too: a snapshot cut only at
		// shutdown_timeout on a stalled bucket need not hold the ticks
		// (silent closes, rows closed on their wait) for as long.
		TicksDuringCheckpoint: true}
}

// New builds the service: it loads the pipeline, ensures the key-value
// bucket and opens the stage (its durable consumer and publisher). Run
// restores the state and consumes.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, opts ...Option) (*Service, error) {
	s, err := newService(cfg, log, opts...)
	if err != nil {
		return nil, err
	}
	var proc any = s
	if !s.cfg.Snapshot.Disabled {
		kvc := jetstream.KeyValueConfig{
			Bucket:      s.cfg.Snapshot.Bucket,
			Description: "aiops detector state per series, key <instance>.<fingerprint>",
			History:     1,
			TTL:         s.cfg.Snapshot.MaxAge,
			Replicas:    s.cfg.Snapshot.Replicas,
			Storage:     jetstream.FileStorage,
		}
		s.kv, err = bus.AskAgain(ctx, func() (jetstream.KeyValue, error) { return js.CreateOrUpdateKeyValue(ctx, kvc) })
		if err != nil {
			return nil, fmt.Errorf("detector: key-value bucket %s: %w", s.cfg.Snapshot.Bucket, err)
		}
		if s.snap, err = snapshotPublisher(js, s.cfg.Snapshot); err != nil {
			return nil, err
		}
		proc = snapshotting{s}
	}
	s.readParts = func(ctx context.Context) (*partitions, error) { return ownedPartitions(ctx, js, s.cfg.Consumer) }
	parts, err := s.readParts(ctx)
	if err != nil {
		return nil, err
	}
	s.parts.Store(parts)
	open := []stage.OpenOption{stage.WithConsumerOptions(s.consumerOpts...), stage.WithRunnerOptions(stage.WithClock(s.now))}
	s.stage, err = stage.Open(ctx, js, proc, s.stageConfig(), s.cfg.Consumer, log, open...)
	if err != nil {
		return nil, err
	}
	s.runner = s.stage.Runner
	return s, nil
}

// Run restores the snapshotted state, then consumes until ctx is cancelled,
// snapshotting every Snapshot.Interval and once more after the drain (the
// stage runner does all of it).
func (s *Service) Run(ctx context.Context) error {
	if s.stage == nil {
		return ErrNotRunning
	}
	s.done = ctx.Done()
	return s.stage.Run(ctx)
}

// Collector exposes the service's metrics and its stage's (runner and
// consumer).
func (s *Service) Collector() prometheus.Collector {
	cs := stage.Collectors{s.m.samples, s.m.anomalies, s.m.evicted, s.m.invalid, s.m.ignored, s.m.snapshotted, s.m.snapshotErrors, s.m.restored, s.m.series, s.m.seriesLimit,
		s.m.rows, s.m.rowsIncomplete, s.m.groupLate, s.m.groupDuplicates, s.m.groupAnomalies, s.m.assetsEvicted, s.m.assetsRestored, s.m.assets, s.m.assetsLimit}
	if s.stage != nil {
		cs = append(cs, s.stage.Collector())
	}
	return cs
}

// Series returns the number of series in memory.
func (s *Service) Series() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.series.Len()
}

// Observations returns the valid observations the detector of the series
// with fingerprint key has seen, and whether the series is in memory.
func (s *Service) Observations(key string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ser, ok := s.series.Peek(seriesKey(key)); ok {
		return ser.det.Observations(), true
	}
	return 0, false
}

// Process scores one metric sample, feeds it to the groups that take it,
// and emits its anomaly, if any, and the anomalies of the rows it closed.
// The runner acks the sample only once they are stored (at-least-once);
// when a publish fails it naks the sample and republishes the same
// anomalies, under the same ids, when the sample comes back, without
// calling Process again: the detector would take the redelivered sample
// (a timestamp it already saw) for a duplicate and publish nothing.
//
// Until an anomaly's publish is settled, a snapshot must not hold its
// series (or asset): after a crash the sample is redelivered, and a
// detector restored with it would take it for a duplicate and never
// publish. The outputs' Settled ends that wait. Conversely a sample that
// opens or closes an episode is acked only once a snapshot holding the
// transition is stored (stage.HoldAck, released by settleAcks): acked
// before, a crash restored the series from before it, and the episode
// was opened twice or closed twice. The samples group assets took since
// their last stored snapshot are kept coming again after a crash by one
// held sample a snapshot (rowsHold).
func (s *Service) Process(_ context.Context, e *event.Envelope, out stage.Emitter) error {
	if e.Kind != event.KindMetric {
		return errs.Permanent(fmt.Errorf("%w: kind %q (event %s)", ErrNotMetric, e.Kind, e.ID))
	}
	var body event.MetricBody
	if err := e.DecodeBody(&body); err != nil {
		return errs.Permanent(fmt.Errorf("detector: event %s: metric body: %w", e.ID, err))
	}
	if body.Value == nil {
		return errs.Permanent(fmt.Errorf("%w: event %s", ErrNoValue, e.ID))
	}
	s.m.samples.Inc()
	if alertState(body.Name) {
		s.m.ignored.WithLabelValues("alert_state").Inc()
		return nil
	}
	counter := body.Type == event.MetricCounter

	seen := s.now()
	if parts := s.parts.Load(); parts != nil && !parts.owns(e.Service) {
		s.stray(e, parts, seen)
		return nil
	}
	if ahead := e.Time.Sub(seen); ahead > s.cfg.MaxEventFuture {
		s.future(e, body.Name, ahead, seen)
		return nil
	}
	var (
		ser   *series
		res   detect.Result
		route string
		// what the episode's id is derived from (lastSample.Series)
		episodeOf = seriesID(e.Fingerprint, body.Name, e.Labels)
		// the series the anomaly names (lastSample.Member)
		member  string
		cfg     detect.Config
		publish bool
		rows    []rowAnomaly
		gerr    error
	)
	s.locked(func() {
		if s.ignores(seriesKey(episodeOf), body.Name, e.Service, e.Labels) {
			// not scored, and not taken by groups either: the operator
			// said these series are no signal (the writer stores them)
			s.m.ignored.WithLabelValues("rule").Inc()
			return
		}
		if !scorable(*body.Value, counter) {
			// Checked before the lookup: a sample no detector can score
			// creates no series, so a flood of them under new fingerprints
			// cannot evict the series that are scored.
			s.m.ignored.WithLabelValues("invalid_value").Inc()
		} else {
			key := seriesKey(episodeOf)
			if episodeOf != e.Fingerprint {
				s.takeOver(key, seriesKey(e.Fingerprint), body.Name)
			}
			ser = s.lookup(key, body.Name, e.Service, e.Labels, counter)
			if ser.last != nil { // an episode open before this sample
				episodeOf, member = ser.last.episodeSeries(), ser.last.member()
			} else if ser.fingerprintEpisode && ser.det.InEpisode() {
				episodeOf, member = e.Fingerprint, e.Fingerprint
			}
			res = ser.det.Observe(e.Time, *body.Value)
			route = ser.route
		}
		switch {
		case res.Flags&detect.FlagInvalid != 0:
			s.m.ignored.WithLabelValues("invalid_value").Inc()
		case res.Flags&detect.FlagOutOfOrder != 0:
			s.m.ignored.WithLabelValues("out_of_order").Inc()
		case res.Flags&detect.FlagDuplicate != 0:
			s.m.ignored.WithLabelValues("duplicate").Inc()
		}
		if ser != nil && !res.Flags.Ignored() {
			s.observed(e.Time, seen)
			s.track(ser, e, body.Name, res.Scored, seen)
			s.markSeriesDirty(ser)
		}
		// one event per episode transition (open, bounded-rate update,
		// close), not one per anomalous sample
		publish = res.Episode != detect.EpisodeNone
		if publish {
			cfg = ser.det.Profile().Config()
			ser.pending++ // until the anomaly's publish is settled
			if res.Episode != detect.EpisodeUpdate {
				s.snapshotSoon(ser)
				if s.snap != nil {
					ser.acks = append(ser.acks, stage.HoldAck(out))
				}
			}
		}
		rows, gerr = s.routeToGroups(e, &body, out, nil)
	})
	if gerr != nil {
		// the series' anomaly still goes out; the group's error is logged
		s.log.Error().Err(gerr).Str("event", e.ID).Msg("group row not scored")
	}

	if publish {
		if member == "" {
			member = anomalySeries(episodeOf)
		}
		a, err := s.anomaly(e, &body, route, episodeOf, member, cfg, &res)
		if err == nil {
			err = s.emitWaited(out, a, &ser.publishWaits, s.m.anomalies, staleKey{})
		} else {
			s.settledWait(&ser.publishWaits, err, nil, s.m.anomalies)
		}
		if err != nil { // not taken: the rows' waits end too
			for _, r := range rows {
				s.settledWait(&r.asset.publishWaits, err, nil, s.m.groupAnomalies)
			}
			return err
		}
	}
	s.emitRows(out, rows)
	return nil
}

// Tick closes the episodes of series gone silent or evicted, and the rows
// that have waited their group's wait for missing channels at now, scores
// them and emits their anomalies; the runner calls it every second and
// keeps those whose publish failed for the next tick.
func (s *Service) Tick(ctx context.Context, now time.Time, out stage.Emitter) error {
	s.dropStale(ctx)
	s.snapshotTransitions(ctx)
	s.refreshPartitions(ctx, now)
	var closes []seriesAnomaly
	s.locked(func() {
		closes = s.silentCloses(now)
		s.forgetIdle(now)
	})
	s.emitSeries(out, closes)
	s.closeOrphans(out, now)
	if len(s.pipeline.Groups) == 0 {
		return nil
	}
	var rows []rowAnomaly
	s.locked(func() {
		waiting := s.endedAssets[:0]
		for _, a := range s.endedAssets {
			if !a.mayClose(a.seen, now, a.silence()) {
				waiting = append(waiting, a) // an event of its alarm is not stored yet
				continue
			}
			rows = s.endAlarm(rows, a, -1)
		}
		s.endedAssets = waiting
		for _, a := range s.assets.Values() {
			r, ok := a.expire(now)
			if !ok {
				if !a.open && a.det.Alarming() && a.mayClose(a.seen, now, a.silence()) && s.silentFor(a.lastClosed, a.seen, now, a.silence()) {
					rows = s.endAlarm(rows, a, now.Sub(a.seen))
				}
				continue
			}
			s.markAssetDirty(a)
			e, err := s.scoreRow(a, r)
			if err != nil {
				s.log.Error().Err(err).Str("group", a.group.Name).Str("asset", a.key).Msg("group anomaly dropped")
				continue
			}
			if e != nil {
				rows = append(rows, rowAnomaly{event: e, asset: a})
			}
		}
		s.forgetIdleAssets(now)
	})
	s.emitRows(out, rows)
	return nil
}

// locked runs f holding s.mu. The stage runner recovers a panic in
// Process or Tick as that input's or tick's failure and goes on: a lock
// left held would stop the next sample for ever.
func (s *Service) locked(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// FlushRows closes the rows that have waited their group's wait at the
// service's clock and publishes their anomalies, as the runner's tick does
// every second (tests).
func (s *Service) FlushRows(ctx context.Context) error {
	if s.runner == nil {
		return ErrNotRunning
	}
	return s.runner.Tick(ctx, s.now())
}

// evictLogEvery bounds the log lines about evictions for max_series and
// max_assets.
const evictLogEvery = time.Minute

// warnEvicted tells, at most once every evictLogEvery, that what (series
// or group assets) are evicted because more are live than limit, the
// setting key: counted only, an instance short of memory for its series
// detected nothing, every series evicted before its warm-up ended, and
// nothing said so. s.mu is held.
func (s *Service) warnEvicted(l *logLimiter, what, key string, limit int) {
	n := l.hit(s.now(), evictLogEvery)
	if n == 0 {
		return
	}
	s.log.Warn().Int("limit", limit).Str("setting", key).Int64("evicted", n).
		Msgf("%s evicted: more are live than %s (%d); one that sends again starts from nothing and scores nothing until its warm-up is over: raise %s, or scale out by partition (services/detector/README.md)",
			what, key, limit, key)
}

// futureLogEvery bounds the log lines about samples stamped ahead.
const futureLogEvery = time.Minute

// future counts, and at most once every futureLogEvery logs, a sample
// stamped more than MaxEventFuture ahead of the service's clock, left
// unscored: scored, its time would become its series' (and its group
// asset's) event time, and every real sample after it would be out of
// order, unscored, until the clock caught up with it. The line names the
// sample, not its labels or value.
func (s *Service) future(e *event.Envelope, metric string, ahead time.Duration, now time.Time) {
	s.m.ignored.WithLabelValues("future").Inc()
	n := s.futureLog.hit(now, futureLogEvery)
	if n == 0 {
		return
	}
	s.log.Warn().Str("event", e.ID).Str("service", e.Service).Str("metric", clipName(metric, maxReasonName)).
		Time("sample_time", e.Time).Stringer("ahead", ahead.Round(time.Second)).Stringer("max_event_future", s.cfg.MaxEventFuture).Int64("samples", n).
		Msg("samples stamped ahead of the detector's clock, not scored (samples_ignored_total{reason=\"future\"}; the writer stores them): check the producer's clock, or raise detector.max_event_future")
}

// scorable tells whether a detector can score value v: finite, within
// detect.MaxAbsValue, and not negative for a counter. A counter never goes below
// zero (Prometheus, OpenTelemetry's monotonic sums): taking a negative
// value for a reset made a negative rate, one anomaly, and the next sample
// a rise of the whole range from it, another.
func scorable(v float64, counter bool) bool {
	return math.Abs(v) <= detect.MaxAbsValue && !(counter && v < 0)
}

// seriesID is the identity of the series of a sample: its fingerprint, and
// its metric name unless the labels carry it as __name__ (docs/events.md
// asks producers to). Without it two metrics of one label set have one
// fingerprint, and one detector scored each against the other's values.
// The key in memory and in the bucket is its bus.KeyToken (seriesKey);
// episode ids are derived from it.
func seriesID(fingerprint, metric string, labels map[string]string) string {
	if labels["__name__"] == metric {
		return fingerprint
	}
	return fingerprint + seriesSep + metric
}

// seriesSep joins a seriesID's fingerprint and metric name: a byte no
// fingerprint holds (printable UTF-8), nor any text a snapshot's JSON
// keeps (decodeHeader).
const seriesSep = "\xff"

// anomalySeries is the series an anomaly names (body.series: the
// correlator's member), of the series whose episode's id is derived from
// id (its seriesID when the episode opened): its fingerprint, or, when the
// labels lack __name__ (id holds the metric name too), FNV-1a 64 of the
// fingerprint and the metric name, in 16 hex digits as aiops prints
// fingerprints. Named by the fingerprint alone, two metrics of one label
// set were one member of an incident. A series with __name__ keeps its
// fingerprint; an episode open at the upgrade keeps naming what its open
// named (lastSample.member), so the members of incidents from before stay
// what they were.
func anomalySeries(id string) string {
	if !strings.Contains(id, seriesSep) {
		return id
	}
	h := fnv.New64a()
	h.Write([]byte(id))
	return fmt.Sprintf("%016x", h.Sum64())
}

// takeOver moves the series restored under legacy, the key of a sample's
// fingerprint alone, to key, that of its seriesID, when it is the series of
// metric: a snapshot written before a series' identity held the metric name
// (labels without __name__) keeps its state, and its open episode goes on
// under the id it opened with (lastSample.Series), instead of a new series
// warming up beside an orphan that closes that episode under another id.
// The snapshot under legacy is deleted once the series' own is written
// (Snapshot). s.mu is held.
func (s *Service) takeOver(key, legacy, metric string) {
	if s.series.Contains(key) {
		return
	}
	old, ok := s.series.Peek(legacy)
	if !ok || !old.restored || old.last != nil && old.last.Metric != metric {
		return
	}
	old.moved = true
	s.series.Remove(legacy)
	old.moved = false
	old.key, old.legacy = key, legacy
	s.series.Add(key, old)
	s.markSeriesDirty(old)
}

// ignores tells whether the pipeline's rule for the series of a sample
// leaves it unscored (ignore: true). A series in memory was routed at its
// first sample by the same pipeline, which does not change while running:
// only a new or restored series is matched again. A restored one the
// pipeline ignores now (its snapshot was written under a route that
// scored it) is dropped, as lookup drops one whose new route has another
// shape: the eviction closes the episode its snapshot held open (Tick),
// which no sample would end. s.mu is held.
func (s *Service) ignores(key, metric, service string, labels map[string]string) bool {
	ser, ok := s.series.Peek(key)
	if ok && !ser.restored {
		return false
	}
	route := s.pipeline.Select(metric, service, labels)
	if !route.Ignore {
		return false
	}
	if ok {
		ser.rerouted, ser.ignoredBy = true, route.Name
		s.series.Remove(key)
	}
	return true
}

// lookup returns the series of key, creating it (and evicting the least
// recently seen series beyond MaxSeries) if needed. s.mu is held.
func (s *Service) lookup(key, metric, service string, labels map[string]string, counter bool) *series {
	if ser, ok := s.series.Get(key); ok {
		if !ser.restored {
			return ser
		}
		// Restored: the route its snapshot named chose it under the
		// pipeline of its creation. The pipeline may have changed since (a
		// rule added or edited before it); the labels are at hand now, so
		// the series takes the route the documented first match gives it.
		ser.restored = false
		route := s.pipeline.Select(metric, service, labels)
		if route.Name == ser.route || s.reroute(ser, route) {
			return ser
		}
		// Another shape: the series starts again under its new route; the
		// eviction closes the episode the old detector had open (Tick).
		ser.rerouted = true
		s.series.Remove(key)
	}
	route := s.pipeline.Select(metric, service, labels)
	ser := &series{key: key, route: route.Name, counter: counter, det: route.Profile(counter).NewDetector()}
	s.series.Add(key, ser)
	return ser
}

// reroute moves ser to route, keeping its learnt state, as a restore does
// across a change of thresholds; false when the route's detectors have
// another shape (window, buckets, period, ...), which cannot take it.
// s.mu is held.
func (s *Service) reroute(ser *series, route pipeline.Route) bool {
	state, err := ser.det.MarshalBinary()
	if err != nil {
		return false
	}
	det := route.Profile(ser.counter).NewDetector()
	if det.UnmarshalBinary(state) != nil {
		return false
	}
	ser.det, ser.route = det, route.Name
	s.markSeriesDirty(ser)
	return true
}

// anomaly builds the anomaly event for sample e, of the episode whose id
// is derived from episodeOf, naming series member. Its id is derived from
// the sample's id, so the same sample scored again (after a restore, by
// another instance) gives the same message and the stream's duplicate
// window keeps one.
func (s *Service) anomaly(e *event.Envelope, body *event.MetricBody, route, episodeOf, member string, cfg detect.Config, r *detect.Result) (*event.Envelope, error) {
	value, score := r.Scored, r.Score
	ep := r.EpisodeInfo
	peak, peakValue := ep.Peak, ep.PeakValue
	det := r.Detector
	if r.Episode == detect.EpisodeClose { // the series is calm again: name what the episode was
		det = ep.Detector
	}
	ab := event.AnomalyBody{
		Series:    member,
		Metric:    clipName(body.Name, event.MaxLabelBytes),
		Value:     &value,
		Expected:  r.Expected,
		Lower:     r.Lower,
		Upper:     r.Upper,
		Score:     &score,
		Detector:  det.String(),
		Window:    window(cfg, det),
		Reason:    reason(body, route, cfg, r),
		Episode:   r.Episode.String(),
		EpisodeID: event.DerivedID(ep.Start, "episode", episodeOf),
		Start:     ep.Start,
		End:       ep.End,
		Peak:      &peak,
		PeakTime:  ep.PeakTime,
		PeakValue: &peakValue,
	}
	a, err := event.New(event.KindAnomaly, e.Service, e.Time, ab)
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("detector: anomaly for event %s: %w", e.ID, err))
	}
	a.ID = event.DerivedID(e.Time, "anomaly", e.ID)
	a.Source = Source
	a.Labels, a.Resource = e.Labels, e.Resource
	a.Links = []string{e.ID}
	a.Severity = event.SeverityWarning
	if peak >= 0.9 {
		a.Severity = event.SeverityError
	}
	a.Fingerprint = "" // recomputed over the series' labels
	a.ObservedTime = s.now()
	a.Normalize(a.ObservedTime)
	return a, nil
}

// window says over which span of the series the winning detector judged.
func window(cfg detect.Config, k detect.Kind) string {
	switch k {
	case detect.KindRobustZ:
		return "last " + strconv.Itoa(cfg.Window) + " samples (rolling median and MAD)"
	case detect.KindEWMA:
		return fmt.Sprintf("EWMA, about %d samples of memory (alpha %g)", int(math.Round(1/cfg.Alpha)), cfg.Alpha)
	case detect.KindLevelShift, detect.KindVariance:
		return fmt.Sprintf("CUSUM since its last restart (drift %g sigma, limit %g sigma)", cfg.CUSUM.Drift, cfg.CUSUM.Limit)
	case detect.KindSeasonal:
		return fmt.Sprintf("seasonal profile of %v in %d buckets", cfg.Seasonal.Period, cfg.Seasonal.Buckets)
	case detect.KindForecast:
		return "trend extrapolated over " + cfg.Forecast.Horizon.String()
	case detect.KindTrend:
		return "least-squares slope of the last " + strconv.Itoa(cfg.Window) + " samples against the seasonal baseline's slope (CUSUM)"
	}
	return ""
}

// clipName cuts a metric name longer than max bytes (at a character's
// start) and marks the cut: the anomaly names the series twice (metric,
// reason), and a name near the body limit, accepted in a sample, would
// make an anomaly no consumer parses. The sample it links names it whole.
func clipName(name string, max int) string {
	if len(name) <= max {
		return name
	}
	return event.Prefix(name, max-len("…")) + "…"
}

// alertState tells whether name is one of the series Prometheus keeps of
// its own alerts (and remote-writes with the rest): ALERTS, 1 while an
// alert is pending or firing, and ALERTS_FOR_STATE, the Unix time it
// became active. They are the alerts, which come from Alertmanager, not
// measurements: scored, each alert that fired again (a new activation
// time) was an anomaly, and a second incident beside the alert's.
func alertState(name string) bool { return name == "ALERTS" || name == "ALERTS_FOR_STATE" }

// maxReasonName bounds the metric name in a reason, written for people.
const maxReasonName = 256

func reason(body *event.MetricBody, route string, cfg detect.Config, r *detect.Result) string {
	what := clipName(body.Name, maxReasonName)
	if cfg.Counter {
		what += " rate (/s)"
	}
	if r.Episode == detect.EpisodeClose {
		ep := r.EpisodeInfo
		if ep.NewLevel {
			// the slow baselines' band is the level it left, no range it is in
			return fmt.Sprintf("%s settled at a new level (%.4g), its normal one from now on: the episode from %s to %s peaked at score %.2f (%.4g by %s) (route %s)",
				what, r.Scored, ep.Start.Format(time.RFC3339), ep.End.Format(time.RFC3339), ep.Peak, ep.PeakValue, ep.Detector, route)
		}
		return fmt.Sprintf("%s back in its normal range (%.4g, expected %.4g, band %.4g to %.4g): the episode from %s to %s peaked at score %.2f (%.4g by %s) (route %s)",
			what, r.Scored, r.Expected, r.Lower, r.Upper, ep.Start.Format(time.RFC3339), ep.End.Format(time.RFC3339), ep.Peak, ep.PeakValue, ep.Detector, route)
	}
	if r.Detector == detect.KindForecast && r.Forecast.Valid {
		dir := "above"
		if cfg.Forecast.Falling {
			dir = "below"
		}
		return fmt.Sprintf("%s forecast to go %s %g in %v (route %s)", what, dir, cfg.Forecast.Threshold, r.Forecast.ETA.Round(time.Minute), route)
	}
	// 4 significant digits: a reason is read by people, and the full
	// float64 (94.55107589383272) is in the body's value and expected
	return fmt.Sprintf("%s = %.4g, expected %.4g (band %.4g to %.4g), %+.1f sigma by %s, score %.2f (route %s)",
		what, r.Scored, r.Expected, r.Lower, r.Upper, r.Sigmas, r.Detector, r.Score, route)
}
