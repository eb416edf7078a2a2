package logmine

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"
)

// TemplateID identifies a template by its text: the 64-bit FNV-1a hash of
// the template string. Two miners (or one miner before and after a restart)
// that reach the same template give it the same id.
type TemplateID uint64

// IDOf returns the id of a template string.
func IDOf(template string) TemplateID {
	h := uint64(14695981039346656037)
	for i := 0; i < len(template); i++ {
		h ^= uint64(template[i])
		h *= 1099511628211
	}
	return TemplateID(h)
}

// String is the id as 16 lower-case hex digits.
func (id TemplateID) String() string {
	var b [16]byte
	return string(id.appendHex(b[:0]))
}

func (id TemplateID) appendHex(b []byte) []byte {
	const hexd = "0123456789abcdef"
	for s := 60; s >= 0; s -= 4 {
		b = append(b, hexd[(id>>uint(s))&0xf])
	}
	return b
}

// MarshalText implements encoding.TextMarshaler.
func (id TemplateID) MarshalText() ([]byte, error) { return id.appendHex(nil), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (id *TemplateID) UnmarshalText(b []byte) error {
	v, err := ParseTemplateID(string(b))
	if err != nil {
		return err
	}
	*id = v
	return nil
}

// ParseTemplateID parses the 16 hex digits that String writes.
func ParseTemplateID(s string) (TemplateID, error) {
	if len(s) != 16 {
		return 0, fmt.Errorf("logmine: template id %q: want 16 hex digits", s)
	}
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("logmine: template id %q: %w", s, err)
	}
	return TemplateID(v), nil
}

// Merge records that a template was generalised (or folded into an equal
// one): lines that carried From now belong to To.
type Merge struct {
	From, To TemplateID
}

// Result is what Match found for one line.
type Result struct {
	ID       TemplateID
	Template string
	// Params are the values at the template's <*> positions, in order;
	// they are substrings of the matched line.
	Params []string
	// New is set when this line created the template.
	New bool
	// Changed is set when this line generalised existing templates:
	// PreviousID was the id before, and Merges lists every template folded
	// into ID (usually one, PreviousID -> ID; several when values in a
	// routing position were folded, see Config.FoldAfter).
	Changed    bool
	PreviousID TemplateID
	Merges     []Merge
	// Truncated is set when the line was longer than Config.MaxLineBytes.
	Truncated bool
}

// Template is a snapshot of one template's state.
type Template struct {
	ID       TemplateID
	Template string
	Count    uint64
}

// Stats counts what the miner did since it was created (or restored).
type Stats struct {
	Lines     uint64 // lines matched
	Templates int    // templates held now
	Created   uint64 // templates created
	Changed   uint64 // generalisations (each also recorded as a merge)
	Folded    uint64 // templates folded into another (equal text, or FoldAfter)
	Evicted   uint64 // templates evicted by MaxTemplates or MaxTemplateBytes
	Truncated uint64 // lines cut at MaxLineBytes
	// TemplateBytes estimates the heap the templates held take (counted
	// against MaxTemplateBytes)
	TemplateBytes int64
}

// tokenKind classifies a template token.
const (
	kindConst    uint8 = iota // a literal token
	kindPartial               // literal text around masked variables, e.g. "blk_<*>"
	kindWildcard              // exactly "<*>"
)

type cluster struct {
	id        TemplateID
	template  string
	tokens    []string // substrings of template
	kinds     []uint8
	params    int
	count     uint64
	created   uint64 // creation sequence, orders clusters in snapshots
	lastSeen  uint64
	routeWild uint16 // bit i: the i-th routing level used the wildcard child
	leaf      *node
	stamp     uint64 // Miner.stamp when bestIn last looked at it
	// plain is the number of its plain literals (countsAgainst), set by
	// the leaf index that holds it; hits and plainHits are bestIn's count
	// of its literals, and of its plain ones, that the current line
	// repeats (set when stamp is)
	plain, hits, plainHits int32
	// size is the heap bytes it is counted for in Miner.bytes while in
	// the LRU list (linked)
	size   int
	linked bool
	// LRU list, most recent at Miner.head
	prev, next *cluster
}

type node struct {
	parent   *node
	key      string
	children map[string]*node
	clusters []*cluster
	index    *leafIndex // past indexAt clusters (leafindex.go)
}

// Miner mines templates online. It is safe for concurrent use; Match
// serialises on a mutex because it updates shared state.
type Miner struct {
	mu     sync.Mutex
	cfg    Config
	tk     tokenizer
	byLen  map[int]*node
	byID   map[TemplateID]*cluster
	head   *cluster
	tail   *cluster
	seq    uint64
	stats  Stats
	bytes  int64 // the sizes of the templates in the LRU list
	merges map[TemplateID]TemplateID
	mergeQ []Merge // order of merges, to bound the log
	tb     []byte
	fam    []*cluster // scratch of wordFold
	words  []string   // scratch of wordFold
	stamp  uint64     // moved by each bestIn
	cands  []*cluster // scratch of bestIn
	// compared counts similarity's comparisons (tests: the leaf index
	// bounds them)
	compared uint64
	// foldChecked counts fold's checks of a template (differsOnlyAt)
	foldChecked uint64
}

// New returns a Miner for cfg.
func New(cfg Config) (*Miner, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	set, _ := enabledMasks(cfg.DisabledMasks)
	cfg.DisabledMasks = slices.Clone(cfg.DisabledMasks)
	return &Miner{
		cfg:    cfg,
		tk:     tokenizer{masks: set},
		byLen:  map[int]*node{},
		byID:   map[TemplateID]*cluster{},
		merges: map[TemplateID]TemplateID{},
	}, nil
}

// Config returns the miner's configuration.
func (m *Miner) Config() Config {
	c := m.cfg
	c.DisabledMasks = slices.Clone(c.DisabledMasks)
	return c
}

// Match mines one line (the message content, without its header) and
// returns its template. Params is a new slice; use MatchInto on hot paths.
func (m *Miner) Match(line string) Result {
	var r Result
	m.MatchInto(line, &r)
	return r
}

