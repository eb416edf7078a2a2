package store

import (
	"fmt"
	"slices"
	"strings"
)

// The cluster form of the schema (Config.Cluster): the migration files are
// written for one server and rewritten here, statement by statement, so a
// migration added later gets its cluster form without a second file.
//
//   - CREATE TABLE t (...) ENGINE = XMergeTree(args) ... becomes the local
//     table t_local ON CLUSTER with ReplicatedXMergeTree(zookeeper path,
//     '{replica}', args), the rest of the definition unchanged, and t ON
//     CLUSTER AS t_local ENGINE = Distributed(cluster, db, t_local, key),
//     so writers and analysts keep using the name t.
//   - ALTER TABLE t goes to t_local ON CLUSTER. When it changes columns, the
//     Distributed table t is dropped and created again AS t_local at the end
//     of the unit: a Distributed table has its own column list, and
//     ClickHouse 18.16 refuses ALTER ... ON CLUSTER of a table that is not
//     replicated on a cluster whose shards replicate internally (code 371).
//     Dropping a Distributed table loses nothing: the writer inserts with
//     insert_distributed_sync, so it holds no rows of its own.
//   - DROP TABLE t drops both.
//
// Anything else (views, materialized views, INSERT, RENAME, other engines,
// names with a database) is refused with the file and statement named, so a
// migration that would silently differ between the two forms cannot be
// released.

// localSuffix names the replicated table that holds a shard's rows.
const localSuffix = "_local"

// replicatedPath is the ZooKeeper path of a local table's replicas: one
// replication group per shard ({shard} macro) and table.
func replicatedPath(database, local string) string {
	return "/clickhouse/tables/{shard}/" + database + "/" + local
}

// migrationsTableCluster creates the bookkeeping table of the cluster form:
// replicated, in one replication group for the whole cluster (no {shard} in
// its path), so every node holds every record and Migrate reads the same
// answer on whichever node it connects to. The replica name joins both
// macros because replica names may repeat across shards.
func migrationsTableCluster(database, cluster string) string {
	return "CREATE TABLE IF NOT EXISTS " + quoteIdents(database, MigrationsTable) + " ON CLUSTER " + quoteIdents(cluster) +
		" (name String, checksum String, server_version String, applied_at DateTime DEFAULT now())" +
		" ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/all/" + database + "/" + MigrationsTable + "', '{shard}-{replica}', applied_at) ORDER BY name"
}

func quoteIdents(parts ...string) string {
	return "`" + strings.Join(parts, "`.`") + "`"
}

// clusterSchema rewrites migration units into their cluster form.
type clusterSchema struct {
	cluster, database string
	// shardingKey holds, per table created so far, its Distributed table's
	// sharding key, to create that table again after a column change.
	shardingKey map[string]string
}

// createDistributed is the CREATE statement of table's Distributed table.
//
// The sharding key is a hash of the whole sorting key. ReplacingMergeTree
// (and FINAL) collapse only rows with equal sorting keys that sit on the
// same shard; a function of the sorting key sends such rows (a redelivered
// event, every state of one incident) to the same shard, while hashing all
// of it, the id or incident_id included, spreads rows evenly over shards.
func (c *clusterSchema) createDistributed(table string) string {
	local := table + localSuffix
	return "CREATE TABLE IF NOT EXISTS " + quoteIdents(c.database, table) + " ON CLUSTER " + quoteIdents(c.cluster) +
		" AS " + quoteIdents(c.database, local) +
		" ENGINE = Distributed(" + quoteIdents(c.cluster) + ", " + quoteIdents(c.database) + ", " + quoteIdents(local) +
		", " + c.shardingKey[table] + ")"
}

