package writer

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/logging"
	"github.com/aiops-dev/aiops/pkg/store"
)

// DefaultRetentionDays is how long each table keeps its rows unless
// writer.retention says otherwise: raw and high-volume tables briefly,
// what analysts compare month over month (incidents, changes) for a year.
var DefaultRetentionDays = map[string]int{
	TableEvents:            14,
	TableLogs:              14,
	TableMetricSamples:     30,
	TableAlerts:            90,
	TableAnomalies:         90,
	TableChanges:           365,
	TableIncidents:         365,
	TableIncidentHistory:   365,
	TableWebhookDeliveries: 90,
	TableLogTemplates:      365,
}

func validateRetention(days map[string]int) error {
	for _, table := range slices.Sorted(maps.Keys(days)) {
		d := days[table]
		if _, ok := DefaultRetentionDays[table]; !ok {
			return fmt.Errorf("writer.retention.%s: no such table, want one of %v", table, slices.Sorted(maps.Keys(DefaultRetentionDays)))
		}
		if d < 1 || d > store.MaxRetentionDays {
			return fmt.Errorf("writer.retention.%s: days must be between 1 and %d, got %d", table, store.MaxRetentionDays, d)
		}
	}
	return nil
}

// RetentionClock is the time source of the retention loop, injected so a
// test decides when a pass runs and what "now" is.
type RetentionClock interface {
	Now() time.Time
	// After delivers once d has passed.
	After(d time.Duration) <-chan time.Time
}

type systemRetentionClock struct{}

func (systemRetentionClock) Now() time.Time                         { return time.Now() }
func (systemRetentionClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Retention drops the partitions of each table older than its days.
type Retention struct {
	conn     driver.Conn
	days     map[string]int
	interval time.Duration
	clock    RetentionClock
	log      zerolog.Logger
}

// NewRetention merges days over DefaultRetentionDays; interval 0 means an
// hour, a nil clock the system clock.
func NewRetention(conn driver.Conn, days map[string]int, interval time.Duration, log zerolog.Logger, clock RetentionClock) (*Retention, error) {
	if err := validateRetention(days); err != nil {
		return nil, err
	}
	if interval < 0 {
		return nil, fmt.Errorf("writer.retention_interval: must not be negative, got %s", interval)
	}
	if interval == 0 {
		interval = time.Hour
	}
	if clock == nil {
		clock = systemRetentionClock{}
	}
	merged := maps.Clone(DefaultRetentionDays)
	maps.Copy(merged, days)
	return &Retention{conn: conn, days: merged, interval: interval, clock: clock, log: log.With().Str(logging.FieldPart, "retention").Logger()}, nil
}

// Days returns the retention of each table in days.
func (r *Retention) Days() map[string]int { return maps.Clone(r.days) }

// Apply drops, in every table, the partitions whose newest row is older
// than the table's retention, and returns the partition ids dropped per
// table. A table that fails is logged and skipped, so one broken table
// does not keep the others growing; the first failure is returned.
func (r *Retention) Apply(ctx context.Context) (map[string][]string, error) {
	now := r.clock.Now()
	dropped := map[string][]string{}
	var first error
	for _, table := range slices.Sorted(maps.Keys(r.days)) {
		ids, err := store.DropPartitionsOlderThan(ctx, r.conn, table, r.days[table], now)
		if len(ids) > 0 {
			dropped[table] = ids
			r.log.Info().Str("table", table).Int("days", r.days[table]).Strs("partitions", ids).Msg("dropped partitions past retention")
		}
		if err != nil {
			r.log.Warn().Err(err).Str("table", table).Msg("retention pass failed for a table")
			if first == nil {
				first = fmt.Errorf("writer: retention of %s: %w", table, err)
			}
		}
	}
	return dropped, first
}

// Run applies retention at once and then every interval until ctx ends.
func (r *Retention) Run(ctx context.Context) {
	for {
		if _, err := r.Apply(ctx); err != nil && ctx.Err() == nil {
			r.log.Warn().Err(err).Dur("retry_in", r.interval).Msg("retention pass incomplete")
		}
		select {
		case <-ctx.Done():
			return
		case <-r.clock.After(r.interval):
		}
	}
}
