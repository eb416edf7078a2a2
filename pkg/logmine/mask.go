package logmine

import (
	"fmt"
	"strings"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// Mask names one family of variable tokens that the tokenizer replaces with
// the wildcard <*> before mining. Masking turns ids, addresses and amounts
// into wildcards up front, so the miner does not have to learn from many
// lines that "blk_123" and "blk_456" are the same thing, and so a variable in
// the first tokens does not split the prefix tree.
type Mask string

// The maskers, in the order they are tried at a position. All are on by
// default; Config.DisabledMasks switches single ones off.
const (
	MaskURL      Mask = "url"      // scheme://anything up to the end of the token
	MaskEmail    Mask = "email"    // local@domain.tld
	MaskPath     Mask = "path"     // /abs/path, ./rel, ~/home, C:\dir (see maskPath for what is kept)
	MaskUUID     Mask = "uuid"     // 8-4-4-4-12 hex digits
	MaskDateTime Mask = "datetime" // 2015-07-29, 2015/07/29, 17:41:44,747, 2015-07-29T17:41:44.1Z
	MaskIPv4     Mask = "ipv4"     // 10.0.0.1, with an optional :port masked as a second wildcard
	MaskIPv6     Mask = "ipv6"     // fe80::1, 8 full groups, MAC addresses
	MaskHex      Mask = "hex"      // 0x1f, and words of 7 or more hex digits with both digits and letters
	MaskDuration Mask = "duration" // 150ms, 2.5s, 1h30m0s, 10sec
	MaskSize     Mask = "size"     // 10KB, 3MiB, 4G, 100bytes
	MaskNumber   Mask = "number"   // -12, 3.5, 1.2.3 when not glued to a letter
)

// AllMasks lists every masker, in the order they are tried.
func AllMasks() []Mask {
	return []Mask{MaskURL, MaskEmail, MaskPath, MaskUUID, MaskDateTime, MaskIPv4, MaskIPv6, MaskHex, MaskDuration, MaskSize, MaskNumber}
}

type maskSet uint16

func maskBit(m Mask) (maskSet, bool) {
	for i, k := range AllMasks() {
		if k == m {
			return 1 << i, true
		}
	}
	return 0, false
}

func (s maskSet) has(m maskSet) bool { return s&m != 0 }

var (
	bitURL, _      = maskBit(MaskURL)
	bitEmail, _    = maskBit(MaskEmail)
	bitPath, _     = maskBit(MaskPath)
	bitUUID, _     = maskBit(MaskUUID)
	bitDateTime, _ = maskBit(MaskDateTime)
	bitIPv4, _     = maskBit(MaskIPv4)
	bitIPv6, _     = maskBit(MaskIPv6)
	bitHex, _      = maskBit(MaskHex)
	bitDuration, _ = maskBit(MaskDuration)
	bitSize, _     = maskBit(MaskSize)
	bitNumber, _   = maskBit(MaskNumber)
	allMaskBits    = maskSet(1<<len(AllMasks())) - 1
)

// enabledMasks turns a list of disabled masker names into the enabled set.
func enabledMasks(disabled []Mask) (maskSet, error) {
	set := allMaskBits
	for _, d := range disabled {
		b, ok := maskBit(Mask(strings.ToLower(string(d))))
		if !ok {
			return 0, fmt.Errorf("%w: DisabledMasks: unknown masker %q (known: %v)", ErrInvalidConfig, d, AllMasks())
		}
		set &^= b
	}
	return set, nil
}

// Wildcard marks a variable in a template.
const Wildcard = "<*>"

// Masker replaces variable parts of a line with <*>. It is the same scanner
// the Miner uses, exposed for callers that only want masking.
type Masker struct {
	set maskSet
	tk  tokenizer
}

// NewMasker returns a Masker with every masker on except the disabled ones.
func NewMasker(disabled ...Mask) (*Masker, error) {
	set, err := enabledMasks(disabled)
	if err != nil {
		return nil, errs.Permanent(err)
	}
	return &Masker{set: set, tk: tokenizer{masks: set}}, nil
}

// AppendMasked appends the masked line to dst, its tokens separated by
// single spaces as in templates.
// A Masker is not safe for concurrent use.
func (m *Masker) AppendMasked(dst []byte, line string) []byte {
	m.tk.tokenize(line)
	for i := range m.tk.toks {
		if i > 0 {
			dst = append(dst, ' ')
		}
		dst = append(dst, m.tk.masked(i)...)
	}
	return dst
}

// Mask returns the masked line.
func (m *Masker) Mask(line string) string { return string(m.AppendMasked(nil, line)) }

// token is one space-separated piece of a line: where it is in the line,
// where its masked text is in the tokenizer's buffer, and which variable
// spans (in line offsets) the masking found in it.
type token struct {
	start, end   int32 // in the line
	mStart, mEnd int32 // in tokenizer.buf
	vStart, vEnd int32 // in tokenizer.vars
}

type span struct{ start, end int32 }

// tokenizer splits a line on single spaces and masks each token. Its slices
// are reused from line to line, so the hot path does not allocate once warm.
type tokenizer struct {
	masks maskSet
	// lastWasIPv4 is set by maskAtDigit so the caller masks a port next.
	lastWasIPv4 bool
	// lineURL, lineAt: the line has "://" or '@' somewhere
	lineURL, lineAt bool
	line            string
	buf             []byte
	toks            []token
	vars            []span
	// pathScanned counts the bytes maskPath looked at (tests: the scan
	// is linear in the line)
	pathScanned uint64
}

func (t *tokenizer) masked(i int) []byte {
	k := t.toks[i]
	return t.buf[k.mStart:k.mEnd]
}

func (t *tokenizer) original(i int) string {
	k := t.toks[i]
	return t.line[k.start:k.end]
}

// tokenize splits line at runs of spaces and tabs. Spacing is not part of
// a template: "user  0101" and "user 0101" are the same message, and
// column padding ("%-8s") must not split a template.
func (t *tokenizer) tokenize(line string) {
	t.line = line
	// one vectorised look at the whole line spares most tokens two
	t.lineURL = strings.Contains(line, "://")
	t.lineAt = strings.IndexByte(line, '@') >= 0
	t.buf = t.buf[:0]
	t.toks = t.toks[:0]
	t.vars = t.vars[:0]
	i := 0
	for i < len(line) {
		for i < len(line) && (line[i] == ' ' || line[i] == '\t') {
			i++
		}
		if i == len(line) {
			return
		}
		start := i
		for i < len(line) && line[i] != ' ' && line[i] != '\t' {
			i++
		}
		t.addToken(start, i)
	}
	if len(t.vars) > 0 {
		t.wholeTokens()
	}
}

// wholeTokens rewrites masked tokens in the corrected-template convention
// of Loghub 2.0 (the rules its benchmark applies to every system's
// templates, correct_single_template):
//   - WV: a word that holds a variable is a variable as a whole
//     ("blk_<*>" and "<*>ms" are "<*>"), where words are separated by
//     whitespace and the delimiters , ! ; : = | " ' [ ] ( ) { } . - + @ # $
//     % & and '/' ("uid=<*>", "[<*>]", "node-<*>", "core.<*>" keep their
//     text);
//   - PS: a path-like piece ("/" then text, up to a path delimiter, the
//     same list without . - + @ # $ % & /) that holds a variable is one
//     variable ("/<*>:<*>" is "<*>:<*>");
//   - DV and CV: variables separated only by '.' or by nothing are one
//     ("<*>.<*>", "<*><*>").
//
// Merged variables span everything they cover in the line, so Params hold
// what each wildcard stands for. It runs after the list folding, which
// needs the words ("blk_<*> blk_<*>" is one list). Masked text and spans
// only shrink, so both are compacted in place.
func (t *tokenizer) wholeTokens() {
	w, vw := int32(0), int32(0) // write positions in buf and vars
	for ti := range t.toks {
		k := &t.toks[ti]
		m := t.buf[k.mStart:k.mEnd]
		if k.vEnd == k.vStart || !needsCollapse(m) {
			if w == k.mStart && vw == k.vStart { // nothing shrank yet
				w, vw = k.mEnd, k.vEnd
				continue
			}
			n := int32(copy(t.buf[w:], m))
			k.mStart, k.mEnd, w = w, w+n, w+n
			nv := int32(copy(t.vars[vw:], t.vars[k.vStart:k.vEnd]))
			k.vStart, k.vEnd, vw = vw, vw+nv, vw+nv
			continue
		}
		// Rewritten in place: output only shrinks, so w <= the read
		// position, and each word is decided when its end is reached.
		mStart, vStart := w, vw
		o := k.start         // line offset of m[i]
		v := k.vStart        // next variable of the token
		lastVar := int32(-1) // w just after the last variable written
		emitVar := func(a, b int32) {
			switch {
			case lastVar < 0:
			case lastVar == w: // CV: <*><*>
				t.vars[vw-1].end = b
				return
			case lastVar == w-1 && t.buf[w-1] == '.': // DV: <*>.<*>
				w--
				t.vars[vw-1].end = b
				return
			}
			w += int32(copy(t.buf[w:], Wildcard))
			t.vars[vw] = span{a, b}
			vw++
			lastVar = w
		}
		// scan returns the end of the run from i whose bytes satisfy in
		// (variables always belong), the line offset there and whether it
		// held a variable.
		scan := func(i int, oo int32, in func(byte) bool) (int, int32, bool) {
			vv, has := v, false
			for i < len(m) {
				if vv < k.vEnd && t.vars[vv].start == oo && isWildcardAt(m, i) {
					oo = t.vars[vv].end
					vv++
					i += 3
					has = true
					continue
				}
				if !in(m[i]) {
					break
				}
				oo++
				i++
			}
			return i, oo, has
		}
		nextVar := func(end int32) {
			for v < k.vEnd && t.vars[v].start < end {
				v++
			}
		}
		for i := 0; i < len(m); {
			if m[i] == '/' && (i == 0 || isPathDelim(m[i-1])) {
				// PS: a path-like piece holding a variable is one
				if j, oe, has := scan(i+1, o+1, notPathDelim); has {
					emitVar(o, oe)
					nextVar(oe)
					i, o = j, oe
					continue
				}
			}
			if isTokenDelim(m[i]) && !isWildcardAt(m, i) {
				t.buf[w] = m[i]
				w++
				o++
				i++
				continue
			}
			// WV: a word holding a variable is one
			j, oe, has := scan(i, o, notTokenDelim)
			if has {
				emitVar(o, oe)
				nextVar(oe)
			} else {
				w += int32(copy(t.buf[w:], m[i:j]))
			}
			i, o = j, oe
		}
		k.mStart, k.mEnd = mStart, w
		k.vStart, k.vEnd = vStart, vw
	}
	t.buf = t.buf[:w]
	t.vars = t.vars[:vw]
}

// needsCollapse: whether a masked token with variables can change in
// wholeTokens. Most such tokens are "<*>", "<*>:<*>" or "key=<*>", and
// checking the bytes around each wildcard is much cheaper than rewriting:
// a rule applies only when a wildcard touches a word byte, a '.' or
// another wildcard, or when a '/' may open a path piece.
func needsCollapse(m []byte) bool {
	if len(m) == 3 {
		return false // "<*>"
	}
	for i := 0; i < len(m); i++ {
		c := m[i]
		if c == '/' {
			return true
		}
		if !isWildcardAt(m, i) {
			continue
		}
		if i > 0 && (m[i-1] == '.' || m[i-1] == '>' || !isTokenDelim(m[i-1])) {
			return true
		}
		if j := i + 3; j < len(m) && (m[j] == '.' || m[j] == '<' || !isTokenDelim(m[j])) {
			return true
		}
		i += 2
	}
	return false
}

func isPathDelim(c byte) bool {
	return strings.IndexByte(" \t,!;:=|\"'[](){}", c) >= 0
}

func notPathDelim(c byte) bool  { return !isPathDelim(c) }
func notTokenDelim(c byte) bool { return !isTokenDelim(c) }

func isTokenDelim(c byte) bool {
	return isPathDelim(c) || strings.IndexByte(".-+@#$%&/", c) >= 0
}

func isWildcardAt(m []byte, i int) bool {
	return i+2 < len(m) && m[i] == '<' && m[i+1] == '*' && m[i+2] == '>'
}

func (t *tokenizer) addToken(a, b int) {
	tok := token{start: int32(a), end: int32(b), mStart: int32(len(t.buf)), vStart: int32(len(t.vars))}
	t.maskToken(a, b)
	tok.mEnd = int32(len(t.buf))
	tok.vEnd = int32(len(t.vars))
	if n := len(t.toks); n > 0 && (t.isListItem(t.toks[n-1], tok) || (n > 1 && t.isRunItem(t.toks[n-2], t.toks[n-1], tok))) {
		// "blk_1 blk_2 blk_3" is one list of values: fold it into the
		// previous token, whose variable now spans from its own value to
		// the value of the last item. Items hold one variable each: the
		// spans of several ("1!2 3!4") would overlap.
		prev := &t.toks[n-1]
		prev.end = tok.end
		for k := int32(0); k < tok.vEnd-tok.vStart; k++ {
			t.vars[prev.vStart+k].end = t.vars[tok.vStart+k].end
		}
		t.buf = t.buf[:tok.mStart]
		t.vars = t.vars[:tok.vStart]
		return
	}
	t.toks = append(t.toks, tok)
}

// isListItem: next repeats prev's masked text, which has one variable and
// a letter around it ("blk_<*>"). Two bare values in a row ("<*> <*>",
// "<*>: <*>:") stay apart: those are usually different fields (longer runs
// are isRunItem's).
func (t *tokenizer) isListItem(prev, next token) bool {
	if next.vEnd-next.vStart != 1 || prev.mEnd-prev.mStart != next.mEnd-next.mStart {
		return false
	}
	m := t.buf[next.mStart:next.mEnd]
	if string(t.buf[prev.mStart:prev.mEnd]) != string(m) {
		return false
	}
	for _, c := range m {
		if isLetter(c) {
			return true
		}
	}
	return false
}

// isRunItem: next is the third (or later) token in a row with the same
// masked text, which holds one variable ("12 7 31", "<*>, <*>, <*>,"): a list
// whose length varies from line to line ("speeds 3552 3534 3375"). From the
// third item on the items fold into the second, so a run of any length from
// two on is two tokens, and the lines of one message share a template
// whatever the list's length. A pair of bare values stays as it is: it is
// usually two different fields ("<*> <*>"), which the corrected templates
// keep apart.
func (t *tokenizer) isRunItem(prev2, prev, next token) bool {
	if next.vEnd-next.vStart != 1 || prev.vEnd-prev.vStart != 1 {
		return false
	}
	m := t.buf[next.mStart:next.mEnd]
	return string(t.buf[prev.mStart:prev.mEnd]) == string(m) && string(t.buf[prev2.mStart:prev2.mEnd]) == string(m)
}

// byte classes
const (
	cDigit = 1 << iota
	cLower
	cUpper
	cHexLetter
	cPathChar
	cWordChar // letters, digits, '_'
)

var class [256]uint8

func init() {
	for c := '0'; c <= '9'; c++ {
		class[c] |= cDigit | cPathChar | cWordChar
	}
	for c := 'a'; c <= 'z'; c++ {
		class[c] |= cLower | cPathChar | cWordChar
	}
	for c := 'A'; c <= 'Z'; c++ {
		class[c] |= cUpper | cPathChar | cWordChar
	}
	for _, c := range "abcdefABCDEF" {
		class[c] |= cHexLetter
	}
	for _, c := range "._-~+%$@,=/\\" {
		class[c] |= cPathChar
	}
	class['_'] |= cWordChar
	for c := 0x80; c < 0x100; c++ { // UTF-8 bytes: treat as letters so they glue like words
		class[c] |= cLower | cPathChar | cWordChar
	}
}

func isDigit(c byte) bool  { return class[c]&cDigit != 0 }
func isLetter(c byte) bool { return class[c]&(cLower|cUpper) != 0 }
func isAlnum(c byte) bool  { return class[c]&(cDigit|cLower|cUpper) != 0 }
func isHex(c byte) bool    { return class[c]&(cDigit|cHexLetter) != 0 }

// maskToken writes the masked form of line[a:b] to t.buf. Every masker is a
// hand-written matcher that returns how many bytes it recognised at position
// i (0 for no match); only positions where a masker can start are tried, so
// plain words are copied almost at memcpy speed.
func (t *tokenizer) maskToken(a, b int) {
	s := t.line[a:b]
	m := t.masks
	if m.has(bitURL) && t.lineURL && strings.Contains(s, "://") {
		if n := t.tryURL(s, a); n {
			return
		}
	}
	hasAt := m.has(bitEmail) && t.lineAt && strings.IndexByte(s, '@') >= 0
	i := 0
	for i < len(s) {
		c := s[i]
		cl := class[c]
		switch {
		case cl&cDigit != 0 || (c == '-' && i+1 < len(s) && isDigit(s[i+1]) && (i == 0 || !isAlnum(s[i-1]))):
			if n := t.maskAtDigit(s, i); n > 0 {
				t.addVar(a+i, a+i+n)
				i += n
				if m.has(bitIPv4) && t.lastWasIPv4 {
					i += t.maskPort(s, i, a)
				}
				continue
			}
			// not a variable: copy the whole alphanumeric run so that its
			// inner digits are not taken for a number ("5th", "0day").
			j := i + 1
			for j < len(s) && isAlnum(s[j]) {
				j++
			}
			t.buf = append(t.buf, s[i:j]...)
			i = j
		case cl&(cLower|cUpper) != 0:
			if hasAt && (i == 0 || !isWordOrDot(s[i-1])) {
				if n := matchEmail(s[i:]); n > 0 {
					t.addVar(a+i, a+i+n)
					i += n
					continue
				}
			}
			if m.has(bitHex) && cl&cHexLetter != 0 && (i == 0 || !isAlnum(s[i-1])) {
				if n := matchHexWord(s[i:]); n > 0 {
					t.addVar(a+i, a+i+n)
					i += n
					continue
				}
			}
			if m.has(bitIPv6) && cl&cHexLetter != 0 && (i == 0 || !isAlnum(s[i-1])) {
				if n := matchIPv6(s[i:]); n > 0 {
					t.addVar(a+i, a+i+n)
					i += n
					continue
				}
			}
			if m.has(bitPath) && (c == 'C' || c == 'D' || c == 'c' || c == 'd') && i+2 < len(s) && s[i+1] == ':' && s[i+2] == '\\' && (i == 0 || !isAlnum(s[i-1])) {
				if n := t.maskPath(s, i, a); n > 0 {
					i += n
					continue
				}
			}
			j := i + 1
			for j < len(s) && isAlnum(s[j]) {
				j++
			}
			t.buf = append(t.buf, s[i:j]...)
			i = j
		case c == '/' || ((c == '.' || c == '~') && i+1 < len(s) && (s[i+1] == '/' || (s[i+1] == '.' && i+2 < len(s) && s[i+2] == '/'))):
			if m.has(bitPath) && (i == 0 || isPathOpener(s[i-1])) {
				if n := t.maskPath(s, i, a); n > 0 {
					i += n
					continue
				}
			}
			t.buf = append(t.buf, c)
			i++
		case c == ':' && m.has(bitIPv6) && i+1 < len(s) && s[i+1] == ':' && (i == 0 || !isHex(s[i-1])):
			if n := matchIPv6(s[i:]); n > 0 {
				t.addVar(a+i, a+i+n)
				i += n
				continue
			}
			t.buf = append(t.buf, c)
			i++
		case c == '<' && strings.HasPrefix(s[i:], Wildcard):
			// The wildcard's own text in a line is a value whatever the
			// masks: kept as a word, the template would show a wildcard
			// that has no parameter and that the miner did not make (no
			// fold of the templates it covers), indistinguishable from one.
			t.addVar(a+i, a+i+len(Wildcard))
			i += len(Wildcard)
		default:
			t.buf = append(t.buf, c)
			i++
		}
	}
}

func isWordOrDot(c byte) bool {
	return class[c]&cWordChar != 0 || c == '.' || c == '-' || c == '+' || c == '%'
}

// isPathOpener: characters after which a '/' starts a path rather than
// being a separator inside a word ("and/or", "1/2").
func isPathOpener(c byte) bool {
	switch c {
	case '=', ':', '(', '[', '{', '<', '"', '\'', ',', '@':
		return true
	}
	return false
}

func (t *tokenizer) addVar(a, b int) {
	t.buf = append(t.buf, Wildcard...)
	t.vars = append(t.vars, span{int32(a), int32(b)})
}

// maskAtDigit tries the maskers that can start with a digit (or a sign).
// t.lastWasIPv4 tells the caller to look for a port.
func (t *tokenizer) maskAtDigit(s string, i int) int {
	t.lastWasIPv4 = false
	m := t.masks
	if i > 0 && isLetter(s[i-1]) {
		return 0 // glued to a word: "ssh2", "user1"
	}
	rest := s[i:]
	if rest[0] != '-' {
		if m.has(bitUUID) && len(rest) >= 36 {
			if n := matchUUID(rest); n > 0 {
				return n
			}
		}
		if m.has(bitDateTime) {
			if n := matchDateTime(rest); n > 0 {
				return n
			}
		}
		if m.has(bitIPv4) {
			if n := matchIPv4(rest); n > 0 {
				t.lastWasIPv4 = true
				return n
			}
		}
		if m.has(bitIPv6) {
			if n := matchIPv6(rest); n > 0 {
				return n
			}
		}
		if m.has(bitHex) {
			if n := matchHex0x(rest); n > 0 {
				return n
			}
			if n := matchHexWord(rest); n > 0 {
				return n
			}
		}
	}
	num := scanNumber(rest)
	if num == 0 {
		return 0
	}
	if num < len(rest) && isLetter(rest[num]) {
		if rest[0] != '-' {
			if m.has(bitDuration) {
				if n := matchDurationFrom(rest, num); n > 0 {
					return n
				}
			}
			if m.has(bitSize) {
				if n := matchUnit(rest[num:], sizeUnits); n > 0 && (num+n == len(rest) || !isAlnum(rest[num+n])) {
					return num + n
				}
			}
		}
		return 0 // "5th", "100x": a word, not a number
	}
	if !m.has(bitNumber) {
		return 0
	}
	return num
}

// scanNumber: -?digits(.digits)* ; a trailing '.' is not part of it.
func scanNumber(s string) int {
	i := 0
	if i < len(s) && s[i] == '-' {
		i++
	}
	d := i
	for i < len(s) && isDigit(s[i]) {
		i++
	}
	if i == d {
		return 0
	}
	for i+1 < len(s) && s[i] == '.' && isDigit(s[i+1]) {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	return i
}

func digitsAt(s string, i, min, max int) int {
	n := 0
	for i+n < len(s) && n < max && isDigit(s[i+n]) {
		n++
	}
	if n < min {
		return 0
	}
	return n
}

// matchIPv4 matches a dotted quad not continued by more digits.
func matchIPv4(s string) int {
	i := 0
	for part := 0; part < 4; part++ {
		if part > 0 {
			if i >= len(s) || s[i] != '.' {
				return 0
			}
			i++
		}
		n := digitsAt(s, i, 1, 3)
		if n == 0 {
			return 0
		}
		i += n
	}
	if i < len(s) && (isAlnum(s[i]) || (s[i] == '.' && i+1 < len(s) && isDigit(s[i+1]))) {
		return 0
	}
	return i
}

// maskPort masks ":1234" after an IPv4 address as ":<*>" and returns the
// bytes consumed.
func (t *tokenizer) maskPort(s string, i, a int) int {
	if i+1 >= len(s) || s[i] != ':' {
		return 0
	}
	n := digitsAt(s, i+1, 1, 5)
	if n == 0 || (i+1+n < len(s) && isAlnum(s[i+1+n])) {
		return 0
	}
	t.buf = append(t.buf, ':')
	t.addVar(a+i+1, a+i+1+n)
	return 1 + n
}

// matchIPv6 matches colon-separated hex groups: 8 groups, or fewer with one
// "::"; also a MAC address (6 groups of 2 hex digits, ':' or '-'). A ninth
// group after 8 full ones is a port ("0:0:0:0:0:0:0:0:2181") and is left to
// the number masker.
func matchIPv6(s string) int {
	if n := matchMAC(s); n > 0 {
		return n
	}
	i, groups, double := 0, 0, false
	var ends [9]int
	if strings.HasPrefix(s, "::") {
		double, i = true, 2
	}
	end := i
	for groups < 9 {
		n := 0
		for i+n < len(s) && n < 5 && isHex(s[i+n]) {
			n++
		}
		if n == 0 || n > 4 {
			break
		}
		i += n
		ends[groups] = i
		groups++
		end = i
		if i+1 < len(s) && s[i] == ':' && s[i+1] == ':' {
			if double {
				break
			}
			double, i = true, i+2
			end = i
			continue
		}
		if i+1 < len(s) && s[i] == ':' && isHex(s[i+1]) {
			i++
			continue
		}
		break
	}
	switch {
	case !double && groups >= 8:
		end = ends[7]
	case double && groups >= 1 && groups <= 7:
	default:
		return 0
	}
	if end < len(s) && (isAlnum(s[end]) || s[end] == '.') {
		return 0
	}
	return end
}

func matchMAC(s string) int {
	if len(s) < 17 {
		return 0
	}
	sep := s[2]
	if sep != ':' && sep != '-' {
		return 0
	}
	for g := 0; g < 6; g++ {
		p := g * 3
		if !isHex(s[p]) || !isHex(s[p+1]) {
			return 0
		}
		if g < 5 && s[p+2] != sep {
			return 0
		}
	}
	if len(s) > 17 && isAlnum(s[17]) {
		return 0
	}
	return 17
}

func matchUUID(s string) int {
	if len(s) < 36 {
		return 0
	}
	for i := 0; i < 36; i++ {
		switch i {
		case 8, 13, 18, 23:
			if s[i] != '-' {
				return 0
			}
		default:
			if !isHex(s[i]) {
				return 0
			}
		}
	}
	if len(s) > 36 && isAlnum(s[36]) {
		return 0
	}
	return 36
}

func matchHex0x(s string) int {
	if len(s) < 3 || s[0] != '0' || (s[1] != 'x' && s[1] != 'X') {
		return 0
	}
	i := 2
	for i < len(s) && isHex(s[i]) {
		i++
	}
	if i == 2 || (i < len(s) && isAlnum(s[i])) {
		return 0
	}
	return i
}

// matchHexWord: a whole alphanumeric word of at least 7 hex digits that has
// both a decimal digit and a letter (object hashes, commit ids, pod suffixes).
// Pure-letter words ("deadbeef", "facade") stay words.
func matchHexWord(s string) int {
	i, digits, letters := 0, 0, 0
	for i < len(s) && isHex(s[i]) {
		if isDigit(s[i]) {
			digits++
		} else {
			letters++
		}
		i++
	}
	if i < 7 || digits == 0 || letters == 0 || (i < len(s) && isAlnum(s[i])) {
		return 0
	}
	return i
}

// matchDateTime matches a date (YYYY-MM-DD, YYYY/MM/DD), a time
// (H:MM:SS with optional fraction) or an ISO timestamp (date 'T' time with
// optional zone), as one wildcard.
func matchDateTime(s string) int {
	i := 0
	if n := matchDate(s); n > 0 {
		i = n
		if i < len(s) && (s[i] == 'T' || s[i] == '_') {
			if m := matchTime(s[i+1:]); m > 0 {
				i += 1 + m
			}
		}
	} else if n := matchTime(s); n > 0 {
		i = n
	} else {
		return 0
	}
	if i < len(s) && isAlnum(s[i]) {
		return 0
	}
	return i
}

func matchDate(s string) int {
	if digitsAt(s, 0, 4, 4) != 4 || len(s) < 10 {
		return 0
	}
	sep := s[4]
	if sep != '-' && sep != '/' {
		return 0
	}
	if digitsAt(s, 5, 2, 2) != 2 || s[7] != sep || digitsAt(s, 8, 2, 2) != 2 {
		return 0
	}
	return 10
}

func matchTime(s string) int {
	h := digitsAt(s, 0, 1, 2)
	if h == 0 || h >= len(s) || s[h] != ':' {
		return 0
	}
	i := h + 1
	if digitsAt(s, i, 2, 2) != 2 {
		return 0
	}
	i += 2
	if i >= len(s) || s[i] != ':' || digitsAt(s, i+1, 2, 2) != 2 {
		return 0
	}
	i += 3
	if i+1 < len(s) && (s[i] == '.' || s[i] == ',') && isDigit(s[i+1]) {
		i++
		for i < len(s) && isDigit(s[i]) {
			i++
		}
	}
	if i < len(s) && s[i] == 'Z' {
		i++
	} else if i+5 < len(s)+0 && (s[i] == '+' || s[i] == '-') && digitsAt(s, i+1, 2, 2) == 2 {
		j := i + 3
		if j < len(s) && s[j] == ':' {
			j++
		}
		if digitsAt(s, j, 2, 2) == 2 {
			i = j + 2
		}
	}
	return i
}

var durationUnits = []string{"nanoseconds", "microseconds", "milliseconds", "seconds", "second", "minutes", "minute", "hours", "hour", "days", "day", "msec", "usec", "nsec", "secs", "sec", "mins", "min", "hrs", "hr", "ns", "us", "µs", "ms", "s", "m", "h", "d"}

var sizeUnits = []string{"bytes", "byte", "KiB", "MiB", "GiB", "TiB", "PiB", "kB", "KB", "MB", "GB", "TB", "PB", "Kb", "Mb", "Gb", "B", "K", "M", "G", "T", "k"}

// matchUnit returns the length of the longest unit that prefixes s.
func matchUnit(s string, units []string) int {
	for _, u := range units {
		if strings.HasPrefix(s, u) {
			return len(u)
		}
	}
	return 0
}

// matchDurationFrom matches number+unit, repeated (1h30m0s), from a number
// of length num at the start of s.
func matchDurationFrom(s string, num int) int {
	i := num
	for {
		n := matchUnitBounded(s[i:], durationUnits)
		if n == 0 {
			return 0
		}
		i += n
		if i == len(s) || !isAlnum(s[i]) {
			return i
		}
		m := scanNumber(s[i:])
		if m == 0 || s[i] == '-' {
			return 0
		}
		i += m
	}
}

// matchUnitBounded: a unit followed by a non-letter (the longest such).
func matchUnitBounded(s string, units []string) int {
	for _, u := range units {
		if strings.HasPrefix(s, u) && (len(s) == len(u) || !isLetter(s[len(u)])) {
			return len(u)
		}
	}
	return 0
}

// matchEmail matches local@domain.tld at the start of s.
func matchEmail(s string) int {
	i := 0
	for i < len(s) && isWordOrDot(s[i]) {
		i++
	}
	if i == 0 || i >= len(s) || s[i] != '@' {
		return 0
	}
	i++
	dots, labelStart, lastLabelLetters := 0, i, true
	for i < len(s) {
		c := s[i]
		if isAlnum(c) || c == '-' {
			i++
			continue
		}
		if c == '.' && i > labelStart && i+1 < len(s) && isAlnum(s[i+1]) {
			dots++
			i++
			labelStart = i
			continue
		}
		break
	}
	for j := labelStart; j < i; j++ {
		if !isLetter(s[j]) {
			lastLabelLetters = false
		}
	}
	if dots == 0 || i-labelStart < 2 || !lastLabelLetters {
		return 0
	}
	return i
}

// tryURL masks a token that contains scheme://... . Text before the scheme
// is kept ("url=<*>"); the URL runs to the end of the token except closing
// punctuation.
func (t *tokenizer) tryURL(s string, a int) bool {
	k := strings.Index(s, "://")
	j := k
	for j > 0 && (isAlnum(s[j-1]) || s[j-1] == '+' || s[j-1] == '.' || s[j-1] == '-') {
		j--
	}
	for j < k && !isLetter(s[j]) {
		j++
	}
	if j == k || k+3 >= len(s) {
		return false
	}
	end := len(s)
	for end > k+3 && strings.IndexByte(")]}>\"',;.", s[end-1]) >= 0 {
		end--
	}
	// the prefix is masked normally (it may hold numbers), so run the
	// scanner on it with URL matching off.
	saved := t.masks
	t.masks &^= bitURL
	t.maskPrefix(s[:j], a)
	t.masks = saved
	t.addVar(a+j, a+end)
	t.buf = append(t.buf, s[end:]...)
	return true
}

func (t *tokenizer) maskPrefix(s string, a int) {
	if s == "" {
		return
	}
	// reuse maskToken on a sub-range of the line
	t.maskToken(a, a+len(s))
}

// maskPath masks a path at s[i] as one variable, file name included
// ("/etc/httpd/conf/workers2.properties", "/var/www/html/",
// "/user/root/part-00590."): in the corrected-template convention a token
// that holds a variable is the variable.
func (t *tokenizer) maskPath(s string, i, a int) int {
	// A '/' is refused on what follows it ("//", an address, nothing),
	// before the scan: refused after it, a token of such openers
	// ("=//=//...") was scanned to its end at each of them.
	if s[i] == '/' && (i+1 == len(s) || s[i+1] == '/' || s[i+1] == ',' || !isPathChar(s[i+1]) ||
		(isDigit(s[i+1]) && matchIPv4(s[i+1:]) > 0)) { // "/10.0.0.1:50010" is an address, not a path
		return 0
	}
	j := i
	if i+2 < len(s) && s[i+1] == ':' && s[i+2] == '\\' {
		j = i + 2 // drive letter
	}
	for j < len(s) && class[s[j]]&cPathChar != 0 && s[j] != ',' {
		j++
	}
	t.pathScanned += uint64(j - i)
	p := s[i:j]
	if len(p) < 2 {
		return 0
	}
	t.addVar(a+i, a+j)
	return j - i
}

func isPathChar(c byte) bool { return class[c]&cPathChar != 0 }
