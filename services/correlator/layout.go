package correlator

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/bus"
)

// The partition layout is the set of durables, leases and state keys the
// default names make: "correlator" alone (partition.count 1), or
// "correlator-<index>" for each index below partition.count. Changing the
// count in place leaves consumers and states of the earlier layout; what
// this file does with them lets the new layout go on where the old one
// stood.

// layoutName is the default durable (and state key) of one partition.
const layoutName = "correlator"

// inLayout reports whether name is a durable or state key of some
// partition layout, and its index (-1: "correlator", the one partition).
func inLayout(name string) (index int, ok bool) {
	if name == layoutName {
		return -1, true
	}
	digits, ok := strings.CutPrefix(name, layoutName+"-")
	if !ok || digits == "" || (len(digits) > 1 && digits[0] == '0') {
		return 0, false
	}
	i, err := strconv.Atoi(digits)
	return i, err == nil && i >= 0
}

// countKey is the consumer metadata that records the partition count a
// partition's consumer was created in, and has run in alone since; a
// consumer that has run in another count too says mixedCounts.
const countKey = "aiops_partition_count"

// mixedCounts is countKey's value on a consumer that has run in another
// partition count than the one it was created in. Its ack floor is not
// that of a first layout's partition, which made incidents of its own
// services' signals alone: it made them of every signal its later
// layouts gave it. Were the count to come back to the one it was created
// in (3 to 2, then 3 again), a partition added back would otherwise take
// it for a sibling of its first layout and start at the stream's
// beginning, making the history into incidents again.
const mixedCounts = "mixed"

// createdIn is the partition count consumer ci was created in and has
// run in alone since (0: not known, a consumer created before it was
// recorded, or one that has run in another count too).
func createdIn(ci *jetstream.ConsumerInfo) int {
	if ci.Name == layoutName {
		return 1
	}
	n, _ := strconv.Atoi(ci.Config.Metadata[countKey])
	return n
}

// startOfNewPartition is where the consumer of a partition of a layout of
// count partitions starts when it is created while consumers created in
// another layout exist on the stream (the count changed): at the lowest
// ack floor among them, so that no signal acked by none of them is
// skipped, and the stream's history, which they made incidents of, is not
// made into incidents again. 0 (the stream's beginning) for a first
// start, a partition of the first layout starting late among its
// siblings, and a consumer that exists. Its metadata is what the
// consumer's countKey says from now on: count for one created now, and
// mixedCounts for one that exists and was created in (or has run in)
// another count.
func startOfNewPartition(ctx context.Context, js jetstream.JetStream, stream, durable string, count int) (uint64, map[string]string, error) {
	meta := map[string]string{countKey: strconv.Itoa(count)}
	s, err := js.Stream(ctx, stream)
	if err != nil {
		return 0, nil, fmt.Errorf("correlator: stream %s: %w", stream, err)
	}
	if c, err := s.Consumer(ctx, durable); err == nil {
		if createdIn(c.CachedInfo()) != count {
			meta[countKey] = mixedCounts
		}
		return 0, meta, nil
	} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return 0, nil, fmt.Errorf("correlator: consumer %s: %w", durable, err)
	}
	var start uint64
	found := false
	infos := s.ListConsumers(ctx)
	for ci := range infos.Info() {
		if _, ok := inLayout(ci.Name); !ok || createdIn(ci) == count {
			continue
		}
		if next := ci.AckFloor.Stream + 1; !found || next < start {
			start, found = next, true
		}
	}
	if err := infos.Err(); err != nil {
		return 0, nil, fmt.Errorf("correlator: listing the consumers of %s: %w", stream, err)
	}
	return start, meta, nil
}

// defaultDurable is the durable, and state key, the default names give
// partition index of count.
func defaultDurable(count, index int) string {
	if count <= 1 {
		return layoutName
	}
	return fmt.Sprintf("%s-%d", layoutName, index)
}

// earlierLayout lets a partition of the current layout take what an
// earlier layout left: it deletes the earlier layout's consumers once
// every partition of this one has its own (before, they tell a partition
// created later where to start), and partition 0 lets go of the earlier
// states' incidents, as a partition lets go of those a catalog change
// moved away: it resolves them, saying why, and the partition that holds
// their services now opens its own for what still fails. Each earlier
// partition is taken under its own lease, so an instance of the earlier
// layout still running is left alone (and warned of).
type earlierLayout struct {
	js           jetstream.JetStream
	lease        bus.LeaseConfig
	count, index int
	log          zerolog.Logger

	mu sync.Mutex
	// running holds the earlier partitions whose lease an instance held
	// at the last try: what they left is taken over once they stop
	// (Service.awaitEarlier).
	running map[string]bool
}

