package detector

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
)

// snapshotVersion starts every value in the bucket:
//
//	version(1) flags(1: bit 0 counter, bit 1 last sample) len(route)(1) route
//	[uvarint len(last) last] detect-state
//
// The route name picks the profile on restore, since the labels that chose
// it are not at hand then. last, the series' last sample as JSON, is there
// while an episode is open, so that a series silent after a restart still
// has its episode closed (silence.go). Version 1 had no last sample.
const snapshotVersion = 2

// asyncPublisher writes snapshot values straight to the bucket's stream
// ($KV.<bucket>.<key>), so that a chunk is in flight at once instead of one
// request-reply Put after another; jetstream.JetStream is one.
type asyncPublisher interface {
	PublishAsync(subject string, data []byte, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
}

// snapshotPublisher is the JetStream context snapshots are written with: a
// context of their own, which gives up a write whose ack has not come
// within shutdown_timeout. The connection's context kept such a write
// pending for ever: a bucket that lost its acks for a few minutes (one
// chunk given up a snapshot) filled its 4,000 pending acks, and from then
// on, the bucket back or not, every write waited 200 ms for a free one
// under s.mu, holding Process, and failed.
func snapshotPublisher(js jetstream.JetStream, cfg SnapshotConfig) (jetstream.JetStream, error) {
	return jetstream.New(js.Conn(), jetstream.WithPublishAsyncTimeout(cfg.ShutdownTimeout))
}

// ErrSnapshot is wrapped by the errors of decoding a snapshot value.
var ErrSnapshot = errors.New("detector: bad snapshot")

// snapshotting is the service with snapshots on: the stage.Checkpointer
// whose Restore runs before the first sample and whose Checkpoint (Snapshot)
// runs every Snapshot.Interval and once after the drain.
type snapshotting struct{ *Service }

// Checkpoint writes the outbox, then a snapshot, and logs what an
// incomplete one leaves for the next (or, after the drain, to warm up
// again after restart).
func (c snapshotting) Checkpoint(ctx context.Context) error {
	final := c.stopping()
	outboxErr := c.saveOutbox(ctx)
	var n int
	var err error
	if outboxErr == nil {
		n, err = c.Snapshot(ctx)
	} else {
		// The states would hold episodes and rows ended whose closes and
		// anomalies nothing sends: they wait for the next checkpoint.
		err = errors.New("snapshot held back until the outbox is saved")
	}
	err = errors.Join(outboxErr, err)
	switch {
	case err != nil && errors.Is(ctx.Err(), context.Canceled):
		// cut short by the shutdown; the final snapshot follows
	case err != nil && final:
		c.log.Error().Err(err).Int("series", n).Msg("final snapshot incomplete: those series warm up again after restart")
	case err != nil:
		c.log.Warn().Err(err).Int("series", n).Msg("snapshot incomplete; the rest is retried at the next one")
	case final:
		c.log.Info().Int("series", n).Msg("final snapshot written")
	}
	return err
}

// Hold and Held make the snapshots a stage.Outbox: the anomalies of rows a
// tick closed that the stream had not stored are saved beside the
// snapshots of the rows' assets, which hold the rows closed, and sent
// after a restart.
func (c snapshotting) Hold(msgs []bus.Message) { c.outbox.Hold(msgs) }
func (c snapshotting) Held() []bus.Message     { return c.outbox.Held() }

// outboxKey is the key of the outbox: a series key is one token after the
// instance's and an asset key starts with group., so none is this one.
func (s *Service) outboxKey() string { return s.cfg.Instance + ".outbox.held" }

// maxOutboxBytes keeps the outbox within a key-value value (the server's
// default max_payload is 1 MB): an anomaly is 1 to 2 kB, so several
// hundred fit; older ones beyond are left out, logged.
const maxOutboxBytes = 900 << 10

// saveOutbox writes the outputs held; an empty outbox is written once.
func (s *Service) saveOutbox(ctx context.Context) error {
	data, left, err := s.outbox.MarshalWithin(maxOutboxBytes)
	if err != nil {
		return err
	}
	if left > 0 {
		s.log.Error().Int("anomalies", left).Str("bucket", s.cfg.Snapshot.Bucket).Msg("outbox over a key-value value: the oldest anomalies the stream has not stored are left out")
	}
	empty := string(data) == "[]"
	if empty && s.outboxEmpty {
		return nil
	}
	s.outboxEmpty = false // a put that errs may have been stored
	if _, err := s.kv.Put(ctx, s.outboxKey(), data); err != nil {
		return fmt.Errorf("detector: outbox to %s: %w", s.cfg.Snapshot.Bucket, err)
	}
	s.outboxEmpty = empty
	return nil
}

// stopping reports whether Run's context has ended: the runner is draining
// or has drained.
func (s *Service) stopping() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

func (s *Service) keyOf(fingerprint string) string {
	return s.cfg.Instance + "." + fingerprint
}

// seriesKey is the key of a series in memory and in the bucket: its
// fingerprint as a key token (bus.KeyToken).
func seriesKey(fingerprint string) string { return bus.KeyToken(fingerprint) }

func (s *Service) encode(b []byte, ser *series) ([]byte, error) {
	var flags byte
	if ser.counter {
		flags |= 1
	}
	if ser.last != nil {
		flags |= 2
	}
	b = append(b, snapshotVersion, flags, byte(len(ser.route)))
	b = append(b, ser.route...)
	if ser.last != nil {
		last, err := marshalLast(ser.last)
		if err != nil {
			return nil, err
		}
		b = binary.AppendUvarint(b, uint64(len(last)))
		b = append(b, last...)
	}
	return ser.det.AppendBinary(b)
}

// Snapshot writes the state of every series changed since the last
// snapshot (and then the group assets), Chunk series at a time: each chunk
// is encoded under the lock, then published asynchronously and its acks
// awaited, so Process is never held for longer than one chunk's encoding.
// It returns the number written. Series whose write failed stay dirty for
// the next snapshot.
func (s *Service) Snapshot(ctx context.Context) (int, error) {
	if s.snap == nil {
		return 0, nil
	}
	s.awaitTransitions(ctx)
	s.mu.Lock()
	todo := s.dirty
	s.dirty = nil
	s.mu.Unlock()
	now := s.now()

	written := 0
	var firstErr error
	for start := 0; start < len(todo); start += s.cfg.Snapshot.Chunk {
		if err := ctx.Err(); err != nil {
			s.requeue(todo[start:])
			if firstErr == nil {
				firstErr = err
			}
			break
		}
		chunk := todo[start:min(start+s.cfg.Snapshot.Chunk, len(todo))]
		var b snapBatch
		var waiting []*series
		s.locked(func() {
			for _, ser := range chunk {
				if ser.evicted || !ser.dirty {
					continue
				}
				if ser.holdsSnapshot(now) {
					waiting = append(waiting, ser) // see publishWaits
					continue
				}
				s.publishSnapshot(&b, ser)
			}
			// still dirty: they go back on the list for the next snapshot
			s.dirty = append(s.dirty, waiting...)
		})
		n, err := s.settle(ctx, &b)
		written += n
		if firstErr == nil {
			firstErr = err
		}
	}
	n, err := s.snapshotAssets(ctx)
	written += n
	if err != nil && firstErr == nil {
		firstErr = err
	}
	s.m.snapshotted.Add(float64(written))
	if firstErr != nil {
		return written, fmt.Errorf("detector: snapshot to %s: %w", s.cfg.Snapshot.Bucket, firstErr)
	}
	return written, nil
}

// snapshotSoon asks for ser's snapshot at the next tick: its episode
// opened or closed. Samples are acked before a snapshot holds them, and a
// crash restores the last one: an open since then was lost (the fault
// opened a second episode, under another id, and the first never got its
// close), a close since then was sent again. Transitions are rare, so
// writing their series at once narrows that window from
// snapshot.interval to about a tick at little cost. s.mu is held.
func (s *Service) snapshotSoon(ser *series) {
	if s.snap == nil || ser.soon {
		return
	}
	ser.soon = true
	s.soon = append(s.soon, ser)
}

// snapshotTransitions writes the snapshots snapshotSoon asked for, of the
// series whose anomalies are all stored (the rule of Snapshot: saved before
// its anomaly is stored, the state would take the sample's redelivery for
// a duplicate); one still publishing waits for the next tick, one whose
// publish failed is left to the periodic snapshot, which waits for the
// redelivery.
//
// The writes are awaited in the background, one batch (at most a Chunk)
// in flight at a time; the rest wait for a tick after it settled. Awaited
// here, a bucket that stalled held every tick for
// snapshot.shutdown_timeout, and with it the closes of silent series, the
// rows closed on their wait and the retries of tick outputs. Published all
// at once, a storm's transitions could fill the publisher's pending acks,
// and a write then waits for a free one under s.mu, holding Process.
func (s *Service) snapshotTransitions(ctx context.Context) {
	if s.snap == nil {
		return
	}
	var b snapBatch
	var done chan struct{}
	s.locked(func() {
		if s.transitions != nil {
			select {
			case <-s.transitions:
				s.transitions = nil
			default:
				return // the batch before is still in flight
			}
		}
		waiting := s.soon[:0]
		for _, ser := range s.soon {
			if !ser.evicted && (ser.pending > 0 || len(b.puts)+len(b.failed) >= s.cfg.Snapshot.Chunk) {
				waiting = append(waiting, ser)
				continue
			}
			ser.soon = false
			if ser.evicted || !ser.dirty || ser.unstored > 0 {
				continue // gone, written since, or waiting for a redelivery
			}
			s.publishSnapshot(&b, ser)
		}
		s.soon = waiting
		if len(b.puts) > 0 || len(b.failed) > 0 {
			done = make(chan struct{})
			s.transitions = done
		}
	})
	if done == nil {
		return
	}
	go func() {
		defer close(done)
		// an ack lost with a cluster node must not hold the next batch
		// for ever; ctx (the runner's) ends with the stop's drain
		ctx, cancel := context.WithTimeout(ctx, s.cfg.Snapshot.ShutdownTimeout)
		defer cancel()
		n, err := s.settle(ctx, &b)
		s.m.snapshotted.Add(float64(n))
		if err != nil {
			// the periodic snapshot writes them
			s.log.Warn().Err(err).Msg("snapshot of an episode's open or close failed; retried at the next snapshot")
		}
	}()
}

// awaitTransitions waits until the transitions' batch in flight, if any,
// is settled (or ctx ends): the series whose writes failed are dirty
// again only then, and the snapshot after the drain must take them.
func (s *Service) awaitTransitions(ctx context.Context) {
	s.mu.Lock()
	done := s.transitions
	s.mu.Unlock()
	if done == nil {
		return
	}
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// snapBatch is the series snapshots a Snapshot chunk or a tick's
// transitions publish together.
type snapBatch struct {
	puts   []put[*series]
	keys   []string   // the key each put is written under
	acks   [][]func() // the acks each put releases once stored (series.acks)
	failed []*series  // publishes refused at once
	err    error      // the first refusal's
}

// publishSnapshot encodes ser and publishes it asynchronously into b.
// s.mu is held.
func (s *Service) publishSnapshot(b *snapBatch, ser *series) {
	ser.dirty = false
	data, err := s.encode(nil, ser)
	if err != nil {
		s.log.Error().Err(err).Str("series", ser.key).Msg("encode state")
		return
	}
	fut, err := s.snap.PublishAsync("$KV."+s.cfg.Snapshot.Bucket+"."+s.keyOf(ser.key), data)
	if err != nil {
		b.failed = append(b.failed, ser)
		if b.err == nil {
			b.err = err
		}
		return
	}
	// the samples whose transitions this state holds: acked once stored
	acks := ser.acks
	ser.acks = nil
	b.puts = append(b.puts, put[*series]{ser, fut})
	b.keys = append(b.keys, ser.key)
	b.acks = append(b.acks, acks)
}

// settle awaits b's acks and returns how many were written; the series
// whose write failed are dirty again, for the next snapshot.
func (s *Service) settle(ctx context.Context, b *snapBatch) (int, error) {
	n, bad, err := awaitPuts(ctx, b.puts)
	s.dropLegacy(b.puts, b.keys, bad)
	s.settleAcks(b, bad)
	if failed := append(b.failed, bad...); len(failed) > 0 {
		s.m.snapshotErrors.Add(float64(len(failed)))
		s.markDirty(failed)
		return n, fmt.Errorf("%d series: %w", len(failed), errors.Join(b.err, err))
	}
	return n, err
}

// settleAcks releases the acks held for the series b wrote (bad: those
// not written); those of the others wait for their next write.
func (s *Service) settleAcks(b *snapBatch, bad []*series) {
	var stored []func()
	for i, p := range b.puts {
		if len(b.acks[i]) == 0 {
			continue
		}
		s.mu.Lock()
		if slices.Contains(bad, p.what) && !p.what.evicted { // an evicted one's are released (newService)
			p.what.acks = append(b.acks[i], p.what.acks...)
		} else {
			stored = append(stored, b.acks[i]...)
		}
		s.mu.Unlock()
	}
	releaseAcks(stored)
}

// releaseAcks acks the samples whose acks were held (series.acks).
func releaseAcks(acks []func()) {
	for _, release := range acks {
		release()
	}
}

// dropLegacy queues for deletion the snapshots under the keys the series
// written had before takeOver moved them (bad: those not written). A write
// under the old key itself (encoded before a sample took the series over
// while it was in flight) is not the series' own: the old key stays until
// the next snapshot writes that.
func (s *Service) dropLegacy(puts []put[*series], keys []string, bad []*series) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, p := range puts {
		if p.what.legacy != "" && keys[i] == p.what.key && !slices.Contains(bad, p.what) {
			s.stale = append(s.stale, staleKey{kv: s.keyOf(p.what.legacy), series: p.what.legacy})
			p.what.legacy = ""
		}
	}
}

// requeue puts back on the dirty list the series a cancelled snapshot did
// not reach (they are still marked dirty, so Process would not add them).
func (s *Service) requeue(ss []*series) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ser := range ss {
		if !ser.evicted && ser.dirty {
			s.dirty = append(s.dirty, ser)
		}
	}
}

