package testenv

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
)

// EnvZooKeeperClasspath overrides where ZooKeeper's jars are (a Java
// classpath); the default is Debian's zookeeper package.
const EnvZooKeeperClasspath = "AIOPS_TEST_ZOOKEEPER_CLASSPATH"

// DefaultZooKeeperClasspath is where Debian's zookeeper package puts its
// jar (its manifest names the libraries it needs).
const DefaultZooKeeperClasspath = "/usr/share/java/zookeeper.jar"

const zookeeperReadyTimeout = 30 * time.Second

// ZooKeeper starts a standalone ZooKeeper server as a plain java process
// (never Debian's system service) with its data in a temporary folder, on a
// free loopback port with its admin web server off (it would take 8080),
// waits until it opens a session, stops it when the test ends and returns
// its host:port. Without java or the jars the test skips, or fails under CI.
func ZooKeeper(t testing.TB) string {
	t.Helper()
	java := Binary(t, "java")
	classpath := os.Getenv(EnvZooKeeperClasspath)
	if classpath == "" {
		classpath = DefaultZooKeeperClasspath
	}
	for _, jar := range filepath.SplitList(classpath) {
		if _, err := os.Stat(jar); err != nil {
			unavailable(t, "ZooKeeper", fmt.Errorf("%v (scripts/deps.sh installs Debian's zookeeper; $%s overrides the classpath)", err, EnvZooKeeperClasspath))
			return ""
		}
	}
	dir := t.TempDir()
	addr := FreeAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	cfg := filepath.Join(dir, "zoo.cfg")
	// A short tick keeps session set-up quick.
	text := fmt.Sprintf("dataDir=%s\nclientPort=%s\nclientPortAddress=%s\ntickTime=500\nadmin.enableServer=false\n",
		filepath.Join(dir, "data"), port, host)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(java, "-Xmx256m", "-cp", classpath, "org.apache.zookeeper.server.ZooKeeperServerMain", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start ZooKeeper: %v", err)
	}
	killWithTest(cmd.Process.Pid)
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	// Ready means a session can be opened, not only that the port answers:
	// a ClickHouse 18.16 server that could not open its session at start
	// crashed here on its next ON CLUSTER statement (a segfault in its DDL
	// worker). The first sessions of a cold JVM are the slow ones, so this
	// one warms it up too.
	for deadline := time.Now().Add(zookeeperReadyTimeout); ; time.Sleep(100 * time.Millisecond) {
		err := zookeeperSession(addr)
		if err == nil {
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("testenv: ZooKeeper exited during start-up:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: ZooKeeper opened no session on %s within %s (%v):\n%s", addr, zookeeperReadyTimeout, err, logs.String())
		}
	}
}

// zookeeperSession opens a session (the protocol's ConnectRequest) and
// closes the connection, which ends the session once its timeout passes.
func zookeeperSession(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	// ConnectRequest: protocolVersion int32, lastZxidSeen int64, timeOut
	// int32 (ms), sessionId int64, passwd buffer (int32 length + 16 bytes),
	// all big-endian, after an int32 length prefix.
	req := binary.BigEndian.AppendUint32(nil, 0)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, 4000)
	req = binary.BigEndian.AppendUint64(req, 0)
	req = binary.BigEndian.AppendUint32(req, 16)
	req = append(req, make([]byte, 16)...)
	if _, err := conn.Write(append(binary.BigEndian.AppendUint32(nil, uint32(len(req))), req...)); err != nil {
		return err
	}
	// ConnectResponse: protocolVersion, timeOut, sessionId, passwd; a
	// session id of 0 means refused.
	var head [4]byte
	if _, err := io.ReadFull(conn, head[:]); err != nil {
		return fmt.Errorf("no answer to a session request: %w", err)
	}
	resp := make([]byte, binary.BigEndian.Uint32(head[:]))
	if len(resp) < 16 {
		return fmt.Errorf("short session answer (%d bytes)", len(resp))
	}
	if _, err := io.ReadFull(conn, resp); err != nil {
		return err
	}
	if binary.BigEndian.Uint64(resp[8:16]) == 0 {
		return errors.New("session refused")
	}
	return nil
}

// ClickHouseNode is one server of a ClickHouseCluster.
type ClickHouseNode struct {
	Shard, Replica int    // from 1, as in the server's macros
	Addr           string // native protocol host:port, user default without password
	Dir            string // the server's folder (config.xml, config.d, data, log)
}

// Stop stops the server before the test ends, for a test of a cluster with
// a server down; stopping it again, as the test's end does, is harmless.
func (n ClickHouseNode) Stop(t testing.TB) {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(filepath.Join(root, clickhouseScriptRel), "stop", n.Dir).CombinedOutput(); err != nil {
		t.Fatalf("testenv: stop ClickHouse shard %d replica %d: %v\n%s", n.Shard, n.Replica, err, out)
	}
}

