package aiops

import (
	"bufio"
	"bytes"
	"cmp"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"sort"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/ingest/decode"
)

// correlateCommand is `aiops correlate replay`: the correlator's code run
// over a file of alerts, changes and events.
func correlateCommand(ctx context.Context, args []string) error {
	return correlateMain(ctx, args, os.Stdout, os.Stderr)
}

const correlateUsage = `usage: aiops correlate replay --input events.jsonl [--catalog catalog.yaml] [--output result.json] [--page incidents.html] [flags]

Groups alerts, anomalies and changes into incidents offline, with the
correlator service's code, on the events' own times (history replays in
seconds and gives the incidents the service would have made). Each input
line is one of:

  {"type":"alertmanager","time":RFC3339,"payload":<Alertmanager webhook v4 payload>}
  {"type":"change","time":RFC3339,"change":{"service","kind","version","author","commit","url"}}
  {"type":"event","event":<aiops envelope>}

A change's "kind" is a change type (deploy, config, feature_flag,
infrastructure, other) or a word tools use for one (release, rollout);
another word is kept as an "other" change, and "time" may be given in
"change" instead (there it is the change's own and wins over the
line's). "time" is when the line was sent and may be left out; the
correlator runs on the events' own times (an alert's startsAt and
endsAt, a change's time), however long ago, unlike the gateway, which
refuses or re-times events more than 13 days old. An alert without
startsAt (or endsAt, when resolved) is timed at the line's time, else at
the latest event time before it; the first line without either is
rejected.

The lines are replayed in the order they were sent, whatever their order
in the file: by "time", else a change's own time, an event's
observed_time or time, the latest startsAt (endsAt, resolved) of a
webhook's alerts; a line without any keeps its place after the line
before it. Each line waits for its turn in a temporary file in $TMPDIR
(the first 64 MiB in memory), so that memory holds some 70 bytes a line,
whatever its length, and the disk as much as the input decompressed.

The output (JSON) has "incidents" (id, status, services, root causes, member
alert fingerprints, linked changes; "merged_into" for one merged into
another, whose alerts are then that one's) and "assignments" (alert
fingerprint → incident id) covering every alert that went in; an alert that
only ever resolved, or a heartbeat (ignored_alerts: Watchdog), joined none
and is assigned "unassigned:<fingerprint>"; "event_assignments" maps every
alert and anomaly event, and the events of a lone anomaly that opened
nothing (lone_anomalies) are assigned "unassigned:<its first event id>".
An alert sent without a fingerprint is keyed by the one Alertmanager gives
it (its labels' FNV-1a 64, 16 hex digits). An alert that fired again after
its incident ended is assigned to the latest incident it joined, and listed
among the alerts of each. "-" reads standard input or
writes standard output; a gzip-compressed input is read as such. Progress goes to standard error.
--page draws the incidents as a page (HTML, self-contained): a lane per
incident from its opening to its resolution, and the linked changes.

A line that cannot be read (not JSON, an unknown type, an event that does
not validate, over 16 MiB) is told on standard error with its number and the problem,
counted in the output's "rejected_lines" (the first 100 listed in
"rejected"), and the rest goes on; of a webhook with some bad alerts, the
others are taken. With --strict a rejected line fails the replay and no
output is written.
`

// correlateOthers tells the other subcommands after replay's usage.
const correlateOthers = `
aiops correlate eval STORM... scores the correlator against ground truth,
and aiops correlate generate --generator NAME --seeds FROM-TO --dir DIR
writes storms with their truth to score it on (-h on each tells more).
`

// MaxReplayLine bounds one input line (an Alertmanager payload of many
// alerts included).
const MaxReplayLine = 16 << 20

func correlateMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	switch {
	case len(args) > 0 && args[0] == "generate":
		return generateMain(args[1:], stderr)
	case len(args) > 0 && args[0] == "eval":
		return evalMain(ctx, args[1:], stdout, stderr)
	case len(args) == 0 || args[0] != "replay":
		fmt.Fprint(stderr, correlateUsage, correlateOthers)
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help") {
			return nil
		}
		return service.Usage(errors.New(`correlate: want the subcommand "replay", "eval" or "generate"`))
	}
	fs := flag.NewFlagSet("aiops correlate replay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, correlateUsage, "\nflags:\n"); fs.PrintDefaults() }
	input := fs.String("input", "", "JSON lines of alerts, changes and events (- for standard input)")
	catalog := fs.String("catalog", "", "service catalog (YAML or JSON: services → owner, team, tier, runbook, depends_on)")
	output := fs.String("output", "-", "where the result JSON goes (- for standard output)")
	rules := fs.String("rules", "", "correlation rules (YAML: the correlator section's rules); default: the built-in defaults")
	strict := fs.Bool("strict", false, "fail, writing no output, when a line cannot be read, instead of telling it and going on")
	page := fs.String("page", "", "also draw the incidents as a page (HTML) to this file: a lane per incident, from its opening to its resolution, and the changes")
	if err := fs.Parse(args[1:]); err != nil {
		return service.Usage(err)
	}
	if *input == "" {
		fs.Usage()
		return service.Usage(errors.New("correlate replay: --input is required"))
	}
	// The flag package stops at the first word that is not a flag: a
	// result file named without --output, or "--strict false", would leave
	// it and every flag after it unread, silently.
	if fs.NArg() > 0 {
		return service.Usage(fmt.Errorf("correlate replay: unexpected argument %q (flags only; the result goes to --output)", fs.Arg(0)))
	}
	// Where the result goes is checked before the replay, not after it.
	if err := checkOutputPath(*output); err != nil {
		return service.Usage(fmt.Errorf("correlate replay: --output: %w", err))
	}
	if *page != "" {
		if err := checkOutputPath(*page); err != nil || *page == "-" {
			return service.Usage(fmt.Errorf("correlate replay: --page: %w", cmp.Or(err, errors.New("a file, not standard output"))))
		}
	}
	var cat *correlate.Catalog
	if *catalog != "" {
		var err error
		if cat, err = correlate.ReadCatalog(*catalog); err != nil {
			return service.Usage(err)
		}
		for _, w := range cat.Warnings {
			fmt.Fprintf(stderr, "correlate replay: catalog %s: %s\n", *catalog, w)
		}
	}
	cfg := correlate.DefaultConfig()
	if *rules != "" {
		if err := loadRules("correlate replay", *rules, &cfg); err != nil {
			return service.Usage(err)
		}
	}
	// Replay tells its own progress, in lines.
	in, closeIn, err := openInput(ctx, "correlate replay", *input, nil, time.Now)
	if err != nil {
		return err
	}
	defer closeIn()
	res, err := Replay(ctx, in, cfg, cat, stderr)
	if err != nil {
		// A read that failed (a truncated gzip file): name the input.
		return fmt.Errorf("correlate replay: %s: %w", *input, err)
	}
	if *strict && res.RejectedLines > 0 {
		return fmt.Errorf("correlate replay: --strict: rejected lines: %d, the first: line %d: %s", res.RejectedLines, res.Rejected[0].Line, res.Rejected[0].Problem)
	}
	if *page != "" {
		if err := writeOutput(*page, stdout, func(w io.Writer) error { return writeReplayPage(w, res) }); err != nil {
			return fmt.Errorf("correlate replay: --page: %w", err)
		}
	}
	return writeOutput(*output, stdout, func(w io.Writer) error {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(res)
	})
}

// openInput opens an offline command's --input ("-": standard input) as
// text (plainText). A file that cannot be opened, or a folder, is a usage
// error, told before any work (a folder would otherwise fail the first
// read, as bad data). With progress, the bytes read of the input as
// stored are told there as they go, on the clock now, and a cancelled ctx
// ends the reading (progressReader).
func openInput(ctx context.Context, cmd, path string, progress io.Writer, now func() time.Time) (io.Reader, func(), error) {
	var r io.Reader = os.Stdin
	closeIn, size := func() {}, int64(0)
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return nil, nil, service.Usage(fmt.Errorf("%s: --input: %w", cmd, err))
		}
		st, err := f.Stat()
		if err == nil && st.IsDir() {
			f.Close()
			return nil, nil, service.Usage(fmt.Errorf("%s: --input %s is a directory", cmd, path))
		}
		if err == nil {
			size = st.Size()
		}
		r, closeIn = f, func() { f.Close() }
	}
	if progress != nil {
		r = &progressReader{name: cmd, ctx: ctx, r: r, total: size, w: progress, now: now, every: progressEvery, last: now()}
	}
	text, err := plainText(r)
	if err != nil {
		closeIn()
		return nil, nil, fmt.Errorf("%s: --input %s: %w", cmd, path, err)
	}
	return text, closeIn, nil
}

// progressEvery is how often an offline command tells its progress.
var progressEvery = 2 * time.Second

// plainText is r as text: decompressed when it is gzip (its magic bytes:
// a rotated log, an exported archive would otherwise be read as binary
// lines), without a leading UTF-8 byte order mark (which editors on
// Windows write, and which would otherwise make the first line not
// JSON, or a log template of its own).
func plainText(r io.Reader) (io.Reader, error) {
	br := bufio.NewReader(r)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err // "gzip: invalid header"
		}
		br = bufio.NewReader(zr)
	}
	if bom, _ := br.Peek(3); bytes.Equal(bom, []byte("\xef\xbb\xbf")) {
		br.Discard(3)
	}
	return br, nil
}

