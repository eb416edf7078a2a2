package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/correlate/blindgen"
	"github.com/aiops-dev/aiops/pkg/correlate/crossgen"
	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/correlate/fleetgen"
	"github.com/aiops-dev/aiops/pkg/correlate/issuegen"
	"github.com/aiops-dev/aiops/pkg/correlate/opsgen"
	"github.com/aiops-dev/aiops/pkg/correlate/scenario"
	"github.com/aiops-dev/aiops/pkg/correlate/specgen"
	"github.com/aiops-dev/aiops/pkg/correlate/stagegen"
	"github.com/aiops-dev/aiops/pkg/correlate/wordgen"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/service"
)

// The files of a storm folder, what `correlate generate` writes and
// `correlate eval` reads.
const (
	stormEvents  = "events.jsonl"
	stormCatalog = "catalog.yaml"
	stormTruth   = "truth.json"
	stormRoots   = "roots.json"
)

// MaxTruthFile bounds a storm's truth file, read whole.
const MaxTruthFile = 64 << 20

// MaxGeneratedStorms bounds the seeds of one `correlate generate`.
const MaxGeneratedStorms = 1000

// generatedStorm is one generated storm: its replay lines, catalog (YAML)
// and truth (item → true incident).
type generatedStorm struct {
	lines   [][]byte
	catalog []byte
	truth   map[string]string
	// roots names each true incident's root service, where the generator
	// knows it (the scenario, crossgen); noise has none.
	roots map[string]string
}

// stormGenerators are the storm generators of pkg/correlate, each with its
// default configuration (pkg/correlate/QUALITY.md tells how each was
// written and what it holds).
var stormGenerators = map[string]func(seed uint64) (generatedStorm, error){
	// The day-long storms the defaults were first chosen on, and the
	// same incidents in four hours (the dense stress test).
	"scenario":       func(seed uint64) (generatedStorm, error) { return scenarioStorm(seed, 24*time.Hour) },
	"scenario-dense": func(seed uint64) (generatedStorm, error) { return scenarioStorm(seed, 4*time.Hour) },
	"crossgen": func(seed uint64) (generatedStorm, error) {
		s := crossgen.Generate(seed, crossgen.DefaultConfig())
		var buf bytes.Buffer
		if err := s.WriteJSONL(&buf); err != nil {
			return generatedStorm{}, err
		}
		cat, err := s.CatalogYAML()
		roots := map[string]string{}
		for _, inc := range s.Incidents {
			if inc.Kind != crossgen.KindNoise {
				roots[inc.Label] = inc.Root
			}
		}
		return generatedStorm{splitLines(buf.Bytes()), cat, s.Truth, roots}, err
	},
	"blindgen": func(seed uint64) (generatedStorm, error) {
		s := blindgen.Generate(seed, blindgen.DefaultConfig())
		return generatedStorm{lines: s.Lines, catalog: s.Catalog, truth: s.Truth}, nil
	},
	"fleetgen": func(seed uint64) (generatedStorm, error) {
		s := fleetgen.Generate(seed, fleetgen.DefaultConfig())
		return generatedStorm{lines: s.Lines, catalog: s.Catalog, truth: s.Truth}, nil
	},
	"specgen": func(seed uint64) (generatedStorm, error) {
		s := specgen.Generate(seed, specgen.DefaultConfig())
		return generatedStorm{lines: s.Lines, catalog: s.Catalog, truth: s.Truth}, nil
	},
	"stagegen": func(seed uint64) (generatedStorm, error) {
		s := stagegen.Generate(seed, stagegen.DefaultConfig())
		return generatedStorm{lines: s.Lines, catalog: s.Catalog, truth: s.Truth}, nil
	},
	"opsgen": func(seed uint64) (generatedStorm, error) {
		s := opsgen.Generate(seed, opsgen.DefaultConfig())
		return generatedStorm{lines: s.Lines, catalog: s.Catalog, truth: s.Truth}, nil
	},
	"issuegen": func(seed uint64) (generatedStorm, error) {
		s := issuegen.Generate(seed, issuegen.DefaultConfig())
		return generatedStorm{lines: s.Lines, catalog: s.Catalog, truth: s.Truth}, nil
	},
	"wordgen": func(seed uint64) (generatedStorm, error) {
		s := wordgen.Generate(seed, wordgen.DefaultConfig())
		return generatedStorm{lines: s.Lines, catalog: s.Catalog, truth: s.Truth, roots: s.Roots}, nil
	},
}

