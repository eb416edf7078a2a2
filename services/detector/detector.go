// Package detector is the anomaly detection service: it consumes metric
// samples (events.metric.*, including the log miner's template rates), keeps
// one streaming detect.Detector per series, chooses each series' detectors
// from the pipeline file, and publishes an anomaly event, with its
// explanation and a link to the sample, when a sample scores as anomalous.
//
// Series state is bounded (least recently seen series evicted beyond
// Config.MaxSeries, counted in aiops_detector_series_evicted_total) and
// snapshotted to a JetStream key-value bucket: the series changed since the
// last snapshot, every Snapshot.Interval and on shutdown, and restored on
// start, so a restart loses no warm-up. README.md explains scaling out.
//
// Pipeline groups (detect.groups) also gather the samples of several
// metrics of one asset into rows, score each row with the asset's
// detect.Group and publish one anomaly per anomalous row; assets are bounded
// (Config.MaxAssets) and snapshotted like series.
package detector

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/oklog/ulid/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

// Source is the envelope source of the anomalies this service publishes.
const Source = "detector"

// MaxPendingRetries bounds the anomalies kept for republishing after a
// failed publish (see Service.Handle).
const MaxPendingRetries = 10_000

// Sentinel errors of Handle; all are permanent (the sample is bad).
var (
	ErrNotMetric = errors.New("detector: event is not a metric sample")
	ErrNoValue   = errors.New("detector: metric sample has no value")
)

// Publisher publishes anomaly events; *bus.Publisher is one.
type Publisher interface {
	Publish(ctx context.Context, m bus.Message) (jetstream.PubAckFuture, error)
}

// Option adjusts New.
type Option func(*Service)

// WithPipeline routes series with p instead of the file named in Config.
func WithPipeline(p *pipeline.Pipeline) Option { return func(s *Service) { s.pipeline = p } }

// WithClock sets the clock used for observed times (default time.Now).
func WithClock(now func() time.Time) Option { return func(s *Service) { s.now = now } }

// WithPublisher replaces the publisher of anomalies (tests, benchmarks).
func WithPublisher(p Publisher) Option { return func(s *Service) { s.pub = p } }

// WithConsumerOptions passes options to the bus consumer.
func WithConsumerOptions(opts ...bus.ConsumerOption) Option {
	return func(s *Service) { s.consumerOpts = append(s.consumerOpts, opts...) }
}

// series is the state of one series, in the LRU list (head: most recent).
type series struct {
	key        string // envelope fingerprint
	route      string
	counter    bool
	dirty      bool // changed since its last snapshot
	evicted    bool
	pending    int32 // anomalies of this series whose publish is not settled
	det        *detect.Detector
	prev, next *series
}

// Service is the detector service. Handle is safe for concurrent use.
type Service struct {
	cfg      Config
	log      zerolog.Logger
	now      func() time.Time
	pipeline *pipeline.Pipeline
	pub      Publisher

	snap         asyncPublisher // writes snapshots; nil when they are disabled
	kv           jetstream.KeyValue
	consumer     *bus.Consumer
	consumerOpts []bus.ConsumerOption

	mu         sync.Mutex
	series     map[string]*series
	head, tail *series
	dirty      []*series
	retry      map[string][]bus.Message // sample id → anomalies whose publish failed

	assets      map[string]*asset // pipeline group assets by key
	assetLRU    *list.List        // of *asset, front: most recently seen
	dirtyAssets []*asset
	groupBuf    []pipeline.GroupChannel
	rowRetry    []bus.Message // anomalies of rows closed on their wait whose publish failed

	m metrics
}

type metrics struct {
	samples, anomalies, evicted, invalid  prometheus.Counter
	snapshotted, snapshotErrors, restored prometheus.Counter
	series                                prometheus.GaugeFunc

	rows, rowsIncomplete, groupLate, groupAnomalies prometheus.Counter
	assetsEvicted, assetsRestored                   prometheus.Counter
	assets                                          prometheus.GaugeFunc
}

