package correlator

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// correlator.partition.count changed in place, from one to two and from
// two to one: the new partitions start where the earlier consumers stood,
// so the stream's history is not made into incidents again (and notified
// again); partition 0 resolves the incidents the earlier states held,
// saying why, where they stayed open for ever; and once every partition
// has its consumer, the earlier layout's consumers and states are gone,
// so a later change starts from where this layout stands.
func TestPartitionCountChangedInPlaceGoesOnWhereTheEarlierLayoutStood(t *testing.T) {
	for _, c := range []struct{ from, to int }{{1, 2}, {2, 1}} {
		t.Run(fmt.Sprintf("%d to %d", c.from, c.to), func(t *testing.T) {
			r := newStormRig(t, Config{})
			stop := r.startLayout(c.from)
			r.firstHalf()
			opened := waitIncidents(t, r.js, event.IncidentOpened, 2)
			// Acked by every partition before the stop: what one had not
			// acked, the new layout takes again (at least once), and the
			// alerts still firing open their incidents again (seen once
			// under load).
			for i := range c.from {
				waitCaughtUp(t, r.js, defaultDurable(c.from, i))
			}
			stop()

			t.Cleanup(r.startLayout(c.to))
			resolved := waitIncidents(t, r.js, event.IncidentResolved, 2)
			for _, b := range resolved {
				if !slices.ContainsFunc(opened, func(o correlate.State) bool { return o.IncidentID == b.IncidentID }) {
					t.Fatalf("resolved %s, which the earlier layout did not open", b.IncidentID)
				}
				if !slices.ContainsFunc(b.Timeline, func(e correlate.Entry) bool { return strings.Contains(e.What, "earlier layout") }) {
					t.Fatalf("%s resolved without saying why: %+v", b.IncidentID, b.Timeline)
				}
			}
			ctx := context.Background()
			store, err := r.js.ObjectStore(ctx, "correlator")
			if err != nil {
				t.Fatal(err)
			}
			for i := range c.from {
				name := defaultDurable(c.from, i)
				for stream, consumer := range map[string]string{bus.StreamEvents: name, bus.StreamIncidents: name + "-commands"} {
					if _, err := r.js.Consumer(ctx, stream, consumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
						t.Fatalf("the earlier layout's consumer %s on %s: %v, want it deleted", consumer, stream, err)
					}
				}
				for _, object := range []string{name, name + ".outbox"} {
					if _, err := store.GetInfo(ctx, object); !errors.Is(err, jetstream.ErrObjectNotFound) {
						t.Fatalf("the earlier layout's object %s: %v, want it deleted", object, err)
					}
				}
			}
			// The new layout makes incidents of what comes now, and only
			// of that.
			r.later()
			waitIncidents(t, r.js, event.IncidentOpened, 3)
			for i := range c.to {
				waitCaughtUp(t, r.js, defaultDurable(c.to, i))
			}
			waitIncidents(t, r.js, event.IncidentOpened, 3)
		})
	}
}

// The resolutions partition 0 makes of an earlier layout's incidents
// wait in its outbox while the stream takes no incident event, across a
// restart: its state, saved with them, has their incidents as given, so
// the restore does not take them for events made since it (which it
// leaves out, for what made those comes again; nothing makes these
// again, the earlier state is deleted).
func TestEarlierLayoutsResolutionsHeldInTheOutboxGoOutAfterARestart(t *testing.T) {
	r := newStormRig(t, Config{})
	stop := r.startLayout(2)
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)
	for i := range 2 {
		waitCaughtUp(t, r.js, defaultDurable(2, i))
	}
	stop()

	restore := testenv.NarrowStream(t, r.js, bus.StreamEvents, "events.alert.>")
	r.cfg.Partition = PartitionConfig{}
	svc, stop := r.start()
	waitLeading(t, svc)
	stop() // its last checkpoint saves the resolutions not stored
	restore()

	svc, stop = r.start()
	defer stop()
	waitLeading(t, svc)
	for _, b := range waitIncidents(t, r.js, event.IncidentResolved, 2) {
		if !slices.ContainsFunc(opened, func(o correlate.State) bool { return o.IncidentID == b.IncidentID }) {
			t.Fatalf("resolved %s, which the earlier layout did not open", b.IncidentID)
		}
	}
}

