package ingest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/services/ingest/decode"
)

// BenchmarkIngestNDJSON1000 measures what a producer gets: POSTs of NDJSON
// batches of 1,000 events (ndjsonBatch: logs and metric samples with labels)
// through the real HTTP server (auth, rate limit, read, decode, validate,
// publish, wait for every ack, answer with the ids) into a real embedded
// JetStream, one request at a time over a kept-alive connection. Next to it,
// in the same run and on the same stream, "raw" is the floor the bus sets:
// the same 1,000 envelopes, already marshalled, published straight with
// nats.go jetstream PublishMsgAsync (fresh Nats-Msg-Ids per op, so the
// duplicate window stores them) and all acks awaited. "http" reports
// x_raw = its events/s over raw's; "http4" is four producers posting at
// once, against the same single-publisher raw floor.
//
// The streams are those of production (bus.DefaultStreams: a 2-minute
// duplicate window), with file storage (the default) and memory storage,
// capped at 256 MiB with the oldest messages discarded so a long run does not
// fill the disk. No writer consumes: this is the gateway's side alone.
//
//	go test -run '^$' -bench BenchmarkIngestNDJSON1000 -benchtime 2s ./services/ingest/
func BenchmarkIngestNDJSON1000(b *testing.B) {
	const n = 1000
	body := ndjsonBatch(n, time.Now().Add(-time.Minute).Truncate(time.Minute)) // the gateway's clock is the real one
	batch, err := decode.NDJSON(body, decode.Options{Now: time.Now()})
	if err != nil || len(batch.Events) != n {
		b.Fatalf("the benchmark's own batch does not decode: %v", err)
	}
	subjects := make([]string, n)
	payloads := make([][]byte, n)
	for i, e := range batch.Events {
		subjects[i] = e.Subject()
		if payloads[i], err = json.Marshal(e); err != nil {
			b.Fatal(err)
		}
	}

	for _, storage := range []struct {
		name string
		opts []bus.TopologyOption
	}{
		{"file", nil},
		{"memory", []bus.TopologyOption{bus.WithMemoryStorage()}},
	} {
		b.Run(storage.name, func(b *testing.B) {
			streams := bus.DefaultStreams(append(storage.opts, bus.WithMaxBytes(256<<20))...)
			r := newE2ERig(b, rigOptions{noStore: true, streams: streams, change: func(c *ServerConfig) {
				c.RatePerToken, c.Burst = 1e9, 1<<30
			}})
			var rawRate float64

			b.Run("raw", func(b *testing.B) {
				js, err := jetstream.New(r.js.Conn(), jetstream.WithPublishAsyncMaxPending(4096))
				if err != nil {
					b.Fatal(err)
				}
				ctx := context.Background()
				futures := make([]jetstream.PubAckFuture, n)
				prefix := "raw-" + strconv.FormatInt(time.Now().UnixNano(), 36) + "-"
				op := 0
				b.ReportAllocs()
				for b.Loop() {
					op++
					idPrefix := prefix + strconv.Itoa(op) + "-"
					for i := range n {
						m := &nats.Msg{Subject: subjects[i], Data: payloads[i], Header: nats.Header{jetstream.MsgIDHeader: {idPrefix + strconv.Itoa(i)}}}
						if futures[i], err = js.PublishMsgAsync(m); err != nil {
							b.Fatal(err)
						}
					}
					for i, f := range futures {
						select {
						case <-f.Ok():
						case err := <-f.Err():
							b.Fatalf("message %d: %v", i, err)
						case <-ctx.Done():
						}
					}
				}
				rawRate = float64(b.N*n) / b.Elapsed().Seconds()
				b.ReportMetric(rawRate, "events/s")
			})

			b.Run("http", func(b *testing.B) {
				r.t = b // failures belong to this sub-benchmark's goroutine
				if resp := r.post(PathEvents, "application/x-ndjson", "", body).accepted(b); resp.Accepted != n || len(resp.IDs) != n {
					b.Fatalf("accepted %d with %d ids, want %d", resp.Accepted, len(resp.IDs), n)
				}
				b.ResetTimer()
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				for b.Loop() {
					a := r.post(PathEvents, "application/x-ndjson", "", body)
					if a.status != http.StatusOK {
						b.Fatalf("answer %s", a)
					}
				}
				rate := float64(b.N*n) / b.Elapsed().Seconds()
				b.ReportMetric(rate, "events/s")
				if rawRate > 0 {
					b.ReportMetric(rate/rawRate, "x_raw")
				}
			})

			// Four producers at once (two per core): decoding one request
			// overlaps the acks of another, as on a busy gateway.
			b.Run("http4", func(b *testing.B) {
				client := &http.Client{Timeout: time.Minute, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
				b.SetBytes(int64(len(body)))
				b.ReportAllocs()
				b.SetParallelism(2)
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						req, err := http.NewRequest(http.MethodPost, r.url+PathEvents, bytes.NewReader(body))
						if err != nil {
							b.Error(err)
							return
						}
						req.Header.Set("Authorization", "Bearer "+e2eToken)
						req.Header.Set("Content-Type", "application/x-ndjson")
						resp, err := client.Do(req)
						if err != nil {
							b.Error(err)
							return
						}
						_, _ = io.Copy(io.Discard, resp.Body)
						resp.Body.Close()
						if resp.StatusCode != http.StatusOK {
							b.Errorf("status %d", resp.StatusCode)
							return
						}
					}
				})
				rate := float64(b.N*n) / b.Elapsed().Seconds()
				b.ReportMetric(rate, "events/s")
				if rawRate > 0 {
					b.ReportMetric(rate/rawRate, "x_raw")
				}
			})
		})
	}
}