func scenarioStorm(seed uint64, d time.Duration) (generatedStorm, error) {
	cfg := scenario.DefaultConfig()
	cfg.Duration = d
	s := scenario.Generate(seed, cfg)
	var buf bytes.Buffer
	if err := scenario.WriteJSONL(&buf, s.Lines); err != nil {
		return generatedStorm{}, err
	}
	cat, err := yaml.Marshal(&s.Catalog)
	roots := map[string]string{}
	for _, inc := range s.Truth.Incidents {
		if inc.Kind != scenario.KindNoiseAlert && inc.Kind != scenario.KindNoiseAnomaly && inc.Kind != scenario.KindBackground {
			roots[inc.Label] = inc.Root
		}
	}
	return generatedStorm{splitLines(buf.Bytes()), cat, s.Truth.Items, roots}, err
}

func splitLines(b []byte) [][]byte {
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

const generateUsage = `usage: aiops correlate generate --generator NAME --seeds FROM-TO --dir DIR

Writes storms with ground truth, one folder each (DIR/NAME-SEED), holding
events.jsonl (the replay input), catalog.yaml, truth.json (every alert
fingerprint and anomaly event id → its true incident) and, from the
generators that know them (scenario, crossgen, wordgen), roots.json (each true
incident → its root service). A seed gives the
same storm every time. ` + "`aiops correlate eval DIR/*`" + ` scores the correlator
on them. --noise N adds N unrelated alerts an hour over each storm, each on
a catalogued service drawn at random and an incident of its own (how much
unrelated noise takes from the grouping; some land next to a failure,
where nobody could tell them from a symptom).

Generators (pkg/correlate/QUALITY.md tells how each was written):
  scenario        day-long storms cascading over a catalog of 40 services
  scenario-dense  the same incidents within four hours (a stress test)
  crossgen        a second generator, written apart from the correlator
  blindgen        an online shop with shared infrastructure, written blind
  fleetgen        a multi-region platform under kube-prometheus-stack
  specgen         written from the correlator issue's words alone
  stagegen        the detector's and log miner's events beside the alerts
  opsgen          a real Alertmanager's routing tree and inhibition
  issuegen        written blind from the issue's words, calibrated to its baselines
  wordgen         the same, a second time: a streaming platform on Kubernetes
`

const evalUsage = `usage: aiops correlate eval [--rules rules.yaml] [--output scores.json] [--page eval.html] STORM...

Scores the correlator against ground truth. Each STORM is a folder
holding events.jsonl (the replay input), truth.json (a JSON object: each
alert fingerprint or anomaly event id → its true incident; every item of
one true incident, noise an incident of its own) and, optionally,
catalog.yaml and roots.json (a JSON object: each true incident → the
service where it began): what ` + "`aiops correlate generate`" + ` writes, or your
own history with the incidents your people opened and their postmortems.

Per storm and as the mean over them, it prints the pairwise precision,
recall and F1 of incident membership (over every pair of items of the
truth: in one incident or not), the incident count against the true
count, the noise reduction (1 - incidents / items, and 1 - incidents /
notifications: every alert as each webhook carried it, repeats and
resolutions included, and every anomaly event), and beside them the
F1 of naive baselines on the same input: every item of one service (the
service the correlator takes it to be on) one incident; 5-minute
windows (an item opens one, which takes every item first seen within it);
a 5-minute chain (each item first seen within 5 minutes of the previous
one joins it). An item is first seen when its line came (the line's
"time"), else at its own time. An item of
the truth that never went in counts as an incident of its own; a truth
none of whose items went in is refused; items that went in and are not
in the truth are counted, not scored. With roots.json it also tells how
often the incident holding most of a true incident's items names its
root first (several services / one; --output also has the first three
and the naive guess, the earliest item's service). --output writes the
same as JSON;
--page draws each storm as a page: a row per true incident, its items as
dots over time, coloured by the incident the correlator put them in.
`

// generateMain is `aiops correlate generate`.
func generateMain(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("aiops correlate generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, generateUsage, "\nflags:\n"); fs.PrintDefaults() }
	name := fs.String("generator", "", "the storm generator (see above)")
	seeds := fs.String("seeds", "", "the seeds, FROM-TO or one number")
	dir := fs.String("dir", "", "the folder to write the storms' folders in (made if missing)")
	noise := fs.Float64("noise", 0, "unrelated alerts to add an hour, on services drawn at random (a stress test)")
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	if !(*noise == 0 || *noise >= MinNoisePerHour && *noise <= MaxNoisePerHour) { // NaN too
		return service.Usage(fmt.Errorf("correlate generate: --noise %g: want 0, or %g to %d alerts an hour", *noise, MinNoisePerHour, MaxNoisePerHour))
	}
	if fs.NArg() > 0 {
		return service.Usage(fmt.Errorf("correlate generate: unexpected argument %q", fs.Arg(0)))
	}
	if len(args) == 0 {
		fs.Usage()
	}
	gen, ok := stormGenerators[*name]
	if !ok {
		return service.Usage(fmt.Errorf("correlate generate: --generator %q: want one of %s", *name, strings.Join(slices.Sorted(maps.Keys(stormGenerators)), ", ")))
	}
	from, to, err := parseSeeds(*seeds)
	if err != nil {
		return service.Usage(fmt.Errorf("correlate generate: --seeds: %w", err))
	}
	if *dir == "" {
		return service.Usage(errors.New("correlate generate: --dir is required"))
	}
	for i := uint64(0); i <= to-from; i++ {
		seed := from + i // not seed++ up to to: the last seed may be the largest
		s, err := gen(seed)
		if err == nil {
			err = addNoise(&s, seed, *noise)
		}
		if err != nil {
			return fmt.Errorf("correlate generate: %s seed %d: %w", *name, seed, err)
		}
		out := filepath.Join(*dir, fmt.Sprintf("%s-%d", *name, seed))
		if err := writeStorm(out, s); err != nil {
			return fmt.Errorf("correlate generate: %w", err)
		}
		fmt.Fprintf(stderr, "correlate generate: %s: %d lines, %d items (%d of %d)\n", out, len(s.lines), len(s.truth), i+1, to-from+1)
	}
	return nil
}

// parseSeeds reads FROM-TO (or one seed), at most MaxGeneratedStorms.
func parseSeeds(v string) (from, to uint64, err error) {
	if v == "" {
		return 0, 0, errors.New("required (FROM-TO or one number)")
	}
	a, b, ranged := strings.Cut(v, "-")
	if from, err = strconv.ParseUint(a, 10, 64); err != nil {
		return 0, 0, fmt.Errorf("%q: not a seed or a range FROM-TO of seeds", v)
	}
	to = from
	if ranged {
		if to, err = strconv.ParseUint(b, 10, 64); err != nil {
			return 0, 0, fmt.Errorf("%q: not a seed or a range FROM-TO of seeds", v)
		}
	}
	switch {
	case to < from:
		return 0, 0, fmt.Errorf("%q: the range ends before it starts", v)
	case to-from >= MaxGeneratedStorms:
		return 0, 0, fmt.Errorf("%q: %d storms, at most %d at once", v, to-from+1, MaxGeneratedStorms)
	}
	return from, to, nil
}

func writeStorm(dir string, s generatedStorm) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	events := append(bytes.Join(s.lines, []byte("\n")), '\n')
	truth, err := json.MarshalIndent(s.truth, "", "  ")
	if err != nil {
		return err
	}
	files := map[string][]byte{stormEvents: events, stormCatalog: s.catalog, stormTruth: append(truth, '\n')}
	if len(s.roots) > 0 {
		roots, err := json.MarshalIndent(s.roots, "", "  ")
		if err != nil {
			return err
		}
		files[stormRoots] = append(roots, '\n')
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// StormScore is the score of one storm: the correlator's, and the three
// naive baselines' on the same input.
type StormScore struct {
	Storm      string      `json:"storm"`
	Correlator eval.Scores `json:"correlator"`
	// ByService groups every item of one service into one incident;
	// Window opens a 5-minute window at an item, which takes every item
	// first seen within it, the next item opening the next one; Chain
	// joins each item first seen within 5 minutes of the previous one
	// (a steady trickle is one incident however long).
	ByService eval.Scores `json:"by_service"`
	Window    eval.Scores `json:"window_5m"`
	Chain     eval.Scores `json:"chain_5m"`
	// Missing counts the items of the truth that never went in,
	// Unscored the items that went in and are not in the truth.
	Missing  int `json:"missing"`
	Unscored int `json:"unscored"`
	// Notifications counts the alerts as the webhooks carried them and
	// the anomaly events; Incidents the incidents all the items that went
	// in made; NotificationReduction = 1 - Incidents / Notifications, what
	// a person is spared.
	Notifications         int     `json:"notifications"`
	Incidents             int     `json:"incidents"`
	NotificationReduction float64 `json:"notification_reduction"`
	// Roots scores the root-cause candidates when the storm names each
	// true incident's root (roots.json): over the true incidents whose
	// items span several services, and those on one.
	Roots *RootScores `json:"roots,omitempty"`
}

// RootScores count how often the incident holding most of a true
// incident's items names its root first (whose owner and runbook it
// carries) or among its first three candidates, beside the naive guess:
// the service of its earliest item.
type RootScores struct {
	Multi  RootCounts `json:"multi_service"`
	Single RootCounts `json:"one_service"`
}

// RootCounts are the counts of RootScores over some true incidents.
type RootCounts struct {
	Incidents int `json:"incidents"`
	First     int `json:"first"`
	Top3      int `json:"top3"`
	Earliest  int `json:"earliest"`
}

func (r *RootCounts) add(o RootCounts) {
	r.Incidents, r.First, r.Top3, r.Earliest = r.Incidents+o.Incidents, r.First+o.First, r.Top3+o.Top3, r.Earliest+o.Earliest
}

// firstShare is the share of incidents whose root came first, as text.
func (r RootCounts) firstShare() string {
	if r.Incidents == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f%%", 100*float64(r.First)/float64(r.Incidents))
}

// EvalResult is what `correlate eval` writes with --output.
type EvalResult struct {
	Storms []StormScore `json:"storms"`
	// Mean holds the means over the storms of precision, recall, F1,
	// count ratio and noise reduction (the counts are sums).
	Mean StormScore `json:"mean"`
}

// evalMain is `aiops correlate eval`.
func evalMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("aiops correlate eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, evalUsage, "\nflags:\n"); fs.PrintDefaults() }
	rules := fs.String("rules", "", "correlation rules (YAML: the correlator section's rules); default: the built-in defaults")
	output := fs.String("output", "", "also write the scores as JSON here (- for standard output, instead of the table)")
	page := fs.String("page", "", "also write an HTML page here: per storm, each true incident's items over time, coloured by the incident the correlator put them in")
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return service.Usage(errors.New("correlate eval: no storm folder given"))
	}
	for _, a := range fs.Args() {
		if strings.HasPrefix(a, "-") {
			return service.Usage(fmt.Errorf("correlate eval: %s after a storm folder: flags go before the storm folders", a))
		}
	}
	// Where the results go is checked before the storms are scored.
	for _, o := range []struct{ flag, path string }{{"--output", *output}, {"--page", *page}} {
		if err := checkOutputPath(o.path); err != nil {
			return service.Usage(fmt.Errorf("correlate eval: %s: %w", o.flag, err))
		}
	}
	cfg := correlate.DefaultConfig()
	if *rules != "" {
		if err := loadRules("correlate eval", *rules, &cfg); err != nil {
			return service.Usage(err)
		}
	}
	if *page == "-" {
		return service.Usage(errors.New("correlate eval: --page -: the page goes to a file (standard output has the table or --output)"))
	}
	var (
		res     EvalResult
		details []stormDetail
	)
	for i, dir := range fs.Args() {
		sc, detail, err := scoreStorm(ctx, dir, cfg, stderr)
		if err != nil {
			return err
		}
		res.Storms = append(res.Storms, sc)
		if *page != "" {
			details = append(details, detail)
		}
		fmt.Fprintf(stderr, "correlate eval: %s: F1 %.3f (%d of %d)\n", dir, sc.Correlator.F1, i+1, fs.NArg())
	}
	res.Mean = meanScore(res.Storms)
	if *page != "" {
		if err := writeOutput(*page, stdout, func(w io.Writer) error { return writeEvalPage(w, res, details) }); err != nil {
			return fmt.Errorf("correlate eval: --page: %w", err)
		}
		fmt.Fprintf(stderr, "correlate eval: page %s\n", *page)
	}
	if *output != "" {
		if err := writeOutput(*output, stdout, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(res)
		}); err != nil {
			return fmt.Errorf("correlate eval: --output: %w", err)
		}
		if *output == "-" {
			return nil
		}
	}
	return printScores(stdout, res)
}

// stormDetail is what the page of a storm draws: its truth, where the
// correlator put each item, and the items as first seen.
type stormDetail struct {
	truth, assign map[string]string
	items         map[string]sightedItem
}

// scoreStorm replays one storm folder and scores it.
func scoreStorm(ctx context.Context, dir string, cfg correlate.Config, stderr io.Writer) (StormScore, stormDetail, error) {
	sc := StormScore{Storm: dir}
	var none stormDetail
	truth, err := readTruth(filepath.Join(dir, stormTruth))
	if err != nil {
		return sc, none, service.Usage(fmt.Errorf("correlate eval: %w", err))
	}
	var cat *correlate.Catalog
	switch path := filepath.Join(dir, stormCatalog); {
	case fileMissing(path):
		fmt.Fprintf(stderr, "correlate eval: %s: no %s: scored without a catalog (no topology)\n", dir, stormCatalog)
	default:
		if cat, err = correlate.ReadCatalog(path); err != nil {
			return sc, none, service.Usage(fmt.Errorf("correlate eval: %w", err))
		}
		for _, w := range cat.Warnings {
			fmt.Fprintf(stderr, "correlate eval: %s: %s\n", path, w)
		}
	}
	events := filepath.Join(dir, stormEvents)
	f, err := os.Open(events)
	if err != nil {
		return sc, none, service.Usage(fmt.Errorf("correlate eval: %w", err))
	}
	defer f.Close()
	sights := &replaySights{items: map[string]sightedItem{}}
	res, err := replay(ctx, f, cfg, cat, io.Discard, sights)
	items := sights.items
	if err != nil {
		return sc, none, fmt.Errorf("correlate eval: %s: %w", events, err)
	}
	if res.RejectedLines > 0 {
		fmt.Fprintf(stderr, "correlate eval: %s: rejected lines: %d, the first: line %d: %s\n", events, res.RejectedLines, res.Rejected[0].Line, res.Rejected[0].Problem)
	}
	assign := res.ItemAssignments()
	for item := range truth {
		if _, ok := items[item]; !ok {
			sc.Missing++
		}
	}
	if sc.Missing == len(truth) {
		return sc, none, service.Usage(fmt.Errorf("correlate eval: %s: none of its %d items went in with %s: is it another storm's truth? (its keys are alert fingerprints and anomaly event ids)", filepath.Join(dir, stormTruth), len(truth), events))
	}
	if sc.Missing > 0 {
		fmt.Fprintf(stderr, "correlate eval: %s: %d of %d items of the truth never went in; each counts as an incident of its own\n", dir, sc.Missing, len(truth))
	}
	for item := range items {
		if _, ok := truth[item]; !ok {
			sc.Unscored++
		}
	}
	if sc.Unscored > 0 {
		fmt.Fprintf(stderr, "correlate eval: %s: %d of the %d items that went in are not in the truth, and not scored\n", dir, sc.Unscored, len(items))
	}
	byService := make(map[string]string, len(items))
	for id, it := range items {
		byService[id] = "service=" + it.Service
	}
	seen := sightings(items)
	detail := stormDetail{truth: truth, assign: assign, items: items}
	if path := filepath.Join(dir, stormRoots); !fileMissing(path) {
		roots, err := readItemMap(path, "true incident → its root service")
		if err != nil {
			return sc, none, service.Usage(fmt.Errorf("correlate eval: %w", err))
		}
		sc.Roots = rootCandidates(detail, res, roots)
		if sc.Roots.Multi.Incidents+sc.Roots.Single.Incidents == 0 {
			return sc, none, service.Usage(fmt.Errorf("correlate eval: %s: none of its %d incidents is one of %s's with items that went in", path, len(roots), stormTruth))
		}
	}
	incidents := map[string]bool{}
	for item := range items {
		incidents[detail.predictedOf(item)] = true
	}
	sc.Notifications, sc.Incidents = sights.notifications, len(incidents)
	sc.NotificationReduction = eval.NoiseReductionOver(len(incidents), sights.notifications)
	sc.Correlator = eval.Pairwise(assign, truth)
	sc.ByService = eval.Pairwise(byService, truth)
	sc.Window = eval.Pairwise(eval.WindowsByTime(seen, 5*time.Minute), truth)
	sc.Chain = eval.Pairwise(eval.ChainByTime(seen, 5*time.Minute), truth)
	return sc, detail, nil
}

// fileMissing reports whether path does not exist (another error, such as
// a permission, is the reader's to tell).
func fileMissing(path string) bool {
	_, err := os.Stat(path)
	return errors.Is(err, fs.ErrNotExist)
}

// readTruth reads a truth file: a JSON object of item → true incident.
func readTruth(path string) (map[string]string, error) {
	return readItemMap(path, "item → true incident id")
}

// readItemMap reads a JSON object of strings (what names what), at most
// MaxTruthFile bytes, none empty.
func readItemMap(path, what string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxTruthFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > MaxTruthFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, MaxTruthFile)
	}
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: not a JSON object of %s: %w", path, what, err)
	}
	if k, ok := duplicateKey(data); ok {
		// The last would win and change the scores without a word.
		return nil, fmt.Errorf("%s: %q is given more than once", path, k)
	}
	if len(m) == 0 {
		return nil, fmt.Errorf("%s: no items", path)
	}
	for k, v := range m {
		if k == "" || v == "" {
			return nil, fmt.Errorf("%s: %q → %q: both must be given", path, k, v)
		}
	}
	return m, nil
}

