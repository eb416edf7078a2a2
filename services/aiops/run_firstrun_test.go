package aiops

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// What a new user meets first: a second `aiops run` beside the first, a
// typo, no ClickHouse. Each is said at once, before anything started,
// with what to do.

// firstRunArgs are the flags of an `aiops run` with its state in dir, on
// the addresses given by key (the others free), ClickHouse at dsn.
func firstRunArgs(t *testing.T, dir, dsn string, addrs map[string]string) []string {
	t.Helper()
	args := []string{
		"-set", "nats.store_dir=" + dir + "/nats",
		"-set", "nats.generate_token_file=" + dir + "/nats-token",
		"-set", "ingest.generate_token_file=" + dir + "/ingest-token",
		"-set", "correlator.api.generate_token_file=" + dir + "/api-token",
		"-set", "notifier.api.generate_token_file=" + dir + "/api-token",
		"-set", "store.dsn=" + dsn,
		"-set", "log.level=warn",
	}
	for _, key := range []string{"nats.listen", "admin.listen", "ingest.listen", "correlator.api.listen", "notifier.api.listen"} {
		addr, ok := addrs[key]
		if !ok {
			addr = testenv.FreeAddr(t)
		}
		args = append(args, "-set", key+"="+addr)
	}
	return args
}

// notStarted fails the test when the embedded NATS of dir ever started.
func notStarted(t *testing.T, dir string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(dir, "nats", "jetstream")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the embedded NATS started (its store is there: %v)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "nats-token")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a NATS token was generated (%v)", err)
	}
}

// Every address taken is named at once, with its key and a free address
// to give it instead: `make run` beside another said only the first
// ("nats.listen: listen tcp 127.0.0.1:4222: bind: address already in
// use"), and ingest's after NATS and ClickHouse had started.
func TestRunNamesEveryTakenAddress(t *testing.T) {
	var held []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		held = append(held, ln.Addr().String())
	}
	api := testenv.FreeAddr(t)
	for _, check := range []bool{true, false} {
		dir := t.TempDir()
		args := firstRunArgs(t, dir, "clickhouse://"+testenv.FreeAddr(t)+"/default", map[string]string{
			"nats.listen": held[0], "ingest.listen": held[1],
			"correlator.api.listen": api, "notifier.api.listen": api,
		})
		if check {
			args = append([]string{"-check"}, args...)
		}
		err := runPipelineTo(context.Background(), args, nil)
		if err == nil {
			t.Fatalf("check %v: aiops run started on taken addresses", check)
		}
		for _, want := range []string{
			"3 listen addresses are taken, so nothing was started",
			"nats.listen " + held[0] + ": address already in use",
			"ingest.listen " + held[1] + ": address already in use",
			"notifier.api.listen " + api + ": also correlator.api.listen's address",
			"another aiops run is probably running",
			"scripts/run.sh -set ingest.listen=127.0.0.1:",
			" -set nats.listen=127.0.0.1:",
		} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("check %v: %v\nwant it to say %q", check, err, want)
			}
		}
		notStarted(t, dir)
	}
}

// A second pipeline on the store of a running one is refused before it
// starts anything, naming the first: it ran a second embedded JetStream
// on the same data/nats when only the ports were changed.
func TestRunRefusesASecondPipelineOnItsStore(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	dsn := testenv.ClickHouse(t)
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := &localRun{t: t, dir: dir, dsn: dsn}
	finished := first.start(ctx, nil, "-set", "log.level=warn")

	second := t.TempDir()
	args := firstRunArgs(t, second, dsn, nil)
	args = append(args, "-set", "nats.store_dir="+dir+"/nats") // the first one's
	for _, check := range []bool{true, false} {
		a := args
		if check {
			a = append([]string{"-check"}, a...)
		}
		// Not refused, it would run until this context ends.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := runPipelineTo(ctx, a, nil)
		cancel()
		want := fmt.Sprintf("nats.store_dir %s/nats is in use by another aiops: pid %d (", dir, os.Getpid())
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "give this one its own nats.store_dir") {
			t.Errorf("check %v: %v\nwant it to say %q and what to do", check, err, want)
		}
	}
	notStarted(t, second)

	cancel()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("the first pipeline stopped with %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the first pipeline did not stop within a minute")
	}
	// Stopped, it holds the store no more.
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := runPipelineTo(ctx, append([]string{"-check"}, args...), nil); err != nil {
		t.Fatalf("-check after the first pipeline stopped: %v", err)
	}
}

// The store's lock is the kernel's: held while its file is open, gone
// with it, whoever the holder.
func TestStoreDirLock(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "nats")
	lock, err := lockStoreDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := lockStoreDir(dir); err == nil || !strings.Contains(err.Error(), fmt.Sprintf("pid %d", os.Getpid())) {
		t.Fatalf("a second lock: %v, want it refused naming this process", err)
	}
	lock.Close()
	again, err := lockStoreDir(dir)
	if err != nil {
		t.Fatalf("the lock after its holder closed it: %v", err)
	}
	again.Close()
}

