package writer

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

// incidents is partitioned by the month an incident opened, so that its
// states collapse into one row. A state without opened_at took its own
// time as the opening: a state coming in a later month than the incident's
// opening went into that month's partition. The incident then had a row in
// each: its latest row said it opened when it was resolved, FINAL with a
// range on opened_at (pruned before FINAL on 18.16) found the opening
// month's row still open, and retention, which keeps a month while an
// incident in it is open, kept the opening month for ever and, once the
// later month went, showed the incident open again. Such a state is
// refused (dead-lettered, naming body.opened_at); an opened state, whose
// own time is its opening, still needs none.
func TestIncidentStateWithoutOpenedAtIsRefusedNotStoredAsASecondIncident(t *testing.T) {
	ctx := context.Background()
	st := migratedStore(t, ctx, zerolog.New(zerolog.NewTestWriter(t)))
	opened := time.Date(2026, 1, 31, 23, 50, 0, 0, time.UTC)
	resolved := time.Date(2026, 2, 1, 0, 20, 0, 0, time.UTC)

	write := func(at time.Time, body event.IncidentBody) error {
		t.Helper()
		e := incidentState(t, at, body)
		sink, err := NewSink(st.Conn, SinkConfig{MaxRows: 10, MaxAge: time.Hour}, zerolog.Nop())
		if err != nil {
			t.Fatal(err)
		}
		defer sink.Close(ctx)
		done := make(chan error, 1)
		sink.Write(ctx, e, func(err error) { done <- err })
		if err := sink.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		return <-done
	}

	// The opening, without opened_at: its own time is the opening.
	if err := write(opened, event.IncidentBody{IncidentID: "inc-jan", Status: event.IncidentOpened, Title: "billing 5xx"}); err != nil {
		t.Fatalf("opened state without opened_at: %v", err)
	}
	// Its resolution, in February, from a producer that leaves opened_at out.
	err := write(resolved, event.IncidentBody{IncidentID: "inc-jan", Status: event.IncidentResolved, Title: "billing 5xx"})
	if err == nil || !errs.IsPermanent(err) || !errors.Is(err, ErrBadBody) || !strings.Contains(err.Error(), "body.opened_at:") {
		t.Errorf("resolved state without opened_at: err = %v, want a permanent ErrBadBody naming body.opened_at", err)
	}

	var partitions []string
	if err := st.Conn.QueryRow(ctx, "SELECT arraySort(groupUniqArray(_partition_id)) FROM incidents WHERE incident_id = 'inc-jan'").Scan(&partitions); err != nil {
		t.Fatal(err)
	}
	if len(partitions) != 1 || partitions[0] != "202601" {
		t.Fatalf("inc-jan's rows are in partitions %v, want only 202601 (the month it opened)", partitions)
	}
}
