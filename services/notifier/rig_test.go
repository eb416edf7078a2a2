package notifier

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// jsRig is an embedded JetStream with aiops's streams, for the notifier's
// integration tests.
type jsRig struct {
	t   testing.TB
	js  jetstream.JetStream
	log zerolog.Logger
}

func newJSRig(t testing.TB, level zerolog.Level) *jsRig {
	t.Helper()
	if testing.Short() {
		t.Skip("integration test: needs JetStream")
	}
	srv := testenv.StartNATS(t)
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(level)
	nc, js, err := bus.Connect(context.Background(), bus.Config{URLs: []string{srv.URL()}}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if err := bus.EnsureTopology(context.Background(), js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	return &jsRig{t: t, js: js, log: log}
}

// stateBucket opens the notifier's state bucket with the default
// settings, a handle of its own as a restarted notifier's would be.
func (r *jsRig) stateBucket() *kvOpen {
	r.t.Helper()
	kv, err := openKVStore(context.Background(), r.js, StateConfig{}.WithDefaults())
	if err != nil {
		r.t.Fatal(err)
	}
	return kv
}

// start runs a notifier with cfg; stop cancels it and waits for it.
func (r *jsRig) start(cfg Config) (svc *Service, stop func()) {
	r.t.Helper()
	svc, err := New(context.Background(), r.js, cfg, r.log)
	if err != nil {
		r.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	return svc, func() {
		cancel()
		if err := <-done; err != nil {
			r.t.Error(err)
		}
	}
}

// hookRoutes writes an Alertmanager configuration sending everything at
// once (group_wait 0s) to one webhook at url.
func hookRoutes(t testing.TB, url string) string {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	if err := os.WriteFile(routes, []byte("route:\n  receiver: hook\n  group_wait: 0s\nreceivers:\n- name: hook\n  webhook_configs:\n  - url: "+url+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return routes
}

// waitSent waits until every notification proc handed to its receivers'
// lanes has its result.
func waitSent(t testing.TB, proc *Processor) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := proc.waitSent(ctx); err != nil {
		t.Fatalf("notifications still being sent after a minute: %v", err)
	}
}

// payloadType is the type of an aiops webhook payload (incident.opened,
// ...), "" with an error on the test when body is no JSON.
func payloadType(t testing.TB, body []byte) string {
	var p struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Error(err)
	}
	return p.Type
}
