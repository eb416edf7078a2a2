// Package logminer is the log template mining service: it consumes raw logs
// (events.log.<service>, filter events.log.*), mines their templates with pkg/logmine and
// publishes, as events on the same EVENTS stream:
//
//   - each log with its template (kind log, a new derived id, Links =
//     [raw id]) on events.log.<service>.templated;
//   - a template's birth and its merges (kind log_template) on
//     events.log_template.<service>;
//   - per template and service, the lines of each interval as metric
//     samples (log_template_count) on events.metric.<service>, for the
//     detector;
//   - bursts of error-level templates as anomalies on
//     events.anomaly.<service>.
//
// A raw log is acked only after everything it caused was acked by the
// stream. Ids of derived events are hashes of what they derive from, so a
// redelivered raw log produces the same ids and the duplicate window drops
// the repeats. The miner's state is saved to a JetStream object store
// periodically and on shutdown, and restored at start. README.md has the
// subjects, the burst rule and the numbers.
package logminer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
)

// Source is the envelope source of everything the logminer publishes.
const Source = "logminer"

// Option adjusts New.
type Option func(*Logminer)

// WithClock replaces time.Now for observed times and interval ends, so
// tests are deterministic.
func WithClock(now func() time.Time) Option { return func(l *Logminer) { l.now = now } }

// Logminer mines templates from a JetStream consumer of raw logs.
type Logminer struct {
	cfg      Config
	log      zerolog.Logger
	now      func() time.Time
	consumer *bus.Consumer
	pub      *bus.Publisher
	miner    *logmine.Miner
	formats  map[string]*compiledFormat
	counts   *counts
	state    jetstream.ObjectStore // nil when State.Disabled
	metrics  metrics

	// mineMu makes mining a line, moving the counts of merged templates
	// and counting the line one step, so a line is never counted under an
	// id another worker's line has just merged away. Decoding and encoding,
	// most of the work, run outside it on several workers.
	mineMu sync.Mutex

	// workers is the number of goroutines that process raw logs.
	workers int
	running atomic.Bool
	// work carries raw logs from handle to the workers, pending each
	// delivery's publish futures from a worker to the acker, which settles
	// deliveries in the order their publishes were sent. Both are made by
	// startPipeline, with room for MaxAckPending deliveries, the runner's
	// bound on un-done deliveries, so neither send ever blocks for long.
	work    chan rawWork
	pending chan pendingDelivery
	// unsent holds count samples a failed flush could not publish; the
	// next flush sends them first (their ids are deterministic, so a
	// sample that was stored after all is dropped as a duplicate).
	unsentMu sync.Mutex
	unsent   []bus.Message
	// retry holds template events whose publish failed or whose raw log
	// failed: a redelivered raw log does not announce its template again
	// (the miner knows it by then), so the next flush sends them, with
	// their derived ids.
	retryMu sync.Mutex
	retry   []bus.Message
}

type compiledFormat struct {
	*logmine.Format
	level int // index of the Level field, -1 if none
}

type pendingDelivery struct {
	futures []jetstream.PubAckFuture
	msgs    []bus.Message
	rawID   string
	done    func(error)
}

// rawWork is one delivery on its way from handle to a worker.
type rawWork struct {
	ctx  context.Context
	data []byte
	done func(error)
}

// scratch holds a worker's buffers, reused from line to line.
type scratch struct {
	result logmine.Result
	fields []string
	rawID  string // the raw log last counted by process
}

// New ensures the durable consumer and the state bucket, and restores the
// saved state.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, opts ...Option) (*Logminer, error) {
	cfg.Defaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mc := logmine.DefaultConfig()
	if cfg.MaxTemplates > 0 {
		mc.MaxTemplates = cfg.MaxTemplates
	}
	miner, err := logmine.New(mc)
	if err != nil {
		return nil, err
	}
	l := &Logminer{
		cfg:     cfg,
		log:     log,
		now:     time.Now,
		miner:   miner,
		formats: map[string]*compiledFormat{},
		counts:  newCounts(cfg),
		workers: min(runtime.GOMAXPROCS(0), 8),
	}
	for _, o := range opts {
		o(l)
	}
	for svc, spec := range cfg.Formats {
		f, err := logmine.CompileFormat(spec)
		if err != nil {
			return nil, err // Validate compiled it already
		}
		cf := &compiledFormat{Format: f, level: -1}
		for i, name := range f.Fields() {
			if strings.EqualFold(name, "level") {
				cf.level = i
			}
		}
		l.formats[svc] = cf
	}
	// Two publishes per delivery at most (the templated log and a template
	// event), plus room for a flush of counts: the publisher must never
	// block the handler below the consumer's own bound.
	l.pub, err = bus.NewPublisher(js, bus.WithMaxInFlight(2*cfg.Consumer.MaxAckPending+4096))
	if err != nil {
		return nil, err
	}
	if !cfg.State.Disabled {
		if l.state, err = openState(ctx, js, cfg.State); err != nil {
			return nil, err
		}
		if err := l.loadState(ctx); err != nil {
			return nil, err
		}
	}
	if l.consumer, err = bus.NewConsumer(ctx, js, cfg.Consumer, log); err != nil {
		return nil, err
	}
	return l, nil
}