// trueIncidents are the items of each true incident that went in, and
// the count of those that never did.
func (d stormDetail) trueIncidents() (went map[string][]string, missing map[string]int) {
	went, missing = map[string][]string{}, map[string]int{}
	for item, t := range d.truth {
		if _, ok := d.items[item]; ok {
			went[t] = append(went[t], item)
		} else {
			missing[t]++
		}
	}
	return went, missing
}

// firstCandidates are the services of each incident's first three
// root-cause candidates.
func firstCandidates(res *ReplayResult) map[string][]string {
	tops := map[string][]string{}
	for _, inc := range res.Incidents {
		for _, c := range inc.RootCauses[:min(3, len(inc.RootCauses))] {
			tops[inc.ID] = append(tops[inc.ID], c.Service)
		}
	}
	return tops
}

// mostHeld is the incident holding most of a true incident's items (held:
// items per incident, not empty); the lowest id on a tie.
func mostHeld(held map[string]int) string {
	ids := slices.Sorted(maps.Keys(held))
	main := ids[0]
	for _, id := range ids {
		if held[id] > held[main] {
			main = id
		}
	}
	return main
}

// rootCandidates scores the root-cause candidates of res against roots (true
// incident → root service), for the true incidents of d with items that
// went in.
func rootCandidates(d stormDetail, res *ReplayResult, roots map[string]string) *RootScores {
	tops := firstCandidates(res)
	byTrue, _ := d.trueIncidents()
	out := &RootScores{}
	for _, t := range slices.Sorted(maps.Keys(byTrue)) {
		root, ok := roots[t]
		if !ok {
			continue // noise, or a root the storm does not tell
		}
		held, services := map[string]int{}, map[string]bool{}
		var earliest string
		for _, item := range byTrue[t] {
			if id := d.assign[item]; id != "" {
				held[id]++
			}
			services[d.items[item].Service] = true
			if a, b := d.items[item], d.items[earliest]; earliest == "" || a.First.Before(b.First) || a.First.Equal(b.First) && item < earliest {
				earliest = item
			}
		}
		counts := &out.Single
		if len(services) > 1 {
			counts = &out.Multi
		}
		counts.Incidents++
		if d.items[earliest].Service == root {
			counts.Earliest++
		}
		if len(held) == 0 {
			continue
		}
		main := mostHeld(held)
		if top := tops[main]; len(top) > 0 && top[0] == root {
			counts.First++
		}
		if slices.Contains(tops[main], root) {
			counts.Top3++
		}
	}
	return out
}

