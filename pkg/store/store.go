package store

import (
	"cmp"
	"context"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/logging"
	"github.com/rs/zerolog"
)

// ErrInvalidConfig is wrapped by every Validate error of this package.
var ErrInvalidConfig = fmt.Errorf("store: %w", config.ErrInvalidConfig)

// Defaults applied by Open for zero Config fields.
const (
	DefaultDialTimeout = 5 * time.Second
	// DefaultMaxOpenConns bounds the pool when neither max_open_conns nor
	// the DSN's max_open_conns does: the writer at its defaults (one insert
	// in flight for each of its ten tables) plus ReservedConns, with two to
	// spare. clickhouse-go's own default, 10, is taken whole by those
	// inserts, and the next user waits dial_timeout and fails ("acquire
	// conn timeout"). A writer with more senders needs more
	// (writer.Config.PoolConns): the platform raises the default to what
	// its components need (Config.NeededConns).
	DefaultMaxOpenConns = 16
)

// ReservedConns are the connections a pool needs beyond its inserts: the
// retention pass, the readiness ping, migrations and queries.
const ReservedConns = 4

// Config says how to reach ClickHouse.
type Config struct {
	// DSN is a clickhouse-go native-protocol DSN, e.g.
	// clickhouse://default@127.0.0.1:9000/aiops?dial_timeout=5s.
	DSN string `yaml:"dsn"`
	// PasswordFile holds the password (read by config.ReadSecretFile: one
	// trailing newline ignored, an empty file refused), so that it stays out
	// of config files and process listings.
	PasswordFile string `yaml:"password_file"`
	// Password comes from the environment (the caller reads it); never from
	// YAML and never logged.
	Password string `yaml:"-" env:"password"`
	// DialTimeout bounds connecting; 0 means DefaultDialTimeout.
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// MaxOpenConns bounds the connection pool: every insert in flight holds
	// one (the writer: a table times writer.senders), and so does each
	// query, ping or retention pass; a user finding none free waits
	// DialTimeout and fails. 0 means the DSN's max_open_conns, else
	// DefaultMaxOpenConns. The pool keeps as many idle (unless the DSN sets
	// max_idle_conns), so that connections are reused, not dialled again.
	MaxOpenConns int `yaml:"max_open_conns"`
	// NeededConns is what the services on this store use at once (the
	// platform sets it from its components): the pool has at least that
	// many when neither max_open_conns nor the DSN sets its size.
	NeededConns int `yaml:"-"`
	// Cluster names a cluster of the server's remote_servers: Migrate then
	// applies the cluster form of the schema (replicated local tables behind
	// Distributed tables of the same names, every statement ON CLUSTER; see
	// cluster.go), retention drops partitions on every shard, and inserts
	// wait until every shard has its rows (insert_distributed_sync). Empty:
	// one server.
	Cluster string `yaml:"cluster"`
}

