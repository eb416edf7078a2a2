package store

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/aiops-dev/aiops/pkg/errs"
)

//go:embed schema/*.sql
var schemaFiles embed.FS

// Schema is the project's own schema, the migrations in schema/*.sql.
var Schema fs.FS = mustSub(schemaFiles, "schema")

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err)
	}
	return sub
}

// MigrationsTable records applied migration units.
const MigrationsTable = "aiops_schema_migrations"

// ErrBadMigration is wrapped by errors about a migration file's name or text.
var ErrBadMigration = errors.New("bad migration")

// migrationName is NNNN_words.sql; the number orders the files.
var migrationName = regexp.MustCompile(`^[0-9]{4}_[a-z0-9_]+\.sql$`)

const minVersionMarker = "-- +min-version"

// The SQL of the bookkeeping, shared with the test that runs it on a
// current server.
const (
	createMigrationsTable = "CREATE TABLE IF NOT EXISTS `" + MigrationsTable + "` (" +
		"name String, checksum String, server_version String, applied_at DateTime DEFAULT now()" +
		") ENGINE = ReplacingMergeTree(applied_at) ORDER BY name"
	selectAppliedMigrations = "SELECT name, argMax(checksum, applied_at) FROM `" + MigrationsTable + "` GROUP BY name"
)

// migrationUnit is what gets applied and recorded as one: the statements of
// a file before its first marker, or one marked block. Recording gated
// blocks on their own means a server upgraded from 18.16 gets the extras it
// skipped on the next Migrate.
type migrationUnit struct {
	name       string   // "0001_events.sql", "0001_events.sql#1", ...
	minVersion *Version // nil: every server
	statements []string
	checksum   string
}

// Migrate applies, in file-name order, the units of migrations (files named
// NNNN_name.sql at its root) not yet recorded in MigrationsTable, and returns
// the names of those it applied.
//
// A line `-- +min-version 20.3` starts a block that runs only on servers of
// that version or newer (LowCardinality, codecs, TTL): on older servers it is
// skipped and left unrecorded, so an upgraded server applies it later. The
// block runs until the next marker. Files are append-only: once released, a
// file's units must not change (their checksums are recorded and a change is
// logged).
//
// With Config.Cluster set, every unit is applied in its cluster form
// (cluster.go: replicated local tables behind Distributed tables, every
// statement ON CLUSTER) and recorded in a table replicated to every server.
//
// ClickHouse has no transactions or locks, so two processes starting at once
// may both apply a unit: write statements that tolerate a second run
// (CREATE TABLE IF NOT EXISTS, MODIFY COLUMN to the same type). A statement
// failing because its table or column exists already counts as done, since
// 18.16 has no ADD COLUMN IF NOT EXISTS.
func (s *Store) Migrate(ctx context.Context, migrations fs.FS) (applied []string, err error) {
	defer func() {
		if err != nil {
			err = withKeeperHint(err)
		}
	}()
	units, err := loadMigrations(migrations)
	if err != nil {
		return nil, err
	}
	createBookkeeping := createMigrationsTable
	ensureBookkeeping := true
	if s.cluster != "" {
		database, err := s.currentDatabase(ctx)
		if err != nil {
			return nil, err
		}
		if units, err = clusterUnits(units, s.cluster, database); err != nil {
			return nil, err
		}
		// The single-node schema in the same database would look applied
		// (its records are there) and leave the tables unreplicated.
		var engine string
		if err := s.Conn.QueryRow(ctx, "SELECT any(engine) FROM system.tables WHERE database = ? AND name = ?", database, MigrationsTable).Scan(&engine); err != nil {
			return nil, fmt.Errorf("store: read the engine of %s: %w", MigrationsTable, err)
		}
		if engine != "" && !strings.HasPrefix(engine, "Replicated") {
			return nil, errs.Permanentf("store: cluster %s: database %s holds the single-node schema (%s is %s); apply the cluster form to a new database (docs/operations.md)", s.cluster, database, MigrationsTable, engine)
		}
		// Each ON CLUSTER statement waits for every server and fails when
		// one is down (after distributed_ddl_task_timeout, 180 s): with
		// nothing to apply, none is run, so a writer restarts while a
		// replica is down (or its ZooKeeper is, which leaves the
		// replicated bookkeeping readable).
		if engine != "" {
			done, err := s.appliedMigrations(ctx)
			if err != nil {
				return nil, err
			}
			ensureBookkeeping = s.anyToApply(units, done)
		}
		// The DSN's database exists on the node connected to; the others
		// may not have it yet.
		if ensureBookkeeping {
			// Nothing else is logged while a statement waits for a server
			// that is down, up to 3 minutes with no gateway listening.
			s.log.Info().Str("cluster", s.cluster).Msg("applying the schema ON CLUSTER: each statement waits for every server of the cluster " +
				"(up to distributed_ddl_task_timeout, 180 s by default) and fails the start if one does not answer")
			if err := s.Conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+quoteIdents(database)+" ON CLUSTER "+quoteIdents(s.cluster)); err != nil {
				return nil, fmt.Errorf("store: create database %s on cluster %s: %w", database, s.cluster, err)
			}
		}
		createBookkeeping = migrationsTableCluster(database, s.cluster)
	} else {
		// The reverse mistake (store.cluster left out of one writer's
		// config): the cluster form's records would make its tables look
		// applied, a later migration would alter the Distributed tables
		// alone or create unreplicated ones, and inserts would return
		// before the shards have the rows (no insert_distributed_sync).
		var engine string
		if err := s.Conn.QueryRow(ctx, "SELECT any(engine) FROM system.tables WHERE database = currentDatabase() AND name = ?", MigrationsTable).Scan(&engine); err != nil {
			return nil, fmt.Errorf("store: read the engine of %s: %w", MigrationsTable, err)
		}
		if strings.HasPrefix(engine, "Replicated") {
			return nil, errs.Permanentf("store: the database holds the cluster form of the schema (%s is %s); set store.cluster to its cluster (docs/operations.md)", MigrationsTable, engine)
		}
	}
	if ensureBookkeeping {
		if err := s.Conn.Exec(ctx, createBookkeeping); err != nil {
			return nil, fmt.Errorf("store: create %s: %w", MigrationsTable, err)
		}
	}
	done, err := s.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	if newer := unknownMigrations(done, units); len(newer) > 0 {
		// A downgrade, a rollback, or an older writer beside a newer one:
		// the migrations so far add and change columns, so it still
		// writes, without what they added; the operator must hear of it.
		s.log.Warn().Strs("migrations", newer).Msg("the database holds migrations this build does not know: " +
			"a newer build applied them, and this one writes without what they added (docs/operations.md, Upgrades and migrations)")
	}
	for _, u := range units {
		if sum, ok := done[u.name]; ok {
			if sum != u.checksum {
				s.log.Warn().Str("migration", u.name).Msg("migration changed after it was applied; the change is not applied (add a new file instead)")
			}
			continue
		}
		if u.minVersion != nil && !s.version.AtLeast(u.minVersion.Major, u.minVersion.Minor) {
			s.log.Info().Str("migration", u.name).Stringer("needs", u.minVersion).Stringer("server_version", s.version).
				Msg("skipping migration block for newer servers")
			continue
		}
		for i, stmt := range u.statements {
			if err := s.Conn.Exec(ctx, stmt); err != nil {
				if alreadyDone(err) {
					s.log.Warn().Str("migration", u.name).Int("statement", i+1).Err(err).
						Msg("migration statement found its work done (another process migrating at the same time?); continuing")
					continue
				}
				return applied, fmt.Errorf("store: migration %s statement %d: %w", u.name, i+1, err)
			}
		}
		if err := s.recordMigration(ctx, u); err != nil {
			return applied, err
		}
		s.log.Info().Str("migration", u.name).Int("statements", len(u.statements)).Msg("applied migration")
		applied = append(applied, u.name)
	}
	return applied, nil
}