// writeOutput writes a result with write through openOutput: whole or
// not at all.
func writeOutput(path string, stdout io.Writer, write func(io.Writer) error) error {
	w, commit, err := openOutput(path, stdout)
	if err != nil {
		return err
	}
	return commit(write(w))
}

// loadRules reads a YAML file of correlation rules strictly, for the
// command cmd (which errors name).
func loadRules(cmd, path string, cfg *correlate.Config) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("%s: --rules: %w", cmd, err)
	}
	if err := strictYAML(data, cfg); err != nil {
		return fmt.Errorf("%s: --rules %s: %w", cmd, path, err)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("%s: --rules %s: %w", cmd, path, err)
	}
	return nil
}

// ReplayResult is what `aiops correlate replay` writes.
type ReplayResult struct {
	Incidents []ReplayIncident `json:"incidents"`
	// Assignments maps every alert fingerprint that went in to its
	// incident.
	Assignments map[string]string `json:"assignments"`
	// EventAssignments maps the id of every alert and anomaly event that
	// went in to its incident.
	EventAssignments map[string]string `json:"event_assignments"`
	Stats            correlate.Stats   `json:"stats"`
	Lines            int               `json:"lines"`
	// RejectedLines counts the lines (or alerts of a webhook) that could
	// not be read; Rejected lists the first MaxRejectedListed.
	RejectedLines int           `json:"rejected_lines"`
	Rejected      []LineProblem `json:"rejected,omitempty"`
}

// LineProblem is why one input line (or some alerts of it) was rejected.
type LineProblem struct {
	Line    int    `json:"line"`
	Problem string `json:"problem"`
}

// MaxRejectedListed bounds the rejected lines a replay lists and tells.
const MaxRejectedListed = 100

// ItemAssignments maps every item that went in, an alert by its
// fingerprint and any event by its id, to its incident (what IncidentOf
// answers for one).
func (r *ReplayResult) ItemAssignments() map[string]string {
	out := make(map[string]string, len(r.Assignments)+len(r.EventAssignments))
	maps.Copy(out, r.EventAssignments)
	maps.Copy(out, r.Assignments)
	return out
}

// IncidentOf is the incident of an item: an alert by its fingerprint, an
// event by its id ("" when it joined none).
func (r *ReplayResult) IncidentOf(item string) string {
	if id := r.Assignments[item]; id != "" {
		return id
	}
	return r.EventAssignments[item]
}

// ReplayIncident is one incident of a replay.
type ReplayIncident struct {
	ID         string                `json:"id"`
	Status     string                `json:"status"`
	Title      string                `json:"title"`
	OpenedAt   time.Time             `json:"opened_at"`
	ResolvedAt time.Time             `json:"resolved_at,omitzero"`
	Services   []string              `json:"services"`
	RootCauses []correlate.Candidate `json:"root_causes"`
	Alerts     []string              `json:"alerts"`
	Anomalies  []string              `json:"anomalies,omitempty"`
	Changes    []correlate.Change    `json:"changes,omitempty"`
	Team       string                `json:"team,omitempty"`
	Runbook    string                `json:"runbook,omitempty"`
	Members    int                   `json:"member_count"`
	// Timeline is what happened to the incident: what opened it, why
	// each service joined, merges, changes, resolutions.
	Timeline []correlate.Entry `json:"timeline,omitempty"`
	// MergedInto names the incident this one was merged into: its
	// members, alerts and anomalies are that incident's.
	MergedInto string `json:"merged_into,omitempty"`
}

// replayLine is one input line.
type replayLine struct {
	Type string `json:"type"`
	// Time is "time" (RawTime), when the line was sent (parseLine reads
	// it).
	Time    time.Time       `json:"-"`
	RawTime string          `json:"time"`
	Payload json.RawMessage `json:"payload"`
	Change  *struct {
		Service string `json:"service"`
		Kind    string `json:"kind"`
		Version string `json:"version"`
		Author  string `json:"author"`
		Commit  string `json:"commit"`
		URL     string `json:"url"`
		// Time is taken when the line has none.
		Time    time.Time `json:"-"`
		RawTime string    `json:"time"`
	} `json:"change"`
	Event json.RawMessage `json:"event"`
}

// inputLine is one line of the input waiting for its turn (readLines):
// where its bytes are in the spool, or why it cannot be read.
type inputLine struct {
	n    int       // its number in the input, from 1
	sent time.Time // when it was sent (replayLine.sentAt)
	off  int64     // its bytes in the spool: off, size
	size int
	err  error
}

// inputLines are the lines of an input in the order they were sent, and
// the spool that holds their bytes.
type inputLines struct {
	lines []inputLine // blank lines left out
	total int         // every line, blank ones too
	moved int         // the lines that came after one sent later
	spool lineSpool
}

