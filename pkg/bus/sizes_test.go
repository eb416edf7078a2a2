package bus

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/testenv"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sizesError is what StreamSizes.Backlog may read over: the acked
// messages in a block at each end, a block under blockBytes and one
// message of at most largest bytes.
func sizesError(largest int) uint64 { return 2 * (blockBytes + uint64(largest) + 100) }

// publishSizes publishes a message of size(i) bytes of data for each i in
// from..to-1.
func publishSizes(t *testing.T, e *env, from, to int, size func(i int) int) {
	t.Helper()
	p, err := NewPublisher(e.js)
	if err != nil {
		t.Fatal(err)
	}
	var ms []Message
	for i := from; i < to; i++ {
		ms = append(ms, Message{Subject: e.prefix + ".m", ID: fmt.Sprint(i), Data: make([]byte, size(i))})
	}
	if _, err := p.PublishAll(testCtx(t), ms); err != nil {
		t.Fatal(err)
	}
}

// ackFirst makes durable, a consumer of the whole stream, and acks the
// stream's first n messages.
func ackFirst(t testing.TB, e *env, durable string, n int) {
	t.Helper()
	c, err := e.js.CreateOrUpdateConsumer(testCtx(t), e.stream, jetstream.ConsumerConfig{
		Durable: durable, AckPolicy: jetstream.AckExplicitPolicy, AckWait: time.Minute,
	})
	if err != nil {
		t.Fatal(err)
	}
	for acked := 0; acked < n; {
		batch, err := c.Fetch(n-acked, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			if err := m.DoubleAck(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			acked++
		}
	}
}

// unackedBytes is what durable's messages from its ack floor on take of
// the stream, each read whole.
func unackedBytes(t *testing.T, e *env, durable string) uint64 {
	t.Helper()
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		t.Fatal(err)
	}
	c, err := s.Consumer(testCtx(t), durable)
	if err != nil {
		t.Fatal(err)
	}
	var sum uint64
	for seq := max(c.CachedInfo().AckFloor.Stream+1, s.CachedInfo().State.FirstSeq); seq <= s.CachedInfo().State.LastSeq; seq++ {
		m, err := s.GetMsg(testCtx(t), seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		cfg := s.CachedInfo().Config
		sum += uint64(storedSize(m.Subject, readHeader(m, cfg), len(m.Data), cfg))
	}
	return sum
}

// followed starts following e's stream and waits until it read up to the
// stream's last message.
func followed(t testing.TB, e *env) *StreamSizes {
	t.Helper()
	f, err := FollowSizes(testCtx(t), e.js, e.stream)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.Stop)
	caughtUp(t, e, f)
	return f
}

func caughtUp(t testing.TB, e *env, f *StreamSizes) {
	t.Helper()
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		t.Fatal(err)
	}
	last := s.CachedInfo().State.LastSeq
	waitFor(t, fmt.Sprintf("the sizes read up to %d", last), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return last == 0 || f.next > last // an empty stream: nothing to read
	})
}

// wantBacklogBytes checks that f weighs durable's backlog at what it
// takes, or over by sizesError(largest) at most.
func wantBacklogBytes(t *testing.T, e *env, f *StreamSizes, durable string, largest int) {
	t.Helper()
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		t.Fatal(err)
	}
	limit := float64(s.CachedInfo().Config.MaxBytes)
	b, err := f.Backlog(testCtx(t), durable)
	if err != nil {
		t.Fatal(err)
	}
	want := unackedBytes(t, e, durable)
	got := uint64(b.Ratio*limit + 0.5)
	if got < want || got > want+sizesError(largest) {
		t.Fatalf("backlog %+v weighs %d bytes, the unacked messages take %d (ratio %.3f; at most %d over)",
			b, got, want, float64(want)/limit, sizesError(largest))
	}
}

