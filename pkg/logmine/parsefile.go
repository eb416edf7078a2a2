package logmine

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"

	"github.com/aiops-dev/aiops/pkg/errs"
)

// MaxReadLineBytes is how much of an input line ParseFile and ParseLines
// keep, header included, when ParseOptions.MaxLineBytes is smaller: more
// than any log event carries (event bodies are at most 512 KiB), so the
// header is cut off the line the logminer would see, and memory stays
// bounded by one line of it.
const MaxReadLineBytes = 1 << 20

// ParseOptions configures offline parsing.
type ParseOptions struct {
	// Format is the header format (see CompileFormat); empty means the
	// whole line is the content; FormatAuto detects a common header from
	// the first DetectSampleLines lines (see DetectHeader).
	Format string
	// Config is the miner configuration; the zero value means
	// DefaultConfig().
	Config *Config
	// MaxLineBytes is how much of each line's content (the line less its
	// header) is mined, cut as the logminer cuts it (CutLine, as its
	// max_line_bytes): the miner's Config.MaxLineBytes, whose value
	// (DefaultMaxLineBytes by default) zero keeps. A longer line is
	// counted in ParseStats.Truncated.
	MaxLineBytes int
}

// FormatAuto as ParseOptions.Format (and as a logminer format) detects the
// header instead of naming one.
const FormatAuto = "auto"

// DetectSampleLines is how many first lines header detection looks at.
const DetectSampleLines = 100

// ParseStats counts what ParseFile saw.
type ParseStats struct {
	Header    Detection // with FormatAuto: the header chosen
	Lines     int       // rows written, one per input line
	Unmatched int       // lines that did not have the Format (or the detected header), mined whole
	Truncated int       // lines mined on a part: content longer than MaxLineBytes, or line longer than MaxReadLineBytes
	Templates int       // distinct templates in the output
}

// Parsed is the final template of one input line.
type Parsed struct {
	ID       TemplateID
	Template string
}

// offline runs the online miner over a whole input and gives each line the
// template its group ends with, following the merges that later lines
// caused. The per-line state is one id (8 bytes).
type offline struct {
	miner  *Miner
	format *Format
	// detect: the header is detected from the first lines, held in
	// pending until then; kind is the result
	detect  bool
	kind    HeaderKind
	pending []pendingLine
	readMax int // bytes of a line kept (MaxReadLineBytes, or the content's bound when larger)
	ids     []TemplateID
	merged  map[TemplateID]TemplateID
	texts   map[TemplateID]string
	fields  []string
	res     Result
	stats   ParseStats
}

func newOffline(opts ParseOptions) (*offline, error) {
	cfg := DefaultConfig()
	if opts.Config != nil {
		cfg = *opts.Config
	}
	if opts.MaxLineBytes != 0 {
		// The content is cut by the miner, after the header, as the
		// logminer cuts it: cutting the whole line would give a long
		// line another template offline than live, or break its header.
		cfg.MaxLineBytes = opts.MaxLineBytes
	}
	cfg.MaxMerges = 0 // the offline run keeps its own, complete, merge map
	m, err := New(cfg)
	if err != nil {
		return nil, errs.Permanent(err)
	}
	o := &offline{miner: m, readMax: max(MaxReadLineBytes, cfg.MaxLineBytes), merged: map[TemplateID]TemplateID{}, texts: map[TemplateID]string{}}
	if opts.Format == FormatAuto {
		o.detect = true
	} else if opts.Format != "" {
		if o.format, err = CompileFormat(opts.Format); err != nil {
			return nil, errs.Permanent(err)
		}
	}
	return o, nil
}

type pendingLine struct {
	line      string
	truncated bool
}

// push adds a line, holding the first ones back while the header is being
// detected. A line longer than readMax is cut (on a character boundary:
// readers keep a few bytes more, so that CutLine sees where the next
// character starts).
func (o *offline) push(line string) {
	line, truncated := CutLine(line, o.readMax)
	if !o.detect {
		o.add(line, truncated)
		return
	}
	o.pending = append(o.pending, pendingLine{line, truncated})
	if len(o.pending) >= DetectSampleLines {
		o.decide()
	}
}

// decide detects the header from the held lines and mines them.
func (o *offline) decide() {
	if !o.detect {
		return
	}
	sample := make([]string, len(o.pending))
	for i, p := range o.pending {
		sample[i] = p.line
	}
	o.stats.Header = DetectHeader(sample)
	o.kind = o.stats.Header.Kind
	o.detect = false
	for _, p := range o.pending {
		o.add(p.line, p.truncated)
	}
	o.pending = nil
}

