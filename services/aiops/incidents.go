package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/httpapi"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/services/correlator"
)

const incidentsUsage = `usage:
  aiops incidents list [-status S] [-service S] [-team T] [-severity S] [-since T] [-until T] [-limit N] [-json]
      the incidents the correlator holds, the latest opened first, one a
      line (id, state, severity, opened, service, team, title); status is
      open, acknowledged, resolved or active (open or acknowledged); since
      and until (RFC 3339) bound the opening; at most -limit (50), pages
      followed; -json prints them as the API answers
  aiops incidents show ID [-json] [-page FILE]
      one incident: its root-cause candidates, members, changes and timeline;
      -page also draws it as a page (HTML, self-contained): a lane per
      member, the changes, the acknowledgement and resolution
  aiops incidents ack|resolve ID -by NAME
  aiops incidents assign ID -by NAME -to ASSIGNEE
  aiops incidents comment ID -by NAME -text TEXT
      a command, applied once the correlator stored it; prints the new state

Each reads the incidents API of the configuration aiops run uses
(-config FILE, -set key=value, AIOPS_* variables): correlator.api.listen
(127.0.0.1:8081) and its token (correlator.api.token_file, the token in
AIOPS_CORRELATOR__API__TOKEN, or the generated data/api-token). -url
reaches an API elsewhere (http://host:port).
`

// incidentsCommand is `aiops incidents`: the incidents API from a shell.
func incidentsCommand(ctx context.Context, args []string) error {
	return incidentsMain(ctx, args, os.Stdout, os.Stderr)
}

// incidentsPage is how many incidents one request asks for (the API's
// most; a test lowers it to see pages followed).
var incidentsPage = correlator.MaxListed

func incidentsMain(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, incidentsUsage)
		if len(args) == 0 {
			return service.Usage(errors.New("incidents: want list, show, ack, resolve, assign or comment"))
		}
		return nil
	}
	action, rest := args[0], args[1:]
	var id string
	switch action {
	case "list":
	case "show", "ack", "resolve", "assign", "comment":
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			fmt.Fprint(stderr, incidentsUsage)
			return service.Usage(fmt.Errorf("incidents %s: the incident id comes first: aiops incidents %s ID", action, action))
		}
		id, rest = rest[0], rest[1:]
	default:
		fmt.Fprint(stderr, incidentsUsage)
		return service.Usage(fmt.Errorf("incidents: unknown action %q: want list, show, ack, resolve, assign or comment", action))
	}

	fs := flag.NewFlagSet("aiops incidents "+action, flag.ContinueOnError)
	fs.SetOutput(stderr)
	base := fs.String("url", "", "the incidents API's URL (default: http:// and correlator.api.listen)")
	asJSON := fs.Bool("json", false, "print the API's JSON")
	filters := map[string]*string{}
	limit := 50
	if action == "list" {
		for _, f := range []struct{ name, usage string }{
			{"status", "only incidents of this status: open, acknowledged, resolved or active (open or acknowledged)"},
			{"service", "only incidents of this service"},
			{"team", "only incidents of this team"},
			{"severity", "only incidents of this severity"},
			{"since", "only incidents opened at or after this time (RFC 3339)"},
			{"until", "only incidents opened at or before this time (RFC 3339)"},
		} {
			filters[f.name] = fs.String(f.name, "", f.usage)
		}
		fs.IntVar(&limit, "limit", limit, "list at most this many")
	}
	var page string
	if action == "show" {
		fs.StringVar(&page, "page", "", "also write the incident as an HTML page to this file")
	}
	var by, to, text string
	if action != "list" && action != "show" {
		fs.StringVar(&by, "by", "", "who gives the command (required)")
	}
	if action == "assign" {
		fs.StringVar(&to, "to", "", "whom the incident is assigned to (required)")
	}
	if action == "comment" {
		fs.StringVar(&text, "text", "", "the comment (required)")
	}
	opts, err := platform.ParseFlagSet(fs, rest)
	if err != nil {
		return err
	}
	if limit < 1 {
		return service.Usage(fmt.Errorf("incidents list: -limit %d, want 1 or more", limit))
	}
	for flagName, v := range map[string]string{"by": by, "to": to, "text": text} {
		if fs.Lookup(flagName) != nil && strings.TrimSpace(v) == "" {
			return service.Usage(fmt.Errorf("incidents %s: -%s is required", action, flagName))
		}
	}
	var natsCfg EmbeddedNATSConfig
	cfg := RunConfig(&natsCfg)
	if err := cfg.LoadWith(opts); err != nil {
		return err
	}
	ccfg, _ := platform.SectionOf[correlator.Config](cfg, "correlator")
	c, err := newIncidentsClient(ccfg.API, *base)
	if err != nil {
		return err
	}

	switch action {
	case "list":
		q := url.Values{}
		for name, v := range filters {
			if *v != "" {
				q.Set(name, *v)
			}
		}
		return c.list(ctx, q, limit, *asJSON, stdout, stderr)
	case "show":
		var st correlate.State
		raw, err := c.do(ctx, "GET", "/v1/incidents/"+url.PathEscape(id), "", nil, &st)
		if err != nil {
			return err
		}
		if page != "" {
			if err := writeIncidentPageFile(page, st, time.Now()); err != nil {
				return err
			}
			fmt.Fprintf(stderr, "the incident's page: %s\n", page)
		}
		if *asJSON {
			_, err = stdout.Write(raw)
			return err
		}
		return showIncident(stdout, st)
	default:
		body := map[string]string{"by": by}
		if to != "" {
			body["assignee"] = to
		}
		if text != "" {
			body["text"] = text
		}
		var answer struct {
			correlate.State
			AppliedTo string `json:"applied_to"`
		}
		raw, err := c.command(ctx, "/v1/incidents/"+url.PathEscape(id)+"/"+action, body, &answer, stderr)
		if err != nil {
			return err
		}
		if *asJSON {
			_, err = stdout.Write(raw)
			return err
		}
		if answer.AppliedTo != "" {
			fmt.Fprintf(stderr, "incident %s was merged into %s: the command applied there\n", id, answer.IncidentID)
		}
		return printList(stdout, []correlate.State{answer.State})
	}
}

