//go:build linux || darwin

package writer

import (
	"fmt"
	"io/fs"
	"os"
	"testing"

	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// TestDashboardSQLOnCurrentClickHouse runs every ClickHouse panel of the
// dashboard on a current server (libchdb) over the full schema.
func TestDashboardSQLOnCurrentClickHouse(t *testing.T) {
	c := testenv.CurrentClickHouse(t)
	db := fmt.Sprintf("aiops_dash_%d", os.Getpid())
	c.MustQuery(t, "CREATE DATABASE IF NOT EXISTS "+db)
	c.MustQuery(t, "USE "+db)
	files, _ := fs.Glob(store.Schema, "*.sql")
	for _, name := range files {
		text, _ := fs.ReadFile(store.Schema, name)
		for _, stmt := range schemaStatements(string(text)) {
			c.MustQuery(t, stmt)
		}
	}
	for title, qs := range dashboardClickHouseSQL(t, day(0), day(1)) {
		for _, q := range qs {
			if _, err := c.Query(q); err != nil {
				t.Errorf("%s: %v", title, err)
			}
		}
	}
}