func (s *Service) markDirty(ss []*series) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ser := range ss {
		if !ser.evicted && !ser.dirty {
			ser.dirty = true
			s.dirty = append(s.dirty, ser)
		}
	}
}

// Restore loads this instance's snapshots (keys <instance>.*) into memory,
// up to MaxSeries series and MaxAssets group assets. A snapshot whose
// route is gone from the pipeline, ignores its series now (ignore: true)
// or whose detector configuration changed shape is skipped: that series
// warms up again (or stays unscored), and the episode it held open is
// closed at the next tick. It returns an error only if the bucket cannot
// be read.
func (s *Service) Restore(ctx context.Context) error {
	if s.kv == nil {
		return nil
	}
	w, err := s.kv.Watch(ctx, s.cfg.Instance+".>", jetstream.IgnoreDeletes())
	if err != nil {
		return fmt.Errorf("detector: restore from %s: %w", s.cfg.Snapshot.Bucket, err)
	}
	defer w.Stop()
	// overSeries and overAssets: not loaded, max_series or max_assets reached
	restored, assets, skipped, overSeries, overAssets := 0, 0, 0, 0, 0
	prefix := s.cfg.Instance + "."
	for {
		var e jetstream.KeyValueEntry
		select {
		case e = <-w.Updates():
		case <-ctx.Done():
			return ctx.Err()
		}
		if e == nil { // the initial values are all delivered
			break
		}
		if e.Key() == s.outboxKey() {
			if err := s.outbox.UnmarshalBinary(e.Value()); err != nil {
				s.log.Error().Err(err).Str("key", e.Key()).Msg("outbox unreadable: the anomalies it held are lost")
			}
			continue
		}
		key := strings.TrimPrefix(e.Key(), prefix)
		if strings.HasPrefix(key, assetKeyPrefix) {
			ok, err := s.restoreAsset(key, e.Value())
			switch {
			case err != nil:
				skipped++
				s.log.Debug().Err(err).Str("key", e.Key()).Msg("group snapshot skipped; the asset warms up again")
				s.orphanAssetSkipped(strings.TrimPrefix(key, assetKeyPrefix), e.Value(), err)
			case ok:
				assets++
			default:
				overAssets++
			}
			continue
		}
		ser, err := s.decode(key, e.Value())
		if err != nil {
			skipped++
			s.log.Debug().Err(err).Str("key", e.Key()).Msg("snapshot skipped; the series warms up again")
			s.orphanSkipped(key, e.Value(), err)
			continue
		}
		s.mu.Lock()
		if s.series.Contains(key) || s.series.Len() >= s.cfg.MaxSeries {
			overSeries++
			if !s.series.Contains(key) && ser.last != nil {
				info, _ := ser.det.EndEpisode()
				o := &orphan{key: key, route: ser.route, last: ser.last, info: info,
					window: window(ser.det.Profile().Config(), info.Detector),
					cause:  fmt.Sprintf("%s not restored after a restart: the detector's memory was full (max_series)", ser.last.Metric)}
				ser.last = nil
				if v, err := s.encode(nil, ser); err == nil {
					o.snapshot = v
				}
				s.orphaned(o)
			}
		} else {
			s.series.Add(key, ser)
			// Silent from now on: an open episode is closed after its
			// Silence, the series forgotten after snapshot.max_age
			// (forgetIdle).
			ser.seen = s.now().UnixNano()
			if ser.last != nil {
				s.open[ser] = struct{}{}
			}
			restored++
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	superseded := s.dropSuperseded()
	s.mu.Unlock()
	restored -= superseded
	s.m.restored.Add(float64(restored))
	s.log.Info().Int("restored", restored).Int("superseded", superseded).Int("group_assets", assets).Int("skipped", skipped).
		Int("over_max_series", overSeries).Int("over_max_assets", overAssets).Str("bucket", s.cfg.Snapshot.Bucket).Msg("state restored")
	// An Info line's count was all that said a restart dropped what these
	// had learnt: they warm up again, and their open episodes are closed.
	s.warnOverLimit("series", "detector.max_series", s.cfg.MaxSeries, overSeries)
	s.warnOverLimit("group assets", "detector.max_assets", s.cfg.MaxAssets, overAssets)
	return nil
}

// warnOverLimit tells that n snapshots of what (series or group assets)
// were not restored because the setting key (limit) was reached.
func (s *Service) warnOverLimit(what, key string, limit, n int) {
	if n == 0 {
		return
	}
	s.log.Warn().Str("setting", key).Int("limit", limit).Int("not_restored", n).Str("bucket", s.cfg.Snapshot.Bucket).
		Msgf("%d snapshots of %s not restored: %s (%d) reached; they start from nothing and score nothing until their warm-up is over, an episode they had open closed: raise %s, or scale out by partition (services/detector/README.md)",
			n, what, key, limit, key)
}

// superseded reports whether the snapshot under key, restored with the
// open episode of last, is one under the fingerprint alone whose series'
// own key (its seriesID's, with the metric name) was restored too: takeOver
// moved it there, and a crash came before the old key was deleted (or the
// series left memory before and its episode was closed). The series' own
// snapshot goes on with that episode, or closed it: the old one must not
// close it again. s.mu is held.
func (s *Service) superseded(key string, last *lastSample) bool {
	if last == nil || key != seriesKey(last.Fingerprint) {
		return false
	}
	id := seriesID(last.Fingerprint, last.Metric, last.Labels)
	return id != last.Fingerprint && s.series.Contains(seriesKey(id))
}

// dropSuperseded removes the superseded snapshots (superseded) Restore
// loaded, without closing their episodes, and queues their keys for
// deletion; it returns how many series it removed. s.mu is held.
func (s *Service) dropSuperseded() int {
	n := 0
	for ser := range s.open {
		if !s.superseded(ser.key, ser.last) {
			continue
		}
		delete(s.open, ser)
		ser.moved = true // not evicted: no close
		s.series.Remove(ser.key)
		s.stale = append(s.stale, staleKey{kv: s.keyOf(ser.key), series: ser.key})
		n++
	}
	kept := s.orphans[:0]
	for _, o := range s.orphans {
		if o.close == nil && s.superseded(o.key, o.last) {
			s.stale = append(s.stale, staleKey{kv: s.keyOf(o.key), series: o.key})
			s.orphanSeries--
			continue
		}
		kept = append(kept, o)
	}
	s.orphans = kept
	return n
}

func (s *Service) decode(key string, v []byte) (*series, error) {
	h, err := decodeHeader(key, v)
	if err != nil {
		return nil, err
	}
	route, ok := s.pipeline.Lookup(h.route)
	if !ok {
		return nil, errs.Permanent(fmt.Errorf("%w: %s: route %q is not in the pipeline", ErrSnapshot, key, h.route))
	}
	if route.Ignore { // as a route gone: the episode it held open is closed (orphanSkipped)
		return nil, errs.Permanent(fmt.Errorf("%w: %s: route %q ignores its series now (ignore: true)", ErrSnapshot, key, h.route))
	}
	ser := &series{key: key, route: h.route, counter: h.counter, last: h.last, restored: true}
	ser.det = route.Profile(h.counter).NewDetector()
	if err := ser.det.UnmarshalBinary(h.state); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrSnapshot, key, err)
	}
	if !ser.det.InEpisode() {
		ser.last = nil
	} else if h.last == nil {
		ser.fingerprintEpisode = true
	}
	return ser, nil
}