// MatchInto is Match writing into r and reusing r.Params, so that a line
// that matches a known template costs no allocation.
func (m *Miner) MatchInto(line string, r *Result) {
	m.mu.Lock()
	defer m.mu.Unlock()
	params := r.Params[:0]
	*r = Result{}
	line = FirstLineWithLetter(line)
	if line, r.Truncated = CutLine(line, m.cfg.MaxLineBytes); r.Truncated {
		m.stats.Truncated++
	}
	line = trimTrailingSpace(line)
	m.stats.Lines++
	m.seq++
	m.tk.tokenize(line)
	c := m.search()
	changed := false
	var wordMerges []Merge
	if c != nil {
		// Only a line that would change c can differ from it in words, so
		// a line of a known template pays nothing for wordFold.
		if changed = m.absorb(c); changed {
			refused := c.leaf
			if c, wordMerges = m.wordFold(c); c != nil && len(wordMerges) > 0 {
				changed = m.absorb(c) // the folded template may differ elsewhere
			} else if c == nil {
				// wordFold refused the own leaf's template: one of another
				// branch (the wildcard one, where generalised templates
				// go) may cover the line as it is, and takes it then.
				c = m.coveringElsewhere(refused)
				changed = false
			}
		}
	}
	if c == nil {
		var merges []Merge
		if c, merges = m.fold(); c != nil {
			r.Changed, r.PreviousID, r.Merges = true, merges[0].From, merges
		} else if c, r.New = m.create(); r.New {
			if folded, merges := m.consolidateNew(c); len(merges) > 0 {
				r.New, r.Changed, r.PreviousID, r.Merges = false, true, c.id, merges
				c = folded
			}
		}
	} else if old := c.id; changed {
		c = m.generalise(c, string(m.tb)) // may fold c into an equal template
		r.Changed, r.PreviousID = true, old
		r.Merges = append(wordMerges, Merge{From: old, To: c.id})
		c, r.Merges = m.sweep(c, r.Merges)
		c, r.Merges = m.sweepCovered(c, r.Merges)
	} else if len(wordMerges) > 0 {
		r.Changed, r.PreviousID = true, wordMerges[0].From
		c, r.Merges = m.sweepCovered(c, wordMerges)
	}
	c.count++
	c.lastSeen = m.seq
	m.touch(c)
	// A fold's target (templateOf) is made without evicting: the bound
	// holds after every line, as Restore applies it.
	for m.overBound() {
		m.evict(m.tail)
	}
	m.boundLeaf(c)
	r.ID = c.id
	r.Template = c.template
	r.Params = m.extract(c, params)
}

// routeKey is the child key a token routes by. A "key=value" token routes
// by its key, so the values of one field share a branch; other tokens that
// hold a variable or a digit go to the wildcard child, as in Drain, so that
// ids the maskers miss ("user42") do not each open a branch. wild is set
// for the wildcard child; otherwise key is a prefix of tok.
func routeKey(tok []byte) (key int, wild bool) {
	if k := keyLen(tok); k > 0 {
		return k, false
	}
	for i, c := range tok {
		if isDigit(c) || (c == '<' && i+2 < len(tok) && tok[i+1] == '*' && tok[i+2] == '>') {
			return 0, true
		}
	}
	return len(tok), false
}

func (m *Miner) levels(n int) int { return min(n, m.cfg.PrefixTokens) }

// search finds the leaf for the current tokens and the most similar cluster
// in it that passes the threshold.
func (m *Miner) search() *cluster {
	n := len(m.tk.toks)
	root := m.byLen[n]
	if root == nil {
		return nil
	}
	cur := root
	var parent *node
	for i := 0; i < m.levels(n) && cur != nil; i++ {
		parent = cur
		tok := m.tk.masked(i)
		var next *node
		if k, wild := routeKey(tok); !wild {
			next = cur.children[string(tok[:k])]
		}
		if next == nil {
			next = cur.children[Wildcard]
		}
		cur = next
	}
	var best *cluster
	sim := -1.0
	var seen, seenWild *node // leaves looked at
	if cur != nil {
		best, sim = m.bestIn(cur, nil, -1)
		seen = cur
		if sim < m.cfg.SimilarityThreshold && parent != nil {
			// The line's own branch has no match: the template may have
			// been folded into the wildcard branch after this value was
			// seen.
			if w := parent.children[Wildcard]; w != nil && w != cur {
				best, sim = m.bestIn(w, best, sim)
				seenWild = w
			}
		}
	}
	if sim < m.cfg.SimilarityThreshold && m.levels(n) > 1 {
		// Nor there: a template folded at an earlier routing level
		// (consolidateNew) sits in that level's wildcard branch, which the
		// walk leaves when the line's own branch exists. Only lines that
		// would make a new template pay for this.
		best, sim = m.searchBranches(root, 0, n, best, sim, seen, seenWild)
	}
	if best == nil || sim < m.cfg.SimilarityThreshold {
		return nil
	}
	return best
}

// coveringElsewhere returns the template of a leaf other than skip that
// the line reaches and that covers it unchanged (absorb would change
// nothing), the most similar one; nil when none does.
func (m *Miner) coveringElsewhere(skip *node) *cluster {
	n := len(m.tk.toks)
	root := m.byLen[n]
	if root == nil {
		return nil
	}
	best, sim := m.searchBranches(root, 0, n, nil, -1, skip, nil)
	if best == nil || sim < m.cfg.SimilarityThreshold || m.absorb(best) {
		return nil
	}
	return best
}

// searchBranches returns the most similar template of the leaves under nd
// (at routing level i) that the line reaches by its own key or the
// wildcard at each level, and the given best so far.
// Leaves seen and seenWild were looked at already.
func (m *Miner) searchBranches(nd *node, i, n int, best *cluster, sim float64, seen, seenWild *node) (*cluster, float64) {
	if i == m.levels(n) {
		if nd == seen || nd == seenWild {
			return best, sim
		}
		return m.bestIn(nd, best, sim)
	}
	tok := m.tk.masked(i)
	if k, wild := routeKey(tok); !wild {
		if ch := nd.children[string(tok[:k])]; ch != nil {
			best, sim = m.searchBranches(ch, i+1, n, best, sim, seen, seenWild)
		}
	}
	if ch := nd.children[Wildcard]; ch != nil {
		best, sim = m.searchBranches(ch, i+1, n, best, sim, seen, seenWild)
	}
	return best, sim
}

