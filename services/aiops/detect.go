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
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/detect"
	"github.com/aiops-dev/aiops/pkg/detect/eval"
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
header timestamp,value (Unix seconds, YYYY-MM-DD HH:MM:SS in UTC, or RFC
3339); the output
has timestamp,value,anomaly_score,is_anomaly, one row per input row, in order.
"-" reads standard input or writes standard output; a gzip-compressed
input is read as such. --config's rules choose the detectors by --metric
and --service, as the service's do; a series a rule ignores (ignore: true)
the service does not score, and the replay refuses it.

Several channels of one asset (timestamp,a,b,c,...: at most 256; an empty
cell or NaN is a missing channel) are scored together as the service
scores a pipeline group (--group names it in --config, with its method;
default: method vote): vote, each channel with its own detectors (the
defaults of --config), a row anomalous when the channels in alarm are
surprising enough together (as detect eval scores an asset), or pca, one
principal-component group detector (the group's settings). The output then
has timestamp,<the input columns>,anomaly_score,is_anomaly,channel, where
channel names the column that contributes most to an anomalous row; method
pca adds a column changing, 1 while the asset's operating point is moving
(a change starts where it turns 1 and has settled where it turns 0).

flags:
`

func detectMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "eval" {
		return detectEval(ctx, args[1:], stdout, stderr)
	}
	if len(args) == 0 || args[0] != "replay" {
		// The overview has no flag set to list: point at each subcommand's.
		io.WriteString(stderr, strings.TrimSuffix(detectUsage, "flags:\n")+"flags: aiops detect replay -h\n")
		io.WriteString(stderr, "\n"+strings.TrimSuffix(detectEvalUsage, "flags:\n")+"flags: aiops detect eval -h\n")
		if len(args) == 0 {
			return service.Usage(errors.New("detect: no subcommand given (replay, eval)"))
		}
		if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
			return nil
		}
		return service.Usage(fmt.Errorf("detect: unknown subcommand %q (replay, eval)", args[0]))
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
	group := fs.String("group", "", "for several columns: the pipeline group (in --config) whose method and settings score them")
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
	// Where the scores and the picture go is checked before the scoring,
	// not after it (the picture is drawn last).
	for _, o := range []struct{ flag, path string }{{"--output", *output}, {"--plot", *plotFile}} {
		if err := checkOutputPath(o.path); err != nil {
			return service.Usage(fmt.Errorf("detect replay: %s: %w", o.flag, err))
		}
	}
	// A long series takes minutes: say how far it went.
	in, closeIn, err := openInput(ctx, "detect replay", *input, stderr, time.Now)
	if err != nil {
		return err
	}
	defer closeIn()
	// The header decides: timestamp,value is a series, more columns a group.
	br := bufio.NewReaderSize(in, detect.MaxGroupReplayLine)
	head, _ := br.Peek(detect.MaxGroupReplayLine)
	if i := bytes.IndexByte(head, '\n'); i >= 0 {
		head = head[:i]
	}
	if detect.IsGroupHeader(head) {
		// A picture of more channels than it draws is refused before the
		// scoring, not after it.
		if n := bytes.Count(head, []byte(",")); *plotFile != "" && n > plot.MaxPanels {
			return service.Usage(fmt.Errorf("detect replay: --plot: %d channels, at most %d panels (score without --plot, or fewer columns)", n, plot.MaxPanels))
		}
		defaults, _ := p.Lookup(pipeline.DefaultRoute)
		o := detect.GroupReplayOptions{Method: detect.MethodVote, Config: defaults.Profile(false).Config()}
		if *group != "" {
			g, ok := p.Group(*group)
			if !ok {
				return service.Usage(fmt.Errorf("detect replay: --group %q is not a group of %s", *group, p.File))
			}
			o.Method, o.Group = g.Method, g.Settings
		}
		return replayGroup(ctx, br, *input, *output, *plotFile, o, stdout, stderr)
	}
	if *group != "" {
		return service.Usage(fmt.Errorf("detect replay: --group %q needs an input of several columns (timestamp,a,b,...)", *group))
	}
	route := p.Select(*metric, *svc, nil)
	if route.Ignore {
		// as the service: a series its rule ignores is not scored, and a
		// file of scores 0 would read as "scored, nothing found"
		return service.Usage(fmt.Errorf("detect replay: rule %s of %s has ignore: true for this series (--metric %q, --service %q): the detector service does not score it; nothing written",
			route.Name, p.File, *metric, *svc))
	}
	cfg := route.Profile(*counter).Config()

	out, commit, err := openOutput(*output, stdout)
	if err != nil {
		return fmt.Errorf("detect replay: --output: %w", err)
	}

	// The rows worth drawing only: a long series drawn row by row held
	// them all (3.7 GB for 3 million).
	thin := plot.SeriesThinner()
	var each func(detect.ReplayRow)
	if *plotFile != "" {
		each = thin.Add
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
		if err := writePlot(*plotFile, thin.Rows(), filepath.Base(*input)); err != nil {
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

// replayGroup is detect replay of several columns, scored as o says.
func replayGroup(ctx context.Context, in io.Reader, input, output, plotFile string, o detect.GroupReplayOptions, stdout, stderr io.Writer) error {
	out, commit, err := openOutput(output, stdout)
	if err != nil {
		return fmt.Errorf("detect replay: --output: %w", err)
	}
	thin := plot.GroupThinner()
	var each func(detect.GroupReplayRow)
	if plotFile != "" {
		each = thin.Add
	}
	start := time.Now()
	stats, err := detect.ReplayGroupFunc(in, out, o, each)
	elapsed := time.Since(start)
	if err = commit(err); err != nil {
		return fmt.Errorf("detect replay: %s: %w", input, err)
	}
	fmt.Fprintf(stderr, "detect replay: %d rows of %d channels in %v (group, method %s), %d anomalies, %d warm-up; %d missing cells, %d rows ignored (all missing, out of order or duplicate timestamps)\n",
		stats.Rows, len(stats.Channels), elapsed.Round(time.Millisecond), o.Method, stats.Anomalies, stats.WarmUp, stats.Missing, stats.Ignored)
	if plotFile != "" {
		if err := writeGroupPlot(plotFile, stats.Channels, thin.Rows(), filepath.Base(input)); err != nil {
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

const detectEvalUsage = `usage: aiops detect eval [flags] DIR

Scores the default detectors (or --config's) on a folder of labelled CSV
files (.csv or .csv.gz, searched recursively): the header
timestamp,value,label scores one series with the univariate detector,
timestamp,a,b,...,label one asset: each channel with its own detector, a
row in alarm when the channels in alarm are surprising enough together
(each adds -ln of the fraction of rows it has been in alarm so far, and
twice the log ratio by which its score is past its budget's bar; the
sum must reach 2.5*sqrt(channels)), as the detector service scores a
pipeline group of method vote (the default); --pca-group, or --group
naming a group of method pca: one principal-component group detector
instead.
name.test.csv.gz is streamed after its name.train.csv.gz and its rows are
scored; a file without a train half is streamed from its start and its
rows after --score-from of it are scored. Files whose header is not a
labelled one (manifests) are skipped.

Printed per file and overall: F1 by the AIOps Challenge 2018 rule (a
segment counts when flagged within 7 points of its start), point F1,
point-adjusted F1, segments found, false episodes per 1,000 rows, the
fraction of rows and of normal rows flagged; beside them the same for a
rolling z-score over the previous day (|z| >= 3) on the same rows.
--part tune|holdout scores one half of the declared split (the FNV-1a hash
of the entity name is even: tuning part; odd: held out).

flags:
`

// detectEval is `aiops detect eval DIR`.
func detectEval(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aiops detect eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { io.WriteString(stderr, detectEvalUsage); fs.PrintDefaults() }
	configFile := fs.String("config", "", "pipeline file whose detect section chooses the detectors (default: built-in defaults)")
	group := fs.String("group", "", "the pipeline group (in --config) whose method and settings score multivariate files")
	partName := fs.String("part", "all", "which part of the declared split to score: all, tune or holdout")
	groupModel := fs.Bool("pca-group", false, "score multivariate files with one principal-component group detector (a pipeline group of method pca) instead of a vote of the channels' own detectors (method vote, the default)")
	scoreFrom := fs.Float64("score-from", 0.5, "for files without a train half: the fraction streamed before scoring starts (0 scores every row)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return service.Usage(err)
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return service.Usage(errors.New("detect eval: want one folder"))
	}
	part, err := eval.ParsePart(*partName)
	if err != nil {
		return service.Usage(err)
	}
	if !(*scoreFrom >= 0 && *scoreFrom < 1) {
		return service.Usage(fmt.Errorf("detect eval: --score-from %v is not in [0,1)", *scoreFrom))
	}
	p := pipeline.Default()
	if *configFile != "" {
		if p, err = pipeline.Load(*configFile); err != nil {
			return service.Usage(err)
		}
	}
	route := p.Select("", "", nil)
	if route.Ignore {
		return service.Usage(fmt.Errorf("detect eval: rule %s of %s has ignore: true for a series of no name, service or labels: it scores nothing", route.Name, p.File))
	}
	o := eval.Options{Config: route.Profile(false).Config(), ScoreFrom: *scoreFrom, Group: *groupModel}
	if *scoreFrom == 0 {
		o.ScoreFrom = -1
	}
	if *group != "" {
		g, ok := p.Group(*group)
		if !ok {
			return service.Usage(fmt.Errorf("detect eval: --group %q is not a group of %s", *group, p.File))
		}
		o.GroupConfig = g.Settings
		o.Group = o.Group || g.Method == detect.MethodPCA
	}
	cases, err := eval.FindCases(fs.Arg(0))
	if err != nil {
		return service.Usage(fmt.Errorf("detect eval: %w", err))
	}
	var picked []eval.Case
	for _, c := range cases {
		if part.In(c.Name) {
			picked = append(picked, c)
		}
	}
	if len(picked) == 0 {
		return service.Usage(fmt.Errorf("detect eval: no file of %s is in part %s", fs.Arg(0), *partName))
	}

	bw := bufio.NewWriter(stdout)
	defer bw.Flush()
	fmt.Fprintf(bw, "%-40s %8s %4s %9s %7s %7s %7s %8s %7s %7s | %7s %7s %7s %8s %7s\n",
		"file", "rows", "ch", "found", "F1(d7)", "pointF1", "PA-F1", "false/1k", "flagged", "normal",
		"z:F1d7", "pointF1", "PA-F1", "false/1k", "flagged")
	var det, zs eval.Segments
	var sumF1, sumZF1, sumPoint, sumPA float64
	files, over10 := 0, 0
	start := time.Now()
	for i, c := range picked {
		if err := ctx.Err(); err != nil {
			return err
		}
		r, err := eval.Run(c, o)
		if errors.Is(err, eval.ErrNotLabelled) {
			fmt.Fprintf(stderr, "detect eval: [%d/%d] %s: skipped, not a labelled file\n", i+1, len(picked), c.Path)
			continue
		}
		if err != nil {
			return fmt.Errorf("detect eval: %w", err)
		}
		// A header without rows (an export cut short) would count as a
		// file of F1 0 in the mean.
		if r.Scored == 0 {
			return fmt.Errorf("detect eval: %s: no row to score (the file holds its header alone)", c.Path)
		}
		fmt.Fprintf(stderr, "detect eval: [%d/%d] %s: %d rows scored, %d channels, %v\n", i+1, len(picked), c.Name, r.Scored, r.Channels, r.Elapsed.Round(time.Millisecond))
		d, z := r.Detector, r.ZScore
		fmt.Fprintf(bw, "%-40s %8d %4d %9s %7.3f %7.3f %7.3f %8.2f %6.2f%% %6.2f%% | %7.3f %7.3f %7.3f %8.2f %6.2f%%\n",
			c.Name, r.Scored, r.Channels, fmt.Sprintf("%d/%d/%d", d.FoundInTime, d.Found, d.Segments),
			d.Delayed.F1(), d.Point.F1(), d.Adjusted.F1(), d.FalsePer1000(), 100*d.FlaggedFraction(), 100*d.FlaggedNormalFraction(),
			z.Delayed.F1(), z.Point.F1(), z.Adjusted.F1(), z.FalsePer1000(), 100*z.FlaggedFraction())
		bw.Flush()
		det.Add(d)
		zs.Add(z)
		sumF1 += d.Delayed.F1()
		sumZF1 += z.Delayed.F1()
		sumPoint += d.Point.F1()
		sumPA += d.Adjusted.F1()
		if d.FlaggedFraction() > 0.10 {
			over10++
		}
		files++
	}
	if files == 0 {
		return service.Usage(fmt.Errorf("detect eval: no labelled file in %s", fs.Arg(0)))
	}
	fmt.Fprintf(bw, "%-40s %8d %4s %9s %7.3f %7.3f %7.3f %8.2f %6.2f%% %6.2f%% | %7.3f %7.3f %7.3f %8.2f %6.2f%%\n",
		"overall (pooled)", det.Rows, "", fmt.Sprintf("%d/%d/%d", det.FoundInTime, det.Found, det.Segments),
		det.Delayed.F1(), det.Point.F1(), det.Adjusted.F1(), det.FalsePer1000(), 100*det.FlaggedFraction(), 100*det.FlaggedNormalFraction(),
		zs.Delayed.F1(), zs.Point.F1(), zs.Adjusted.F1(), zs.FalsePer1000(), 100*zs.FlaggedFraction())
	fmt.Fprintf(bw, "mean over %d files: F1(d7) %.3f (z-score %.3f), point F1 %.3f, PA-F1 %.3f; files flagged on more than 10%% of their rows: %d\n",
		files, sumF1/float64(files), sumZF1/float64(files), sumPoint/float64(files), sumPA/float64(files), over10)
	fmt.Fprintf(stderr, "detect eval: %d files in %v\n", files, time.Since(start).Round(time.Millisecond))
	return nil
}