// sightedItem is an item of a replay input as a correlator first sees it.
type sightedItem struct {
	Service, Name string
	First         time.Time
}

// replaySights are the items of a replay as first seen, and the
// notifications that carried them.
type replaySights struct {
	items map[string]sightedItem
	// notifications counts the alerts as each webhook carried them
	// (repeats and resolutions included) and the anomaly events: what a
	// person would get without a correlator.
	notifications int
}

// sight records the item of signal s, from envelope e of a line sent
// at sent (zero when the line tells no time).
func (r *replaySights) sight(c *correlate.Correlator, e *event.Envelope, s correlate.Signal, sent time.Time) {
	r.notifications++
	seen := sent
	switch {
	case !seen.IsZero():
	case !s.Started.IsZero():
		seen = s.Started // resolved when first seen: it fired then
	default:
		seen = s.Time
	}
	id := e.ID // an anomaly event is an item of its own
	if s.Kind == correlate.SignalAlert {
		id = s.Fingerprint // an alert's notifications are one item
	}
	it, ok := r.items[id]
	if !ok {
		it = sightedItem{Service: c.ServiceOf(s), Name: s.Name, First: seen}
	}
	if seen.Before(it.First) {
		it.First = seen
	}
	r.items[id] = it
}

// sightings are the items of sights in the order first seen.
func sightings(sights map[string]sightedItem) []eval.Sighting {
	out := make([]eval.Sighting, 0, len(sights))
	for id, it := range sights {
		out = append(out, eval.Sighting{ID: id, First: it.First})
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].First.Equal(out[j].First) {
			return out[i].First.Before(out[j].First)
		}
		return out[i].ID < out[j].ID
	})
	return out
}

