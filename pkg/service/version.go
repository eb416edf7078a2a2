package service

import (
	"runtime/debug"
	"strings"
)

// Version is the release this binary was built as. The Makefile sets it
// with -ldflags "-X github.com/aiops-dev/aiops/pkg/service.Version=..."
// (git describe); a plain `go build` leaves it empty and the version comes
// from the build information instead. It lives here, not in one binary, so
// that every binary and every API that reports a version (the silences
// API's status, which amtool reads) says the same.
var Version string

// VersionString is this binary's version (see versionString).
func VersionString() string { return versionString(Version, buildInfo()) }

// buildInfo is the binary's build information, nil when it has none.
func buildInfo() *debug.BuildInfo {
	if info, ok := debug.ReadBuildInfo(); ok {
		return info
	}
	return nil
}

// versionString says which code a binary runs: the -ldflags version, else
// the module version (a `go install ...@v1.2.3` build), else "devel"; then
// the commit and its time when the build stamped them (go build in a git
// checkout with -buildvcs, which the Makefile passes: in a workspace the
// default does not stamp), "modified" when the tree had uncommitted
// changes, and the Go version. Before this, a workspace build printed only
// "(devel)", which says nothing about what is running.
func versionString(version string, info *debug.BuildInfo) string {
	if version == "" && info != nil && info.Main.Version != "" && info.Main.Version != "(devel)" {
		version = info.Main.Version
	}
	if version == "" {
		version = "devel"
	}
	if info == nil {
		return version
	}
	var details []string
	settings := map[string]string{}
	for _, s := range info.Settings {
		settings[s.Key] = s.Value
	}
	if rev := settings["vcs.revision"]; rev != "" {
		if len(rev) > 12 {
			rev = rev[:12]
		}
		details = append(details, "commit "+rev)
	}
	if t := settings["vcs.time"]; t != "" {
		details = append(details, t)
	}
	if settings["vcs.modified"] == "true" {
		details = append(details, "modified")
	}
	if info.GoVersion != "" {
		details = append(details, info.GoVersion)
	}
	if len(details) == 0 {
		return version
	}
	return version + " (" + strings.Join(details, ", ") + ")"
}
