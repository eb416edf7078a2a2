package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/rs/zerolog"
)

func TestParseMigration(t *testing.T) {
	text := `-- leading comment; with a semicolon
CREATE TABLE a (s String DEFAULT 'x;y', t String DEFAULT 'it\'s; fine') ENGINE = Memory;
CREATE TABLE ` + "`b;c`" + ` (x UInt8) ENGINE = Memory -- trailing; comment
;
-- +min-version 20.3
ALTER TABLE a MODIFY COLUMN s LowCardinality(String);
-- +min-version 21.8
ALTER TABLE a MODIFY TTL now();
ALTER TABLE a MODIFY COLUMN t String CODEC(ZSTD(1))
`
	units, err := parseMigration("0001_x.sql", text)
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 3 {
		t.Fatalf("got %d units, want 3: %+v", len(units), units)
	}
	base := units[0]
	if base.name != "0001_x.sql" || base.minVersion != nil || len(base.statements) != 2 {
		t.Fatalf("base unit = %+v", base)
	}
	if !strings.Contains(base.statements[0], `'x;y'`) || !strings.Contains(base.statements[0], `'it\'s; fine'`) {
		t.Fatalf("a ';' inside a string split the statement: %q", base.statements[0])
	}
	if !strings.Contains(base.statements[1], "`b;c`") {
		t.Fatalf("a ';' inside a quoted identifier split the statement: %q", base.statements[1])
	}
	if u := units[1]; u.name != "0001_x.sql#1" || *u.minVersion != (Version{20, 3, 0}) || len(u.statements) != 1 {
		t.Fatalf("first gated unit = %+v", u)
	}
	if u := units[2]; u.name != "0001_x.sql#2" || *u.minVersion != (Version{21, 8, 0}) || len(u.statements) != 2 {
		t.Fatalf("second gated unit = %+v", u)
	}
	if units[0].checksum == "" || units[0].checksum == units[1].checksum {
		t.Fatal("units need distinct checksums")
	}

	for name, bad := range map[string]string{
		"marker inside statement": "CREATE TABLE a (\n-- +min-version 20.3\nx UInt8) ENGINE = Memory;",
		"bad version":             "-- +min-version soon\nSELECT 1;",
		"unterminated string":     "SELECT 'oops;",
	} {
		if _, err := parseMigration("0002_bad.sql", bad); !errors.Is(err, ErrBadMigration) || !strings.Contains(err.Error(), "0002_bad.sql") {
			t.Errorf("%s: err = %v, want ErrBadMigration naming the file", name, err)
		}
	}
}

func TestLoadMigrationsRejectsBadNames(t *testing.T) {
	for _, name := range []string{"1_x.sql", "0001-x.sql", "0001_X.sql", "events.sql"} {
		_, err := loadMigrations(fstest.MapFS{name: {Data: []byte("SELECT 1;")}})
		if !errors.Is(err, ErrBadMigration) || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v, want ErrBadMigration naming the file", name, err)
		}
	}
	units, err := loadMigrations(fstest.MapFS{
		"0002_b.sql": {Data: []byte("SELECT 2;")},
		"0001_a.sql": {Data: []byte("SELECT 1;")},
		"README.md":  {Data: []byte("not a migration")},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(units) != 2 || units[0].name != "0001_a.sql" || units[1].name != "0002_b.sql" {
		t.Fatalf("units = %+v, want 0001_a then 0002_b", units)
	}
}

func TestMigrateProjectSchemaOnce(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	applied, err := s.Migrate(ctx, Schema)
	if err != nil {
		t.Fatalf("Migrate: %v", err)
	}
	// Every file, then each of its newer-server blocks this server runs,
	// counted from the files' markers so that a new migration needs no edit
	// here.
	files, err := fs.Glob(Schema, "*.sql")
	if err != nil || len(files) < 11 {
		t.Fatalf("schema files %v, %v", files, err)
	}
	var want []string
	for _, f := range files {
		want = append(want, f)
		text, err := fs.ReadFile(Schema, f)
		if err != nil {
			t.Fatal(err)
		}
		block := 0
		for _, line := range strings.Split(string(text), "\n") {
			if v, ok := strings.CutPrefix(line, "-- +min-version "); ok {
				block++
				min, err := ParseVersion(strings.TrimSpace(v))
				if err != nil {
					t.Fatalf("%s: %v", f, err)
				}
				if s.ServerVersion().AtLeast(min.Major, min.Minor) {
					want = append(want, fmt.Sprintf("%s#%d", f, block))
				}
			}
		}
	}
	if !slices.Equal(applied, want) {
		t.Fatalf("first Migrate applied %v, want %v on %v", applied, want, s.ServerVersion())
	}
	again, err := s.Migrate(ctx, Schema)
	if err != nil || len(again) != 0 {
		t.Fatalf("second Migrate applied %v, %v; want nothing", again, err)
	}
	recorded, err := s.AppliedMigrations(ctx)
	if err != nil || !slices.Equal(recorded, want) {
		t.Fatalf("recorded %v, %v; want %v", recorded, err, want)
	}

	// The events table has the documented columns; the column types show
	// whether the newer-server block ran.
	types := map[string]string{}
	rows, err := s.Conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'events'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var n, typ string
		if err := rows.Scan(&n, &typ); err != nil {
			t.Fatal(err)
		}
		types[n] = typ
	}
	rows.Close()
	for col, typ := range map[string]string{
		"id": "String", "kind": "String", "time": "DateTime", "observed_time": "DateTime", "service": "String",
		"fingerprint": "String", "labels.key": "Array(String)", "labels.value": "Array(String)",
		"resource.key": "Array(String)", "resource.value": "Array(String)", "body": "String",
		"schema_version": "UInt16", "inserted_at": "DateTime",
	} {
		if types[col] != typ {
			t.Errorf("events.%s is %q, want %q", col, types[col], typ)
		}
	}
	wantSeverity := "String"
	if s.ServerVersion().AtLeast(20, 3) {
		wantSeverity = "LowCardinality(String)"
	}
	if types["severity"] != wantSeverity || types["source"] != wantSeverity {
		t.Errorf("severity/source are %q/%q, want %q on %v", types["severity"], types["source"], wantSeverity, s.ServerVersion())
	}
}

