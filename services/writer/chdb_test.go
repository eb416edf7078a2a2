//go:build linux || darwin

package writer

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// runCookbookOnCurrentClickHouse applies the schema (every block: this is a
// current server), inserts the rows the writer makes of the fixture, twice,
// and checks every cookbook query against the same expectations.
func runCookbookOnCurrentClickHouse(t *testing.T, f *fixture, queries []namedQuery, ex map[string]expectation) {
	t.Run("current_clickhouse", func(t *testing.T) {
		c := testenv.CurrentClickHouse(t)
		t.Logf("chdb ClickHouse %s", c.MustQuery(t, "SELECT version()"))
		db := fmt.Sprintf("aiops_cookbook_%d", os.Getpid())
		c.MustQuery(t, "CREATE DATABASE IF NOT EXISTS "+db)
		c.MustQuery(t, "USE "+db)

		files, err := fs.Glob(store.Schema, "*.sql")
		if err != nil {
			t.Fatal(err)
		}
		for _, name := range files {
			text, err := fs.ReadFile(store.Schema, name)
			if err != nil {
				t.Fatal(err)
			}
			for _, stmt := range schemaStatements(string(text)) {
				c.MustQuery(t, stmt)
			}
		}

		rows := map[string][][]any{}
		for _, data := range f.envelopes(t) {
			e, err := event.Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			trs, err := Rows(e)
			if err != nil {
				t.Fatal(err)
			}
			for _, tr := range trs {
				rows[tr.Table] = append(rows[tr.Table], tr.Row)
			}
		}
		for _, d := range f.deliveries {
			row, err := WebhookDeliveryRow(d)
			if err != nil {
				t.Fatal(err)
			}
			rows[TableWebhookDeliveries] = append(rows[TableWebhookDeliveries], row)
		}
		for table, rs := range rows {
			c.MustQuery(t, "SYSTEM STOP MERGES "+table)
			for round := 0; round < 2; round++ {
				var b strings.Builder
				b.WriteString("INSERT INTO " + table + " (`" + strings.Join(Columns[table], "`, `") + "`) VALUES ")
				for i, r := range rs {
					if i > 0 {
						b.WriteString(", ")
					}
					b.WriteByte('(')
					for j, v := range r {
						if j > 0 {
							b.WriteString(", ")
						}
						b.WriteString(sqlLiteral(t, v))
					}
					b.WriteByte(')')
				}
				c.MustQuery(t, b.String())
			}
		}

		for _, q := range queries {
			t.Run(q.name, func(t *testing.T) {
				want := ex[q.name]
				out, err := c.Query(bindLiterals(t, q.sql, want.args))
				if err != nil {
					t.Fatalf("on ClickHouse 26.5: %v", err)
				}
				var got [][]any
				for _, line := range strings.Split(strings.TrimSuffix(out, "\n"), "\n") {
					if line == "" {
						continue
					}
					var row []any
					for _, cell := range strings.Split(line, "\t") {
						row = append(row, unescapeTSV(cell))
					}
					got = append(got, row)
				}
				compareRows(t, want, got)
			})
		}
	})
}

// schemaStatements splits a migration file into statements: comment lines
// dropped (they may hold ';'), the rest split at ';'.
func schemaStatements(text string) []string {
	var kept []string
	for _, line := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "--") {
			kept = append(kept, line)
		}
	}
	var out []string
	for _, s := range strings.Split(strings.Join(kept, "\n"), ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// bindLiterals replaces each ? of query by its argument as a literal, as the
// client does for 18.16 (libchdb has no client-side binding).
func bindLiterals(t *testing.T, query string, args []any) string {
	parts := strings.Split(query, "?")
	if len(parts)-1 != len(args) {
		t.Fatalf("%d placeholders, %d arguments", len(parts)-1, len(args))
	}
	var b strings.Builder
	b.WriteString(parts[0])
	for i, a := range args {
		b.WriteString(sqlLiteral(t, a))
		b.WriteString(parts[i+1])
	}
	return b.String()
}

func sqlLiteral(t *testing.T, v any) string {
	switch v := deref(v).(type) {
	case json.RawMessage:
		return sqlLiteral(t, string(v))
	case string:
		return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
	case time.Time:
		return "toDateTime('" + v.UTC().Format(time.DateTime) + "', 'UTC')"
	case []string:
		quoted := make([]string, len(v))
		for i, s := range v {
			quoted[i] = sqlLiteral(t, s)
		}
		return "[" + strings.Join(quoted, ", ") + "]"
	case float64:
		return strconv.FormatFloat(v, 'g', -1, 64)
	case int:
		return strconv.Itoa(v)
	case uint8, uint16, uint32, uint64:
		return fmt.Sprint(v)
	}
	t.Fatalf("no literal for %T", v)
	return ""
}

func unescapeTSV(cell string) string {
	if !strings.Contains(cell, `\`) {
		return cell
	}
	return strings.NewReplacer(`\t`, "\t", `\n`, "\n", `\\`, `\`, `\'`, `'`).Replace(cell)
}