// The unacked messages are weighed at what they take whatever their mix
// of sizes. With one event of 40 KB in four among 300-byte ones, unacked
// after thousands of small ones, the large ones are a quarter of the
// unacked messages and nearly all their bytes: the median of five of them
// read saw the small ones, and the backlog read 0.12 with 0.79 of the
// limit unacked; the gateway would have answered 200 up to a full stream.
func TestStreamSizesWeighTheBacklogAtWhatItTakes(t *testing.T) {
	small := func(int) int { return 300 }
	for _, mix := range []struct {
		name          string
		acked, unack  int
		size          func(i int) int
		largest       int
		limitOverHeld float64 // the stream's limit over what it holds
	}{
		{"one large in four after small ones", 3000, 400, func(i int) int {
			if i >= 3000 && i%4 == 0 {
				return 40000
			}
			return 300
		}, 40000, 1},
		{"a burst of large ones after small ones", 3000, 100, func(i int) int {
			if i >= 3000 {
				return 40000
			}
			return 300
		}, 40000, 1},
		{"a steady mix, half acked", 1000, 1000, func(i int) int {
			if i%10 == 0 {
				return 30000
			}
			return 300
		}, 30000, 2},
		{"small ones", 1000, 3000, small, 300, 1.5},
		{"nothing acked", 0, 2000, func(i int) int { return 100 + i%7*1000 }, 6100, 1},
	} {
		t.Run(mix.name, func(t *testing.T) {
			e := newEnv(t, newTestServerURL(t))
			publishSizes(t, e, 0, mix.acked+mix.unack, mix.size)
			limitStream(t, e, int64(mix.limitOverHeld*float64(streamBytes(t, e))), 0)
			ackFirst(t, e, "behind", mix.acked)
			wantBacklogBytes(t, e, followed(t, e), "behind", mix.largest)
		})
	}
}

// Messages deleted among the unacked ones before they are read take no
// room and are not counted; those acked before them still are. Raising
// the ack floor by the messages deleted (as the count of the backlog
// does: unackedSpan) counted unacked ones as acked, and read low.
func TestStreamSizesWeighAroundDeletedMessages(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	publishSizes(t, e, 0, 1000, func(i int) int { return 200 + i%7*300 })
	limitStream(t, e, int64(2*streamBytes(t, e)), 0)
	ackFirst(t, e, "behind", 200)
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		t.Fatal(err)
	}
	for seq := uint64(400); seq < 700; seq++ {
		if err := s.DeleteMsg(testCtx(t), seq); err != nil {
			t.Fatal(err)
		}
	}
	wantBacklogBytes(t, e, followed(t, e), "behind", 2000)
}

// Until the sizes are read up to the consumer's oldest unacked message (a
// gateway started on a stream of millions) the backlog is weighed as
// ConsumerBacklog weighs it: from a few messages read.
func TestStreamSizesNotReadYetWeighAsConsumerBacklog(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	publishSizes(t, e, 0, 200, func(i int) int { return 300 + i })
	limitStream(t, e, int64(2*streamBytes(t, e)), 0)
	ackFirst(t, e, "behind", 100)
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		t.Fatal(err)
	}
	f := &StreamSizes{js: e.js, stream: e.stream, made: s.CachedInfo().Created} // reads nothing

	got, err := f.Backlog(testCtx(t), "behind")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ConsumerBacklog(testCtx(t), e.js, e.stream, "behind")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Fatalf("backlog %+v, want ConsumerBacklog's %+v", got, want)
	}
}

