package ingest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// standaloneGateway is a gateway on its own (Main, as deployments/ run
// it) on a JetStream of the default streams, whose EVENTS has a stopped
// writer's consumer, writerDurable: its JetStream, the gateway's admin
// and ingest addresses, and the file of its token. It stops with the
// test.
func standaloneGateway(t *testing.T, writerDurable string) (js jetstream.JetStream, admin, listen, tokenFile string) {
	t.Helper()
	nats := testenv.StartNATS(t)
	ctx, cancel := context.WithCancel(context.Background())
	nc, js, err := bus.Connect(ctx, bus.Config{URLs: []string{nats.URL()}}, zerolog.Nop())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := bus.EnsureTopology(ctx, js, bus.DefaultStreams()); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: writerDurable, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	admin, listen = testenv.FreeAddr(t), testenv.FreeAddr(t)
	tokenFile = filepath.Join(t.TempDir(), "ingest-token")
	finished := make(chan error, 1)
	go func() {
		finished <- Main(ctx, []string{"-set", "bus.urls=[" + nats.URL() + "]", "-set", "log.level=error",
			"-set", "admin.listen=" + admin, "-set", "ingest.listen=" + listen, "-set", "ingest.generate_token_file=" + tokenFile})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-finished; err != nil {
			t.Errorf("Main: %v", err)
		}
		nc.Close()
	})
	return js, admin, listen, tokenFile
}

// postLog posts one log event of message to the gateway at listen, once
// it has written its token and listens, and returns the answer's status.
func postLog(t *testing.T, listen, tokenFile, message string) int {
	t.Helper()
	for {
		token, err := os.ReadFile(tokenFile)
		if err == nil {
			req, _ := http.NewRequest(http.MethodPost, "http://"+listen+"/v1/events", strings.NewReader(
				fmt.Sprintf(`{"kind":"log","service":"checkout","time":%q,"body":{"message":%q}}`, time.Now().UTC().Format(time.RFC3339), message)))
			req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			if !errors.Is(err, syscall.ECONNREFUSED) {
				t.Fatal(err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitListening waits until the gateway listens at listen.
func waitListening(t *testing.T, listen string) {
	t.Helper()
	for {
		c, err := net.Dial("tcp", listen)
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}