// best returns the most similar of cs and the given best so far. Ties go to
// the template with more parameters, then to the smaller text, so the
// choice never depends on insertion order.
func (m *Miner) best(cs []*cluster, best *cluster, bestSim float64) (*cluster, float64) {
	for _, c := range cs {
		if s := m.similarity(c); better(c, s, best, bestSim) {
			best, bestSim = c, s
		}
	}
	return best, bestSim
}

// better: c, of similarity s, wins over best, of bestSim.
func better(c *cluster, s float64, best *cluster, bestSim float64) bool {
	return s > bestSim || (s == bestSim && (c.params > best.params || (c.params == best.params && c.template < best.template)))
}

// fold handles a value in the last routing position that is a variable the
// maskers missed ("Replica web-a is back in sync"): Drain would open a
// branch, and a template, for every value. When the line and clusters in
// FoldAfter-1 sibling branches differ only in that token, they are folded
// into one template with a wildcard there, in the wildcard branch, where
// later values find it. Two or fewer values stay apart: "Failed password
// for" and "Failed none for" are different messages.
func (m *Miner) fold() (*cluster, []Merge) {
	n := len(m.tk.toks)
	levels := m.levels(n)
	if m.cfg.FoldAfter < 2 || levels == 0 {
		return nil, nil
	}
	pos := levels - 1
	k, wild := routeKey(m.tk.masked(pos))
	if wild {
		return nil, nil
	}
	own := string(m.tk.masked(pos)[:k])
	cur := m.byLen[n]
	for i := 0; i < pos && cur != nil; i++ {
		tok := m.tk.masked(i)
		var next *node
		if k, wild := routeKey(tok); !wild {
			next = cur.children[string(tok[:k])]
		}
		if next == nil {
			next = cur.children[Wildcard]
		}
		cur = next
	}
	if cur == nil {
		return nil, nil
	}
	var sibs []*cluster
	values := 1
	for key, ch := range cur.children {
		if key == Wildcard || key == own {
			continue
		}
		found := false
		a, b := m.onlyAtCandidates(ch, pos)
		for _, cs := range [2][]*cluster{a, b} {
			for _, c := range cs {
				if m.differsOnlyAt(c, pos) {
					sibs = append(sibs, c)
					found = true
				}
			}
		}
		if found {
			values++
		}
	}
	if values < m.cfg.FoldAfter {
		return nil, nil
	}
	// the folded template: the line, generalised by every sibling
	toks := make([]string, n)
	for i := range toks {
		toks[i] = string(m.tk.masked(i))
	}
	toks[pos] = Wildcard
	if !keepsLiteral(toks) {
		return nil, nil
	}
	return m.foldInto(m.templateOf(strings.Join(toks, " ")), sibs, nil)
}

// keepsLiteral: a folded template must keep a token that is not <*>. The
// folds count values at a position among messages that agree everywhere
// else; a message of one word has no "else", so its words ("running",
// "halted") are messages, not values, and "<*>" would be every message
// of its length.
func keepsLiteral(toks []string) bool {
	return slices.ContainsFunc(toks, func(t string) bool { return t != Wildcard })
}

// templateOf returns the template with text tmpl, created (in the tree,
// the id index and the LRU list) when it is not held: the target of a
// fold.
func (m *Miner) templateOf(tmpl string) *cluster {
	if c := m.byID[IDOf(tmpl)]; c != nil && c.template == tmpl {
		return c
	}
	c := newCluster(tmpl)
	m.seq++
	c.created = m.seq
	c.routeWild = m.insert(c, len(c.tokens), nil)
	m.byID[c.id] = c
	m.pushFront(c)
	m.stats.Created++
	delete(m.merges, c.id) // the id is live again
	return c
}

// plainWord: a token with no digit and nothing masked, which neither the
// maskers nor the shape rule take for a variable.
func (m *Miner) plainWord(i int) bool {
	k := m.tk.toks[i]
	return k.vEnd == k.vStart && !hasDigit(m.tk.masked(i))
}

// wordFold decides what the line does with c, the most similar template,
// when they differ at positions where both hold plain words (see
// Config.WordFoldAfter). The family is the templates of c's leaf that
// agree with the line everywhere else. A differing position is a variable
// when the family and the line show WordFoldAfter words there (or a
// template already has <*> there); the members that agree with the line at
// the other differing positions are then folded into one template with <*>
// at the variable ones, which the line joins. When no differing position
// is a variable the line does not join c (nil): the words tell messages
// apart.
func (m *Miner) wordFold(c *cluster) (*cluster, []Merge) {
	if m.cfg.WordFoldAfter < 2 {
		return c, nil
	}
	var diff uint64 // positions (below 64) where c and the line hold different plain words
	for i, t := range c.tokens {
		if c.kinds[i] != kindConst {
			continue
		}
		l := m.tk.masked(i)
		if t == string(l) || sameKey(t, l) || !m.plainWord(i) || hasDigit(t) {
			continue
		}
		if i >= 64 {
			return c, nil // very long lines: generalise as before
		}
		diff |= 1 << i
	}
	if diff == 0 {
		return c, nil
	}
	family := m.fam[:0]
	for _, o := range c.leaf.clusters {
		if m.agreesOutside(o, diff) {
			family = append(family, o)
		}
	}
	m.fam = family
	var vars uint64
	for p := 0; p < 64; p++ {
		if diff&(1<<p) == 0 {
			continue
		}
		words := m.words[:0]
		words = append(words, string(m.tk.masked(p)))
		variable := false
		for _, o := range family {
			if o.kinds[p] == kindWildcard {
				variable = true
				break
			}
			if !slices.Contains(words, o.tokens[p]) {
				words = append(words, o.tokens[p])
			}
		}
		m.words = words
		if variable || len(words) >= m.cfg.WordFoldAfter {
			vars |= 1 << p
		}
	}
	if vars == 0 {
		return nil, nil
	}
	// fold the members that agree with the line at the other differing
	// positions: they are the same message with other values
	var sibs []*cluster
	for _, o := range family {
		if m.agreesOutside(o, vars) {
			sibs = append(sibs, o)
		}
	}
	toks := make([]string, len(m.tk.toks))
	for i := range toks {
		toks[i] = string(m.tk.masked(i))
		if vars&(1<<i) != 0 {
			toks[i] = Wildcard
		}
	}
	if !keepsLiteral(toks) {
		return nil, nil
	}
	return m.foldInto(m.templateOf(strings.Join(toks, " ")), sibs, nil)
}