// startLayout runs every partition of a layout of count, each leading
// and caught up with the stream, until stop.
func (r *stormRig) startLayout(count int) (stop func()) {
	t := r.t
	t.Helper()
	var stops []func()
	for i := range count {
		r.cfg.Partition = PartitionConfig{Count: count, Index: i}
		svc, stop := r.start()
		stops = append(stops, stop)
		waitLeading(t, svc)
	}
	for i := range count {
		waitCaughtUp(t, r.js, defaultDurable(count, i))
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}

// waitCaughtUp waits until durable on EVENTS has every message handled.
func waitCaughtUp(t *testing.T, js jetstream.JetStream, durable string) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := js.Consumer(context.Background(), bus.StreamEvents, durable)
		if err != nil {
			t.Fatal(err)
		}
		if ci := c.CachedInfo(); ci.NumPending == 0 && ci.NumAckPending == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("consumer %s did not catch up", durable)
		}
	}
}

// Which names are another layout's: only the default names are a
// layout, and a count's own partitions are not earlier.
func TestEarlierLayoutNames(t *testing.T) {
	for _, c := range []struct {
		count int
		name  string
		want  bool
	}{
		{1, "correlator", false}, {1, "correlator-0", true}, {1, "correlator-1", true},
		{2, "correlator", true}, {2, "correlator-0", false}, {2, "correlator-1", false}, {2, "correlator-2", true},
		{3, "correlator-2", false}, {3, "correlator-10", true},
		{2, "correlator-01", false}, {2, "correlator-", false}, {2, "correlator-x", false}, {2, "correlator-0-commands", false},
		{1, "correlator.outbox", false}, {2, "correlator-3.outbox", false}, {1, "other", false},
	} {
		l := earlierLayout{count: c.count}
		if got := l.earlier(c.name); got != c.want {
			t.Errorf("count %d: %q earlier %v, want %v", c.count, c.name, got, c.want)
		}
	}
}

// A count changed back to one used before (3 to 2, then 3 again): the
// partition added back has no consumer, and the two left were created in
// a layout of 3, like it, yet they ran in a layout of 2 since, which made
// incidents of the stream's history for every service. Started at the
// stream's beginning, the new partition would make that history into
// incidents again (and the notifier send them); it starts where the
// layout's consumers stand.
func TestPartitionCountChangedBackStartsTheAddedPartitionWhereTheLayoutStood(t *testing.T) {
	r := newStormRig(t, Config{})
	stop := r.startLayout(3)
	r.firstHalf()
	for i := range 3 {
		waitCaughtUp(t, r.js, defaultDurable(3, i))
	}
	stop()
	r.startLayout(2)()
	ctx := context.Background()
	if _, err := r.js.Consumer(ctx, bus.StreamEvents, "correlator-2"); !errors.Is(err, jetstream.ErrConsumerNotFound) {
		t.Fatalf("the consumer of the partition the layout of 2 dropped: %v, want it deleted", err)
	}
	events, err := r.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		t.Fatal(err)
	}
	// The storm's last alert: the incident events the layouts published
	// after it are on EVENTS too, but no partition reads them.
	m, err := events.GetLastMsgForSubject(ctx, event.KindFilterAll(event.KindAlert))
	if err != nil {
		t.Fatal(err)
	}
	last := m.Sequence

	t.Cleanup(r.startLayout(3))
	c, err := r.js.Consumer(ctx, bus.StreamEvents, "correlator-2")
	if err != nil {
		t.Fatal(err)
	}
	if cfg := c.CachedInfo().Config; cfg.DeliverPolicy != jetstream.DeliverByStartSequencePolicy || cfg.OptStartSeq <= last {
		t.Fatalf("partition 2 added back starts at %v %d, want past %d, the storm's last alert, which the layout of 2 took", cfg.DeliverPolicy, cfg.OptStartSeq, last)
	}
}

