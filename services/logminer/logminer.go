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
// The logminer is a stage.Processor (Process mines one raw log, Tick closes
// a count interval, the state store makes it a Checkpointer), and the
// stage runtime does the rest: decoding, workers, acking a raw log only
// after everything it caused was acked by the stream, keeping the outputs of
// a raw log whose publish failed for its redelivery, panics, the interval
// ticks, the state saves and the drain. Ids of derived events are hashes of
// what they derive from, so a raw log processed again produces the same ids
// and the duplicate window drops the repeats. README.md has the subjects,
// the burst rule and the numbers.
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

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/stage"
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
	cfg     Config
	log     zerolog.Logger
	now     func() time.Time
	miner   *logmine.Miner
	formats map[string]*compiledFormat
	// headers detects the header of services whose format is auto
	// (explicitly, or by DefaultFormat); nil when nothing is detected
	headers *headers
	counts  *counts
	// unacked holds the raw logs counted whose outputs were not all
	// stored: their redelivery is not counted again
	unacked *unacked
	state   stateObjects      // nil when State.Disabled
	outbox  stage.HeldOutputs // the tick outputs a checkpoint holds
	stage   *stage.Stage
	metrics metrics

	// mineMu makes mining a line, moving the counts of merged templates
	// and counting the line one step, so a line is never counted under an
	// id another worker's line has just merged away. Decoding and encoding,
	// most of the work, run outside it on several workers.
	mineMu sync.Mutex
	// scratch holds *scratch buffers, reused from line to line.
	scratch sync.Pool
	// emitMu is held (read) by Process from mining a line to emitting its
	// template event, and (write) by a checkpoint while it takes the state
	// and the template events in flight: every template a checkpoint saves
	// was announced, or its announcement is in the checkpoint's outbox. A
	// line whose outputs failed is redelivered to a miner that knows its
	// template, and announces nothing then.
	emitMu   sync.RWMutex
	inFlight stage.InFlight // template events not stored yet
	// storeRoom holds the templated copies while the writer's backlog
	// leaves them no room in the stream; nil without JetStream
	storeRoom *storeRoom
	// sampleSettled counts a sample the stream stored.
	sampleSettled func(error)
	// run is Run's context. Once it ended no tick closes an interval, so
	// a checkpoint taken then (the last one of the stop) knows that no
	// tick published the counts it saves (savedState.Stopped).
	run atomic.Pointer[context.Context]
	// restoredStopped: the state restored was saved by a stop (Restore)
	restoredStopped bool
}

type compiledFormat struct {
	*logmine.Format
	level int // index of the Level field, -1 if none
}

// scratch holds the buffers of one Process call.
type scratch struct {
	result logmine.Result
	fields []string
}

// New ensures the durable consumer and the state bucket; Run restores the
// saved state before the first delivery.
func New(ctx context.Context, js jetstream.JetStream, cfg Config, log zerolog.Logger, opts ...Option) (*Logminer, error) {
	l, err := newLogminer(cfg, log, opts...)
	if err != nil {
		return nil, err
	}
	if !l.cfg.State.Disabled {
		if l.state, err = openObjects(ctx, js, l.cfg.State); err != nil {
			return nil, err
		}
	}
	l.storeRoom = openStoreRoom(ctx, js, l.cfg, log, &l.metrics.heldForStore)
	// An input held for room (storeRoom) is told in progress meanwhile:
	// neither handed out again nor counted against max_deliver.
	l.stage, err = stage.Open(ctx, js, l.processor(), l.stageConfig(), l.cfg.Consumer, log,
		stage.WithRunnerOptions(stage.WithClock(l.now)), stage.WithConsumerOptions(bus.WithInProgress()))
	if err != nil {
		return nil, err
	}
	return l, nil
}