// Consolidate is a second merging pass over every template held. Online,
// a line compares with the templates of its own branch of the prefix tree,
// and consolidateNew looks across branches only at the routing positions
// of the template the line creates. Here, templates of one length that
// agree everywhere but at one position are folded into one with <*> there
// when one of them already has <*> or a word with digits there, or when
// they show Config.ConsolidateAfter different words there; then a
// template that ends in a value takes in the longer ones that only
// continue that value (see consolidateTails). It returns the merges made
// (each also recorded for Resolve). The offline parse runs it once at the
// end; it holds the lock for a pass over the templates of each length
// (0.6 s over 50,000), so a service runs it seldom if at all.
func (m *Miner) Consolidate() []Merge {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cfg.ConsolidateAfter < 2 {
		return nil
	}
	var merges []Merge
	lengths := make([]int, 0, len(m.byLen))
	for n := range m.byLen {
		lengths = append(lengths, n)
	}
	slices.Sort(lengths)
	for _, n := range lengths {
		// a fold adds a <*> that can make new groups: until none is made
		for folded := true; folded; {
			folded = false
			for p := 0; p < n; p++ {
				var f bool
				merges, f = m.consolidateAt(m.templatesOfLen(n), p, merges)
				folded = folded || f
			}
		}
	}
	return m.consolidateTails(merges)
}

// templatesOfLen returns the templates of n tokens, sorted by text.
func (m *Miner) templatesOfLen(n int) []*cluster {
	var cs []*cluster
	var walk func(*node)
	walk = func(nd *node) {
		cs = append(cs, nd.clusters...)
		for _, ch := range nd.children {
			walk(ch)
		}
	}
	if root := m.byLen[n]; root != nil {
		walk(root)
	}
	slices.SortFunc(cs, func(a, b *cluster) int { return cmp.Compare(a.template, b.template) })
	return cs
}

// consolidateAt folds the templates of cs (one length, sorted) that agree
// everywhere but at position p, where there is a <*>, a word with digits
// (a value by its shape, as in similarity: "node-7f3k") or
// ConsolidateAfter different words, and reports whether it folded any.
func (m *Miner) consolidateAt(cs []*cluster, p int, merges []Merge) ([]Merge, bool) {
	if len(cs) < 2 {
		return merges, false
	}
	groups := map[string][]*cluster{}
	var keys []string
	for _, c := range cs {
		if c.kinds[p] == kindPartial {
			continue // "key=<*>": a field, not a word
		}
		key := strings.Join(c.tokens[:p], " ") + "\x00" + strings.Join(c.tokens[p+1:], " ")
		if groups[key] == nil {
			keys = append(keys, key)
		}
		groups[key] = append(groups[key], c)
	}
	folded := false
	for _, key := range keys {
		g := groups[key]
		if len(g) < 2 {
			continue
		}
		if !m.variableAt(g, p) {
			continue
		}
		toks := slices.Clone(g[0].tokens)
		toks[p] = Wildcard
		if !keepsLiteral(toks) {
			continue
		}
		_, merges = m.foldInto(m.templateOf(strings.Join(toks, " ")), g, merges)
		folded = true
	}
	return merges, folded
}

// variableAt: whether position p, where the templates of g (two or more)
// differ, holds a variable: one of them has <*> there or a word with
// digits (a value by its shape), or they show ConsolidateAfter different
// words there.
func (m *Miner) variableAt(g []*cluster, p int) bool {
	if len(g) < 2 {
		return false
	}
	for _, c := range g {
		if c.kinds[p] == kindWildcard || hasDigit(c.tokens[p]) {
			return true
		}
	}
	return len(g) >= m.cfg.ConsolidateAfter
}

// consolidateNew is Consolidate's fold for c, a template just created, at
// the routing positions, where the online folds do not look across
// branches: the templates that agree with c everywhere but at such a
// position are folded when the position holds a variable (variableAt), so
// a name opening a message becomes <*> online once ConsolidateAfter names
// were seen, as in the offline pass.
func (m *Miner) consolidateNew(c *cluster) (*cluster, []Merge) {
	if m.cfg.ConsolidateAfter < 2 {
		return c, nil
	}
	n := len(c.tokens)
	for p := 0; p < m.levels(n); p++ {
		if c.kinds[p] == kindPartial {
			continue
		}
		g := m.differingAt(c, p)
		if !m.variableAt(g, p) {
			continue
		}
		toks := slices.Clone(c.tokens)
		toks[p] = Wildcard
		if !keepsLiteral(toks) {
			continue
		}
		return m.foldInto(m.templateOf(strings.Join(toks, " ")), g, nil)
	}
	return c, nil
}

// differingAt returns the templates of c's length, c included, that repeat
// c at every position but p, where they do not hold a "key=<*>" field:
// every branch at routing level p, and at the other levels c's own key or
// the wildcard.
func (m *Miner) differingAt(c *cluster, p int) []*cluster {
	n := len(c.tokens)
	var out []*cluster
	var walk func(nd *node, i int)
	walk = func(nd *node, i int) {
		if i == m.levels(n) {
			for _, o := range nd.sharing(c, p) {
				if o.kinds[p] != kindPartial && equalExcept(c, o, p) {
					out = append(out, o)
				}
			}
			return
		}
		if i == p {
			for _, ch := range nd.children {
				walk(ch, i+1)
			}
			return
		}
		t := c.tokens[i]
		if k, wild := routeKey([]byte(t)); !wild {
			if ch := nd.children[t[:k]]; ch != nil {
				walk(ch, i+1)
			}
		}
		if ch := nd.children[Wildcard]; ch != nil {
			walk(ch, i+1)
		}
	}
	if root := m.byLen[n]; root != nil {
		walk(root, 0)
	}
	slices.SortFunc(out, func(a, b *cluster) int { return cmp.Compare(a.template, b.template) })
	return out
}

// equalExcept: a and b have the same tokens at every position but p.
func equalExcept(a, b *cluster, p int) bool {
	for i, t := range a.tokens {
		if i != p && t != b.tokens[i] {
			return false
		}
	}
	return true
}

