package fleetgen

import (
	"fmt"
	"time"
)

// change is the body of a "change" line: what the CD pipeline, the
// config repo and the feature-flag service report.
type change struct {
	Service string `json:"service"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
	Author  string `json:"author"`
	Commit  string `json:"commit"`
	URL     string `json:"url"`
}

type changeLine struct {
	at     time.Time
	change change
}

type version struct{ major, minor, patch int }

func (v version) String() string { return fmt.Sprintf("v%d.%d.%d", v.major, v.minor, v.patch) }

var engineers = []string{
	"a.novak", "b.osei", "c.duarte", "d.yamamoto", "e.kowalski", "f.haddad", "g.martin", "h.silva",
	"i.petrov", "j.obrien", "k.nguyen", "l.fischer", "m.garcia", "n.jensen", "o.adeyemi", "p.rossi",
}

// commitSHA draws a 40-digit commit id.
func (g *generator) commitSHA() string {
	return fmt.Sprintf("%016x%016x%08x", g.rng.Uint64(), g.rng.Uint64(), g.rng.Uint32())
}

// deploy records a deploy of s at at (a new version) and returns it.
func (g *generator) deploy(s *service, at time.Time) string {
	v, ok := g.versions[s.name]
	if !ok {
		v = version{1 + g.rng.IntN(4), g.rng.IntN(60), g.rng.IntN(10)}
	}
	if g.chance(0.3) {
		v.minor, v.patch = v.minor+1, 0
	} else {
		v.patch++
	}
	g.versions[s.name] = v
	sha := g.commitSHA()
	author := pick(g, engineers)
	if g.chance(0.15) {
		author = "renovate[bot]"
	}
	g.addChange(at, change{s.name, "deploy", v.String(), author, sha, fmt.Sprintf("https://github.com/tessera/%s/commit/%s", s.name, sha)})
	return v.String()
}

// rollback records the rollback of s to the version before its last
// deploy.
func (g *generator) rollback(s *service, at time.Time) {
	v := g.versions[s.name]
	prev := v
	if v.patch > 0 {
		prev.patch--
	} else if v.minor > 0 {
		prev.minor--
	}
	g.versions[s.name] = prev
	g.addChange(at, change{s.name, "rollback", prev.String(), "argocd", g.commitSHA(), fmt.Sprintf("https://argocd.tessera.example/applications/%s?operation=rollback", s.name)})
}

// config records a configuration push to s (Helm values, an Istio
// resource, a ConfigMap).
func (g *generator) config(s *service, at time.Time, what string) {
	sha := g.commitSHA()
	g.addChange(at, change{s.name, "config", what + "@" + sha[:8], pick(g, engineers), sha, "https://github.com/tessera/platform-config/commit/" + sha})
}

// flag records a feature-flag change on the flag service.
func (g *generator) flag(at time.Time, name, state string) {
	g.addChange(at, change{"feature-flags", "feature_flag", name + "=" + state, pick(g, engineers), g.commitSHA(), "https://flags.tessera.example/projects/default/features/" + name})
}

func (g *generator) addChange(at time.Time, c change) {
	g.changes = append(g.changes, changeLine{at.Truncate(time.Second), c}) // CD tools report seconds
}

var flagNames = []string{
	"editor-crdt-sync", "new-permissions-model", "search-ranking-v3", "bulk-export-v2", "assistant-streaming",
	"tenant-sharding-reads", "realtime-presence", "billing-proration-2025", "files-multipart-upload", "notifications-digest",
}

// planChanges draws the harmless changes of the day: most deploys, pushes
// and flag flips cause nothing, and a few are rolled back anyway.
func (g *generator) planChanges() {
	var movable []*service
	for i := range estate {
		if k := estate[i].kind; k == kindAPI || k == kindWorker {
			movable = append(movable, &estate[i])
		}
	}
	for range g.poisson(g.cfg.Changes) {
		at := g.when(true)
		s := pick(g, movable)
		switch x := g.rng.Float64(); {
		case x < 0.72:
			g.deploy(s, at)
			if g.chance(0.05) {
				g.rollback(s, at.Add(g.between(8*min, 40*min)))
			}
		case x < 0.85:
			g.config(s, at, pick(g, []string{"helm-values", "hpa", "resources", "env"}))
		default:
			g.flag(at, pick(g, flagNames), pick(g, []string{"on", "off", "10%", "25%", "50%"}))
		}
	}
}