// snapshotHeader is what a series snapshot holds before its detector's
// state.
type snapshotHeader struct {
	route   string
	counter bool
	last    *lastSample
	state   []byte
}

// encode is the snapshot of h's series with the detector state state (and
// no last sample: no episode is open in it).
func (h snapshotHeader) encode(state []byte) []byte {
	var flags byte
	if h.counter {
		flags |= 1
	}
	b := append([]byte{snapshotVersion, flags, byte(len(h.route))}, h.route...)
	return append(b, state...)
}

// marshalLast encodes the last sample of a snapshot within about the size
// of the sample itself: json.Marshal escaped every '<', '>' and '&' in six
// bytes, and the series' id repeated the metric name, so a sample under
// the envelope's limits made a snapshot of several MiB, over what the
// bucket takes (NATS's max_payload), written never. A seriesID is written
// as its separator alone: decodeHeader rebuilds it from the fingerprint
// and the metric.
func marshalLast(l *lastSample) ([]byte, error) {
	if l.Series == l.Fingerprint+seriesSep+l.Metric {
		c := *l
		c.Series = seriesSep
		l = &c
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(l); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func decodeHeader(key string, v []byte) (snapshotHeader, error) {
	if len(v) < 3 || v[0] != snapshotVersion && v[0] != 1 {
		return snapshotHeader{}, errs.Permanent(fmt.Errorf("%w: %s: unknown version", ErrSnapshot, key))
	}
	truncated := errs.Permanent(fmt.Errorf("%w: %s: truncated", ErrSnapshot, key))
	hasLast := v[1]&2 != 0
	h := snapshotHeader{counter: v[1]&1 != 0}
	n := int(v[2])
	if len(v) < 3+n {
		return snapshotHeader{}, truncated
	}
	h.route = string(v[3 : 3+n])
	v = v[3+n:]
	if hasLast {
		n, w := binary.Uvarint(v)
		if w <= 0 || n > uint64(len(v)-w) {
			return snapshotHeader{}, truncated
		}
		h.last = new(lastSample)
		if err := json.Unmarshal(v[w:w+int(n)], h.last); err != nil {
			return snapshotHeader{}, errs.Permanent(fmt.Errorf("%w: %s: last sample: %w", ErrSnapshot, key, err))
		}
		if l := h.last; l.Series != "" && l.Series != l.Fingerprint {
			// The separator of a seriesID is no UTF-8: JSON wrote U+FFFD
			// in its place, and the episode's id derived from what was
			// read back was another than its open's.
			l.Series = l.Fingerprint + seriesSep + l.Metric
		}
		v = v[w+int(n):]
	}
	h.state = v
	return h, nil
}

// put is one snapshot write of what, awaiting its ack.
type put[T any] struct {
	what T
	fut  jetstream.PubAckFuture
}

// awaitPuts waits for every put's ack (or ctx) and returns how many were
// written, the ones that were not, and the first error.
func awaitPuts[T any](ctx context.Context, puts []put[T]) (written int, failed []T, firstErr error) {
	for _, p := range puts {
		var err error
		select {
		case <-p.fut.Ok():
			written++
			continue
		case err = <-p.fut.Err():
		case <-ctx.Done():
			err = ctx.Err()
		}
		failed = append(failed, p.what)
		if firstErr == nil {
			firstErr = err
		}
	}
	return written, failed, firstErr
}