// anyToApply reports whether a unit not in done, the units applied, would
// run on this server (its -- +min-version, if any, met).
func (s *Store) anyToApply(units []migrationUnit, done map[string]string) bool {
	for _, u := range units {
		if _, ok := done[u.name]; ok {
			continue
		}
		if u.minVersion == nil || s.version.AtLeast(u.minVersion.Major, u.minVersion.Minor) {
			return true
		}
	}
	return false
}

// currentDatabase is the DSN's database, checked to be a plain name since
// the cluster form writes it into SQL and ZooKeeper paths.
func (s *Store) currentDatabase(ctx context.Context) (string, error) {
	var database string
	if err := s.Conn.QueryRow(ctx, "SELECT currentDatabase()").Scan(&database); err != nil {
		return "", fmt.Errorf("store: current database: %w", err)
	}
	if !validName(database) {
		return "", fmt.Errorf("%w: database %q: the cluster form needs a name matching [A-Za-z_][A-Za-z0-9_]*", ErrInvalidConfig, database)
	}
	return database, nil
}

// alreadyDone reports a server error saying the statement's object exists
// already. Two processes may migrate at once, and 18.16 has no ADD COLUMN
// IF NOT EXISTS, so the loser of that race must not fail its start-up.
func alreadyDone(err error) bool {
	var ex *clickhouse.Exception
	if !errors.As(err, &ex) {
		return false
	}
	switch ex.Code {
	case 15, // DUPLICATE_COLUMN
		57, // TABLE_ALREADY_EXISTS
		82: // DATABASE_ALREADY_EXISTS
		return true
	case 44: // ILLEGAL_COLUMN: how 18.16 reports ADD COLUMN of an existing column
		return strings.Contains(ex.Message, "already exists")
	}
	return false
}