// The count changed from 2 to 1: the one partition's command consumer is
// new. Reading INCIDENTS from its beginning, it would take every command
// the earlier layout already applied, each to an incident it does not
// hold, and dead-letter them all (one partition has no other to leave
// them to); it starts where the stream stands instead.
func TestPartitionCountChangedInPlaceDoesNotTakeTheEarlierLayoutsCommandsAgain(t *testing.T) {
	r := newStormRig(t, Config{})
	r.cfg.Consumer.AckWait = time.Second // the restore's catch-up, in which a command waits
	ctx := context.Background()
	var stops []func()
	for i := range 2 {
		r.cfg.Partition = PartitionConfig{Count: 2, Index: i}
		svc, stop := r.start()
		stops = append(stops, stop)
		waitLeading(t, svc)
	}
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)[0]
	if _, err := r.js.Publish(ctx, event.IncidentCommandSubject(opened.IncidentID), []byte(`{"action":"ack","by":"ana"}`)); err != nil {
		t.Fatal(err)
	}
	waitIncidents(t, r.js, event.IncidentAcknowledged, 1)
	for _, stop := range stops {
		stop()
	}

	r.cfg.Partition = PartitionConfig{Count: 1}
	svc, stop := r.start()
	t.Cleanup(stop)
	waitLeading(t, svc)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		c, err := r.js.Consumer(ctx, bus.StreamIncidents, "correlator-commands")
		if err != nil {
			t.Fatal(err)
		}
		if ci := c.CachedInfo(); ci.NumPending == 0 && ci.NumAckPending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the command consumer did not catch up")
		}
	}
	if n := svc.commands.Stats().DeadLettered; n != 0 {
		t.Fatalf("%d commands the earlier layout applied dead-lettered by the new one", n)
	}
}

// A rolling update starts the new layout before the earlier one stops:
// partition 0 finds the earlier partition running (its lease held) and
// leaves its state alone; once it stops, the term ends and the next one
// takes over what it left, and the earlier consumers are deleted, without
// a restart.
func TestEarlierLayoutStillRunningIsTakenOverOnceItStops(t *testing.T) {
	r := newStormRig(t, Config{Lease: LeaseConfig{TTL: 3 * time.Second}})
	_, stopEarlier := r.start()
	r.firstHalf()
	opened := waitIncidents(t, r.js, event.IncidentOpened, 2)
	waitCaughtUp(t, r.js, "correlator") // saved and acked: the new layout starts past it
	for i := range 2 {
		r.cfg.Partition = PartitionConfig{Count: 2, Index: i}
		svc, stop := r.start()
		t.Cleanup(stop)
		waitLeading(t, svc)
	}
	if got := len(waitIncidents(t, r.js, event.IncidentResolved, 0)); got != 0 {
		t.Fatalf("%d incidents resolved while the earlier layout still runs", got)
	}
	stopEarlier()
	resolved := waitIncidents(t, r.js, event.IncidentResolved, 2)
	for _, b := range resolved {
		if !slices.ContainsFunc(opened, func(o correlate.State) bool { return o.IncidentID == b.IncidentID }) {
			t.Fatalf("resolved %s, which the earlier layout did not open", b.IncidentID)
		}
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		_, err := r.js.Consumer(context.Background(), bus.StreamEvents, "correlator")
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the earlier layout's consumer: %v, want it deleted once it stopped", err)
		}
	}
}

