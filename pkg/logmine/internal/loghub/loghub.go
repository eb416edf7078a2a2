// Package loghub loads the Loghub 2k samples that the shared data folder
// holds, for logmine's accuracy tests and benchmarks. The data is read in
// place and never copied into the repository.
package loghub

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/aiops-dev/aiops/pkg/logmine/eval"
)

// Systems are the four samples logmine's defaults were chosen on
// (eval.TuningSystems); HeldOut are the four that only measure
// (eval.HeldOutSystems); All is both.
var (
	Systems = eval.TuningSystems
	HeldOut = eval.HeldOutSystems
	All     = append(slices.Clone(eval.TuningSystems), eval.HeldOutSystems...)
)

// ErrNotFound reports that the shared data folder is absent.
var ErrNotFound = errors.New("loghub: shared data folder not found")

// Dir locates loghub-2k: $AIOPS_SHARED_DATA/loghub-2k, else a `shared/data`
// folder next to an ancestor of the working directory (the repository's
// sibling /work/shared/data).
func Dir() (string, error) {
	if d := os.Getenv("AIOPS_SHARED_DATA"); d != "" {
		p := filepath.Join(d, "loghub-2k")
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("%w: AIOPS_SHARED_DATA=%s: %v", ErrNotFound, d, err)
		}
		return p, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		p := filepath.Join(d, "shared", "data", "loghub-2k")
		if st, err := os.Stat(p); err == nil && st.IsDir() {
			return p, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("%w: no shared/data/loghub-2k above %s (set AIOPS_SHARED_DATA)", ErrNotFound, wd)
		}
	}
}

// Require returns the data folder, or skips the test when it is absent
// (and fails it when CI=true, where the data must be present).
func Require(tb testing.TB) string {
	tb.Helper()
	d, err := Dir()
	if err != nil {
		if os.Getenv("CI") == "true" {
			tb.Fatalf("loghub data required in CI: %v", err)
		}
		tb.Skipf("skipping: %v", err)
	}
	return d
}

// Dataset is one system's sample: raw lines and the labelled truth.
type Dataset = eval.System

// Formats reads the header formats from the folder's FORMATS.md.
func Formats(dir string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(dir, "FORMATS.md"))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	formats, _, err := eval.ReadFormats(f)
	return formats, err
}

// Load reads one system's sample from dir, with its format from
// FORMATS.md.
func Load(dir, system string) (*Dataset, error) {
	formats, err := Formats(dir)
	if err != nil {
		return nil, err
	}
	format, ok := formats[system]
	if !ok {
		return nil, fmt.Errorf("loghub: FORMATS.md has no format for %s", system)
	}
	return eval.LoadSystem(dir, system, format)
}
