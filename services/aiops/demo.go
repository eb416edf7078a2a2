package aiops

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/notify/webhook"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/store"
)

// demoCatalog is the example catalog of pipelines/catalog.yaml, used when
// the demo runs outside the repository (TestDemoCatalogIsTheExample keeps
// the two equal).
const demoCatalog = `services:
  web:          {owner: ana, team: storefront, tier: "1", runbook: "https://runbooks.example.com/web", depends_on: [checkout, search]}
  checkout:     {owner: bo, team: payments, tier: "1", runbook: "https://runbooks.example.com/checkout", depends_on: [payments, cart]}
  payments:     {owner: cy, team: payments, tier: "1", runbook: "https://runbooks.example.com/payments", depends_on: [payments-db]}
  payments-db:  {owner: di, team: dba, tier: "0", runbook: "https://runbooks.example.com/postgres", depends_on: []}
  cart:         {owner: ed, team: storefront, tier: "2", depends_on: []}
  search:       {owner: fu, team: discovery, tier: "2", depends_on: [search-index]}
  search-index: {owner: gi, team: discovery, tier: "2", runbook: "https://runbooks.example.com/elasticsearch", depends_on: []}
`

// demoDatabase is what the demo's database names must start with: it drops
// and recreates the database, so it must never be one holding real data.
var demoDatabase = regexp.MustCompile(`^aiops_demo[A-Za-z0-9_]*$`)

// maxWebhookBody bounds what the demo's receiver reads of one request.
const maxWebhookBody = 1 << 20

func demoCommand(ctx context.Context, args []string) error { return runDemo(ctx, args, os.Stdout) }

