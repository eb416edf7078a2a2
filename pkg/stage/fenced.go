package stage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// FencedObjects writes objects of a state store under compare-and-set,
// so that a holder whose term ended cannot replace what the next holder
// saved. The lease fences by the holder's clock only, and nats.go's put
// sends an object's last message (its meta, which makes the chunks the
// object) without waiting for the answer: a put cut off at the holder's
// deadline, its bytes still on the way (the process paused, a slow
// link), would land after the next holder restored, and replace its
// newer state. Here the meta message is published expecting the last
// sequence of its subject that this writer saw: Claim republishes each
// meta at the start of a term, so any earlier writer's meta still on the
// way is refused, and a Put refused so is ErrFenced.
//
// The objects are the object store's own (the same chunks and meta
// messages), so any reader, and nats.go's Get, reads them as before. Put
// sends the meta only once every chunk was stored: nats.go's put sends it
// without waiting for the chunks' answers, so a put whose chunks were
// refused could still land its meta, leaving an object that names chunks
// the bucket does not hold (GetBytes reports those: ErrBrokenObject).
// Chunks no meta names (a put refused, those of the object a put
// replaced) are purged; a purge that failed is tried again at the
// object's next claim or put. Chunks a writer left when it died (a put cut
// between its chunks and its meta, a purge that failed) are purged at the
// object's next claim: each put's chunk token starts with a hash of the
// object's name.
type FencedObjects struct {
	js     jetstream.JetStream
	stream jetstream.Stream
	store  jetstream.ObjectStore
	metas  lastMsgReader // the metas' reads, the leader's
	bucket string
	last   map[string]fencedMeta // by object name: as this writer claimed or wrote it
	// lost are the chunks' tokens of the puts of each object whose meta's
	// answer was lost since its last known meta: any of them may have
	// landed (the first, say, and the next one not).
	lost map[string][]string
	// stray are the chunks' tokens of each object that no meta names, nor
	// ever will, whose purge failed (the server away when a put failed,
	// say): purged again at the object's next claim or put, else they
	// would stay in the bucket for ever.
	stray map[string][]string
}

// fencedMeta is where an object's meta message stands.
type fencedMeta struct {
	seq  uint64 // its stream sequence (0: none yet)
	nuid string // its chunks' subject token ("": none)
	// claimed: the meta is a Claim's, which republishes the one before
	// with its token; not a put of this writer's, though the token may
	// be one of its lost puts'.
	claimed bool
}

// claimHeader marks the meta messages Claim publishes.
const claimHeader = "Aiops-Claim"

// objChunkSize is nats.go's default chunk size.
const objChunkSize = 128 << 10

// NewFencedObjects writes to the object store bucket (made with
// OpenStateStore).
func NewFencedObjects(ctx context.Context, js jetstream.JetStream, bucket string) (*FencedObjects, error) {
	s, err := js.Stream(ctx, "OBJ_"+bucket)
	if err != nil {
		return nil, fmt.Errorf("state bucket %s: %w", bucket, err)
	}
	store, err := js.ObjectStore(ctx, bucket)
	if err != nil {
		return nil, fmt.Errorf("state bucket %s: %w", bucket, err)
	}
	return &FencedObjects{js: js, stream: s, store: store, metas: leaderReads{js, s.CachedInfo().Config.Name}, bucket: bucket, last: map[string]fencedMeta{}, lost: map[string][]string{}, stray: map[string][]string{}}, nil
}

// ErrBrokenObject is wrapped by a read of an object that no read will ever
// get: its meta names chunks the bucket does not hold, all or some (a
// put of nats.go whose chunks were refused and whose meta landed), or
// chunks that do not match its digest.
var ErrBrokenObject = errors.New("stage: object unreadable for good")

// errStaleRead is a read of a meta other than the last this writer knows
// stored, or than the leader's: a replica not caught up answered it. A
// failure for now, not a broken object nor another holder's write.
var errStaleRead = errors.New("stage: a replica of the bucket answered with another meta than the last stored or the leader's (not caught up yet)")