// readLines reads the lines of in and puts them in the order they were
// sent, as the correlator would have had them live: a generator that
// writes each alert's or each source's lines in turn (all of one alert's
// webhooks, then the next alert's) goes back in time at each turn, and
// in file order a symptom would come after its incident ended, or a
// firing after its own resolve, and open incidents of their own. The
// sort is stable, and a line without a time of its own (sentAt), or that
// cannot be read, keeps its place after the line before it, so an input
// in order replays as it is. An event-time replay cannot take a line
// before it has read the last one, so every line is kept for its turn:
// its bytes in the spool (on disk past spoolInMemory), and in memory
// only when it was sent and where it is, some 70 bytes a line, whatever
// its length. The caller closes out.spool.
func readLines(ctx context.Context, in io.Reader, progress io.Writer) (out inputLines, err error) {
	var (
		prev, latest time.Time
		r            = newBoundedLines(in, MaxReplayLine)
		readEvery    = 100_000
		started      = time.Now()
		told         = started
	)
	defer func() {
		if err == nil {
			err = out.spool.done()
		}
		if err != nil {
			out.spool.close()
		}
	}()
	for {
		data, tooLong, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return out, fmt.Errorf("line %d: %w", out.total+1, err)
		}
		out.total++
		// Every readEvery lines, or every progressEvery for an input of
		// few long lines (webhooks of hundreds of alerts each).
		if now := time.Now(); out.total%readEvery == 0 || now.Sub(told) >= progressEvery {
			if err := ctx.Err(); err != nil {
				return out, err
			}
			told = now
			fmt.Fprintf(progress, "correlate replay: read %s in %s\n", count(out.total, "line"), time.Since(started).Round(time.Millisecond))
		}
		il := inputLine{n: out.total, sent: prev}
		switch {
		case tooLong:
			il.err = fmt.Errorf("longer than %d bytes: skipped", MaxReplayLine)
		case len(bytes.TrimSpace(data)) == 0:
			continue
		default:
			var l replayLine
			if l, il.err = parseLine(data); il.err == nil {
				if at := l.sentAt(); !at.IsZero() {
					il.sent = at
				}
				if il.off, err = out.spool.add(data); err != nil {
					return out, fmt.Errorf("keeping line %d for its turn: %w", out.total, err)
				}
				il.size = len(data)
			}
		}
		if il.sent.Before(latest) {
			out.moved++
		}
		if il.sent.After(latest) {
			latest = il.sent
		}
		prev = il.sent
		out.lines = append(out.lines, il)
	}
	slices.SortStableFunc(out.lines, func(a, b inputLine) int { return a.sent.Compare(b.sent) })
	return out, nil
}

// spoolInMemory is how many bytes of lines a replay keeps in memory for
// their turn; the rest go to a temporary file (lineSpool).
var spoolInMemory int64 = 64 << 20

// lineSpool keeps the bytes of an input's lines until their turn: in
// memory up to spoolInMemory bytes, then in a temporary file (in $TMPDIR,
// as large as the input decompressed). A replay of a month of webhooks
// would otherwise hold every payload at once. The file is removed as soon
// as it is made, where the system lets an open file be (it is read
// through its descriptor), so that a replay killed midway leaves none;
// else by close.
type lineSpool struct {
	mem     []byte
	f       *os.File
	w       *bufio.Writer
	size    int64
	removed bool // the file's name is gone already
}

// add keeps line and returns where it is.
func (s *lineSpool) add(line []byte) (int64, error) {
	off := s.size
	if s.f == nil && s.size+int64(len(line)) > spoolInMemory {
		f, err := os.CreateTemp("", "aiops-replay-*.jsonl")
		if err != nil {
			return 0, err
		}
		s.f, s.w, s.removed = f, bufio.NewWriterSize(f, 1<<20), os.Remove(f.Name()) == nil
		if _, err := s.w.Write(s.mem); err != nil {
			return 0, err
		}
		s.mem = nil
	}
	if s.f == nil {
		s.mem = append(s.mem, line...)
	} else if _, err := s.w.Write(line); err != nil {
		return 0, err
	}
	s.size += int64(len(line))
	return off, nil
}

// done ends the adding: what is buffered for the file is written.
func (s *lineSpool) done() error {
	if s.w == nil {
		return nil
	}
	return s.w.Flush()
}

// line returns the size bytes kept at off.
func (s *lineSpool) line(off int64, size int) ([]byte, error) {
	if s.f == nil {
		return s.mem[off : off+int64(size)], nil
	}
	b := make([]byte, size)
	if _, err := s.f.ReadAt(b, off); err != nil {
		return nil, fmt.Errorf("reading a line back from %s: %w", s.f.Name(), err)
	}
	return b, nil
}

// close removes the file, if any.
func (s *lineSpool) close() {
	if s.f != nil {
		s.f.Close()
		if !s.removed {
			os.Remove(s.f.Name())
		}
		s.f, s.w = nil, nil
	}
	s.mem = nil
}

