package service

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestVersionString(t *testing.T) {
	stamped := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}, Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "cedbad6f57f8f77bf6b7104dd7d5bb2ae06001b5"},
		{Key: "vcs.time", Value: "2026-12-02T08:14:59Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	for _, c := range []struct {
		version string
		info    *debug.BuildInfo
		want    string
	}{
		{"v0.3.0-4-gcedbad6", stamped, "v0.3.0-4-gcedbad6 (commit cedbad6f57f8, 2026-12-02T08:14:59Z, modified, go1.26.8)"},
		{"", stamped, "devel (commit cedbad6f57f8, 2026-12-02T08:14:59Z, modified, go1.26.8)"},
		{"", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, "v1.2.3 (go1.26.8)"},
		{"", nil, "devel"},
	} {
		if got := versionString(c.version, c.info); got != c.want {
			t.Errorf("versionString(%q) = %q, want %q", c.version, got, c.want)
		}
	}
	// This test binary's own: never the bare "(devel)" of before.
	if got := VersionString(); strings.Contains(got, "(devel)") {
		t.Errorf("version %q", got)
	}
}
