package aiops

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A labelled CSV with its header and no row (a truncated export, a
// download cut short) has nothing to score: detect eval counted it as a
// file of F1 0 in the mean, exit 0, and the mean of the good files fell
// with it silently.
func TestDetectEvalRefusesAFileWithoutRows(t *testing.T) {
	dir := t.TempDir()
	var good strings.Builder
	good.WriteString("timestamp,value,label\n")
	for i := range 400 {
		v, lab := 10.0+float64(i%7)*0.1, 0
		if i >= 300 && i < 305 {
			v, lab = 100, 1
		}
		fmt.Fprintf(&good, "%d,%g,%d\n", 1_600_000_000+60*i, v, lab)
	}
	if err := os.WriteFile(filepath.Join(dir, "good.csv"), []byte(good.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "empty.csv"), []byte("timestamp,value,label\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	err := detectMain(context.Background(), []string{"eval", "--part", "all", dir}, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "empty.csv") {
		t.Fatalf("detect eval over a file without rows: %v, want an error naming it\n%s%s", err, out.String(), errOut.String())
	}
}