// clusterUnits returns units in cluster form, with their names and
// checksums unchanged (the checksum is the single-node text's, so both forms
// of a file record the same value). cluster and database must be valid
// names.
func clusterUnits(units []migrationUnit, cluster, database string) ([]migrationUnit, error) {
	c := clusterSchema{cluster: cluster, database: database, shardingKey: map[string]string{}}
	out := make([]migrationUnit, 0, len(units))
	for _, u := range units {
		cu := u
		cu.statements = nil
		var recreate []string // tables whose Distributed table needs its columns again
		for i, stmt := range u.statements {
			stmts, changed, err := c.rewrite(stmt)
			if err != nil {
				return nil, fmt.Errorf("store: %w: %s statement %d (%s): %v", ErrBadMigration, u.name, i+1, abbreviate(stmt), err)
			}
			cu.statements = append(cu.statements, stmts...)
			if changed != "" && !slices.Contains(recreate, changed) {
				recreate = append(recreate, changed)
			}
		}
		for _, table := range recreate {
			if _, ok := c.shardingKey[table]; !ok {
				continue // dropped later in the same unit
			}
			cu.statements = append(cu.statements,
				"DROP TABLE IF EXISTS "+quoteIdents(c.database, table)+" ON CLUSTER "+quoteIdents(c.cluster),
				c.createDistributed(table))
		}
		out = append(out, cu)
	}
	return out, nil
}

// abbreviate is the start of a statement, for error messages.
func abbreviate(stmt string) string {
	s := strings.Join(strings.Fields(stmt), " ")
	if len(s) > 60 {
		s = s[:57] + "..."
	}
	return s
}

// rewrite returns the cluster form of one statement, and the table whose
// columns it changed ("" if none).
func (c *clusterSchema) rewrite(stmt string) (out []string, columnsOf string, err error) {
	toks, err := lex(stmt)
	if err != nil {
		return nil, "", err
	}
	switch {
	case toks.words(0, "CREATE", "TABLE"):
		out, err = c.createTable(stmt, toks)
		return out, "", err
	case toks.words(0, "ALTER", "TABLE"):
		return c.alterTable(stmt, toks)
	case toks.words(0, "DROP", "TABLE"):
		out, err = c.dropTable(toks)
		return out, "", err
	case toks.words(0, "CREATE", "MATERIALIZED", "VIEW"):
		return nil, "", fmt.Errorf("CREATE MATERIALIZED VIEW has no cluster form yet (it would read the local table and write to the target's local table)")
	}
	return nil, "", fmt.Errorf("no cluster form for this statement (supported: CREATE TABLE with a *MergeTree engine, ALTER TABLE, DROP TABLE)")
}

// tableName reads the table name at toks[i] and returns it with the index
// after it. Migrations name tables without a database: the store's
// database is the one they are applied to.
func (toks tokens) tableName(i int) (string, int, error) {
	if i >= len(toks) || !toks[i].ident() {
		return "", 0, fmt.Errorf("expected a table name")
	}
	name := toks[i].name()
	if i+1 < len(toks) && toks[i+1].text == "." {
		return "", 0, fmt.Errorf("table %s.%s: name the table without its database (the store's database is used)", name, toks.nameAt(i+2))
	}
	if !validName(name) {
		return "", 0, fmt.Errorf("table %q: must match [A-Za-z_][A-Za-z0-9_]*", name)
	}
	if strings.HasSuffix(name, localSuffix) {
		return "", 0, fmt.Errorf("table %s: names ending in %s are the cluster form's local tables", name, localSuffix)
	}
	if i+1 < len(toks) && toks.words(i+1, "ON", "CLUSTER") {
		return "", 0, fmt.Errorf("table %s: ON CLUSTER is added by the cluster form; write the single-node statement", name)
	}
	return name, i + 1, nil
}

func (toks tokens) nameAt(i int) string {
	if i < len(toks) {
		return toks[i].name()
	}
	return ""
}

