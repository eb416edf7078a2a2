package logmine

import "slices"

// A leaf of the prefix tree holds the templates of one token count and
// routing prefix; a line is compared with every one of them (best). Real
// logs keep a few per leaf, but a flood of lines unlike each other (random
// words, a fuzzer, a misparsed binary dump) puts thousands in one leaf and
// makes each new line cost as many comparisons: 40,000 such lines took
// minutes. A leaf past indexAt templates indexes them by their literal
// tokens, so that a line is compared only with the templates it can match.

// indexAt is the number of templates from which a leaf indexes them;
// below it a scan is as fast, and the common leaves pay nothing.
var indexAt = 32

// leafIndex finds a leaf's templates that a line can match. similarity is
// 0 unless the line repeats one of the template's literal tokens at its
// position (eq > 0), or nothing counts against the template (n == 0),
// which a template with a plain literal (no digit, no key) cannot have:
// that literal either is the line's token or counts against it. So the
// templates that share a literal with the line at its position, and those
// without a plain literal (loose), hold every template above 0.
type leafIndex struct {
	consts []map[string][]*cluster // by position: literal token -> templates with it there
	wild   [][]*cluster            // by position: templates with <*> there
	loose  []*cluster
}

func newLeafIndex(cs []*cluster) *leafIndex {
	x := &leafIndex{}
	for _, c := range cs {
		x.add(c)
	}
	return x
}

// countsAgainst: a literal that counts against its template whenever the
// line's token differs from it (see similarity).
func countsAgainst(c *cluster, i int) bool {
	return c.kinds[i] == kindConst && plainWord(c.tokens[i])
}

// plainWord tells a token that, as a template's literal, counts against
// it when the line differs there (countsAgainst): no digit, no key. bestIn
// bounds similarity with it, so the two must agree.
func plainWord[T string | []byte](t T) bool { return !hasDigit(t) && keyLen(t) == 0 }

// add indexes c, and counts its plain literals for bestIn's bound: c is
// indexed again whenever its tokens change.
func (x *leafIndex) add(c *cluster) {
	c.plain = 0
	for i, t := range c.tokens {
		if c.kinds[i] == kindWildcard {
			for len(x.wild) <= i {
				x.wild = append(x.wild, nil)
			}
			x.wild[i] = append(x.wild[i], c)
		}
		if c.kinds[i] != kindConst {
			continue
		}
		for len(x.consts) <= i {
			x.consts = append(x.consts, map[string][]*cluster{})
		}
		x.consts[i][t] = append(x.consts[i][t], c)
		if countsAgainst(c, i) {
			c.plain++
		}
	}
	if c.plain == 0 {
		x.loose = append(x.loose, c)
	}
}

// drop removes c, as add indexed it: before its tokens change.
func (x *leafIndex) drop(c *cluster) {
	for i, t := range c.tokens {
		if c.kinds[i] == kindWildcard {
			x.wild[i] = deleteCluster(x.wild[i], c)
		}
		if c.kinds[i] != kindConst {
			continue
		}
		cs := deleteCluster(x.consts[i][t], c)
		if len(cs) == 0 {
			delete(x.consts[i], t)
		} else {
			x.consts[i][t] = cs
		}
	}
	x.loose = deleteCluster(x.loose, c)
}

func deleteCluster(cs []*cluster, c *cluster) []*cluster {
	if i := slices.Index(cs, c); i >= 0 {
		return slices.Delete(cs, i, i+1)
	}
	return cs
}

// with returns the templates with literal t at position i.
func (x *leafIndex) with(i int, t string) []*cluster {
	if i >= len(x.consts) {
		return nil
	}
	return x.consts[i][t]
}

// wildAt returns the templates with <*> at position i.
func (x *leafIndex) wildAt(i int) []*cluster {
	if i >= len(x.wild) {
		return nil
	}
	return x.wild[i]
}

