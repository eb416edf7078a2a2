//go:build linux || darwin

package store

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"unsafe"

	"github.com/ebitengine/purego"
)

// EnvChdbLib points at libchdb.so (ClickHouse as a library: `npm pack
// @chdb/lib-linux-x64-gnu` and untar). The tests against the real server
// cover the old end of the version range (Debian's 18.16); this covers the
// current end, where the version-gated schema blocks run, without a server.
const EnvChdbLib = "AIOPS_TEST_CHDB_LIB"

// chdb is the part of libchdb's C API these tests use; the library allows
// one connection per process.
type chdb struct {
	conn          uintptr
	query         func(conn uintptr, query, format string) uintptr
	resultError   func(res uintptr) string
	resultBuffer  func(res uintptr) *byte
	resultLength  func(res uintptr) uintptr
	destroyResult func(res uintptr)
}

var (
	chdbOnce sync.Once
	chdbConn *chdb
	chdbErr  error
)

func openChdb(t *testing.T) *chdb {
	t.Helper()
	lib := os.Getenv(EnvChdbLib)
	if lib == "" {
		t.Skipf("$%s unset: no current ClickHouse to check the newer-server schema blocks on", EnvChdbLib)
	}
	chdbOnce.Do(func() {
		h, err := purego.Dlopen(lib, purego.RTLD_NOW|purego.RTLD_GLOBAL)
		if err != nil {
			chdbErr = fmt.Errorf("dlopen %s: %w", lib, err)
			return
		}
		c := &chdb{}
		var connect func(argc int32, argv **byte) *uintptr
		purego.RegisterLibFunc(&connect, h, "chdb_connect")
		purego.RegisterLibFunc(&c.query, h, "chdb_query")
		purego.RegisterLibFunc(&c.resultError, h, "chdb_result_error")
		purego.RegisterLibFunc(&c.resultBuffer, h, "chdb_result_buffer")
		purego.RegisterLibFunc(&c.resultLength, h, "chdb_result_length")
		purego.RegisterLibFunc(&c.destroyResult, h, "chdb_destroy_query_result")
		dir, err := os.MkdirTemp("", "aiops-chdb-")
		if err != nil {
			chdbErr = err
			return
		}
		args := []string{"clickhouse", "--path=" + dir}
		argv := make([]*byte, len(args))
		for i, a := range args {
			b := append([]byte(a), 0)
			argv[i] = &b[0]
		}
		p := connect(int32(len(argv)), &argv[0])
		if p == nil || *p == 0 {
			chdbErr = errors.New("chdb_connect returned no connection")
			return
		}
		c.conn = *p
		chdbConn = c
	})
	if chdbErr != nil {
		t.Fatalf("chdb: %v", chdbErr)
	}
	return chdbConn
}

// run executes one statement and returns its TSV output.
func (c *chdb) run(q string) (string, error) {
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

func (c *chdb) mustRun(t *testing.T, q string) string {
	t.Helper()
	out, err := c.run(q)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return strings.TrimSpace(out)
}

func TestSchemaOnCurrentClickHouse(t *testing.T) {
	c := openChdb(t)
	t.Logf("chdb ClickHouse %s", c.mustRun(t, "SELECT version()"))
	db := fmt.Sprintf("aiops_schema_%d", os.Getpid())
	c.mustRun(t, "CREATE DATABASE "+db)
	c.mustRun(t, "USE "+db)
	// chdb sessions may not keep USE between queries; the check below
	// fails loudly if they do not.
	if got := c.mustRun(t, "SELECT currentDatabase()"); got != db {
		t.Fatalf("currentDatabase() = %q after USE %s", got, db)
	}

	units, err := loadMigrations(Schema)
	if err != nil {
		t.Fatal(err)
	}
	c.mustRun(t, createMigrationsTable)
	for _, u := range units {
		for i, stmt := range u.statements {
			if _, err := c.run(stmt); err != nil {
				t.Fatalf("migration %s statement %d fails on current ClickHouse: %v\n%s", u.name, i+1, err, stmt)
			}
		}
		c.mustRun(t, fmt.Sprintf("INSERT INTO %s (name, checksum, server_version) VALUES ('%s', '%s', 'chdb')", MigrationsTable, u.name, u.checksum))
	}
	if got := c.mustRun(t, selectAppliedMigrations+" ORDER BY name"); strings.Count(got, "\n")+1 != len(units) {
		t.Fatalf("applied migrations read back as %q, want %d units", got, len(units))
	}

	types := c.mustRun(t, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events' AND name IN ('severity', 'source', 'body') ORDER BY name")
	for _, want := range []string{"body\tString", "severity\tLowCardinality(String)", "source\tLowCardinality(String)"} {
		if !strings.Contains(types, want) {
			t.Fatalf("events columns after all blocks:\n%s\nwant %q", types, want)
		}
	}
	codecs := c.mustRun(t, "SELECT name, compression_codec FROM system.columns WHERE database = currentDatabase() AND table = 'events' AND name = 'body'")
	if !strings.Contains(codecs, "ZSTD(3)") {
		t.Fatalf("body codec = %q, want ZSTD(3)", codecs)
	}

	// A redelivered event stays one row under FINAL; retention's partition
	// query and DROP PARTITION ID work here too.
	for i := 0; i < 2; i++ {
		c.mustRun(t, "INSERT INTO events (id, kind, time, observed_time, source, service, severity, fingerprint, `labels.key`, `labels.value`, `resource.key`, `resource.value`, body, schema_version) "+
			"VALUES ('01J0', 'log', '2026-01-01 10:00:00', '2026-01-01 10:00:01', 'test', 'checkout', 'error', 'fp', ['env'], ['prod'], [], [], '{}', 1)")
	}
	if got := c.mustRun(t, "SELECT count() FROM events FINAL"); got != "1" {
		t.Fatalf("FINAL count = %s, want 1", got)
	}
	parts := c.mustRun(t, strings.Replace(partitionsQuery("currentDatabase()"), "table = ?", "table = 'events'", 1))
	if !strings.HasPrefix(parts, "20260101\t2026-01-01 10:00:00") {
		t.Fatalf("partitions query on current ClickHouse = %q", parts)
	}
	c.mustRun(t, "ALTER TABLE events DROP PARTITION ID '20260101'")
	if got := c.mustRun(t, "SELECT count() FROM events"); got != "0" {
		t.Fatalf("%s rows after DROP PARTITION ID, want 0", got)
	}
}
