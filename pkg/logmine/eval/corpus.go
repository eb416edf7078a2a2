package eval

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"github.com/aiops-dev/aiops/pkg/logmine"
)

// TuningSystems are the four shared Loghub systems that logmine's defaults
// were chosen on (the miner was developed on them, and every default in
// DefaultConfig and the maskers was checked against them only).
// HeldOutSystems are the other four shared systems: their figures are
// reported and gated, never used to choose a default.
var (
	TuningSystems  = []string{"HDFS", "Apache", "OpenSSH", "Zookeeper"}
	HeldOutSystems = []string{"BGL", "HPC", "Hadoop", "Spark"}
)

// MaxFileBytes bounds each file a system is read from (the log and its two
// truth files), checked before reading.
const MaxFileBytes = 512 << 20

// ErrCorpus reports a corpus folder or format file that cannot be used.
var ErrCorpus = errors.New("eval: bad corpus")

// System is one labelled log sample: raw lines and, per line, the truth's
// event id, template and (when the corrected truth is there) corrected
// template.
type System struct {
	Name      string
	Format    string   // header format; "" mines whole lines
	Lines     []string // raw lines, header included
	Contents  []string // the truth's Content column
	EventIDs  []string
	Templates []string
	Corrected []string // nil without a *_structured_corrected.csv
}

// LoadSystem reads DIR/NAME: the one `*.log` file there, its
// `*.log_structured.csv` truth (columns EventId and EventTemplate, Content
// when present) and, when present, `*.log_structured_corrected.csv`.
func LoadSystem(dir, name, format string) (*System, error) {
	folder := filepath.Join(dir, name)
	logs, err := filepath.Glob(filepath.Join(folder, "*.log"))
	if err != nil {
		return nil, err
	}
	if len(logs) != 1 {
		return nil, fmt.Errorf("%w: %s: want exactly one *.log file, found %d", ErrCorpus, folder, len(logs))
	}
	raw, err := readBounded(logs[0])
	if err != nil {
		return nil, err
	}
	s := &System{Name: name, Format: format}
	text := string(raw)
	text = strings.TrimSuffix(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	if text != "" {
		s.Lines = strings.Split(text, "\n")
	}
	var contents []string
	contents, s.EventIDs, s.Templates, err = readTruth(logs[0] + "_structured.csv")
	if err != nil {
		return nil, err
	}
	s.Contents = contents
	if len(s.Lines) != len(s.EventIDs) {
		return nil, fmt.Errorf("%w: %s: %d lines but %d labelled rows", ErrCorpus, name, len(s.Lines), len(s.EventIDs))
	}
	corrected := logs[0] + "_structured_corrected.csv"
	if _, err := os.Stat(corrected); err == nil {
		_, _, s.Corrected, err = readTruth(corrected)
		if err != nil {
			return nil, err
		}
		if len(s.Corrected) != len(s.Lines) {
			return nil, fmt.Errorf("%w: %s: %d lines but %d corrected rows", ErrCorpus, name, len(s.Lines), len(s.Corrected))
		}
	}
	return s, nil
}

func readBounded(path string) ([]byte, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if st.Size() > MaxFileBytes {
		return nil, fmt.Errorf("%w: %s is %d bytes, more than %d", ErrCorpus, path, st.Size(), MaxFileBytes)
	}
	return os.ReadFile(path)
}

func readTruth(path string) (contents, ids, templates []string, err error) {
	raw, err := readBounded(path)
	if err != nil {
		return nil, nil, nil, err
	}
	r := csv.NewReader(strings.NewReader(string(raw)))
	r.FieldsPerRecord = -1
	head, err := r.Read()
	if err != nil {
		return nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrCorpus, path, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[strings.TrimPrefix(h, "\ufeff")] = i
	}
	for _, need := range []string{"EventId", "EventTemplate"} {
		if _, ok := col[need]; !ok {
			return nil, nil, nil, fmt.Errorf("%w: %s: no %s column", ErrCorpus, path, need)
		}
	}
	ci, hasContent := col["Content"]
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, nil, fmt.Errorf("%w: %s: %v", ErrCorpus, path, err)
		}
		if len(rec) != len(head) {
			return nil, nil, nil, fmt.Errorf("%w: %s: row %d has %d columns, the header %d", ErrCorpus, path, len(ids)+1, len(rec), len(head))
		}
		if hasContent {
			contents = append(contents, rec[ci])
		}
		ids = append(ids, rec[col["EventId"]])
		templates = append(templates, rec[col["EventTemplate"]])
	}
	return contents, ids, templates, nil
}

// formatLine is one entry of a format file: `System: format`, in a
// Markdown list also `- System: `+"`format`"+`.
var formatLine = regexp.MustCompile("^\\s*(?:[-*]\\s+)?([A-Za-z0-9_.-]+):\\s+(`[^`]+`|\\S.*)\\s*$")

