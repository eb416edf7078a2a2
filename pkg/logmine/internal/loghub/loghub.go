// Package loghub loads the Loghub 2k samples that the shared data folder
// holds, for logmine's accuracy tests and benchmarks. The data is read in
// place and never copied into the repository.
package loghub

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Systems are the four samples in the shared folder.
var Systems = []string{"HDFS", "Apache", "OpenSSH", "Zookeeper"}

// Formats are the header formats from the folder's FORMATS.md.
var Formats = map[string]string{
	"HDFS":      `<Date> <Time> <Pid> <Level> <Component>: <Content>`,
	"Apache":    `\[<Time>\] \[<Level>\] <Content>`,
	"OpenSSH":   `<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>`,
	"Zookeeper": `<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>`,
}

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
type Dataset struct {
	System    string
	Format    string
	Lines     []string // raw lines, header included
	Contents  []string // the labelled Content column
	EventIDs  []string
	Templates []string
}

// Load reads one system's sample from dir.
func Load(dir, system string) (*Dataset, error) {
	base := filepath.Join(dir, system, system+"_2k.log")
	raw, err := os.ReadFile(base)
	if err != nil {
		return nil, err
	}
	ds := &Dataset{System: system, Format: Formats[system]}
	sc := bufio.NewScanner(strings.NewReader(string(raw)))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		ds.Lines = append(ds.Lines, strings.TrimRight(sc.Text(), "\r"))
	}
	f, err := os.Open(base + "_structured.csv")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(f)
	head, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", base, err)
	}
	col := map[string]int{}
	for i, h := range head {
		col[h] = i
	}
	for _, need := range []string{"Content", "EventId", "EventTemplate"} {
		if _, ok := col[need]; !ok {
			return nil, fmt.Errorf("%s_structured.csv: no %s column", base, need)
		}
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%s_structured.csv: %w", base, err)
		}
		ds.Contents = append(ds.Contents, rec[col["Content"]])
		ds.EventIDs = append(ds.EventIDs, rec[col["EventId"]])
		ds.Templates = append(ds.Templates, rec[col["EventTemplate"]])
	}
	if len(ds.Lines) != len(ds.EventIDs) {
		return nil, fmt.Errorf("%s: %d lines but %d labelled rows", system, len(ds.Lines), len(ds.EventIDs))
	}
	return ds, nil
}