// apiError is an answer of the API that is not a 2xx.
type apiError struct {
	status     int
	msg        string
	retryAfter time.Duration // its Retry-After; -1 when it gave none
}

func (e *apiError) Error() string { return e.msg }

// lostAnswer is a request that reached the API, or may have, whose answer
// did not come (the connection cut): it may have been applied.
type lostAnswer struct{ err error }

func (e *lostAnswer) Error() string { return e.err.Error() }
func (e *lostAnswer) Unwrap() error { return e.err }

// commandTries bounds the sends of one command answered "not stored yet"
// (503); before each new one it waits the answer's Retry-After, at most
// maxCommandWait (commandWait when it gave none).
const (
	commandTries   = 5
	commandWait    = 3 * time.Second
	maxCommandWait = 5 * time.Second
)

// command posts a command under an Idempotency-Key of its own, so that
// it applies once however often it is sent: one answered "not stored yet"
// (503: the correlator applied it, its checkpoint not saved yet, or
// could not apply it in time), or whose answer was lost, is sent again, a
// few times, rather than left for a person to run again, which would
// apply it twice.
func (c *incidentsClient) command(ctx context.Context, path string, body, dst any, stderr io.Writer) ([]byte, error) {
	key := "cli-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-" + strconv.FormatUint(rand.Uint64(), 36)
	for try := 1; ; try++ {
		raw, err := c.do(ctx, "POST", path, key, body, dst)
		var ae *apiError
		var lost *lostAnswer
		unavailable := errors.As(err, &ae) && ae.status == http.StatusServiceUnavailable
		if !unavailable && !errors.As(err, &lost) || try == commandTries || ctx.Err() != nil {
			return raw, err
		}
		wait := commandWait
		if unavailable && ae.retryAfter >= 0 {
			wait = min(ae.retryAfter, maxCommandWait)
		}
		fmt.Fprintf(stderr, "%s; sending it again in %s (it applies once)\n", err, wait)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(wait):
		}
	}
}

// incidentsClient calls the incidents API with its bearer token.
type incidentsClient struct {
	base, token string
	// shown is base as messages show it: a password in -url redacted.
	shown string
	http  *http.Client
}