// newLogminer builds the processor alone, without JetStream.
func newLogminer(cfg Config, log zerolog.Logger, opts ...Option) (*Logminer, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	mc := logmine.DefaultConfig()
	if cfg.MaxTemplateBytes > 0 {
		mc.MaxTemplateBytes = cfg.MaxTemplateBytes
	}
	if cfg.MaxTemplates > 0 {
		mc.MaxTemplates = cfg.MaxTemplates
	}
	mc.MaxLineBytes = cfg.MaxLineBytes
	miner, err := logmine.New(mc)
	if err != nil {
		return nil, err
	}
	// Every raw log the consumer may deliver again is unacked (naked ones
	// too): up to max_ack_pending, with room beyond for the ids left by a
	// dead letter or a crash, which the list forgets first.
	unacked, err := newUnacked(cfg.MaxSeries + cfg.Consumer.MaxAckPending)
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
		unacked: unacked,
	}
	l.scratch.New = func() any { return new(scratch) }
	l.sampleSettled = func(err error) {
		if err == nil {
			l.metrics.samples.Add(1)
		}
	}
	for _, o := range opts {
		o(l)
	}
	l.counts.begin(l.now()) // again by Restore, when the run starts
	auto := cfg.DefaultFormat == FormatAuto
	for _, spec := range cfg.Formats {
		auto = auto || spec == FormatAuto
	}
	if auto {
		l.headers = newHeaders(log)
	}
	for svc, spec := range cfg.Formats {
		if spec == FormatAuto || spec == FormatNone {
			continue
		}
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
	return l, nil
}

// detects reports whether service svc's header is detected: its format is
// auto, or it has none and the default is auto.
func (l *Logminer) detects(svc string) bool {
	if l.headers == nil {
		return false
	}
	spec, named := l.cfg.Formats[svc]
	if named {
		return spec == FormatAuto
	}
	return l.cfg.DefaultFormat == FormatAuto
}

// stageConfig is how the runner drives the logminer: raw logs on up to 8
// workers, a count interval closed at every multiple of Interval (samples
// that failed kept for the next one, at most MaxSeries), the state saved
// every SaveEvery.
func (l *Logminer) stageConfig() stage.Config {
	return stage.Config{
		Name:            "logminer",
		Workers:         min(runtime.GOMAXPROCS(0), 8),
		TickEvery:       l.cfg.Interval,
		MaxKept:         l.cfg.MaxSeries,
		CheckpointEvery: l.cfg.State.SaveEvery,
	}
}

// InFlightOutputs is the template events not stored yet (kept with or
// without a state: the miner knows their templates, and would announce
// them no more): the runner's ticks send again those whose publish
// failed, and a checkpoint saves them.
func (l *Logminer) InFlightOutputs() *stage.InFlight { return &l.inFlight }

// processor is what the runner drives: the logminer, a Checkpointer too
// when its state is kept.
func (l *Logminer) processor() stage.Processor {
	if l.state == nil {
		return l
	}
	return checkpointed{l}
}

// Run consumes until ctx is cancelled (stage.Stage.Run): it restores the
// state first, closes a count interval at every multiple of Interval, saves
// the state every SaveEvery, and on the way out settles what is in flight
// and saves the state once more.
func (l *Logminer) Run(ctx context.Context) error {
	l.run.Store(&ctx)
	return l.stage.Run(ctx)
}

// stopped is closed once Run's context ends (nil before Run).
func (l *Logminer) stopped() <-chan struct{} {
	if ctx := l.run.Load(); ctx != nil {
		return (*ctx).Done()
	}
	return nil
}

// stopping reports whether Run's context ended: the stop began.
func (l *Logminer) stopping() bool {
	ctx := l.run.Load()
	return ctx != nil && (*ctx).Err() != nil
}

