package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	} {
		if r := c.Redacted(); strings.Contains(r, "hunter2") {
			t.Errorf("Redacted() = %q shows the password", r)
		}
		if err := c.Validate(); err != nil && strings.Contains(err.Error(), "hunter2") {
			t.Errorf("Validate() error %q shows the password", err)
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
