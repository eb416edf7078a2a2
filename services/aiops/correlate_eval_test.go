package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/correlate/specgen"
	"github.com/aiops-dev/aiops/pkg/correlate/stagegen"
	"github.com/aiops-dev/aiops/pkg/service"
)

// TestCorrelateGenerateAndEval runs `correlate generate` and `correlate
// eval` as a user does and checks the scores against what the storm's own
// generator and a replay give, computed apart: the correlator's pairwise
// scores, and the generator's by-service and 5-minute baselines.
func TestCorrelateGenerateAndEval(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	if err := correlateMain(context.Background(), []string{"generate", "--generator", "specgen", "--seeds", "21-22", "--dir", dir}, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatalf("generate: %v\n%s", err, &stderr)
	}
	if !strings.Contains(stderr.String(), "(2 of 2)") {
		t.Errorf("generate told no progress: %q", &stderr)
	}
	storms := []string{filepath.Join(dir, "specgen-21"), filepath.Join(dir, "specgen-22")}
	out := filepath.Join(dir, "scores.json")
	var table bytes.Buffer
	if err := correlateMain(context.Background(), append([]string{"eval", "--output", out}, storms...), &table, &stderr); err != nil {
		t.Fatalf("eval: %v\n%s", err, &stderr)
	}
	var res EvalResult
	data, _ := os.ReadFile(out)
	if err := json.Unmarshal(data, &res); err != nil || len(res.Storms) != 2 {
		t.Fatalf("scores %s: %v, want two storms", data, err)
	}
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-9 }
	var meanF1 float64
	for i, seed := range []uint64{21, 22} {
		s := specgen.Generate(seed, specgen.DefaultConfig())
		got := res.Storms[i]
		replayed := eval.Pairwise(replayFiles(t, append(bytes.Join(s.Lines, []byte("\n")), '\n'), s.Catalog).ItemAssignments(), s.Truth)
		byService := eval.Pairwise(s.BaselineByService(), s.Truth)
		window := eval.Pairwise(s.BaselineTimeWindow(5*time.Minute), s.Truth)
		if got.Correlator != replayed {
			t.Errorf("seed %d: eval scored %+v, a replay of the storm %+v", seed, got.Correlator, replayed)
		}
		if !near(got.ByService.F1, byService.F1) || !near(got.Window.F1, window.F1) {
			t.Errorf("seed %d: baselines by service %.4f, 5-minute windows %.4f; the generator's own: %.4f, %.4f", seed, got.ByService.F1, got.Window.F1, byService.F1, window.F1)
		}
		if got.Correlator.F1 <= got.Window.F1 || got.Missing != 0 || got.Chain.F1 <= 0 {
			t.Errorf("seed %d: %+v: want the correlator over the window, no item missing, a chain score", seed, got)
		}
		meanF1 += got.Correlator.F1 / 2
	}
	if !near(res.Mean.Correlator.F1, meanF1) || res.Mean.Correlator.Items != res.Storms[0].Correlator.Items+res.Storms[1].Correlator.Items {
		t.Errorf("mean %+v, want F1 %.4f and the items summed", res.Mean.Correlator, meanF1)
	}
	if lines := strings.Split(strings.TrimSpace(table.String()), "\n"); len(lines) != 4 || !strings.Contains(lines[3], "mean of 2") || !strings.Contains(lines[0], "F1") {
		t.Errorf("table:\n%s\nwant a header, a row per storm and the mean", &table)
	}

	// stagegen's items are alerts and anomaly events (keyed by event id),
	// and its own baseline is the 5-minute chain.
	stage := filepath.Join(dir, "stage")
	if err := correlateMain(context.Background(), []string{"generate", "--generator", "stagegen", "--seeds", "21", "--dir", stage}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	stdout := &bytes.Buffer{}
	if err := correlateMain(context.Background(), []string{"eval", "--output", "-", filepath.Join(stage, "stagegen-21")}, stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var staged EvalResult
	if err := json.Unmarshal(stdout.Bytes(), &staged); err != nil {
		t.Fatal(err)
	}
	ss := stagegen.Generate(21, stagegen.DefaultConfig())
	anomalies := 0
	for item := range ss.Truth {
		if !regexp.MustCompile(`^[0-9a-f]{16}$`).MatchString(item) {
			anomalies++
		}
	}
	replayed := eval.Pairwise(replayFiles(t, append(bytes.Join(ss.Lines, []byte("\n")), '\n'), ss.Catalog).ItemAssignments(), ss.Truth)
	chain := eval.Pairwise(ss.BaselineTimeWindow(5*time.Minute), ss.Truth)
	if got := staged.Storms[0]; got.Correlator != replayed || !near(got.Chain.F1, chain.F1) || got.Missing != 0 || anomalies == 0 {
		t.Errorf("stagegen 21: eval %+v, chain %.4f, missing %d; a replay %+v, the generator's chain %.4f; %d anomaly items", got.Correlator, got.Chain.F1, got.Missing, replayed, chain.F1, anomalies)
	}

	// The generators that know each failure's root write it.
	if !fileMissing(filepath.Join(storms[0], stormRoots)) {
		t.Error("specgen wrote roots.json; it names no roots")
	}
	scen := filepath.Join(dir, "scen")
	if err := correlateMain(context.Background(), []string{"generate", "--generator", "scenario", "--seeds", "101", "--dir", scen}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	roots, err := readItemMap(filepath.Join(scen, "scenario-101", stormRoots), "roots")
	if err != nil || len(roots) < 20 {
		t.Errorf("scenario's roots.json: %d roots, %v", len(roots), err)
	}

	// A seed is the same storm every time.
	again := t.TempDir()
	if err := correlateMain(context.Background(), []string{"generate", "--generator", "specgen", "--seeds", "22", "--dir", again}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{stormEvents, stormCatalog, stormTruth} {
		a, _ := os.ReadFile(filepath.Join(storms[1], f))
		b, _ := os.ReadFile(filepath.Join(again, "specgen-22", f))
		if len(a) == 0 || !bytes.Equal(a, b) {
			t.Errorf("%s of seed 22 differs from one run to the next (%d and %d bytes)", f, len(a), len(b))
		}
	}
}

// TestCorrelateEvalOfItsOwnTruth scores the README's replay storm against
// a truth written by hand, whose scores are worked out below: the
// payments-db cascade (three alerts, and a fourth item of it that never
// went in) and search failing alone at the same moment.
func TestCorrelateEvalOfItsOwnTruth(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, stormEvents), []byte(replayInput), 0o600)
	os.WriteFile(filepath.Join(dir, stormCatalog), []byte(replayCatalog), 0o600)
	truth := `{"aaaa000000000001":"db","aaaa000000000002":"db","aaaa000000000003":"db","never00000000001":"db","bbbb000000000001":"search"}`
	os.WriteFile(filepath.Join(dir, stormTruth), []byte(truth), 0o600)
	var stdout, stderr bytes.Buffer
	if err := correlateMain(context.Background(), []string{"eval", "--output", "-", dir}, &stdout, &stderr); err != nil {
		t.Fatalf("eval: %v\n%s", err, &stderr)
	}
	var got EvalResult
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("--output -: %v\n%s", err, &stdout)
	}
	sc := got.Storms[0]
	if sc.Missing != 1 || !strings.Contains(stderr.String(), "1 of 5 items of the truth never went in") {
		t.Errorf("missing %d, stderr %q: want the item that never went in told", sc.Missing, &stderr)
	}
	// The cascade's 4 items make 6 true pairs; the replay keeps the 3 of
	// its three alerts, and the missing item is an incident of its own:
	// precision 1, recall 0.5, 3 incidents for 2.
	c := sc.Correlator
	if c.TruePairs != 6 || c.PredictedPairs != 3 || c.SharedPairs != 3 || c.PredictedIncidents != 3 || c.TrueIncidents != 2 || c.CountRatio != 1.5 {
		t.Errorf("correlator %+v", c)
	}
	// 8 alerts as the three webhooks carried them, and the anomaly: 9
	// notifications for 2 incidents (the cascade, with the anomaly, and
	// search).
	if sc.Notifications != 9 || sc.Incidents != 2 || math.Abs(sc.NotificationReduction-(1-2.0/9)) > 1e-9 {
		t.Errorf("notifications %d, incidents %d, reduction %.3f: want 9, 2, %.3f", sc.Notifications, sc.Incidents, sc.NotificationReduction, 1-2.0/9)
	}
	// All four alerts came within 5 minutes: one window, 6 pairs, the
	// cascade's 3 true. Every alert is on a service of its own: no pair.
	if w := sc.Window; w.PredictedPairs != 6 || w.SharedPairs != 3 || sc.ByService.PredictedPairs != 0 {
		t.Errorf("window %+v, by service %+v", w, sc.ByService)
	}

	// With the roots named, the cascade's incident ranks payments-db
	// first, though web alerted first; search is a failure on one service.
	os.WriteFile(filepath.Join(dir, stormRoots), []byte(`{"db":"payments-db","search":"search"}`), 0o600)
	stdout.Reset()
	if err := correlateMain(context.Background(), []string{"eval", "--output", "-", dir}, &stdout, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	got = EvalResult{}
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if r := got.Storms[0].Roots; r == nil || r.Multi != (RootCounts{Incidents: 1, First: 1, Top3: 1}) || r.Single != (RootCounts{Incidents: 1, First: 1, Top3: 1, Earliest: 1}) {
		t.Errorf("roots %+v: want payments-db first of the cascade (web earliest), search first of its own", r)
	}
	var table bytes.Buffer
	correlateMain(context.Background(), []string{"eval", dir}, &table, &bytes.Buffer{})
	if !strings.Contains(table.String(), "100% / 100%") {
		t.Errorf("table:\n%s\nwant the roots' column", &table)
	}
	os.WriteFile(filepath.Join(dir, stormRoots), []byte(`{"other-storm":"payments-db"}`), 0o600)
	if err := correlateMain(context.Background(), []string{"eval", dir}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "roots.json: none of its 1 incidents is one of truth.json's") {
		t.Errorf("roots.json of another storm: %v", err)
	}
	os.WriteFile(filepath.Join(dir, stormRoots), []byte(`["payments-db"]`), 0o600)
	if err := correlateMain(context.Background(), []string{"eval", dir}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "roots.json: not a JSON object of true incident → its root service") {
		t.Errorf("roots.json of another shape: %v", err)
	}
	os.Remove(filepath.Join(dir, stormRoots))

	// The page draws the cascade's three alerts in one colour, and
	// search, grouped alone as it should be, not at all. With search put
	// into the cascade's truth, its row tells the split.
	page := filepath.Join(t.TempDir(), "eval.html")
	if err := correlateMain(context.Background(), []string{"eval", "--page", page, dir}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(page)
	if n := strings.Count(string(html), "<circle"); n != 3 || !strings.Contains(string(html), ">db: 3 of 4 items (the others never went in)</text>") || len(fills(html)) != 1 ||
		strings.Contains(string(html), "bbbb000000000001") {
		t.Errorf("page with %d dots:\n%s\nwant the cascade's 3 in one row, search left out", n, html)
	}
	os.WriteFile(filepath.Join(dir, stormTruth), []byte(`{"aaaa000000000001":"db","aaaa000000000002":"db","aaaa000000000003":"db","bbbb000000000001":"db"}`), 0o600)
	if err := correlateMain(context.Background(), []string{"eval", "--page", page, dir}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	html, _ = os.ReadFile(page)
	if n := strings.Count(string(html), "<circle"); n != 4 || !strings.Contains(string(html), ">db: 4 items, split in 2</text>") || len(fills(html)) != 2 {
		t.Errorf("page with %d dots:\n%s\nwant a row of 4 split in 2", n, html)
	}
	// Truth that has the cascade as two failures: the correlator merged
	// them, and each row names the other.
	os.WriteFile(filepath.Join(dir, stormTruth), []byte(`{"aaaa000000000001":"web","aaaa000000000002":"web","aaaa000000000003":"db","bbbb000000000001":"search"}`), 0o600)
	if err := correlateMain(context.Background(), []string{"eval", "--page", page, dir}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	html, _ = os.ReadFile(page)
	if !strings.Contains(string(html), ">web: 2 items, with db</text>") || !strings.Contains(string(html), ">db: 1 item, with web</text>") {
		t.Errorf("page:\n%s\nwant web and db each named merged with the other", html)
	}
}

// --noise adds unrelated alerts at its rate over the storm's span, each
// an incident of its own in the truth, as webhooks the replay reads
// (firing, then resolved), the same for the same seed; the storm itself
// is unchanged.
func TestCorrelateGenerateAddsNoise(t *testing.T) {
	gen := func(noise string) (map[string]string, []byte) {
		t.Helper()
		dir := t.TempDir()
		if err := correlateMain(context.Background(), []string{"generate", "--generator", "specgen", "--seeds", "3", "--noise", noise, "--dir", dir}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		truth, err := readTruth(filepath.Join(dir, "specgen-3", stormTruth))
		if err != nil {
			t.Fatal(err)
		}
		events, _ := os.ReadFile(filepath.Join(dir, "specgen-3", stormEvents))
		return truth, events
	}
	plain, _ := gen("0")
	noisy, events := gen("30")
	_, again := gen("30")
	if !bytes.Equal(events, again) {
		t.Error("the same seed added other noise")
	}
	added := map[string]bool{}
	for item, inc := range noisy {
		if want, ok := plain[item]; ok {
			if inc != want {
				t.Errorf("item %s went from %s to %s", item, want, inc)
			}
			continue
		}
		if !strings.HasPrefix(inc, "noise-added-") || added[inc] {
			t.Errorf("added item %s in %q: want an incident of its own", item, inc)
		}
		added[inc] = true
	}
	s := specgen.Generate(3, specgen.DefaultConfig())
	res := replayFiles(t, events, s.Catalog)
	var first, last time.Time
	for _, data := range s.Lines {
		if l, err := parseLine(data); err == nil && !l.sentAt().IsZero() {
			if first.IsZero() || l.sentAt().Before(first) {
				first = l.sentAt()
			}
			if l.sentAt().After(last) {
				last = l.sentAt()
			}
		}
	}
	// Poisson: within four standard deviations of 30 an hour.
	want := 30 * last.Sub(first).Hours()
	if n := float64(len(added)); math.Abs(n-want) > 4*math.Sqrt(want) {
		t.Errorf("%d alerts added over %s, want about %.0f (30 an hour)", len(added), last.Sub(first), want)
	}
	if res.RejectedLines != 0 || len(res.Assignments) != len(noisy) {
		t.Errorf("the noisy storm replayed with %d lines rejected and %d of %d alerts assigned", res.RejectedLines, len(res.Assignments), len(noisy))
	}
}

func TestCorrelateEvalAndGenerateErrors(t *testing.T) {
	dir := t.TempDir()
	if err := correlateMain(context.Background(), []string{"generate", "--generator", "specgen", "--seeds", "1", "--dir", dir}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	storm := filepath.Join(dir, "specgen-1")
	other := filepath.Join(dir, "other")
	os.MkdirAll(other, 0o755)
	events, _ := os.ReadFile(filepath.Join(storm, stormEvents))
	os.WriteFile(filepath.Join(other, stormEvents), events, 0o600)
	for _, c := range []struct {
		args  []string
		truth string // written to other's truth.json when not empty
		want  string
	}{
		{[]string{"generate", "--generator", "nosuch", "--seeds", "1", "--dir", dir}, "", `--generator "nosuch": want one of blindgen, crossgen, fleetgen, issuegen, opsgen, scenario, scenario-dense, specgen, stagegen, wordgen`},
		{[]string{"generate", "--generator", "specgen", "--dir", dir}, "", "--seeds: required"},
		{[]string{"generate", "--generator", "specgen", "--seeds", "5-3", "--dir", dir}, "", `"5-3": the range ends before it starts`},
		{[]string{"generate", "--generator", "specgen", "--seeds", "one", "--dir", dir}, "", `"one": not a seed or a range`},
		{[]string{"generate", "--generator", "specgen", "--seeds", "1-1001", "--dir", dir}, "", "1001 storms, at most 1000"},
		{[]string{"generate", "--generator", "specgen", "--seeds", "1"}, "", "--dir is required"},
		{[]string{"generate", "--generator", "specgen", "--seeds", "1", "--noise", "-2", "--dir", dir}, "", "--noise -2: want 0, or 0.01 to 600 alerts an hour"},
		{[]string{"generate", "--generator", "specgen", "--seeds", "1", "--noise", "NaN", "--dir", dir}, "", "--noise NaN: want 0, or 0.01 to 600"},
		{[]string{"generate", "--generator", "specgen", "--seeds", "1", "--noise", "1e-7", "--dir", dir}, "", "--noise 1e-07: want 0, or 0.01 to 600"},
		{[]string{"eval"}, "", "no storm folder given"},
		{[]string{"eval", filepath.Join(dir, "nosuch")}, "", "truth.json: no such file"},
		{[]string{"eval", other}, `{"x":`, "not a JSON object of item → true incident id"},
		{[]string{"eval", other}, `{}`, "truth.json: no items"},
		{[]string{"eval", other}, `{"a":""}`, `"a" → "": both must be given`},
		{[]string{"eval", other}, `{"0000000000000002":"i1","0000000000000003":"i1"}`, "none of its 2 items went in"},
		{[]string{"eval", other}, `{"0000000000000002":"i1","0000000000000002":"i2"}`, `"0000000000000002" is given more than once`},
		// Flags after a folder would be read as folders; outputs are
		// checked before any storm is scored.
		{[]string{"eval", other, "--output", "x.json"}, "", "flags go before the storm folders"},
		{[]string{"eval", "--output", dir, other}, "", "--output: " + dir + " is a folder"},
		{[]string{"eval", "--page", filepath.Join(dir, "nosuch", "p.html"), other}, "", "--page: " + filepath.Join(dir, "nosuch", "p.html") + ": its folder"},
	} {
		if c.truth != "" {
			os.WriteFile(filepath.Join(other, stormTruth), []byte(c.truth), 0o600)
		}
		err := correlateMain(context.Background(), c.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, service.ErrUsage) {
			t.Errorf("%v (truth %q): %v, want a usage error with %q", c.args, c.truth, err, c.want)
		}
	}
	// The largest seed is one storm, not a loop round to 0.
	top := t.TempDir()
	var told bytes.Buffer
	if err := correlateMain(context.Background(), []string{"generate", "--generator", "specgen", "--seeds", "18446744073709551615", "--dir", top}, &bytes.Buffer{}, &told); err != nil {
		t.Fatal(err)
	}
	if made, _ := os.ReadDir(top); len(made) != 1 || !strings.Contains(told.String(), "(1 of 1)") {
		t.Errorf("the largest seed made %d storms: %s", len(made), &told)
	}
	// A truth file over the limit is refused before it is read whole.
	big := filepath.Join(t.TempDir(), "big")
	os.MkdirAll(big, 0o755)
	os.WriteFile(filepath.Join(big, stormEvents), events, 0o600)
	if f, err := os.Create(filepath.Join(big, stormTruth)); err == nil {
		f.Truncate(MaxTruthFile + 1)
		f.Close()
	}
	os.WriteFile(filepath.Join(other, stormTruth), []byte(`{"0000000000000002":"i1"}`), 0o600)
	rules := filepath.Join(t.TempDir(), "rules.yaml")
	os.WriteFile(rules, []byte("spread_window: -1m\n"), 0o600)
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"eval", big}, fmt.Sprintf("truth.json: larger than %d bytes", MaxTruthFile)},
		{[]string{"eval", "--rules", rules, other}, "correlate eval: --rules " + rules + ": "},
		{[]string{"eval", "--rules", filepath.Join(dir, "nosuch.yaml"), other}, "correlate eval: --rules: "},
		{[]string{"eval", "--page", "-", other}, "--page -: the page goes to a file"},
	} {
		err := correlateMain(context.Background(), c.args, &bytes.Buffer{}, &bytes.Buffer{})
		if err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, service.ErrUsage) {
			t.Errorf("%v: %v, want a usage error with %q", c.args, err, c.want)
		}
	}
	err := correlateMain(context.Background(), []string{"eval", "--output", filepath.Join(dir, "nosuch", "scores.json"), storm}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "correlate eval: --output: ") {
		t.Errorf("--output into a missing folder: %v", err)
	}

	// A storm without a catalog is scored without topology.
	truth, _ := os.ReadFile(filepath.Join(storm, stormTruth))
	os.WriteFile(filepath.Join(other, stormTruth), truth, 0o600)
	var said bytes.Buffer
	if err := correlateMain(context.Background(), []string{"eval", other}, &bytes.Buffer{}, &said); err != nil || !strings.Contains(said.String(), "no catalog.yaml: scored without a catalog") {
		t.Errorf("a storm without catalog.yaml: %v, told %q", err, &said)
	}
}

// A storm's lines are the user's: what the page shows of them is escaped,
// a line eval cannot read is told, and items outside the truth counted.
func TestCorrelateEvalOfUntrustedLines(t *testing.T) {
	dir := t.TempDir()
	bad := amLine("2026-11-21T12:00:05Z",
		`{"status":"firing","labels":{"alertname":"<script>alert(1)</script>","service":"<b>web</b>","severity":"critical"},"startsAt":"2026-11-21T12:00:00Z","fingerprint":"cccc000000000001"}`,
		`{"status":"firing","labels":{"alertname":"Other","service":"<b>web</b>","severity":"critical"},"startsAt":"2026-11-21T12:00:01Z","fingerprint":"cccc000000000002"}`,
		`{"status":"firing","labels":{"alertname":"Unlabelled","service":"api","severity":"critical"},"startsAt":"2026-11-21T12:00:02Z","fingerprint":"cccc000000000003"}`)
	os.WriteFile(filepath.Join(dir, stormEvents), []byte("not json\n"+bad+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, stormTruth), []byte(`{"cccc000000000001":"<i>x</i>","cccc000000000002":"<i>x</i>"}`), 0o600)
	page := filepath.Join(dir, "eval.html")
	var stderr bytes.Buffer
	if err := correlateMain(context.Background(), []string{"eval", "--page", page, dir}, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatal(err)
	}
	html, _ := os.ReadFile(page)
	if strings.Contains(string(html), "<script>") || strings.Contains(string(html), "<b>") || strings.Contains(string(html), "<i>") ||
		!strings.Contains(string(html), "&lt;script&gt;alert(1)&lt;/script&gt; on &lt;b&gt;web&lt;/b&gt;") {
		t.Errorf("the page does not escape what the lines carry:\n%s", html)
	}
	for _, want := range []string{"rejected lines: 1, the first: line 1: not a JSON object", "1 of the 3 items that went in are not in the truth"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr %q, want %q", &stderr, want)
		}
	}
}

// fills are the distinct colours of a page's dots.
func fills(page []byte) map[string]bool {
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`<circle [^>]*fill="([^"]+)"`).FindAllSubmatch(page, -1) {
		out[string(m[1])] = true
	}
	return out
}

