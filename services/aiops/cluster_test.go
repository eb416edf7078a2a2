package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// TestRunOnNATSClusterLosesNoEvent runs `aiops run` on a three-node NATS
// cluster with every stream replicated three times (streams.replicas 3, as
// the Kubernetes manifests configure), posts events in batches while one
// node is shut down, and finds every event the gateway accepted in
// ClickHouse. A batch refused during the fail-over (503) is posted again
// with its Idempotency-Key, as a producer does.
func TestRunOnNATSClusterLosesNoEvent(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	dsn := testenv.ClickHouse(t)
	servers, urls := testenv.StartNATSCluster(t)
	dir := t.TempDir()
	var ingestAddr string
	var finished chan error
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for attempt := 1; ; attempt++ {
		adminAddr := testenv.FreeAddr(t)
		ingestAddr = testenv.FreeAddr(t)
		finished = make(chan error, 1)
		go func(finished chan error) {
			finished <- runPipelineTo(ctx, []string{
				"-set", "nats.embedded=false",
				"-set", "bus.urls=[" + strings.Join(urls, ",") + "]",
				"-set", "streams.replicas=3",
				// Every state bucket replicated too.
				"-set", "detector.snapshot.replicas=3",
				"-set", "logminer.state.replicas=3",
				"-set", "correlator.state.replicas=3",
				"-set", "correlator.lease.replicas=3",
				"-set", "notifier.lease.replicas=3",
				"-set", "notifier.silences.replicas=3",
				"-set", "notifier.state.replicas=3",
				"-set", "ingest.listen=" + ingestAddr,
				"-set", "ingest.generate_token_file=" + dir + "/ingest-token",
				"-set", "store.dsn=" + dsn,
				"-set", "admin.listen=" + adminAddr,
				"-set", "correlator.api.listen=",
				"-set", "notifier.api.listen=",
				"-set", "writer.max_age=100ms",
				"-set", "log.level=error",
			}, io.Discard)
		}(finished)
		err := waitReady(adminAddr, finished)
		if err == nil {
			break
		}
		if !strings.Contains(err.Error(), "address already in use") || attempt == 5 {
			t.Fatal(err)
		}
	}
	token := func() string {
		b, _ := os.ReadFile(dir + "/ingest-token")
		return strings.TrimSpace(string(b))
	}()

	now := time.Now().UTC().Truncate(time.Second)
	var accepted []string
	refused := 0
	const batches, perBatch = 40, 50
	for b := 0; b < batches; b++ {
		if b == batches/2 {
			// A node goes away mid-run: the streams keep a quorum on
			// the other two.
			servers[0].Shutdown()
		}
		var body bytes.Buffer
		for i := 0; i < perBatch; i++ {
			fmt.Fprintf(&body, `{"kind":"log","service":"payments","time":%q,"body":{"message":"batch %d line %d"}}`+"\n",
				now.Add(time.Duration(b*perBatch+i)*time.Millisecond).Format(time.RFC3339Nano), b, i)
		}
		for try := 0; ; try++ {
			req, _ := http.NewRequest("POST", "http://"+ingestAddr+"/v1/events", bytes.NewReader(body.Bytes()))
			req.Header.Set("Content-Type", "application/x-ndjson")
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Idempotency-Key", fmt.Sprintf("cluster-test-batch-%d", b))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			answer, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				var a struct{ IDs []string }
				json.Unmarshal(answer, &a)
				accepted = append(accepted, a.IDs...)
				break
			}
			if resp.StatusCode != http.StatusServiceUnavailable || try == 50 {
				t.Fatalf("batch %d: %d %s", b, resp.StatusCode, answer)
			}
			refused++
			time.Sleep(200 * time.Millisecond)
		}
	}
	if len(accepted) != batches*perBatch {
		t.Fatalf("%d events accepted, want %d", len(accepted), batches*perBatch)
	}
	st, err := store.Open(context.Background(), store.Config{DSN: dsn}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var n uint64
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(300 * time.Millisecond) {
		err := st.Conn.QueryRow(context.Background(), "SELECT count() FROM events FINAL WHERE has(?, id)", accepted).Scan(&n)
		if err == nil && n == uint64(len(accepted)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted events in ClickHouse two minutes after a node was lost: %v", n, len(accepted), err)
		}
	}
	t.Logf("%d events accepted (%d posts refused with 503 during the fail-over and retried), all %d stored", len(accepted), refused, n)
	stopAt := time.Now()
	cancel()
	select {
	case err := <-finished:
		// With every state bucket replicated, the last saves after the
		// drain succeed though a node is gone.
		if err != nil {
			t.Fatalf("aiops run stopped with %v", err)
		}
		t.Logf("aiops run stopped in %s", time.Since(stopAt).Round(time.Millisecond))
	case <-time.After(time.Minute):
		t.Fatal("aiops run did not stop within a minute")
	}
}
