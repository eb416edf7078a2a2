package logminer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/platform"
)

// The binary's configuration file: the platform part and the logminer
// section, strictly (a misspelt key is refused, naming it).
func TestServiceConfigLoads(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "logminer.yaml")
	if err := os.WriteFile(good, []byte(`
bus: {urls: ["nats://127.0.0.1:4222"]}
logminer:
  max_templates: 5000
  formats:
    hdfs: '<Date> <Time> <Pid> <Level> <Component>: <Content>'
  interval: 30s
  consumer: {durable: logminer-p1, filter_subjects: ["events.log.hdfs"]}
  burst: {factor: 4, min_count: 20}
  state: {bucket: state, save_every: 1m}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := platform.Assemble(platform.DefaultConfig(), []platform.Component{Component})
	if err := cfg.Load("logminer", []string{"-config", good}); err != nil {
		t.Fatal(err)
	}
	c, _ := platform.SectionOf[Config](cfg, "logminer")
	c = c.WithDefaults()
	if c.MaxTemplates != 5000 || c.Formats["hdfs"] == "" || c.Interval != 30*time.Second || c.Consumer.FilterSubjects[0] != "events.log.hdfs" ||
		c.Burst.Factor != 4 || c.Burst.MinCount != 20 || c.Burst.Alpha != 0.2 || c.State.Bucket != "state" || c.State.Key != "logminer-p1" || c.State.SaveEvery != time.Minute {
		t.Errorf("loaded %+v", c)
	}

	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("logminer:\n  max_templatess: 5\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg = platform.Assemble(platform.DefaultConfig(), []platform.Component{Component})
	if err := cfg.Load("logminer", []string{"-config", bad}); err == nil || !strings.Contains(err.Error(), "max_templatess") {
		t.Errorf("misspelt key: %v", err)
	}
	cfg = platform.Assemble(platform.DefaultConfig(), []platform.Component{Component})
	if err := cfg.Load("logminer", []string{"-set", "logminer.consumer.filter_subjects=[events.log.>]"}); err == nil || !strings.Contains(err.Error(), "filter_subjects") {
		t.Errorf("filter that feeds the miner its own output: %v", err)
	}
}

// The binary's Main, wired through platform (config, metrics registry,
// admin server, shutdown), templates logs and stops cleanly, saving its
// state.
func TestMainEndToEnd(t *testing.T) {
	r := newRig(t)
	_, js := r.connect()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	finished := make(chan error, 1)
	go func() {
		finished <- Main(ctx, []string{"-set", "bus.urls=[" + r.nats.URL() + "]", "-set", "log.level=warn", "-set", "admin.listen=127.0.0.1:0"})
	}()
	logs := rawLogs(t, 30, 0, time.Now().Add(-time.Minute))
	publishRaw(t, js, logs)
	checkTemplated(t, logs, collect(t, js, "events.log.*.templated", len(logs), 30*time.Second))
	cancel()
	select {
	case err := <-finished:
		if err != nil {
			t.Fatalf("Main: %v", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("Main did not return within a minute of cancellation")
	}
	store, err := js.ObjectStore(context.Background(), "logminer")
	if err != nil {
		t.Fatal(err)
	}
	if info, err := store.GetInfo(context.Background(), "logminer"); err != nil || info.Size == 0 {
		t.Fatalf("no state saved on shutdown: %v %v", info, err)
	}
}