// Run consumes until ctx is cancelled, closing a count interval at every
// multiple of Interval and saving the state every SaveEvery. On the way out
// it settles what is in flight and saves the state once more.
func (l *Logminer) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return bus.ErrAlreadyRunning
	}
	defer l.running.Store(false)
	stopPipeline := l.startPipeline()

	loops, stopLoops := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); l.flushLoop(loops) }()
	if l.state != nil {
		wg.Add(1)
		go func() { defer wg.Done(); l.saveLoop(loops) }()
	}

	runErr := l.consumer.Run(ctx, l.handle)
	stopLoops()
	wg.Wait()
	stopPipeline() // no handle call after the consumer's Run returned

	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := l.saveState(final); err != nil {
		runErr = errors.Join(runErr, err)
	}
	return runErr
}

// startPipeline starts the workers and the acker; the returned stop, to be
// called once handle is no longer called, lets them finish what was handed
// to them (so every delivery's done is called) and waits for them. A
// worker's publish fails once the consumer's drain has ended (its context
// is then cancelled), and every future ends by the publisher's ack timeout,
// so stop returns even when the server went away.
func (l *Logminer) startPipeline() (stop func()) {
	l.work = make(chan rawWork, l.cfg.Consumer.MaxAckPending)
	l.pending = make(chan pendingDelivery, l.cfg.Consumer.MaxAckPending)
	acked := make(chan struct{})
	go func() { defer close(acked); l.acker(l.pending) }()
	var workers sync.WaitGroup
	for range l.workers {
		workers.Add(1)
		go func() { defer workers.Done(); l.worker(l.work, l.pending) }()
	}
	return func() {
		close(l.work)
		workers.Wait()
		close(l.pending)
		<-acked
	}
}

// acker settles deliveries once their publishes were acked. Futures of one
// publisher resolve roughly in send order, so waiting in order costs little
// and needs one goroutine, not one per delivery.
func (l *Logminer) acker(pending <-chan pendingDelivery) {
	for p := range pending {
		var err error
		for _, f := range p.futures {
			select {
			case <-f.Ok():
			case e := <-f.Err():
				if err == nil {
					err = fmt.Errorf("logminer: publishing %s: %w", f.Msg().Subject, e)
				}
			}
		}
		if err != nil {
			l.metrics.publishFailures.Add(1)
			l.retryTemplateEvents(p.msgs)
			l.counts.recount(p.rawID)
		}
		p.done(err) // transient: the raw log is redelivered and mined again
	}
}

// handle hands one raw log to the workers; its done is called by a worker
// (bad input, failed publish) or by the acker (every output acked or one
// failed).
func (l *Logminer) handle(ctx context.Context, d *bus.Delivery, done func(error)) {
	l.work <- rawWork{ctx: ctx, data: d.Data, done: done}
}

// worker mines raw logs and publishes what they cause without waiting for
// the acks, which the acker collects.
func (l *Logminer) worker(work <-chan rawWork, pending chan<- pendingDelivery) {
	var s scratch
	for w := range work {
		l.publishOutputs(w, &s, pending)
	}
}

// publishOutputs processes one raw log and either settles it (bad input, a
// publish that could not be sent) or hands its futures to the acker. A
// panic settles it as a transient failure, as bus.Consumer does for a
// handler of its own goroutine: redelivered, dead-lettered after
// MaxDeliver, and the other deliveries go on.
func (l *Logminer) publishOutputs(w rawWork, s *scratch, pending chan<- pendingDelivery) {
	settled := false
	defer func() {
		if r := recover(); r != nil {
			l.log.Error().Interface("panic", r).Msg("processing a raw log panicked")
			if !settled {
				w.done(fmt.Errorf("logminer: processing panicked: %v", r))
			}
		}
	}()
	msgs, err := l.process(w.data, s)
	if err != nil {
		if errs.IsPermanent(err) {
			l.metrics.rejected.Add(1)
		}
		settled = true
		w.done(err)
		return
	}
	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	for _, m := range msgs {
		f, err := l.pub.Publish(w.ctx, m)
		if err != nil {
			// Those already sent are repeated on redelivery with the same
			// ids, and dropped by the duplicate window.
			l.metrics.publishFailures.Add(1)
			l.retryTemplateEvents(msgs)
			l.counts.recount(s.rawID)
			settled = true
			w.done(err)
			return
		}
		futures = append(futures, f)
	}
	settled = true
	pending <- pendingDelivery{futures: futures, msgs: msgs, rawID: s.rawID, done: w.done}
}

