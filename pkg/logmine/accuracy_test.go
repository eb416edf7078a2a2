package logmine_test

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/eval"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

// Floors a little under what the default config measured (GA, and PA
// against the corrected templates), on the tuning systems and on the
// held-out ones, whose figures never chose a default; see QUALITY.md for
// the figures and the command that prints them. A regression anywhere
// fails CI.
var accuracyFloor = map[string]struct{ GA, PA float64 }{
	"HDFS":      {0.995, 0.995},
	"Apache":    {0.995, 0.995},
	"OpenSSH":   {0.995, 0.99},
	"Zookeeper": {0.995, 0.995},
	"BGL":       {0.985, 0.955},
	"HPC":       {0.94, 0.89},
	"Hadoop":    {0.965, 0.625},
	"Spark":     {0.915, 0.875},
}

// Floors of the held-out systems' means (measured 0.9605 and 0.8453; the
// issue's goals are 0.90 and 0.70).
const heldOutMeanGA, heldOutMeanPA = 0.95, 0.84

// The default config on the eight shared Loghub samples, through the same
// offline path as `aiops logs parse` and `aiops logs eval` (header format
// from FORMATS.md, then mining). About a second in all.
func TestAccuracyLoghub(t *testing.T) {
	dir := loghub.Require(t)
	var scores []eval.Score
	for _, sys := range loghub.All {
		ds, err := loghub.Load(dir, sys)
		if err != nil {
			t.Fatal(err)
		}
		if ds.Corrected == nil {
			t.Fatalf("%s: no corrected templates", sys)
		}
		sc, err := eval.Run(ds, logmine.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		scores = append(scores, sc)
		if sc.Unmatched != 0 {
			t.Errorf("%s: %d lines did not match the header format", sys, sc.Unmatched)
		}
		t.Logf("%-10s GA %.4f  PA %.4f (original templates %.4f)  templates %d (truth %d)", sys, sc.GA, sc.PA, sc.PAOriginal, sc.Templates, sc.TruthTemplates)
		if f := accuracyFloor[sys]; sc.GA < f.GA || sc.PA < f.PA {
			t.Errorf("%s: GA %.4f PA %.4f under the floor %.3f/%.3f", sys, sc.GA, sc.PA, f.GA, f.PA)
		}
	}
	ga, pa, _, _ := eval.Mean(scores, loghub.Systems)
	t.Logf("tuning     GA %.4f  PA %.4f  (%v)", ga, pa, loghub.Systems)
	ga, pa, _, _ = eval.Mean(scores, loghub.HeldOut)
	t.Logf("held out   GA %.4f  PA %.4f  (%v)", ga, pa, loghub.HeldOut)
	if ga < heldOutMeanGA || pa < heldOutMeanPA {
		t.Errorf("held-out mean GA %.4f PA %.4f under the goal %.2f/%.2f", ga, pa, heldOutMeanGA, heldOutMeanPA)
	}
}

// synthetic logs: message types with typed variables, including words the
// maskers cannot know (user and host names, also in the last routing
// position) and key=value fields. Values of key=value fields are variables
// by design, so two types never differ only in such a value.
var synthTemplates = []string{
	"Accepted connection from {ip}:{port} for user {user}",
	"Connection to {ip}:{port} closed after {dur}",
	"Request {uuid} finished in {dur} with status {int}",
	"Request {uuid} failed: upstream {host} timed out after {dur}",
	"GET {url} returned {int} in {dur}",
	"Wrote {size} to {path}",
	"Deleted {path} (freed {size})",
	"Job job_{int}_{int} started on worker {host}",
	"Job job_{int}_{int} finished with exit code {int}",
	"cache hit ratio {float} over {int} lookups",
	"cache evicted {int} entries, {size} freed",
	"Sent notification to {email} about incident {hex}",
	"Checkpoint at {ts} took {dur}",
	"Replica {host} lag is {int} ms",
	"Replica {host} is back in sync",
	"user={user} action=login result=ok src={ip}",
	"user={user} action=login result=denied src={ip} reason=password",
	"user={user} action=logout src={ip}",
	"Disk {path} usage {int}% above threshold {int}%",
	"GC pause {dur} heap {size} -> {size}",
	"Session 0x{hex} expired after {int}ms",
	"Loaded {int} rules from {path} in {dur}",
	"Shard {int} moved from {host} to {host}",
	"Health check ok",
	"Health check failed for {host}: connection refused",
	"Received SIGTERM, shutting down",
	"Listening on [{ipv6}]:{port}",
	"Peer {mac} joined segment {int}",
	// ids with digits glued to letters, which no masker takes: their
	// positions must become variables from the group's statistics
	"Link {alnum} down",
	"Fan {alnum} speed {int} rpm on {alnum}",
	"Job {alnum} finished",
	"Job {alnum} killed by {user}",
	"interrupt {alnum} {alnum} handled",
	"Session closed for {user}",
	// a user name opening the message: a variable in a routing position
	"{user} opened session {int} from {ip}",
	// a free-text value at the end of the line, one to four words
	"Task {int} aborted by operator: {reason}",
	// lists whose length varies from line to line: two to six bare values,
	// three to six separated by commas (a comma list of two, "<*>, <*>",
	// is a different template from longer ones: its last item has no
	// comma, so it is no run)
	"Retry schedule {ints} ms for {host}",
	"Open ports {commas} on {ip}",
	// messages of one word, each a state of its own (supervisors and
	// node agents log "running", "halted"): no context is left to say a
	// position is a variable, so they must not be folded into "<*>"
	"starting",
	"running",
	"stopping",
	"stopped",
	"halted",
	"idle",
}

var (
	synthUsers = []string{"alice", "bob", "carol", "dave", "erin", "frank", "svc-backup", "root", "admin", "mallory"}
	synthHosts = []string{"web-a", "web-b", "db-primary", "db-replica", "cache.internal", "node-7f3k", "edge.example.net"}
)

func synthValue(r *rand.Rand, kind string) string {
	switch kind {
	case "ip":
		return fmt.Sprintf("%d.%d.%d.%d", 1+r.IntN(254), r.IntN(256), r.IntN(256), 1+r.IntN(254))
	case "ipv6":
		return fmt.Sprintf("2001:db8::%x:%x", r.IntN(65536), r.IntN(65536))
	case "mac":
		return fmt.Sprintf("%02x:%02x:%02x:%02x:%02x:%02x", r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256), r.IntN(256))
	case "port":
		return fmt.Sprint(1024 + r.IntN(60000))
	case "user":
		return synthUsers[r.IntN(len(synthUsers))]
	case "host":
		return synthHosts[r.IntN(len(synthHosts))]
	case "alnum":
		return fmt.Sprintf("%s%d", []string{"eth", "fan", "R", "node", "job", "irq", "core"}[r.IntN(7)], r.IntN(64))
	case "dur":
		switch r.IntN(4) {
		case 0:
			return fmt.Sprintf("%dms", r.IntN(1000))
		case 1:
			return fmt.Sprintf("%.1fs", r.Float64()*60)
		case 2:
			return fmt.Sprintf("%dm%ds", r.IntN(60), r.IntN(60))
		default:
			return fmt.Sprintf("%dµs", r.IntN(1000))
		}
	case "size":
		return fmt.Sprintf("%d%s", r.IntN(4096), []string{"B", "KB", "MB", "GiB", "MiB"}[r.IntN(5)])
	case "uuid":
		return fmt.Sprintf("%08x-%04x-%04x-%04x-%012x", r.Uint32(), r.IntN(65536), r.IntN(65536), r.IntN(65536), r.Uint64()&0xffffffffffff)
	case "url":
		return fmt.Sprintf("https://api.example.com/v1/items/%d?page=%d", r.IntN(1e6), r.IntN(50))
	case "path":
		return fmt.Sprintf("/var/lib/app/%s/%d.dat", []string{"data", "tmp", "spool"}[r.IntN(3)], r.IntN(1e5))
	case "email":
		return synthUsers[r.IntN(len(synthUsers))] + "@example.org"
	case "hex":
		return fmt.Sprintf("%x", r.Uint64()|1<<60)
	case "ts":
		return fmt.Sprintf("2024-%02d-%02dT%02d:%02d:%02dZ", 1+r.IntN(12), 1+r.IntN(28), r.IntN(24), r.IntN(60), r.IntN(60))
	case "float":
		return fmt.Sprintf("%.3f", r.Float64())
	case "reason":
		words := []string{"disk", "quota", "exceeded", "on", "remote", "volume", "maintenance", "window", "started", "manual", "override", "requested"}
		vals := make([]string, 1+r.IntN(4))
		for i := range vals {
			vals[i] = words[r.IntN(len(words))]
		}
		return strings.Join(vals, " ")
	case "ints", "commas":
		sep := " "
		if kind == "commas" {
			sep = ", "
		}
		n := 2 + r.IntN(5)
		if kind == "commas" {
			n = 3 + r.IntN(4)
		}
		vals := make([]string, n)
		for i := range vals {
			vals[i] = fmt.Sprint(r.IntN(10000))
		}
		return strings.Join(vals, sep)
	default: // int
		return fmt.Sprint(r.IntN(100000))
	}
}