// consolidateTails folds into a template that ends in a value ("Server
// environment:<*>", "failed: <*>") the longer templates that repeat it up
// to that value: the value at the end of a line is the rest of the line,
// and may hold spaces ("environment:java.vendor=Oracle Corporation"), so
// its lines differ in token count only by the value. Tokens after the
// value that are "key=value" fields of their own are optional fields, not
// the value, and keep their template apart. The template must
// keep two literal tokens besides the value, so that a short one such as
// "error <*>" does not swallow every longer message that starts with its
// word.
func (m *Miner) consolidateTails(merges []Merge) []Merge {
	tails := map[string]*cluster{} // tokens before the value, and the value's key
	for _, c := range m.byID {
		if k, ok := tailKey(c); ok {
			tails[k] = c
		}
	}
	if len(tails) == 0 {
		return merges
	}
	covered := map[*cluster][]*cluster{}
	for _, c := range m.byID {
		// the shortest such template: one that covers a longer one
		// covers what that one covers
		for n := 1; n < len(c.tokens); n++ {
			last := c.tokens[n-1]
			key := strings.Join(c.tokens[:n-1], " ") + "\x00" + last[:keyLen(last)]
			if t := tails[key]; t != nil && len(t.tokens) == n && !hasField(c.tokens[n:]) {
				covered[t] = append(covered[t], c)
				break
			}
		}
	}
	targets := make([]*cluster, 0, len(covered))
	for t := range covered {
		targets = append(targets, t)
	}
	slices.SortFunc(targets, func(a, b *cluster) int { return cmp.Compare(a.template, b.template) })
	for _, t := range targets {
		_, merges = m.absorbAll(t, covered[t], merges)
	}
	return merges
}

// hasField: one of toks is a "key=value" field of its own ("user=root"
// after "rhost=<*>"), an optional field rather than more of a value.
func hasField(toks []string) bool {
	for _, t := range toks {
		if keyLen(t) > 0 {
			return true
		}
	}
	return false
}

// tailKey: whether c ends in a value, "<*>" or "key:<*>"/"key=<*>", after
// at least two literal tokens (the key counts as one), and the key a
// longer template must repeat to be covered by it.
func tailKey(c *cluster) (string, bool) {
	n := len(c.tokens)
	if n == 0 {
		return "", false
	}
	last := c.tokens[n-1]
	k := keyLen(last)
	if last[k:] != Wildcard {
		return "", false
	}
	literals := 0
	if k > 0 {
		literals++
	}
	for i := 0; i < n-1; i++ {
		if c.kinds[i] == kindConst {
			literals++
		}
	}
	if literals < 2 {
		return "", false
	}
	return strings.Join(c.tokens[:n-1], " ") + "\x00" + last[:k], true
}

// sweepCovered folds into c, just generalised, the templates of its leaf
// that it now covers (each of their tokens equal to c's or under a <*> of
// c): held apart while a position was not known to be variable (see
// wordFold), they are the same message.
func (m *Miner) sweepCovered(c *cluster, merges []Merge) (*cluster, []Merge) {
	if m.cfg.WordFoldAfter < 2 {
		return c, merges
	}
	var sibs []*cluster
	for _, o := range c.leaf.clusters {
		if o != c && covers(c, o) {
			sibs = append(sibs, o)
		}
	}
	if len(sibs) == 0 {
		return c, merges
	}
	return m.foldInto(c, sibs, merges)
}

// covers: every token of o is c's, or under a wildcard of c.
func covers(c, o *cluster) bool {
	for i, t := range c.tokens {
		if c.kinds[i] != kindWildcard && t != o.tokens[i] {
			return false
		}
	}
	return true
}

// agreesOutside: o repeats the line at every position not in the set
// (wildcards and same-key fields count as repeats, as in differsOnlyAt).
func (m *Miner) agreesOutside(o *cluster, set uint64) bool {
	for i, t := range o.tokens {
		if (i < 64 && set&(1<<i) != 0) || o.kinds[i] == kindWildcard {
			continue
		}
		if l := m.tk.masked(i); t != string(l) && !sameKey(t, l) {
			if o.kinds[i] == kindConst && hasDigit(t) && hasDigit(l) {
				continue // values of one variable by their shape
			}
			return false
		}
	}
	return true
}

// sweep folds into c, a template in the wildcard branch of the last
// routing level with a wildcard at that position, the templates of sibling
// branches that differ from it only there: they are the same message with
// values that came before the position was known to be variable.
func (m *Miner) sweep(c *cluster, merges []Merge) (*cluster, []Merge) {
	levels := m.levels(len(c.tokens))
	if m.cfg.FoldAfter < 2 || levels == 0 {
		return c, merges
	}
	pos := levels - 1
	if c.kinds[pos] != kindWildcard || c.routeWild&(1<<pos) == 0 || c.leaf.parent == nil {
		return c, merges
	}
	var sibs []*cluster
	for _, ch := range c.leaf.parent.children {
		if ch == c.leaf {
			continue
		}
		for _, o := range ch.clusters {
			if sameExcept(c, o, pos) {
				sibs = append(sibs, o)
			}
		}
	}
	if len(sibs) == 0 {
		return c, merges
	}
	return m.foldInto(c, sibs, merges)
}

// sameExcept: a and b agree at every position but pos (wildcards and
// same-key fields agree with anything of their kind).
func sameExcept(a, b *cluster, pos int) bool {
	for i, t := range a.tokens {
		if i == pos || a.kinds[i] == kindWildcard || b.kinds[i] == kindWildcard {
			continue
		}
		if u := b.tokens[i]; t != u && !sameKey(t, []byte(u)) {
			return false
		}
	}
	return true
}

// foldInto generalises target to cover sibs, then removes sibs, adding
// their counts; every id that stops existing gets a merge to the result.
func (m *Miner) foldInto(target *cluster, sibs []*cluster, merges []Merge) (*cluster, []Merge) {
	toks := slices.Clone(target.tokens)
	for _, c := range sibs {
		for i, t := range c.tokens {
			if toks[i] == Wildcard || toks[i] == t {
				continue
			}
			if c.kinds[i] == kindWildcard {
				toks[i] = Wildcard
			} else {
				toks[i] = generalised(toks[i], []byte(t))
			}
		}
	}
	if tmpl := strings.Join(toks, " "); tmpl != target.template {
		old := target.id
		target = m.generalise(target, tmpl)
		merges = append(merges, Merge{From: old, To: target.id})
	}
	return m.absorbAll(target, sibs, merges)
}