func (s *Store) appliedMigrations(ctx context.Context) (map[string]string, error) {
	rows, err := s.Conn.Query(ctx, selectAppliedMigrations)
	if err != nil {
		return nil, fmt.Errorf("store: read %s: %w", MigrationsTable, err)
	}
	defer rows.Close()
	done := map[string]string{}
	for rows.Next() {
		var name, sum string
		if err := rows.Scan(&name, &sum); err != nil {
			return nil, fmt.Errorf("store: read %s: %w", MigrationsTable, err)
		}
		done[name] = sum
	}
	return done, rows.Err()
}

// unknownMigrations is the names of done, the units applied, that are not
// among units, in name order.
func unknownMigrations(done map[string]string, units []migrationUnit) []string {
	known := make(map[string]bool, len(units))
	for _, u := range units {
		known[u.name] = true
	}
	var names []string
	for n := range done {
		if !known[n] {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	return names
}

func (s *Store) recordMigration(ctx context.Context, u migrationUnit) error {
	b, err := s.Conn.PrepareBatch(ctx, "INSERT INTO `"+MigrationsTable+"` (name, checksum, server_version)")
	if err != nil {
		return fmt.Errorf("store: record migration %s: %w", u.name, err)
	}
	if err := b.Append(u.name, u.checksum, s.version.String()); err != nil {
		_ = b.Abort()
		return fmt.Errorf("store: record migration %s: %w", u.name, err)
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("store: record migration %s: %w", u.name, err)
	}
	return nil
}

// AppliedMigrations lists the recorded migration units, by name.
func (s *Store) AppliedMigrations(ctx context.Context) ([]string, error) {
	done, err := s.appliedMigrations(ctx)
	if err != nil {
		return nil, err
	}
	names := make([]string, 0, len(done))
	for n := range done {
		names = append(names, n)
	}
	sort.Strings(names)
	return names, nil
}

func loadMigrations(fsys fs.FS) ([]migrationUnit, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("store: read migrations: %w", err)
	}
	var units []migrationUnit
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		if !migrationName.MatchString(e.Name()) {
			return nil, fmt.Errorf("store: %w: file %q: name must be NNNN_lowercase_words.sql", ErrBadMigration, e.Name())
		}
		text, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("store: read migration %s: %w", e.Name(), err)
		}
		fileUnits, err := parseMigration(e.Name(), string(text))
		if err != nil {
			return nil, err
		}
		units = append(units, fileUnits...)
	}
	// ReadDir sorts by name already; NNNN makes that the apply order.
	return units, nil
}

// parseMigration splits a file into units and statements. It understands
// '...' strings (with \ escapes), `...` and "..." identifiers and -- comments,
// so a ';' inside any of them does not end a statement.
func parseMigration(file, text string) ([]migrationUnit, error) {
	units := []migrationUnit{{name: file}}
	cur := &units[0]
	var stmt strings.Builder
	flush := func() {
		if s := strings.TrimSpace(stmt.String()); s != "" {
			cur.statements = append(cur.statements, s)
		}
		stmt.Reset()
	}
	lineNo := 1
	var quote byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '\n' {
			lineNo++
		}
		if quote != 0 {
			stmt.WriteByte(c)
			if c == '\\' && i+1 < len(text) {
				i++
				stmt.WriteByte(text[i])
				continue
			}
			if c == quote {
				quote = 0
			}
			continue
		}
		switch {
		case c == '\'' || c == '`' || c == '"':
			quote = c
			stmt.WriteByte(c)
		case c == '-' && strings.HasPrefix(text[i:], "--"):
			end := strings.IndexByte(text[i:], '\n')
			if end < 0 {
				end = len(text) - i
			}
			comment := text[i : i+end]
			i += end - 1
			if !strings.HasPrefix(comment, minVersionMarker) {
				continue
			}
			if strings.TrimSpace(stmt.String()) != "" {
				return nil, fmt.Errorf("store: %w: %s line %d: %s inside a statement (end the statement with ; first)", ErrBadMigration, file, lineNo, minVersionMarker)
			}
			v, err := ParseVersion(strings.TrimSpace(strings.TrimPrefix(comment, minVersionMarker)))
			if err != nil {
				return nil, fmt.Errorf("store: %w: %s line %d: %v", ErrBadMigration, file, lineNo, err)
			}
			units = append(units, migrationUnit{name: fmt.Sprintf("%s#%d", file, len(units)), minVersion: &v})
			cur = &units[len(units)-1]
		case c == ';':
			flush()
		default:
			stmt.WriteByte(c)
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("store: %w: %s: unterminated %c quote", ErrBadMigration, file, quote)
	}
	flush()
	var out []migrationUnit
	for _, u := range units {
		if len(u.statements) == 0 {
			continue
		}
		h := sha256.Sum256([]byte(strings.Join(u.statements, ";\n")))
		u.checksum = hex.EncodeToString(h[:])
		out = append(out, u)
	}
	return out, nil
}
