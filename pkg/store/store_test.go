package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/rs/zerolog"
)

func TestConfigValidate(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "pw")
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // field named in the error; "" for valid
	}{
		{"minimal", Config{DSN: "clickhouse://127.0.0.1:9000/aiops"}, ""},
		{"tcp scheme", Config{DSN: "tcp://127.0.0.1:9000?database=aiops"}, ""},
		{"password from env", Config{DSN: "clickhouse://u@db:9000/x", Password: "p"}, ""},
		{"password file", Config{DSN: "clickhouse://u@db:9000/x", PasswordFile: pwFile}, ""},
		{"empty dsn", Config{}, "dsn: required"},
		{"http", Config{DSN: "http://db:8123"}, "only the native protocol"},
		{"unknown scheme", Config{DSN: "mysql://db:3306"}, "dsn: scheme"},
		{"no host", Config{DSN: "clickhouse:///x"}, "dsn: no host"},
		{"two passwords", Config{DSN: "clickhouse://db:9000", Password: "a", PasswordFile: pwFile}, "password_file"},
		{"dsn password and file", Config{DSN: "clickhouse://u:p@db:9000", PasswordFile: pwFile}, "dsn: carries a password"},
		{"dsn query password and env", Config{DSN: "clickhouse://db:9000?password=p", Password: "x"}, "dsn: carries a password"},
		{"negative dial timeout", Config{DSN: "clickhouse://db:9000", DialTimeout: -time.Second}, "dial_timeout"},
		{"negative conns", Config{DSN: "clickhouse://db:9000", MaxOpenConns: -1}, "max_open_conns"},
		{"cluster", Config{DSN: "clickhouse://db:9000", Cluster: "aiops"}, ""},
		{"cluster not a name", Config{DSN: "clickhouse://db:9000", Cluster: "aiops; DROP"}, "cluster"},
		{"async insert, waited for", Config{DSN: "clickhouse://db:9000?async_insert=1&wait_for_async_insert=1"}, ""},
		{"async insert, waited for by default", Config{DSN: "clickhouse://db:9000?async_insert=1"}, ""},
		{"async insert not waited for", Config{DSN: "clickhouse://db:9000?async_insert=true&wait_for_async_insert=0"}, "async_insert without wait_for_async_insert"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("Validate() = %v, want ErrInvalidConfig naming %q", err, tt.wantErr)
			}
		})
	}
}

func TestConfigNeverShowsPassword(t *testing.T) {
	for _, c := range []Config{
		{DSN: "clickhouse://u:hunter2@db:9000/x"},
		{DSN: "clickhouse://db:9000/x?password=hunter2"},
		{DSN: "clickhouse://db:9000/x?password=hunter2", Password: "other"},
		// The driver's proxy (of its HTTP protocol) with its credentials.
		{DSN: "clickhouse://u@db:9000/x?http_proxy=http%3A%2F%2Fpu%3Ahunter2%40proxy%3A3128"},
		{DSN: "clickhouse://u@db:9000/x?http_proxy=%25zz%3Ahunter2"},
	} {
		if r := c.Redacted(); strings.Contains(r, "hunter2") {
			t.Errorf("Redacted() = %q shows the password", r)
		}
		if err := c.Validate(); err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Validate() error %q shows the password", err)
		}
	}
}