// sentAt is when l was sent: its "time"; without one, a change's own
// time, an event's observed time (else its time), or the latest time
// told of a webhook's alerts (a firing one's startsAt, a resolved one's
// endsAt: Alertmanager notifies after them); zero when l has none.
func (l replayLine) sentAt() time.Time {
	if !l.Time.IsZero() {
		return l.Time
	}
	var at time.Time
	later := func(s string) {
		if t, err := decode.ParseTime(s); err == nil && t.After(at) {
			at = t
		}
	}
	switch l.Type {
	case "change":
		if l.Change != nil {
			at = l.Change.Time
		}
	case "event":
		var e struct {
			Time     string `json:"time"`
			Observed string `json:"observed_time"`
		}
		if json.Unmarshal(l.Event, &e) == nil {
			later(e.Observed)
			if at.IsZero() {
				later(e.Time)
			}
		}
	case "alertmanager":
		var p struct {
			Status string `json:"status"`
			Alerts []struct {
				Status   string `json:"status"`
				StartsAt string `json:"startsAt"`
				EndsAt   string `json:"endsAt"`
			} `json:"alerts"`
		}
		if json.Unmarshal(l.Payload, &p) == nil {
			for _, a := range p.Alerts {
				if a.Status == event.AlertResolved || a.Status == "" && p.Status == event.AlertResolved {
					later(a.EndsAt)
				} else {
					// A firing alert's endsAt is when it expires unless
					// sent again, ahead of the sending.
					later(a.StartsAt)
				}
			}
		}
	}
	return at
}

// Replay runs the correlator over the lines of in; progress goes to
// progress every 10,000 lines. A line that cannot be read is told on
// progress and listed in the result (LineProblem), and the rest goes on.
func Replay(ctx context.Context, in io.Reader, cfg correlate.Config, cat *correlate.Catalog, progress io.Writer) (*ReplayResult, error) {
	return replay(ctx, in, cfg, cat, progress, nil)
}

