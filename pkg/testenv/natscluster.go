package testenv

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// StartNATSCluster starts a three-node JetStream cluster in this process,
// as deployments/kubernetes/nats.yaml runs it (routes below the ephemeral
// range, StablePort, so no outgoing connection takes one before its node
// binds it), waits until JetStream answers (the cluster elected its meta
// leader) and returns the nodes (to stop one) and their client URLs;
// t.Cleanup shuts them down.
func StartNATSCluster(t testing.TB) ([]*server.Server, []string) {
	t.Helper()
	routePorts := []string{StablePort(t), StablePort(t), StablePort(t)}
	var routes []string
	for _, p := range routePorts {
		routes = append(routes, "nats-route://"+net.JoinHostPort("127.0.0.1", p))
	}
	var servers []*server.Server
	var urls []string
	for i, p := range routePorts {
		var port int
		fmt.Sscan(p, &port)
		ns, err := server.NewServer(&server.Options{
			ServerName: fmt.Sprintf("nats-%d", i), Host: "127.0.0.1", Port: server.RANDOM_PORT,
			JetStream: true, StoreDir: t.TempDir(), NoLog: true, NoSigs: true,
			Cluster: server.ClusterOpts{Name: "aiops", Host: "127.0.0.1", Port: port},
			Routes:  server.RoutesFromStr(strings.Join(routes, ",")),
		})
		if err != nil {
			t.Fatalf("testenv: NATS cluster node %d: %v", i, err)
		}
		go ns.Start()
		t.Cleanup(ns.Shutdown)
		if !ns.ReadyForConnections(10 * time.Second) {
			t.Fatalf("testenv: NATS cluster node %d not ready for connections after 10s", i)
		}
		servers = append(servers, ns)
		urls = append(urls, ns.ClientURL())
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		nc, err := nats.Connect(strings.Join(urls, ","))
		if err == nil {
			js, _ := nc.JetStream()
			_, err = js.AccountInfo()
			nc.Close()
		}
		if err == nil {
			return servers, urls
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: the NATS cluster's JetStream has no meta leader after 30s: %v", err)
		}
	}
}