// GetBytes reads object name as the object store's GetBytes does
// (jetstream.ErrObjectNotFound when there is none), but an object that no
// read will ever get is ErrBrokenObject, told apart from a read that
// failed for now (the server away, slow), so that a caller can do without
// the one and try the other again. Read after Claim, the object does not
// change under the read.
//
// Which object is the last is the leader's word: the object store reads
// an object's meta by a direct get, which any replica of the bucket
// answers, one behind (or, after a cluster's crash, one that disagrees
// with the leader for good) among them. Its meta would restore an older
// state, or name chunks the leader has purged since and pass for a broken
// object. A read whose meta is not the leader's fails for now.
func (f *FencedObjects) GetBytes(ctx context.Context, name string, opts ...jetstream.GetObjectOpt) ([]byte, error) {
	last, err := f.current(ctx, name)
	switch {
	case errors.Is(err, ErrBrokenObject):
		return nil, err // it names the object
	case err != nil:
		return nil, fmt.Errorf("stage: reading %s: %w", name, err)
	case last.NUID == "":
		return nil, jetstream.ErrObjectNotFound
	}
	r, err := f.store.Get(ctx, name, opts...)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("stage: reading %s: %w", name, errStaleRead)
	}
	if err != nil {
		return nil, err
	}
	defer r.Close()
	if info, err := r.Info(); err != nil || info.NUID != last.NUID {
		return nil, fmt.Errorf("stage: reading %s: %w", name, errStaleRead)
	}
	data, err := io.ReadAll(r)
	if errors.Is(err, jetstream.ErrDigestMismatch) {
		return nil, fmt.Errorf("%w: %s: %w", ErrBrokenObject, name, err)
	}
	return data, err
}

// current returns object name's last meta as the bucket's leader holds
// it (no NUID: none, or deleted), once the bucket holds every chunk it
// names (ErrBrokenObject when not: read, the object would wait for them
// until its timeout, and fail).
func (f *FencedObjects) current(ctx context.Context, name string) (jetstream.ObjectInfo, error) {
	var info jetstream.ObjectInfo
	m, err := f.metas.GetLastMsgForSubject(ctx, f.metaSubject(name))
	known := f.last[name].seq // claimed or written: the stream holds it
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound) && known == 0:
		return info, nil
	case errors.Is(err, jetstream.ErrMsgNotFound):
		return info, errStaleRead
	case err != nil:
		return info, err
	case m.Sequence < known:
		return info, errStaleRead
	}
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return info, fmt.Errorf("%w: %s: its meta: %w", ErrBrokenObject, name, err)
	}
	if info.Deleted {
		return jetstream.ObjectInfo{}, nil
	}
	if info.Chunks == 0 {
		return info, nil
	}
	subject := f.chunkSubject(info.NUID)
	si, err := f.stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return info, err
	}
	if si.State.Subjects[subject] < uint64(info.Chunks) {
		return info, fmt.Errorf("%w: %s names chunks the bucket does not hold", ErrBrokenObject, name)
	}
	return info, nil
}

// lastMsgReader reads the last message of a subject of a stream.
type lastMsgReader interface {
	GetLastMsgForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error)
}

// leaderReads reads a stream's messages from its leader: the stream's own
// reads are direct gets, which any replica answers, when the stream
// allows them (an object store's does).
type leaderReads struct {
	js     jetstream.JetStream
	stream string
}