// A password holding '/', '?' or '#' that is not percent-encoded ends the
// URL's host part early: the host becomes "user:<the password's first
// part>" and the rest of the password lands in the path, query or
// fragment, which Redacted keeps. Such a DSN is refused, without echoing it,
// before anything logs it or puts it into an error (a failed ping would).
func TestConfigRefusesAPasswordSplitByTheURL(t *testing.T) {
	for _, dsn := range []string{
		"clickhouse://default:1234/hunter2@127.0.0.1:9000/aiops",
		"clickhouse://default:1234?hunter2@127.0.0.1:9000/aiops",
		"clickhouse://default:1234#hunter2@127.0.0.1:9000/aiops",
		"clickhouse://default:1234@cd/hunter2@127.0.0.1:9000/aiops", // the password is 1234@cd/hunter2
	} {
		c := Config{DSN: dsn, DialTimeout: time.Second}
		err := c.Validate()
		if err == nil || !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "percent-encode") {
			t.Errorf("Validate(%s) = %v, want ErrInvalidConfig saying to percent-encode the password", dsn, err)
		}
		if err != nil && (strings.Contains(err.Error(), "1234") || strings.Contains(err.Error(), "hunter2")) {
			t.Errorf("Validate(%s) error %q shows part of the password", dsn, err)
		}
		if _, err := Open(context.Background(), c, zerolog.Nop()); err == nil || strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "1234") {
			t.Errorf("Open(%s) = %v, want a refusal that does not show the password", dsn, err)
		}
		if r := c.Redacted(); strings.Contains(r, "hunter2") || strings.Contains(r, "1234") {
			t.Errorf("Redacted() = %q shows the password", r)
		}
	}
	// Encoded, the same password is fine, and so is an @ that is no
	// password's end.
	for _, dsn := range []string{
		"clickhouse://default:1234%2Fhunter2@127.0.0.1:9000/aiops",
		"clickhouse://alice%40corp:pw@127.0.0.1:9000/aiops",
		"clickhouse://alice@corp:pw@127.0.0.1:9000/aiops",
		"clickhouse://127.0.0.1:9000/aiops?username=alice%40corp",
	} {
		if err := (Config{DSN: dsn}).Validate(); err != nil {
			t.Errorf("Validate(%s) = %v, want nil", dsn, err)
		}
	}
}

