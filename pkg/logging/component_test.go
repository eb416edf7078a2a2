package logging

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The platform adds FieldComponent to each component's logger
// (pkg/platform/component.go; pkg/service/run.go names them in its own
// lines about them); a part of a component that added it again
// wrote lines with two "component" keys (zerolog repeats a key), which a
// query for either component missed or matched at random. A part names
// itself under FieldPart.
func TestComponentIsAddedOnlyByThePlatform(t *testing.T) {
	root := filepath.Join("..", "..")
	adds := regexp.MustCompile(`Str\((FieldComponent|logging\.FieldComponent|"component"),`)
	var found []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == ".git" || d.Name() == "node_modules" || d.Name() == ".cache" || d.Name() == "data") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		if p := filepath.ToSlash(path); p == "../../pkg/platform/component.go" || p == "../../pkg/service/run.go" {
			return nil // they name the components, on the service's logger
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for i, line := range strings.Split(string(b), "\n") {
			if adds.MatchString(line) {
				found = append(found, fmt.Sprintf("%s:%d: %s", path, i+1, strings.TrimSpace(line)))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) == 0 {
		if _, err := os.Stat(filepath.Join(root, "pkg", "platform", "component.go")); err != nil {
			t.Fatalf("the walk found no component.go: %v", err)
		}
	}
	for _, f := range found {
		t.Errorf("adds the component field to a logger the platform gave it one: %s; name the part with FieldPart", f)
	}
}
