package logmine

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Snapshot layout, version 1 (all integers uvarint unless noted):
//
//	magic "LMSN", version byte
//	seq, prefixTokens, lines, created, changed, folded, evicted, truncated
//	nTemplates, then per template in creation order:
//	    template (len + bytes), count, created, lastSeen, routeWild
//	nMerges, then per merge: from (8 bytes LE), to (8 bytes LE)
//	crc32 (IEEE, 4 bytes LE) of everything before it
//
// Ids are not stored: they are the hash of the template text, so a restored
// miner recomputes the same ones.
const (
	snapshotMagic   = "LMSN"
	snapshotVersion = 1
)

// Snapshot serialises the miner's state (templates, counts, recency, merge
// log, counters) in a compact versioned binary form for a key-value or
// object store.
func (m *Miner) Snapshot() ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	cs := make([]*cluster, 0, len(m.byID))
	for _, c := range m.byID {
		cs = append(cs, c)
	}
	slices.SortFunc(cs, func(a, b *cluster) int { return cmpU64(a.created, b.created) })
	size := 64
	for _, c := range cs {
		size += len(c.template) + 24
	}
	b := make([]byte, 0, size+len(m.mergeQ)*16)
	b = append(b, snapshotMagic...)
	b = append(b, snapshotVersion)
	for _, v := range []uint64{m.seq, uint64(m.cfg.PrefixTokens), m.stats.Lines, m.stats.Created, m.stats.Changed, m.stats.Folded, m.stats.Evicted, m.stats.Truncated} {
		b = binary.AppendUvarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(cs)))
	for _, c := range cs {
		b = binary.AppendUvarint(b, uint64(len(c.template)))
		b = append(b, c.template...)
		b = binary.AppendUvarint(b, c.count)
		b = binary.AppendUvarint(b, c.created)
		b = binary.AppendUvarint(b, c.lastSeen)
		b = binary.AppendUvarint(b, uint64(c.routeWild))
	}
	b = binary.AppendUvarint(b, uint64(len(m.mergeQ)))
	for _, mg := range m.mergeQ {
		b = binary.LittleEndian.AppendUint64(b, uint64(mg.From))
		b = binary.LittleEndian.AppendUint64(b, uint64(mg.To))
	}
	b = binary.LittleEndian.AppendUint32(b, crc32.ChecksumIEEE(b))
	return b, nil
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Restore replaces the miner's state with a snapshot. The miner keeps its
// own Config; templates beyond its MaxTemplates are dropped, least recently
// seen first. A corrupt or unknown snapshot leaves the miner unchanged and
// returns an error wrapping ErrInvalidSnapshot (permanent).
func (m *Miner) Restore(data []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(data) < len(snapshotMagic)+1+4 || string(data[:4]) != snapshotMagic {
		return errs.Permanent(fmt.Errorf("%w: not a logmine snapshot", ErrInvalidSnapshot))
	}
	if v := data[4]; v != snapshotVersion {
		return errs.Permanent(fmt.Errorf("%w: version %d, this build reads %d", ErrInvalidSnapshot, v, snapshotVersion))
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.ChecksumIEEE(body) != sum {
		return errs.Permanent(fmt.Errorf("%w: checksum mismatch (truncated or corrupted)", ErrInvalidSnapshot))
	}
	r := snapReader{b: body[5:]}
	var head [8]uint64
	for i := range head {
		head[i] = r.uvarint()
	}
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.b)) {
		r.fail("template count %d exceeds snapshot size", n)
	}
	type rec struct {
		template                 string
		count, created, lastSeen uint64
		routeWild                uint16
	}
	recs := make([]rec, 0, min(n, 1<<20))
	for i := uint64(0); i < n && r.err == nil; i++ {
		var x rec
		x.template = r.str()
		x.count, x.created, x.lastSeen = r.uvarint(), r.uvarint(), r.uvarint()
		x.routeWild = uint16(r.uvarint())
		recs = append(recs, x)
	}
	nm := r.uvarint()
	if r.err == nil && nm*16 > uint64(len(r.b)) {
		r.fail("merge count %d exceeds snapshot size", nm)
	}
	merges := make([]Merge, 0, nm)
	for i := uint64(0); i < nm && r.err == nil; i++ {
		merges = append(merges, Merge{From: TemplateID(r.u64()), To: TemplateID(r.u64())})
	}
	if r.err == nil && len(r.b) != 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	if r.err != nil {
		return errs.Permanent(fmt.Errorf("%w: %v", ErrInvalidSnapshot, r.err))
	}

	// Rebuild from scratch, in creation order, so the prefix tree has the
	// same shape; the recorded routing keeps clusters that overflowed
	// MaxChildren in the wildcard branch.
	m.byLen = map[int]*node{}
	m.byID = map[TemplateID]*cluster{}
	m.head, m.tail, m.bytes = nil, nil, 0
	m.merges = map[TemplateID]TemplateID{}
	m.mergeQ = nil
	m.seq = head[0]
	samePrefix := head[1] == uint64(m.cfg.PrefixTokens)
	m.stats = Stats{Lines: head[2], Created: head[3], Changed: head[4], Folded: head[5], Evicted: head[6], Truncated: head[7]}
	for _, x := range recs {
		if m.byID[IDOf(x.template)] != nil {
			continue // a duplicate can only come from a forged snapshot
		}
		c := newCluster(x.template)
		c.count, c.created, c.lastSeen = x.count, x.created, x.lastSeen
		if samePrefix {
			w := x.routeWild
			c.routeWild = m.insert(c, len(c.tokens), &w)
		} else {
			c.routeWild = m.insert(c, len(c.tokens), nil)
		}
		m.byID[c.id] = c
	}
	// LRU order from lastSeen, most recent at the head.
	order := make([]*cluster, 0, len(m.byID))
	for _, c := range m.byID {
		order = append(order, c)
	}
	slices.SortFunc(order, func(a, b *cluster) int { return cmpU64(a.lastSeen, b.lastSeen) })
	for _, c := range order {
		m.pushFront(c)
	}
	for m.overBound() {
		m.evict(m.tail)
	}
	for _, mg := range merges {
		m.recordMerge(mg.From, mg.To)
	}
	return nil
}

type snapReader struct {
	b   []byte
	err error
}

func (r *snapReader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf(format, args...)
	}
}

func (r *snapReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad varint")
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *snapReader) u64() uint64 {
	if r.err != nil {
		return 0
	}
	if len(r.b) < 8 {
		r.fail("truncated id")
		return 0
	}
	v := binary.LittleEndian.Uint64(r.b)
	r.b = r.b[8:]
	return v
}

func (r *snapReader) str() string {
	n := r.uvarint()
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.b)) {
		r.fail("string of %d bytes exceeds snapshot", n)
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	return s
}
