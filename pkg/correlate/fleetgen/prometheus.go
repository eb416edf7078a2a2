package fleetgen

import (
	"hash/fnv"
	"slices"
	"time"
)

// Prometheus evaluates each rule group every interval at a fixed phase.
// A rule whose expression holds at an evaluation goes pending; it fires
// at the first evaluation at least for: after it went pending, provided
// the expression held at every evaluation in between; it resolves at the
// first evaluation where the expression no longer holds. A condition that
// holds for less than for: (a spike, a failover that heals quickly) never
// fires, and one that dips below its threshold between two evaluations
// does not resolve: both are how real rules filter and flap.

// evaluate fills a.firing from a.cond.
func evaluate(a *alert) {
	iv := a.rule.conv.evalInterval()
	phase := groupPhase(a.labels["cluster"], a.rule.conv, iv)
	tick := func(t time.Time) time.Time { // first evaluation at or after t
		base := t.Truncate(iv).Add(phase)
		for base.Before(t) {
			base = base.Add(iv)
		}
		for !base.Add(-iv).Before(t) {
			base = base.Add(-iv)
		}
		return base
	}
	conds := slices.Clone(a.cond)
	slices.SortFunc(conds, func(x, y span) int { return x.from.Compare(y.from) })

	// Runs of consecutive evaluations at which the expression holds.
	type run struct{ first, last time.Time }
	var runs []run
	for _, c := range conds {
		first, last := tick(c.from), tick(c.to).Add(-iv)
		if last.Before(first) {
			continue // held between two evaluations: never seen
		}
		if n := len(runs); n > 0 && !first.After(runs[n-1].last.Add(iv)) {
			if last.After(runs[n-1].last) {
				runs[n-1].last = last
			}
			continue
		}
		runs = append(runs, run{first, last})
	}
	waits := (a.rule.forDur + iv - 1) / iv
	for _, r := range runs {
		fire := r.first.Add(waits * iv)
		if fire.After(r.last) {
			continue
		}
		a.firing = append(a.firing, span{fire, r.last.Add(iv)})
	}
}

// groupPhase is the offset of a rule group's evaluations within the
// interval, and sendDelay the time from an evaluation to Alertmanager
// receiving its alerts; both are fixed per cluster and rule family, as
// Prometheus spreads its groups by a hash of their names.
func groupPhase(clusterName string, c convention, iv time.Duration) time.Duration {
	h := fnv.New64a()
	h.Write([]byte(clusterName))
	h.Write([]byte{byte(c)})
	return time.Duration(h.Sum64()%uint64(iv/time.Millisecond)) * time.Millisecond
}

func sendDelay(clusterName string, c convention) time.Duration {
	h := fnv.New32a()
	h.Write([]byte(clusterName))
	h.Write([]byte{byte(c), 's'})
	return 150*time.Millisecond + time.Duration(h.Sum32()%1800)*time.Millisecond
}
