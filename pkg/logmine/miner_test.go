package logmine_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

func newMiner(t testing.TB, mut func(*logmine.Config)) *logmine.Miner {
	t.Helper()
	cfg := logmine.DefaultConfig()
	if mut != nil {
		mut(&cfg)
	}
	m, err := logmine.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMatchLifecycle(t *testing.T) {
	m := newMiner(t, nil)
	r := m.Match("Invalid user webmaster from 173.234.31.186")
	if !r.New || r.Changed || r.Template != "Invalid user webmaster from <*>" {
		t.Fatalf("first line: %+v", r)
	}
	if !slices.Equal(r.Params, []string{"173.234.31.186"}) {
		t.Fatalf("params %q", r.Params)
	}
	if r.ID != logmine.IDOf(r.Template) {
		t.Fatalf("id %v is not the hash of %q", r.ID, r.Template)
	}
	first := r.ID

	r = m.Match("Invalid user test9 from 52.80.34.196")
	if r.New || !r.Changed || r.PreviousID != first || r.Template != "Invalid user <*> from <*>" {
		t.Fatalf("generalising line: %+v", r)
	}
	if !slices.Equal(r.Params, []string{"test9", "52.80.34.196"}) {
		t.Fatalf("params %q", r.Params)
	}
	if got := m.Resolve(first); got != r.ID {
		t.Fatalf("Resolve(old) = %v, want %v", got, r.ID)
	}
	if ms := m.Merges(); len(ms) != 1 || ms[0] != (logmine.Merge{From: first, To: r.ID}) {
		t.Fatalf("merges %+v", ms)
	}

	again := m.Match("Invalid user admin from 10.0.0.1")
	if again.New || again.Changed || again.ID != r.ID {
		t.Fatalf("known line: %+v", again)
	}
	tpl, ok := m.Lookup(r.ID)
	if !ok || tpl.Count != 3 {
		t.Fatalf("Lookup = %+v %v, want count 3", tpl, ok)
	}
	if _, ok := m.Lookup(first); ok {
		t.Fatal("the generalised template's old id is still held")
	}

	other := m.Match("Connection closed by 173.234.31.186 [preauth]")
	if !other.New || other.ID == r.ID {
		t.Fatalf("a different message joined the template: %+v", other)
	}
	st := m.Stats()
	if st.Lines != 4 || st.Templates != 2 || st.Created != 2 || st.Changed != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestPartialWildcardParams(t *testing.T) {
	m := newMiner(t, nil)
	m.Match("Receiving block blk_1 src: /10.0.0.1:5000 dest: /10.0.0.2:50010")
	r := m.Match("Receiving block blk_-2 src: /10.0.0.3:6000 dest: /10.0.0.3:50010")
	// a word that holds a variable is the variable (blk_-2), and an
	// address is written without its leading slash
	want := []string{"blk_-2", "/10.0.0.3", "6000", "/10.0.0.3", "50010"}
	if r.Template != "Receiving block <*> src: <*>:<*> dest: <*>:<*>" || !slices.Equal(r.Params, want) {
		t.Fatalf("got %q %q, want params %q", r.Template, r.Params, want)
	}
	if n := strings.Count(r.Template, logmine.Wildcard); n != len(r.Params) {
		t.Fatalf("%d wildcards, %d params", n, len(r.Params))
	}
}

func TestKeyValueGeneralisation(t *testing.T) {
	m := newMiner(t, nil)
	m.Match("Server environment:user.dir=/")
	r := m.Match("Server environment:os.name=Linux")
	if r.Template != "Server environment:<*>" {
		t.Fatalf("template %q", r.Template)
	}
	if !slices.Equal(r.Params, []string{"os.name=Linux"}) {
		t.Fatalf("params %q", r.Params)
	}
}

func TestMatchIntoNoAllocs(t *testing.T) {
	m := newMiner(t, nil)
	lines := []string{
		"Receiving block blk_5792489080791696128 src: /10.251.30.6:33145 dest: /10.251.30.6:50010",
		"Failed password for invalid user webmaster from 173.234.31.186 port 38926 ssh2",
		"Failed password for invalid user test from 173.234.31.187 port 38927 ssh2",
	}
	var r logmine.Result
	for _, l := range lines {
		m.MatchInto(l, &r)
	}
	allocs := testing.AllocsPerRun(200, func() {
		for _, l := range lines {
			m.MatchInto(l, &r)
		}
	})
	if allocs != 0 {
		t.Fatalf("MatchInto on known templates allocates %.1f times per 3 lines", allocs)
	}
}

func TestTruncation(t *testing.T) {
	m := newMiner(t, func(c *logmine.Config) { c.MaxLineBytes = 32 })
	r := m.Match(strings.Repeat("word ", 20))
	if !r.Truncated || len(strings.Split(r.Template, " ")) > 7 {
		t.Fatalf("long line: %+v", r)
	}
	if m.Stats().Truncated != 1 {
		t.Fatal("truncation not counted")
	}
}

// A long line is cut on a character boundary; bytes that are not UTF-8
// (a binary dump: continuation bytes with no character start) are cut
// where the bound is, not walked back to an empty line.
func TestTruncationCutsCharacters(t *testing.T) {
	m := newMiner(t, func(c *logmine.Config) { c.MaxLineBytes = 32 })
	r := m.Match("status " + strings.Repeat("é", 30)) // byte 32 is inside an "é"
	if want := "status " + strings.Repeat("é", 12); !r.Truncated || r.Template != want {
		t.Fatalf("template %q, want %q", r.Template, want)
	}
	r = m.Match(strings.Repeat("\x80", 40))
	if !r.Truncated || r.Template != strings.Repeat("\x80", 32) {
		t.Fatalf("binary line: template %q, want its first 32 bytes", r.Template)
	}
	for _, c := range []struct {
		line, want string
		cut        bool
	}{{"abc", "abc", false}, {"abcd", "abc", true}, {"ab€", "ab", true}, {"a€", "a", true}, {"€€", "€", true}} {
		if got, cut := logmine.CutLine(c.line, 3); got != c.want || cut != c.cut {
			t.Errorf("CutLine(%q, 3) = %q %v, want %q %v", c.line, got, cut, c.want, c.cut)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	if err := logmine.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config invalid: %v", err)
	}
	cases := map[string]func(*logmine.Config){
		"PrefixTokens":        func(c *logmine.Config) { c.PrefixTokens = -1 },
		"SimilarityThreshold": func(c *logmine.Config) { c.SimilarityThreshold = 1.5 },
		"MaxChildren":         func(c *logmine.Config) { c.MaxChildren = 1 },
		"WordFoldAfter":       func(c *logmine.Config) { c.WordFoldAfter = 1 },
		"ConsolidateAfter":    func(c *logmine.Config) { c.ConsolidateAfter = -1 },
		"MaxTemplates":        func(c *logmine.Config) { c.MaxTemplates = 0 },
		"MaxMerges":           func(c *logmine.Config) { c.MaxMerges = -1 },
		"MaxLineBytes":        func(c *logmine.Config) { c.MaxLineBytes = 0 },
		"DisabledMasks":       func(c *logmine.Config) { c.DisabledMasks = []logmine.Mask{"ipv5"} },
	}
	for field, mut := range cases {
		cfg := logmine.DefaultConfig()
		mut(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, logmine.ErrInvalidConfig) || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidConfig naming the field", field, err)
		}
		if _, err := logmine.New(cfg); !errors.Is(err, config.ErrInvalidConfig) || errs.IsPermanent(err) {
			t.Errorf("%s: New error %v is not the one configuration error", field, err)
		}
	}
}

// A word opening the message routes each value to its own branch, where
// the other online folds never compare them: once ConsolidateAfter words
// were seen there, the line that shows the last one folds the templates
// (consolidateNew), the merges are reported and recorded, and later lines
// find the folded template, also those of a name whose own branch holds
// another message. Fewer words (different messages) stay apart, also
// through Consolidate.
func TestConsolidate(t *testing.T) {
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	after := logmine.DefaultConfig().ConsolidateAfter
	if after != len(users) {
		t.Fatalf("test written for ConsolidateAfter %d", len(users))
	}
	m := newMiner(t, nil)
	m.Match("alice logged out") // alice's branch holds another message
	var before []logmine.TemplateID
	for i, u := range users[:after-1] {
		before = append(before, m.Match(fmt.Sprintf("%s opened session %d", u, i)).ID)
	}
	if ms := m.Consolidate(); len(ms) != 0 || m.Stats().Templates != after {
		t.Fatalf("%d users: merges %v, templates %v", after-1, ms, m.Templates())
	}
	r := m.Match("heidi opened session 7")
	folded := logmine.IDOf("<*> opened session <*>")
	if r.New || !r.Changed || r.ID != folded || len(r.Merges) != after {
		t.Fatalf("line of the last user: %+v", r)
	}
	for _, id := range append(before, r.PreviousID) {
		if got := m.Resolve(id); got != folded {
			t.Fatalf("Resolve(%v) = %v, want the folded template %v", id, got, folded)
		}
	}
	if tpl, ok := m.Lookup(folded); !ok || tpl.Count != uint64(after) {
		t.Fatalf("folded template %+v %v, want count %d", tpl, ok, after)
	}
	for _, l := range []string{"ivan opened session 99", "alice opened session 100"} {
		if r := m.Match(l); r.ID != folded || r.New || r.Changed {
			t.Fatalf("%q after the fold: %+v", l, r)
		}
	}
	if ms := m.Consolidate(); len(ms) != 0 || m.Stats().Templates != 2 {
		t.Fatalf("Consolidate after the online fold: merges %v, templates %v", ms, m.Templates())
	}
	// A <*>, or a word with digits (a value by its shape), at the position
	// makes it a variable at once.
	for _, c := range [][3]string{
		{"alpha down", "node7 down", "<*> down"},
		{"Replica web-a lag is 3 ms", "Replica node-7f3k lag is 5 ms", "Replica <*> lag is <*> ms"},
	} {
		m = newMiner(t, nil)
		a := m.Match(c[0])
		r := m.Match(c[1])
		if want := logmine.IDOf(c[2]); !r.Changed || r.ID != want || m.Resolve(a.ID) != want || len(m.Templates()) != 1 {
			t.Fatalf("%q then %q: %+v, templates %v", c[0], c[1], r, m.Templates())
		}
	}
	// A value at the end of the line may hold spaces: the longer template
	// folds into the one that ends in the value, unless what follows is a
	// field of its own.
	m = newMiner(t, nil)
	for _, l := range []string{"Server environment:os.name=Linux", "Server environment:os.arch=amd64",
		"auth failure; rhost=10.0.0.1", "auth failure; rhost=10.0.0.2 user=root"} {
		m.Match(l)
	}
	long := m.Match("Server environment:java.vendor=Oracle Corporation")
	m.Consolidate()
	if got := m.Resolve(long.ID); got != logmine.IDOf("Server environment:<*>") {
		t.Fatalf("value with a space not folded: %v", m.Templates())
	}
	if got := m.Stats().Templates; got != 3 {
		t.Fatalf("%d templates, want 3 (the optional field apart): %v", got, m.Templates())
	}
	// off
	m = newMiner(t, func(c *logmine.Config) { c.ConsolidateAfter = 0 })
	for _, u := range users {
		m.Match(u + " logged out")
	}
	if ms := m.Consolidate(); len(ms) != 0 || m.Stats().Templates != len(users) {
		t.Fatalf("ConsolidateAfter 0: merges %v, templates %v", ms, m.Templates())
	}
}

// Every fold counts values at a position among messages that agree
// everywhere else; a message of one word has nowhere else, so however
// many one-word messages come, online or after the second pass, each is
// its own template and none becomes "<*>" (which would be every message of
// that length).
func TestOneWordMessagesStayApart(t *testing.T) {
	states := []string{"starting", "running", "stopping", "stopped", "halted", "idle", "draining", "paused", "resumed", "degraded"}
	if len(states) < logmine.DefaultConfig().ConsolidateAfter {
		t.Fatal("fewer states than any fold needs")
	}
	m := newMiner(t, nil)
	for range 3 {
		for _, s := range states {
			if r := m.Match(s); r.Template != s {
				t.Fatalf("%q matched %q", s, r.Template)
			}
		}
	}
	m.Consolidate()
	if got := len(m.Templates()); got != len(states) {
		t.Fatalf("%d templates, want %d: %v", got, len(states), m.Templates())
	}
	// two words still fold at the varying one
	for _, s := range states {
		m.Match("service " + s)
	}
	if r := m.Match("service crashed"); r.Template != "service <*>" {
		t.Fatalf("two-word messages: %q, templates %v", r.Template, m.Templates())
	}
}

func TestTemplateIDText(t *testing.T) {
	id := logmine.IDOf("Invalid user <*> from <*>")
	b, _ := id.MarshalText()
	var back logmine.TemplateID
	if err := back.UnmarshalText(b); err != nil || back != id || len(id.String()) != 16 {
		t.Fatalf("round trip %q -> %v (%v)", b, back, err)
	}
	if _, err := logmine.ParseTemplateID("xyz"); err == nil {
		t.Fatal("bad id accepted")
	}
}

// loadContents returns every system's message contents, headers cut off.
func loadContents(t testing.TB) map[string][]string {
	dir := loghub.Require(t)
	out := map[string][]string{}
	for _, sys := range loghub.Systems {
		out[sys] = contentsOf(t, dir, sys)
	}
	return out
}

// contentsOf returns one system's message contents, headers cut off (a
// line its format does not match stays whole).
func contentsOf(t testing.TB, dir, sys string) []string {
	t.Helper()
	ds, err := loghub.Load(dir, sys)
	if err != nil {
		t.Fatal(err)
	}
	f, err := logmine.CompileFormat(ds.Format)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]string, 0, len(ds.Lines))
	for _, l := range ds.Lines {
		if c, ok := f.Content(l); ok {
			l = c
		}
		out = append(out, l)
	}
	return out
}

