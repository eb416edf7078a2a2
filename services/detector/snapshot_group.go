package detector

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/stage"
)

// assetSnapshotVersion starts every group asset value in the bucket, under
// the key <instance>.group.<asset key>:
//
//	version(1) flags(1: bit 0 a row is open) method(1: 0 pca, 1 vote)
//	group service labels channels-hash(8) last-closed(8)
//	[row-time(8) have(2) values(8 each) links] detector state
//
// The detector state is a detect.Vote's or a detect.Group's, by the
// method. Strings are uvarint-length-prefixed; labels are a uvarint count
// of name, value pairs, links a uvarint count of the open row's sample
// ids. The channels hash makes a restore skip an asset
// whose group's channels changed (their number, names or order), the
// method one whose group changed its method. Version 1 had no method byte
// and held a detect.Group; versions 1 and 2 kept no links, so that a
// sample of the open row delivered again after a restart (the consumer
// rewinds to its ack floor) was taken for a second label set, and the
// row's anomaly linked none of the samples before the restart.
const assetSnapshotVersion = 3

// methodByte is the method's byte in an asset snapshot.
func methodByte(method string) byte {
	if method == detect.MethodVote {
		return 1
	}
	return 0
}

// assetKeyPrefix separates group assets from series in the bucket (series
// keys are fingerprints, which hold no dot).
const assetKeyPrefix = "group."