// newService builds the processing core without touching the network.
func newService(cfg Config, log zerolog.Logger, opts ...Option) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg.WithDefaults(), log: log, now: time.Now, series: map[string]*series{}, retry: map[string][]bus.Message{},
		assets: map[string]*asset{}, assetLRU: list.New()}
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
	counter := func(name, help string) prometheus.Counter {
		return prometheus.NewCounter(prometheus.CounterOpts{Namespace: "aiops", Subsystem: "detector", Name: name, Help: help})
	}
	s.m = metrics{
		samples:        counter("samples_total", "Metric samples scored."),
		anomalies:      counter("anomalies_total", "Anomaly events published."),
		evicted:        counter("series_evicted_total", "Series dropped from memory because max_series was reached."),
		invalid:        counter("samples_invalid_total", "Samples dead-lettered as bad data."),
		snapshotted:    counter("snapshot_series_total", "Series states written to the key-value bucket."),
		snapshotErrors: counter("snapshot_errors_total", "Series states whose write failed (retried at the next snapshot)."),
		restored:       counter("series_restored_total", "Series states restored at start."),
		rows:           counter("group_rows_total", "Rows of pipeline group assets scored."),
		rowsIncomplete: counter("group_rows_incomplete_total", "Rows scored with missing channels (a later sample or the group's wait closed them)."),
		groupLate:      counter("group_samples_late_total", "Samples older than their asset's open or last row, left out of the group."),
		groupAnomalies: counter("group_anomalies_total", "Group anomaly events published."),
		assetsEvicted:  counter("group_assets_evicted_total", "Group assets dropped from memory because max_assets was reached."),
		assetsRestored: counter("group_assets_restored_total", "Group asset states restored at start."),
	}
	s.m.series = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "aiops", Subsystem: "detector", Name: "series", Help: "Series held in memory."},
		func() float64 { return float64(s.Series()) })
	s.m.assets = prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "aiops", Subsystem: "detector", Name: "group_assets", Help: "Pipeline group assets held in memory."},
		func() float64 { return float64(s.Assets()) })
	return s, nil
}

// New builds the service: it loads the pipeline, ensures the key-value
// bucket and the durable consumer. Run restores the state and consumes.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, opts ...Option) (*Service, error) {
	s, err := newService(cfg, log, opts...)
	if err != nil {
		return nil, err
	}
	if s.pub == nil {
		p, err := bus.NewPublisher(js)
		if err != nil {
			return nil, err
		}
		s.pub = p
	}
	if !s.cfg.Snapshot.Disabled {
		s.kv, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket:      s.cfg.Snapshot.Bucket,
			Description: "aiops detector state per series, key <instance>.<fingerprint>",
			History:     1,
			TTL:         s.cfg.Snapshot.MaxAge,
			Replicas:    s.cfg.Snapshot.Replicas,
			Storage:     jetstream.FileStorage,
		})
		if err != nil {
			return nil, fmt.Errorf("detector: key-value bucket %s: %w", s.cfg.Snapshot.Bucket, err)
		}
		s.snap = js
	}
	s.consumer, err = bus.NewConsumer(ctx, js, s.cfg.Consumer, log, s.consumerOpts...)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Collector exposes the service's metrics and its consumer's.
func (s *Service) Collector() prometheus.Collector {
	cs := collectors{s.m.samples, s.m.anomalies, s.m.evicted, s.m.invalid, s.m.snapshotted, s.m.snapshotErrors, s.m.restored, s.m.series,
		s.m.rows, s.m.rowsIncomplete, s.m.groupLate, s.m.groupAnomalies, s.m.assetsEvicted, s.m.assetsRestored, s.m.assets}
	if s.consumer != nil {
		cs = append(cs, s.consumer.Collector())
	}
	return cs
}

type collectors []prometheus.Collector

func (cs collectors) Describe(ch chan<- *prometheus.Desc) {
	for _, c := range cs {
		c.Describe(ch)
	}
}

func (cs collectors) Collect(ch chan<- prometheus.Metric) {
	for _, c := range cs {
		c.Collect(ch)
	}
}