func TestParseVersion(t *testing.T) {
	tests := []struct {
		in      string
		want    Version
		wantErr bool
	}{
		{"18.16.1", Version{18, 16, 1}, false},
		{"24.8.4.13", Version{24, 8, 4}, false},
		{"20.3", Version{20, 3, 0}, false},
		{" 23.1.2 ", Version{23, 1, 2}, false},
		{"18", Version{}, true},
		{"x.1", Version{}, true},
		{"1.-2", Version{}, true},
	}
	for _, tt := range tests {
		got, err := ParseVersion(tt.in)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("ParseVersion(%q) = %v, %v; want %v, err %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
	v := Version{20, 3, 5}
	for _, c := range []struct {
		major, minor int
		want         bool
	}{{20, 3, true}, {20, 4, false}, {19, 99, true}, {21, 0, false}, {18, 16, true}} {
		if got := v.AtLeast(c.major, c.minor); got != c.want {
			t.Errorf("%v.AtLeast(%d, %d) = %v", v, c.major, c.minor, got)
		}
	}
}

func TestOpenDetectsVersionAndPings(t *testing.T) {
	s, _ := openTestStore(t)
	v := s.ServerVersion()
	if v.Major == 0 {
		t.Fatalf("ServerVersion() = %v, want a detected version", v)
	}
	var raw string
	if err := s.Conn.QueryRow(context.Background(), "SELECT version()").Scan(&raw); err != nil {
		t.Fatal(err)
	}
	if want, _ := ParseVersion(raw); want != v {
		t.Fatalf("ServerVersion() = %v, server says %s", v, raw)
	}
	if err := s.Ping(context.Background()); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func TestOpenUsesPasswordFile(t *testing.T) {
	_, dsn := openTestStore(t)
	// The test server's default user has no password, so a wrong one from
	// the file must make Open fail: proof that the file is read.
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("not-the-password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{DSN: dsn, PasswordFile: pw}, zerolog.Nop())
	if err == nil {
		t.Fatal("Open with a wrong password from password_file succeeded")
	}
	if strings.Contains(err.Error(), "not-the-password") {
		t.Fatalf("error shows the password: %v", err)
	}
	_, err = Open(ctx, Config{DSN: dsn, PasswordFile: filepath.Join(t.TempDir(), "missing")}, zerolog.Nop())
	if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "password_file") {
		t.Fatalf("Open with a missing password file = %v, want ErrInvalidConfig naming password_file", err)
	}
}

func TestOpenUnreachableServerFails(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := Open(ctx, Config{DSN: "clickhouse://127.0.0.1:1/x", DialTimeout: time.Second}, zerolog.Nop())
	if err == nil || errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("Open(unreachable) = %v, want a connection error", err)
	}
}

func TestIdentifiers(t *testing.T) {
	goodTables := map[string]string{"events": "`events`", "db.events": "`db`.`events`", "_t1": "`_t1`"}
	for in, want := range goodTables {
		if got, err := QuoteTable(in); err != nil || got != want {
			t.Errorf("QuoteTable(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	badTables := []string{"", "events; DROP TABLE x", "ev`ents", "a.b.c", "1abc", "events--", "ev ents", "ev'ents", "db.", ".t", strings.Repeat("a", 129), "événements"}
	for _, in := range badTables {
		if got, err := QuoteTable(in); err == nil || !errors.Is(err, ErrInvalidIdentifier) {
			t.Errorf("QuoteTable(%q) = %q, %v; want ErrInvalidIdentifier", in, got, err)
		}
	}
	if got, err := QuoteColumn("labels.key"); err != nil || got != "`labels.key`" {
		t.Errorf("QuoteColumn(labels.key) = %q, %v", got, err)
	}
	for _, in := range []string{"", "a.b.c", "x`) VALUES", "id,kind", "a/*", "labels.", "k\x00"} {
		if _, err := QuoteColumn(in); !errors.Is(err, ErrInvalidIdentifier) {
			t.Errorf("QuoteColumn(%q) accepted", in)
		}
	}
}

// The password file is read like every secret file of the project
// (config.ReadSecretFile): one trailing newline dropped, an empty or
// oversized file refused with an error naming password_file, never the
// password.
func TestPasswordFileReadLikeEverySecret(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	opts, err := Config{DSN: "clickhouse://u@db:9000/x", PasswordFile: write("pw", "s3cret-pw\n")}.options()
	if err != nil || opts.Auth.Password != "s3cret-pw" {
		t.Fatalf("password %q, err %v; want s3cret-pw", opts.Auth.Password, err)
	}
	for name, content := range map[string]string{"empty": "\n", "huge": strings.Repeat("x", 70<<10)} {
		_, err := Config{DSN: "clickhouse://u@db:9000/x", PasswordFile: write(name, content)}.options()
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "password_file") || strings.Contains(err.Error(), "xxxx") {
			t.Errorf("%s password file: err = %v, want ErrInvalidConfig naming password_file", name, err)
		}
	}
}

// The pool is sized for what shares it (the writer's inserts, one per
// table and sender, plus ReservedConns), and keeps as many idle as it may
// open, so that connections released between inserts are reused rather
// than closed and dialled again. clickhouse-go's own default is 10 open,
// 5 idle.
func TestConfigSizesThePool(t *testing.T) {
	for _, c := range []struct {
		name           string
		cfg            Config
		wantOpen, idle int
	}{
		{"default", Config{DSN: "clickhouse://db:9000/x"}, DefaultMaxOpenConns, DefaultMaxOpenConns},
		{"max_open_conns", Config{DSN: "clickhouse://db:9000/x", MaxOpenConns: 40}, 40, 40},
		{"from the DSN", Config{DSN: "clickhouse://db:9000/x?max_open_conns=30"}, 30, 30},
		{"config over DSN", Config{DSN: "clickhouse://db:9000/x?max_open_conns=30", MaxOpenConns: 50}, 50, 50},
		{"idle from the DSN", Config{DSN: "clickhouse://db:9000/x?max_idle_conns=3"}, DefaultMaxOpenConns, 3},
		{"what the services need", Config{DSN: "clickhouse://db:9000/x", NeededConns: 24}, 24, 24},
		{"need under the default", Config{DSN: "clickhouse://db:9000/x", NeededConns: 5}, DefaultMaxOpenConns, DefaultMaxOpenConns},
		{"max_open_conns over the need", Config{DSN: "clickhouse://db:9000/x", MaxOpenConns: 12, NeededConns: 24}, 12, 12},
	} {
		opts, err := c.cfg.options()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if opts.MaxOpenConns != c.wantOpen || opts.MaxIdleConns != c.idle {
			t.Errorf("%s: pool of %d open, %d idle; want %d, %d", c.name, opts.MaxOpenConns, opts.MaxIdleConns, c.wantOpen, c.idle)
		}
	}
	if DefaultMaxOpenConns < 10+ReservedConns {
		t.Errorf("DefaultMaxOpenConns %d leaves less than ReservedConns (%d) beside the writer's ten inserts", DefaultMaxOpenConns, ReservedConns)
	}
}

// TestPoolOutlastsTheWritersInserts: the writer keeps one insert per table
// (ten) in flight, each holding a connection for as long as the server
// takes. Another table's batch, the retention pass and the readiness ping
// must still get a connection at once; with clickhouse-go's default pool
// (10) they waited the dial timeout and failed ("acquire conn timeout").
func TestPoolOutlastsTheWritersInserts(t *testing.T) {
	dsn := testenv.ClickHouse(t)
	ctx := context.Background()
	s, err := Open(ctx, Config{DSN: dsn, DialTimeout: time.Second}, zerolog.New(zerolog.NewTestWriter(t)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	createKV(t, s, "MergeTree")
	const slowInserts = 10
	var wg sync.WaitGroup
	for range slowInserts {
		wg.Go(func() {
			// A slow insert, as far as the pool can tell: one connection
			// held for three seconds.
			rows, err := s.Conn.Query(ctx, "SELECT sleepEachRow(0.5) FROM numbers(6) SETTINGS max_block_size = 1")
			if err != nil {
				t.Errorf("slow query: %v", err)
				return
			}
			for rows.Next() {
			}
			rows.Close()
		})
	}
	defer wg.Wait()
	deadline := time.Now().Add(5 * time.Second)
	for s.Conn.Stats().Open < slowInserts && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := s.Conn.Stats().Open; n < slowInserts {
		t.Fatalf("%d connections in use, want the %d slow ones", n, slowInserts)
	}

	if err := s.Ping(ctx); err != nil {
		t.Errorf("readiness ping while %d inserts are in flight: %v", slowInserts, err)
	}
	w := newWriter(t, s.Conn, BatchConfig{Table: "kv", Columns: kvColumns, MaxRows: 1})
	res := newResults()
	if err := w.Add(ctx, kvRow("a"), res.done("a")); err != nil {
		t.Fatal(err)
	}
	res.wait(t, 1)
	if got := res.get("a"); got[0] != nil {
		t.Errorf("insert while %d inserts are in flight: %v", slowInserts, got[0])
	}
}

// A password in the DSN works, and is warned about: given with -set it
// shows in ps to every user of the machine. A DSN without one, the
// password coming from password_file or the environment, is not.
func TestConfigWarnsOfAPasswordInTheDSN(t *testing.T) {
	for dsn, warned := range map[string]bool{
		"clickhouse://aiops:s3cret@127.0.0.1:9000/aiops":          true,
		"clickhouse://127.0.0.1:9000/aiops?username=a&password=b": true,
		"clickhouse://aiops@127.0.0.1:9000/aiops":                 false,
		"clickhouse://127.0.0.1:9000/aiops":                       false,
	} {
		c := Config{DSN: dsn}
		if err := c.Validate(); err != nil {
			t.Fatalf("%s: %v", dsn, err)
		}
		w := c.Warnings()
		if (len(w) > 0) != warned {
			t.Errorf("%s: warnings %q, want warned %v", dsn, w, warned)
		}
		for _, s := range w {
			if strings.Contains(s, "s3cret") || !strings.Contains(s, "password_file") {
				t.Errorf("%s: warning %q: want it to name password_file and not the password", dsn, s)
			}
		}
	}
}