func synthLines(seed uint64, n int) (lines, labels []string) {
	r := rand.New(rand.NewPCG(seed, 1))
	for i := 0; i < n; i++ {
		k := r.IntN(len(synthTemplates))
		tpl := synthTemplates[k]
		var b strings.Builder
		for {
			open := strings.IndexByte(tpl, '{')
			if open < 0 {
				b.WriteString(tpl)
				break
			}
			end := strings.IndexByte(tpl, '}')
			b.WriteString(tpl[:open])
			b.WriteString(synthValue(r, tpl[open+1:end]))
			tpl = tpl[end+1:]
		}
		lines = append(lines, b.String())
		labels = append(labels, fmt.Sprint(k))
	}
	return lines, labels
}

// Synthetic logs of known types: every type must come out as exactly one
// template, whatever values and value formats its lines carry.
func TestAccuracySynthetic(t *testing.T) {
	for seed := uint64(1); seed <= 3; seed++ {
		lines, labels := synthLines(seed, 5000)
		parsed, st, err := logmine.ParseLines(lines, logmine.ParseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids := make([]string, len(parsed))
		for i, p := range parsed {
			ids[i] = p.ID.String()
		}
		ga, err := eval.GroupingAccuracy(labels, ids)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("seed %d: GA %.4f, %d templates for %d types", seed, ga, st.Templates, len(synthTemplates))
		if ga < 0.999 {
			byLabel := map[string]map[string]bool{}
			for i, l := range labels {
				if byLabel[l] == nil {
					byLabel[l] = map[string]bool{}
				}
				byLabel[l][parsed[i].Template] = true
			}
			for l, ts := range byLabel {
				if len(ts) > 1 {
					t.Logf("type %s split into %d templates: %v", l, len(ts), ts)
				}
			}
			byTemplate := map[string]map[string]bool{}
			for i, l := range labels {
				tp := parsed[i].Template
				if byTemplate[tp] == nil {
					byTemplate[tp] = map[string]bool{}
				}
				byTemplate[tp][synthTemplates[atoi(l)]] = true
			}
			for tp, ls := range byTemplate {
				if len(ls) > 1 {
					t.Logf("template %q joins types %v", tp, ls)
				}
			}
			t.Errorf("seed %d: GA %.4f on synthetic logs", seed, ga)
		}
	}
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}