func (o *offline) add(line string, truncated bool) {
	o.stats.Lines++
	content := line
	if o.kind != "" && o.kind != HeaderNone {
		if h, ok := SplitHeader(o.kind, line); ok {
			content = h.Content
		} else {
			o.stats.Unmatched++
		}
	} else if o.format != nil {
		var ok bool
		o.fields, ok = o.format.Parse(line, o.fields)
		if ok {
			content = o.fields[o.format.content]
		} else {
			o.stats.Unmatched++
		}
	}
	o.miner.MatchInto(content, &o.res)
	if truncated || o.res.Truncated {
		o.stats.Truncated++
	}
	if o.res.New || o.res.Changed {
		o.texts[o.res.ID] = o.res.Template
	}
	for _, mg := range o.res.Merges {
		o.merged[mg.From] = mg.To
	}
	if o.res.New {
		delete(o.merged, o.res.ID)
	}
	o.ids = append(o.ids, o.res.ID)
}

// consolidate runs the miner's second merging pass once all lines are in
// and follows its merges.
func (o *offline) consolidate() {
	for _, mg := range o.miner.Consolidate() {
		o.merged[mg.From] = mg.To
	}
	for _, t := range o.miner.Templates() {
		delete(o.merged, t.ID) // live: a fold may have made an id live again
		o.texts[t.ID] = t.Template
	}
}

func (o *offline) final(id TemplateID) Parsed {
	for hops := 0; hops < 1<<16; hops++ {
		to, ok := o.merged[id]
		if !ok || to == id {
			break
		}
		id = to
	}
	return Parsed{ID: id, Template: o.texts[id]}
}

// ParseLines mines lines offline and returns each line's final template.
// Lines are raw log lines; with opts.Format their header is cut off first.
func ParseLines(lines []string, opts ParseOptions) ([]Parsed, ParseStats, error) {
	o, err := newOffline(opts)
	if err != nil {
		return nil, ParseStats{}, err
	}
	for _, l := range lines {
		o.push(l)
	}
	o.decide()
	o.consolidate()
	out := make([]Parsed, len(o.ids))
	seen := map[TemplateID]bool{}
	for i, id := range o.ids {
		out[i] = o.final(id)
		seen[out[i].ID] = true
	}
	o.stats.Templates = len(seen)
	return out, o.stats, nil
}

// ParseFile reads log lines from r and writes CSV to w: the header
// `LineId,EventId,EventTemplate`, then one row per input line (LineId from
// 1, empty lines included), with the template each line's group ends with.
// Lines that do not have opts.Format are mined whole and counted in
// ParseStats.Unmatched; lines whose content is longer than MaxLineBytes
// are mined on its first MaxLineBytes, as the logminer mines them, and
// counted.
// Errors reading r are returned as they are (transient); bad options are
// permanent.
func ParseFile(r io.Reader, w io.Writer, opts ParseOptions) (ParseStats, error) {
	o, err := newOffline(opts)
	if err != nil {
		return ParseStats{}, err
	}
	br := bufio.NewReaderSize(r, 64<<10)
	keep := o.readMax + utf8.UTFMax // push cuts at readMax, on a character boundary
	var long []byte                 // a line longer than br's buffer, kept up to keep
	inLong := false
	for {
		chunk, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long, chunk[:min(len(chunk), keep-len(long))]...)
			inLong = true
			continue
		}
		if err != nil && err != io.EOF {
			return o.stats, fmt.Errorf("logmine: read line %d: %w", o.stats.Lines+1, err)
		}
		if err == io.EOF && len(chunk) == 0 && !inLong {
			break
		}
		line := trimEOL(chunk)
		if inLong {
			long = append(long, line[:min(len(line), keep-len(long))]...)
			line = trimEOL(long)
		}
		o.push(string(line))
		long, inLong = long[:0], false
		if err == io.EOF {
			break
		}
	}
	o.decide()
	o.consolidate()
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"LineId", "EventId", "EventTemplate"}); err != nil {
		return o.stats, fmt.Errorf("logmine: write csv: %w", err)
	}
	seen := map[TemplateID]bool{}
	row := make([]string, 3)
	for i, id := range o.ids {
		p := o.final(id)
		seen[p.ID] = true
		row[0] = strconv.Itoa(i + 1)
		row[1] = p.ID.String()
		row[2] = p.Template
		if err := cw.Write(row); err != nil {
			return o.stats, fmt.Errorf("logmine: write csv row %d: %w", i+1, err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return o.stats, fmt.Errorf("logmine: write csv: %w", err)
	}
	o.stats.Templates = len(seen)
	return o.stats, nil
}

func trimEOL(b []byte) []byte {
	b = bytes.TrimSuffix(b, []byte{'\n'})
	return bytes.TrimSuffix(b, []byte{'\r'})
}