// -check says what would stop `aiops run` and starts nothing: scripts/run.sh
// asks it before it starts ClickHouse, which took seconds to start and
// stop again around every configuration error.
func TestRunCheckStartsNothing(t *testing.T) {
	dir := t.TempDir()
	args := firstRunArgs(t, dir, "clickhouse://"+testenv.FreeAddr(t)+"/default", nil)
	if err := runPipelineTo(context.Background(), append([]string{"-check"}, args...), nil); err != nil {
		t.Fatalf("-check of a configuration that is fine: %v", err)
	}
	notStarted(t, dir)

	err := runPipelineTo(context.Background(), append([]string{"-check", "-set", "notifer.routes=x.yml"}, args...), nil)
	if !errors.Is(err, config.ErrUnknownKey) || service.ExitCode(err) != service.ExitUsage ||
		!strings.Contains(err.Error(), `unknown key "notifer" (did you mean "notifier"?)`) {
		t.Fatalf("-check with a typo: %v (exit code %d), want the key and the closest one, exit code 2", err, service.ExitCode(err))
	}
}

// `bin/aiops run` alone, with no ClickHouse where store.dsn points, says
// what to do: it said only "connection refused".
func TestRunWithoutClickHouseSaysWhatToDo(t *testing.T) {
	dsn := "clickhouse://" + testenv.FreeAddr(t) + "/default"
	err := runPipelineTo(context.Background(), firstRunArgs(t, t.TempDir(), dsn, nil), nil)
	if err == nil {
		t.Fatal("aiops run started without ClickHouse")
	}
	for _, want := range []string{"connection refused", "no ClickHouse answers at " + dsn, "make run", "scripts/run.sh", "AIOPS_STORE__DSN="} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%v\nwant it to say %q", err, want)
		}
	}
}

// A pipeline file given to -config is told as one, by run and demo alike:
// `aiops run -config pipelines/default.yaml` said only `unknown key "detect"`.
func TestRunAndDemoNameAPipelineFileGivenAsConfig(t *testing.T) {
	const want = `pipelines/default.yaml looks like a detector pipeline file (its top key is detect), not a configuration: -set detector.pipeline=`
	run := runPipelineTo(context.Background(), []string{"-config", "../../pipelines/default.yaml"}, nil)
	demo := runDemo(context.Background(), []string{"-config", "../../pipelines/default.yaml", "-out", t.TempDir()}, io.Discard)
	for name, err := range map[string]error{"run": run, "demo": demo} {
		if service.ExitCode(err) != service.ExitUsage || !strings.Contains(err.Error(), want) {
			t.Errorf("aiops %s: %v\nwant a usage error saying %q", name, err, want)
		}
	}
}

// An address that cannot be bound for another reason than a listener on
// it (an address this machine does not have, a port below 1024 for a
// user) is named with that reason alone: it was said to be "taken", by
// "another aiops run", with the same host and port 0 as the fix, which
// fails the same way.
func TestRunNamesAnAddressThatCannotBeBoundAsSuch(t *testing.T) {
	addr := "192.0.2.1:8080" // TEST-NET-1: no machine has it
	if ln, err := net.Listen("tcp", addr); err == nil {
		ln.Close()
		t.Skipf("this machine has %s", addr)
	}
	dir := t.TempDir()
	args := firstRunArgs(t, dir, "clickhouse://"+testenv.FreeAddr(t)+"/default", map[string]string{"ingest.listen": addr})
	err := runPipelineTo(context.Background(), append([]string{"-check"}, args...), nil)
	if err == nil {
		t.Fatalf("aiops run -check accepted ingest.listen=%s", addr)
	}
	if !strings.Contains(err.Error(), "ingest.listen "+addr+": cannot assign requested address") {
		t.Errorf("%v\nwant it to name ingest.listen %s and why it cannot be bound", err, addr)
	}
	for _, wrong := range []string{"taken", "another aiops run", "-set ingest.listen=192.0.2.1:0"} {
		if strings.Contains(err.Error(), wrong) {
			t.Errorf("%v\nsays %q: nothing holds %s", err, wrong, addr)
		}
	}
	notStarted(t, dir)
}

