package writer

import (
	"context"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

const cookbookPath = "../../docs/queries.md"

type namedQuery struct{ name, sql string }

var (
	sqlBlock  = regexp.MustCompile("(?s)```sql\n(.*?)```")
	queryName = regexp.MustCompile(`(?m)^-- name: ([a-z0-9_]+)\s*$`)
)

// readCookbook returns every ```sql block of docs/queries.md with its name.
func readCookbook(t testing.TB) []namedQuery {
	t.Helper()
	doc, err := os.ReadFile(cookbookPath)
	if err != nil {
		t.Fatal(err)
	}
	var out []namedQuery
	seen := map[string]bool{}
	for i, m := range sqlBlock.FindAllStringSubmatch(string(doc), -1) {
		n := queryName.FindStringSubmatch(m[1])
		if n == nil {
			t.Fatalf("%s: sql block %d has no '-- name: ...' line:\n%s", cookbookPath, i+1, m[1])
		}
		if seen[n[1]] {
			t.Fatalf("%s: query name %s used twice", cookbookPath, n[1])
		}
		seen[n[1]] = true
		out = append(out, namedQuery{n[1], m[1]})
	}
	if len(out) == 0 {
		t.Fatalf("%s has no sql blocks", cookbookPath)
	}
	return out
}

// approx is a wanted float known only within tol (quantileTDigest).
type approx struct{ v, tol float64 }

// expectation is a query's arguments and the rows it must return, computed
// from the fixture.
type expectation struct {
	args []any
	rows [][]any
	// unorderedArrays: array columns come from groupUniqArray, whose order
	// is unspecified; both sides are sorted before comparing.
	unorderedArrays bool
}

// floatTol is how far a float may be from the wanted value: the queries
// round to at most four decimals.
const floatTol = 1e-4

// cookbookQuery is the cookbook's query called name.
func cookbookQuery(t testing.TB, name string) string {
	t.Helper()
	for _, q := range readCookbook(t) {
		if q.name == name {
			return q.sql
		}
	}
	t.Fatalf("%s: no query called %s", cookbookPath, name)
	return ""
}

// migratedStore opens the test ClickHouse with the schema applied, closed
// when the test ends.
func migratedStore(t *testing.T, ctx context.Context, log zerolog.Logger) *store.Store {
	t.Helper()
	st, err := store.Open(ctx, store.Config{DSN: testenv.ClickHouse(t)}, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, store.Schema); err != nil {
		t.Fatal(err)
	}
	return st
}

func day(d int) time.Time { return fxDay.AddDate(0, 0, d) }

func roundTo(x float64, places int) float64 {
	p := math.Pow(10, float64(places))
	return math.Round(x*p) / p
}

// expectations computes every query's answer from the fixture.
func expectations(f *fixture) map[string]expectation {
	inDay := func(t time.Time) bool { return !t.Before(day(0)) && t.Before(day(1)) }
	ex := map[string]expectation{}

	{ // error_rate_per_service
		logs, errors := map[string]int{}, map[string]int{}
		for _, l := range f.logs {
			if inDay(l.at) {
				logs[l.service]++
				if l.severity == "error" || l.severity == "critical" {
					errors[l.service]++
				}
			}
		}
		var rows [][]any
		for svc, n := range logs {
			rows = append(rows, []any{svc, n, errors[svc], roundTo(float64(errors[svc])/float64(n), 4)})
		}
		sort.Slice(rows, func(i, j int) bool {
			if rows[i][3] != rows[j][3] {
				return rows[i][3].(float64) > rows[j][3].(float64)
			}
			return rows[i][0].(string) < rows[j][0].(string)
		})
		ex["error_rate_per_service"] = expectation{args: []any{day(0), day(1)}, rows: rows}
	}

	{ // top_log_templates_per_service and new_log_templates_today
		type key struct{ svc, tpl string }
		count, text := map[key]int{}, map[string]string{}
		first, total, services := map[string]time.Time{}, map[string]int{}, map[string]map[string]bool{}
		for _, l := range f.logs {
			if l.templateID == "" {
				continue
			}
			text[l.templateID] = l.template
			if inDay(l.at) {
				count[key{l.service, l.templateID}]++
			}
			if l.at.Before(day(1)) {
				if ft, ok := first[l.templateID]; !ok || l.at.Before(ft) {
					first[l.templateID] = l.at
				}
				total[l.templateID]++
				if services[l.templateID] == nil {
					services[l.templateID] = map[string]bool{}
				}
				services[l.templateID][l.service] = true
			}
		}
		var all [][]any
		for k, n := range count {
			all = append(all, []any{k.svc, k.tpl, text[k.tpl], n})
		}
		sort.Slice(all, func(i, j int) bool {
			a, b := all[i], all[j]
			if a[0] != b[0] {
				return a[0].(string) < b[0].(string)
			}
			if a[3] != b[3] {
				return a[3].(int) > b[3].(int)
			}
			return a[1].(string) < b[1].(string)
		})
		var top [][]any
		perService := map[string]int{}
		for _, r := range all {
			if perService[r[0].(string)] < 3 {
				perService[r[0].(string)]++
				top = append(top, r)
			}
		}
		ex["top_log_templates_per_service"] = expectation{args: []any{day(0), day(1)}, rows: top}

		var fresh [][]any
		for tpl, ft := range first {
			if !ft.Before(day(0)) {
				fresh = append(fresh, []any{tpl, text[tpl], sortedKeys((services[tpl])), ft, total[tpl]})
			}
		}
		sort.Slice(fresh, func(i, j int) bool {
			a, b := fresh[i], fresh[j]
			if !a[3].(time.Time).Equal(b[3].(time.Time)) {
				return a[3].(time.Time).Before(b[3].(time.Time))
			}
			return a[0].(string) < b[0].(string)
		})
		ex["new_log_templates_today"] = expectation{args: []any{day(1), day(0)}, rows: fresh, unorderedArrays: true}
	}

	{ // logs_of_trace
		var rows [][]any
		for _, l := range f.logs {
			if l.trace == "trace-3" {
				rows = append(rows, []any{l.at, l.service, l.severity, l.message, l.id})
			}
		}
		sort.Slice(rows, func(i, j int) bool {
			if !rows[i][0].(time.Time).Equal(rows[j][0].(time.Time)) {
				return rows[i][0].(time.Time).Before(rows[j][0].(time.Time))
			}
			return rows[i][4].(string) < rows[j][4].(string)
		})
		ex["logs_of_trace"] = expectation{args: []any{"trace-3"}, rows: rows}
	}

	{ // metric_p95_per_hour
		type key struct {
			hour time.Time
			svc  string
		}
		values := map[key][]float64{}
		for _, s := range f.samples {
			if s.name == "http_latency_ms" && inDay(s.at) {
				k := key{s.at.Truncate(time.Hour), s.service}
				values[k] = append(values[k], s.value)
			}
		}
		var rows [][]any
		for k, vs := range values {
			slices.Sort(vs)
			// The exact p95 (linear interpolation between order
			// statistics); the t-digest estimate must lie within a tenth
			// of the hour's value range from it.
			pos := 0.95 * float64(len(vs)-1)
			lo := int(math.Floor(pos))
			exact := vs[lo] + (pos-float64(lo))*(vs[min(lo+1, len(vs)-1)]-vs[lo])
			rows = append(rows, []any{k.hour, k.svc, approx{exact, 0.1 * (vs[len(vs)-1] - vs[0])}, len(vs)})
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if !a[0].(time.Time).Equal(b[0].(time.Time)) {
				return a[0].(time.Time).Before(b[0].(time.Time))
			}
			return a[1].(string) < b[1].(string)
		})
		ex["metric_p95_per_hour"] = expectation{args: []any{"http_latency_ms", day(0), day(1)}, rows: rows}
	}

	{ // noisiest_alerts, flapping_alerts, alerts_firing_now
		type inst struct{ name, fp string }
		events, firing := map[string]int{}, map[string]int{}
		fps := map[string]map[string]bool{}
		byInst := map[inst][]fxAlert{}
		for _, a := range f.alerts {
			byInst[inst{a.name, a.fingerprint}] = append(byInst[inst{a.name, a.fingerprint}], a)
			if !inDay(a.at) {
				continue
			}
			events[a.name]++
			if a.status == event.AlertFiring {
				firing[a.name]++
			}
			if fps[a.name] == nil {
				fps[a.name] = map[string]bool{}
			}
			fps[a.name][a.fingerprint] = true
		}
		var noisy [][]any
		for name, n := range events {
			noisy = append(noisy, []any{name, n, len(fps[name]), firing[name]})
		}
		sort.Slice(noisy, func(i, j int) bool {
			if noisy[i][1] != noisy[j][1] {
				return noisy[i][1].(int) > noisy[j][1].(int)
			}
			return noisy[i][0].(string) < noisy[j][0].(string)
		})
		ex["noisiest_alerts"] = expectation{args: []any{day(0), day(1)}, rows: noisy[:min(10, len(noisy))]}

		const minChanges = 2
		var flapping, now [][]any
		for k, as := range byInst {
			sort.Slice(as, func(i, j int) bool { return as[i].at.Before(as[j].at) })
			statuses, changes := make([]string, len(as)), 0
			for i, a := range as {
				statuses[i] = a.status
				if i > 0 && a.status != as[i-1].status {
					changes++
				}
			}
			if changes >= minChanges {
				flapping = append(flapping, []any{k.name, k.fp, statuses, changes})
			}
			if last := as[len(as)-1]; last.status == event.AlertFiring {
				now = append(now, []any{k.name, k.fp, last.service, last.at})
			}
		}
		sort.Slice(flapping, func(i, j int) bool {
			a, b := flapping[i], flapping[j]
			if a[3] != b[3] {
				return a[3].(int) > b[3].(int)
			}
			if a[0] != b[0] {
				return a[0].(string) < b[0].(string)
			}
			return a[1].(string) < b[1].(string)
		})
		ex["flapping_alerts"] = expectation{args: []any{day(0), day(1), minChanges}, rows: flapping}
		sort.Slice(now, func(i, j int) bool {
			if now[i][0] != now[j][0] {
				return now[i][0].(string) < now[j][0].(string)
			}
			return now[i][1].(string) < now[j][1].(string)
		})
		ex["alerts_firing_now"] = expectation{rows: now}
	}

	incidents := f.incidentSummaries()
	{ // mtta_mttr_per_service_team_week
		type key struct {
			week      time.Time
			svc, team string
		}
		from, to := day(0), day(14)
		groups, merged := mttaGroups(incidents, from, to, func(in incidentSummary) key {
			d := in.opened.Truncate(24 * time.Hour)
			return key{d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7)), in.service, in.team}
		})
		var rows [][]any
		for k, g := range groups {
			rows = append(rows, []any{k.week, k.svc, k.team, g.n, g.acked, g.mtta(), g.resolved, g.mttr()})
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if !a[0].(time.Time).Equal(b[0].(time.Time)) {
				return a[0].(time.Time).Before(b[0].(time.Time))
			}
			if a[1] != b[1] {
				return a[1].(string) < b[1].(string)
			}
			return a[2].(string) < b[2].(string)
		})
		if merged == 0 {
			panic("fixture: no merged incident in the MTTA/MTTR range, so nothing tests that the query leaves them out")
		}
		ex["mtta_mttr_per_service_team_week"] = expectation{args: []any{from, to}, rows: rows}
	}

	{ // open_incidents
		var rows [][]any
		for _, in := range incidents {
			if in.resolved.IsZero() {
				acked := 0
				if !in.lastAcked.IsZero() {
					acked = 1
				}
				rows = append(rows, []any{in.id, in.title, in.service, in.team, in.lastStatus, in.opened, acked})
			}
		}
		sort.SliceStable(rows, func(i, j int) bool { return rows[i][5].(time.Time).Before(rows[j][5].(time.Time)) })
		ex["open_incidents"] = expectation{rows: rows}
	}

	{ // incident_timeline
		const id = "inc-1"
		var rows [][]any
		linked := map[string]bool{}
		for _, s := range f.incidents {
			if s.incidentID == id {
				rows = append(rows, []any{s.at, "incident", s.status, s.title, s.id})
				for _, l := range s.links {
					linked[l] = true
				}
			}
		}
		for _, a := range f.alerts {
			if linked[a.id] {
				rows = append(rows, []any{a.at, "alert", a.status, a.name, a.id})
			}
		}
		for _, a := range f.anomalies {
			if linked[a.id] {
				rows = append(rows, []any{a.at, "anomaly", a.detector, a.metric, a.id})
			}
		}
		for _, c := range f.changes {
			if linked[c.id] {
				rows = append(rows, []any{c.at, "change", c.typ, c.version, c.id})
			}
		}
		for _, l := range f.logs {
			if linked[l.id] {
				rows = append(rows, []any{l.at, "log", l.severity, l.message, l.id})
			}
		}
		if len(rows) != 3+len(f.incidents[0].links) {
			panic(fmt.Sprintf("fixture: inc-1 timeline has %d rows, its links name %d events", len(rows), len(f.incidents[0].links)))
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if !a[0].(time.Time).Equal(b[0].(time.Time)) {
				return a[0].(time.Time).Before(b[0].(time.Time))
			}
			if a[1] != b[1] {
				return a[1].(string) < b[1].(string)
			}
			return a[4].(string) < b[4].(string)
		})
		ex["incident_timeline"] = expectation{args: []any{id, id, id, id, id}, rows: rows}
	}

	{ // changes_per_service_per_day
		type key struct {
			day time.Time
			svc string
		}
		type agg struct {
			n, deploys int
			authors    map[string]bool
		}
		groups := map[key]*agg{}
		for _, c := range f.changes {
			k := key{c.at.Truncate(24 * time.Hour), c.service}
			if groups[k] == nil {
				groups[k] = &agg{authors: map[string]bool{}}
			}
			groups[k].n++
			if c.typ == "deploy" {
				groups[k].deploys++
			}
			groups[k].authors[c.author] = true
		}
		var rows [][]any
		for k, g := range groups {
			rows = append(rows, []any{k.day, k.svc, g.n, g.deploys, sortedKeys((g.authors))})
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if !a[0].(time.Time).Equal(b[0].(time.Time)) {
				return a[0].(time.Time).Before(b[0].(time.Time))
			}
			return a[1].(string) < b[1].(string)
		})
		ex["changes_per_service_per_day"] = expectation{args: []any{day(-1), day(2)}, rows: rows, unorderedArrays: true}
	}

	{ // anomalies_around_change
		c := f.changes[0]
		const window = 30 * 60
		var rows [][]any
		for _, a := range f.anomalies {
			d := int(a.at.Sub(c.at).Seconds())
			if a.service == c.service && d >= -window && d <= window {
				rows = append(rows, []any{c.id, c.service, c.at, a.id, a.metric, a.at, d, a.score})
			}
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if !a[5].(time.Time).Equal(b[5].(time.Time)) {
				return a[5].(time.Time).Before(b[5].(time.Time))
			}
			return a[3].(string) < b[3].(string)
		})
		ex["anomalies_around_change"] = expectation{args: []any{c.id, c.id, window, window}, rows: rows}
	}

	{ // change_failure_rate
		const window = time.Hour
		from, to := day(-1), day(2)
		deploys, failed := map[string]int{}, map[string]int{}
		for _, c := range f.changes {
			if c.typ != "deploy" || c.at.Before(from) || !c.at.Before(to) {
				continue
			}
			deploys[c.service]++
			for _, in := range incidents {
				if in.mergedInto == "" && in.service == c.service && !in.opened.Before(c.at) && !in.opened.After(c.at.Add(window)) {
					failed[c.service]++
					break
				}
			}
		}
		var rows [][]any
		for _, svc := range sortedKeys((deploys)) {
			rows = append(rows, []any{svc, deploys[svc], failed[svc], roundTo(float64(failed[svc])/float64(deploys[svc]), 4)})
		}
		ex["change_failure_rate"] = expectation{args: []any{int(window.Seconds()), from, to}, rows: rows}
	}

	{ // availability_per_service
		from, to := day(0), day(3)
		down := map[string]map[int64]bool{}
		for _, in := range incidents {
			end := in.resolved
			if end.IsZero() || end.After(to) {
				end = to // still open: down to the range's end
			}
			if in.mergedInto != "" || !in.opened.Before(to) || !end.After(from) {
				continue
			}
			start := max(in.opened.Unix(), from.Unix())
			for m := start / 60; m < (end.Unix()+59)/60; m++ {
				if down[in.service] == nil {
					down[in.service] = map[int64]bool{}
				}
				down[in.service][m] = true
			}
		}
		var rows [][]any
		for svc, minutes := range down {
			rows = append(rows, []any{svc, len(minutes), roundTo(1-float64(len(minutes))/to.Sub(from).Minutes(), 6)})
		}
		sort.Slice(rows, func(i, j int) bool {
			if rows[i][2] != rows[j][2] {
				return rows[i][2].(float64) < rows[j][2].(float64)
			}
			return rows[i][0].(string) < rows[j][0].(string)
		})
		ex["availability_per_service"] = expectation{args: []any{from, to}, rows: rows}
	}

	{ // alerts_per_incident_per_day
		from, to := day(-1), day(3)
		firings, fingerprints, opened := map[time.Time]int{}, map[time.Time]map[string]bool{}, map[time.Time]int{}
		for _, a := range f.alerts {
			if a.status != event.AlertFiring || a.at.Before(from) || !a.at.Before(to) {
				continue
			}
			d := a.at.Truncate(24 * time.Hour)
			firings[d]++
			if fingerprints[d] == nil {
				fingerprints[d] = map[string]bool{}
			}
			fingerprints[d][a.fingerprint] = true
		}
		for _, in := range incidents {
			if in.mergedInto == "" && !in.opened.Before(from) && in.opened.Before(to) {
				opened[in.opened.Truncate(24*time.Hour)]++
			}
		}
		var rows [][]any
		for d, n := range firings {
			rows = append(rows, []any{d, n, len(fingerprints[d]), opened[d], roundTo(float64(len(fingerprints[d]))/float64(opened[d]), 2)})
		}
		sort.Slice(rows, func(i, j int) bool { return rows[i][0].(time.Time).Before(rows[j][0].(time.Time)) })
		ex["alerts_per_incident_per_day"] = expectation{args: []any{from, to, from, to}, rows: rows}
	}

	{ // top_anomalous_metrics
		type key struct{ svc, metric string }
		type agg struct {
			n         int
			max       float64
			detectors map[string]bool
		}
		groups := map[key]*agg{}
		for _, a := range f.anomalies {
			if !inDay(a.at) {
				continue
			}
			k := key{a.service, a.metric}
			if groups[k] == nil {
				groups[k] = &agg{detectors: map[string]bool{}}
			}
			groups[k].n++
			groups[k].max = max(groups[k].max, a.score)
			groups[k].detectors[a.detector] = true
		}
		var rows [][]any
		for k, g := range groups {
			rows = append(rows, []any{k.svc, k.metric, g.n, roundTo(g.max, 3), sortedKeys((g.detectors))})
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if a[2] != b[2] {
				return a[2].(int) > b[2].(int)
			}
			if a[0] != b[0] {
				return a[0].(string) < b[0].(string)
			}
			return a[1].(string) < b[1].(string)
		})
		ex["top_anomalous_metrics"] = expectation{args: []any{day(0), day(1)}, rows: rows[:min(20, len(rows))], unorderedArrays: true}
	}

	{ // anomaly_episodes
		type agg struct {
			service, metric      string
			start, end, peakTime time.Time
			peak, peakValue      float64
			events               int
			closed               bool
		}
		episodes := map[string]*agg{}
		for _, a := range f.anomalies {
			ep := a.episode
			if ep == nil || !inDay(ep.start) {
				continue
			}
			g := episodes[ep.id]
			if g == nil {
				g = &agg{service: a.service, metric: a.metric, start: ep.start}
				episodes[ep.id] = g
			}
			g.events++
			g.closed = g.closed || ep.phase == event.EpisodeClose
			if ep.end.After(g.end) {
				g.end = ep.end
			}
			if ep.peak > g.peak {
				g.peak, g.peakTime, g.peakValue = ep.peak, ep.peakTime, ep.peakValue
			}
		}
		var rows [][]any
		for id, g := range episodes {
			closed := 0
			if g.closed {
				closed = 1
			}
			rows = append(rows, []any{g.service, g.metric, id, g.start, g.end, int(g.end.Sub(g.start).Seconds()), closed,
				g.peak, g.peakTime, g.peakValue, g.events})
		}
		sort.Slice(rows, func(i, j int) bool {
			a, b := rows[i], rows[j]
			if !a[3].(time.Time).Equal(b[3].(time.Time)) {
				return a[3].(time.Time).Before(b[3].(time.Time))
			}
			return a[2].(string) < b[2].(string)
		})
		ex["anomaly_episodes"] = expectation{args: []any{day(0), day(1)}, rows: rows}
	}

	{ // log_templates_new, log_template_merges
		// A template is new where it was first announced: announced again
		// (a log miner that started empty), it is not new again.
		type tplKey struct{ svc, id string }
		first := map[tplKey]fxTemplate{}
		for _, tp := range f.templates {
			if k := (tplKey{tp.service, tp.templateID}); tp.status == event.TemplateNew && (first[k].at.IsZero() || tp.at.Before(first[k].at)) {
				first[k] = tp
			}
		}
		var fresh, merges [][]any
		for _, tp := range first {
			if inDay(tp.at) {
				fresh = append(fresh, []any{tp.at, tp.service, tp.templateID, tp.template, tp.example})
			}
		}
		for _, tp := range f.templates {
			if !inDay(tp.at) {
				continue
			}
			switch tp.status {
			case event.TemplateChanged:
				merges = append(merges, []any{tp.at, tp.service, tp.templateID, tp.template, tp.previousID, tp.mergedFrom})
			}
		}
		byTime := func(rows [][]any) {
			sort.Slice(rows, func(i, j int) bool {
				a, b := rows[i], rows[j]
				if !a[0].(time.Time).Equal(b[0].(time.Time)) {
					return a[0].(time.Time).Before(b[0].(time.Time))
				}
				if a[1] != b[1] {
					return a[1].(string) < b[1].(string)
				}
				return a[2].(string) < b[2].(string)
			})
		}
		byTime(fresh)
		byTime(merges)
		ex["log_templates_new"] = expectation{args: []any{day(0), day(1)}, rows: fresh}
		ex["log_template_merges"] = expectation{args: []any{day(0), day(1)}, rows: merges}
	}

	{ // webhook_failures_per_receiver
		type agg struct {
			attempts, failures   int
			incidents, delivered map[string]bool
			maxMS                int
		}
		groups := map[string]*agg{}
		for _, d := range f.deliveries {
			if !inDay(d.Time) {
				continue
			}
			g := groups[d.Receiver]
			if g == nil {
				g = &agg{incidents: map[string]bool{}, delivered: map[string]bool{}}
				groups[d.Receiver] = g
			}
			g.attempts++
			g.incidents[d.IncidentID] = true
			if d.StatusCode >= 200 && d.StatusCode < 300 {
				g.delivered[d.IncidentID] = true
			} else {
				g.failures++
			}
			g.maxMS = max(g.maxMS, int(d.Duration.Milliseconds()))
		}
		var rows [][]any
		for _, r := range sortedKeys((groups)) {
			g := groups[r]
			rows = append(rows, []any{r, g.attempts, g.failures, len(g.incidents), len(g.delivered), g.maxMS})
		}
		ex["webhook_failures_per_receiver"] = expectation{args: []any{day(0), day(1)}, rows: rows}
	}
	return ex
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// loadFixture writes the fixture through the writer's own path (Parse,
// Rows, a batch writer per table) twice, the second time as JetStream
// would redeliver it after a crash, so every query must see each row once
// although every row is stored twice. Merges are stopped first, so the
// copies stay until the queries ran.
func loadFixture(t *testing.T, ctx context.Context, conn driver.Conn, f *fixture) {
	t.Helper()
	for _, table := range EventTables {
		if err := conn.Exec(ctx, "SYSTEM STOP MERGES "+table); err != nil {
			t.Fatal(err)
		}
	}
	sink, err := NewSink(conn, SinkConfig{MaxRows: 100, MaxAge: time.Hour, MaxPendingRows: 10_000}, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := store.NewBatchWriter(conn, store.BatchConfig{Table: TableWebhookDeliveries, Columns: Columns[TableWebhookDeliveries], MaxAge: time.Hour}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	var (
		mu    sync.Mutex
		fails []error
		wg    sync.WaitGroup
	)
	done := func(err error) {
		if err != nil {
			mu.Lock()
			fails = append(fails, err)
			mu.Unlock()
		}
		wg.Done()
	}
	envelopes := f.envelopes(t)
	for round := 0; round < 2; round++ {
		for _, data := range envelopes {
			e, err := event.Parse(data)
			if err != nil {
				t.Fatalf("fixture event does not parse: %v\n%s", err, data)
			}
			wg.Add(1)
			sink.Write(ctx, e, done)
		}
		for _, d := range f.deliveries {
			row, err := WebhookDeliveryRow(d)
			if err != nil {
				t.Fatal(err)
			}
			wg.Add(1)
			if err := deliveries.Add(ctx, row, done); err != nil {
				t.Fatal(err)
			}
		}
		if err := sink.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		if err := deliveries.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
	}
	if err := sink.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := deliveries.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if len(fails) > 0 {
		t.Fatalf("%d rows failed, first: %v", len(fails), fails[0])
	}
}

// TestCookbookQueries runs every query of docs/queries.md against the real
// ClickHouse, loaded with the fixture (every row twice), and compares its
// rows with the answer computed from the fixture. A query without an
// expectation, or an expectation without a query, fails the test.
func TestCookbookQueries(t *testing.T) {
	queries := readCookbook(t)
	f := newFixture()
	ex := expectations(f)
	for _, q := range queries {
		if _, ok := ex[q.name]; !ok {
			t.Errorf("%s: query %s has no expectation in queries_test.go", cookbookPath, q.name)
		}
	}
	for name := range ex {
		if !slices.ContainsFunc(queries, func(q namedQuery) bool { return q.name == name }) {
			t.Errorf("expectation %s has no query in %s", name, cookbookPath)
		}
	}
	for _, q := range queries {
		if n := strings.Count(q.sql, "?"); n != len(ex[q.name].args) {
			t.Errorf("%s: %d placeholders, the expectation binds %d arguments", q.name, n, len(ex[q.name].args))
		}
		if len(ex[q.name].rows) == 0 {
			t.Errorf("%s: the fixture gives it no rows, so the check would prove little", q.name)
		}
	}
	if t.Failed() {
		return
	}

	if testing.Short() {
		t.Skip("integration test: needs ClickHouse")
	}
	ctx := context.Background()
	st := migratedStore(t, ctx, zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel))
	loadFixture(t, ctx, st.Conn, f)
	for _, table := range EventTables {
		var stored, final uint64
		if err := st.Conn.QueryRow(ctx, "SELECT count() FROM "+table).Scan(&stored); err != nil {
			t.Fatal(err)
		}
		if err := st.Conn.QueryRow(ctx, "SELECT count() FROM "+table+" FINAL").Scan(&final); err != nil {
			t.Fatal(err)
		}
		// incidents keeps one row per incident, the other tables one per
		// event; each was written twice.
		if final == 0 || (table != TableIncidents && stored != 2*final) {
			t.Fatalf("%s: %d rows stored, %d under FINAL: want every row stored twice", table, stored, final)
		}
	}

	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			want := ex[q.name]
			got := queryRows(t, ctx, st.Conn, q.sql, want.args)
			compareRows(t, want, got)
		})
	}
	runCookbookOnCurrentClickHouse(t, f, queries, ex)
}