// meanScore is the mean of the storms' scores.
func meanScore(storms []StormScore) StormScore {
	m := StormScore{Storm: fmt.Sprintf("mean of %d", len(storms))}
	n := float64(len(storms))
	add := func(to *eval.Scores, s eval.Scores) {
		to.Items += s.Items
		to.TruePairs += s.TruePairs
		to.PredictedPairs += s.PredictedPairs
		to.SharedPairs += s.SharedPairs
		to.PredictedIncidents += s.PredictedIncidents
		to.TrueIncidents += s.TrueIncidents
		to.Precision += s.Precision / n
		to.Recall += s.Recall / n
		to.F1 += s.F1 / n
		to.CountRatio += s.CountRatio / n
		to.NoiseReduction += s.NoiseReduction / n
	}
	for _, s := range storms {
		add(&m.Correlator, s.Correlator)
		add(&m.ByService, s.ByService)
		add(&m.Window, s.Window)
		add(&m.Chain, s.Chain)
		m.Missing += s.Missing
		m.Unscored += s.Unscored
		m.Notifications += s.Notifications
		m.Incidents += s.Incidents
		m.NotificationReduction += s.NotificationReduction / n
		if s.Roots != nil {
			if m.Roots == nil {
				m.Roots = &RootScores{}
			}
			m.Roots.Multi.add(s.Roots.Multi)
			m.Roots.Single.add(s.Roots.Single)
		}
	}
	return m
}