// Every listener on port 0 (any free port: what -check suggests when the
// usual ports and the ones beside them are taken) is named in the start-up
// summary by the port it got, which a client can use: the summary said
// "http://127.0.0.1:0" for each but NATS, and the port was only in a log
// line, for the admin server in none a user would look at.
func TestRunSummaryNamesThePortsBoundForPortZero(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	dsn := testenv.ClickHouse(t)
	dir := t.TempDir()
	anyPort := map[string]string{}
	for _, key := range []string{"nats.listen", "admin.listen", "ingest.listen", "correlator.api.listen", "notifier.api.listen"} {
		anyPort[key] = "127.0.0.1:0"
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var summary syncBuffer
	finished := make(chan error, 1)
	go func() { finished <- runPipelineTo(ctx, firstRunArgs(t, dir, dsn, anyPort), &summary) }()
	// The summary is written in one piece, once every listener is bound.
	for !strings.Contains(summary.String(), "is listening on:") {
		select {
		case err := <-finished:
			t.Fatalf("aiops run exited before its summary: %v", err)
		case <-time.After(50 * time.Millisecond):
		}
	}
	urls := map[string]string{}
	for _, line := range strings.Split(summary.String(), "\n") {
		fields := strings.Fields(line)
		for i, f := range fields {
			if strings.Contains(f, "://") {
				urls[strings.Join(fields[:i], " ")] = f
				break
			}
		}
	}
	for _, name := range []string{"ingest", "incidents API", "silences API", "admin", "NATS (embedded)"} {
		u, ok := urls[name]
		if !ok || strings.HasSuffix(u, ":0") {
			t.Errorf("summary names %s at %q, want the port bound:\n%s", name, u, summary.String())
		}
	}
	if err := waitReady(strings.TrimPrefix(urls["admin"], "http://"), finished); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{"ingest": "/v1/events", "incidents API": "/v1/incidents", "silences API": "/api/v2/silences"} {
		resp, err := http.Get(urls[name] + path)
		if err != nil {
			t.Fatalf("%s at the summary's %s: %v", name, urls[name], err)
		}
		resp.Body.Close()
		// Without the token: the server there is the one named.
		if resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusMethodNotAllowed {
			t.Errorf("%s at the summary's %s answered GET %s with %d", name, urls[name], path, resp.StatusCode)
		}
	}
	cancel()
	if err := <-finished; err != nil {
		t.Fatalf("aiops run stopped with %v", err)
	}
}

// -check tells what the correlator would warn of in the service catalog
// (a misspelt key, a name found only in depends_on): those are warnings,
// not errors, so the check passed in silence and the typo was seen only
// as one JSON line among the start-up logs of the run.
func TestRunCheckPrintsTheCatalogsWarnings(t *testing.T) {
	dir := t.TempDir()
	catalog := filepath.Join(dir, "catalog.yaml")
	if err := os.WriteFile(catalog, []byte("services:\n"+
		"  search: {owner: fu, dependson: [search-index]}\n"+
		"  payments: {depends_on: [payment-db]}\n"+
		"  search-index: {}\n"+
		"  payments-db: {}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-check", "-set", "correlator.catalog=" + catalog},
		firstRunArgs(t, dir, "clickhouse://"+testenv.FreeAddr(t)+"/default", nil)...)
	var stderr strings.Builder
	if err := runPipelineMain(context.Background(), args, nil, &stderr); err != nil {
		t.Fatalf("-check of a catalog with warnings only: %v, want them told and the check passed", err)
	}
	for _, want := range []string{
		"correlator.catalog " + catalog + ": services.search.dependson: unknown key, ignored",
		`"payment-db" is named only in depends_on`,
	} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("-check said:\n%s\nwant it to say %q", stderr.String(), want)
		}
	}
	notStarted(t, dir)
}

// The gateway refuses while the consumer ingest.store_consumer names has
// not stored most of EVENTS. A writer given another durable left it
// watching "writer": absent, it watched nothing; left from before the
// rename, no writer read it any more, and once the events since filled
// nine tenths of EVENTS every request got 503, for good. The log miner
// holds its templated copies by the same consumer. aiops run has the
// three sections: it refuses them apart, naming the fix.
func TestRunRefusesAWriterDurableTheGatewayDoesNotWatch(t *testing.T) {
	dir := t.TempDir()
	base := firstRunArgs(t, dir, "clickhouse://"+testenv.FreeAddr(t)+"/default", nil)
	args := append([]string{"-check", "-set", "writer.consumer.durable=archive"}, base...)
	err := runPipelineMain(context.Background(), args, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-set ingest.store_consumer=archive") {
		t.Fatalf("-check with writer.consumer.durable=archive alone: %v, want an error naming -set ingest.store_consumer=archive", err)
	}
	args = append([]string{"-check", "-set", "writer.consumer.durable=archive", "-set", "ingest.store_consumer=archive"}, base...)
	err = runPipelineMain(context.Background(), args, nil, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "-set logminer.store_consumer=archive") {
		t.Fatalf("-check with writer.consumer.durable=archive and ingest.store_consumer=archive: %v, want an error naming -set logminer.store_consumer=archive", err)
	}
	args = append([]string{"-check", "-set", "writer.consumer.durable=archive", "-set", "ingest.store_consumer=archive", "-set", "logminer.store_consumer=archive"}, base...)
	if err := runPipelineMain(context.Background(), args, nil, io.Discard); err != nil {
		t.Fatalf("-check with the three set alike: %v", err)
	}
	notStarted(t, dir)
}
