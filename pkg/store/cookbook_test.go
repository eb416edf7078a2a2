package store

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// cookbookPath is the analysts' SQL cookbook (services/writer's
// queries_test.go checks each query's answer on a fixture; the tests here
// check what an analyst reading it relies on).
const cookbookPath = "../../docs/queries.md"

// cookbookQuery returns the ```sql block named name in the cookbook and the
// parameter names of its `-- params:` line, in the order listed.
func cookbookQuery(t *testing.T, name string) (sql string, params []string) {
	t.Helper()
	doc, err := os.ReadFile(cookbookPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile("(?s)```sql\n(.*?)```").FindAllStringSubmatch(string(doc), -1) {
		if !strings.Contains(m[1], "-- name: "+name+"\n") {
			continue
		}
		p := regexp.MustCompile(`(?m)^-- params: (.*)$`).FindStringSubmatch(m[1])
		if p == nil {
			t.Fatalf("%s: query %s has no -- params: line", cookbookPath, name)
		}
		for _, param := range strings.Split(p[1], ",") {
			params = append(params, strings.Fields(param)[0])
		}
		return m[1], params
	}
	t.Fatalf("%s: no query named %s", cookbookPath, name)
	return "", nil
}

// The cookbook says `?` parameters are bound in the order its `-- params:`
// line lists them. An analyst binding new_log_templates_today that way must
// get the template first seen today.
func TestCookbookNewLogTemplatesParamsInOrder(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	if _, err := s.Migrate(ctx, Schema); err != nil {
		t.Fatal(err)
	}
	dayStart := time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)
	b, err := s.Conn.PrepareBatch(ctx, "INSERT INTO logs (id, time, service, template_id, template, derived)")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []struct {
		id, template string
		at           time.Time
	}{
		{"a", "tpl-old", dayStart.Add(-2 * time.Hour)},
		{"b", "tpl-old", dayStart.Add(3 * time.Hour)},
		{"c", "tpl-new", dayStart.Add(4 * time.Hour)},
	} {
		if err := b.Append(l.id, l.at, "checkout", l.template, l.template+" <*>", uint8(1)); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Send(); err != nil {
		t.Fatal(err)
	}

	sql, params := cookbookQuery(t, "new_log_templates_today")
	values := map[string]any{"day_start": dayStart, "day_end": dayStart.AddDate(0, 0, 1)}
	var args []any
	for _, p := range params {
		v, ok := values[p]
		if !ok {
			t.Fatalf("new_log_templates_today: unexpected parameter %q", p)
		}
		args = append(args, v)
	}
	rows, err := s.Conn.Query(ctx, sql, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var got []string
	for rows.Next() {
		var (
			id, template string
			services     []string
			first        time.Time
			n            uint64
		)
		if err := rows.Scan(&id, &template, &services, &first, &n); err != nil {
			t.Fatal(err)
		}
		got = append(got, id)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != "tpl-new" {
		t.Fatalf("bound in the -- params: order %v, the query returned templates %v, want [tpl-new]", params, got)
	}
}
