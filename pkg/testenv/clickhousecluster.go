package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
// waits until it answers "ruok", stops it when the test ends and returns its
// host:port. Without java or the jars the test skips, or fails under CI.
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
	addr := freeLoopbackAddr(t)
	host, port, _ := net.SplitHostPort(addr)
	cfg := filepath.Join(dir, "zoo.cfg")
	// A short tick keeps session set-up quick; 4lw "ruok" is the readiness
	// probe.
	text := fmt.Sprintf("dataDir=%s\nclientPort=%s\nclientPortAddress=%s\ntickTime=500\n"+
		"admin.enableServer=false\n4lw.commands.whitelist=ruok\n", filepath.Join(dir, "data"), port, host)
	if err := os.WriteFile(cfg, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	cmd := exec.Command(java, "-Xmx256m", "-cp", classpath, "org.apache.zookeeper.server.ZooKeeperServerMain", cfg)
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatalf("testenv: start ZooKeeper: %v", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	for deadline := time.Now().Add(zookeeperReadyTimeout); ; time.Sleep(100 * time.Millisecond) {
		answer, err := zookeeperCommand(addr, "ruok")
		if err == nil && answer == "imok" {
			return addr
		}
		select {
		case <-exited:
			t.Fatalf("testenv: ZooKeeper exited during start-up:\n%s", logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("testenv: ZooKeeper did not answer ruok on %s within %s (%q, %v):\n%s", addr, zookeeperReadyTimeout, answer, err, logs.String())
		}
	}
}

// zookeeperCommand sends a four-letter command and returns the answer.
func zookeeperCommand(addr, cmd string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return "", err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := conn.Write([]byte(cmd)); err != nil {
		return "", err
	}
	var b bytes.Buffer
	_, err = b.ReadFrom(bufio.NewReader(conn))
	return b.String(), err
}

func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// ClickHouseNode is one server of a ClickHouseCluster.
type ClickHouseNode struct {
	Shard, Replica int    // from 1, as in the server's macros
	Addr           string // native protocol host:port, user default without password
	Dir            string // the server's folder (config.xml, config.d, data, log)
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
				addr := freeLoopbackAddr(t)
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
			_, interserverPort, _ := net.SplitHostPort(freeLoopbackAddr(t))
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
		if ok {
			t.Cleanup(stopAll)
			return nodes
		}
		stopAll()
		if attempt == 3 {
			t.Fatalf("testenv: ClickHouse cluster %s: a server could not have its port in %d attempts", name, attempt)
		}
	}
}