// runDemo is `aiops demo`: the whole pipeline in this process (embedded
// NATS on free ports, ClickHouse from the same configuration `aiops run`
// reads, in a database of its own), a local receiver of signed webhooks,
// and the scenario of demo_scenario.go sent through the gateway step by
// step. It returns nil only when the expected incidents were opened,
// delivered, resolved and delivered again, every signature verified.
func runDemo(ctx context.Context, args []string, w io.Writer) error {
	fs := flag.NewFlagSet("aiops demo", flag.ContinueOnError)
	opts := config.Flags(fs, platform.EnvPrefix)
	out := fs.String("out", "data/demo", "folder for timeline.html, webhooks.jsonl and pipeline.log")
	database := fs.String("database", "aiops_demo", "the ClickHouse database the demo drops and recreates (its name starts with aiops_demo)")
	timeout := fs.Duration("timeout", 2*time.Minute, "how long one step may take before the demo gives up")
	seed := fs.Uint64("seed", 1, "the scenario's random seed")
	if err := fs.Parse(args); err != nil {
		return service.Usage(err)
	}
	if fs.NArg() > 0 {
		return service.Usage(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if !demoDatabase.MatchString(*database) {
		return service.Usage(fmt.Errorf("%w: -database %q: the demo drops and recreates it, so its name must match %s", config.ErrInvalidConfig, *database, demoDatabase))
	}
	if *timeout <= 0 || *timeout > time.Hour {
		return service.Usage(fmt.Errorf("%w: -timeout %v: want more than 0 and at most 1h", config.ErrInvalidConfig, *timeout))
	}
	opts.EnvIgnore = platform.EnvIgnore
	opts.FileKinds = platform.FileKinds

	// A signal stops the pipeline (its service.Run catches it too), and it
	// must stop the demo as well, which would otherwise post to a gateway
	// that is gone or poll for what the pipeline will never write.
	sigCtx, stopSignals := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stopSignals()
	demoCtx, abort := context.WithCancelCause(sigCtx)
	defer abort(nil)
	d := &demo{w: w, timeout: *timeout, start: time.Now(), abort: abort}
	err := d.run(demoCtx, *opts, *out, *database, *seed)
	if err != nil && ctx.Err() == nil {
		if sigCtx.Err() != nil {
			// Stopped on a signal: exit code 0, as every command (docs/operations.md).
			d.say("interrupted: the pipeline was stopped and the demo did not finish")
			return nil
		}
		if demoCtx.Err() != nil {
			return context.Cause(demoCtx) // the pipeline stopped: the root of what failed after
		}
	}
	return err
}

// run is the demo after its flags were read.
func (d *demo) run(ctx context.Context, opts config.Options, out, database string, seed uint64) error {
	// The user's configuration says where ClickHouse is (AIOPS_STORE__DSN,
	// -set store.dsn=..., -config FILE), as for `aiops run`.
	// Only the store is taken from it: files the demo replaces with its
	// own (the detector's pipeline, relative to where `aiops run` runs) are
	// not read.
	var userNATS EmbeddedNATSConfig
	userCfg := RunConfig(&userNATS)
	userOpts := opts
	userOpts.Sets = append(slices.Clone(opts.Sets), "detector.pipeline=")
	if err := userCfg.LoadWith(userOpts); err != nil {
		return err
	}
	storeCfg := userCfg.Platform().Store
	demoDSN, err := withDatabase(storeCfg.DSN, database)
	if err != nil {
		return service.Usage(err)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return fmt.Errorf("-out: %w", err)
	}
	tmp, err := os.MkdirTemp("", "aiops-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	d.say("ClickHouse %s: recreating database %s", storeCfg.Redacted(), database)
	if err := recreateDatabase(ctx, storeCfg, database); err != nil {
		return fmt.Errorf("demo: %w (make demo starts a local ClickHouse; or name one with AIOPS_STORE__DSN / -set store.dsn=...)", err)
	}
	demoStore := storeCfg
	demoStore.DSN = demoDSN
	st, err := store.Open(ctx, demoStore, zerolog.Nop())
	if err != nil {
		return err
	}
	defer st.Close()
	d.st = st

	// The receiver of the notifier's signed webhooks.
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(tmp, "webhook-secret"), []byte(webhook.SecretPrefix+base64.StdEncoding.EncodeToString(secret)+"\n"), 0o600); err != nil {
		return err
	}
	d.recv = &demoReceiver{secrets: [][]byte{secret}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("webhook receiver: %w", err)
	}
	srv := &http.Server{Handler: d.recv, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	routes := filepath.Join(tmp, "alertmanager.yml")
	if err := os.WriteFile(routes, []byte(demoRoutes("http://"+ln.Addr().String())), 0o600); err != nil {
		return err
	}
	catalog := DefaultCatalog
	if _, err := os.Stat(catalog); err != nil {
		catalog = filepath.Join(tmp, "catalog.yaml")
		if err := os.WriteFile(catalog, []byte(demoCatalog), 0o600); err != nil {
			return err
		}
	}
	d.say("webhook receiver on http://%s (Standard Webhooks signatures checked with a fresh secret); routes in an Alertmanager file: team discovery to discovery-oncall, the rest to oncall", ln.Addr())

	logFile, err := os.Create(filepath.Join(out, "pipeline.log"))
	if err != nil {
		return err
	}
	defer logFile.Close()
	stop, err := d.startPipeline(ctx, opts, tmp, demoDSN, routes, catalog, logFile)
	if err != nil {
		return err
	}
	defer stop()

	sc := newDemoScenario(time.Now(), seed)
	if err := d.play(ctx, sc); err != nil {
		return err
	}
	incidents, err := d.report(ctx, sc)
	if err != nil {
		return err
	}
	if err := d.writeOutputs(ctx, sc, out, incidents); err != nil {
		return err
	}
	d.say("done in %s: %d incidents opened, delivered, resolved and delivered again; every signature verified", time.Since(d.start).Round(time.Second), len(incidents))
	return nil
}

// demo is one run's state.
type demo struct {
	w       io.Writer
	timeout time.Duration
	start   time.Time
	st      *store.Store
	recv    *demoReceiver
	// abort ends the demo's context once the pipeline stopped.
	abort context.CancelCauseFunc

	ingestURL, apiURL     string
	ingestToken, apiToken string
}

func (d *demo) say(format string, args ...any) {
	fmt.Fprintf(d.w, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

// withDatabase is dsn with its database replaced.
func withDatabase(dsn, database string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", fmt.Errorf("%w: store.dsn: not a URL", config.ErrInvalidConfig)
	}
	u.Path = "/" + database
	return u.String(), nil
}

// recreateDatabase drops and creates the demo's database, so every run
// starts empty and its queries see only its own rows.
func recreateDatabase(ctx context.Context, cfg store.Config, database string) error {
	st, err := store.Open(ctx, cfg, zerolog.Nop())
	if err != nil {
		return err
	}
	defer st.Close()
	// The name matched demoDatabase: letters, digits and underscores only.
	for _, q := range []string{"DROP DATABASE IF EXISTS " + database, "CREATE DATABASE " + database} {
		if err := st.Conn.Exec(ctx, q); err != nil {
			return fmt.Errorf("store: %s: %w", q, err)
		}
	}
	return nil
}

// demoRoutes is the notifier's Alertmanager configuration: every incident
// to oncall, the discovery team's to discovery-oncall, both signed. The
// timers are short so the demo need not wait for them.
func demoRoutes(base string) string {
	return `route:
  receiver: oncall
  group_wait: 1s
  group_interval: 5s
  repeat_interval: 4h
  routes:
  - matchers: [team="discovery"]
    receiver: discovery-oncall
receivers:
- name: oncall
  aiops_webhook_configs:
  - url: ` + base + `/hooks/oncall
    secret_file: webhook-secret
- name: discovery-oncall
  aiops_webhook_configs:
  - url: ` + base + `/hooks/discovery-oncall
    secret_file: webhook-secret
`
}

// demoCredentials are the variables of the secrets of the demo's own
// listeners, which only the environment sets: the demo generates its own
// and reads them from its files, so a user's (exported for `aiops run`)
// must not replace them.
var demoCredentials = []string{"AIOPS_INGEST__TOKENS", "AIOPS_CORRELATOR__API__TOKEN", "AIOPS_NOTIFIER__API__TOKEN"}

// startPipeline runs `aiops run`'s components on free ports with the
// demo's files, and returns once /readyz answers. stop drains it. Should
// the pipeline stop on its own after that, the demo's context ends with
// the reason.
func (d *demo) startPipeline(ctx context.Context, opts config.Options, tmp, dsn, routes, catalog string, logs io.Writer) (stop func(), err error) {
	userSets := opts.Sets
	environ := opts.Environ
	if environ == nil {
		environ = os.Environ()
	}
	opts.Environ = slices.DeleteFunc(slices.Clone(environ), func(kv string) bool {
		name, _, _ := strings.Cut(kv, "=")
		return slices.ContainsFunc(demoCredentials, func(c string) bool { return strings.EqualFold(name, c) })
	})
	for attempt := 1; ; attempt++ {
		ports := make([]string, 5)
		for i := range ports {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			ports[i] = l.Addr().String()
			l.Close()
		}
		natsAddr, adminAddr, ingestAddr, apiAddr, silencesAddr := ports[0], ports[1], ports[2], ports[3], ports[4]
		opts.Sets = append(slices.Clone(userSets),
			"nats.embedded=true",
			"nats.listen="+natsAddr,
			"nats.store_dir="+filepath.Join(tmp, "nats"),
			"nats.generate_token_file="+filepath.Join(tmp, "nats-token"),
			"admin.listen="+adminAddr,
			"ingest.listen="+ingestAddr,
			"ingest.tokens_file=",
			"ingest.generate_token_file="+filepath.Join(tmp, "ingest-token"),
			"correlator.api.listen="+apiAddr,
			"correlator.api.token_file=",
			"correlator.api.generate_token_file="+filepath.Join(tmp, "api-token"),
			"correlator.catalog="+catalog,
			"notifier.routes="+routes,
			"notifier.api.listen="+silencesAddr,
			"notifier.api.token_file=",
			"notifier.api.generate_token_file="+filepath.Join(tmp, "api-token"),
			"store.dsn="+dsn,
			// Rows reach ClickHouse within 200 ms, and the log miner
			// counts errors every 2 s instead of every minute, so the
			// burst is found while the demo waits. The scenario sends
			// the last minutes at once, its timeouts timed up to 4
			// minutes ago: they count, in the interval they are mined in,
			// only when that lateness is allowed.
			"writer.max_age=200ms",
			"logminer.interval=2s",
			"logminer.max_lateness=10m",
			// The recovery's samples are stamped up to ten minutes
			// ahead, sent at once: scored, not left out as a producer's
			// clock running ahead.
			"detector.max_event_future=15m",
			"detector.pipeline=",
		)
		var natsCfg EmbeddedNATSConfig
		cfg := RunConfig(&natsCfg)
		if err := cfg.LoadWith(opts); err != nil {
			return nil, err
		}
		pctx, cancel := context.WithCancel(ctx)
		finished := make(chan struct{})
		var runErr error
		go func() {
			defer close(finished)
			runErr = runLoaded(pctx, cfg, natsCfg, nil, platform.WithLogOutput(logs))
		}()
		stop := func() {
			cancel()
			select {
			case <-finished:
				if runErr != nil {
					d.say("pipeline stopped with %v", runErr)
				}
			case <-time.After(40 * time.Second):
				d.say("pipeline did not stop within 40s")
			}
		}
		if err := demoWaitReady(adminAddr, finished, &runErr); err != nil {
			stop()
			if strings.Contains(err.Error(), "address already in use") && attempt < 5 {
				continue
			}
			return nil, err
		}
		// Everything the demo waits for comes from the pipeline: once it
		// stopped (a component failed, a signal), waiting on is pointless.
		// Stopped by stop (pctx cancelled: the demo is ending, perhaps on
		// an error of its own), it is no cause: the demo's error stands.
		go func() {
			<-finished
			if pctx.Err() == nil {
				d.abort(fmt.Errorf("demo: the pipeline stopped: %v (see pipeline.log)", runErr))
			}
		}()
		d.say("pipeline running: every service of `aiops run` on an embedded NATS (nats://%s), ClickHouse database %s; its log in pipeline.log", natsAddr, strings.TrimPrefix(mustURL(dsn).Path, "/"))
		d.ingestURL, d.apiURL = "http://"+ingestAddr, "http://"+apiAddr
		if d.ingestToken, err = config.ReadSecretFile(filepath.Join(tmp, "ingest-token")); err != nil {
			stop()
			return nil, err
		}
		if d.apiToken, err = config.ReadSecretFile(filepath.Join(tmp, "api-token")); err != nil {
			stop()
			return nil, err
		}
		return stop, nil
	}
}

func mustURL(s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		return &url.URL{}
	}
	return u
}

// demoWaitReady waits until the admin server says the pipeline is ready
// (it listens once every component was built), or says why the pipeline
// stopped (*runErr, once finished is closed).
func demoWaitReady(adminAddr string, finished <-chan struct{}, runErr *error) error {
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + adminAddr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-finished:
			return fmt.Errorf("the pipeline stopped: %v", *runErr)
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the pipeline is not ready after 60s: %v", err)
		}
	}
}

// post sends one body to the gateway and wants 200.
func (d *demo) post(ctx context.Context, path, contentType string, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.ingestURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("Authorization", "Bearer "+d.ingestToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %d %s", path, resp.StatusCode, bytes.TrimSpace(answer))
	}
	return nil
}

func (d *demo) send(ctx context.Context, p demoPhase) error {
	if len(p.Events) > 0 {
		body, err := ndjson(p.Events)
		if err != nil {
			return err
		}
		if err := d.post(ctx, "/v1/events", "application/x-ndjson", body); err != nil {
			return err
		}
	}
	if len(p.Changes) > 0 {
		body, err := json.Marshal(p.Changes)
		if err != nil {
			return err
		}
		if err := d.post(ctx, "/v1/changes", "application/json", body); err != nil {
			return err
		}
	}
	for _, a := range p.Alerts {
		body, err := json.Marshal(a)
		if err != nil {
			return err
		}
		if err := d.post(ctx, "/v1/alertmanager", "application/json", body); err != nil {
			return err
		}
	}
	return nil
}

// waitFor polls check until it reports done, or fails after the step's
// timeout naming what was still missing.
func (d *demo) waitFor(ctx context.Context, what string, check func(ctx context.Context) (done bool, missing string, err error)) error {
	deadline := time.Now().Add(d.timeout)
	for {
		done, missing, err := check(ctx)
		if err == nil && done {
			return nil
		}
		if time.Now().After(deadline) {
			if err != nil {
				missing += " (" + err.Error() + ")"
			}
			return fmt.Errorf("demo: %s: not done after %v: %s", what, d.timeout, missing)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// waitForSoft is waitFor for what is nice to have: it reports whether
// check passed within limit.
func (d *demo) waitForSoft(ctx context.Context, limit time.Duration, check func(ctx context.Context) (bool, string, error)) bool {
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		if done, _, err := check(ctx); err == nil && done {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(300 * time.Millisecond):
		}
	}
	return false
}

func (d *demo) count(ctx context.Context, query string, args ...any) (uint64, error) {
	var n uint64
	err := d.st.Conn.QueryRow(ctx, query, args...).Scan(&n)
	return n, err
}

// atLeast is a check that query counts at least want rows.
func (d *demo) atLeast(want uint64, label, query string, args ...any) func(ctx context.Context) (bool, string, error) {
	return func(ctx context.Context) (bool, string, error) {
		n, err := d.count(ctx, query, args...)
		return err == nil && n >= want, fmt.Sprintf("%s: %d of %d", label, n, want), err
	}
}

// play sends each phase and waits for what it must cause.
func (d *demo) play(ctx context.Context, sc demoScenario) error {
	first, last := sc.span()
	d.say("scenario: %s to %s (event time; the recovery is timed up to 10 minutes ahead so the demo need not wait for it)",
		first.Format("15:04"), last.Format("15:04"))
	for i, p := range sc.Phases {
		d.say("step %d/%d: %s", i+1, len(sc.Phases), p.Title)
		if err := d.send(ctx, p); err != nil {
			return fmt.Errorf("demo: step %d: %w", i+1, err)
		}
		var err error
		switch i {
		case 0:
			err = d.waitFor(ctx, "history stored", d.atLeast(uint64(countKind(p.Events, "metric")), "latency samples in metric_samples",
				"SELECT count() FROM metric_samples FINAL WHERE name = ?", demoMetric))
			if err == nil {
				d.say("  stored: %d latency samples, %d log lines", countKind(p.Events, "metric"), countKind(p.Events, "log"))
			}
		case 1:
			err = d.waitFor(ctx, "deploy stored", d.atLeast(1, "changes", "SELECT count() FROM changes FINAL WHERE service = 'payments'"))
		case 2:
			err = d.waitFor(ctx, "anomalies found", func(ctx context.Context) (bool, string, error) {
				latency, err := d.count(ctx, "SELECT count() FROM anomalies FINAL WHERE service = 'payments' AND metric = ?", demoMetric)
				if err != nil {
					return false, "", err
				}
				burst, err := d.count(ctx, "SELECT count() FROM anomalies FINAL WHERE service = 'payments' AND detector = 'logminer.error_burst'")
				return latency > 0 && burst > 0, fmt.Sprintf("%d latency anomalies and %d error bursts on payments, want one of each", latency, burst), err
			})
			if err == nil {
				var lines []string
				rows, qerr := d.st.Conn.Query(ctx, "SELECT service, metric, detector, count() FROM anomalies FINAL GROUP BY service, metric, detector ORDER BY service, metric")
				if qerr == nil {
					for rows.Next() {
						var svc, metric, det string
						var n uint64
						if rows.Scan(&svc, &metric, &det, &n) == nil {
							lines = append(lines, fmt.Sprintf("%s %s (%s) ×%d", svc, metric, det, n))
						}
					}
					rows.Close()
				}
				d.say("  anomalies so far: %s", strings.Join(lines, "; "))
			}
		case 3:
			err = d.waitFor(ctx, "incidents opened and delivered", d.incidentsDone(false))
		case 4:
			err = d.waitFor(ctx, "resolved alerts stored", d.atLeast(5, "resolved alerts in the alerts table",
				"SELECT count() FROM alerts FINAL WHERE status = 'resolved'"))
			if err == nil {
				// The detector closes the latency episodes as the samples
				// return to normal; give it a moment so the closes reach
				// the correlator before event time jumps ahead (a late
				// close is harmless, only less tidy).
				check := d.atLeast(3, "closed latency episodes",
					"SELECT count() FROM events FINAL WHERE kind = 'anomaly' AND position(body, '\"episode\":\"close\"') > 0")
				if d.waitForSoft(ctx, 15*time.Second, check) {
					d.say("  the alerts resolved and the latency episodes closed")
				} else {
					d.say("  the alerts resolved (the latency episodes had not all closed after 15s)")
				}
			}
		case 5:
			err = d.waitFor(ctx, "incidents resolved and delivered", d.incidentsDone(true))
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func countKind(events []map[string]any, kind string) int {
	n := 0
	for _, e := range events {
		if e["kind"] == kind {
			n++
		}
	}
	return n
}

// incidents asks the incidents API.
func (d *demo) incidents(ctx context.Context) ([]correlate.State, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.apiURL+"/v1/incidents", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+d.apiToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("incidents API: %d", resp.StatusCode)
	}
	var body struct {
		Incidents []correlate.State `json:"incidents"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 16<<20)).Decode(&body); err != nil {
		return nil, fmt.Errorf("incidents API: %w", err)
	}
	return body.Incidents, nil
}

// match finds the incident of each expectation (nil where none fits).
func matchIncidents(incs []correlate.State) []*correlate.State {
	found := make([]*correlate.State, len(demoExpectations))
	for i, want := range demoExpectations {
		for j := range incs {
			st := &incs[j]
			if st.Service != want.Root {
				continue
			}
			ok := true
			for _, s := range want.Services {
				if !slices.Contains(st.Services, s) {
					ok = false
				}
			}
			if ok {
				found[i] = st
				break
			}
		}
	}
	return found
}

// incidentsDone checks that every expected incident exists with its
// enrichment, is resolved when resolved is asked, and that the receiver
// got its notification (opened, or resolved) with a valid signature.
func (d *demo) incidentsDone(resolved bool) func(ctx context.Context) (bool, string, error) {
	return func(ctx context.Context) (bool, string, error) {
		incs, err := d.incidents(ctx)
		if err != nil {
			return false, "", err
		}
		found := matchIncidents(incs)
		var missing []string
		for i, want := range demoExpectations {
			st := found[i]
			switch {
			case st == nil:
				missing = append(missing, fmt.Sprintf("no incident rooted at %s with %s (incidents: %s)", want.Root, strings.Join(want.Services, ", "), describe(incs)))
				continue
			case st.Team != want.Team || st.Owner != want.Owner:
				missing = append(missing, fmt.Sprintf("incident %s: team %q owner %q, want %q %q", st.IncidentID, st.Team, st.Owner, want.Team, want.Owner))
			case want.Change != "" && !slices.ContainsFunc(st.Changes, func(c correlate.Change) bool { return c.Version == want.Change }):
				missing = append(missing, fmt.Sprintf("incident %s: change %s not linked", st.IncidentID, want.Change))
			case resolved && st.State != correlate.StatusResolved:
				missing = append(missing, fmt.Sprintf("incident %s (%s) is %s", st.IncidentID, want.Root, st.State))
			}
			// The first notification of an incident says opened, or
			// updated when members joined within the route's group_wait
			// (the notifier sends the latest state); the last says resolved.
			if resolved && !d.recv.got(st.IncidentID, "resolved") {
				missing = append(missing, fmt.Sprintf("no resolved webhook for incident %s (%s)", st.IncidentID, want.Root))
			}
			if !resolved && !d.recv.got(st.IncidentID, "opened") && !d.recv.got(st.IncidentID, "updated") {
				missing = append(missing, fmt.Sprintf("no webhook for incident %s (%s)", st.IncidentID, want.Root))
			}
		}
		if len(incs) != len(demoExpectations) {
			// A third incident would be the correlator splitting the
			// story or a detector's false alarm: the demo says so.
			missing = append(missing, fmt.Sprintf("%d incidents, want %d: %s", len(incs), len(demoExpectations), describe(incs)))
		}
		if bad := d.recv.rejected(); bad > 0 {
			return false, "", fmt.Errorf("%d webhooks failed signature verification", bad)
		}
		if !resolved && len(missing) == 0 {
			d.say("  incidents opened: %s", describe(incs))
		}
		if resolved && len(missing) == 0 {
			// ... and the writer stored the resolutions.
			n, err := d.count(ctx, "SELECT uniqExact(incident_id) FROM incident_history FINAL WHERE status = 'resolved' AND has(?, incident_id)",
				[]string{found[0].IncidentID, found[1].IncidentID})
			if err != nil || n < uint64(len(found)) {
				return false, fmt.Sprintf("%d of %d resolutions stored in ClickHouse", n, len(found)), err
			}
		}
		return len(missing) == 0, strings.Join(missing, "; "), nil
	}
}

func describe(incs []correlate.State) string {
	if len(incs) == 0 {
		return "none"
	}
	var parts []string
	for _, st := range incs {
		parts = append(parts, fmt.Sprintf("%s %s [%s] %s", st.IncidentID, st.Service, strings.Join(st.Services, ","), st.State))
	}
	return strings.Join(parts, "; ")
}

// demoReceiver is the local webhook receiver: it verifies every request's
// Standard Webhooks signature with pkg/notify/webhook's Verify and keeps
// what it got.
type demoReceiver struct {
	secrets [][]byte
	mu      sync.Mutex
	hooks   []receivedHook
	bad     int
}

type receivedHook struct {
	Receiver   string          `json:"receiver"`
	WebhookID  string          `json:"webhook_id"`
	Received   time.Time       `json:"received"`
	Verified   bool            `json:"signature_verified"`
	Incident   string          `json:"incident_id"`
	Transition string          `json:"transition"`
	Status     string          `json:"status"`
	At         time.Time       `json:"at"`
	Payload    json.RawMessage `json:"payload"`
}

func (r *demoReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost || !strings.HasPrefix(req.URL.Path, "/hooks/") {
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(io.LimitReader(req.Body, maxWebhookBody+1))
	if err != nil || len(body) > maxWebhookBody {
		http.Error(w, "body unreadable or over 1 MiB", http.StatusRequestEntityTooLarge)
		return
	}
	if err := webhook.Verify(r.secrets, req.Header, body, time.Now(), 0); err != nil {
		r.mu.Lock()
		r.bad++
		r.mu.Unlock()
		http.Error(w, err.Error(), http.StatusUnauthorized)
		return
	}
	inc, err := webhook.ParseGeneric(body)
	if err != nil {
		// A permanent refusal: the sender would retry a 5xx.
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.hooks = append(r.hooks, receivedHook{
		Receiver: strings.TrimPrefix(req.URL.Path, "/hooks/"), WebhookID: req.Header.Get(webhook.HeaderID), Received: time.Now().UTC(),
		Verified: true, Incident: inc.ID, Transition: string(inc.Transition), Status: string(inc.Status), At: inc.Time(), Payload: body,
	})
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

func (r *demoReceiver) got(incident, transition string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.hooks {
		if h.Incident == incident && h.Transition == transition {
			return true
		}
	}
	return false
}

func (r *demoReceiver) rejected() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

func (r *demoReceiver) received() []receivedHook {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hooks)
}

// report prints the incidents with their enrichment, the webhooks and the
// analyst queries, and returns the expected incidents.
func (d *demo) report(ctx context.Context, sc demoScenario) ([]correlate.State, error) {
	incs, err := d.incidents(ctx)
	if err != nil {
		return nil, err
	}
	found := matchIncidents(incs)
	var matched []correlate.State
	for _, st := range found {
		if st == nil {
			return nil, errors.New("demo: an expected incident disappeared")
		}
		matched = append(matched, *st)
	}
	fmt.Fprintf(d.w, "\n== Incidents (%d; expected %d) ==\n", len(incs), len(demoExpectations))
	sort.Slice(incs, func(i, j int) bool { return incs[i].OpenedAt.Before(incs[j].OpenedAt) })
	for _, st := range incs {
		printIncident(d.w, st)
	}

	hooks := d.recv.received()
	fmt.Fprintf(d.w, "\n== Webhooks received (%d, every signature verified with webhook.Verify; %d rejected) ==\n", len(hooks), d.recv.rejected())
	for _, h := range hooks {
		fmt.Fprintf(d.w, "  %s  %-17s %-9s incident %s  webhook-id %s\n", h.Received.Format("15:04:05"), h.Receiver, h.Transition, h.Incident, h.WebhookID)
	}
	if len(hooks) > 0 {
		var pretty bytes.Buffer
		if json.Indent(&pretty, hooks[0].Payload, "    ", "  ") == nil {
			fmt.Fprintf(d.w, "  the first payload, as the receiver got it:\n    %s\n", pretty.String())
		}
	}

	first, _ := sc.span()
	fmt.Fprintf(d.w, "\n== Analyst queries (ClickHouse) ==\n")
	for _, q := range demoQueries {
		fmt.Fprintf(d.w, "\n-- %s\n%s\n", q.title, q.sql)
		if err := printQuery(ctx, d.w, d.st, q.sql, q.args(first)...); err != nil {
			return nil, fmt.Errorf("demo: query %q: %w", q.title, err)
		}
	}
	return matched, nil
}

func printIncident(w io.Writer, st correlate.State) {
	fmt.Fprintf(w, "\n%s  %s\n", st.IncidentID, st.Title)
	fmt.Fprintf(w, "  state %s, severity %s, opened %s", st.State, st.Severity, st.OpenedAt.Format("15:04:05"))
	if !st.ResolvedAt.IsZero() {
		fmt.Fprintf(w, ", resolved %s (after %s)", st.ResolvedAt.Format("15:04:05"), st.ResolvedAt.Sub(st.OpenedAt).Round(time.Second))
	}
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  root cause %s: owner %s, team %s, tier %s, runbook %s\n", st.Service, st.Owner, st.Team, st.Tier, st.Runbook)
	for _, rc := range st.RootCauses {
		fmt.Fprintf(w, "    candidate %s (score %.2f): %s\n", rc.Service, rc.Score, strings.Join(rc.Reasons, "; "))
	}
	fmt.Fprintf(w, "  services %s; %d members:\n", strings.Join(st.Services, ", "), st.MemberCount)
	for _, m := range st.Members {
		fmt.Fprintf(w, "    %-7s %-13s %-36s %s ×%d\n", m.Kind, m.Service, m.Name, m.Severity, m.Count)
	}
	for _, c := range st.Changes {
		fmt.Fprintf(w, "  change %s %s %s by %s at %s: %s\n", c.Service, c.Type, c.Version, c.Author, c.Time.Format("15:04:05"), c.Description)
	}
}

// demoQueries are the analyst's questions the demo answers from
// ClickHouse (docs/queries.md has the full cookbook).
var demoQueries = []struct {
	title string
	sql   string
	args  func(from time.Time) []any
}{
	// Merged incidents are left out, as docs/queries.md's MTTR leaves them
	// out: their resolution is the merge, and their failure is counted in
	// the incident they went into.
	{"incidents: latest state, and minutes to resolve from their history (merged ones left out)", `SELECT incident_id, service, team, severity, latest, opened,
       if(resolved > 0, round((resolved - toUnixTimestamp(opened)) / 60, 1), nan) AS minutes_to_resolve
FROM
(
    SELECT incident_id, argMax(service, version) AS service, argMax(team, version) AS team, argMax(severity, version) AS severity,
           argMax(status, version) AS latest, min(opened_at) AS opened,
           argMax(toUnixTimestamp(resolved_at), version) AS resolved,
           max(merged_into) AS merged_into_incident
    FROM incident_history FINAL
    GROUP BY incident_id
)
WHERE merged_into_incident = ''
ORDER BY opened`, func(time.Time) []any { return nil }},
	{"what changed in the scenario", `SELECT time, service, change_type, version, author, description
FROM changes FINAL
ORDER BY time`, func(time.Time) []any { return nil }},
	{"the most anomalous metrics", `SELECT service, metric, detector, count() AS anomalies, round(max(score), 3) AS max_score
FROM anomalies FINAL
GROUP BY service, metric, detector
ORDER BY anomalies DESC, service`, func(time.Time) []any { return nil }},
	{"payments' error logs per minute, with their template", `SELECT toStartOfMinute(time) AS minute, count() AS errors, any(template) AS template
FROM logs FINAL
WHERE service = 'payments' AND derived = 1 AND severity = 'error'
GROUP BY minute
ORDER BY minute`, func(time.Time) []any { return nil }},
	{"webhook deliveries per receiver", `SELECT receiver, count() AS attempts, countIf(status_code >= 200 AND status_code < 300) AS delivered,
       uniqExact(incident_id) AS incidents, max(duration_ms) AS max_ms
FROM webhook_deliveries FINAL
WHERE time >= ?
GROUP BY receiver
ORDER BY receiver`, func(from time.Time) []any { return []any{from} }},
}

// printQuery runs a query and prints its result as an aligned table.
func printQuery(ctx context.Context, w io.Writer, st *store.Store, query string, args ...any) error {
	rows, err := st.Conn.Query(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	cols := rows.Columns()
	table := [][]string{cols}
	for rows.Next() {
		vals := make([]any, len(cols))
		for i, ct := range rows.ColumnTypes() {
			vals[i] = newScanValue(ct.ScanType())
		}
		if err := rows.Scan(vals...); err != nil {
			return err
		}
		row := make([]string, len(vals))
		for i, v := range vals {
			row[i] = formatValue(v)
		}
		table = append(table, row)
	}
	if err := rows.Err(); err != nil {
		return err
	}
	widths := make([]int, len(cols))
	for _, row := range table {
		for i, c := range row {
			widths[i] = max(widths[i], len(c))
		}
	}
	for _, row := range table {
		var b strings.Builder
		for i, c := range row {
			fmt.Fprintf(&b, "  %-*s", widths[i], c)
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
	if len(table) == 1 {
		fmt.Fprintln(w, "  (no rows)")
	}
	return nil
}