// Series returns the number of series in memory.
func (s *Service) Series() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.series)
}

// Observations returns the valid observations the detector of the series
// with fingerprint key has seen, and whether the series is in memory.
func (s *Service) Observations(key string) (int, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if ser, ok := s.series[key]; ok {
		return ser.det.Observations(), true
	}
	return 0, false
}

// Run restores the snapshotted state, then consumes until ctx is cancelled,
// snapshotting every Snapshot.Interval and once more on the way out.
func (s *Service) Run(ctx context.Context) error {
	if s.snap != nil {
		if err := s.Restore(ctx); err != nil {
			return err
		}
	}
	consumed := make(chan error, 1)
	go func() { consumed <- s.consumer.Run(ctx, s.Handle) }()
	var tick, rowTick <-chan time.Time
	if s.snap != nil {
		t := time.NewTicker(s.cfg.Snapshot.Interval)
		defer t.Stop()
		tick = t.C
	}
	if len(s.pipeline.Groups) > 0 {
		t := time.NewTicker(time.Second)
		defer t.Stop()
		rowTick = t.C
	}
	var err error
loop:
	for {
		select {
		case err = <-consumed:
			break loop
		case <-rowTick:
			s.FlushRows(ctx)
		case <-tick:
			if n, err := s.Snapshot(ctx); err != nil {
				s.log.Warn().Err(err).Int("series", n).Msg("snapshot incomplete; the rest is retried at the next one")
			}
		}
	}
	if s.snap != nil {
		// The consumer has drained: every sample it acked is in the state.
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.Snapshot.ShutdownTimeout)
		defer cancel()
		n, serr := s.Snapshot(sctx)
		if serr != nil {
			s.log.Error().Err(serr).Int("series", n).Msg("final snapshot incomplete: those series warm up again after restart")
		} else {
			s.log.Info().Int("series", n).Msg("final snapshot written")
		}
	}
	return err
}

// Handle scores one metric sample and, if it is anomalous, publishes the
// anomaly and reports done only once the stream acked it (at-least-once).
// A sample that closes a row of a pipeline group (README.md) likewise waits
// for that row's anomaly.
//
// A redelivered sample carries the timestamp the detector already saw, so
// the detector ignores it (first value wins); an anomaly whose publish
// failed is therefore kept, up to MaxPendingRetries, and republished under
// the same id when its sample comes back, and the stream's duplicate window
// drops a second copy.
func (s *Service) Handle(ctx context.Context, d *bus.Delivery, done func(error)) {
	out, err := s.process(d.Data)
	if err != nil {
		if errs.IsPermanent(err) {
			s.m.invalid.Inc()
		}
		done(err)
		return
	}
	if len(out.msgs) == 0 {
		done(nil)
		return
	}
	futs := make([]jetstream.PubAckFuture, len(out.msgs))
	for i, m := range out.msgs {
		fut, err := s.pub.Publish(ctx, *m)
		if err != nil {
			s.keepForRetry(out.sample, out.msgs)
			out.settleAll(s)
			done(err)
			return
		}
		futs[i] = fut
	}
	go func() {
		var first error
		for i, fut := range futs {
			select {
			case <-fut.Ok():
				if out.assets[i] != nil {
					s.m.groupAnomalies.Inc()
				} else {
					s.m.anomalies.Inc()
				}
			case err := <-fut.Err():
				if first == nil {
					first = fmt.Errorf("detector: publish anomaly %s: %w", out.msgs[i].ID, err)
				}
			}
		}
		if first != nil {
			s.keepForRetry(out.sample, out.msgs)
		} else {
			s.forget(out.sample)
		}
		out.settleAll(s)
		done(first)
	}()
}

// outcome is what processing one sample asks Handle to publish.
type outcome struct {
	sample string         // the sample's id
	msgs   []*bus.Message // anomalies: the series' first if any, then the groups'
	ser    *series        // waits for msgs[0] (nil: no series anomaly, or a republish)
	assets []*asset       // assets[i] waits for msgs[i] (nil: the series', or a republish)
}