// absorbAll removes sibs, templates that target covers, adding their
// counts to it and recording a merge for each.
func (m *Miner) absorbAll(target *cluster, sibs []*cluster, merges []Merge) (*cluster, []Merge) {
	slices.SortFunc(sibs, func(a, b *cluster) int { return cmp.Compare(a.template, b.template) })
	for _, c := range sibs {
		if c == target {
			continue
		}
		target.count += c.count
		target.lastSeen = max(target.lastSeen, c.lastSeen)
		merges = append(merges, Merge{From: c.id, To: target.id})
		m.recordMerge(c.id, target.id)
		m.remove(c)
		m.stats.Folded++
	}
	return target, merges
}

// differsOnlyAt reports whether the line repeats c everywhere except at
// position pos (wildcards and same-key fields count as repeats).
func (m *Miner) differsOnlyAt(c *cluster, pos int) bool {
	m.foldChecked++
	for i, t := range c.tokens {
		if i == pos || c.kinds[i] == kindWildcard {
			continue
		}
		if l := m.tk.masked(i); t != string(l) && !sameKey(t, l) {
			return false
		}
	}
	return true
}

// similarity is the share of the template's literal tokens that the line
// repeats. Wildcards, and variable shapes both sides share ("<*>:<*>"),
// are left out: they say nothing about whether the line is the same
// message, and counting them lets short messages with two addresses match
// anything of the same length. A plain word where the template has <*> is
// a value too (free text, names): counted against the template, a line of
// a template whose words became <*> would no longer match it. Only when
// the line repeats none of the template's literals do such words count
// against it, so that a template of variables ("<*> <*>") does not take
// in every message of its length.
func (m *Miner) similarity(c *cluster) float64 {
	m.compared++
	eq, n, wordsAtWild := 0, 0, 0
	for i, t := range c.tokens {
		l := m.tk.masked(i)
		switch c.kinds[i] {
		case kindWildcard:
			if k := m.tk.toks[i]; k.vEnd > k.vStart || hasDigit(l) {
				continue // variable meets variable, or an id the maskers left
			}
			wordsAtWild++
		case kindPartial:
			if t == string(l) || sameKey(t, l) {
				continue
			}
			n++
		default:
			if t == string(l) {
				eq++
				n++
			} else if !sameKey(t, l) && !(hasDigit(l) && hasDigit(t)) {
				// Two different words with digits ("eth3", "R27") are
				// taken by their shape for values of one variable, as the
				// maskers' variables are: neither for nor against.
				n++
			}
		}
	}
	if eq == 0 {
		n += wordsAtWild
	}
	if n == 0 {
		return 1
	}
	return float64(eq) / float64(n)
}

func hasDigit[T string | []byte](tok T) bool {
	for i := 0; i < len(tok); i++ {
		if isDigit(tok[i]) {
			return true
		}
	}
	return false
}

// keyLen is the length of a "key=" or "key:" prefix of tok (0 if none): a
// run of word characters, '.' or '-' closed by '=' or ':'. Tokens with the
// same key are the same field with different values, so they generalise to
// "key=<*>" rather than to a bare wildcard.
func keyLen[T string | []byte](tok T) int {
	for i := 0; i < len(tok); i++ {
		c := tok[i]
		if c == '=' || c == ':' {
			if i == 0 {
				return 0
			}
			return i + 1
		}
		if class[c]&cWordChar == 0 && c != '.' && c != '-' {
			return 0
		}
	}
	return 0
}

func sameKey(t string, l []byte) bool {
	k := keyLen(t)
	return k > 0 && len(l) >= k && t[:k] == string(l[:k])
}

// create adds a cluster for the current tokens.
func (m *Miner) create() (*cluster, bool) {
	n := len(m.tk.toks)
	m.tb = m.tb[:0]
	for i := range m.tk.toks {
		if i > 0 {
			m.tb = append(m.tb, ' ')
		}
		m.tb = append(m.tb, m.tk.masked(i)...)
	}
	tmpl := string(m.tb)
	id := IDOf(tmpl)
	if c := m.byID[id]; c != nil && c.template == tmpl {
		// The same text as a template routed elsewhere (possible only via
		// MaxChildren overflow): one text, one template.
		return c, false
	}
	c := newCluster(tmpl)
	m.seq++
	c.created = m.seq
	c.routeWild = m.insert(c, n, nil)
	m.byID[id] = c
	m.pushFront(c)
	m.stats.Created++
	delete(m.merges, id) // the id is live again
	for m.overBound() {
		m.evict(m.tail)
	}
	return c, true
}

func newCluster(tmpl string) *cluster {
	c := &cluster{id: IDOf(tmpl), template: tmpl}
	c.tokens = splitTemplate(tmpl)
	c.kinds = make([]uint8, len(c.tokens))
	literals := 0
	for i, t := range c.tokens {
		switch k := strings.Count(t, Wildcard); {
		case t == Wildcard:
			c.kinds[i] = kindWildcard
			c.params++
		case k > 0:
			c.kinds[i] = kindPartial
			c.params += k
		default:
			literals++
		}
	}
	c.size = templateBytes(len(tmpl), len(c.tokens), literals)
	return c
}

// splitTemplate splits a template text into its tokens.
func splitTemplate(t string) []string {
	if t == "" {
		return nil
	}
	return strings.Split(t, " ")
}

// insert places c in the tree. wild, when not nil, forces the routing
// levels (restore); otherwise the routing follows the tokens as in search.
func (m *Miner) insert(c *cluster, n int, wild *uint16) uint16 {
	cur := m.byLen[n]
	if cur == nil {
		cur = &node{}
		m.byLen[n] = cur
	}
	var used uint16
	for i := 0; i < m.levels(n); i++ {
		key := c.tokens[i]
		k, useWild := routeKey([]byte(key))
		key = key[:k]
		if wild != nil {
			useWild = useWild || *wild&(1<<i) != 0
		} else if !useWild && cur.children[key] == nil && len(cur.children) >= m.cfg.MaxChildren-1 {
			useWild = true
		}
		if useWild {
			key = Wildcard
			used |= 1 << i
		}
		next := cur.children[key]
		if next == nil {
			next = &node{parent: cur, key: key}
			if cur.children == nil { // leaves never get a map
				cur.children = map[string]*node{}
			}
			cur.children[key] = next
		}
		cur = next
	}
	cur.addCluster(c)
	return used
}