// newIncidentsClient reaches the API of cfg (or base, when given) with the
// token cfg names. It never creates a token: one that does not exist yet
// means no aiops run made it here.
func newIncidentsClient(cfg httpapi.Config, base string) (*incidentsClient, error) {
	if base == "" {
		if cfg.Listen == "" {
			return nil, service.Usage(errors.New("incidents: correlator.api.listen is empty (the API is off): set it, or give -url"))
		}
		host, port, err := net.SplitHostPort(cfg.Listen)
		if err != nil {
			return nil, service.Usage(fmt.Errorf("incidents: correlator.api.listen: %q is not host:port", cfg.Listen))
		}
		// An API listening on every address is reached on this machine's.
		switch host {
		case "", "0.0.0.0":
			host = "127.0.0.1"
		case "::":
			host = "::1"
		}
		base = "http://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, service.Usage(fmt.Errorf("incidents: -url %q: want http://host:port or https://host:port", base))
	}
	token := cfg.Token
	if token == "" {
		file := cfg.TokenFile
		if file == "" {
			file = cfg.GenerateTokenFile
		}
		if file == "" {
			return nil, service.Usage(errors.New("incidents: no API token configured: set correlator.api.token_file or AIOPS_CORRELATOR__API__TOKEN"))
		}
		// As every secret file is read: bounded (a file named by
		// mistake is not read whole, nor sent in a header), an empty one
		// refused rather than sent as no token.
		raw, err := config.ReadSecretFile(file)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && file == cfg.GenerateTokenFile {
				return nil, service.Usage(fmt.Errorf("incidents: no API token in %s: aiops run makes it at its first start (run it from this folder, or give -config, -set correlator.api.token_file=FILE or AIOPS_CORRELATOR__API__TOKEN)", file))
			}
			return nil, fmt.Errorf("incidents: the API token: %w", err)
		}
		token = strings.TrimSpace(raw)
	}
	return &incidentsClient{base: strings.TrimRight(base, "/"), shown: strings.TrimRight(u.Redacted(), "/"), token: token, http: &http.Client{Timeout: time.Minute}}, nil
}

// do sends one request and decodes a 2xx answer into dst, returning the
// answer as it came; an error answer is returned as the API's own words.
func (c *incidentsClient) do(ctx context.Context, method, path, key string, body any, dst any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return nil, fmt.Errorf("incidents: no incidents API at %s (is aiops run running? -url names another): %w", c.shown, err)
		}
		return nil, &lostAnswer{fmt.Errorf("incidents: %w", err)}
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, &lostAnswer{fmt.Errorf("incidents: reading the answer: %w", err)}
	}
	if resp.StatusCode/100 != 2 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) != nil || e.Error == "" {
			// Not the API's answer (a proxy's page): its start.
			e.Error = strings.TrimSpace(string(raw[:min(len(raw), 512)]))
		}
		ae := &apiError{status: resp.StatusCode, msg: fmt.Sprintf("incidents: %s %s: %s: %s", method, path, resp.Status, oneLine(e.Error)), retryAfter: -1}
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs >= 0 {
			ae.retryAfter = time.Duration(secs) * time.Second
		}
		return nil, ae
	}
	if err := json.Unmarshal(raw, dst); err != nil {
		return nil, fmt.Errorf("incidents: %s %s: the answer is not what the API gives: %w", method, path, err)
	}
	return raw, nil
}

// list prints at most limit incidents, following the API's cursors.
func (c *incidentsClient) list(ctx context.Context, q url.Values, limit int, asJSON bool, stdout, stderr io.Writer) error {
	var all []json.RawMessage
	var states []correlate.State
	seen := map[string]bool{}
	more := false
	for {
		q.Set("limit", strconv.Itoa(min(limit-len(states), incidentsPage)))
		var page struct {
			Incidents  []json.RawMessage `json:"incidents"`
			Truncated  bool              `json:"truncated"`
			NextCursor string            `json:"next_cursor"`
		}
		if _, err := c.do(ctx, "GET", "/v1/incidents?"+q.Encode(), "", nil, &page); err != nil {
			return err
		}
		for _, raw := range page.Incidents {
			var st correlate.State
			if err := json.Unmarshal(raw, &st); err != nil {
				return fmt.Errorf("incidents: an incident the API listed: %w", err)
			}
			// A merge between two pages moves an incident's opening
			// earlier, past the cursor: it comes again.
			if seen[st.IncidentID] {
				continue
			}
			seen[st.IncidentID] = true
			all, states = append(all, raw), append(states, st)
		}
		more = page.Truncated
		if !more || len(states) >= limit || page.NextCursor == "" {
			break
		}
		q.Set("cursor", page.NextCursor)
	}
	if asJSON {
		out, _ := json.MarshalIndent(map[string]any{"incidents": all, "truncated": more}, "", "  ")
		_, err := stdout.Write(append(out, '\n'))
		return err
	}
	if err := printList(stdout, states); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(stderr, "%d shown, more match: raise -limit or narrow the filters\n", len(states))
	}
	return nil
}

