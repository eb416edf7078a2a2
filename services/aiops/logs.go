package aiops

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/eval"
	"github.com/aiops-dev/aiops/pkg/service"
)

// logsCommand is `aiops logs SUBCOMMAND`.
func logsCommand(ctx context.Context, args []string) error {
	return logsMain(ctx, args, os.Stderr, time.Now)
}

func logsMain(ctx context.Context, args []string, stderr io.Writer, now func() time.Time) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, logsUsage)
		return service.Usage(errors.New("logs: no subcommand given (want parse or eval)"))
	}
	switch args[0] {
	case "parse":
		return logsParse(ctx, args[1:], stderr, now)
	case "eval":
		return logsEval(ctx, args[1:], os.Stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprintln(stderr, logsUsage)
		return nil
	}
	fmt.Fprintln(stderr, logsUsage)
	return service.Usage(fmt.Errorf("logs: unknown subcommand %q (want parse or eval)", args[0]))
}

const logsUsage = `usage: aiops logs parse --input FILE.log [--format '<Date> <Time> <Level> <Component>: <Content>'] --output parsed.csv
       aiops logs eval DIR [--format-file FORMATS.md] [--systems A,B] [--tuning A,B]

Mines log templates offline with the logminer's code and default settings and
writes the CSV header LineId,EventId,EventTemplate, then one row per input line
(LineId from 1), variables written as <*> (a word holding a variable is <*> as
a whole, as in Loghub 2.0's corrected templates). --format takes the logparser
benchmark's log_format notation (<Field> names, escaped characters, regular
expression fragments such as (\[<PID>\])?); --format auto detects RFC 3164 or
RFC 5424 syslog, JSON lines, logfmt, Log4j/Logback, Apache/nginx access logs or
klog from the first 100 lines and says which. Without --format the whole line is
the message. Lines that do not have the format are mined whole and counted in
a warning, never dropped. A gzip-compressed input (app.log.1.gz) is read as
such. --output - writes to standard output. A message (the line less its
header) longer than --max-line-bytes (by default the logminer's default
max_line_bytes) is mined on its first bytes, cut where the logminer cuts it,
so that a line gets the template it gets live.

eval scores the same parse on labelled samples: DIR holds one folder per
system with one *.log file, its *.log_structured.csv truth and optionally
*.log_structured_corrected.csv (the Loghub layout). It prints, per system and
as means, grouping accuracy (GA, against the original EventId), parsing
accuracy (PA, against the corrected templates when present) and PA against
the original templates; progress goes to standard error. The format file
holds "System: format" lines, or is a Markdown file whose list items
"- System: ` + "`format`" + `" count (the shared data's FORMATS.md); systems with no
format are mined on whole lines. --tuning names the systems the defaults were
chosen on, whose mean is printed apart from the others'.`