// ClickHouseCluster starts shards×replicas local ClickHouse servers
// (scripts/clickhouse.sh, clickhouse-server from PATH) that form the cluster
// name: each server's config.d/cluster.xml, which ClickHouse merges into
// config.xml, names every server in remote_servers (internal_replication:
// a Distributed table writes one replica per shard and replication copies
// it), ZooKeeper (started here), distributed DDL (ON CLUSTER) and its
// macros {shard} (01, 02, ...) and {replica} (r1, r2, ...). The servers stop
// when the test ends. Without clickhouse-server or ZooKeeper the test skips,
// or fails under CI.
func ClickHouseCluster(t testing.TB, name string, shards, replicas int) []ClickHouseNode {
	t.Helper()
	if shards < 1 || replicas < 1 || shards*replicas > 8 {
		t.Fatalf("testenv: ClickHouseCluster(%d shards, %d replicas): want 1 to 8 servers", shards, replicas)
	}
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		unavailable(t, "ClickHouse", errors.New("clickhouse-server not on PATH (run scripts/deps.sh)"))
		return nil
	}
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, clickhouseScriptRel)
	zookeeper := ZooKeeper(t)
	zkHost, zkPort, _ := net.SplitHostPort(zookeeper)

	// remote_servers needs every server's port before any starts: ports are
	// picked free first, and the set is tried again if a server could not
	// have its own.
	for attempt := 1; ; attempt++ {
		var nodes []ClickHouseNode
		var remote strings.Builder
		remote.WriteString("<" + name + ">")
		for s := 1; s <= shards; s++ {
			remote.WriteString("<shard><internal_replication>true</internal_replication>")
			for r := 1; r <= replicas; r++ {
				addr := FreeAddr(t)
				host, port, _ := net.SplitHostPort(addr)
				fmt.Fprintf(&remote, "<replica><host>%s</host><port>%s</port></replica>", host, port)
				nodes = append(nodes, ClickHouseNode{Shard: s, Replica: r, Addr: addr, Dir: t.TempDir()})
			}
			remote.WriteString("</shard>")
		}
		remote.WriteString("</" + name + ">")

		var stops []func()
		stopAll := func() {
			for _, stop := range stops {
				stop()
			}
		}
		ok := true
		for i, n := range nodes {
			_, interserverPort, _ := net.SplitHostPort(FreeAddr(t))
			cfg := fmt.Sprintf(`<?xml version="1.0"?>
<yandex>
    <interserver_http_host>127.0.0.1</interserver_http_host>
    <interserver_http_port>%s</interserver_http_port>
    <zookeeper>
        <node><host>%s</host><port>%s</port></node>
        <session_timeout_ms>10000</session_timeout_ms>
    </zookeeper>
    <distributed_ddl><path>/clickhouse/task_queue/ddl</path></distributed_ddl>
    <macros><shard>%02d</shard><replica>r%d</replica></macros>
    <remote_servers>%s</remote_servers>
</yandex>
`, interserverPort, zkHost, zkPort, n.Shard, n.Replica, remote.String())
			if err := os.MkdirAll(filepath.Join(n.Dir, "config.d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(n.Dir, "config.d", "cluster.xml"), []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			_, port, _ := net.SplitHostPort(n.Addr)
			got, err := runClickHouseScript(script, n.Dir, "AIOPS_CLICKHOUSE_TCP_PORT="+port)
			if err != nil {
				stopAll()
				t.Fatalf("testenv: ClickHouse node %d of cluster %s: %v", i+1, name, err)
			}
			dir := n.Dir
			stops = append(stops, func() { _ = exec.Command(script, "stop", dir).Run() })
			startWatchdog(script, dir)
			if got != n.Addr {
				ok = false // the port was taken meanwhile: remote_servers is wrong
				break
			}
		}
		for _, n := range nodes {
			if !ok {
				break
			}
			if err := zookeeperReachable(n.Addr); err != nil {
				t.Logf("testenv: ClickHouse shard %d replica %d cannot use ZooKeeper (attempt %d): %v", n.Shard, n.Replica, attempt, err)
				ok = false
			}
		}
		if ok {
			t.Cleanup(func() {
				stopAll()
				if t.Failed() {
					logClusterErrors(t, nodes)
				}
			})
			return nodes
		}
		stopAll()
		if attempt == 3 {
			t.Fatalf("testenv: ClickHouse cluster %s: a server could not have its port or reach ZooKeeper in %d attempts", name, attempt)
		}
	}
}

// zookeeperReachable waits until the server at addr answers a query that
// needs its ZooKeeper session.
func zookeeperReachable(addr string) error {
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		return err
	}
	defer conn.Close()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		var n uint64
		err = conn.QueryRow(ctx, "SELECT count() FROM system.zookeeper WHERE path = '/'").Scan(&n)
		cancel()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// logClusterErrors shows the end of each server's error log, since the
// servers' folders are removed with the test.
func logClusterErrors(t testing.TB, nodes []ClickHouseNode) {
	for _, n := range nodes {
		data, err := os.ReadFile(filepath.Join(n.Dir, "log", "clickhouse-server.err.log"))
		if err != nil {
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if len(lines) > 15 {
			lines = lines[len(lines)-15:]
		}
		t.Logf("ClickHouse shard %d replica %d (%s), end of its error log:\n%s", n.Shard, n.Replica, n.Addr, strings.Join(lines, "\n"))
	}
}
