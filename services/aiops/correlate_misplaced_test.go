package aiops

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/scenario"
)

// TestCorrelateMisplaced explains the losses of seed AIOPS_EXP_FROM by
// mechanism. Each planned true incident has a main predicted incident
// (the one holding most of its items); an item placed elsewhere loses its
// pairs with the main part, counted by where it went: a piece of its own
// incident opened before the main one (symptoms before their root), one
// that opened later past the spread window (late symptoms), another
// planned incident, noise. False pairs between planned incidents are
// counted by how their roots relate (the same, one below the other,
// sharing affected services, unrelated). With AIOPS_EXP_LIST set it also
// lists every planned incident's items with where each went.
func TestCorrelateMisplaced(t *testing.T) {
	if os.Getenv("AIOPS_EXP") == "" {
		t.Skip("exploration")
	}
	seed, _ := strconv.Atoi(os.Getenv("AIOPS_EXP_FROM"))
	s := scenario.Generate(uint64(seed), expScenario(t))
	res := replayScenario(t, s, expRules(t))
	incOf := map[string]ReplayIncident{}
	for _, inc := range res.Incidents {
		incOf[inc.ID] = inc
	}
	byLabel := map[string]scenario.Incident{}
	for _, inc := range s.Truth.Incidents {
		byLabel[inc.Label] = inc
	}
	items := s.Items()
	cells := map[string]map[string]int{} // label -> predicted -> n
	for _, it := range items {
		l := s.Truth.Items[it.ID]
		p := res.IncidentOf(it.ID)
		if cells[l] == nil {
			cells[l] = map[string]int{}
		}
		cells[l][p]++
	}
	mainOf := map[string]string{}
	for l, m := range cells {
		best, n := "", -1
		for p, k := range m {
			if k > n || k == n && p < best {
				best, n = p, k
			}
		}
		mainOf[l] = best
	}
	// majority label of each predicted incident
	labelsOf := map[string]map[string]int{}
	for _, it := range items {
		p := res.IncidentOf(it.ID)
		if labelsOf[p] == nil {
			labelsOf[p] = map[string]int{}
		}
		labelsOf[p][s.Truth.Items[it.ID]]++
	}
	desc := func(p string) string {
		var ls []string
		for l, n := range labelsOf[p] {
			ls = append(ls, l+":"+strconv.Itoa(n))
		}
		sort.Strings(ls)
		inc := incOf[p]
		top := ""
		if len(inc.RootCauses) > 0 {
			top = inc.RootCauses[0].Service
		}
		return p[max(0, len(p)-6):] + " top cause " + top + " opened " + inc.OpenedAt.Format("15:04:05") + " " + strconv.Quote(strings.Join(ls, " "))
	}
	// Loss summary: missed pairs by where the split-off item went, false
	// pairs by how the merged true incidents' roots relate.
	kindOf := map[string]string{}
	for _, inc := range s.Truth.Incidents {
		kindOf[inc.Label] = string(inc.Kind)
	}
	majority := func(p string) string {
		best, n := "", -1
		for l, k := range labelsOf[p] {
			if k > n || k == n && l < best {
				best, n = l, k
			}
		}
		return best
	}
	loss := map[string]int{}
	for _, it := range items {
		l := s.Truth.Items[it.ID]
		inc := byLabel[l]
		if !inc.Kind.Planned() {
			continue
		}
		main, p := mainOf[l], res.IncidentOf(it.ID)
		if p == main {
			continue
		}
		n := cells[l][main]
		m := majority(p)
		where := "other-" + kindOf[m]
		if m == l {
			where = "own-piece"
			if incOf[p].OpenedAt.Before(incOf[main].OpenedAt) {
				where = "own-piece-early"
			} else if it.FirstSeen.Sub(incOf[main].OpenedAt) > 8*time.Minute {
				where = "own-piece-late"
			}
		}
		loss["missed "+kindOf[l]+" -> "+where] += n
	}
	for _, ls := range labelsOf {
		var keys []string
		for l := range ls {
			keys = append(keys, l)
		}
		sort.Strings(keys)
		for i := range keys {
			for j := i + 1; j < len(keys); j++ {
				a, b := byLabel[keys[i]], byLabel[keys[j]]
				if !a.Kind.Planned() || !b.Kind.Planned() {
					continue
				}
				rel := "unrelated"
				switch {
				case a.Root == b.Root:
					rel = "same root"
				case catalogHops(&s.Catalog, a.Root, b.Root) > 0 || catalogHops(&s.Catalog, b.Root, a.Root) > 0:
					rel = "root on root"
				default:
					for _, x := range a.Services {
						for _, y := range b.Services {
							if x == y {
								rel = "share services"
							}
						}
					}
				}
				loss["false "+string(a.Kind)+"+"+string(b.Kind)+" "+rel] += ls[keys[i]] * ls[keys[j]]
			}
		}
	}
	var lk []string
	for k := range loss {
		lk = append(lk, k)
	}
	sort.Strings(lk)
	for _, k := range lk {
		t.Logf("loss %-50s %d", k, loss[k])
	}
	if os.Getenv("AIOPS_EXP_LIST") == "" {
		return
	}
	for _, inc := range s.Truth.Incidents {
		if !inc.Kind.Planned() {
			continue
		}
		main := mainOf[inc.Label]
		t.Logf("== %s %s root %s start %s end %s services %v main %s", inc.Label, inc.Kind, inc.Root, inc.Start.Format("15:04:05"), inc.End.Format("15:04:05"), inc.Services, desc(main))
		for _, it := range items {
			if s.Truth.Items[it.ID] != inc.Label {
				continue
			}
			p := res.IncidentOf(it.ID)
			mark := "  "
			if p != main {
				mark = "XX"
			}
			hops := catalogHops(&s.Catalog, it.Service, inc.Root)
			ptr := it.Labels["pool"] + it.Labels["upstream"] + it.Labels["topic"]
			extra := ""
			if p != main {
				extra = " -> " + desc(p)
			}
			t.Logf("  %s %s +%-6s %-8s %-22s h%d %-24s ptr=%s%s", mark, it.FirstSeen.Format("15:04:05"), it.FirstSeen.Sub(inc.Start).Round(time.Second), it.Kind, it.Service, hops, it.Labels["alertname"]+it.Labels["__name__"], ptr, extra)
		}
	}
}