func (l leaderReads) GetLastMsgForSubject(ctx context.Context, subject string) (*jetstream.RawStreamMsg, error) {
	req, err := json.Marshal(struct {
		LastFor string `json:"last_by_subj"`
	}{subject})
	if err != nil {
		return nil, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, l.js.Options().DefaultTimeout)
		defer cancel()
	}
	answer, err := l.js.Conn().RequestWithContext(ctx, apiPrefix(l.js)+"STREAM.MSG.GET."+l.stream, req)
	if err != nil {
		return nil, err
	}
	var resp struct {
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
		Error *jetstream.APIError `json:"error"`
	}
	if err := json.Unmarshal(answer.Data, &resp); err != nil {
		return nil, fmt.Errorf("stage: reading %s: %w", subject, err)
	}
	switch {
	case resp.Error != nil && resp.Error.ErrorCode == jetstream.JSErrCodeMessageNotFound:
		return nil, jetstream.ErrMsgNotFound
	case resp.Error != nil:
		return nil, resp.Error
	case resp.Message == nil:
		return nil, jetstream.ErrInvalidJetStreamResponse
	}
	msg := &jetstream.RawStreamMsg{Subject: resp.Message.Subject, Sequence: resp.Message.Seq, Data: resp.Message.Data, Time: resp.Message.Time}
	if len(resp.Message.Header) > 0 {
		if msg.Header, err = nats.DecodeHeadersMsg(resp.Message.Header); err != nil {
			return nil, fmt.Errorf("stage: reading %s: %w", subject, err)
		}
	}
	return msg, nil
}

// apiPrefix is the prefix of js's API subjects.
func apiPrefix(js jetstream.JetStream) string {
	switch o := js.Options(); {
	case o.Domain != "":
		return "$JS." + o.Domain + ".API."
	case o.APIPrefix != "":
		return strings.TrimSuffix(o.APIPrefix, ".") + "."
	}
	return jetstream.DefaultAPIPrefix
}

// tagKey is the key of the metadata that holds a put's tag (PutTagged).
const tagKey = "aiops-tag"

func tagMetadata(tag string) map[string]string {
	if tag == "" {
		return nil
	}
	return map[string]string{tagKey: tag}
}

// Tag is the tag the object name was last written with (PutTagged): ""
// for none, or for no object.
func (f *FencedObjects) Tag(ctx context.Context, name string) (string, error) {
	info, err := f.current(ctx, name)
	if err != nil {
		return "", fmt.Errorf("stage: reading %s: %w", name, err)
	}
	return info.Metadata[tagKey], nil
}

func (f *FencedObjects) metaSubject(name string) string {
	return "$O." + f.bucket + ".M." + base64.URLEncoding.EncodeToString([]byte(name))
}

func (f *FencedObjects) chunkSubject(nuid string) string { return "$O." + f.bucket + ".C." + nuid }

// Claim makes the objects this writer's for a term: it publishes each
// one's meta again (a deletion marker where there is none) expecting the
// sequence it read, so that a meta of an earlier writer still on the way
// is refused from now on. Call it before reading the objects: once it
// returned, no one else changes them. A meta that landed between the
// read and the claim is read again.
func (f *FencedObjects) Claim(ctx context.Context, names ...string) error {
	// Listed before the metas are claimed: a put that lands its meta
	// meanwhile is read by the claim, and its chunks are kept.
	leftovers, err := f.chunkTokens(ctx)
	if err != nil {
		return fmt.Errorf("stage: claiming %v: %w", names, err)
	}
	for _, name := range names {
		for {
			at, data, err := f.readMeta(ctx, name)
			if err != nil {
				return err
			}
			seq, err := f.publishMeta(ctx, name, data, at.seq, true)
			if errors.Is(err, ErrFenced) {
				continue // a late write landed meanwhile: it is the last one
			}
			if err != nil {
				return fmt.Errorf("stage: claiming %s: %w", name, err)
			}
			f.last[name] = fencedMeta{seq: seq, nuid: at.nuid}
			// The metas of this writer's lost puts that did not land
			// never will (refused from now on): no meta names their
			// chunks.
			orphans := f.takeStray(name)
			prefix := tokenPrefix(name)
			for _, o := range leftovers {
				if o != at.nuid && strings.HasPrefix(o, prefix) {
					orphans = append(orphans, o)
				}
			}
			for _, o := range f.lost[name] {
				if o != at.nuid {
					orphans = append(orphans, o)
				}
			}
			delete(f.lost, name)
			f.purgeChunks(ctx, name, orphans...)
			break
		}
	}
	return nil
}

