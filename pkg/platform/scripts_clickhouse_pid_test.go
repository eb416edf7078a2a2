package platform

import (
	"os"
	"path/filepath"
	"testing"
)

// clickhouse.sh trusts and signals only the server it started for its
// folder. A pid file outlives its server (a reboot, a crash), and its pid
// may come back as another ClickHouse (another folder's, the system's):
// `stop` killed that one, `status` and `start` took it for its own.
func TestClickHouseScriptLeavesAnotherClickHouseAlone(t *testing.T) {
	c := newScriptCheckout(t)
	mine, theirs := filepath.Join(c.root, "data", "mine"), filepath.Join(c.root, "data", "theirs")
	for _, dir := range []string{mine, theirs} {
		if code, stderr := c.run("scripts/clickhouse.sh", "start", dir); code != 0 {
			t.Fatalf("clickhouse.sh start %s: exit %d\n%s", dir, code, stderr)
		}
		t.Cleanup(func() { c.run("scripts/clickhouse.sh", "stop", dir) })
	}
	// mine's server is gone and its pid now belongs to theirs.
	if code, stderr := c.run("scripts/clickhouse.sh", "stop", mine); code != 0 {
		t.Fatalf("clickhouse.sh stop: exit %d\n%s", code, stderr)
	}
	theirPid, err := os.ReadFile(filepath.Join(theirs, "clickhouse-server.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mine, "clickhouse-server.pid"), theirPid, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.run("scripts/clickhouse.sh", "status", mine); code == 0 {
		t.Error("status took another folder's server for its own")
	}
	if code, stderr := c.run("scripts/clickhouse.sh", "stop", mine); code != 0 {
		t.Fatalf("clickhouse.sh stop: exit %d\n%s", code, stderr)
	}
	if code, stderr := c.run("scripts/clickhouse.sh", "status", theirs); code != 0 {
		t.Fatalf("stop of one folder stopped another folder's server:\n%s", stderr)
	}
	// start starts a server of its own instead of reporting theirs.
	if code, stderr := c.run("scripts/clickhouse.sh", "start", mine); code != 0 {
		t.Fatalf("clickhouse.sh start: exit %d\n%s", code, stderr)
	}
	if myPid, err := os.ReadFile(filepath.Join(mine, "clickhouse-server.pid")); err != nil || string(myPid) == string(theirPid) {
		t.Fatalf("start kept pid %s of another folder's server (err %v)", myPid, err)
	}
}
