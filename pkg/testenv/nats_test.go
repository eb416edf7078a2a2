package testenv

import (
	"context"
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func TestNATSHasJetStream(t *testing.T) {
	nc, err := nats.Connect(NATS(t))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.AccountInfo(ctx); err != nil {
		t.Fatalf("JetStream not enabled: %v", err)
	}
}

// A restarted server keeps its URL and its stored messages: the property the
// crash tests of other packages rely on.
func TestNATSServerRestartKeepsStreams(t *testing.T) {
	s := StartNATS(t)
	url := s.URL()
	nc, err := nats.Connect(url, nats.MaxReconnects(-1), nats.ReconnectWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "T", Subjects: []string{"t.>"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "t.a", []byte("x")); err != nil {
		t.Fatal(err)
	}
	s.Shutdown()
	if _, err := nats.Connect(url, nats.Timeout(200*time.Millisecond)); err == nil {
		t.Fatal("a new connection succeeded while the server was down")
	}
	s.Restart()
	if s.URL() != url {
		t.Fatalf("URL changed across restart: %s -> %s", url, s.URL())
	}
	var st jetstream.Stream
	for {
		st, err = js.Stream(ctx, "T")
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("stream not back after restart: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if n := st.CachedInfo().State.Msgs; n != 1 {
		t.Fatalf("stream holds %d messages after restart, want 1", n)
	}
}

// A port taken while the server is down fails the start with the listen
// error itself, at once, so that Restart and StartNATS try again.
func TestStartOnATakenPortFails(t *testing.T) {
	s := StartNATS(t)
	s.Shutdown()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if err := s.start(); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("start on a taken port: %v, want the port in use", err)
	}
}