func (c *clusterSchema) createTable(stmt string, toks tokens) ([]string, error) {
	i := 2
	ifNotExists := ""
	if toks.words(i, "IF", "NOT", "EXISTS") {
		ifNotExists = "IF NOT EXISTS "
		i += 3
	}
	table, i, err := toks.tableName(i)
	if err != nil {
		return nil, err
	}
	if i >= len(toks) || toks[i].text != "(" {
		return nil, fmt.Errorf("table %s: expected its column list (CREATE TABLE ... AS has no cluster form)", table)
	}
	columnsEnd := toks.closing(i)
	if columnsEnd < 0 {
		return nil, fmt.Errorf("table %s: unbalanced parentheses", table)
	}
	columns := stmt[toks[i].pos:toks[columnsEnd].end]
	i = columnsEnd + 1
	if !toks.words(i, "ENGINE") || i+2 >= len(toks) || toks[i+1].text != "=" || !toks[i+2].ident() {
		return nil, fmt.Errorf("table %s: expected ENGINE = <engine> after the columns", table)
	}
	engine := toks[i+2].name()
	i += 3
	var engineArgs string
	if i < len(toks) && toks[i].text == "(" {
		end := toks.closing(i)
		if end < 0 {
			return nil, fmt.Errorf("table %s: unbalanced parentheses in ENGINE", table)
		}
		engineArgs = strings.TrimSpace(stmt[toks[i].end:toks[end].pos])
		i = end + 1
	}
	if !strings.HasSuffix(engine, "MergeTree") || strings.HasPrefix(engine, "Replicated") {
		return nil, fmt.Errorf("table %s: engine %s: the cluster form replicates *MergeTree engines only (write the single-node engine)", table, engine)
	}
	var rest string
	if i < len(toks) {
		rest = stmt[toks[i].pos:]
	}
	key, err := toks[i:].orderBy(stmt)
	if err != nil {
		return nil, fmt.Errorf("table %s: %v", table, err)
	}

	local := table + localSuffix
	args := "'" + replicatedPath(c.database, local) + "', '{replica}'"
	if engineArgs != "" {
		args += ", " + engineArgs
	}
	c.shardingKey[table] = "cityHash64(" + key + ")"
	return []string{
		"CREATE TABLE " + ifNotExists + quoteIdents(c.database, local) + " ON CLUSTER " + quoteIdents(c.cluster) + " " + columns +
			" ENGINE = Replicated" + engine + "(" + args + ") " + rest,
		c.createDistributed(table),
	}, nil
}

// orderBy returns the expressions of the ORDER BY clause, without the
// parentheses of a tuple.
func (toks tokens) orderBy(stmt string) (string, error) {
	start := -1
	for i := 0; i < len(toks); i++ {
		if toks[i].depth == 0 && toks.words(i, "ORDER", "BY") {
			start = i + 2
			break
		}
	}
	if start < 0 {
		return "", fmt.Errorf("no ORDER BY: the cluster form shards by the sorting key")
	}
	end := len(toks)
	for i := start; i < len(toks); i++ {
		if toks[i].depth != 0 {
			continue
		}
		if toks.words(i, "PARTITION", "BY") || toks.words(i, "PRIMARY", "KEY") || toks.words(i, "SAMPLE", "BY") ||
			toks.words(i, "TTL") || toks.words(i, "SETTINGS") {
			end = i
			break
		}
	}
	if start >= end {
		return "", fmt.Errorf("empty ORDER BY")
	}
	if toks[start].text == "(" && toks.closing(start) == end-1 {
		start, end = start+1, end-1
	}
	if start >= end || (end-start == 3 && strings.EqualFold(toks[start].text, "tuple")) {
		return "", fmt.Errorf("ORDER BY has no columns: the cluster form shards by the sorting key")
	}
	return strings.TrimSpace(stmt[toks[start].pos:toks[end-1].end]), nil
}

// columnCommands start the ALTER commands that change a table's columns,
// which its Distributed table must see too.
var columnCommands = [][]string{
	{"ADD", "COLUMN"}, {"DROP", "COLUMN"}, {"MODIFY", "COLUMN"}, {"RENAME", "COLUMN"}, {"COMMENT", "COLUMN"},
}