// readMeta returns where name's meta stands and its data (a deletion
// marker when there is no meta).
func (f *FencedObjects) readMeta(ctx context.Context, name string) (fencedMeta, []byte, error) {
	m, err := f.metas.GetLastMsgForSubject(ctx, f.metaSubject(name))
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		data, err := json.Marshal(jetstream.ObjectInfo{ObjectMeta: jetstream.ObjectMeta{Name: name}, Bucket: f.bucket, Deleted: true})
		return fencedMeta{}, data, err
	}
	if err != nil {
		return fencedMeta{}, nil, fmt.Errorf("stage: reading %s: %w", name, err)
	}
	var info jetstream.ObjectInfo
	if err := json.Unmarshal(m.Data, &info); err != nil {
		return fencedMeta{}, nil, fmt.Errorf("stage: reading %s: %w", name, err)
	}
	at := fencedMeta{seq: m.Sequence, claimed: m.Header.Get(claimHeader) != ""}
	if !info.Deleted {
		at.nuid = info.NUID
	}
	return at, m.Data, nil
}

// publishMeta publishes name's meta, replacing the one before, if the
// last on its subject is at sequence expect (ErrFenced when not); a
// claim's is marked so.
func (f *FencedObjects) publishMeta(ctx context.Context, name string, data []byte, expect uint64, claim bool) (uint64, error) {
	m := nats.NewMsg(f.metaSubject(name))
	m.Header.Set(jetstream.MsgRollup, jetstream.MsgRollupSubject)
	if claim {
		m.Header.Set(claimHeader, "1")
	}
	m.Data = data
	ack, err := f.js.PublishMsg(ctx, m, jetstream.WithExpectLastSequencePerSubject(expect))
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && (apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant) {
		return 0, fmt.Errorf("%w: %s was written by another holder since this one claimed it", ErrFenced, name)
	}
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// Put writes data as the object name, which this writer claimed, unless
// another one claimed or wrote it since (ErrFenced: the term is over).
func (f *FencedObjects) Put(ctx context.Context, name string, data []byte) error {
	return f.PutTagged(ctx, name, data, "")
}

// PutTagged is Put with tag kept in the object's meta (Tag reads it
// back; a claim keeps it): a checkpoint that writes several objects tags
// them alike, so that a restore tells whether they were written together
// or a crash came between the puts.
func (f *FencedObjects) PutTagged(ctx context.Context, name string, data []byte, tag string) error {
	last, ok := f.last[name]
	if !ok {
		return fmt.Errorf("stage: %s written before it was claimed", name)
	}
	nuid := chunkToken(name)
	chunks := f.chunkSubject(nuid)
	purge := func() { f.purgeChunks(context.WithoutCancel(ctx), name, nuid) }
	n := 0
	for off := 0; off < len(data); off += objChunkSize {
		if _, err := f.js.Publish(ctx, chunks, data[off:min(off+objChunkSize, len(data))]); err != nil {
			purge()
			return fmt.Errorf("stage: saving %s: %w", name, err)
		}
		n++
	}
	sum := sha256.Sum256(data)
	meta, err := json.Marshal(jetstream.ObjectInfo{
		ObjectMeta: jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: objChunkSize}, Metadata: tagMetadata(tag)},
		Bucket:     f.bucket, NUID: nuid, Size: uint64(len(data)), Chunks: uint32(n),
		Digest: "SHA-256=" + base64.URLEncoding.EncodeToString(sum[:]),
	})
	if err != nil {
		purge()
		return err
	}
	// Chunks no meta names once this one is the last: those of the
	// object it replaces, and those of a put whose answer was lost.
	orphans := append([]string{last.nuid}, f.lost[name]...)
	orphans = append(orphans, f.stray[name]...)
	seq, err := f.publishMeta(ctx, name, meta, last.seq, false)
	if errors.Is(err, ErrFenced) && len(f.lost[name]) > 0 {
		// The meta of one of this writer's puts whose answer was lost
		// may be the one that landed: then it is the last. Not if a
		// claim republished it: the next holder's term began.
		at, _, rerr := f.readMeta(ctx, name)
		switch {
		case rerr != nil:
			// Whose meta is last is not known: not fenced for that,
			// the next put looks again. This one's meta was refused.
			purge()
			return fmt.Errorf("stage: saving %s: %w", name, rerr)
		case at.seq <= last.seq:
			// The stream has a later one than that: a replica's stale
			// answer.
			purge()
			return fmt.Errorf("stage: saving %s: %w", name, errStaleRead)
		case !at.claimed && slices.Contains(f.lost[name], at.nuid):
			seq, err = f.publishMeta(ctx, name, meta, at.seq, false)
		}
	}
	switch {
	case errors.Is(err, ErrFenced):
		purge()
		return err
	case err != nil:
		// Its answer lost, the meta may have landed: its chunks stay.
		f.lost[name] = append(f.lost[name], nuid)
		return fmt.Errorf("stage: saving %s: %w", name, err)
	}
	delete(f.lost, name)
	delete(f.stray, name)
	f.last[name] = fencedMeta{seq: seq, nuid: nuid}
	f.purgeChunks(ctx, name, orphans...)
	return nil
}