// TestReadmeCorrelateEval runs the README's two commands of `correlate
// generate` and `correlate eval` and checks the figures it quotes from the
// table's last line, so that the README stays true when the defaults move.
func TestReadmeCorrelateEval(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	gen := regexp.MustCompile("(?m)^bin/aiops (correlate generate --generator specgen --seeds 21-40 --dir data/storms)$").FindSubmatch(readme)
	ev := regexp.MustCompile(`(?m)^bin/aiops correlate eval data/storms/specgen-\*$`).Find(readme)
	quoted := regexp.MustCompile("`(mean of 20 [^`]*?) [.]{3}`").FindSubmatch(readme)
	if gen == nil || ev == nil || quoted == nil {
		t.Fatal("the README's correlate generate / eval example or its quoted line is gone")
	}
	dir := t.TempDir()
	args := strings.Fields(strings.Replace(string(gen[1]), "--dir data/storms", "--dir "+dir, 1))[1:]
	if err := correlateMain(context.Background(), args, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	storms, _ := filepath.Glob(filepath.Join(dir, "specgen-*"))
	var table bytes.Buffer
	if err := correlateMain(context.Background(), append([]string{"eval"}, storms...), &table, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(table.String()), "\n")
	got := strings.Join(strings.Fields(lines[len(lines)-1]), " ")
	want := strings.Join(strings.Fields(string(quoted[1])), " ")
	if !strings.HasPrefix(got, want) {
		t.Errorf("correlate eval's last line is\n%s\nthe README quotes\n%s", got, want)
	}
}

// What the catalog loader warns of (a dependency closing a cycle, a name
// only in depends_on) is told: the storm is scored on the graph as
// changed.
func TestCorrelateEvalTellsCatalogWarnings(t *testing.T) {
	dir := t.TempDir()
	if err := correlateMain(context.Background(), []string{"generate", "--generator", "specgen", "--seeds", "1", "--dir", dir}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	storm := filepath.Join(dir, "specgen-1")
	os.WriteFile(filepath.Join(storm, stormCatalog), []byte("services:\n  a: {depends_on: [b]}\n  b: {depends_on: [a, paymnts]}\n"), 0o600)
	var stderr bytes.Buffer
	if err := correlateMain(context.Background(), []string{"eval", storm}, &bytes.Buffer{}, &stderr); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"paymnts" is named only in depends_on`, "cycle"} {
		if !strings.Contains(stderr.String(), filepath.Join(storm, stormCatalog)+": ") || !strings.Contains(stderr.String(), want) {
			t.Errorf("stderr does not tell %q of the catalog:\n%s", want, stderr.String())
		}
	}
}