// logsParse is `aiops logs parse`.
func logsParse(ctx context.Context, args []string, stderr io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("aiops logs parse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, logsUsage); fs.PrintDefaults() }
	input := fs.String("input", "", "log file to parse, - for standard input (required)")
	format := fs.String("format", "", "header format in the logparser <Field> notation, with exactly one <Content> field; auto: detect a common header (syslog, JSON, logfmt, Log4j, access log, klog); empty: the whole line is the message")
	output := fs.String("output", "", "CSV file to write (required; - for standard output)")
	maxLine := fs.Int("max-line-bytes", logmine.DefaultMaxLineBytes, "how much of a line's message (after its header) is mined, as the logminer's max_line_bytes; a longer one is mined on its first bytes, cut on a character boundary (and counted in a warning)")
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	switch {
	case fs.NArg() > 0:
		return service.Usage(fmt.Errorf("logs parse: unexpected argument %q (flags only)", fs.Arg(0)))
	case *input == "":
		return service.Usage(errors.New("logs parse: --input is required"))
	case *output == "":
		return service.Usage(errors.New("logs parse: --output is required (- for standard output)"))
	case *maxLine < 16 || *maxLine > 1<<30:
		return service.Usage(fmt.Errorf("logs parse: --max-line-bytes must be in [16, 1073741824], got %d", *maxLine))
	}
	if *format != "" && *format != logmine.FormatAuto {
		// Checked before any file is touched, so a typo costs nothing.
		if _, err := logmine.CompileFormat(*format); err != nil {
			return service.Usage(fmt.Errorf("logs parse: --format: %w", err))
		}
	}

	// Progress counts the bytes of the file as stored (compressed or not),
	// and a cancelled ctx stops the parse (ParseFile takes no context).
	text, closeIn, err := openInput(ctx, "logs parse", *input, stderr, now)
	if err != nil {
		return err
	}
	defer closeIn()
	// An output that cannot be written is the command line's fault (exit
	// 2), as an input that cannot be opened is.
	if err := checkOutputPath(*output); err != nil {
		return service.Usage(fmt.Errorf("logs parse: --output: %w", err))
	}

	out, commit, err := openOutput(*output, os.Stdout)
	if err != nil {
		return fmt.Errorf("logs parse: --output: %w", err)
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	stats, err := logmine.ParseFile(text, bw, logmine.ParseOptions{Format: *format, MaxLineBytes: *maxLine})
	if err == nil {
		err = bw.Flush()
	}
	if err := commit(err); err != nil {
		return fmt.Errorf("logs parse: %s: %w", *input, err)
	}
	if *format == logmine.FormatAuto {
		d := stats.Header
		fmt.Fprintf(stderr, "logs parse: header detected: %s (%d of the first %d lines)\n", d.Kind, d.Matched, d.Sampled)
	}
	if stats.Unmatched > 0 {
		fmt.Fprintf(stderr, "logs parse: warning: %d of %d lines did not have the format %q and were mined as whole lines\n", stats.Unmatched, stats.Lines, *format)
	}
	if stats.Truncated > 0 {
		fmt.Fprintf(stderr, "logs parse: warning: %d lines were mined on their first %d bytes (the logminer cuts them there too)\n", stats.Truncated, *maxLine)
	}
	fmt.Fprintf(stderr, "logs parse: %d lines, %d templates -> %s\n", stats.Lines, stats.Templates, *output)
	return nil
}

// progressReader reports how far into the input the parser is, at most once
// every `every`, so small files stay silent and big ones show they move. It
// also stops the parse when ctx is cancelled (ParseFile takes no context).
type progressReader struct {
	name  string // the command, which each line starts with
	ctx   context.Context
	r     io.Reader
	total int64
	read  int64
	w     io.Writer
	now   func() time.Time
	every time.Duration
	last  time.Time
}

func (p *progressReader) Read(b []byte) (int, error) {
	if err := p.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := p.r.Read(b)
	p.read += int64(n)
	if t := p.now(); t.Sub(p.last) >= p.every {
		p.last = t
		if p.total > 0 {
			fmt.Fprintf(p.w, "%s: %.0f%% (%d of %d MB)\n", p.name, 100*float64(p.read)/float64(p.total), p.read>>20, p.total>>20)
		} else {
			fmt.Fprintf(p.w, "%s: %d MB read\n", p.name, p.read>>20)
		}
	}
	return n, err
}

// logsEval is `aiops logs eval`.
func logsEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aiops logs eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, logsUsage); fs.PrintDefaults() }
	formatFile := fs.String("format-file", "", "header formats: `System: format` lines, or a Markdown list like FORMATS.md")
	systems := fs.String("systems", "", "comma-separated systems to score (default: every folder of DIR with a *.log file)")
	tuning := fs.String("tuning", strings.Join(eval.TuningSystems, ","), "systems the defaults were chosen on; their mean is printed apart")
	// flags may come after DIR, as in the usage line
	var dir string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		dir, args = args[0], args[1:]
	}
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	if dir == "" && fs.NArg() > 0 {
		dir = fs.Arg(0)
		if fs.NArg() > 1 {
			return service.Usage(fmt.Errorf("logs eval: unexpected argument %q (one DIR)", fs.Arg(1)))
		}
	} else if fs.NArg() > 0 {
		return service.Usage(fmt.Errorf("logs eval: unexpected argument %q (one DIR)", fs.Arg(0)))
	}
	if dir == "" {
		return service.Usage(errors.New("logs eval: DIR is required"))
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return service.Usage(fmt.Errorf("logs eval: %s is not a directory", dir))
	}
	formats := map[string]string{}
	if *formatFile != "" {
		f, err := os.Open(*formatFile)
		if err != nil {
			// A file the command line names that cannot be opened: exit 2.
			return service.Usage(fmt.Errorf("logs eval: --format-file: %w", err))
		}
		formats, _, err = eval.ReadFormats(f)
		f.Close()
		if err != nil {
			return service.Usage(fmt.Errorf("logs eval: --format-file %s: %w", *formatFile, err))
		}
	}
	var names []string
	if *systems != "" {
		names = splitList(*systems)
	} else {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("logs eval: %w", err)
		}
		for _, e := range entries {
			if m, _ := filepath.Glob(filepath.Join(dir, e.Name(), "*.log")); e.IsDir() && len(m) > 0 {
				names = append(names, e.Name())
			}
		}
		if len(names) == 0 {
			return service.Usage(fmt.Errorf("logs eval: no folder of %s holds a *.log file", dir))
		}
	}
	var scores []eval.Score
	for i, name := range names {
		if err := ctx.Err(); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "logs eval: %s (%d of %d)\n", name, i+1, len(names))
		sys, err := eval.LoadSystem(dir, name, formats[name])
		if err != nil {
			return fmt.Errorf("logs eval: %s: %w", name, err)
		}
		if formats[name] == "" && *formatFile != "" {
			fmt.Fprintf(stderr, "logs eval: warning: %s has no format in %s; whole lines are mined\n", name, *formatFile)
		}
		sc, err := eval.Run(sys, logmine.ParseOptions{})
		if err != nil {
			return fmt.Errorf("logs eval: %s: %w", name, err)
		}
		if sc.Unmatched > 0 {
			fmt.Fprintf(stderr, "logs eval: warning: %s: %d of %d lines did not have the format and were mined whole\n", name, sc.Unmatched, sc.Lines)
		}
		scores = append(scores, sc)
	}
	return writeEvalTable(stdout, scores, splitList(*tuning))
}

func writeEvalTable(w io.Writer, scores []eval.Score, tuning []string) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "system\tset\tlines\tunmatched\ttemplates\ttruth\tGA\tPA\tPA(original)")
	var inTuning, others []string
	for _, s := range scores {
		set := "other"
		if slices.Contains(tuning, s.System) {
			set = "tuning"
			inTuning = append(inTuning, s.System)
		} else {
			others = append(others, s.System)
		}
		pa := fmt.Sprintf("%.4f", s.PA)
		if !s.Corrected {
			pa += " (no corrected truth)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%.4f\t%s\t%.4f\n", s.System, set, s.Lines, s.Unmatched, s.Templates, s.TruthTemplates, s.GA, pa, s.PAOriginal)
	}
	mean := func(label string, names []string) {
		ga, pa, po, n := eval.Mean(scores, names)
		fmt.Fprintf(tw, "mean %s\t(%d)\t\t\t\t\t%.4f\t%.4f\t%.4f\n", label, n, ga, pa, po)
	}
	if len(inTuning) > 0 && len(others) > 0 {
		mean("tuning", inTuning)
		mean("other", others)
	}
	if len(scores) > 0 {
		mean("all", nil)
	}
	return tw.Flush()
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
