package ingest

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/service"
)

// A gateway on its own (the ingest binary, as deployments/ run it) watches
// the backlog of ingest.store_consumer, which must be the writer's
// writer.consumer.durable. Told another name, it only logged a warning,
// stayed ready and accepted events with its guard blind: a long
// ClickHouse outage then discarded events it had answered 200. It is not
// ready while that consumer is not on EVENTS, naming the one it watches
// and the ones there are, and ready once it is (a gateway started before
// its writer): requests are taken all along.
func TestStandaloneGatewayIsNotReadyWithoutTheWritersConsumer(t *testing.T) {
	if testing.Short() {
		t.Skip("needs JetStream")
	}
	// The writer runs with writer.consumer.durable: writer-blue; the
	// gateway is left at the default, writer.
	js, admin, listen, tokenFile := standaloneGateway(t, "writer-blue")
	ctx := context.Background()
	ready := func() (int, service.CheckResult) {
		t.Helper()
		resp, err := http.Get("http://" + admin + "/readyz")
		if err != nil {
			return 0, service.CheckResult{Error: err.Error()}
		}
		defer resp.Body.Close()
		var body service.ReadyResponse
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		for _, c := range body.Checks {
			if c.Name == "ingest" {
				return resp.StatusCode, c
			}
		}
		return resp.StatusCode, service.CheckResult{Name: "ingest", OK: true, Error: fmt.Sprintf("(no such check: %+v)", body)}
	}
	waitReady := func(what string, cond func(int, service.CheckResult) bool) service.CheckResult {
		t.Helper()
		deadline := time.Now().Add(time.Minute)
		for {
			code, check := ready()
			if cond(code, check) {
				return check
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within a minute: /readyz %d, %+v", what, code, check)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	check := waitReady("not ready without the writer's consumer", func(code int, c service.CheckResult) bool {
		return code == http.StatusServiceUnavailable && !c.OK
	})
	for _, want := range []string{`ingest.store_consumer is "writer"`, "writer-blue", "writer.consumer.durable"} {
		if !strings.Contains(check.Error, want) {
			t.Errorf("the gateway's check says %q, which does not name %q", check.Error, want)
		}
	}
	if code := postLog(t, listen, tokenFile, "taken while not ready"); code != http.StatusOK {
		t.Errorf("a request while not ready: %d, want 200 as before", code)
	}

	// The writer of the gateway's name starts.
	if _, err := js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: "writer", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	waitReady("ready once the writer's consumer is on EVENTS", func(code int, _ service.CheckResult) bool {
		return code == http.StatusOK
	})
}
