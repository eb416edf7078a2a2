package eval

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// A Markdown format file (as FORMATS.md): only list items with a
// backquoted format count; prose with colons does not.
func TestReadFormatsMarkdown(t *testing.T) {
	md := "# Formats\n\nSource: the public collection (see LICENSE).\n" +
		"Grouping accuracy (GA): a line counts when...\n\n" +
		"- HDFS: `<Date> <Time> <Pid> <Level> <Component>: <Content>`\n" +
		"- Apache: `\\[<Time>\\] \\[<Level>\\] <Content>`\n" +
		"* Linux: `<Month> <Date> <Time> <Level> <Component>(\\[<PID>\\])?: <Content>`\n"
	formats, order, err := ReadFormats(strings.NewReader(md))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(order, []string{"HDFS", "Apache", "Linux"}) || formats["Apache"] != `\[<Time>\] \[<Level>\] <Content>` {
		t.Fatalf("order %v formats %v", order, formats)
	}
}

func TestReadFormatsErrors(t *testing.T) {
	for name, in := range map[string]string{
		"duplicate":  "A: <Content>\nA: <Level> <Content>\n",
		"no entries": "# nothing\n\n",
		"prose":      "just words\n",
		"too big":    strings.Repeat("#", 1<<20+10),
	} {
		if _, _, err := ReadFormats(strings.NewReader(in)); !errors.Is(err, ErrCorpus) {
			t.Errorf("%s: err %v, want ErrCorpus", name, err)
		}
	}
	if _, _, err := ReadFormats(strings.NewReader("A: <Level>\n")); err == nil || !strings.Contains(err.Error(), "line 1 (A)") {
		t.Errorf("format without <Content>: %v", err)
	}
	if f, _, err := ReadFormats(strings.NewReader("A: auto\n")); err != nil || f["A"] != "auto" {
		t.Errorf("auto: %v %v", f, err)
	}
}