// templateSubjectPrefix starts the subjects of template events.
const templateSubjectPrefix = "events." + string(event.KindLogTemplate) + "."

// retryTemplateEvents keeps the template events among the outputs of a raw
// log that failed for the next flush (at most MaxSeries are kept; beyond,
// they are dropped and counted).
func (l *Logminer) retryTemplateEvents(msgs []bus.Message) {
	l.retryMu.Lock()
	defer l.retryMu.Unlock()
	for _, m := range msgs {
		if !strings.HasPrefix(m.Subject, templateSubjectPrefix) {
			continue
		}
		if len(l.retry) >= l.cfg.MaxSeries {
			l.metrics.templateEventsDropped.Add(1)
			continue
		}
		// The publisher may still own m's header; the flush clones it.
		l.retry = append(l.retry, bus.Message{Subject: m.Subject, ID: m.ID, Data: m.Data})
	}
}

// process turns one raw log into the messages to publish, with s's buffers.
// Its errors are permanent: the same bytes never become a valid log.
func (l *Logminer) process(data []byte, s *scratch) ([]bus.Message, error) {
	e, err := event.Parse(data)
	if err != nil {
		return nil, err
	}
	if e.Kind != event.KindLog {
		return nil, errs.Permanentf("logminer: event %s is of kind %q, want log (only raw logs belong on events.log.<service>)", e.ID, e.Kind)
	}
	var body event.LogBody
	if err := json.Unmarshal(e.Body, &body); err != nil {
		return nil, errs.Permanentf("logminer: event %s: body is not a log body: %v", e.ID, err)
	}
	if body.TemplateID != "" {
		return nil, errs.Permanentf("logminer: event %s already has template_id %q: templated logs belong on events.log.<service>%s, not on the raw subject", e.ID, body.TemplateID, TemplatedSuffix)
	}

	content, severity := body.Message, e.Severity
	if f := l.formats[e.Service]; f != nil {
		var ok bool
		if s.fields, ok = f.Parse(body.Message, s.fields); ok {
			content = s.fields[f.ContentIndex()]
			if severity == "" && f.level >= 0 {
				if sev, known := event.ParseSeverity(s.fields[f.level]); known {
					severity = sev
				}
			}
		} else {
			l.metrics.unmatchedFormat.Add(1)
		}
	}
	r := &s.result
	l.mine(content, r, e.Service, severity.Rank() >= event.SeverityError.Rank(), e.ID)
	s.rawID = e.ID
	l.metrics.lines.Add(1)
	id := r.ID.String()
	now := l.now().UTC()

	out := *e
	out.ID = derivedID(idTime(e.ID), "templated_log", e.ID)
	out.ObservedTime = now
	out.Source = Source
	out.Severity = severity
	out.Links = []string{e.ID}
	if len(e.Labels) < event.MaxLabels {
		// The template is part of the identity of a templated log: its
		// fingerprint says "this message of this service again".
		out.Labels = make(map[string]string, len(e.Labels)+1)
		for k, v := range e.Labels {
			out.Labels[k] = v
		}
		out.Labels["template_id"] = id
	}
	out.Fingerprint = event.Fingerprint(out.Kind, out.Service, out.Labels, out.Resource)
	body.TemplateID, body.Template, body.Params = id, r.Template, r.Params
	if out.Body, err = event.MarshalBody(body); err != nil {
		return nil, errs.Permanentf("logminer: event %s: encoding the body: %v", e.ID, err)
	}
	msgs := make([]bus.Message, 0, 2)
	data, err = out.MarshalJSON() // not json.Marshal: it would compact the whole envelope once more
	if err != nil {
		return nil, errs.Permanentf("logminer: event %s: encoding the templated log: %v", e.ID, err)
	}
	msgs = append(msgs, bus.Message{Subject: out.Subject() + TemplatedSuffix, ID: out.ID, Data: data})

	if (r.New || r.Changed) && !l.cfg.DisableTemplateEvents {
		m, err := l.templateEvent(e, r, content, now)
		if err != nil {
			return nil, err
		}
		msgs = append(msgs, m)
	}
	if r.Changed {
		l.metrics.merges.Add(uint64(len(r.Merges)))
	}
	if r.New {
		l.metrics.newTemplates.Add(1)
	}
	return msgs, nil
}