// Process mines one raw log and emits it templated and, when the line
// created or generalised a template, the template event. Its errors are
// permanent: the same bytes never become a valid log (but stage.ErrBusy,
// while too many template events wait for the stream).
func (l *Logminer) Process(ctx context.Context, e *event.Envelope, out stage.Emitter) error {
	if e.Kind != event.KindLog {
		return errs.Permanentf("logminer: event %s is of kind %q, want log (only raw logs belong on events.log.<service>)", e.ID, e.Kind)
	}
	var body event.LogBody
	if err := json.Unmarshal(e.Body, &body); err != nil {
		return errs.Permanentf("logminer: event %s: body is not a log body: %v", e.ID, err)
	}
	if body.TemplateID != "" {
		return errs.Permanentf("logminer: event %s already has template_id %q: templated logs belong on events.log.<service>%s, not on the raw subject", e.ID, body.TemplateID, event.TemplatedSuffix)
	}
	s := l.scratch.Get().(*scratch)
	defer l.scratch.Put(s)

	content, severity := body.Message, e.Severity
	if l.detects(e.Service) {
		if h, ok := l.headers.split(e.Service, body.Message); ok {
			content = h.Content
			if severity == "" && h.Level != "" {
				if sev, known := event.ParseSeverity(h.Level); known {
					severity = sev
				}
			}
		}
	} else if f := l.formats[e.Service]; f != nil {
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
	// Refused before mining, so that a refused line leaves no template
	// and no count behind.
	bound := copyBound(&body, content, l.cfg.MaxLineBytes)
	if bound > event.MaxBodyBytes {
		return errs.Permanentf("logminer: event %s: its templated copy may not fit: a message of %d bytes as JSON, mined on %d bytes, makes a body of up to %d bytes, over the limit of %d", e.ID, event.JSONStringLen(body.Message), min(len(content), l.cfg.MaxLineBytes), bound, event.MaxBodyBytes)
	}
	// The copy carries the raw log's labels and resource too, and its
	// template_id label: a raw log published straight to NATS under the
	// envelope limit may make a copy over it.
	env := e.SizeBound() - len(e.Body) + bound + templateLabelBound
	if env > event.MaxEnvelopeBytes {
		return errs.Permanentf("logminer: event %s: its templated copy may not fit: labels, resource and a body of up to %d bytes make an envelope of up to %d bytes, over the limit of %d", e.ID, bound, env, event.MaxEnvelopeBytes)
	}
	if err := l.inFlight.Room(ctx); err != nil {
		// Mined now, a new template's event could be kept for no
		// checkpoint: the line comes again once the stream stored what
		// is in flight (the runner's ticks send it again).
		return fmt.Errorf("logminer: event %s: %w", e.ID, err)
	}
	// Before mining, as the wait may be long (a store outage): a line
	// mined holds checkpoints back until its template is announced. The
	// copy is weighed at its bound, which covers a template event too.
	release, err := l.storeRoom.take(ctx, l.stopped(), env)
	if err != nil {
		return fmt.Errorf("logminer: event %s: %w", e.ID, err)
	}
	emitted := false
	defer func() {
		if !emitted {
			release() // the copy is not published
		}
	}()
	r := &s.result
	l.emitMu.RLock()
	defer l.emitMu.RUnlock()
	l.mine(content, r, e.Service, severity.Rank() >= event.SeverityError.Rank(), e.ID, e.Time)
	l.metrics.lines.Add(1)
	id := r.ID.String()
	now := l.now().UTC()

	t := *e
	t.ID = event.DerivedID(event.IDTime(e.ID), "templated_log", e.ID)
	t.ObservedTime = now
	t.Source = Source
	t.Severity = severity
	t.Links = []string{e.ID}
	if len(e.Labels) < event.MaxLabels {
		// The template is part of the identity of a templated log: its
		// fingerprint says "this message of this service again".
		t.Labels = make(map[string]string, len(e.Labels)+1)
		for k, v := range e.Labels {
			t.Labels[k] = v
		}
		t.Labels["template_id"] = id
	}
	t.Fingerprint = event.Fingerprint(t.Kind, t.Service, t.Labels, t.Resource)
	body.TemplateID, body.Template, body.Params = id, r.Template, r.Params
	if t.Body, err = event.MarshalBody(body); err != nil {
		return errs.Permanentf("logminer: event %s: encoding the body: %v", e.ID, err)
	}
	// copyBound kept the copy under the limit; this would catch a masker
	// that breaks its assumptions (after mining, though).
	if len(t.Body) > event.MaxBodyBytes {
		return errs.Permanentf("logminer: event %s: its templated copy does not fit: body of %d bytes, over the limit of %d", e.ID, len(t.Body), event.MaxBodyBytes)
	}
	// A line of blanks mines to the empty template: nothing to announce
	// (a template event must name its template).
	announce := (r.New || r.Changed) && !l.cfg.DisableTemplateEvents && r.Template != ""
	settled, late := l.unacked.outputs(e.ID, 1+b2i(announce))
	stored := func(err error) { release(); settled[0](err) }
	if err := out.Emit(stage.Output{Subject: event.TemplatedLogSubject(t.Service), Event: &t, Settled: stored, StoredLate: late[0]}); err != nil {
		return err
	}
	emitted = true
	if announce {
		te, err := l.templateEvent(e, r, content, now)
		if err != nil {
			return err
		}
		tracked, trackedLate, err := l.inFlight.Track(te)
		if err != nil {
			return err
		}
		o := stage.Output{Event: te,
			Settled:    func(err error) { tracked(err); settled[1](err) },
			StoredLate: func() { trackedLate(); late[1]() }}
		if err := out.Emit(o); err != nil {
			return err
		}
	}
	if r.Changed {
		l.metrics.merges.Add(uint64(len(r.Merges)))
	}
	if r.New {
		l.metrics.newTemplates.Add(1)
	}
	return nil
}

// templateLabelBound covers the template_id label a templated copy adds:
// "template_id":"<16 hex>", and its comma.
const templateLabelBound = 64

// copyBoundOverhead covers a templated body's keys, braces and template
// id: {"message":,"template_id":"<16 hex>","template":,"params":[],
// "trace_id":,"span_id":} is 90 bytes.
const copyBoundOverhead = 128

// copyBound is an upper bound of the size of a log's templated body, known
// before its content is mined (on its first maxLine bytes, the prefix): the
// body's own strings as JSON, plus at most 2J + 6n for the template and the
// parameters, where n is the prefix's length and J its length as JSON
// (escapes counted, J >= n). The template is the prefix with its
// whitespace runs as one space and variables (each at least one byte, or
// the empty value of a "key=" field) as <*>: at most J + 2n (a one-byte
// variable and its separator, "1 ", become "<*> "). The parameters are
// pieces of the prefix that do not overlap, each at most 3 bytes more as
// a JSON list item: at most J + 3n. TestCopyBoundHolds checks the bound on
// lines built to expand the most. A producer that publishes to NATS
// directly is not held to the gateway's limit on the message
// (event.MaxLogMessageBytes), under which every copy passes this bound
// with the default max_line_bytes; a longer message's copy may not.
func copyBound(body *event.LogBody, content string, maxLine int) int {
	prefix, _ := logmine.CutLine(content, maxLine)
	n, j := len(prefix), event.JSONStringLen(prefix)-2
	return copyBoundOverhead + event.JSONStringLen(body.Message) + event.JSONStringLen(body.TraceID) + event.JSONStringLen(body.SpanID) + 2*j + 6*n
}

// mine matches one line into r and counts it under the id it got, as one
// step (see mineMu), unless raw log rawID was counted already and has not
// been acked since (unacked): it comes again after its outputs failed, or
// after a restart from a state that counted it. The line is counted by its
// own time at (counts.add: not when it is too late).
func (l *Logminer) mine(content string, r *logmine.Result, service string, isError bool, rawID string, at time.Time) {
	l.mineMu.Lock()
	defer l.mineMu.Unlock()
	l.miner.MatchInto(content, r)
	if r.Changed {
		for _, mg := range r.Merges {
			l.counts.merge(mg.From, mg.To)
		}
	}
	if !l.unacked.counted(rawID) {
		l.counts.add(service, r.ID, isError, rawID, at)
	}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// templateEvent announces a new or generalised template.
func (l *Logminer) templateEvent(raw *event.Envelope, r *logmine.Result, content string, now time.Time) (*event.Envelope, error) {
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
		ID:            event.DerivedID(event.IDTime(raw.ID), "log_template", raw.ID),
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
		return nil, errs.Permanentf("logminer: encoding the template event: %v", err)
	}
	return e, nil
}

// Tick closes the count interval that ends at end: it emits one
// log_template_count sample per counted series and an anomaly per error
// burst. The runner publishes them and keeps those that fail for the next
// tick. A tick that begins once the stop began closes nothing: the last
// checkpoint saves the interval's counts as published by no tick, and the
// next run publishes them (decodeState).
func (l *Logminer) Tick(_ context.Context, end time.Time, out stage.Emitter) error {
	if l.stopping() {
		return nil
	}
	return l.closeInterval(end, out)
}

// closeInterval emits the samples and bursts of the interval ending at end
// and starts the next one.
func (l *Logminer) closeInterval(end time.Time, out stage.Emitter) error {
	end = end.UTC()
	samples, bursts := l.counts.flush(end)
	now := l.now().UTC()
	var failed []error
	for _, s := range samples {
		e, err := l.sampleEvent(s, end, now)
		if err == nil {
			err = out.Emit(stage.Output{Event: e, Settled: l.sampleSettled})
		}
		if err != nil {
			failed = append(failed, err)
		}
	}
	for _, b := range bursts {
		e, err := l.burstEvent(b, end, now)
		if err == nil {
			err = out.Emit(stage.Output{Event: e})
		}
		if err != nil {
			failed = append(failed, err)
			continue
		}
		l.metrics.bursts.Add(1)
		l.log.Warn().Str("service", b.Service).Str("template_id", b.ID.String()).Uint64("errors", b.Errors).Float64("expected", b.Expected).Msg("error burst")
	}
	return errors.Join(failed...)
}

// Flush closes the count interval that ends at end now, as the runner does
// at every multiple of Interval (stage.Runner.Tick): it publishes what an
// earlier failed tick kept, then the samples and bursts, and waits for
// their acks.
func (l *Logminer) Flush(ctx context.Context, end time.Time) error { return l.stage.Tick(ctx, end) }

func (l *Logminer) sampleEvent(s sample, end, now time.Time) (*event.Envelope, error) {
	v := float64(s.Count)
	id := s.ID.String()
	e := &event.Envelope{
		SchemaVersion: event.SchemaVersion,
		ID:            event.DerivedID(end, MetricTemplateCount, s.Service, id),
		Kind:          event.KindMetric,
		Time:          end,
		ObservedTime:  now,
		Source:        Source,
		Service:       s.Service,
		Labels:        map[string]string{"__name__": MetricTemplateCount, "template_id": id, "service": s.Service},
	}
	e.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, nil)
	return e, withBody(e, event.MetricBody{Name: MetricTemplateCount, Value: &v, Type: event.MetricGauge})
}

func (l *Logminer) burstEvent(b burst, end, now time.Time) (*event.Envelope, error) {
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
		ID:            event.DerivedID(end, BurstDetector, b.Service, id),
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
	return e, withBody(e, event.AnomalyBody{
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

// withBody encodes body into e and checks the result.
func withBody(e *event.Envelope, body any) error {
	var err error
	if e.Body, err = event.MarshalBody(body); err != nil {
		return errs.Permanentf("logminer: encoding %s body: %v", e.Kind, err)
	}
	if err := e.Validate(); err != nil {
		return fmt.Errorf("logminer: built an invalid %s event: %w", e.Kind, err)
	}
	return nil
}

// clip cuts s to at most n bytes on a character boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return event.Prefix(s, n) + "..."
}

// Miner is the template miner, for inspection (templates, stats).
func (l *Logminer) Miner() *logmine.Miner { return l.miner }

// Stats reports the consumer's counters.
func (l *Logminer) Stats() bus.Stats { return l.stage.ConsumerStats() }
