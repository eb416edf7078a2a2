package aiops

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/service"
)

// logsCommand is `aiops logs SUBCOMMAND`.
func logsCommand(ctx context.Context, args []string) error {
	return logsMain(ctx, args, os.Stderr, time.Now)
}

func logsMain(ctx context.Context, args []string, stderr io.Writer, now func() time.Time) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, logsUsage)
		return service.Usage(errors.New("logs: no subcommand given (want parse)"))
	}
	switch args[0] {
	case "parse":
		return logsParse(ctx, args[1:], stderr, now)
	case "help", "-h", "--help":
		fmt.Fprintln(stderr, logsUsage)
		return nil
	}
	fmt.Fprintln(stderr, logsUsage)
	return service.Usage(fmt.Errorf("logs: unknown subcommand %q (want parse)", args[0]))
}

const logsUsage = `usage: aiops logs parse --input FILE.log [--format '<Date> <Time> <Level> <Component>: <Content>'] --output parsed.csv

Mines log templates offline with the logminer's code and default settings and
writes the CSV header LineId,EventId,EventTemplate, then one row per input line
(LineId from 1), variables written as <*>. Without --format the whole line is
the message. Lines that do not have the format are mined whole and counted in
a warning, never dropped. --output - writes to standard output.`

// logsParse is `aiops logs parse`.
func logsParse(ctx context.Context, args []string, stderr io.Writer, now func() time.Time) error {
	fs := flag.NewFlagSet("aiops logs parse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, logsUsage); fs.PrintDefaults() }
	input := fs.String("input", "", "log file to parse (required)")
	format := fs.String("format", "", "header format in the <Field> notation, with exactly one <Content> field; empty: the whole line is the message")
	output := fs.String("output", "", "CSV file to write (required; - for standard output)")
	maxLine := fs.Int("max-line-bytes", logmine.DefaultMaxLineBytes, "longer lines are cut (and counted in a warning)")
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
	case *maxLine <= 0:
		return service.Usage(fmt.Errorf("logs parse: --max-line-bytes must be positive, got %d", *maxLine))
	}
	if *format != "" {
		// Checked before any file is touched, so a typo costs nothing.
		if _, err := logmine.CompileFormat(*format); err != nil {
			return service.Usage(fmt.Errorf("logs parse: --format: %w", err))
		}
	}

	in, err := os.Open(*input)
	if err != nil {
		return fmt.Errorf("logs parse: --input: %w", err)
	}
	defer in.Close()
	info, err := in.Stat()
	if err != nil {
		return fmt.Errorf("logs parse: --input: %w", err)
	}
	if info.IsDir() {
		return service.Usage(fmt.Errorf("logs parse: --input %s is a directory", *input))
	}

	out, commit, err := openOutput(*output, os.Stdout)
	if err != nil {
		return fmt.Errorf("logs parse: --output: %w", err)
	}
	bw := bufio.NewWriterSize(out, 256<<10)
	src := &progressReader{ctx: ctx, r: in, total: info.Size(), w: stderr, now: now, every: 2 * time.Second}
	src.last = now()
	stats, err := logmine.ParseFile(src, bw, logmine.ParseOptions{Format: *format, MaxLineBytes: *maxLine})
	if err == nil {
		err = bw.Flush()
	}
	if err := commit(err); err != nil {
		return fmt.Errorf("logs parse: %s: %w", *input, err)
	}
	if stats.Unmatched > 0 {
		fmt.Fprintf(stderr, "logs parse: warning: %d of %d lines did not have the format %q and were mined as whole lines\n", stats.Unmatched, stats.Lines, *format)
	}
	if stats.Truncated > 0 {
		fmt.Fprintf(stderr, "logs parse: warning: %d lines were longer than %d bytes and were cut\n", stats.Truncated, *maxLine)
	}
	fmt.Fprintf(stderr, "logs parse: %d lines, %d templates -> %s\n", stats.Lines, stats.Templates, *output)
	return nil
}

// progressReader reports how far into the input the parser is, at most once
// every `every`, so small files stay silent and big ones show they move. It
// also stops the parse when ctx is cancelled (ParseFile takes no context).
type progressReader struct {
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
			fmt.Fprintf(p.w, "logs parse: %.0f%% (%d of %d MB)\n", 100*float64(p.read)/float64(p.total), p.read>>20, p.total>>20)
		} else {
			fmt.Fprintf(p.w, "logs parse: %d MB read\n", p.read>>20)
		}
	}
	return n, err
}
