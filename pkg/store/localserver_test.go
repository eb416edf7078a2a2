package store

import (
	"bufio"
	"bytes"
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// TestLocalServerHasAPassword is issue #14 item 7: the ClickHouse that
// `make run` starts (scripts/run.sh through scripts/clickhouse.sh) had a
// default user without a password that answered CREATE TABLE over HTTP
// without credentials. With AIOPS_CLICKHOUSE_PASSWORD_FILE (what run.sh
// sets) the script generates the password in that file, mode 0600, and the
// server refuses requests without it, over HTTP and natively; the store
// connects with store.password_file.
func TestLocalServerHasAPassword(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a ClickHouse server")
	}
	if _, err := exec.LookPath("clickhouse-server"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("clickhouse-server is not on PATH")
		}
		t.Skip("clickhouse-server is not on PATH (scripts/deps.sh installs it)")
	}
	script, err := filepath.Abs("../../scripts/clickhouse.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	pwFile := filepath.Join(dir, "clickhouse-password")
	cmd := exec.Command(script, "start", filepath.Join(dir, "server"))
	cmd.Env = append(os.Environ(), "AIOPS_CLICKHOUSE_PASSWORD=", "AIOPS_CLICKHOUSE_PASSWORD_FILE="+pwFile)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Cleanup(func() { _ = exec.Command(script, "stop", filepath.Join(dir, "server")).Run() })
	if err != nil {
		t.Fatalf("clickhouse.sh start: %v\n%s", err, stderr.String())
	}
	if strings.Contains(stderr.String(), "WARNING") {
		t.Errorf("a warning with a password set: %s", stderr.String())
	}
	env := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			env[k] = v
		}
	}
	envFile, err := os.ReadFile(filepath.Join(dir, "server", "clickhouse.env"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(envFile), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	info, err := os.Stat(pwFile)
	if err != nil {
		t.Fatalf("no password file: %v", err)
	}
	if info.Mode().Perm() != 0o600 || info.Size() != 32 {
		t.Fatalf("password file mode %v, %d bytes; want 0600 and 32", info.Mode().Perm(), info.Size())
	}
	pw, _ := os.ReadFile(pwFile)

	httpPost := func(query string, params url.Values) (int, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+env["CLICKHOUSE_HTTP_ADDR"]+"/?"+params.Encode(), strings.NewReader(query))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, b.String()
	}
	create := "CREATE TABLE default.intruder (x UInt8) ENGINE = Memory"
	if code, body := httpPost(create, nil); code == http.StatusOK {
		t.Fatalf("CREATE TABLE over HTTP without credentials answered 200: %s", body)
	}
	if code, body := httpPost(create, url.Values{"user": {"default"}, "password": {string(pw)}}); code != http.StatusOK {
		t.Fatalf("CREATE TABLE over HTTP with the password: %d %s", code, body)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	dsn := "clickhouse://" + env["CLICKHOUSE_ADDR"] + "/default"
	if s, err := Open(ctx, Config{DSN: dsn}, zerolog.Nop()); err == nil {
		s.Close()
		t.Fatal("a native connection without the password was accepted")
	}
	s, err := Open(ctx, Config{DSN: dsn, PasswordFile: pwFile}, zerolog.Nop())
	if err != nil {
		t.Fatalf("with store.password_file: %v", err)
	}
	defer s.Close()
	var n uint64
	if err := s.Conn.QueryRow(ctx, "SELECT count() FROM system.tables WHERE database = 'default' AND name = 'intruder'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("the table created with the password: %d, %v", n, err)
	}
}