// replay is Replay; with sights it also records every item (an alert by
// its fingerprint, an anomaly by its event id) as first seen: when its
// line came (the line's time), else at its own time, with the service
// the correlator took it to be on, and counts the notifications
// (correlate eval's baselines and noise reduction).
func replay(ctx context.Context, in io.Reader, cfg correlate.Config, cat *correlate.Catalog, progress io.Writer, sights *replaySights) (*ReplayResult, error) {
	c, err := correlate.New(cfg, cat)
	if err != nil {
		return nil, err
	}
	res := &ReplayResult{Incidents: []ReplayIncident{}, Assignments: map[string]string{}, EventAssignments: map[string]string{}}
	last := map[string]correlate.State{}
	mergedInto := map[string]string{}
	record := func(ups []correlate.Update) {
		for _, u := range ups {
			last[u.State.IncidentID] = u.State
			if u.State.MergedInto != "" {
				mergedInto[u.State.IncidentID] = u.State.MergedInto
			}
		}
	}
	alertFP := map[string]bool{}
	// joined holds the alerts each incident took, by its id then: an
	// alert that fires again after its incident resolved and was
	// forgotten opens another, and assignments then name only that one,
	// but the first incident's alerts must still list it.
	joined := map[string]map[string]bool{}
	joinedAnomalies := map[string]map[string]bool{}
	mark := func(into map[string]map[string]bool, id, fp string) {
		if into[id] == nil {
			into[id] = map[string]bool{}
		}
		into[id][fp] = true
	}
	// The events of lone anomalies waiting to open an incident
	// (correlator.rules.lone_anomalies), by series: once the series is
	// in an incident they are its; a run that waited in vain is one item
	// apart, as the incident it would have opened, named by its first
	// event (Correlator.WaitingRun).
	type waitingRun struct {
		first string
		ids   []string
	}
	waiting := map[string]*waitingRun{}
	apart := func(r *waitingRun) {
		for _, id := range r.ids {
			res.EventAssignments[id] = "unassigned:" + r.first
		}
	}
	// settle assigns the run r of series fp once it waits no more.
	settle := func(c *correlate.Correlator, fp string, r *waitingRun) {
		// In an incident as the run that began with r.first, not as a
		// later episode placed at once after the run waited in vain.
		id, ok := c.IncidentOf(fp)
		if first, _ := c.FirstEventOf(fp); ok && first == r.first {
			for _, e := range r.ids {
				res.EventAssignments[e] = id
			}
			mark(joinedAnomalies, id, fp)
			delete(waiting, fp)
		} else if first, ok := c.WaitingRun(fp); !ok || first != r.first {
			apart(r) // it waited in vain
			delete(waiting, fp)
		}
	}
	// waitingBesides is how many series other than fp wait. A signal
	// adds none but its own: fewer after it than before, it placed or
	// forgot others, and only then are all the runs looked at (looking
	// at every run after each signal made a replay quadratic in them).
	waitingBesides := func(c *correlate.Correlator, fp string) int {
		n := c.Waiting()
		if _, ok := c.WaitingRun(fp); ok {
			n--
		}
		return n
	}
	// reject tells line n, which could not be read, and goes on.
	// The lines come in time order, not by number: the list keeps the
	// MaxRejectedListed lowest numbers, the first of the file.
	reject := func(n int, err error) {
		res.RejectedLines++
		if len(res.Rejected) < MaxRejectedListed {
			res.Rejected = append(res.Rejected, LineProblem{Line: n, Problem: err.Error()})
			fmt.Fprintf(progress, "correlate replay: line %d rejected: %v\n", n, err)
			return
		}
		last := 0
		for i, p := range res.Rejected {
			if p.Line > res.Rejected[last].Line {
				last = i
			}
		}
		if n < res.Rejected[last].Line {
			res.Rejected[last] = LineProblem{Line: n, Problem: err.Error()}
		}
	}
	started := time.Now()
	lines, err := readLines(ctx, in, progress)
	if err != nil {
		return nil, err
	}
	defer lines.spool.close()
	res.Lines = lines.total
	if lines.moved > 0 {
		fmt.Fprintf(progress, "correlate replay: %s out of time order: replayed in the order of their times\n", count(lines.moved, "line"))
	}
	told := time.Now()
	for i := range lines.lines {
		il := lines.lines[i]
		lines.lines[i] = inputLine{} // its turn is over: free it
		// Every 10,000 lines, or every progressEvery (readLines).
		if now := time.Now(); (i+1)%10_000 == 0 || now.Sub(told) >= progressEvery {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			told = now
			fmt.Fprintf(progress, "correlate replay: %s, %s, %.0f lines/s\n", count(i+1, "line"), count(c.Stats().Opened, "incident"), float64(i+1)/time.Since(started).Seconds())
		}
		if il.err != nil {
			reject(il.n, il.err)
			continue
		}
		data, err := lines.spool.line(il.off, il.size)
		if err != nil {
			return nil, err
		}
		l, err := parseLine(data) // as it was when read: it was parsed then
		if err != nil {
			reject(il.n, err)
			continue
		}
		envs, err := l.events(c.Now())
		if err != nil {
			reject(il.n, err)
		}
		for _, e := range envs {
			s, ok, err := correlate.SignalOf(e)
			if err != nil {
				reject(il.n, err)
				continue
			}
			if !ok {
				continue
			}
			if sights != nil && s.Kind != correlate.SignalChange {
				sights.sight(c, e, s, l.Time)
			}
			others := waitingBesides(c, s.Fingerprint)
			record(c.Observe(s))
			if waitingBesides(c, s.Fingerprint) < others {
				for fp, r := range waiting {
					settle(c, fp, r)
				}
			} else if r := waiting[s.Fingerprint]; r != nil {
				settle(c, s.Fingerprint, r)
			}
			if s.Kind == correlate.SignalChange {
				continue
			}
			if s.Kind == correlate.SignalAlert {
				alertFP[s.Fingerprint] = true
			}
			if id, ok := c.IncidentOf(s.Fingerprint); ok {
				into := joinedAnomalies
				if s.Kind == correlate.SignalAlert {
					res.Assignments[s.Fingerprint] = id
					into = joined
				}
				mark(into, id, s.Fingerprint)
				res.EventAssignments[e.ID] = id
			} else if s.Kind == correlate.SignalAnomaly {
				first, ok := c.WaitingRun(s.Fingerprint)
				if !ok {
					res.EventAssignments[e.ID] = "unassigned:" + e.ID // the end of nothing held
					continue
				}
				if waiting[s.Fingerprint] == nil {
					waiting[s.Fingerprint] = &waitingRun{first: first}
				}
				waiting[s.Fingerprint].ids = append(waiting[s.Fingerprint].ids, e.ID)
			}
		}
	}
	for _, r := range waiting {
		apart(r)
	}
	// Told as met; listed by their numbers.
	slices.SortStableFunc(res.Rejected, func(a, b LineProblem) int { return a.Line - b.Line })
	// Let every incident run its course.
	record(c.Advance(c.Now().Add(cfg.WithDefaults().QuietPeriod + cfg.WithDefaults().ReopenWindow)))
	for _, st := range c.Incidents() {
		last[st.IncidentID] = st
	}
	// The items of a merged incident belong to the one it went into (and
	// on, if that was merged too).
	follow := func(id string) string {
		// A chain is at most as long as the merges made (a merged
		// incident is gone, so none can be merged into twice).
		for hops := 0; mergedInto[id] != "" && hops < len(mergedInto); hops++ {
			id = mergedInto[id]
		}
		return id
	}
	for _, m := range []map[string]string{res.Assignments, res.EventAssignments} {
		for item, id := range m {
			m[item] = follow(id)
		}
	}
	// Alerts that only ever resolved belong to no incident; give each its
	// own, so that assignments cover every alert that went in.
	for fp := range alertFP {
		if _, ok := res.Assignments[fp]; !ok {
			res.Assignments[fp] = "unassigned:" + fp
		}
	}
	members := map[string]map[string]bool{}
	addMember := func(id, fp string) {
		if members[id] == nil {
			members[id] = map[string]bool{}
		}
		members[id][fp] = true
	}
	for id, fps := range joined {
		for fp := range fps {
			addMember(follow(id), fp)
		}
	}
	for fp, id := range res.Assignments {
		addMember(id, fp)
	}
	// Every anomaly series that joined, not only the members an incident
	// still holds (max_members bounds those).
	anomalies := map[string]map[string]bool{}
	for id, fps := range joinedAnomalies {
		to := follow(id)
		if anomalies[to] == nil {
			anomalies[to] = map[string]bool{}
		}
		maps.Copy(anomalies[to], fps)
	}
	for id, st := range last {
		ri := ReplayIncident{ID: id, Status: st.State, Title: st.Title, OpenedAt: st.OpenedAt, ResolvedAt: st.ResolvedAt,
			Services: st.Services, RootCauses: st.RootCauses, Changes: st.Changes, Team: st.Team, Runbook: st.Runbook, Members: st.MemberCount,
			Timeline: st.Timeline, MergedInto: st.MergedInto}
		// A list, empty for an incident of anomalies alone, never null.
		ri.Alerts = slices.Sorted(maps.Keys(members[id]))
		if ri.Alerts == nil {
			ri.Alerts = []string{}
		}
		if st.MergedInto == "" {
			ri.Anomalies = slices.Sorted(maps.Keys(anomalies[id]))
		}
		res.Incidents = append(res.Incidents, ri)
	}
	sort.Slice(res.Incidents, func(i, j int) bool {
		if !res.Incidents[i].OpenedAt.Equal(res.Incidents[j].OpenedAt) {
			return res.Incidents[i].OpenedAt.Before(res.Incidents[j].OpenedAt)
		}
		return res.Incidents[i].ID < res.Incidents[j].ID
	})
	res.Stats = c.Stats()
	fmt.Fprintf(progress, "correlate replay: %s, %s, %s in %s\n", count(res.Lines, "line"), count(len(alertFP), "alert"), count(len(res.Incidents), "incident"), time.Since(started).Round(time.Millisecond))
	if res.RejectedLines > 0 {
		fmt.Fprintf(progress, "correlate replay: rejected lines: %d (%d told above)\n", res.RejectedLines, len(res.Rejected))
	}
	return res, nil
}

