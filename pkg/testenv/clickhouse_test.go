package testenv

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

func TestMain(m *testing.M) { Main(m) }

func openDSN(t *testing.T, dsn string) driver.Conn {
	t.Helper()
	opts, err := clickhouse.ParseDSN(dsn)
	if err != nil {
		t.Fatalf("ParseDSN(%s): %v", dsn, err)
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func databaseExists(t *testing.T, conn driver.Conn, name string) bool {
	t.Helper()
	var n uint64
	if err := conn.QueryRow(context.Background(), "SELECT count() FROM system.databases WHERE name = ?", name).Scan(&n); err != nil {
		t.Fatalf("query system.databases: %v", err)
	}
	return n == 1
}

func TestClickHouseGivesEachTestAFreshDatabase(t *testing.T) {
	var first, second string
	t.Run("first", func(t *testing.T) {
		first = ClickHouse(t)
		conn := openDSN(t, first)
		ctx := context.Background()
		if err := conn.Exec(ctx, "CREATE TABLE marker (x UInt8) ENGINE = Memory"); err != nil {
			t.Fatalf("create table in fresh database: %v", err)
		}
		var db string
		if err := conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&db); err != nil {
			t.Fatal(err)
		}
		if want := databaseOf(t, first); db != want || !strings.HasPrefix(db, testDatabasePrefix) {
			t.Fatalf("connected to database %q, DSN names %q", db, want)
		}
		t.Run("second", func(t *testing.T) {
			second = ClickHouse(t)
			if databaseOf(t, second) == databaseOf(t, first) {
				t.Fatalf("two calls returned the same database %s", databaseOf(t, first))
			}
			var n uint64
			if err := openDSN(t, second).QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = currentDatabase()").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Fatalf("fresh database has %d tables, want 0", n)
			}
		})
	})
	if t.Skipped() || first == "" {
		return
	}
	// The subtests ended, so their databases must be gone.
	admin := openDSN(t, ClickHouse(t))
	for _, dsn := range []string{first, second} {
		if databaseExists(t, admin, databaseOf(t, dsn)) {
			t.Errorf("database %s still exists after its test ended", databaseOf(t, dsn))
		}
	}
	if u, _ := url.Parse(first); u.Query().Get("dial_timeout") == "" {
		t.Errorf("DSN %s has no dial_timeout", first)
	}
}

func databaseOf(t *testing.T, dsn string) string {
	t.Helper()
	u, err := url.Parse(dsn)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimPrefix(u.Path, "/")
}

func TestClickHouseFromEnv(t *testing.T) {
	tests := []struct {
		name, dsn, addr string
		wantOK          bool
		wantDSN         string
		wantErr         string
	}{
		{name: "nothing set", wantOK: false},
		{name: "dsn", dsn: "clickhouse://u:p@db:9000/x", wantOK: true, wantDSN: "clickhouse://u:p@db:9000/x"},
		{name: "dsn wins over addr", dsn: "clickhouse://db:9000", addr: "other:9000", wantOK: true, wantDSN: "clickhouse://db:9000"},
		{name: "bad dsn", dsn: "clickhouse:///nohost", wantOK: true, wantErr: EnvClickHouseDSN},
		{name: "addr", addr: "127.0.0.1:9000", wantOK: true, wantDSN: "clickhouse://127.0.0.1:9000?dial_timeout=5s"},
		{name: "addr without port", addr: "db", wantOK: true, wantErr: EnvClickHouseAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(EnvClickHouseDSN, tt.dsn)
			t.Setenv(EnvClickHouseAddr, tt.addr)
			dsn, ok, err := clickhouseFromEnv()
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				return
			}
			if err != nil || dsn != tt.wantDSN {
				t.Fatalf("got %q, %v; want %q", dsn, err, tt.wantDSN)
			}
		})
	}
}

// recordingTB records how unavailable ends a test without ending this one.
type recordingTB struct {
	testing.TB
	skipped, failed string
}

func (r *recordingTB) Helper()                       {}
func (r *recordingTB) Skipf(format string, a ...any) { r.skipped = fmt.Sprintf(format, a...) }
func (r *recordingTB) Fatalf(format string, a ...any) {
	r.failed = fmt.Sprintf(format, a...)
}

func TestUnavailableSkipsLocallyAndFailsUnderCI(t *testing.T) {
	reason := fmt.Errorf("clickhouse-server not on PATH (run scripts/deps.sh)")
	for _, tt := range []struct {
		ci       string
		wantFail bool
	}{{"", false}, {"false", false}, {"true", true}, {"1", true}} {
		t.Run("CI="+tt.ci, func(t *testing.T) {
			t.Setenv("CI", tt.ci)
			rec := &recordingTB{TB: t}
			unavailable(rec, "ClickHouse", reason)
			msg := rec.skipped
			if tt.wantFail {
				msg = rec.failed
				if rec.skipped != "" {
					t.Fatalf("skipped under CI: %s", rec.skipped)
				}
			} else if rec.failed != "" {
				t.Fatalf("failed outside CI: %s", rec.failed)
			}
			if !strings.Contains(msg, "run scripts/deps.sh") {
				t.Fatalf("message %q does not carry the reason", msg)
			}
		})
	}
}

func TestDockerProbeReportsUnreachableEngine(t *testing.T) {
	for _, host := range []string{"unix://" + filepath.Join(t.TempDir(), "docker.sock"), "tcp://127.0.0.1:1"} {
		t.Run(host, func(t *testing.T) {
			t.Setenv("DOCKER_HOST", host)
			if err := dockerAnswers(dockerProbeTimeout); err == nil {
				t.Fatalf("engine at %s reported healthy", host)
			}
		})
	}
}

func TestRepoRootHoldsClickHouseScript(t *testing.T) {
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, clickhouseScriptRel)); err != nil {
		t.Fatalf("repo root %s: %v", root, err)
	}
}

func TestRedactHidesPasswords(t *testing.T) {
	for _, dsn := range []string{
		"clickhouse://default:s3cret@db:9000/x",
		"clickhouse://db:9000/x?username=u&password=s3cret",
	} {
		if got := redact(dsn); strings.Contains(got, "s3cret") {
			t.Errorf("redact(%q) = %q", dsn, got)
		}
	}
}

// The local server must be up within the test's normal budget and answer
// the native protocol with the version the package documents.
func TestClickHouseServerAnswers(t *testing.T) {
	conn := openDSN(t, ClickHouse(t))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var v string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&v); err != nil {
		t.Fatalf("SELECT version(): %v", err)
	}
	t.Logf("ClickHouse %s from %s", v, sharedClickHouse.source)
}