// A partition of the new layout found an earlier partition running (its
// lease held) and waits for it to stop. Once it stopped, another
// partition of the new layout deleted its consumer first: the next
// term's restore finds nothing of it to take over, and must not wait for
// it again. Still taken for running, the partition ended every term as
// soon as it looked (the earlier lease free), and restored, rewound and
// answered 503 in turn for ever.
func TestEarlierPartitionGoneMeanwhileIsNoLongerAwaited(t *testing.T) {
	r := newStormRig(t, Config{})
	ctx := context.Background()
	for _, name := range []string{"correlator", "correlator-0", "correlator-1"} {
		if _, err := r.js.CreateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	var leases LeaseConfig
	earlier, err := leases.Open(ctx, r.js, "correlator.correlator")
	if err != nil {
		t.Fatal(err)
	}
	if err := earlier.Acquire(ctx); err != nil {
		t.Fatal(err)
	}
	l := &earlierLayout{js: r.js, lease: leases, count: 2, index: 1, log: r.log}
	if err := l.dropConsumers(ctx); err != nil {
		t.Fatal(err)
	}
	if !l.waiting() {
		t.Fatal("the earlier partition, its lease held, not waited for")
	}

	// It stops, and partition 0's restore deletes its consumer.
	if err := earlier.Release(ctx); err != nil {
		t.Fatal(err)
	}
	if err := r.js.DeleteConsumer(ctx, bus.StreamEvents, "correlator"); err != nil {
		t.Fatal(err)
	}
	if stopped, err := l.stopped(ctx); err != nil || !stopped {
		t.Fatalf("stopped %v, %v: want the term ended, the earlier partition stopped", stopped, err)
	}
	// The next term's restore.
	if err := l.dropConsumers(ctx); err != nil {
		t.Fatal(err)
	}
	if l.waiting() {
		t.Fatal("an earlier partition stopped and gone is waited for again: every term ends at the first look")
	}
}

// The earlier layout's command consumer is deleted with its signal
// consumer, and a failure in between is tried again at the next restore:
// were the signal consumer deleted first, the next restore would not see
// the partition any more, and its command consumer would stay behind; a
// layout that comes back to that partition (1 to 2, then 1) would go on
// from it, taking every command applied since for an incident it does
// not hold (with one partition, each dead-lettered).
func TestEarlierCommandConsumerIsDeletedAfterAFailure(t *testing.T) {
	r := newStormRig(t, Config{})
	ctx := context.Background()
	for _, name := range []string{"correlator", "correlator-0", "correlator-1"} {
		if _, err := r.js.CreateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{Durable: name, AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
			t.Fatal(err)
		}
	}
	// The command consumer's deletion fails: INCIDENTS does not answer.
	incidents, err := r.js.Stream(ctx, bus.StreamIncidents)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.js.DeleteStream(ctx, bus.StreamIncidents); err != nil {
		t.Fatal(err)
	}
	l := &earlierLayout{js: r.js, lease: LeaseConfig{}, count: 2, index: 1, log: r.log}
	if err := l.dropConsumers(ctx); err == nil {
		t.Fatal("the earlier consumers dropped without INCIDENTS")
	}
	// It answers again, the command consumer on it.
	if _, err := r.js.CreateStream(ctx, incidents.CachedInfo().Config); err != nil {
		t.Fatal(err)
	}
	if _, err := r.js.CreateConsumer(ctx, bus.StreamIncidents, jetstream.ConsumerConfig{Durable: "correlator-commands", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	if err := l.dropConsumers(ctx); err != nil {
		t.Fatal(err)
	}
	for stream, consumer := range map[string]string{bus.StreamEvents: "correlator", bus.StreamIncidents: "correlator-commands"} {
		if _, err := r.js.Consumer(ctx, stream, consumer); !errors.Is(err, jetstream.ErrConsumerNotFound) {
			t.Fatalf("the earlier layout's consumer %s on %s: %v, want it deleted", consumer, stream, err)
		}
	}
}
