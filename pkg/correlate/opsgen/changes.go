package opsgen

import (
	"fmt"
	"slices"
	"time"
)

// change is one change as CD tooling reports it.
type change struct {
	t      time.Time
	svc    *service
	kind   string // deploy, config, feature_flag or rollback
	flag   string // the feature flag switched
	off    bool   // the flag is switched off
	hotfix bool   // a deploy that fixes forward, by a person
}

var features = []string{
	"new-checkout-flow", "async-writes", "ranking-v2", "grpc-client", "bulk-api",
	"cache-ttl-tuning", "read-replica-routing", "new-pricing-engine", "http2-upstreams", "batch-size-64",
}

// activity is how busy CD is at t: most changes ship in working hours.
func activity(t time.Time) float64 {
	h := t.Hour()
	switch {
	case t.Weekday() == time.Saturday || t.Weekday() == time.Sunday:
		return 0.2
	case h >= 8 && h < 18:
		return 1
	case h >= 18 && h < 22:
		return 0.4
	}
	return 0.2
}

// harmlessChanges are the everyday deploys, config changes, flag flips
// and the odd rollback that break nothing.
func (g *gen) harmlessChanges() {
	rate := g.cfg.ChangesPerHour / float64(time.Hour)
	if rate <= 0 {
		return
	}
	weights := make([]float64, len(g.services))
	for i, s := range g.services {
		switch {
		case s.role.app():
			weights[i] = 1
		case s.role.stateful():
			weights[i] = 0.1 // database parameters, broker settings
		}
	}
	for t := g.start.Add(-2 * time.Hour); t.Before(g.end); t = t.Add(time.Duration(g.r.ExpFloat64() / rate)) {
		if !g.chance(activity(t)) {
			continue
		}
		c := change{t: t.Truncate(time.Second), svc: g.services[g.weighted(weights)]}
		c.kind = []string{"deploy", "config", "feature_flag", "rollback"}[g.weighted([]float64{0.72, 0.13, 0.1, 0.05})]
		switch {
		case !c.svc.role.app():
			c.kind = "config"
		case c.kind == "rollback" && len(c.svc.gens) < 2:
			c.kind = "deploy"
		case c.kind == "feature_flag":
			c.flag = c.svc.name + "." + pick(g, features)
		}
		g.addChange(c)
	}
}

// addChange records c and rolls the pods it restarts: a deploy or a
// config change starts a new ReplicaSet, a rollback brings back the one
// before.
func (g *gen) addChange(c change) {
	switch c.kind {
	case "deploy", "config":
		g.rollPods(c.svc, c.t, "")
	case "rollback":
		gens := c.svc.gens
		i := len(gens) - 1
		for i > 0 && gens[i].from.After(c.t) {
			i--
		}
		g.rollPods(c.svc, c.t, gens[max(0, i-1)].rs)
	}
	g.changes = append(g.changes, c)
}

func (g *gen) hex(n int) string {
	const digits = "0123456789abcdef"
	b := make([]byte, n)
	for i := range b {
		b[i] = digits[g.r.IntN(16)]
	}
	return string(b)
}

// describeChanges writes the changes as the CD tooling reports them, in
// time order: versions go up with each deploy and back with a rollback.
func (g *gen) describeChanges() []timedLine {
	slices.SortStableFunc(g.changes, func(a, b change) int { return a.t.Compare(b.t) })
	type release struct{ version, commit string }
	released := map[*service][]release{}
	var out []timedLine
	for _, c := range g.changes {
		s := c.svc
		rs := released[s]
		if rs == nil {
			rs = []release{{fmt.Sprintf("v%d.%d.%d", s.version[0], s.version[1], s.version[2]), g.hex(40)}}
		}
		human := pick(g, people) + "@" + g.domain
		b := changeBody{Service: s.name, Kind: c.kind}
		switch c.kind {
		case "deploy":
			if g.chance(0.3) {
				s.version[1]++
				s.version[2] = 0
			} else {
				s.version[2]++
			}
			r := release{fmt.Sprintf("v%d.%d.%d", s.version[0], s.version[1], s.version[2]), g.hex(40)}
			rs = append(rs, r)
			b.Version, b.Commit = r.version, r.commit
			b.Author = []string{human, human, "renovate[bot]", "argocd-image-updater"}[g.r.IntN(4)]
			if c.hotfix {
				b.Author = human
			}
			if g.chance(0.5) {
				b.URL = fmt.Sprintf("https://argocd.%s/applications/%s?revision=%s", g.domain, s.name, r.commit[:7])
			} else {
				b.URL = fmt.Sprintf("https://github.com/%s/%s/commit/%s", g.org, s.name, r.commit)
			}
		case "rollback":
			if len(rs) > 1 {
				rs = rs[:len(rs)-1]
			}
			r := rs[len(rs)-1]
			b.Version, b.Commit = r.version, r.commit
			b.Author = []string{human, human, "argo-rollouts"}[g.r.IntN(3)]
			b.URL = fmt.Sprintf("https://argocd.%s/applications/%s?operation=rollback&revision=%s", g.domain, s.name, r.commit[:7])
		case "config":
			s.configRev++
			b.Version = fmt.Sprintf("config-r%d", 100+7*len(s.name)+s.configRev)
			b.Commit = g.hex(40)
			b.Author = []string{human, human, "atlantis"}[g.r.IntN(3)]
			b.URL = fmt.Sprintf("https://github.com/%s/platform-config/pull/%d", g.org, 1200+g.r.IntN(3000))
		case "feature_flag":
			b.Version = fmt.Sprintf("%s: on (%d%%)", c.flag, pick(g, []int{5, 10, 25, 50, 100}))
			if c.off {
				b.Version = c.flag + ": off"
			}
			b.Author = human
			b.URL = fmt.Sprintf("https://app.launchdarkly.com/%s/production/features/%s", g.org, c.flag)
		}
		released[s] = rs
		if !c.t.Before(g.start) && !c.t.After(g.end) {
			out = append(out, timedLine{c.t, line{Type: "change", Change: &b}})
		}
	}
	return out
}