// settleAll ends the snapshot waits of everything in o.
func (o *outcome) settleAll(s *Service) {
	s.settled(o.ser)
	for _, a := range o.assets {
		s.settledAsset(a)
	}
}

// settled ends the wait of ser's snapshot for one anomaly publish (ser is
// nil for a republished anomaly, whose sample the state already holds).
func (s *Service) settled(ser *series) {
	if ser == nil {
		return
	}
	s.mu.Lock()
	ser.pending--
	s.mu.Unlock()
}

func (s *Service) keepForRetry(sample string, msgs []*bus.Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.retry[sample]; ok || len(s.retry) < MaxPendingRetries {
		kept := make([]bus.Message, len(msgs))
		for i, m := range msgs {
			kept[i] = *m
		}
		s.retry[sample] = kept
	}
}

func (s *Service) forget(sample string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.retry) > 0 {
		delete(s.retry, sample)
	}
}

// headerSample carries the id of the sample on an anomaly message, for the
// retry map (it is not part of the event).
const headerSample = "Aiops-Sample-Id"

// process decodes and scores one sample and feeds it to the groups that
// take it; it returns the anomalies to publish and what waits for them.
func (s *Service) process(data []byte) (outcome, error) {
	var out outcome
	e, err := event.Parse(data)
	if err != nil {
		return out, err
	}
	if e.Kind != event.KindMetric {
		return out, errs.Permanent(fmt.Errorf("%w: kind %q (event %s)", ErrNotMetric, e.Kind, e.ID))
	}
	var body event.MetricBody
	if err := e.DecodeBody(&body); err != nil {
		return out, errs.Permanent(fmt.Errorf("detector: event %s: metric body: %w", e.ID, err))
	}
	if body.Value == nil {
		return out, errs.Permanent(fmt.Errorf("%w: event %s", ErrNoValue, e.ID))
	}
	s.m.samples.Inc()
	counter := body.Type == event.MetricCounter
	out.sample = e.ID

	s.mu.Lock()
	if ms, ok := s.retry[e.ID]; ok {
		s.mu.Unlock()
		for i := range ms {
			out.msgs = append(out.msgs, &ms[i])
			out.assets = append(out.assets, nil)
		}
		return out, nil
	}
	ser := s.lookup(e.Fingerprint, body.Name, e.Service, e.Labels, counter)
	res := ser.det.Observe(e.Time, *body.Value)
	if !res.Flags.Ignored() && !ser.dirty {
		ser.dirty = true
		s.dirty = append(s.dirty, ser)
	}
	var cfg detect.Config
	if res.Anomaly {
		cfg = ser.det.Profile().Config()
		// Until the anomaly is acked, a snapshot must not hold this
		// sample: after a crash the sample is redelivered, and a detector
		// restored with it would take it for a duplicate and never publish.
		ser.pending++
	}
	route := ser.route
	groupMsgs, waiting, gerr := s.routeToGroups(e, &body, nil, nil)
	s.mu.Unlock()

	if res.Anomaly {
		m, err := s.anomaly(e, &body, route, cfg, &res)
		if err != nil {
			s.settled(ser)
			for _, a := range waiting {
				s.settledAsset(a)
			}
			return outcome{}, err
		}
		out.msgs, out.ser, out.assets = append(out.msgs, m), ser, append(out.assets, nil)
	}
	out.msgs = append(out.msgs, groupMsgs...)
	out.assets = append(out.assets, waiting...)
	if gerr != nil {
		// the series' anomaly still goes out; the group's error is logged
		s.log.Error().Err(gerr).Str("event", e.ID).Msg("group row not scored")
	}
	return out, nil
}

// anomalyID is the id of an anomaly at t derived from key (what it is the
// anomaly of): the same input, after a redelivery or a restore, gives the
// same id, which the stream's duplicate window drops.
func anomalyID(t time.Time, key string) string {
	sum := sha256.Sum256([]byte(key))
	return ulid.MustNew(ulid.Timestamp(t), bytes.NewReader(sum[:])).String()
}

