// Package testenv gives tests real servers (ClickHouse, NATS) and the tools
// to break them (a TCP proxy that can cut every connection), so that tests
// exercise the real protocol instead of a mock of it.
//
// A server comes from the first of these that works:
//
//  1. an address in the environment (AIOPS_TEST_CLICKHOUSE_DSN or
//     AIOPS_TEST_CLICKHOUSE_ADDR for ClickHouse): a server you run yourself;
//  2. testcontainers-go, when a Docker engine answers (probed quickly: a test
//     never hangs or panics on a machine without Docker);
//  3. a local process: `clickhouse-server` from PATH started by
//     scripts/clickhouse.sh (install it with scripts/deps.sh), NATS embedded
//     in the test binary;
//  4. otherwise the test is skipped with a message naming what was tried and
//     what is missing. Under CI (CI=true) that skip is a failure instead, so a
//     broken CI machine cannot pass by skipping everything.
//
// Servers are shared by all tests of one test binary and started at most
// once. Isolation comes from fresh namespaces: each ClickHouse call creates a
// database with a random name and drops it when the test ends.
//
// Test packages call Main from TestMain so that shared servers stop as soon
// as the tests end:
//
//	func TestMain(m *testing.M) { testenv.Main(m) }
//
// Without it a watchdog process still stops a local ClickHouse a second
// after the test binary exits, and testcontainers' reaper removes containers.
package testenv

import (
	"os"
	"sync"
	"testing"
)

var (
	exitMu    sync.Mutex
	exitFuncs []func()
)

// Main runs the tests of m, stops the servers this package started for them
// and exits with the tests' status.
func Main(m *testing.M) {
	code := m.Run()
	Shutdown()
	os.Exit(code)
}

// Shutdown stops every shared server started so far, newest first. Main calls
// it; call it yourself only from a TestMain that cannot use Main.
func Shutdown() {
	exitMu.Lock()
	funcs := exitFuncs
	exitFuncs = nil
	exitMu.Unlock()
	for i := len(funcs) - 1; i >= 0; i-- {
		funcs[i]()
	}
}

// atExit registers f to run at Shutdown: how a shared server started once
// per test binary gets stopped, since no single test owns it.
func atExit(f func()) {
	exitMu.Lock()
	exitFuncs = append(exitFuncs, f)
	exitMu.Unlock()
}
