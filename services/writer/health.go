package writer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/service"
	"github.com/aiops-dev/aiops/pkg/store"
)

// DefaultUnreadyAfter is Config.UnreadyAfter's default: longer than what
// heals by itself (a ClickHouse restart, a replica without its Keeper
// session for a session timeout, 30 s by default, a failover), so that
// readiness does not flap with it, and short beside the backlog EVENTS
// can hold.
const DefaultUnreadyAfter = time.Minute

// insertHealth is the writer's readiness: not ready once every insert
// into a table has failed for longer than after, which the consumer
// retries for ever (naks and redeliveries) while ClickHouse's ping, the
// platform's check, may still answer (a table dropped or readonly, a
// disk full). The table is ready again at its first insert that commits.
type insertHealth struct {
	after time.Duration
	now   func() time.Time

	mu      sync.Mutex
	failing map[string]insertFailure // by table
}

// insertFailure is a table's run of failed inserts.
type insertFailure struct {
	since time.Time // the first failed insert since the last one that committed
	last  time.Time // the last one
	err   error     // the last one's error
}

func newInsertHealth(after time.Duration, now func() time.Time) *insertHealth {
	return &insertHealth{after: after, now: now, failing: map[string]insertFailure{}}
}

// observe records the result of one of table's inserts. A batch whose
// rows all failed for their data (permanent: dead-lettered) says nothing
// of the table, nor does one given up by the writer's stop.
func (h *insertHealth) observe(table string, r store.BatchResult) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case r.Failed < r.Rows:
		delete(h.failing, table)
	case r.Err == nil || errs.IsPermanent(r.Err) || errors.Is(r.Err, store.ErrClosed):
	default:
		f, ok := h.failing[table]
		if !ok {
			f.since = h.now()
		}
		f.last, f.err = h.now(), r.Err
		h.failing[table] = f
	}
}

// check fails naming every table whose inserts have failed for longer
// than after, with ClickHouse's last error for each.
func (h *insertHealth) check(context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	now := h.now()
	var failed []error
	for table, f := range h.failing {
		if now.Sub(f.last) > 2*h.after {
			// Not tried again (its events dropped at redelivery or
			// dead-lettered, none of its kind since): nothing says the
			// table refuses now, and no insert would end it. Failures
			// retried are tried well within (the backoff tops out at 30 s).
			delete(h.failing, table)
			continue
		}
		if d := now.Sub(f.since); d > h.after {
			failed = append(failed, fmt.Errorf("every insert into %s has failed for %s (writer.unready_after %s): %w",
				table, d.Truncate(time.Second), h.after, f.err))
		}
	}
	slices.SortFunc(failed, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(failed...)
}

// Checks is the writer's readiness (see insertHealth); its liveness is
// untouched, since a restart does not mend ClickHouse.
func (w *Writer) Checks() []service.Check {
	return []service.Check{{Name: "writer", Fn: w.sink.health.check}}
}