// printList prints one incident a line, in aligned columns.
func printList(w io.Writer, states []correlate.State) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATE\tSEVERITY\tOPENED\tSERVICE\tTEAM\tTITLE")
	for _, st := range states {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", st.IncidentID, st.State, orDash(string(st.Severity)),
			st.OpenedAt.UTC().Format(time.RFC3339), orDash(st.Service), orDash(st.Team), oneLine(st.Title))
	}
	return tw.Flush()
}

// showIncident prints one incident for a person: what it is, who owns
// it, why the correlator thinks what it thinks, and what happened.
func showIncident(w io.Writer, st correlate.State) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %s\n", st.IncidentID, oneLine(st.Title))
	fmt.Fprintf(&b, "state     %s", st.State)
	if st.Assignee != "" {
		fmt.Fprintf(&b, ", assigned to %s", oneLine(st.Assignee))
	}
	fmt.Fprintf(&b, "\nseverity  %s\nopened    %s\n", orDash(string(st.Severity)), st.OpenedAt.UTC().Format(time.RFC3339))
	if !st.AcknowledgedAt.IsZero() {
		fmt.Fprintf(&b, "acked     %s\n", st.AcknowledgedAt.UTC().Format(time.RFC3339))
	}
	if !st.ResolvedAt.IsZero() {
		fmt.Fprintf(&b, "resolved  %s\n", st.ResolvedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(&b, "service   %s (team %s, owner %s, tier %s)\n", orDash(st.Service), orDash(st.Team), orDash(st.Owner), orDash(st.Tier))
	if st.Runbook != "" {
		fmt.Fprintf(&b, "runbook   %s\n", oneLine(st.Runbook))
	}
	fmt.Fprintf(&b, "services  %s\n", strings.Join(st.Services, ", "))
	if len(st.RootCauses) > 0 {
		b.WriteString("\nroot-cause candidates\n")
		for i, rc := range st.RootCauses {
			fmt.Fprintf(&b, "  %d. %s: %s\n", i+1, rc.Service, oneLine(strings.Join(rc.Reasons, "; ")))
		}
	}
	fmt.Fprintf(&b, "\nmembers (%d, %d firing)\n", st.MemberCount, st.Firing)
	for _, m := range st.Members {
		state := "resolved"
		if m.Firing {
			state = "firing"
		}
		fmt.Fprintf(&b, "  %-8s %s %s on %s, %d since %s", state, m.Kind, oneLine(m.Name), m.Service, m.Count, m.FirstSeen.UTC().Format(time.RFC3339))
		if m.Reading != nil {
			fmt.Fprintf(&b, ", value %g (expected %g, band %g to %g)", m.Value, m.Expected, m.Lower, m.Upper)
		}
		b.WriteString("\n")
	}
	if len(st.Changes) > 0 {
		b.WriteString("\nchanges\n")
		for _, ch := range st.Changes {
			fmt.Fprintf(&b, "  %s %s %s %s", ch.Time.UTC().Format(time.RFC3339), ch.Service, ch.Type, oneLine(ch.Version))
			if ch.Author != "" {
				fmt.Fprintf(&b, " by %s", oneLine(ch.Author))
			}
			b.WriteString("\n")
		}
	}
	if len(st.Timeline) > 0 {
		b.WriteString("\ntimeline\n")
		for _, e := range st.Timeline {
			fmt.Fprintf(&b, "  %s  %s\n", e.Time.UTC().Format(correlate.TimelineTime), oneLine(e.What))
		}
	}
	for _, cm := range st.Comments {
		fmt.Fprintf(&b, "\ncomment by %s at %s\n", oneLine(cm.By), cm.Time.UTC().Format(time.RFC3339))
		for _, line := range strings.Split(cm.Text, "\n") {
			fmt.Fprintf(&b, "  %s\n", oneLine(line))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// oneLine keeps a value from breaking the line it is printed on, or the
// terminal: what is not a graphic character (a newline in a title, an
// escape sequence, a bidirectional override that shows a name reversed)
// is shown escaped. Anyone who can post an alert or a comment chooses
// these texts.
func oneLine(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsGraphic(r) }) {
		return s
	}
	q := strconv.QuoteToGraphic(s)
	return q[1 : len(q)-1]
}
