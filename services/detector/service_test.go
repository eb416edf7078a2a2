package detector

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/platform"
)

// The binary's configuration file: the platform part and the detector
// section, strictly (a misspelt key is refused, naming it).
func TestServiceConfigLoads(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "detector.yaml")
	os.WriteFile(good, []byte(`
bus: {urls: ["nats://127.0.0.1:4222"]}
detector:
  pipeline: ../../pipelines/default.yaml
  max_series: 5000
  instance: detector-p2
  consumer: {durable: detector-p2, filter_subjects: ["events.metric.2.>"]}
  snapshot: {interval: 30s, bucket: state}
`), 0o600)
	cfg := platform.Assemble(platform.DefaultConfig(), []platform.Component{Component})
	if err := cfg.Load("detector", []string{"-config", good}); err != nil {
		t.Fatal(err)
	}
	loaded, _ := platform.SectionOf[Config](cfg, "detector")
	d := loaded.WithDefaults()
	if d.MaxSeries != 5000 || d.Instance != "detector-p2" || d.Consumer.FilterSubjects[0] != "events.metric.2.>" ||
		d.Snapshot.Interval != 30*time.Second || d.Snapshot.Bucket != "state" || d.Consumer.Stream != "EVENTS" {
		t.Errorf("loaded %+v", d)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("detector:\n  max_seriess: 5\n"), 0o600)
	cfg = platform.Assemble(platform.DefaultConfig(), []platform.Component{Component})
	if err := cfg.Load("detector", []string{"-config", bad}); err == nil || !strings.Contains(err.Error(), "max_seriess") {
		t.Errorf("misspelt key: %v", err)
	}
	cfg = platform.Assemble(platform.DefaultConfig(), []platform.Component{Component})
	if err := cfg.Load("detector", []string{"-set", "detector.max_series=-3"}); err == nil || !strings.Contains(err.Error(), "max_series") {
		t.Errorf("bad value: %v", err)
	}
}