// Delete deletes object name, which this writer claimed, unless another
// one claimed or wrote it since (ErrFenced).
func (f *FencedObjects) Delete(ctx context.Context, name string) error {
	last, ok := f.last[name]
	if !ok {
		return fmt.Errorf("stage: %s deleted before it was claimed", name)
	}
	if last.nuid == "" && len(f.lost[name]) == 0 {
		return nil // there is none
	}
	marker, err := json.Marshal(jetstream.ObjectInfo{ObjectMeta: jetstream.ObjectMeta{Name: name}, Bucket: f.bucket, Deleted: true})
	if err != nil {
		return err
	}
	seq, err := f.publishMeta(ctx, name, marker, last.seq, false)
	if err != nil {
		return fmt.Errorf("stage: deleting %s: %w", name, err)
	}
	orphans := append(append([]string{last.nuid}, f.lost[name]...), f.takeStray(name)...)
	delete(f.lost, name)
	f.last[name] = fencedMeta{seq: seq}
	f.purgeChunks(ctx, name, orphans...)
	return nil
}

// chunkToken is a new token for the chunks of a put of name: its
// tokenPrefix, then random bytes.
func chunkToken(name string) string {
	var random [8]byte
	_, _ = rand.Read(random[:])
	return tokenPrefix(name) + hex.EncodeToString(random[:])
}

// tokenPrefix starts the chunk tokens of name's puts: a hash of the name.
// It tells whose chunks are left in the bucket after a writer died (those
// of a put cut between its chunks and its meta, or whose purge failed):
// the object's next claim purges them, whichever writer makes it.
func tokenPrefix(name string) string {
	h := sha256.Sum256([]byte(name))
	return hex.EncodeToString(h[:8])
}

// chunkTokens lists the tokens of every chunk subject the bucket holds.
func (f *FencedObjects) chunkTokens(ctx context.Context) ([]string, error) {
	prefix := f.chunkSubject("")
	si, err := f.stream.Info(ctx, jetstream.WithSubjectFilter(prefix+"*"))
	if err != nil {
		return nil, err
	}
	tokens := make([]string, 0, len(si.State.Subjects))
	for subj := range si.State.Subjects {
		tokens = append(tokens, subj[len(prefix):])
	}
	return tokens, nil
}

// takeStray returns the stray chunks' tokens of name and forgets them.
func (f *FencedObjects) takeStray(name string) []string {
	s := f.stray[name]
	delete(f.stray, name)
	return s
}

// purgeChunks purges the chunks of tokens, which no meta of name names
// nor ever will; those whose purge failed are kept in stray, for the next
// claim or put of name to purge.
func (f *FencedObjects) purgeChunks(ctx context.Context, name string, tokens ...string) {
	for _, o := range tokens {
		if o == "" {
			continue
		}
		if err := f.stream.Purge(ctx, jetstream.WithPurgeSubject(f.chunkSubject(o))); err != nil && !slices.Contains(f.stray[name], o) {
			f.stray[name] = append(f.stray[name], o)
		}
	}
}