func finalTemplates(t testing.TB, lines []string) []logmine.Parsed {
	t.Helper()
	p, _, err := logmine.ParseLines(lines, logmine.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// The same lines in any order end in the same template (and id) for every
// line, on all four real systems and on synthetic logs, each under 25
// shuffles.
func TestOrderIndependence(t *testing.T) {
	sets := loadContents(t)
	sets["synthetic"], _ = synthLines(11, 5000)
	for sys, lines := range sets {
		base := finalTemplates(t, lines)
		for seed := uint64(1); seed <= 25; seed++ {
			perm := rand.New(rand.NewPCG(seed, 99)).Perm(len(lines))
			shuffled := make([]string, len(lines))
			for i, p := range perm {
				shuffled[i] = lines[p]
			}
			got := finalTemplates(t, shuffled)
			for i, p := range perm {
				if got[i] != base[p] {
					t.Fatalf("%s seed %d: line %q ends in %q (%v), in file order in %q (%v)",
						sys, seed, lines[p], got[i].Template, got[i].ID, base[p].Template, base[p].ID)
				}
			}
		}
	}
}

// Two miners fed the same data in different orders hold the same
// templates under the same ids.
func TestIDsStableAcrossInstances(t *testing.T) {
	all := loadContents(t)
	var lines []string
	for _, sys := range loghub.Systems {
		lines = append(lines, all[sys]...)
	}
	a := newMiner(t, nil)
	b := newMiner(t, nil)
	for _, l := range lines {
		a.Match(l)
	}
	for i := len(lines) - 1; i >= 0; i-- {
		b.Match(lines[i])
	}
	ta, tb := a.Templates(), b.Templates()
	if !slices.Equal(ta, tb) {
		t.Fatalf("instances disagree: %d vs %d templates", len(ta), len(tb))
	}
	for _, tp := range ta {
		if tp.ID != logmine.IDOf(tp.Template) {
			t.Fatalf("id %v of %q is not derived from the text", tp.ID, tp.Template)
		}
	}
}

func TestSnapshotRestore(t *testing.T) {
	all := loadContents(t)
	var lines []string
	for _, sys := range loghub.Systems {
		lines = append(lines, all[sys]...)
	}
	rand.New(rand.NewPCG(5, 5)).Shuffle(len(lines), func(i, j int) { lines[i], lines[j] = lines[j], lines[i] })
	half := len(lines) / 2

	whole := newMiner(t, nil)
	first := newMiner(t, nil)
	for _, l := range lines[:half] {
		whole.Match(l)
		first.Match(l)
	}
	snap, err := first.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	restored := newMiner(t, nil)
	if err := restored.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(first.Templates(), restored.Templates()) {
		t.Fatal("restore changed the templates")
	}
	if !slices.Equal(first.Merges(), restored.Merges()) || first.Stats() != restored.Stats() {
		t.Fatal("restore lost merges or counters")
	}
	// the restored miner continues exactly like one that never stopped
	for _, l := range lines[half:] {
		a, b := whole.Match(l), restored.Match(l)
		if a.ID != b.ID || a.New != b.New || a.Changed != b.Changed || !slices.Equal(a.Params, b.Params) {
			t.Fatalf("after restore %q: %+v, uninterrupted %+v", l, b, a)
		}
	}
	t.Logf("snapshot of %d templates: %d bytes", len(first.Templates()), len(snap))

	// corrupt input is refused, and leaves the miner as it was
	before := restored.Templates()
	bad := [][]byte{nil, []byte("LMSN"), append([]byte("XXXX"), snap[4:]...), snap[:len(snap)-1]}
	flipped := slices.Clone(snap)
	flipped[len(flipped)/2] ^= 0xff
	bad = append(bad, flipped)
	future := slices.Clone(snap)
	future[4] = 99
	bad = append(bad, future)
	for i, b := range bad {
		err := restored.Restore(b)
		if !errors.Is(err, logmine.ErrInvalidSnapshot) || !errs.IsPermanent(err) {
			t.Errorf("bad snapshot %d: err = %v", i, err)
		}
	}
	if !slices.Equal(before, restored.Templates()) {
		t.Fatal("a refused snapshot changed the miner")
	}
}

func TestEvictionBound(t *testing.T) {
	const max = 50
	m := newMiner(t, func(c *logmine.Config) { c.MaxTemplates = max })
	keep := m.Match("heartbeat ok")
	for i := 0; i < 500; i++ {
		// distinct first and last words: each line is its own template
		m.Match(fmt.Sprintf("event%c%c happened in zone%c%c", 'a'+i%26, 'a'+i/26, 'a'+i%26, 'a'+i/26))
		m.Match("heartbeat ok") // recently seen, never evicted
	}
	st := m.Stats()
	if st.Templates != max || st.Evicted != uint64(st.Created)-max {
		t.Fatalf("stats %+v, want %d templates and the rest evicted", st, max)
	}
	if _, ok := m.Lookup(keep.ID); !ok {
		t.Fatal("the most recently seen template was evicted")
	}
	// state stays bounded: a snapshot of the bounded miner restores as many
	snap, _ := m.Snapshot()
	small := newMiner(t, func(c *logmine.Config) { c.MaxTemplates = 10 })
	if err := small.Restore(snap); err != nil {
		t.Fatal(err)
	}
	if n := len(small.Templates()); n != 10 {
		t.Fatalf("restore into a smaller miner kept %d templates", n)
	}
	if _, ok := small.Lookup(keep.ID); !ok {
		t.Fatal("restore dropped the most recent template")
	}
}

// Putting the parameters back into the template rebuilds the line (with
// its spacing normalised), for every real line: the parameters are exactly
// the variable parts.
func TestParamsRebuildLine(t *testing.T) {
	sets := loadContents(t)
	sets["synthetic"], _ = synthLines(12, 5000)
	for sys, lines := range sets {
		m := newMiner(t, nil)
		for _, l := range lines {
			m.Match(l)
		}
		for _, l := range lines {
			r := m.Match(l)
			if r.New || r.Changed {
				t.Fatalf("%s: second pass changed templates at %q: %+v", sys, l, r)
			}
			var b strings.Builder
			rest := r.Template
			for _, p := range r.Params {
				i := strings.Index(rest, logmine.Wildcard)
				if i < 0 {
					t.Fatalf("%s: more params than wildcards: %q %q", sys, r.Template, r.Params)
				}
				b.WriteString(rest[:i])
				b.WriteString(p)
				rest = rest[i+len(logmine.Wildcard):]
			}
			if strings.Contains(rest, logmine.Wildcard) {
				t.Fatalf("%s: fewer params than wildcards: %q %q", sys, r.Template, r.Params)
			}
			b.WriteString(rest)
			if got, want := b.String(), strings.Join(strings.Fields(l), " "); got != want {
				t.Fatalf("%s: rebuilt %q from %q %q, want %q", sys, got, r.Template, r.Params, want)
			}
		}
	}
}

// A line that a template of the wildcard branch covers exactly ("job <*>
// finished with <*> status <*>") joins it, when wordFold refused the
// template of the line's own leaf: it made a second template of the same
// message type.
func TestCoveredLineJoinsTheWildcardTemplate(t *testing.T) {
	lines := []string{
		"job ce finished with UP status f",
		"job bb finished with IDLE status a",
		"job ee finished with WAIT status d",
		"job ef finished with BUSY status e",
		"job ca finished with IDLE status a",
		"job bb finished with UP status f",
		"job bf finished with WAIT status d",
		"job da finished with WAIT status d",
		"job df finished with IDLE status a",
		"job df finished with UP status f",
		"job be finished with BUSY status e",
	}
	m, err := logmine.New(logmine.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var r logmine.Result
	for _, l := range lines {
		r = m.Match(l)
	}
	if r.Template != "job <*> finished with <*> status <*>" {
		t.Fatalf("setup: %q", r.Template)
	}
	want := r.ID
	if r = m.Match("job ef finished with BUSY status b"); r.ID != want {
		t.Fatalf("covered line got %q (new=%v), want the held %q", r.Template, r.New, "job <*> finished with <*> status <*>")
	}
}

// The wildcard's own text in a line ("pattern <*> compiled", a glob, a
// template logged by a tool) is a value, as a number there is: a template
// cannot hold it as a word, since "<*>" in a template means a variable.
// Taken as a word, the line's template had wildcards without parameters
// ("a <*>:<*> b" with none), and a template with a wildcard that had not
// folded the templates it covers: "node state <*> entered now" stood
// beside "node state LOOKING entered now" and "... LEADING ...", and
// later values joined one or the other by arrival.
func TestLiteralWildcardInALineIsAValue(t *testing.T) {
	for _, c := range []struct{ line, template string }{
		{"a <*>:<*> b", "a <*>:<*> b"},
		{"glob <*>.log 12", "glob <*>.log <*>"},
		{"match x<*>y against user 43", "match <*> against user <*>"},
		{"<*>", "<*>"},
		{"key=<*> val 5", "key=<*> val <*>"},
	} {
		r := newMiner(t, nil).Match(c.line)
		if r.Template != c.template || len(r.Params) != strings.Count(r.Template, logmine.Wildcard) {
			t.Errorf("%q: template %q params %q, want template %q with a parameter for each wildcard", c.line, r.Template, r.Params, c.template)
		}
		if got, ok := rebuild(r.Template, r.Params); !ok || got != c.line {
			t.Errorf("%q: template %q params %q rebuild %q", c.line, r.Template, r.Params, got)
		}
	}
	// grouped as a number in its place is
	for _, v := range []string{"<*>", "5"} {
		m := newMiner(t, nil)
		for _, l := range []string{"node state LOOKING entered now", "node state LEADING entered now", "node state " + v + " entered now"} {
			m.Match(l)
		}
		if ts := m.Templates(); len(ts) != 1 || ts[0].Template != "node state <*> entered now" {
			t.Errorf("with %q at the state: templates %v, want the one \"node state <*> entered now\"", v, ts)
		}
	}
}

// A message of several lines (a stack trace an OTLP SDK or a JSON log puts
// in the body) is mined on its first line with a letter, as Elasticsearch's
// categorization does (first_line_with_letters): mined whole, a trace made
// one template per depth, since a template has a fixed number of tokens,
// and the same statement failing at two depths was two error bursts.
func TestMultiLineMessageIsMinedOnItsFirstLineWithALetter(t *testing.T) {
	frames := func(n int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "\n\tat com.example.Handler%d.serve(Handler%d.java:%d)", i, i, 40+i)
		}
		return b.String()
	}
	m := newMiner(t, nil)
	for _, msg := range []string{
		"request 17 failed: java.lang.IllegalStateException: pool closed" + frames(3),
		"request 18 failed: java.lang.IllegalStateException: pool closed" + frames(9),
		"request 19 failed: java.lang.IllegalStateException: pool closed\r\n" + frames(5),
		"\n  \n----\nrequest 20 failed: java.lang.IllegalStateException: pool closed" + frames(1),
	} {
		r := m.Match(msg)
		if r.Template != "request <*> failed: java.lang.IllegalStateException: pool closed" {
			t.Fatalf("%q: template %q, want the first line's", msg, r.Template)
		}
	}
	if ts := m.Templates(); len(ts) != 1 {
		t.Fatalf("one statement at four depths made %d templates: %v", len(ts), ts)
	}
	// A message with no letter at all is mined whole (its number a value).
	if r := m.Match("----\n1234"); r.Template != "----<*>" {
		t.Fatalf("message without a letter: template %q, want the whole message's", r.Template)
	}
}