// Validate checks the config without touching the network or the password
// file's content.
func (c Config) Validate() error {
	if c.DSN == "" {
		return fmt.Errorf("%w: dsn: required (e.g. clickhouse://127.0.0.1:9000/aiops)", ErrInvalidConfig)
	}
	u, err := url.Parse(c.DSN)
	if err != nil {
		// The parser's error quotes the input, which may hold a password.
		return fmt.Errorf("%w: dsn: not a URL", ErrInvalidConfig)
	}
	switch u.Scheme {
	case "clickhouse", "tcp":
	case "http", "https":
		return fmt.Errorf("%w: dsn: scheme %q: only the native protocol is supported (clickhouse://host:9000); ClickHouse 18.16 rejects this client over HTTP", ErrInvalidConfig, u.Scheme)
	default:
		return fmt.Errorf("%w: dsn: scheme %q: want clickhouse://", ErrInvalidConfig, u.Scheme)
	}
	if atAfterHost(c.DSN) {
		// Not echoed: the host and what follows it hold the password.
		return fmt.Errorf("%w: dsn: an '@' after the host: a password holding '/', '?' or '#' must percent-encode them (%%2F, %%3F, %%23), as must an '@' in a value (%%40); or set the password through password_file", ErrInvalidConfig)
	}
	if u.Host == "" {
		return fmt.Errorf("%w: dsn: no host", ErrInvalidConfig)
	}
	if p := u.Query().Get("http_proxy"); p != "" {
		if _, err := url.Parse(p); err != nil {
			// The driver's error would quote it, credentials and all.
			return fmt.Errorf("%w: dsn: http_proxy: not a URL", ErrInvalidConfig)
		}
	}
	if _, err := clickhouse.ParseDSN(c.DSN); err != nil {
		return fmt.Errorf("%w: dsn: %v", ErrInvalidConfig, err)
	}
	if q := u.Query(); truthy(q.Get("async_insert")) && !truthy(cmp.Or(q.Get("wait_for_async_insert"), "1")) {
		// The writer acks an event once its insert returned: answered
		// before the rows are written, a crash of the server loses what
		// was acked.
		return fmt.Errorf("%w: dsn: async_insert without wait_for_async_insert: an insert would return before its rows are written, and the writer acks what it returned for; drop wait_for_async_insert=0", ErrInvalidConfig)
	}
	dsnHasPassword := c.passwordInDSN()
	if c.Password != "" && c.PasswordFile != "" {
		return fmt.Errorf("%w: password_file: set together with a password from the environment; keep one", ErrInvalidConfig)
	}
	if dsnHasPassword && (c.Password != "" || c.PasswordFile != "") {
		return fmt.Errorf("%w: dsn: carries a password while password_file or the environment sets one too; keep one", ErrInvalidConfig)
	}
	if c.DialTimeout < 0 {
		return fmt.Errorf("%w: dial_timeout: must not be negative, got %s", ErrInvalidConfig, c.DialTimeout)
	}
	if c.MaxOpenConns < 0 {
		return fmt.Errorf("%w: max_open_conns: must not be negative, got %d", ErrInvalidConfig, c.MaxOpenConns)
	}
	if c.Cluster != "" && !validName(c.Cluster) {
		return fmt.Errorf("%w: cluster: %q must match [A-Za-z_][A-Za-z0-9_]* (a cluster of the server's remote_servers)", ErrInvalidConfig, c.Cluster)
	}
	return nil
}

// passwordInDSN tells whether the DSN carries a password (in its user
// info or its password parameter).
func (c Config) passwordInDSN() bool {
	u, err := url.Parse(c.DSN)
	if err != nil {
		return false
	}
	_, ok := u.User.Password()
	return ok || u.Query().Has("password")
}

// Warnings are what a valid config does that an operator should know of:
// a password in the DSN, which -set (or AIOPS_STORE__DSN in a unit file)
// shows to every user of the machine, in ps or /proc.
func (c Config) Warnings() []string {
	if c.passwordInDSN() {
		return []string{"store.dsn carries the ClickHouse password: given with -set it shows in ps to every user of the machine, and anyone who reads the configuration has it; set it in store.password_file (or AIOPS_STORE__PASSWORD) instead"}
	}
	return nil
}

// truthy is a ClickHouse boolean setting's value read as true.
func truthy(v string) bool {
	switch strings.ToLower(v) {
	case "1", "true":
		return true
	}
	return false
}