// queryRows runs query and returns its rows as Go values.
func queryRows(t *testing.T, ctx context.Context, conn driver.Conn, query string, args []any) [][]any {
	t.Helper()
	rows, err := conn.Query(ctx, query, args...)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	types := rows.ColumnTypes()
	var out [][]any
	for rows.Next() {
		ptrs := make([]any, len(types))
		for i, ct := range types {
			ptrs[i] = reflect.New(ct.ScanType()).Interface()
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatalf("scan: %v", err)
		}
		row := make([]any, len(ptrs))
		for i, p := range ptrs {
			row[i] = reflect.ValueOf(p).Elem().Interface()
		}
		out = append(out, row)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func compareRows(t *testing.T, want expectation, got [][]any) {
	t.Helper()
	if len(got) != len(want.rows) {
		t.Fatalf("%d rows, want %d\ngot:  %v\nwant: %v", len(got), len(want.rows), got, want.rows)
	}
	for i := range want.rows {
		if len(got[i]) != len(want.rows[i]) {
			t.Fatalf("row %d has %d columns, want %d: %v", i, len(got[i]), len(want.rows[i]), got[i])
		}
		for j, w := range want.rows[i] {
			if msg := sameValue(w, got[i][j], want.unorderedArrays); msg != "" {
				t.Errorf("row %d column %d: %s\ngot row:  %v\nwant row: %v", i, j, msg, got[i], want.rows[i])
			}
		}
	}
}

// sameValue compares a wanted value with one read back: a typed Go value
// from clickhouse-go, or a text cell (string) from chdb's TSV output.
// It returns "" when they match, else what differs.
func sameValue(want, got any, unordered bool) string {
	cell, isText := got.(string)
	switch w := want.(type) {
	case string:
		if got != w {
			return fmt.Sprintf("%q, want %q", got, w)
		}
	case int:
		var g float64
		if isText {
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				return fmt.Sprintf("%q is not a number", cell)
			}
			g = v
		} else {
			v := reflect.ValueOf(got)
			switch {
			case v.CanInt():
				g = float64(v.Int())
			case v.CanUint():
				g = float64(v.Uint())
			case v.CanFloat():
				g = v.Float()
			default:
				return fmt.Sprintf("%v (%T), want the integer %d", got, got, w)
			}
		}
		if g != float64(w) {
			return fmt.Sprintf("%v, want %d", got, w)
		}
	case float64, approx:
		a, ok := want.(approx)
		if !ok {
			a = approx{w.(float64), floatTol}
		}
		var g float64
		if isText {
			v, err := strconv.ParseFloat(cell, 64)
			if err != nil {
				return fmt.Sprintf("%q is not a number", cell)
			}
			g = v
		} else if v := reflect.ValueOf(got); v.CanFloat() {
			g = v.Float()
		} else {
			return fmt.Sprintf("%v (%T), want a float", got, got)
		}
		if math.IsNaN(a.v) != math.IsNaN(g) || math.Abs(g-a.v) > a.tol {
			return fmt.Sprintf("%v, want %v ± %v", g, a.v, a.tol)
		}
	case time.Time:
		var g time.Time
		if isText {
			layout := time.DateTime
			if len(cell) == len(time.DateOnly) {
				layout = time.DateOnly
			}
			v, err := time.ParseInLocation(layout, cell, time.UTC)
			if err != nil {
				return fmt.Sprintf("%q is not a time", cell)
			}
			g = v
		} else if v, ok := got.(time.Time); ok {
			g = v
		} else {
			return fmt.Sprintf("%v (%T), want a time", got, got)
		}
		if !g.Equal(w) {
			return fmt.Sprintf("%s, want %s", g.UTC(), w)
		}
	case []string:
		var g []string
		if isText {
			v, err := parseArrayCell(cell)
			if err != nil {
				return err.Error()
			}
			g = v
		} else if v, ok := got.([]string); ok {
			g = slices.Clone(v)
		} else {
			return fmt.Sprintf("%v (%T), want []string", got, got)
		}
		w = slices.Clone(w)
		if unordered {
			slices.Sort(g)
			slices.Sort(w)
		}
		if !slices.Equal(g, w) {
			return fmt.Sprintf("%q, want %q", g, w)
		}
	default:
		return fmt.Sprintf("the expectation holds a %T, which sameValue cannot compare", want)
	}
	return ""
}

// parseArrayCell reads a TSV array of strings: ['a','b'].
func parseArrayCell(cell string) ([]string, error) {
	if len(cell) < 2 || cell[0] != '[' || cell[len(cell)-1] != ']' {
		return nil, fmt.Errorf("%q is not an array", cell)
	}
	var out []string
	s := cell[1 : len(cell)-1]
	for len(s) > 0 {
		if s[0] != '\'' {
			return nil, fmt.Errorf("%q: string elements expected", cell)
		}
		var b strings.Builder
		i := 1
		for ; i < len(s) && s[i] != '\''; i++ {
			if s[i] == '\\' && i+1 < len(s) {
				i++
			}
			b.WriteByte(s[i])
		}
		out = append(out, b.String())
		s = strings.TrimPrefix(s[min(i+1, len(s)):], ",")
	}
	return out, nil
}