// absorb reports whether c must change to cover the current line; if so
// m.tb holds the new text.
func (m *Miner) absorb(c *cluster) bool {
	changed := false
	for i, t := range c.tokens {
		if c.kinds[i] != kindWildcard && t != string(m.tk.masked(i)) && t != generalised(t, m.tk.masked(i)) {
			changed = true
			break
		}
	}
	if !changed {
		return false
	}
	m.tb = m.tb[:0]
	for i, t := range c.tokens {
		if i > 0 {
			m.tb = append(m.tb, ' ')
		}
		if c.kinds[i] != kindWildcard && t != string(m.tk.masked(i)) {
			t = generalised(t, m.tk.masked(i))
		}
		m.tb = append(m.tb, t...)
	}
	return true
}

// generalised is the template token that covers both t and a different
// line token l: "key=<*>" when they share a key, else the bare wildcard.
// It is commutative and associative, so the final template does not depend
// on the order lines arrive in.
func generalised(t string, l []byte) string {
	if k := keyLen(t); k > 0 && sameKey(t, l) {
		if t[k:] == Wildcard {
			return t
		}
		return t[:k] + Wildcard
	}
	return Wildcard
}

// generalise gives c the template tmpl and records the merge. If another
// template already has that text, c is folded into it, which is returned.
func (m *Miner) generalise(c *cluster, tmpl string) *cluster {
	old := c.id
	id := IDOf(tmpl)
	m.stats.Changed++
	m.recordMerge(old, id)
	delete(m.byID, old)
	if other := m.byID[id]; other != nil && other.template == tmpl {
		other.count += c.count
		other.lastSeen = max(other.lastSeen, c.lastSeen)
		m.remove(c)
		m.stats.Folded++
		return other
	}
	nc := newCluster(tmpl)
	// A routing token that became <*> routes to the wildcard child now:
	// the template moves to the leaf its text leads to, the one Restore
	// (which places a template by its text and routeWild) puts it in, so
	// that a restored miner holds the same tree as one that never stopped.
	wild := c.routeWild | wildRoutes(nc.tokens, m.levels(len(nc.tokens)))
	if wild != c.routeWild {
		leaf := c.leaf
		leaf.removeCluster(c) // indexed by its old tokens
		m.prune(leaf)
		m.resize(c, nc.size)
		c.id, c.template, c.tokens, c.kinds, c.params = nc.id, nc.template, nc.tokens, nc.kinds, nc.params
		c.routeWild = m.insert(c, len(c.tokens), &wild)
		m.byID[id] = c
		return c
	}
	if x := c.leaf.index; x != nil {
		x.drop(c) // indexed by its old tokens
		defer x.add(c)
	}
	m.resize(c, nc.size)
	c.id, c.template, c.tokens, c.kinds, c.params = nc.id, nc.template, nc.tokens, nc.kinds, nc.params
	m.byID[id] = c
	return c
}

// wildRoutes has bit i set when the i-th of the first levels tokens
// routes to the wildcard child by itself (routeKey).
func wildRoutes(tokens []string, levels int) uint16 {
	var w uint16
	for i := 0; i < levels; i++ {
		if _, wild := routeKey([]byte(tokens[i])); wild {
			w |= 1 << i
		}
	}
	return w
}

func (m *Miner) recordMerge(from, to TemplateID) {
	if m.cfg.MaxMerges == 0 {
		return
	}
	m.merges[from] = to
	m.mergeQ = append(m.mergeQ, Merge{From: from, To: to})
	for len(m.mergeQ) > m.cfg.MaxMerges {
		old := m.mergeQ[0]
		m.mergeQ = m.mergeQ[1:]
		if m.merges[old.From] == old.To {
			delete(m.merges, old.From)
		}
	}
	if cap(m.mergeQ) > 4*m.cfg.MaxMerges+64 { // compact the sliding window
		m.mergeQ = slices.Clone(m.mergeQ)
	}
}

// extract appends the values at the template's wildcards to params.
func (m *Miner) extract(c *cluster, params []string) []string {
	for i := range c.tokens {
		switch c.kinds[i] {
		case kindWildcard:
			params = append(params, m.tk.original(i))
		case kindPartial:
			if l := m.tk.masked(i); c.tokens[i] != string(l) {
				// "key=<*>" over "key=value": the value is the parameter
				orig := m.tk.original(i)
				params = append(params, orig[min(keyLen(l), len(orig)):])
				continue
			}
			k := m.tk.toks[i]
			for _, v := range m.tk.vars[k.vStart:k.vEnd] {
				params = append(params, m.tk.line[v.start:v.end])
			}
		}
	}
	return params
}

// remove takes c out of the tree, the id index and the LRU list, and prunes
// tree nodes left empty so that memory stays bounded by MaxTemplates.
func (m *Miner) remove(c *cluster) {
	if m.byID[c.id] == c {
		delete(m.byID, c.id)
	}
	leaf := c.leaf
	leaf.removeCluster(c)
	m.prune(leaf)
	m.unlink(c)
}

// prune removes leaf and the nodes above it that are left empty.
func (m *Miner) prune(leaf *node) {
	for n := leaf; n != nil && len(n.clusters) == 0 && len(n.children) == 0; n = n.parent {
		if n.parent != nil {
			delete(n.parent.children, n.key)
		} else {
			for k, v := range m.byLen {
				if v == n {
					delete(m.byLen, k)
				}
			}
		}
	}
}

func (m *Miner) evict(c *cluster) {
	m.remove(c)
	m.stats.Evicted++
}

// maxLeafTemplates bounds the templates of one leaf (one length, one
// route). A line is compared with a share of its leaf's templates, which
// the leaf index cannot narrow when they all share most of its words:
// lines built for it (a few words, each one of three at each position)
// made a new template each and cost 3 ms a line at 6,000 in one leaf.
// No Loghub system comes near it (the largest leaf holds a few dozen).
const maxLeafTemplates = 1024