func printScores(w io.Writer, res EvalResult) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "storm\titems\tincidents\ttrue\tcount ratio\tprecision\trecall\tF1\tnoise reduction\tnotifications\tnotification reduction\tby service F1\t5-min windows F1\t5-min chain F1\troot first (several services / one)\t")
	row := func(s StormScore) {
		c := s.Correlator
		roots := "-"
		if s.Roots != nil {
			roots = s.Roots.Multi.firstShare() + " / " + s.Roots.Single.firstShare()
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%.2f\t%.3f\t%.3f\t%.3f\t%.3f\t%d\t%.3f\t%.3f\t%.3f\t%.3f\t%s\t\n", s.Storm, c.Items, c.PredictedIncidents, c.TrueIncidents,
			c.CountRatio, c.Precision, c.Recall, c.F1, c.NoiseReduction, s.Notifications, s.NotificationReduction, s.ByService.F1, s.Window.F1, s.Chain.F1, roots)
	}
	for _, s := range res.Storms {
		row(s)
	}
	if len(res.Storms) > 1 {
		row(res.Mean)
	}
	return tw.Flush()
}

// duplicateKey finds a key given twice in data, a JSON object of strings.
func duplicateKey(data []byte) (string, bool) {
	dec := json.NewDecoder(bytes.NewReader(data))
	if _, err := dec.Token(); err != nil { // {
		return "", false
	}
	seen := map[string]bool{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return "", false
		}
		k, _ := t.(string)
		if seen[k] {
			return k, true
		}
		seen[k] = true
		if _, err := dec.Token(); err != nil { // the value, a string
			return "", false
		}
	}
	return "", false
}