// The sizes of messages the stream discarded are dropped: on a stream
// that rolls over again and again (its max_msgs or max_bytes reached),
// what is kept stays a block per blockSeqs messages or blockBytes bytes
// it holds, looked at or not, and a look after a purge drops it all.
func TestStreamSizesKeepWhatTheStreamHolds(t *testing.T) {
	for _, limit := range []struct {
		name              string
		maxBytes, maxMsgs int64
	}{{"max_msgs", 0, 500}, {"max_bytes", 500 * 400, 0}} {
		t.Run(limit.name, func(t *testing.T) {
			e := newEnv(t, newTestServerURL(t))
			limitStream(t, e, limit.maxBytes, limit.maxMsgs)
			f := followed(t, e)
			size := func(i int) int { return 100 + i%300 }
			publishSizes(t, e, 0, 1000, size)
			ackFirst(t, e, "behind", 0)
			publishSizes(t, e, 1000, 5000, size)
			ackFirst(t, e, "behind", 300)
			caughtUp(t, e, f)
			wantKept := func() {
				t.Helper()
				s, err := e.js.Stream(testCtx(t), e.stream)
				if err != nil {
					t.Fatal(err)
				}
				held := s.CachedInfo().State
				f.mu.Lock()
				blocks := len(f.blocks)
				f.mu.Unlock()
				if most := held.Msgs/blockSeqs + held.Bytes/blockBytes + 2; uint64(blocks) > most {
					t.Fatalf("%d blocks kept for a stream of %d messages, %d bytes, want at most %d", blocks, held.Msgs, held.Bytes, most)
				}
				if limit.maxBytes > 0 {
					wantBacklogBytes(t, e, f, "behind", 400)
				}
			}
			wantKept() // no look yet: the stream's limits alone drop them

			s, err := e.js.Stream(testCtx(t), e.stream)
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Purge(testCtx(t)); err != nil {
				t.Fatal(err)
			}
			publishSizes(t, e, 5000, 5010, size)
			caughtUp(t, e, f)
			if _, err := f.Backlog(testCtx(t), "behind"); err != nil { // a look sees the purge
				t.Fatal(err)
			}
			wantKept()
		})
	}
}

// The follower is an ordered consumer, which nats.go recreates after the
// connection comes back from the message after the last one read: none is
// counted twice (the acked bytes would read more, and the backlog less,
// than they are) or missed.
func TestStreamSizesFollowAcrossAServerRestart(t *testing.T) {
	srv := testenv.StartNATS(t)
	e := newEnv(t, srv.URL())
	fileStream(t, e) // kept across the restart
	size := func(i int) int { return 200 + i%5*500 }
	publishSizes(t, e, 0, 500, size)
	limitStream(t, e, int64(2*streamBytes(t, e)), 0)
	f := followed(t, e)

	srv.Shutdown()
	srv.Restart()
	waitFor(t, "the stream to come back", func() bool {
		_, err := e.js.Stream(testCtx(t), e.stream)
		return err == nil
	})
	publishSizes(t, e, 500, 1000, size)
	ackFirst(t, e, "behind", 700)
	caughtUp(t, e, f)
	wantBacklogBytes(t, e, f, "behind", 2200)
}

// A stream made anew starts its sequences over: what was read of the old
// one is dropped and the new one read from its start.
func TestStreamSizesStartOverWithANewStream(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	size := func(i int) int { return 200 + i%5*500 }
	publishSizes(t, e, 0, 1000, size)
	f := followed(t, e)

	remakeStream(t, e, nil)
	publishSizes(t, e, 0, 300, func(i int) int { return 3000 + size(i) }) // not as the old ones: read as those, they weigh less
	limitStream(t, e, int64(2*streamBytes(t, e)), 0)
	ackFirst(t, e, "behind", 100)
	if _, err := f.Backlog(testCtx(t), "behind"); err != nil { // sees the stream made anew
		t.Fatal(err)
	}
	caughtUp(t, e, f)
	wantBacklogBytes(t, e, f, "behind", 5200)
}

// A stream made anew that holds more messages than the old one by the
// next look is made anew all the same: the follower, recreated by nats.go
// from the message after the last one it read, goes on reading the new
// stream past the old one's end, and the old messages' sizes stood for
// the new ones before them. Large old events read as the small new ones
// acked made the acked bytes more than the stream held: the backlog read
// 0 with most of the stream unacked.
func TestStreamSizesStartOverWithANewStreamLongerThanTheOld(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	publishSizes(t, e, 0, 300, func(int) int { return 5000 })
	f := followed(t, e)

	remakeStream(t, e, nil)
	publishSizes(t, e, 0, 600, func(int) int { return 200 })
	limitStream(t, e, int64(2*streamBytes(t, e)), 0)
	caughtUp(t, e, f) // the old follower read the new stream past 300
	ackFirst(t, e, "behind", 400)
	if _, err := f.Backlog(testCtx(t), "behind"); err != nil { // sees the stream made anew
		t.Fatal(err)
	}
	caughtUp(t, e, f)
	wantBacklogBytes(t, e, f, "behind", 200)
}

