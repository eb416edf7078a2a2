package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreeAddr returns a loopback host:port free at the time of the call, for
// a server a test starts, and never one it returned before in this
// process: the kernel may hand a port just closed out again at once, and
// a test asking for several addresses before it listens on any got one
// twice (aiops run -check refused admin.listen as notifier.api.listen's).
func FreeAddr(t testing.TB) string {
	t.Helper()
	freeAddrs.mu.Lock()
	defer freeAddrs.mu.Unlock()
	for {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		if !freeAddrs.given[addr] {
			freeAddrs.given[addr] = true
			return addr
		}
	}
}

// freeAddrs are the addresses FreeAddr returned.
var freeAddrs = struct {
	mu    sync.Mutex
	given map[string]bool
}{given: map[string]bool{}}

// StablePort returns a loopback TCP port free at the time of the call and
// below the kernel's ephemeral range, for a server a test kills and starts
// again on the same port. A port in the ephemeral range may be taken while
// the server is down by any outgoing connection or listener on port 0 of
// the machine (a fault test lost its ClickHouse's port that way); one below
// it only by a process that asks for it by number.
func StablePort(t testing.TB) string {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil && n > 2048 {
				low = n
			}
		}
	}
	from := max(1024, low-12000)
	for range 200 {
		port := from + rand.IntN(low-from)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			continue
		}
		l.Close()
		return strconv.Itoa(port)
	}
	t.Fatalf("no free port in %d-%d on 127.0.0.1", from, low-1)
	return ""
}