func channelsHash(g *pipeline.Group) uint64 {
	h := fnv.New64a()
	for _, c := range g.Channels {
		h.Write([]byte(c))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func nanoOf(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

func timeOf(n int64) time.Time {
	if n == math.MinInt64 {
		return time.Time{}
	}
	return time.Unix(0, n).UTC()
}

func (s *Service) encodeAsset(b []byte, a *asset) ([]byte, error) {
	var flags byte
	if a.open {
		flags |= 1
	}
	b = append(b, assetSnapshotVersion, flags, methodByte(a.group.Method))
	b = appendString(b, a.group.Name)
	b = appendString(b, a.service)
	b = binary.AppendUvarint(b, uint64(len(a.labels)))
	for k, v := range a.labels {
		b = appendString(appendString(b, k), v)
	}
	b = binary.LittleEndian.AppendUint64(b, channelsHash(a.group))
	b = binary.LittleEndian.AppendUint64(b, uint64(nanoOf(a.lastClosed)))
	if a.open {
		b = binary.LittleEndian.AppendUint64(b, uint64(a.rowTime.UnixNano()))
		b = binary.LittleEndian.AppendUint16(b, uint16(a.have))
		for _, v := range a.row {
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		b = binary.AppendUvarint(b, uint64(len(a.links)))
		for _, id := range a.links {
			b = appendString(b, id)
		}
	}
	return a.det.AppendBinary(b)
}

// snapReader reads a snapshot value; the first error sticks.
type snapReader struct {
	p   []byte
	err error
}

func (r *snapReader) fail(what string) {
	if r.err == nil {
		r.err = fmt.Errorf("truncated at %s", what)
	}
}

func (r *snapReader) uvarint(what string) uint64 {
	v, n := binary.Uvarint(r.p)
	if n <= 0 {
		r.fail(what)
		return 0
	}
	r.p = r.p[n:]
	return v
}

func (r *snapReader) string(what string) string {
	n := r.uvarint(what)
	if r.err != nil || n > uint64(len(r.p)) {
		r.fail(what)
		return ""
	}
	s := string(r.p[:n])
	r.p = r.p[n:]
	return s
}

func (r *snapReader) bytes(n int, what string) []byte {
	if r.err != nil || n > len(r.p) {
		r.fail(what)
		return make([]byte, n)
	}
	b := r.p[:n]
	r.p = r.p[n:]
	return b
}

// assetHeader is what an asset snapshot says before its open row and
// detector state, readable whatever the group is now.
type assetHeader struct {
	version          byte
	open             bool
	method           byte
	group, service   string
	labels           map[string]string
	hash             uint64
	lastClosed       int64
	prefix, rowState []byte // the bytes up to last-closed, and the rest
}

func readAssetHeader(key string, v []byte) (assetHeader, error) {
	bad := func(format string, args ...any) error {
		return errs.Permanent(fmt.Errorf("%w: group asset %s: %s", ErrSnapshot, key, fmt.Sprintf(format, args...)))
	}
	if len(v) < 2 || v[0] < 1 || v[0] > assetSnapshotVersion {
		return assetHeader{}, bad("unknown version")
	}
	h := assetHeader{version: v[0], open: v[1]&1 != 0, method: methodByte(detect.MethodPCA)} // version 1: pca
	r := &snapReader{p: v[2:]}
	if v[0] >= 2 {
		h.method = r.bytes(1, "method")[0]
	}
	h.group = r.string("group")
	h.service = r.string("service")
	nl := r.uvarint("labels")
	if nl > pipeline.MaxGroupBy+1 {
		return assetHeader{}, bad("%d labels", nl)
	}
	h.labels = make(map[string]string, nl)
	for range nl {
		k := r.string("label name")
		h.labels[k] = r.string("label value")
	}
	h.hash = binary.LittleEndian.Uint64(r.bytes(8, "channels hash"))
	h.lastClosed = int64(binary.LittleEndian.Uint64(r.bytes(8, "last row")))
	if r.err != nil {
		return assetHeader{}, bad("%v", r.err)
	}
	h.prefix, h.rowState = v[:len(v)-len(r.p)], r.p
	return h, nil
}

// stateAt is where the detector state starts in h.rowState. An open row
// holds as many values as the group had channels, which a group that
// changed no longer tells: the state's own header does, so the state is
// where a group or vote state of that many channels starts.
func (h assetHeader) stateAt() (int, bool) {
	if !h.open {
		return 0, detect.GroupStateChannels(h.rowState) > 0
	}
	for d := 2; d <= detect.MaxGroupChannels; d++ {
		at := 8 + 2 + 8*d
		if at >= len(h.rowState) {
			break
		}
		if h.version >= 3 {
			r := &snapReader{p: h.rowState[at:]}
			if readLinks(r, d); r.err != nil {
				continue
			}
			at = len(h.rowState) - len(r.p)
		}
		if at < len(h.rowState) && detect.GroupStateChannels(h.rowState[at:]) == d {
			return at, true
		}
	}
	return 0, false
}

// readLinks reads the links of an open row of d channels (version 3).
func readLinks(r *snapReader, d int) []string {
	n := r.uvarint("links")
	if n > uint64(d) {
		r.fail("links")
		return nil
	}
	links := make([]string, 0, n)
	for range n {
		links = append(links, r.string("link"))
	}
	return links
}

func (s *Service) decodeAsset(key string, v []byte) (*asset, error) {
	bad := func(format string, args ...any) error {
		return errs.Permanent(fmt.Errorf("%w: group asset %s: %s", ErrSnapshot, key, fmt.Sprintf(format, args...)))
	}
	h, err := readAssetHeader(key, v)
	if err != nil {
		return nil, err
	}
	name, service, labels, hash, method, open, lastClosed := h.group, h.service, h.labels, h.hash, h.method, h.open, h.lastClosed
	r := &snapReader{p: h.rowState}
	g, ok := s.pipeline.Group(name)
	if !ok {
		return nil, bad("group %q is not in the pipeline", name)
	}
	if hash != channelsHash(g) {
		return nil, bad("group %q changed its channels", name)
	}
	if method != methodByte(g.Method) {
		return nil, bad("group %q changed its method to %s", name, g.Method)
	}
	a, err := newAsset(key, g, service, labels, s.voteProfile())
	if err != nil {
		return nil, bad("%v", err)
	}
	a.lastClosed = timeOf(lastClosed)
	if open {
		d := len(g.Channels)
		a.open, a.opened = true, s.now()
		a.rowTime = time.Unix(0, int64(binary.LittleEndian.Uint64(r.bytes(8, "row time")))).UTC()
		a.have = int(binary.LittleEndian.Uint16(r.bytes(2, "row count")))
		a.row = make([]float64, d)
		arrived := 0
		for i := range a.row {
			a.row[i] = math.Float64frombits(binary.LittleEndian.Uint64(r.bytes(8, "row")))
			if !math.IsNaN(a.row[i]) {
				arrived++
			}
		}
		if h.version >= 3 {
			a.links = readLinks(r, d)
		}
		if r.err != nil {
			return nil, bad("%v", r.err)
		}
		if arrived != a.have || a.have < 1 || a.have >= d {
			return nil, bad("open row holds %d channels, says %d of %d", arrived, a.have, d)
		}
	}
	if err := a.det.UnmarshalBinary(r.p); err != nil {
		return nil, fmt.Errorf("%w: group asset %s: %w", ErrSnapshot, key, err)
	}
	return a, nil
}

// rowsHold is the held ack (stage.HoldAck) of one sample: the first a
// group took, into an asset with nothing unsaved, since a snapshot of the
// assets began (the hold's epoch). Every asset that took a sample since
// its last stored snapshot refers to such a hold, one taken no later than
// that sample; the hold is released once its epoch ended (the next
// snapshot began) and each asset referring to it had a snapshot stored
// (or left memory).
//
// A row is built from samples acked as they joined it, and its alarm's
// open or close published at once: without the hold, a crash before the
// asset's next snapshot restored the asset from before the row, and the
// samples were gone, so the fault going on opened a second episode under
// another id (the first never closed), or a calm row closed the episode a
// second time. Holding the sample that closed the row would not do: the
// row's other samples, and the rows before it since the snapshot, were
// acked. The held sample keeps the consumer's ack floor below every sample
// of an asset's unsaved rows, and a start rewinds the consumer to its ack
// floor (stage.Config.HoldAcks), which hands out again every sample after
// it, acked or not, in stream order: the restored asset takes those its
// snapshot holds as late or duplicate and rebuilds the rows after from the
// same samples, with the same anomalies under the same ids (the stream's
// duplicate window keeps one). One held sample per epoch, not one per
// sample or asset: a few count against the consumer's max_ack_pending
// (one per snapshot.interval while some asset's snapshot waits), where
// holding every sample until the snapshot capped the detector at
// max_ack_pending samples a snapshot.interval.
type rowsHold struct {
	release func()
	assets  int  // assets referring to it
	ended   bool // a snapshot of the assets began: no asset joins it any more
}

// drop ends an asset's reference to h and reports whether h is to be
// released now. s.mu is held.
func (h *rowsHold) drop() bool {
	h.assets--
	return h.ended && h.assets == 0
}

// holdRows makes a, which took a sample (em's), refer to a hold if it
// refers to none: the epoch's, taken on this sample if the epoch has none
// yet. An asset that refers to one already took an earlier sample since
// its last stored snapshot, which that hold covers. s.mu is held.
func (s *Service) holdRows(a *asset, em stage.Emitter) {
	if s.snap == nil || len(a.holds) > 0 {
		return
	}
	if s.rowsHold == nil {
		s.rowsHold = &rowsHold{release: stage.HoldAck(em)}
	}
	s.rowsHold.assets++
	a.holds = append(a.holds, s.rowsHold)
}

// dropHolds ends the references of holds and returns the releases due.
// s.mu is held.
func dropHolds(due []func(), holds []*rowsHold) []func() {
	for _, h := range holds {
		if h.drop() {
			due = append(due, h.release)
		}
	}
	return due
}

// endRowsHold ends the epoch: the assets that take a sample from now on
// refer to a new hold. One no asset refers to any more is released.
func (s *Service) endRowsHold() {
	var due []func()
	s.locked(func() {
		if h := s.rowsHold; h != nil {
			s.rowsHold, h.ended = nil, true
			if h.assets == 0 { // they all left memory
				due = append(due, h.release)
			}
		}
	})
	releaseAcks(due)
}

// snapshotAssets writes the group assets changed since the last snapshot,
// as Snapshot writes series. It returns the number written. A stored
// snapshot ends the asset's references to rowsHolds; one not written keeps
// them for the next.
func (s *Service) snapshotAssets(ctx context.Context) (int, error) {
	s.endRowsHold()
	s.mu.Lock()
	todo := s.dirtyAssets
	s.dirtyAssets = nil
	s.mu.Unlock()
	now := s.now()
	subject := "$KV." + s.cfg.Snapshot.Bucket + "." + s.cfg.Instance + "." + assetKeyPrefix
	written := 0
	var firstErr error
	for start := 0; start < len(todo); start += s.cfg.Snapshot.Chunk {
		chunk := todo[start:min(start+s.cfg.Snapshot.Chunk, len(todo))]
		if err := ctx.Err(); err != nil {
			s.requeueAssets(chunk)
			s.requeueAssets(todo[start+len(chunk):])
			if firstErr == nil {
				firstErr = err
			}
			break
		}
		var puts []put[*asset]
		var holds [][]*rowsHold // puts[i]'s asset's references, ended once stored
		var due []func()        // holds to release
		var failed []*asset
		s.locked(func() {
			for _, a := range chunk {
				if a.evicted || !a.dirty {
					continue
				}
				if a.holdsSnapshot(now) {
					s.dirtyAssets = append(s.dirtyAssets, a) // see publishWaits
					continue
				}
				a.dirty = false
				data, err := s.encodeAsset(nil, a)
				if err != nil {
					s.log.Error().Err(err).Str("asset", a.key).Msg("encode group state")
					// never saved, as an evicted asset: holding its
					// samples would only pin the ack floor
					due = dropHolds(due, a.holds)
					a.holds = nil
					continue
				}
				fut, err := s.snap.PublishAsync(subject+a.key, data)
				if err != nil {
					failed = append(failed, a)
					if firstErr == nil {
						firstErr = err
					}
					continue
				}
				puts = append(puts, put[*asset]{a, fut})
				// the samples it took from now on refer to a new hold
				holds = append(holds, a.holds)
				a.holds = nil
			}
		})
		n, bad, err := awaitPuts(ctx, puts)
		written += n
		failed = append(failed, bad...)
		if firstErr == nil {
			firstErr = err
		}
		s.locked(func() {
			for i, p := range puts {
				if slices.Contains(bad, p.what) && !p.what.evicted { // an evicted one's state is dropped: released
					p.what.holds = append(holds[i], p.what.holds...)
					continue
				}
				due = dropHolds(due, holds[i])
			}
		})
		releaseAcks(due)
		if len(failed) > 0 {
			s.m.snapshotErrors.Add(float64(len(failed)))
			s.mu.Lock()
			for _, a := range failed {
				a.dirty = false
				s.markAssetDirty(a)
			}
			s.mu.Unlock()
		}
	}
	return written, firstErr
}

func (s *Service) requeueAssets(as []*asset) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range as {
		if !a.evicted && a.dirty {
			s.dirtyAssets = append(s.dirtyAssets, a)
		}
	}
}

// restoreAsset puts a decoded asset in memory unless it is there or
// MaxAssets is reached; it reports whether it did.
func (s *Service) restoreAsset(key string, v []byte) (bool, error) {
	key = strings.TrimPrefix(key, assetKeyPrefix)
	a, err := s.decodeAsset(key, v)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.assets.Contains(key) {
		return false, nil
	}
	if s.assets.Len() >= s.cfg.MaxAssets {
		if a.det.Alarming() {
			// no row will end its alarm: it is ended as an evicted one's is
			a.evicted, a.seen = true, s.now()
			s.endedAssets = append(s.endedAssets, a)
		}
		return false, nil
	}
	a.seen = s.now() // silent from now on, an alarm is ended after its silence
	s.assets.Add(key, a)
	s.m.assetsRestored.Inc()
	return true, nil
}

// orphanAssetSkipped keeps the alarm of the asset snapshot v of key, which
// failed to restore with err (its group left the pipeline, or changed its
// channels, method or configuration), for the next tick to end: no row of
// the asset will. A snapshot unreadable or without an alarm has none.
func (s *Service) orphanAssetSkipped(key string, v []byte, err error) {
	h, herr := readAssetHeader(key, v)
	if herr != nil {
		return
	}
	at, ok := h.stateAt()
	if !ok {
		return
	}
	state := h.rowState[at:]
	since, on, aerr := detect.GroupAlarmOf(state)
	if aerr != nil || !on {
		return
	}
	e, err := s.orphanAssetClose(key, h, since, err)
	if err != nil {
		s.log.Error().Err(err).Str("asset", key).Msg("group alarm close dropped")
		return
	}
	o := &orphan{key: key, close: e}
	if ended, err := detect.EndGroupAlarmIn(state); err == nil {
		o.snapshot = append(append(append([]byte(nil), h.prefix...), h.rowState[:at]...), ended...)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.orphaned(o)
}

// orphanAssetClose is the close of the alarm since since of the asset key
// whose snapshot h could not be restored (why), at its last row, with the
// id endAlarm gives it. The group's channels may have changed: the close
// names the group, not a channel.
func (s *Service) orphanAssetClose(key string, h assetHeader, since time.Time, why error) (*event.Envelope, error) {
	end := timeOf(h.lastClosed)
	switch {
	case since.IsZero(): // an alarm of an older layout, as endAlarm takes it
		since = end
	case end.Before(since):
		end = since
	}
	method := detect.MethodPCA
	if h.method == methodByte(detect.MethodVote) {
		method = detect.MethodVote
	}
	zero := 0.0
	b := groupAnomalyBody{
		Series: key, Metric: h.group, Value: &zero, Score: &zero, Detector: GroupDetector,
		Group: h.group, Method: method,
		Reason: fmt.Sprintf("group %s: not restored after a restart (%v); the alarm from %s to %s is ended",
			h.group, why, since.Format(time.RFC3339), end.Format(time.RFC3339)),
		Episode: event.EpisodeClose, EpisodeID: event.DerivedID(since, "episode", key),
		Start: since, End: end, Peak: &zero,
	}
	e, err := event.New(event.KindAnomaly, h.service, end, b)
	if err != nil {
		return nil, errs.Permanent(fmt.Errorf("detector: group %s alarm close: %w", h.group, err))
	}
	var t [8]byte
	binary.LittleEndian.PutUint64(t[:], uint64(end.UnixNano()))
	e.ID = event.DerivedID(end, "group", key, string(t[:]), "close")
	e.Source = Source
	e.Labels = h.labels
	e.Severity = event.SeverityWarning
	e.Fingerprint = ""
	e.ObservedTime = s.now()
	e.Normalize(e.ObservedTime)
	return e, nil
}