// ReadFormats reads a format file: one `System: format` a line (blank lines
// and lines starting with '#' skipped), or a Markdown file such as the
// shared data's FORMATS.md, where only list items `- System: `+"`format`"+`
// count and all other text is prose. Every format must compile or be
// "auto" (detect the header, see logmine.DetectHeader). The
// systems are returned in file order.
func ReadFormats(r io.Reader) (formats map[string]string, order []string, err error) {
	raw, err := io.ReadAll(io.LimitReader(r, 1<<20+1))
	if err != nil {
		return nil, nil, err
	}
	if len(raw) > 1<<20 {
		return nil, nil, fmt.Errorf("%w: format file larger than 1 MiB", ErrCorpus)
	}
	lines := strings.Split(strings.ReplaceAll(string(raw), "\r\n", "\n"), "\n")
	markdown := slices.ContainsFunc(lines, func(l string) bool {
		m := formatLine.FindStringSubmatch(l)
		return m != nil && isBullet(l) && strings.HasPrefix(m[2], "`")
	})
	formats = map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	for sc.Scan() {
		n++
		l := sc.Text()
		t := strings.TrimSpace(l)
		if t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		m := formatLine.FindStringSubmatch(l)
		if markdown && (m == nil || !isBullet(l) || !strings.HasPrefix(m[2], "`")) {
			continue // prose
		}
		if m == nil {
			return nil, nil, fmt.Errorf("%w: format file line %d: want `System: format`, got %q", ErrCorpus, n, t)
		}
		name, spec := m[1], strings.TrimSpace(m[2])
		spec = strings.TrimSuffix(strings.TrimPrefix(spec, "`"), "`")
		if _, dup := formats[name]; dup {
			return nil, nil, fmt.Errorf("%w: format file line %d: %s given twice", ErrCorpus, n, name)
		}
		if spec == logmine.FormatAuto {
			// detect the header
		} else if _, err := logmine.CompileFormat(spec); err != nil {
			return nil, nil, fmt.Errorf("format file line %d (%s): %w", n, name, err)
		}
		formats[name] = spec
		order = append(order, name)
	}
	if err := sc.Err(); err != nil {
		return nil, nil, err
	}
	if len(order) == 0 {
		return nil, nil, fmt.Errorf("%w: format file has no `System: format` entry", ErrCorpus)
	}
	return formats, order, nil
}

func isBullet(l string) bool {
	t := strings.TrimLeft(l, " \t")
	return strings.HasPrefix(t, "- ") || strings.HasPrefix(t, "* ")
}

// Score is one system's result.
type Score struct {
	System         string
	Lines          int
	Unmatched      int // lines without the header format, mined whole
	Templates      int // templates the parser found
	TruthTemplates int // distinct truth event ids
	GA             float64
	PA             float64 // against the corrected templates (the original ones when there are none)
	PAOriginal     float64 // against the original templates
	Corrected      bool    // PA is against the corrected truth
}

// Run parses the system's lines with opts (opts.Format is set from the
// system when empty) and scores the result.
func Run(s *System, opts logmine.ParseOptions) (Score, error) {
	if opts.Format == "" {
		opts.Format = s.Format
	}
	parsed, st, err := logmine.ParseLines(s.Lines, opts)
	if err != nil {
		return Score{}, err
	}
	ids := make([]string, len(parsed))
	tm := make([]string, len(parsed))
	for i, p := range parsed {
		ids[i], tm[i] = p.ID.String(), p.Template
	}
	sc := Score{System: s.Name, Lines: st.Lines, Unmatched: st.Unmatched, Templates: st.Templates}
	sc.TruthTemplates = countDistinct(s.EventIDs)
	if sc.GA, err = GroupingAccuracy(s.EventIDs, ids); err != nil {
		return sc, err
	}
	if sc.PAOriginal, err = ParsingAccuracy(s.Templates, tm); err != nil {
		return sc, err
	}
	sc.PA = sc.PAOriginal
	if s.Corrected != nil {
		sc.Corrected = true
		if sc.PA, err = ParsingAccuracy(s.Corrected, tm); err != nil {
			return sc, err
		}
	}
	return sc, nil
}

func countDistinct(xs []string) int {
	m := map[string]struct{}{}
	for _, x := range xs {
		m[x] = struct{}{}
	}
	return len(m)
}

// Mean averages GA, PA and PAOriginal over the scores whose system is in
// names (all scores when names is nil); n is how many there were.
func Mean(scores []Score, names []string) (ga, pa, paOrig float64, n int) {
	for _, s := range scores {
		if names != nil && !slices.Contains(names, s.System) {
			continue
		}
		ga += s.GA
		pa += s.PA
		paOrig += s.PAOriginal
		n++
	}
	if n > 0 {
		ga, pa, paOrig = ga/float64(n), pa/float64(n), paOrig/float64(n)
	}
	return ga, pa, paOrig, n
}
