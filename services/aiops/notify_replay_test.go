package aiops

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/silence"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// aiops notify replay on a real JetStream: a dead letter of the notifier
// (as the bus writes one) is listed by --dry-run, delivered to the
// receiver by a replay and removed; a replay while the receiver refuses
// keeps it and exits non-zero.
func TestNotifyReplayCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	srv := testenv.StartNATS(t)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{srv.URL()}}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	if err := bus.EnsureTopology(context.Background(), js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	var refuse atomic.Bool
	refuse.Store(true)
	var got atomic.Int32
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		if refuse.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		got.Add(1)
	}))
	defer hook.Close()
	routes := writeAMConfig(t, hook.URL)

	// The incident event as the correlator publishes it, dead-lettered as
	// the notifier's consumer does.
	c, err := correlate.New(correlate.Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	ups := c.Observe(correlate.Signal{Kind: correlate.SignalAlert, Fingerprint: "fp", Service: "payments-db", Name: "DBDown",
		Severity: event.SeverityCritical, Time: at, EventID: event.DerivedID(at, "db")})
	e, err := correlate.Envelope(ups[0], at)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := e.MarshalJSON()
	msg := nats.NewMsg("deadletter.EVENTS.notifier")
	msg.Data = data
	msg.Header.Set(bus.HeaderDeadLetterReason, "receiver pager: HTTP 503")
	if _, err := js.PublishMsg(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	run := func(extra ...string) (string, error) {
		var out, errOut bytes.Buffer
		args := append([]string{"replay", "-set", "bus.urls=[" + srv.URL() + "]", "-set", "notifier.routes=" + routes,
			"-set", "notifier.delivery.retry.max_attempts=1"}, extra...)
		err := notifyMain(context.Background(), args, &out, &errOut)
		return out.String() + errOut.String(), err
	}
	// -h tells the replay's own flag, after the configuration's, and what
	// a replay sends.
	var help bytes.Buffer
	notifyMain(context.Background(), []string{"replay", "-h"}, &help, &help)
	if !strings.Contains(help.String(), "--dry-run") || !strings.Contains(help.String(), "resolved since is sent its resolve instead") {
		t.Fatalf("replay -h:\n%s", help.String())
	}
	// Without routes a replay would send every dead letter nowhere and
	// drop it: refused.
	var errOut bytes.Buffer
	if err := notifyMain(context.Background(), []string{"replay", "-set", "bus.urls=[" + srv.URL() + "]"}, &errOut, &errOut); err == nil || !strings.Contains(err.Error(), "notifier.routes is not set") {
		t.Fatalf("replay without routes: %v", err)
	}
	out, err := run("--dry-run")
	if err != nil || !strings.Contains(out, ups[0].State.IncidentID) || !strings.Contains(out, "HTTP 503") || !strings.Contains(out, "incident now not known; sends it") || got.Load() != 0 {
		t.Fatalf("dry run: %v\n%s", err, out)
	}
	if out, err := run(); err == nil || !strings.Contains(out, "failed again, kept") {
		t.Fatalf("replay to a receiver still down: %v\n%s", err, out)
	}
	refuse.Store(false)
	// Silenced now: not sent, kept for a replay once the silence ends.
	silences, err := silence.Open(context.Background(), js, silence.Config{}.WithDefaults())
	if err != nil {
		t.Fatal(err)
	}
	defer silences.Close()
	id, err := silences.Set(context.Background(), silence.Silence{Matchers: []silence.Matcher{{Name: "service", Value: "payments-db"}},
		StartsAt: time.Now().Add(-time.Minute), EndsAt: time.Now().Add(time.Hour), CreatedBy: "ann", Comment: "maintenance"})
	if err != nil {
		t.Fatal(err)
	}
	if out, err := run(); err == nil || !strings.Contains(out, "muted now, kept") || got.Load() != 0 {
		t.Fatalf("replay while a silence mutes it: %v, %d webhooks\n%s", err, got.Load(), out)
	}
	if err := silences.Expire(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if out, err := run(); err != nil || !strings.Contains(out, "1 done and removed, 0 failed") || got.Load() != 1 {
		t.Fatalf("replay: %v, %d webhooks\n%s", err, got.Load(), out)
	}
	if out, err := run(); err != nil || !strings.Contains(out, "no dead letters") {
		t.Fatalf("second replay: %v\n%s", err, out)
	}
}