// onlyAtCandidates returns, in two lists that do not overlap, the
// templates of leaf nd that may repeat the current line at every position
// but pos (differsOnlyAt): all of them, or through its index those with
// the line's token or <*> at another position where the line holds a
// plain word (one that no other template token repeats: differsOnlyAt
// takes only it or <*> there), the fewest of the first positions looked
// at. Without the index, a flood of distinct lines under one first word
// made fold check every template of the sibling leaves for each line.
func (m *Miner) onlyAtCandidates(nd *node, pos int) (a, b []*cluster) {
	x := nd.index
	if x == nil {
		return nd.clusters, nil
	}
	a = nd.clusters
	looked := 0
	for q := range m.tk.toks {
		if q == pos {
			continue
		}
		l := m.tk.masked(q)
		if !plainWord(l) || slices.Contains(l, '<') {
			continue
		}
		if w, wl := x.with(q, string(l)), x.wildAt(q); len(w)+len(wl) < len(a)+len(b) {
			a, b = w, wl
		}
		if looked++; looked == 16 || len(a)+len(b) <= 4 {
			break
		}
	}
	return a, b
}

// addCluster puts c in leaf nd (and its index).
func (nd *node) addCluster(c *cluster) {
	nd.clusters = append(nd.clusters, c)
	c.leaf = nd
	switch {
	case nd.index != nil:
		nd.index.add(c)
	case len(nd.clusters) >= indexAt:
		nd.index = newLeafIndex(nd.clusters)
	}
}

// removeCluster takes c out of leaf nd (and its index).
func (nd *node) removeCluster(c *cluster) {
	if nd.index != nil {
		nd.index.drop(c)
	}
	nd.clusters = deleteCluster(nd.clusters, c)
}

// sharing returns the templates of leaf nd that may repeat c at every
// position but p: all of them, or through its index those with c's
// literal at another position (the rarest there).
func (nd *node) sharing(c *cluster, p int) []*cluster {
	x := nd.index
	if x == nil {
		return nd.clusters
	}
	cs := nd.clusters
	for q, t := range c.tokens {
		if q != p && c.kinds[q] == kindConst {
			if w := x.with(q, t); len(w) < len(cs) {
				cs = w
			}
		}
	}
	return cs
}

// bestIn is best over the templates of leaf nd: all of them, or through its
// index those the current line can match. A template of the index that
// shares literals with the line is compared only if it can reach the
// threshold: the literals it shares are similarity's eq, and each plain
// literal it does not share counts against it (n), so eq / (eq + its
// plain literals not shared) bounds its similarity from above. Without
// the bound, a leaf whose templates all repeat the line's routing words
// ("user said: <free text>") would compare every one of them; with it
// the result is the same, as callers take a template only at or above
// the threshold.
func (m *Miner) bestIn(nd *node, best *cluster, bestSim float64) (*cluster, float64) {
	x := nd.index
	if x == nil {
		return m.best(nd.clusters, best, bestSim)
	}
	m.stamp++
	cands := m.cands[:0]
	for i := range m.tk.toks {
		if i >= len(x.consts) {
			break
		}
		// string(bytes) in a map index does not allocate
		l := m.tk.masked(i)
		cs := x.consts[i][string(l)]
		if len(cs) == 0 {
			continue
		}
		plain := plainWord(l) // the templates' literal is l
		for _, c := range cs {
			if c.stamp != m.stamp {
				c.stamp, c.hits, c.plainHits = m.stamp, 0, 0
				cands = append(cands, c)
			}
			c.hits++
			if plain {
				c.plainHits++
			}
		}
	}
	for _, c := range cands {
		if float64(c.hits)/float64(c.hits+c.plain-c.plainHits) < m.cfg.SimilarityThreshold {
			continue
		}
		if s := m.similarity(c); better(c, s, best, bestSim) {
			best, bestSim = c, s
		}
	}
	clear(cands) // holds no template past this line
	m.cands = cands[:0]
	return m.bestUnseen(x.loose, best, bestSim)
}

// bestUnseen is best over the templates of cs not yet looked at since
// m.stamp was last moved.
func (m *Miner) bestUnseen(cs []*cluster, best *cluster, bestSim float64) (*cluster, float64) {
	for _, c := range cs {
		if c.stamp == m.stamp {
			continue
		}
		c.stamp = m.stamp
		if s := m.similarity(c); better(c, s, best, bestSim) {
			best, bestSim = c, s
		}
	}
	return best, bestSim
}
