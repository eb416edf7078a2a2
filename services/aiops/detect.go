package aiops

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/pipeline"
	"github.com/aiops-dev/aiops/pkg/detect/plot"
	"github.com/aiops-dev/aiops/pkg/service"
)

// detectCommand is `aiops detect replay`: the detector service's code run
// over a CSV file.
func detectCommand(ctx context.Context, args []string) error {
	return detectMain(ctx, args, os.Stdout, os.Stderr)
}

const detectUsage = `usage: aiops detect replay --input series.csv --output scores.csv [flags]

Scores a series offline with the detector service's code. The input has the
header timestamp,value (YYYY-MM-DD HH:MM:SS in UTC, or RFC 3339); the output
has timestamp,value,anomaly_score,is_anomaly, one row per input row, in order.
"-" reads standard input or writes standard output.

Several channels of one asset (timestamp,a,b,c,...: at most 256; an empty
cell or NaN is a missing channel) are scored together by one multivariate
group detector, as the service scores a pipeline group (--group names it in
--config; default: built-in group settings); the output then has
timestamp,<the input columns>,anomaly_score,is_anomaly,channel,changing, where
channel names the column that contributes most to an anomalous row and
changing is 1 while the asset's operating point is moving (a change starts
where it turns 1 and has settled where it turns 0).

flags:
`

func detectMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "replay" {
		io.WriteString(stderr, detectUsage)
		if len(args) == 0 {
			return service.Usage(errors.New("detect: no subcommand given (replay)"))
		}
		if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			return nil
		}
		return service.Usage(fmt.Errorf("detect: unknown subcommand %q (replay)", args[0]))
	}
	fs := flag.NewFlagSet("aiops detect replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, detectUsage); fs.PrintDefaults() }
	input := fs.String("input", "", "CSV series to score (required; - for standard input)")
	output := fs.String("output", "", "CSV of scores to write (required; - for standard output)")
	plotFile := fs.String("plot", "", "also draw the series, its expected band and the anomalies to this PNG")
	configFile := fs.String("config", "", "pipeline file whose detect section chooses the detectors (default: built-in defaults)")
	metric := fs.String("metric", "", "metric name the pipeline's rules match the series by")
	svc := fs.String("service", "", "service name the pipeline's rules match the series by")
	counter := fs.Bool("counter", false, "the series is a monotonic counter: score its per-second rate")
	group := fs.String("group", "", "for several columns: the pipeline group (in --config) whose settings score them")
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return service.Usage(err)
	}
	switch {
	case fs.NArg() > 0:
		return service.Usage(fmt.Errorf("detect replay: unexpected argument %q", fs.Arg(0)))
	case *input == "":
		return service.Usage(errors.New("detect replay: --input is required"))
	case *output == "":
		return service.Usage(errors.New("detect replay: --output is required"))
	}

	p := pipeline.Default()
	if *configFile != "" {
		var err error
		if p, err = pipeline.Load(*configFile); err != nil {
			return service.Usage(err)
		}
	}
	in := io.Reader(os.Stdin)
	if *input != "-" {
		f, err := os.Open(*input)
		if err != nil {
			return fmt.Errorf("detect replay: %w", err)
		}
		defer f.Close()
		in = f
	}
	// The header decides: timestamp,value is a series, more columns a group.
	br := bufio.NewReaderSize(in, detect.MaxGroupReplayLine)
	head, _ := br.Peek(detect.MaxGroupReplayLine)
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	if detect.IsGroupHeader(head) {
		gcfg := detect.GroupConfig{}
		if *group != "" {
			g, ok := p.Group(*group)
			if !ok {
				return service.Usage(fmt.Errorf("detect replay: --group %q is not a group of %s", *group, p.File))
			}
			gcfg = g.Settings
		}
		return replayGroup(ctx, br, *input, *output, *plotFile, gcfg, stdout, stderr)
	}
	if *group != "" {
		return service.Usage(fmt.Errorf("detect replay: --group %q needs an input of several columns (timestamp,a,b,...)", *group))
	}
	route := p.Select(*metric, *svc, nil)
	cfg := route.Profile(*counter).Config()

	out, commit, err := openOutput(*output, stdout)
	if err != nil {
		return fmt.Errorf("detect replay: --output: %w", err)
	}

	var rows []detect.ReplayRow
	var each func(detect.ReplayRow)
	if *plotFile != "" {
		each = func(r detect.ReplayRow) { rows = append(rows, r) }
	}
	start := time.Now()
	stats, err := detect.ReplayFunc(br, out, cfg, each)
	elapsed := time.Since(start)
	if err = commit(err); err != nil {
		return fmt.Errorf("detect replay: %s: %w", *input, err)
	}
	fmt.Fprintf(stderr, "detect replay: %d rows in %v (route %s), %d anomalies, %d warm-up; bad rows: %d unparsable values, %d NaN/Inf, %d out of order, %d duplicate timestamps; %d gaps, %d counter resets\n",
		stats.Rows, elapsed.Round(time.Millisecond), route.Name, stats.Anomalies, stats.WarmUp,
		stats.BadValues, stats.Invalid, stats.OutOfOrder, stats.Duplicates, stats.Gaps, stats.CounterResets)

	if *plotFile != "" {
		if err := writePlot(*plotFile, rows, filepath.Base(*input)); err != nil {
			return fmt.Errorf("detect replay: plot: %w", err)
		}
		fmt.Fprintf(stderr, "detect replay: plot written to %s\n", *plotFile)
	}
	return ctx.Err()
}

func writePlot(path string, rows []detect.ReplayRow, title string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := plot.PNG(f, rows, plot.Options{Title: title}); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}

// replayGroup is detect replay of several columns: one detect.Group over them.
func replayGroup(ctx context.Context, in io.Reader, input, output, plotFile string, cfg detect.GroupConfig, stdout, stderr io.Writer) error {
	out, commit, err := openOutput(output, stdout)
	if err != nil {
		return fmt.Errorf("detect replay: --output: %w", err)
	}
	var rows []detect.GroupReplayRow
	var each func(detect.GroupReplayRow)
	if plotFile != "" {
		each = func(r detect.GroupReplayRow) { rows = append(rows, r) }
	}
	start := time.Now()
	stats, err := detect.ReplayGroupFunc(in, out, cfg, each)
	elapsed := time.Since(start)
	if err = commit(err); err != nil {
		return fmt.Errorf("detect replay: %s: %w", input, err)
	}
	fmt.Fprintf(stderr, "detect replay: %d rows of %d channels in %v (group), %d anomalies, %d warm-up; %d missing cells, %d rows ignored (all missing, out of order or duplicate timestamps)\n",
		stats.Rows, len(stats.Channels), elapsed.Round(time.Millisecond), stats.Anomalies, stats.WarmUp, stats.Missing, stats.Ignored)
	if plotFile != "" {
		if err := writeGroupPlot(plotFile, stats.Channels, rows, filepath.Base(input)); err != nil {
			return fmt.Errorf("detect replay: plot: %w", err)
		}
		fmt.Fprintf(stderr, "detect replay: plot written to %s\n", plotFile)
	}
	return ctx.Err()
}

func writeGroupPlot(path string, channels []string, rows []detect.GroupReplayRow, title string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := plot.GroupPNG(f, channels, rows, plot.Options{Title: title}); err != nil {
		f.Close()
		os.Remove(path)
		return err
	}
	return f.Close()
}