// mine matches one line into r and counts it under the id it got, as one
// step (see mineMu).
func (l *Logminer) mine(content string, r *logmine.Result, service string, isError bool, rawID string) {
	l.mineMu.Lock()
	defer l.mineMu.Unlock()
	l.miner.MatchInto(content, r)
	if r.Changed {
		for _, mg := range r.Merges {
			l.counts.merge(mg.From, mg.To)
		}
	}
	l.counts.add(service, r.ID, isError, rawID)
}

// templateEvent announces a new or generalised template.
func (l *Logminer) templateEvent(raw *event.Envelope, r *logmine.Result, content string, now time.Time) (bus.Message, error) {
	body := event.LogTemplateBody{TemplateID: r.ID.String(), Template: r.Template, Status: event.TemplateNew, Example: content}
	if r.Changed {
		body.Status = event.TemplateChanged
		body.PreviousID = r.PreviousID.String()
		for _, m := range r.Merges {
			body.MergedFrom = append(body.MergedFrom, m.From.String())
		}
	}
	body.Example = clip(body.Example, 4096)
	e := &event.Envelope{
		SchemaVersion: event.SchemaVersion,
		ID:            derivedID(idTime(raw.ID), "log_template", raw.ID),
		Kind:          event.KindLogTemplate,
		Time:          raw.Time,
		ObservedTime:  now,
		Source:        Source,
		Service:       raw.Service,
		Labels:        map[string]string{"template_id": body.TemplateID},
		Links:         []string{raw.ID},
	}
	e.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, nil)
	var err error
	if e.Body, err = event.MarshalBody(body); err != nil {
		return bus.Message{}, errs.Permanentf("logminer: encoding the template event: %v", err)
	}
	data, err := e.MarshalJSON()
	if err != nil {
		return bus.Message{}, errs.Permanentf("logminer: encoding the template event: %v", err)
	}
	return bus.Message{Subject: e.Subject(), ID: e.ID, Data: data}, nil
}

// flushLoop closes an interval at every multiple of Interval.
func (l *Logminer) flushLoop(ctx context.Context) {
	for {
		next := l.now().Truncate(l.cfg.Interval).Add(l.cfg.Interval)
		t := time.NewTimer(next.Sub(l.now()))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		if err := l.Flush(ctx, next); err != nil {
			l.log.Warn().Err(err).Time("interval_end", next).Msg("publishing template counts failed; retried at the next interval")
		}
	}
}

// saveLoop saves the state every SaveEvery.
func (l *Logminer) saveLoop(ctx context.Context) {
	t := time.NewTicker(l.cfg.State.SaveEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if err := l.saveState(ctx); err != nil && ctx.Err() == nil {
			l.log.Warn().Err(err).Msg("saving state failed; retried later")
		}
	}
}

// Flush closes the count interval that ends at end: it publishes one
// log_template_count sample per counted series and an anomaly per error
// burst, and the template events of raw logs that failed, and waits for
// their acks. Samples that could not be published are
// kept (bounded by MaxSeries) and sent first by the next Flush.
func (l *Logminer) Flush(ctx context.Context, end time.Time) error {
	samples, bursts := l.counts.flush()
	now := l.now().UTC()
	end = end.UTC()
	msgs := make([]bus.Message, 0, len(samples)+len(bursts))
	for _, s := range samples {
		m, err := l.sampleMessage(s, end, now)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
	}
	for _, b := range bursts {
		m, err := l.burstMessage(b, end, now)
		if err != nil {
			return err
		}
		msgs = append(msgs, m)
		l.metrics.bursts.Add(1)
		l.log.Warn().Str("service", b.Service).Str("template_id", b.ID.String()).Uint64("errors", b.Errors).Float64("expected", b.Expected).Msg("error burst")
	}
	l.retryMu.Lock()
	retry := l.retry
	l.retry = nil
	l.retryMu.Unlock()
	l.unsentMu.Lock()
	defer l.unsentMu.Unlock()
	msgs = append(append(l.unsent, retry...), msgs...)
	l.unsent = nil
	const chunk = 1000
	for start := 0; start < len(msgs); start += chunk {
		part := msgs[start:min(start+chunk, len(msgs))]
		if _, err := l.pub.PublishAll(ctx, cloneMessages(part)); err != nil {
			rest := msgs[start:]
			if len(rest) > l.cfg.MaxSeries {
				l.metrics.samplesDropped.Add(uint64(len(rest) - l.cfg.MaxSeries))
				rest = rest[len(rest)-l.cfg.MaxSeries:]
			}
			l.unsent = rest
			return err
		}
		l.metrics.samples.Add(uint64(len(part)))
	}
	return nil
}

