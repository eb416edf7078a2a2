package writer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/store"
)

// The writer is not ready once every insert into a table has failed for
// longer than unready_after, naming the table and ClickHouse's error, and
// ready again at the table's first insert that commits. ClickHouse's ping,
// the platform's check, answers all along: a table that is gone (or
// readonly, or on a full disk) takes no rows from a server that is up.
// It stayed ready, the events naked and redelivered for ever.
func TestNotReadyWhileATablesInsertsFail(t *testing.T) {
	r := newRig(t)
	ctx, cancel := context.WithCancel(context.Background())
	_, js := r.connect()
	st, err := store.Open(ctx, store.Config{DSN: r.dsn}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	w, err := New(ctx, js, st.Conn, Config{
		MaxAge: 50 * time.Millisecond,
		// Failed inserts make it not ready at once, their retries
		// well within: the bound itself is
		// TestReadinessBoundsTheFailuresItWaitsOut's.
		UnreadyAfter: 500 * time.Millisecond,
		Consumer:     bus.ConsumerConfig{Backoff: []time.Duration{100 * time.Millisecond}},
	}, r.log)
	if err != nil {
		t.Fatal(err)
	}
	admin := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- service.Run(ctx, service.Options{Name: "writer", Log: r.log, Signals: make(chan os.Signal),
			Checks:        []service.Check{{Name: "clickhouse", Fn: st.Ping}},
			OnAdminListen: func(a net.Addr) { admin <- a }}, w)
	}()
	defer func() { cancel(); <-done }()
	base := "http://" + (<-admin).String()
	ready := func() (int, service.ReadyResponse) {
		t.Helper()
		resp, err := http.Get(base + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body service.ReadyResponse
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, body
	}
	writerCheck := func(body service.ReadyResponse) service.CheckResult {
		for _, c := range body.Checks {
			if c.Name == "writer" {
				return c
			}
		}
		return service.CheckResult{Name: "writer", OK: true, Error: "(no such check)"}
	}
	publish := func(i int) {
		t.Helper()
		e, raw := envelope(t, i, time.Now().UTC())
		if _, err := js.Publish(ctx, e.Subject(), raw); err != nil {
			t.Fatal(err)
		}
	}
	logs := func() uint64 { return r.count("SELECT count() FROM logs FINAL") }

	publish(0)
	r.waitFor(time.Minute, "the first log stored", func() (bool, string) { return logs() == 1, fmt.Sprintf("%d logs", logs()) })
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("/readyz %d with inserts that commit: %+v", code, body)
	}

	if err := r.store.Conn.Exec(ctx, "DETACH TABLE logs"); err != nil {
		t.Fatal(err)
	}
	// A detached table's files are in the way of the database's drop.
	t.Cleanup(func() { _ = r.store.Conn.Exec(context.Background(), "ATTACH TABLE logs") })
	publish(1)
	var failing service.CheckResult
	r.waitFor(time.Minute, "/readyz failing while inserts into logs fail", func() (bool, string) {
		code, body := ready()
		failing = writerCheck(body)
		return code == http.StatusServiceUnavailable && !failing.OK, fmt.Sprintf("%d %+v", code, body)
	})
	// ClickHouse's error: code 60, UNKNOWN_TABLE, in every version's words
	for _, want := range []string{"into logs", "code: 60"} {
		if !strings.Contains(failing.Error, want) {
			t.Errorf("the writer's check says %q, which does not name %q", failing.Error, want)
		}
	}
	if resp, err := http.Get(base + "/healthz"); err != nil || resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz: %v %v: a restart does not bring the table back, the writer must not be restarted", resp, err)
	}

	if err := r.store.Conn.Exec(ctx, "ATTACH TABLE logs"); err != nil {
		t.Fatal(err)
	}
	r.waitFor(time.Minute, "/readyz ready once the table takes the redelivered log", func() (bool, string) {
		code, body := ready()
		return code == http.StatusOK, fmt.Sprintf("%d %+v", code, body)
	})
	if n := logs(); n != 2 {
		t.Errorf("ready again with %d logs stored, want 2", n)
	}
}