// Redacted is the DSN with any password replaced, fit for logs.
func (c Config) Redacted() string {
	u, err := url.Parse(c.DSN)
	if err != nil || atAfterHost(c.DSN) {
		return "(invalid DSN)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	if q.Has("http_proxy") {
		// The driver's proxy URL may carry credentials of its own.
		p, err := url.Parse(q.Get("http_proxy"))
		if err != nil {
			q.Set("http_proxy", "(not a URL)")
		} else {
			q.Set("http_proxy", p.Redacted())
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// atAfterHost reports an '@' after the DSN's host part, which ends at the
// first '/', '?' or '#': the sign of a password holding one of those (not
// percent-encoded), which cuts the user part short. The URL parser then
// takes "user:<the password's start>" for the host, or the password's
// start for the whole password, and leaves the rest of it in the path,
// query or fragment, where Redacted would show it and the driver would
// dial the wrong host (its error naming that host). A literal '@' there
// for any other reason is refused too: %40 says the same.
func atAfterHost(dsn string) bool {
	_, rest, ok := strings.Cut(dsn, "://")
	if !ok {
		return false
	}
	i := strings.IndexAny(rest, "/?#")
	return i >= 0 && strings.Contains(rest[i:], "@")
}

func (c Config) options() (*clickhouse.Options, error) {
	opts, err := clickhouse.ParseDSN(c.DSN)
	if err != nil {
		return nil, fmt.Errorf("%w: dsn: %v", ErrInvalidConfig, err)
	}
	switch {
	case c.Password != "":
		opts.Auth.Password = c.Password
	case c.PasswordFile != "":
		p, err := readPasswordFile(c.PasswordFile)
		if err != nil {
			return nil, err
		}
		opts.Auth.Password = p
	}
	if c.DialTimeout > 0 {
		opts.DialTimeout = c.DialTimeout
	} else if !strings.Contains(c.DSN, "dial_timeout=") {
		opts.DialTimeout = DefaultDialTimeout
	}
	switch {
	case c.MaxOpenConns > 0:
		opts.MaxOpenConns = c.MaxOpenConns
	case opts.MaxOpenConns <= 0: // not in the DSN either
		opts.MaxOpenConns = max(DefaultMaxOpenConns, c.NeededConns)
	}
	if opts.MaxIdleConns <= 0 {
		// clickhouse-go keeps 5 by default and closes every connection
		// released beyond them: with ten inserts in flight, half would be
		// dialled again for each batch.
		opts.MaxIdleConns = opts.MaxOpenConns
	}
	if c.Cluster != "" {
		// A Distributed table queues rows for other shards on its own disk
		// and returns by default; the writer acks events only once their
		// rows are stored, so the insert must wait for every shard.
		if opts.Settings == nil {
			opts.Settings = clickhouse.Settings{}
		}
		opts.Settings["insert_distributed_sync"] = 1
	}
	return opts, nil
}

// readPasswordFile reads the password file the one way the project reads
// secret files (config.ReadSecretFile): an empty file is refused (leave
// password_file unset for a user without a password).
func readPasswordFile(path string) (string, error) {
	p, err := config.ReadSecretFile(path)
	if err != nil {
		return "", errs.Permanent(fmt.Errorf("%w: password_file: %v", ErrInvalidConfig, err))
	}
	return p, nil
}

// Version is a ClickHouse server version.
type Version struct{ Major, Minor, Patch int }

// AtLeast reports whether v is major.minor or newer.
func (v Version) AtLeast(major, minor int) bool {
	return v.Major > major || (v.Major == major && v.Minor >= minor)
}

func (v Version) String() string { return fmt.Sprintf("%d.%d.%d", v.Major, v.Minor, v.Patch) }

// ParseVersion reads "18.16.1", "24.8.4.13" or "20.3"; parts after the
// third are ignored.
func ParseVersion(s string) (Version, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) < 2 {
		return Version{}, fmt.Errorf("version %q: want major.minor[.patch]", s)
	}
	var nums [3]int
	for i := 0; i < 3 && i < len(parts); i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil || n < 0 {
			return Version{}, fmt.Errorf("version %q: part %d is not a number", s, i+1)
		}
		nums[i] = n
	}
	return Version{nums[0], nums[1], nums[2]}, nil
}

// Store is a connection pool to one ClickHouse server (or cluster address
// list) with its version known.
type Store struct {
	// Conn is the native clickhouse-go connection, for queries this package
	// does not wrap.
	Conn    driver.Conn
	version Version
	cluster string // Config.Cluster
	log     zerolog.Logger
}

// Open connects, pings and detects the server version. A failure to reach
// the server is transient; a bad config is not.
func Open(ctx context.Context, cfg Config, log zerolog.Logger) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	opts, err := cfg.options()
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", cfg.Redacted(), err)
	}
	if err := conn.Ping(ctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("store: ping %s: %w", cfg.Redacted(), err)
	}
	v, err := detectVersion(ctx, conn)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("store: server version at %s: %w", cfg.Redacted(), err)
	}
	log = log.With().Str(logging.FieldPart, "store").Logger()
	log.Info().Str("dsn", cfg.Redacted()).Stringer("server_version", v).Str("cluster", cfg.Cluster).Msg("connected to ClickHouse")
	for _, w := range cfg.Warnings() {
		log.Warn().Msg(w)
	}
	return &Store{Conn: conn, version: v, cluster: cfg.Cluster, log: log}, nil
}

// detectVersion asks version() rather than trusting the handshake, whose
// patch part old servers leave out.
func detectVersion(ctx context.Context, conn driver.Conn) (Version, error) {
	var s string
	if err := conn.QueryRow(ctx, "SELECT version()").Scan(&s); err != nil {
		if hs, herr := conn.ServerVersion(); herr == nil {
			return Version{int(hs.Version.Major), int(hs.Version.Minor), int(hs.Version.Patch)}, nil
		}
		return Version{}, err
	}
	return ParseVersion(s)
}

// Cluster is Config.Cluster: the cluster the schema is applied on, "" for
// one server.
func (s *Store) Cluster() string { return s.cluster }

// ServerVersion is the version detected at Open.
func (s *Store) ServerVersion() Version { return s.version }

// Ping checks that the server answers.
func (s *Store) Ping(ctx context.Context) error { return s.Conn.Ping(ctx) }

// Close closes the pool.
func (s *Store) Close() error { return s.Conn.Close() }
