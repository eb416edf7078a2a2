package aiops

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/services/ingest"
	"github.com/aiops-dev/aiops/services/writer"
)

// TestExampleConfigsLoad keeps the example configurations in deployments/
// true: each must load, strictly, into the struct of the binary it is for.
func TestExampleConfigsLoad(t *testing.T) {
	dir := filepath.Join("..", "..", "deployments", "config")
	files := map[string]func() *platform.AssembledConfig{
		"aiops.yaml": func() *platform.AssembledConfig { var n EmbeddedNATSConfig; return RunConfig(&n) },
		"writer.yaml": func() *platform.AssembledConfig {
			return platform.Assemble(platform.DefaultConfig(), []platform.Component{writer.Component})
		},
		"ingest.yaml": func() *platform.AssembledConfig {
			return platform.Assemble(platform.DefaultConfig(), []platform.Component{ingest.Component})
		},
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		newConfig, ok := files[e.Name()]
		if !ok {
			t.Errorf("%s: no test loads this example; add it to the map", e.Name())
			continue
		}
		// Secrets named by *_file keys need not exist to load; Validate
		// checks shapes, not files.
		if err := newConfig().LoadWith(config.Options{File: filepath.Join(dir, e.Name()), Environ: []string{}}); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}

// The example service catalog that aiops run reads loads.
func TestDefaultCatalogLoads(t *testing.T) {
	c, err := correlate.ReadCatalog(filepath.Join("..", "..", DefaultCatalog))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) < 5 || len(c.Services["checkout"].DependsOn) == 0 {
		t.Fatalf("catalog %+v", c)
	}
}