// A follower stopped stays stopped: a look after the gateway stopped it
// (a request or a scrape while it shuts down) that found the stream made
// anew started a follower nobody stopped, its consumer on the server and
// its goroutines in the gateway until the connection closed. Stopped, it
// weighs the backlog as ConsumerBacklog does.
func TestStreamSizesStoppedStartNoFollower(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	publishSizes(t, e, 0, 100, func(int) int { return 300 })
	f := followed(t, e)
	f.Stop()

	remakeStream(t, e, nil)
	publishSizes(t, e, 0, 50, func(int) int { return 300 })
	limitStream(t, e, int64(2*streamBytes(t, e)), 0)
	ackFirst(t, e, "behind", 20)
	got, err := f.Backlog(testCtx(t), "behind")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ConsumerBacklog(testCtx(t), e.js, e.stream, "behind")
	if err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("backlog %+v, want ConsumerBacklog's %+v", got, want)
	}
	names, err := consumerNamesOf(t, e)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 {
		t.Fatalf("consumers %v on the stream after a look by a stopped follower, want only behind", names)
	}
}

// consumerNamesOf lists the consumers on e's stream.
func consumerNamesOf(t *testing.T, e *env) ([]string, error) {
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		return nil, err
	}
	lister := s.ConsumerNames(testCtx(t))
	var names []string
	for name := range lister.Name() {
		names = append(names, name)
	}
	return names, lister.Err()
}

// remakeStream deletes e's stream and makes it anew with its config,
// changed by edit (nil: as it was).
func remakeStream(t *testing.T, e *env, edit func(*jetstream.StreamConfig)) {
	t.Helper()
	s, err := e.js.Stream(testCtx(t), e.stream)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	if edit != nil {
		edit(&cfg)
	}
	if err := e.js.DeleteStream(testCtx(t), e.stream); err != nil {
		t.Fatal(err)
	}
	if _, err := e.js.CreateStream(testCtx(t), cfg); err != nil {
		t.Fatal(err)
	}
}

// fileStream makes e's stream anew in file storage.
func fileStream(t *testing.T, e *env) {
	t.Helper()
	remakeStream(t, e, func(cfg *jetstream.StreamConfig) { cfg.Storage = jetstream.FileStorage })
}

// BenchmarkStoreBacklog weighs the cost of the gateway's store guard
// against publishing, on one embedded server, for events of 300 bytes
// and of 40 KB: a look at a half-acked stream of 2,000 events by
// ConsumerBacklog (sampled) and by StreamSizes (followed), in
// in-bytes/look (what the client read: headers and data, not subjects)
// and in publishes/look (its time over a synchronous publish's); and the
// follower reading the stream (follow), in in-bytes/msg, ns/msg,
// publishes/msg (its time over that of publishing b.N of them
// asynchronously just before) and held-bytes/msg (its blocks).
//
//	go test -run '^$' -bench StoreBacklog -benchtime 2000x ./bus/
func BenchmarkStoreBacklog(b *testing.B) {
	for _, size := range []int{300, 40000} {
		e := newEnv(b, testenv.NATS(b))
		data := make([]byte, size)
		publishOne := func() time.Duration { // a synchronous publish's time
			start := time.Now()
			for i := range 200 {
				if _, err := e.js.Publish(context.Background(), e.prefix+".p", data, jetstream.WithMsgID(fmt.Sprint("p", i))); err != nil {
					b.Fatal(err)
				}
			}
			return time.Since(start) / 200
		}
		published := 0
		publishAll := func(n int) { // with ids, as the gateway's events
			for range n {
				published++
				if _, err := e.js.PublishAsync(e.prefix+".m", data, jetstream.WithMsgID(fmt.Sprintf("01JBENCH%018d", published))); err != nil {
					b.Fatal(err)
				}
			}
			<-e.js.PublishAsyncComplete()
		}
		inBytes := func() uint64 { return e.nc.Stats().InBytes }

		look := func(b *testing.B, backlog func() (Backlog, error)) {
			perPublish := publishOne()
			before := inBytes()
			b.ResetTimer()
			for range b.N {
				if _, err := backlog(); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(inBytes()-before)/float64(b.N), "in-bytes/look")
			b.ReportMetric(float64(b.Elapsed())/float64(b.N)/float64(perPublish), "publishes/look")
		}
		b.Run(fmt.Sprintf("%dB/sampled", size), func(b *testing.B) {
			publishAll(2000)
			ackFirst(b, e, "looked", 1000)
			look(b, func() (Backlog, error) { return ConsumerBacklog(context.Background(), e.js, e.stream, "looked") })
		})
		b.Run(fmt.Sprintf("%dB/followed", size), func(b *testing.B) {
			f := followed(b, e)
			defer f.Stop()
			look(b, func() (Backlog, error) { return f.Backlog(context.Background(), "looked") })
		})
		b.Run(fmt.Sprintf("%dB/follow", size), func(b *testing.B) {
			start := time.Now()
			publishAll(b.N)
			perPublish := time.Since(start) / time.Duration(b.N)
			before := inBytes()
			b.ResetTimer()
			f := followed(b, e) // the whole stream: what was published before too
			b.StopTimer()
			f.Stop()
			msgs := f.next - 1
			b.ReportMetric(float64(inBytes()-before)/float64(msgs), "in-bytes/msg")
			b.ReportMetric(float64(b.Elapsed())/float64(msgs), "ns/msg")
			b.ReportMetric(float64(b.Elapsed())/float64(msgs)/float64(perPublish), "publishes/msg")
			b.ReportMetric(float64(16*len(f.blocks))/float64(msgs), "held-bytes/msg")
		})
	}
}