// earlier reports whether name is a durable or state key of another
// layout than this one.
func (l *earlierLayout) earlier(name string) bool {
	i, ok := inLayout(name)
	if !ok {
		return false
	}
	if l.count == 1 {
		return i != -1
	}
	return i == -1 || i >= l.count
}

// lock takes the lease of the earlier layout's partition name, and
// reports false if an instance holds it (it still runs).
func (l *earlierLayout) lock(ctx context.Context, name string) (unlock func(), ok bool, err error) {
	lease, err := l.lease.Open(ctx, l.js, layoutName+"."+name)
	if err != nil || lease == nil { // leases disabled: one instance
		return func() {}, err == nil, err
	}
	if ok, err = lease.TryAcquire(ctx); !ok || err != nil {
		if err == nil {
			l.setRunning(name, true)
			l.log.Warn().Str("partition", name).Msg("a partition of an earlier layout (another correlator.partition.count) still runs: what it left is taken over once it stops")
		}
		return nil, false, err
	}
	l.setRunning(name, false)
	return func() { _ = lease.Release(context.WithoutCancel(ctx)) }, true, nil
}

func (l *earlierLayout) setRunning(name string, running bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if running {
		if l.running == nil {
			l.running = map[string]bool{}
		}
		l.running[name] = true
	} else {
		delete(l.running, name)
	}
}

// stopped reports whether an earlier partition found running has
// stopped since (nobody holds its lease now), also when looking at
// another failed. Those that stopped are forgotten: the next restore
// takes over what they left, or finds nothing left (another partition of
// this layout deleted their consumers first), and a term must not wait
// for them again, which would end at its first look, and every one
// after it.
func (l *earlierLayout) stopped(ctx context.Context) (bool, error) {
	l.mu.Lock()
	names := slices.Collect(maps.Keys(l.running))
	l.mu.Unlock()
	stopped := false
	for _, name := range names {
		lease, err := l.lease.Open(ctx, l.js, layoutName+"."+name)
		if err != nil {
			return stopped, err
		}
		holder, err := lease.Holder(ctx)
		if err != nil {
			return stopped, err
		}
		if holder == "" {
			l.setRunning(name, false)
			stopped = true
		}
	}
	return stopped, nil
}

// waiting reports whether an earlier partition was found running.
func (l *earlierLayout) waiting() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.running) > 0
}

// consumers lists the consumers of EVENTS.
func (l *earlierLayout) consumers(ctx context.Context) (jetstream.Stream, []string, error) {
	events, err := l.js.Stream(ctx, bus.StreamEvents)
	if err != nil {
		return nil, nil, err
	}
	var have []string
	names := events.ConsumerNames(ctx)
	for n := range names.Name() {
		have = append(have, n)
	}
	return events, have, names.Err()
}

// earlierConsumers lists the earlier layouts' consumers of EVENTS.
func (l *earlierLayout) earlierConsumers(ctx context.Context) ([]string, error) {
	_, have, err := l.consumers(ctx)
	return slices.DeleteFunc(have, func(n string) bool { return !l.earlier(n) }), err
}

// dropConsumers deletes the earlier layouts' consumers (signals and
// commands) once every partition of this layout has its own.
func (l *earlierLayout) dropConsumers(ctx context.Context) error {
	events, have, err := l.consumers(ctx)
	if err != nil {
		return err
	}
	for i := range l.count {
		if !slices.Contains(have, defaultDurable(l.count, i)) {
			return nil // a partition still to start begins where they stand
		}
	}
	for _, name := range have {
		if !l.earlier(name) {
			continue
		}
		unlock, ok, err := l.lock(ctx, name)
		if err != nil || !ok {
			return err
		}
		// The command consumer first: the signal consumer is what names
		// the partition, and deleted first, a failure in between would
		// leave the other behind for good (a layout coming back to this
		// partition would go on from it, with the commands since).
		err = l.js.DeleteConsumer(ctx, bus.StreamIncidents, name+"-commands")
		if err == nil || errors.Is(err, jetstream.ErrConsumerNotFound) {
			err = events.DeleteConsumer(ctx, name)
		}
		unlock()
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("deleting the consumers of %s: %w", name, err)
		}
		l.log.Info().Str("partition", name).Msg("the consumers of an earlier layout's partition are deleted: every partition of this one has its own")
	}
	return nil
}