func (c *clusterSchema) alterTable(stmt string, toks tokens) ([]string, string, error) {
	table, i, err := toks.tableName(2)
	if err != nil {
		return nil, "", err
	}
	if _, ok := c.shardingKey[table]; !ok {
		return nil, "", fmt.Errorf("table %s: no earlier migration creates it", table)
	}
	if i >= len(toks) {
		return nil, "", fmt.Errorf("table %s: ALTER without a command", table)
	}
	changesColumns := ""
	commandStart := true
	for j := i; j < len(toks); j++ {
		if commandStart {
			for _, cmd := range columnCommands {
				if toks.words(j, cmd...) {
					changesColumns = table
				}
			}
		}
		commandStart = toks[j].depth == 0 && toks[j].text == ","
	}
	local := "ALTER TABLE " + quoteIdents(c.database, table+localSuffix) + " ON CLUSTER " + quoteIdents(c.cluster) + " " + stmt[toks[i].pos:]
	return []string{local}, changesColumns, nil
}

func (c *clusterSchema) dropTable(toks tokens) ([]string, error) {
	i := 2
	ifExists := ""
	if toks.words(i, "IF", "EXISTS") {
		ifExists = "IF EXISTS "
		i += 2
	}
	table, i, err := toks.tableName(i)
	if err != nil {
		return nil, err
	}
	if i != len(toks) {
		return nil, fmt.Errorf("table %s: unexpected %q after DROP TABLE name", table, toks[i].text)
	}
	delete(c.shardingKey, table)
	onCluster := " ON CLUSTER " + quoteIdents(c.cluster)
	return []string{
		"DROP TABLE " + ifExists + quoteIdents(c.database, table) + onCluster,
		"DROP TABLE " + ifExists + quoteIdents(c.database, table+localSuffix) + onCluster,
	}, nil
}

// token is a word, a quoted identifier or string, or one punctuation
// character of a statement, with its place and parenthesis depth.
type token struct {
	text     string
	quote    byte // '`', '"' or '\'' for quoted tokens
	pos, end int
	depth    int
}

type tokens []token

func (t token) ident() bool {
	return t.quote == '`' || t.quote == '"' || (t.quote == 0 && isWordStart(t.text[0]))
}

// name is an identifier, or a string literal naming one, without its
// quotes.
func (t token) name() string {
	if t.quote != 0 {
		return t.text[1 : len(t.text)-1]
	}
	return t.text
}

// words reports whether the unquoted words at i are ws, case-insensitively.
func (toks tokens) words(i int, ws ...string) bool {
	if i+len(ws) > len(toks) {
		return false
	}
	for k, w := range ws {
		if toks[i+k].quote != 0 || !strings.EqualFold(toks[i+k].text, w) {
			return false
		}
	}
	return true
}

// closing returns the index of the ')' matching the '(' at i, or -1.
func (toks tokens) closing(i int) int {
	for j := i + 1; j < len(toks); j++ {
		if toks[j].text == ")" && toks[j].quote == 0 && toks[j].depth == toks[i].depth {
			return j
		}
	}
	return -1
}

func isWordStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isWord(c byte) bool { return isWordStart(c) || c >= '0' && c <= '9' }

// lex splits a statement (comments already removed by parseMigration) into
// tokens. The ')' closing a '(' has the depth of its '('.
func lex(s string) (tokens, error) {
	var toks tokens
	depth := 0
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '\'' || c == '`' || c == '"':
			j := i + 1
			for ; j < len(s) && s[j] != c; j++ {
				if s[j] == '\\' {
					j++
				}
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated %c quote", c)
			}
			toks = append(toks, token{text: s[i : j+1], quote: c, pos: i, end: j + 1, depth: depth})
			i = j + 1
		case isWord(c):
			j := i
			for j < len(s) && isWord(s[j]) {
				j++
			}
			toks = append(toks, token{text: s[i:j], pos: i, end: j, depth: depth})
			i = j
		case c == '(':
			toks = append(toks, token{text: "(", pos: i, end: i + 1, depth: depth})
			depth++
			i++
		case c == ')':
			depth--
			if depth < 0 {
				return nil, fmt.Errorf("unbalanced ')' at offset %d", i)
			}
			toks = append(toks, token{text: ")", pos: i, end: i + 1, depth: depth})
			i++
		default:
			toks = append(toks, token{text: s[i : i+1], pos: i, end: i + 1, depth: depth})
			i++
		}
	}
	if depth != 0 {
		return nil, fmt.Errorf("unbalanced '('")
	}
	return toks, nil
}
