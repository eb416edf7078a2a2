package testenv

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreeAddr returns a loopback host:port free at the time of the call, for
// a server a test starts.
func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

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