// lineEvents turns one input line into envelopes, with the ingest
// gateway's decoders (the same events the service would get).
func lineEvents(data []byte, watermark time.Time) ([]*event.Envelope, error) {
	l, err := parseLine(data)
	if err != nil {
		return nil, err
	}
	return l.events(watermark)
}

// parseLine reads one input line.
func parseLine(data []byte) (replayLine, error) {
	var l replayLine
	if err := json.Unmarshal(data, &l); err != nil {
		return l, fmt.Errorf("not a JSON object of the replay format: %w", err)
	}
	var err error
	if l.Time, err = lineTime("time", l.RawTime); err != nil {
		return l, err
	}
	if l.Change != nil {
		if l.Change.Time, err = lineTime("change.time", l.Change.RawTime); err != nil {
			return l, err
		}
	}
	return l, nil
}

// lineTime reads the time s of the line's field name as the gateway reads
// an alert's (decode.ParseTime); "" (or null) is none, as a webhook's
// "startsAt": "" is.
func lineTime(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	t, err := decode.ParseTime(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("field %q: %w", name, err)
	}
	return t, nil
}

// events are the envelopes of l (lineEvents).
func (l replayLine) events(watermark time.Time) ([]*event.Envelope, error) {
	switch l.Type {
	case "alertmanager":
		if len(l.Payload) == 0 {
			return nil, errors.New(`type alertmanager: "payload" is required`)
		}
		at := l.Time
		if at.IsZero() {
			// The latest event time so far: the same every replay.
			at = watermark
		}
		return alertmanagerEvents(l.Payload, at)
	case "change":
		if l.Change == nil {
			return nil, errors.New(`type change: "change" is required`)
		}
		// The change's own time is when it happened; the line's time is
		// when the line was sent, taken only when the change has none (as
		// an alert's startsAt wins over its line's time).
		at := l.Change.Time
		if at.IsZero() {
			at = l.Time
		}
		ch := map[string]any{"service": l.Change.Service, "type": l.Change.Kind, "version": l.Change.Version,
			"author": l.Change.Author, "commit": l.Change.Commit, "url": l.Change.URL, "time": at.Format(time.RFC3339Nano)}
		if at.IsZero() {
			return nil, errors.New(`type change: "time" is required, on the line or in "change"`)
		}
		if _, known := decode.ChangeType(l.Change.Kind); l.Change.Kind == "" {
			delete(ch, "type")
		} else if !known {
			// A kind of the producer's own is a change all the same.
			ch["type"] = "other"
			ch["labels"] = map[string]string{"change_kind": l.Change.Kind}
		}
		body, _ := json.Marshal(ch)
		b, err := decode.Changes(body, replayOptions(l.Time))
		if err != nil {
			return nil, fmt.Errorf("change: %w", err)
		}
		return b.Events, nil
	case "event":
		if len(l.Event) == 0 {
			return nil, errors.New(`type event: "event" is required`)
		}
		// An event without an id gets one derived from its content, so a
		// replay is the same every time.
		// A line without a time observes the event at its own time.
		observed := l.Time
		if observed.IsZero() {
			var t struct {
				Time time.Time `json:"time"`
			}
			_ = json.Unmarshal(l.Event, &t)
			observed = t.Time
		}
		e, err := event.DecodeWithID(l.Event, observed, func(e *event.Envelope) string {
			return event.DerivedID(e.Time, "replay", string(l.Event))
		})
		if err != nil {
			return nil, fmt.Errorf("event: %w", err)
		}
		return []*event.Envelope{e}, nil
	case "":
		return nil, errors.New(`"type" is required (alertmanager, change or event)`)
	}
	return nil, fmt.Errorf("type %q: want alertmanager, change or event", l.Type)
}

