package logmine_test

import (
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

func readCSV(t *testing.T, b []byte) [][]string {
	t.Helper()
	rows, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("output is not CSV: %v", err)
	}
	if len(rows) == 0 || strings.Join(rows[0], ",") != "LineId,EventId,EventTemplate" {
		t.Fatalf("header %q", rows)
	}
	for i, r := range rows[1:] {
		if r[0] != strconv.Itoa(i+1) {
			t.Fatalf("row %d has LineId %q", i+1, r[0])
		}
	}
	return rows[1:]
}

func TestParseFileRowsPerLine(t *testing.T) {
	in := strings.Join([]string{
		"2024-01-01 10:00:00 INFO conn: opened 10.0.0.1",
		"",
		"2024-01-01 10:00:01 INFO conn: opened 10.0.0.2",
		"garbage without header",
		"   ",
		"2024-01-01 10:00:02 WARN disk: 93% full\r",
		"2024-01-01 10:00:03 INFO conn: opened 10.0.0.3", // no final newline
	}, "\n")
	var out bytes.Buffer
	st, err := logmine.ParseFile(strings.NewReader(in), &out, logmine.ParseOptions{Format: "<Date> <Time> <Level> <Component>: <Content>"})
	if err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, out.Bytes())
	if len(rows) != 7 || st.Lines != 7 {
		t.Fatalf("%d rows, stats %+v, want 7", len(rows), st)
	}
	// the empty, blank and header-less lines are mined whole and counted
	if st.Unmatched != 3 {
		t.Fatalf("unmatched %d, want 3", st.Unmatched)
	}
	if rows[0][2] != "opened <*>" || rows[0][1] != rows[2][1] || rows[0][1] != rows[6][1] {
		t.Fatalf("rows %q", rows)
	}
	if rows[3][2] != "garbage without header" || rows[5][2] != "<*>% full" || rows[1][2] != "" {
		t.Fatalf("rows %q", rows)
	}
	if id, err := logmine.ParseTemplateID(rows[0][1]); err != nil || id != logmine.IDOf("opened <*>") {
		t.Fatalf("EventId %q is not the template's id", rows[0][1])
	}
}

// Generalised templates are written for every line of their group, also
// for lines read before the generalisation: the first three user names are
// held apart (a few words may be states, see Config.WordFoldAfter), the
// fourth shows the position is a variable, and all lines end in one
// template.
func TestParseFileFinalTemplates(t *testing.T) {
	in := "session opened for alice\nsession opened for bob\nsession opened for carol\nsession opened for dave\nsession opened for alice\n"
	var out bytes.Buffer
	if _, err := logmine.ParseFile(strings.NewReader(in), &out, logmine.ParseOptions{}); err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, out.Bytes())
	for _, r := range rows {
		if r[2] != "session opened for <*>" {
			t.Fatalf("rows %q", rows)
		}
	}
	// three words are three messages
	out.Reset()
	in = "peer moved to LOOKING\npeer moved to LEADING\npeer moved to FOLLOWING\npeer moved to LOOKING\n"
	if _, err := logmine.ParseFile(strings.NewReader(in), &out, logmine.ParseOptions{}); err != nil {
		t.Fatal(err)
	}
	rows = readCSV(t, out.Bytes())
	if rows[0][2] != "peer moved to LOOKING" || rows[1][2] != "peer moved to LEADING" || rows[2][2] != "peer moved to FOLLOWING" || rows[3][1] != rows[0][1] {
		t.Fatalf("rows %q", rows)
	}
}

// The offline parse ends with Miner.Consolidate: a user name opening the
// message routes every value to its own branch, and the rows of all of
// them end in the folded template once ConsolidateAfter names were seen.
func TestParseFileConsolidates(t *testing.T) {
	var in strings.Builder
	users := []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi"}
	for i, u := range users {
		fmt.Fprintf(&in, "%s opened session %d\n", u, i)
	}
	var out bytes.Buffer
	st, err := logmine.ParseFile(strings.NewReader(in.String()), &out, logmine.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, out.Bytes())
	for _, r := range rows {
		if r[2] != "<*> opened session <*>" || r[1] != logmine.IDOf(r[2]).String() {
			t.Fatalf("rows %q", rows)
		}
	}
	if st.Templates != 1 {
		t.Fatalf("stats %+v, want 1 template", st)
	}
}

func TestParseFileLongLines(t *testing.T) {
	long := "start " + strings.Repeat("x", 300<<10) // longer than the read buffer
	in := "short line\n" + long + "\nshort line\n" + strings.Repeat("y", 100<<10)
	var out bytes.Buffer
	st, err := logmine.ParseFile(strings.NewReader(in), &out, logmine.ParseOptions{MaxLineBytes: 200 << 10})
	if err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, out.Bytes())
	if len(rows) != 4 || st.Truncated != 1 {
		t.Fatalf("%d rows, stats %+v; want 4 rows, 1 truncated", len(rows), st)
	}
	if len(rows[1][2]) != 200<<10 || rows[0][1] != rows[2][1] {
		t.Fatalf("long line template has %d bytes", len(rows[1][2]))
	}
	if len(rows[3][2]) != 100<<10 {
		t.Fatalf("last line (100 KiB, no newline) has %d bytes", len(rows[3][2]))
	}
}

type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n == 0 {
		return 0, errors.New("disk gone")
	}
	f.n--
	return copy(p, "a line\n"), nil
}

func TestParseFileErrors(t *testing.T) {
	_, err := logmine.ParseFile(strings.NewReader("x"), io.Discard, logmine.ParseOptions{Format: "<Date> <Time>"})
	if !errors.Is(err, logmine.ErrInvalidFormat) || !errs.IsPermanent(err) {
		t.Fatalf("bad format: %v", err)
	}
	_, err = logmine.ParseFile(strings.NewReader("x"), io.Discard, logmine.ParseOptions{MaxLineBytes: 3})
	if !errors.Is(err, logmine.ErrInvalidConfig) {
		t.Fatalf("bad MaxLineBytes: %v", err)
	}
	_, err = logmine.ParseFile(&failingReader{n: 2}, io.Discard, logmine.ParseOptions{})
	if err == nil || !strings.Contains(err.Error(), "disk gone") || errs.IsPermanent(err) {
		t.Fatalf("read error: %v, want the transient cause", err)
	}
}

// ParseFile on the real HDFS sample writes one row per line, and its
// templates are the labelled ones in the corrected convention (see the
// accuracy test).
func TestParseFileLoghub(t *testing.T) {
	dir := loghub.Require(t)
	f, err := os.Open(filepath.Join(dir, "HDFS", "HDFS_2k.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	ds, err := loghub.Load(dir, "HDFS")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	st, err := logmine.ParseFile(f, &out, logmine.ParseOptions{Format: ds.Format})
	if err != nil {
		t.Fatal(err)
	}
	rows := readCSV(t, out.Bytes())
	if len(rows) != len(ds.Lines) || st.Unmatched != 0 {
		t.Fatalf("%d rows for %d lines, stats %+v", len(rows), len(ds.Lines), st)
	}
	same := 0
	for i, r := range rows {
		if r[2] == ds.Corrected[i] {
			same++
		}
	}
	if same < len(rows)-10 {
		t.Fatalf("only %d of %d templates match the labels", same, len(rows))
	}
}
