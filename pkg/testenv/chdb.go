//go:build linux || darwin

package testenv

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
	"golang.org/x/sys/unix"
)

// EnvChdbLib points at libchdb.so, ClickHouse as a library (`npm pack
// @chdb/lib-linux-x64-gnu` and untar; scripts/chdb.sh does it). The tests
// against a real server cover the old end of the version range (Debian's
// 18.16); this covers the current end, where the version-gated schema blocks
// run and the cookbook queries must work too, without a server.
const EnvChdbLib = "AIOPS_TEST_CHDB_LIB"

// CHDB is an in-process current ClickHouse, reached through libchdb's C
// API with purego (no cgo). The library allows one connection per process,
// so every test of a binary shares it: give each its own database.
type CHDB struct {
	conn          uintptr
	query         func(conn uintptr, query, format string) uintptr
	resultError   func(res uintptr) string
	resultBuffer  func(res uintptr) *byte
	resultLength  func(res uintptr) uintptr
	destroyResult func(res uintptr)
}

var (
	chdbOnce sync.Once
	chdbConn *CHDB
	chdbErr  error
)

// CurrentClickHouse loads libchdb once per process, or skips the test when
// $AIOPS_TEST_CHDB_LIB is unset: the current-server check is an extra that
// needs a 560 MB library, not a server every machine has.
func CurrentClickHouse(t testing.TB) *CHDB {
	t.Helper()
	lib := os.Getenv(EnvChdbLib)
	if lib == "" {
		t.Skipf("$%s unset: no current ClickHouse (libchdb) to check against; scripts/chdb.sh fetches it", EnvChdbLib)
	}
	chdbOnce.Do(func() { chdbConn, chdbErr = loadChdb(lib) })
	if chdbErr != nil {
		t.Fatalf("chdb: %v", chdbErr)
	}
	return chdbConn
}

func loadChdb(lib string) (*CHDB, error) {
	h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
	if err != nil {
		return nil, fmt.Errorf("dlopen %s: %w", lib, err)
	}
	c := &CHDB{}
	var connect func(argc int32, argv **byte) *uintptr
	purego.RegisterLibFunc(&connect, h, "chdb_connect")
	purego.RegisterLibFunc(&c.query, h, "chdb_query")
	purego.RegisterLibFunc(&c.resultError, h, "chdb_result_error")
	purego.RegisterLibFunc(&c.resultBuffer, h, "chdb_result_buffer")
	purego.RegisterLibFunc(&c.resultLength, h, "chdb_result_length")
	purego.RegisterLibFunc(&c.destroyResult, h, "chdb_destroy_query_result")
	dir, err := os.MkdirTemp("", "aiops-chdb-")
	if err != nil {
		return nil, err
	}
	// The library reads a standard input that is a file as a query's
	// data: an INSERT ... VALUES then fails with "Processing async inserts
	// with both inlined and external data (from stdin or infile)". Where
	// /dev/null is a plain file that other processes write to (as on some
	// sandboxes), that happened at random; an empty pipe is no data.
	if err := emptyStdin(); err != nil {
		return nil, err
	}
	args := []string{"clickhouse", "--path=" + dir}
	argv := make([]*byte, len(args))
	for i, a := range args {
		b := append([]byte(a), 0)
		argv[i] = &b[0]
	}
	p := connect(int32(len(argv)), &argv[0])
	if p == nil || *p == 0 {
		return nil, errors.New("chdb_connect returned no connection")
	}
	c.conn = *p
	return c, nil
}

// emptyStdin makes the process's standard input an empty pipe (tests read
// none).
func emptyStdin() error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	w.Close()
	defer r.Close()
	return unix.Dup2(int(r.Fd()), 0)
}

// Query runs one statement and returns its output as TabSeparated text.
func (c *CHDB) Query(q string) (string, error) {
	res := c.query(c.conn, q, "TabSeparated")
	if res == 0 {
		return "", errors.New("chdb_query returned no result")
	}
	defer c.destroyResult(res)
	if e := c.resultError(res); e != "" {
		return "", errors.New(e)
	}
	n := int(c.resultLength(res))
	if n == 0 {
		return "", nil
	}
	return string(unsafe.Slice(c.resultBuffer(res), n)), nil
}

// MustQuery is Query that fails the test on an error and trims the output.
func (c *CHDB) MustQuery(t testing.TB, q string) string {
	t.Helper()
	out, err := c.Query(q)
	if err != nil {
		t.Fatalf("%.300s: %v", q, err)
	}
	return strings.TrimSpace(out)
}