// replayOptions are the gateway decoders' options for a line observed at
// now. The gateway refuses or re-times events far from its clock because
// the store would drop them; history replayed offline is taken at its own
// times, whenever that was. An alert without startsAt (endsAt when
// resolved) is timed at now, the line's time, when there is one.
func replayOptions(now time.Time) decode.Options {
	// MaxReplayLine bounds a webhook's alerts, not the gateway's count.
	const anyTime = 200 * 365 * 24 * time.Hour
	return decode.Options{Now: now, MaxPast: anyTime, MaxFuture: anyTime, MaxEvents: MaxReplayLine, AlertTimesFromNow: !now.IsZero()}
}

// alertmanagerEvents decodes a webhook with the gateway's decoder. When
// some of its alerts are bad, the others are decoded one by one and
// returned with the error naming the bad ones, so one bad alert does not
// lose a notification's worth.
func alertmanagerEvents(payload []byte, now time.Time) ([]*event.Envelope, error) {
	b, err := decode.Alertmanager(payload, replayOptions(now))
	if err != nil {
		return nil, fmt.Errorf("alertmanager payload: %w", err)
	}
	if len(b.Problems) > 0 {
		// The gateway takes the good alerts of a webhook with bad ones,
		// and so does the replay; the line is told rejected for the rest.
		return b.Events, fmt.Errorf("alertmanager payload: %w", &decode.Error{Problems: b.Problems, Total: b.Skipped[decode.SkippedInvalid]})
	}
	return b.Events, nil
}

// strictYAML decodes data into dst, refusing unknown keys.
func strictYAML(data []byte, dst any) error {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(dst); err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	return nil
}

// boundedLines reads lines of at most limit bytes (without the newline):
// a longer one is read to its end without being kept and told, so that one
// oversized line is a line rejected, not the end of the input.
type boundedLines struct {
	br    *bufio.Reader
	limit int
	buf   []byte
}

func newBoundedLines(r io.Reader, limit int) *boundedLines {
	return &boundedLines{br: bufio.NewReaderSize(r, 64<<10), limit: limit}
}

// next returns the next line and whether it was over the limit (then
// empty); io.EOF after the last.
func (b *boundedLines) next() (line []byte, tooLong bool, err error) {
	b.buf = b.buf[:0]
	read := false
	for {
		chunk, err := b.br.ReadSlice('\n')
		read = read || len(chunk) > 0
		if !tooLong {
			if len(b.buf)+len(bytes.TrimSuffix(bytes.TrimSuffix(chunk, []byte("\n")), []byte("\r"))) > b.limit {
				tooLong, b.buf = true, b.buf[:0]
			} else {
				b.buf = append(b.buf, chunk...)
			}
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && !read:
			return nil, false, io.EOF
		case err != nil && err != io.EOF:
			return nil, false, err
		}
		return bytes.TrimSuffix(bytes.TrimSuffix(b.buf, []byte("\n")), []byte("\r")), tooLong, nil
	}
}

// count is n and its noun, in the singular for one ("1 incident").
func count[N int | uint64](n N, noun string) string {
	return plural(int(n), noun, noun+"s")
}
