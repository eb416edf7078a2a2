package logmine_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/logmine"
	"github.com/aiops-dev/aiops/pkg/logmine/internal/loghub"
)

func TestFormatParse(t *testing.T) {
	cases := []struct {
		format, line string
		want         []string
	}{
		{loghub.Formats["HDFS"],
			"081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_38865049064139660 terminating",
			[]string{"081109", "203615", "148", "INFO", "dfs.DataNode$PacketResponder", "PacketResponder 1 for block blk_38865049064139660 terminating"}},
		{loghub.Formats["Apache"],
			"[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties",
			[]string{"Sun Dec 04 04:47:44 2005", "notice", "workerEnv.init() ok /etc/httpd/conf/workers2.properties"}},
		{loghub.Formats["OpenSSH"],
			"Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
			[]string{"Dec", "10", "06:55:46", "LabSZ", "24200", "Invalid user webmaster from 173.234.31.186"}},
		{loghub.Formats["Zookeeper"],
			"2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
			[]string{"2015-07-29", "17:41:44,747", "INFO", "QuorumPeer[myid=1]/0", "0:0:0:0:0:0:0:2181:FastLeaderElection", "774", "Notification time out: 3200"}},
		// a space in the format matches any run of whitespace
		{"<Level> <Content>", "WARN \t  disk  full", []string{"WARN", "disk  full"}},
		// a literal suffix after the last field
		{"<Content> <End>;", "a b c end;", []string{"a", "b c end"}},
		// empty content
		{"<Level>: <Content>", "INFO: ", []string{"INFO", ""}},
	}
	for _, c := range cases {
		f, err := logmine.CompileFormat(c.format)
		if err != nil {
			t.Fatalf("%q: %v", c.format, err)
		}
		got, ok := f.Parse(c.line, nil)
		if !ok || !slices.Equal(got, c.want) {
			t.Errorf("%q on %q: %q %v, want %q", c.format, c.line, got, ok, c.want)
		}
		if content, ok := f.Content(c.line); !ok || content != c.want[f.ContentIndex()] {
			t.Errorf("Content = %q %v", content, ok)
		}
	}
}

func TestFormatNoMatch(t *testing.T) {
	f, err := logmine.CompileFormat(loghub.Formats["OpenSSH"])
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		"",
		"Dec 10 06:55:46 LabSZ",
		"Dec 10 06:55:46 LabSZ cron[1]: job",    // literal "sshd[" missing
		"Dec 10 06:55:46 LabSZ sshd[24200 oops", // "]: " missing
	} {
		if v, ok := f.Parse(line, nil); ok {
			t.Errorf("%q matched as %q", line, v)
		}
	}
	if got := f.Fields(); !slices.Equal(got, []string{"Date", "Day", "Time", "Component", "Pid", "Content"}) {
		t.Errorf("Fields = %q", got)
	}
}

// Every line of the four real samples parses with its system's format and
// gives the Content the labelled data has.
func TestFormatOnLoghub(t *testing.T) {
	dir := loghub.Require(t)
	for _, sys := range loghub.Systems {
		ds, err := loghub.Load(dir, sys)
		if err != nil {
			t.Fatal(err)
		}
		f, err := logmine.CompileFormat(ds.Format)
		if err != nil {
			t.Fatal(err)
		}
		for i, l := range ds.Lines {
			c, ok := f.Content(l)
			// the labelled data strips trailing blanks, as the miner does
			if !ok || strings.TrimRight(c, " ") != ds.Contents[i] {
				t.Fatalf("%s line %d: %q %v, want %q", sys, i+1, c, ok, ds.Contents[i])
			}
		}
	}
}

func TestCompileFormatErrors(t *testing.T) {
	for _, spec := range []string{
		"", "   ", "<Date> <Time>", "<Content", "<Con tent>", "<A><Content>", "<Content> <Content>", `<Content>\`,
		"no fields",
	} {
		_, err := logmine.CompileFormat(spec)
		if !errors.Is(err, logmine.ErrInvalidFormat) || !errs.IsPermanent(err) {
			t.Errorf("CompileFormat(%q) = %v, want a permanent ErrInvalidFormat", spec, err)
		}
	}
}