// A gated block is skipped on an older server and left unrecorded, so the
// same server applies it once it is upgraded.
func TestMigrateGatedBlockWaitsForUpgrade(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	migrations := fstest.MapFS{
		"0001_t.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Memory;\n" +
			"-- +min-version 99.1\nCREATE TABLE IF NOT EXISTS t_new (x UInt8) ENGINE = Memory;\n")},
	}
	s.version = Version{99, 0, 0}
	applied, err := s.Migrate(ctx, migrations)
	if err != nil || !slices.Equal(applied, []string{"0001_t.sql"}) {
		t.Fatalf("Migrate on 99.0 = %v, %v; want only the base unit", applied, err)
	}
	if n := count(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 't_new'"); n != 0 {
		t.Fatal("gated statement ran on an older server")
	}
	s.version = Version{99, 1, 0}
	applied, err = s.Migrate(ctx, migrations)
	if err != nil || !slices.Equal(applied, []string{"0001_t.sql#1"}) {
		t.Fatalf("Migrate after upgrade = %v, %v; want the gated unit", applied, err)
	}
	if n := count(t, s, "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = 't_new'"); n != 1 {
		t.Fatal("gated statement did not run after the upgrade")
	}
}

// A build older than the schema's (a downgrade, a rollback) writes without
// what the newer migrations added: it starts, since they add and do not
// take away, and says so, naming them, rather than in silence.
func TestMigrateWarnsOfMigrationsOfANewerBuild(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	first := fstest.MapFS{"0001_t.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS t (x UInt8) ENGINE = Memory;")}}
	newer := fstest.MapFS{
		"0001_t.sql": first["0001_t.sql"],
		"0002_u.sql": {Data: []byte("CREATE TABLE IF NOT EXISTS u (x UInt8) ENGINE = Memory;")},
	}
	if _, err := s.Migrate(ctx, newer); err != nil {
		t.Fatal(err)
	}
	var logged bytes.Buffer
	s.log = zerolog.New(&logged)
	applied, err := s.Migrate(ctx, first)
	if err != nil || len(applied) != 0 {
		t.Fatalf("Migrate of the older build = %v, %v; want nothing applied and no error", applied, err)
	}
	if !strings.Contains(logged.String(), `"level":"warn"`) || !strings.Contains(logged.String(), "0002_u.sql") {
		t.Fatalf("log %q, want a warning naming 0002_u.sql", logged.String())
	}
}

func TestMigrateReportsFailingStatement(t *testing.T) {
	s, _ := openTestStore(t)
	_, err := s.Migrate(context.Background(), fstest.MapFS{
		"0001_ok.sql":  {Data: []byte("CREATE TABLE IF NOT EXISTS ok (x UInt8) ENGINE = Memory;")},
		"0002_bad.sql": {Data: []byte("CREATE TABLE ok2 (x UInt8) ENGINE = Memory;\nCREATE TABLE broken (x NoSuchType) ENGINE = Memory;")},
	})
	if err == nil || !strings.Contains(err.Error(), "0002_bad.sql statement 2") {
		t.Fatalf("err = %v, want it to name 0002_bad.sql statement 2", err)
	}
	recorded, _ := s.AppliedMigrations(context.Background())
	if !slices.Equal(recorded, []string{"0001_ok.sql"}) {
		t.Fatalf("recorded %v, want only the migration that succeeded", recorded)
	}
}

// Another process ran a unit's statements but had not recorded it yet: the
// second run must find the work done instead of failing.
func TestMigrateToleratesConcurrentRun(t *testing.T) {
	s, _ := openTestStore(t)
	ctx := context.Background()
	stmts := []string{
		"CREATE TABLE t (x UInt8) ENGINE = MergeTree ORDER BY x",
		"ALTER TABLE t ADD COLUMN y UInt8",
	}
	for _, q := range stmts {
		if err := s.Conn.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	applied, err := s.Migrate(ctx, fstest.MapFS{"0001_t.sql": {Data: []byte(strings.Join(stmts, ";\n") + ";")}})
	if err != nil || !slices.Equal(applied, []string{"0001_t.sql"}) {
		t.Fatalf("Migrate over an already-applied unit = %v, %v; want it recorded", applied, err)
	}
}