// boundLeaf evicts the least recently seen templates of c's leaf, c
// (the current line's) kept, while the leaf holds over maxLeafTemplates.
func (m *Miner) boundLeaf(c *cluster) {
	leaf := c.leaf
	if leaf == nil || len(leaf.clusters) <= maxLeafTemplates {
		return
	}
	// One sort for the whole surplus: a leaf restored from a miner
	// without the bound may be far over it.
	others := make([]*cluster, 0, len(leaf.clusters)-1)
	for _, o := range leaf.clusters {
		if o != c {
			others = append(others, o)
		}
	}
	slices.SortFunc(others, func(a, b *cluster) int { return cmp.Compare(a.lastSeen, b.lastSeen) })
	for _, o := range others[:len(leaf.clusters)-maxLeafTemplates] {
		m.evict(o)
	}
}

// overBound reports whether the templates held exceed MaxTemplates or
// MaxTemplateBytes; the most recent template is kept whatever its size,
// so a line always has its template.
func (m *Miner) overBound() bool {
	return len(m.byID) > m.cfg.MaxTemplates || m.bytes > m.cfg.MaxTemplateBytes && m.tail != m.head
}

// resize counts c, a template held, at size bytes from now on.
func (m *Miner) resize(c *cluster, size int) {
	if c.linked {
		m.bytes += int64(size - c.size)
	}
	c.size = size
}

// templateBytes estimates the heap a template of n bytes of text and
// tokens tokens, literals of them literal, takes: its text, a string
// header and kind a token, the cluster and its share of the tree, and the
// entry a literal takes in its leaf's index (leafindex.go) once the leaf
// holds enough templates to be indexed, about 70 bytes for distinct short
// words. The index entries are counted whether the leaf is indexed or not:
// a leaf stays indexed once it was, so counting them only then would make
// the sum depend on the history, and a restored miner evict otherwise than
// one that never stopped. On lines of 8 to 8,000 tokens of 1 to 6 letters,
// in leaves of their own or in one indexed leaf, the heap measured 0.15
// to 0.9 times it (TestTemplateBytesBoundTheHeap).
func templateBytes(n, tokens, literals int) int {
	return 512 + n + 24*tokens + 88*literals + 16*(tokens-literals)
}

func (m *Miner) pushFront(c *cluster) {
	if !c.linked {
		c.linked = true
		m.bytes += int64(c.size)
	}
	c.prev, c.next = nil, m.head
	if m.head != nil {
		m.head.prev = c
	}
	m.head = c
	if m.tail == nil {
		m.tail = c
	}
}

func (m *Miner) unlink(c *cluster) {
	if c.linked {
		c.linked = false
		m.bytes -= int64(c.size)
	}
	if c.prev != nil {
		c.prev.next = c.next
	} else if m.head == c {
		m.head = c.next
	}
	if c.next != nil {
		c.next.prev = c.prev
	} else if m.tail == c {
		m.tail = c.prev
	}
	c.prev, c.next = nil, nil
}

func (m *Miner) touch(c *cluster) {
	if m.head == c {
		return
	}
	m.unlink(c)
	m.pushFront(c)
}

// Resolve follows recorded merges from id to the template that now covers
// its lines. An id with no merge recorded is returned as is.
func (m *Miner) Resolve(id TemplateID) TemplateID {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.resolve(id)
}

func (m *Miner) resolve(id TemplateID) TemplateID {
	for hops := 0; hops < 64; hops++ { // generalisation only adds wildcards, so chains are short
		to, ok := m.merges[id]
		if !ok {
			return id
		}
		id = to
	}
	return id
}

// Merges returns the recorded merges, oldest first (at most MaxMerges).
func (m *Miner) Merges() []Merge {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.mergeQ)
}

// Lookup returns the template with this id, if held.
func (m *Miner) Lookup(id TemplateID) (Template, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.byID[id]
	if c == nil {
		return Template{}, false
	}
	return Template{ID: c.id, Template: c.template, Count: c.count}, true
}

// Templates returns all templates held, sorted by text.
func (m *Miner) Templates() []Template {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]Template, 0, len(m.byID))
	for _, c := range m.byID {
		out = append(out, Template{ID: c.id, Template: c.template, Count: c.count})
	}
	slices.SortFunc(out, func(a, b Template) int { return cmp.Compare(a.Template, b.Template) })
	return out
}

// Stats returns the counters.
func (m *Miner) Stats() Stats {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.stats
	s.Templates = len(m.byID)
	s.TemplateBytes = m.bytes
	return s
}

// CutLine returns what is mined of line when at most n bytes are: line
// itself when it is not longer, else its first n bytes less a character
// they would split (cut reports that it was cut). The miner cuts every
// line with it (Config.MaxLineBytes), after the header is cut off, live
// and offline alike. Bytes that are not UTF-8 are cut at n: a run of
// continuation bytes (binary data) must not cut the line to nothing.
func CutLine(line string, n int) (mined string, cut bool) {
	if len(line) <= n {
		return line, false
	}
	for i := n; i >= 0 && i > n-utf8.UTFMax; i-- {
		if utf8.RuneStart(line[i]) {
			return line[:i], true
		}
	}
	return line[:n], true
}

// FirstLineWithLetter is the part of a message that is mined: its first
// line holding a letter, or the whole message when no line does. A message
// of several lines is mostly a statement's text followed by a stack trace
// (an OTLP log body, a JSON log's message); mined whole, the same statement
// made one template per depth of its trace, since a template has a fixed
// number of tokens. Elasticsearch's categorization takes the same line
// (its first_line_with_letters filter). The whole message is still stored
// with the event.
func FirstLineWithLetter(msg string) string {
	if strings.IndexByte(msg, '\n') < 0 {
		return msg
	}
	for rest := msg; rest != ""; {
		line, after, _ := strings.Cut(rest, "\n")
		if strings.IndexFunc(line, unicode.IsLetter) >= 0 {
			return line
		}
		rest = after
	}
	return msg
}

// trimTrailingSpace drops whitespace at the end of a line: it is invisible
// in a log viewer and would otherwise split a template by token count.
func trimTrailingSpace(s string) string {
	for len(s) > 0 && isSpace(s[len(s)-1]) {
		s = s[:len(s)-1]
	}
	return s
}