// lookup returns the series of key, creating it (and evicting the least
// recently seen series beyond MaxSeries) if needed. s.mu is held.
func (s *Service) lookup(key, metric, service string, labels map[string]string, counter bool) *series {
	if ser, ok := s.series[key]; ok {
		s.moveToFront(ser)
		return ser
	}
	route := s.pipeline.Select(metric, service, labels)
	ser := &series{key: key, route: route.Name, counter: counter, det: route.Profile(counter).NewDetector()}
	s.insert(ser)
	return ser
}

func (s *Service) insert(ser *series) {
	for len(s.series) >= s.cfg.MaxSeries && s.tail != nil {
		old := s.tail
		s.unlink(old)
		delete(s.series, old.key)
		old.evicted = true
		s.m.evicted.Inc()
	}
	s.series[ser.key] = ser
	s.pushFront(ser)
}

func (s *Service) pushFront(ser *series) {
	ser.prev, ser.next = nil, s.head
	if s.head != nil {
		s.head.prev = ser
	}
	s.head = ser
	if s.tail == nil {
		s.tail = ser
	}
}

func (s *Service) unlink(ser *series) {
	if ser.prev != nil {
		ser.prev.next = ser.next
	} else {
		s.head = ser.next
	}
	if ser.next != nil {
		ser.next.prev = ser.prev
	} else {
		s.tail = ser.prev
	}
	ser.prev, ser.next = nil, nil
}

func (s *Service) moveToFront(ser *series) {
	if s.head == ser {
		return
	}
	s.unlink(ser)
	s.pushFront(ser)
}

// anomaly builds the anomaly event for sample e. Its id is derived from the
// sample's id, so a republish after a redelivery is the same message and
// the stream's duplicate window keeps one.
func (s *Service) anomaly(e *event.Envelope, body *event.MetricBody, route string, cfg detect.Config, r *detect.Result) (*bus.Message, error) {
	value, score := r.Scored, r.Score
	ab := event.AnomalyBody{
		Series:   e.Fingerprint,
		Metric:   body.Name,
		Value:    &value,
		Expected: r.Expected,
		Lower:    r.Lower,
		Upper:    r.Upper,
		Score:    &score,
		Detector: r.Detector.String(),
		Window:   window(cfg, r.Detector),
		Reason:   reason(body, route, cfg, r),
	}
	a, err := event.New(event.KindAnomaly, e.Service, e.Time, ab)
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("detector: anomaly for event %s: %w", e.ID, err))
	}
	a.ID = anomalyID(e.Time, "anomaly\xff"+e.ID)
	a.Source = Source
	a.Labels, a.Resource = e.Labels, e.Resource
	a.Links = []string{e.ID}
	a.Severity = event.SeverityWarning
	if score >= 0.9 {
		a.Severity = event.SeverityError
	}
	a.Fingerprint = "" // recomputed over the series' labels
	a.ObservedTime = s.now()
	a.Normalize(a.ObservedTime)
	data, err := a.MarshalJSON() // not json.Marshal: it would compact the whole envelope once more
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("detector: encode anomaly for event %s: %w", e.ID, err))
	}
	h := nats.Header{}
	h.Set(headerSample, e.ID)
	return &bus.Message{Subject: a.Subject(), ID: a.ID, Header: h, Data: data}, nil
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

func reason(body *event.MetricBody, route string, cfg detect.Config, r *detect.Result) string {
	what := body.Name
	if cfg.Counter {
		what += " rate (/s)"
	}
	if r.Detector == detect.KindForecast && r.Forecast.Valid {
		dir := "above"
		if cfg.Forecast.Falling {
			dir = "below"
		}
		return fmt.Sprintf("%s forecast to go %s %g in %v (route %s)", what, dir, cfg.Forecast.Threshold, r.Forecast.ETA.Round(time.Minute), route)
	}
	return fmt.Sprintf("%s = %g, expected %g (band %g to %g), %+.1f sigma by %s, score %.2f (route %s)",
		what, r.Scored, r.Expected, r.Lower, r.Upper, r.Sigmas, r.Detector, r.Score, route)
}