// cloneMessages gives the publisher headers of its own: it writes the
// message id into them, and a kept message may be published again.
func cloneMessages(ms []bus.Message) []bus.Message {
	out := make([]bus.Message, len(ms))
	for i, m := range ms {
		out[i] = bus.Message{Subject: m.Subject, ID: m.ID, Data: m.Data}
	}
	return out
}

func (l *Logminer) sampleMessage(s sample, end, now time.Time) (bus.Message, error) {
	v := float64(s.Count)
	id := s.ID.String()
	e := &event.Envelope{
		SchemaVersion: event.SchemaVersion,
		ID:            derivedID(end, MetricTemplateCount, s.Service, id),
		Kind:          event.KindMetric,
		Time:          end,
		ObservedTime:  now,
		Source:        Source,
		Service:       s.Service,
		Labels:        map[string]string{"__name__": MetricTemplateCount, "template_id": id, "service": s.Service},
	}
	e.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, nil)
	return l.message(e, event.MetricBody{Name: MetricTemplateCount, Value: &v, Type: event.MetricGauge})
}

func (l *Logminer) burstMessage(b burst, end, now time.Time) (bus.Message, error) {
	id := b.ID.String()
	value := float64(b.Errors)
	upper := l.cfg.Burst.Factor * b.Expected
	// Score: how far above the allowed level, 0 at the threshold and
	// nearing 1 as the count dwarfs it (1 for a template with no history).
	score := 1.0
	if b.Expected > 0 {
		score = 1 - upper/value
	}
	template := id
	if t, ok := l.miner.Lookup(b.ID); ok {
		template = t.Template
	}
	labels := map[string]string{"__name__": MetricTemplateErrorCount, "template_id": id, "service": b.Service}
	e := &event.Envelope{
		SchemaVersion: event.SchemaVersion,
		ID:            derivedID(end, BurstDetector, b.Service, id),
		Kind:          event.KindAnomaly,
		Time:          end,
		ObservedTime:  now,
		Source:        Source,
		Service:       b.Service,
		Labels:        labels,
		Severity:      event.SeverityError,
		Links:         b.Examples,
	}
	e.Fingerprint = event.Fingerprint(e.Kind, e.Service, labels, nil)
	return l.message(e, event.AnomalyBody{
		Series:   event.Fingerprint(event.KindMetric, b.Service, labels, nil),
		Metric:   MetricTemplateErrorCount,
		Value:    &value,
		Expected: b.Expected,
		Lower:    0,
		Upper:    upper,
		Score:    &score,
		Detector: BurstDetector,
		Window:   l.cfg.Interval.String(),
		Reason: fmt.Sprintf("%d error lines of template %q in %s, over %g times the moving average %.2f (and at least %d)",
			b.Errors, clip(template, 200), l.cfg.Interval, l.cfg.Burst.Factor, b.Expected, l.cfg.Burst.MinCount),
	})
}

func (l *Logminer) message(e *event.Envelope, body any) (bus.Message, error) {
	var err error
	if e.Body, err = event.MarshalBody(body); err != nil {
		return bus.Message{}, errs.Permanentf("logminer: encoding %s body: %v", e.Kind, err)
	}
	if err := e.Validate(); err != nil {
		return bus.Message{}, fmt.Errorf("logminer: built an invalid %s event: %w", e.Kind, err)
	}
	data, err := e.MarshalJSON()
	if err != nil {
		return bus.Message{}, errs.Permanentf("logminer: encoding %s event: %v", e.Kind, err)
	}
	return bus.Message{Subject: e.Subject(), ID: e.ID, Data: data}, nil
}

// clip cuts s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// Miner is the template miner, for inspection (templates, stats).
func (l *Logminer) Miner() *logmine.Miner { return l.miner }

// SaveState saves the state now (Run also does, every SaveEvery and on
// shutdown).
func (l *Logminer) SaveState(ctx context.Context) error { return l.saveState(ctx) }

// Stats reports the consumer's counters.
func (l *Logminer) Stats() bus.Stats { return l.consumer.Stats() }

// metrics are the logminer's own counters, exported by Collector.
type metrics struct {
	lines, unmatchedFormat, rejected, newTemplates, merges atomic.Uint64
	samples, samplesDropped, bursts, publishFailures       atomic.Uint64
	templateEventsDropped                                  atomic.Uint64
	stateSaves, stateSaveFailures, stateLoadFailures       atomic.Uint64
	stateBytes                                             atomic.Int64
}