// ReadBytes grows by what every producer stores, as the stream counts it:
// the gateway weighs how much of the room its last look left the stream
// took since from it, whoever published (other gateways, the log miner's
// templated copies, producers on NATS), where it counted only the events
// it accepted itself.
func TestStreamSizesReadBytesGrowByWhatEveryProducerStores(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	publishSizes(t, e, 0, 100, func(int) int { return 300 })
	f := followed(t, e)
	before := f.ReadBytes()
	held := streamBytes(t, e)
	nc, err := nats.Connect(e.nc.ConnectedUrl()) // another producer's connection
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	publishSizes(t, &env{js: js, stream: e.stream, prefix: e.prefix}, 100, 300, func(i int) int { return 100 + i%4*20000 })
	caughtUp(t, e, f)
	if grown, want := f.ReadBytes()-before, streamBytes(t, e)-held; grown != want {
		t.Fatalf("another producer stored %d bytes, ReadBytes grew by %d", want, grown)
	}
}

// ReadBytes counts what the stream took since the follower started, not
// what it held then: a follower started on a stream already holding data
// (a gateway or a log miner started on a full EVENTS) reads it all from
// its start, and ReadBytes grew by the whole stream, as if just stored.
// The gateway's guard took that for room taken since its last look and
// refused requests near its bound (and the log miner held its copies).
// The same after a start over on a stream made anew: the look that found
// it weighed what it held.
func TestStreamSizesReadBytesLeaveOutWhatTheStreamHeldAtTheStart(t *testing.T) {
	e := newEnv(t, newTestServerURL(t))
	publishSizes(t, e, 0, 2000, func(i int) int { return 300 + i%4*5000 })
	f := followed(t, e)
	if read := f.ReadBytes(); read != 0 {
		t.Fatalf("caught up with a stream of %d bytes, nothing stored since: ReadBytes %d, want 0", streamBytes(t, e), read)
	}
	held := streamBytes(t, e)
	publishSizes(t, e, 2000, 2100, func(int) int { return 1000 })
	caughtUp(t, e, f)
	if read, want := f.ReadBytes(), streamBytes(t, e)-held; read != want {
		t.Fatalf("100 messages stored since the start: ReadBytes %d, want what they take, %d", read, want)
	}

	before := f.ReadBytes()
	remakeStream(t, e, nil)
	publishSizes(t, e, 0, 50, func(int) int { return 20000 })
	ackFirst(t, e, "behind", 0)
	if _, err := f.Backlog(testCtx(t), "behind"); err != nil { // sees the stream made anew
		t.Fatal(err)
	}
	caughtUp(t, e, f)
	if read := f.ReadBytes(); read != before {
		t.Fatalf("started over on a new stream of %d bytes, nothing stored since: ReadBytes grew by %d, want 0", streamBytes(t, e), read-before)
	}
}