// Inserts that fail for no longer than unready_after (a restart, a
// failover) leave the writer ready; past it the check names each table
// with its last error; the first insert that commits ends it. Failures
// that say nothing of the table (rows whose data cannot fit, inserts
// given up by a stop) do not count.
func TestReadinessBoundsTheFailuresItWaitsOut(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	h := newInsertHealth(time.Minute, func() time.Time { return now })
	refused := errors.New("code: 164, message: Cannot execute query in readonly mode")
	failed := func(table string, err error) { h.observe(table, store.BatchResult{Rows: 2, Failed: 2, Err: err}) }

	failed("logs", errors.New("code: 210, message: connection refused"))
	now = now.Add(30 * time.Second)
	failed("logs", refused)
	now = now.Add(30 * time.Second)
	if err := h.check(context.Background()); err != nil {
		t.Fatalf("not ready after a minute of failures, unready_after's own: %v", err)
	}
	now = now.Add(time.Second)
	err := h.check(context.Background())
	if err == nil || !strings.Contains(err.Error(), "into logs has failed for 1m1s") || !errors.Is(err, refused) {
		t.Fatalf("past unready_after: %v, want logs failing for 1m1s with its last error", err)
	}

	h.observe("logs", store.BatchResult{Rows: 3, Failed: 1, Err: refused})
	if err := h.check(context.Background()); err != nil {
		t.Fatalf("an insert committed rows, yet: %v", err)
	}

	failed("alerts", errs.Permanentf("row rejected by the server"))
	failed("changes", fmt.Errorf("%w: insert cancelled", store.ErrClosed))
	now = now.Add(time.Hour)
	if err := h.check(context.Background()); err != nil {
		t.Fatalf("failures that say nothing of the tables: %v", err)
	}
}

// A table whose failed inserts are not tried again (their events
// dropped at redelivery, dead-lettered, or none of its kind came since)
// no longer holds the writer unready: it stayed so until an insert into
// that table committed, which might never come. Failures retried keep it
// unready (the consumer's backoff tops out at 30 s, under twice
// unready_after).
func TestReadinessForgetsATableNotTriedAgain(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	h := newInsertHealth(time.Minute, func() time.Time { return now })
	refused := errors.New("code: 164, message: Cannot execute query in readonly mode")
	failed := func() { h.observe("logs", store.BatchResult{Rows: 2, Failed: 2, Err: refused}) }

	for range 6 { // retried every 30 s for 2.5 minutes
		failed()
		now = now.Add(30 * time.Second)
	}
	if err := h.check(context.Background()); err == nil {
		t.Fatal("ready while every insert into logs failed for 3 minutes, retried every 30 s")
	}
	now = now.Add(90 * time.Second) // 2 minutes since the last try
	if err := h.check(context.Background()); err == nil {
		t.Fatal("ready 2 minutes after the last failed insert, within twice unready_after")
	}
	now = now.Add(time.Second)
	if err := h.check(context.Background()); err != nil {
		t.Fatalf("no insert into logs tried for over twice unready_after, still: %v", err)
	}
}

// unready_after must be over the consumer's longest backoff: a failing
// table is tried again after it, and one not tried for twice
// unready_after no longer counts, so readiness would come and go.
func TestConfigUnreadyAfterOverTheBackoff(t *testing.T) {
	for _, cfg := range []Config{
		{UnreadyAfter: 10 * time.Second},
		{Consumer: bus.ConsumerConfig{Backoff: []time.Duration{time.Second, 2 * time.Minute}}},
	} {
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), "writer.unready_after:") || !strings.Contains(err.Error(), "backoff") {
			t.Errorf("unready_after %s, backoff %v: Validate() = %v, want an error naming both", cfg.UnreadyAfter, cfg.Consumer.Backoff, err)
		}
	}
	for _, cfg := range []Config{{}, {UnreadyAfter: 31 * time.Second}, {UnreadyAfter: 5 * time.Second, Consumer: bus.ConsumerConfig{Backoff: []time.Duration{time.Second}}}} {
		if err := cfg.Validate(); err != nil {
			t.Errorf("unready_after %s, backoff %v: %v", cfg.UnreadyAfter, cfg.Consumer.Backoff, err)
		}
	}
}
