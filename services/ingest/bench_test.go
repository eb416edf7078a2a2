package ingest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/services/ingest/decode"
)

type nopPublisher struct{}

func (nopPublisher) PublishAll(context.Context, []*event.Envelope) error { return nil }

// ndjsonBatch is n events alternating logs and metric samples, timed in
// the minute from minute (the clock of the gateway it goes to), shaped like
// what an agent sends: labels, a resource, a body.
func ndjsonBatch(n int, minute time.Time) []byte {
	var b bytes.Buffer
	for i := range n {
		if i%2 == 0 {
			at := minute.Add(time.Duration(i%60)*time.Second + time.Duration(i%1000)*time.Millisecond)
			fmt.Fprintf(&b, `{"kind":"log","service":"checkout","time":%q,"severity":"error","labels":{"env":"prod","pod":"checkout-%d"},"resource":{"host.name":"web-%d"},"body":{"message":"payment %d declined by provider: card expired"}}`+"\n", at.UTC().Format(time.RFC3339Nano), i%7, i%3, i)
		} else {
			at := minute.Add(time.Duration(i%60) * time.Second)
			fmt.Fprintf(&b, `{"kind":"metric","service":"api","time":%q,"labels":{"__name__":"http_latency_seconds","route":"/cart","code":"200"},"body":{"name":"http_latency_seconds","value":%g,"type":"gauge"}}`+"\n", at.UTC().Format(time.RFC3339), float64(i)/1000)
		}
	}
	return b.Bytes()
}

// BenchmarkHandlerNDJSON1000 posts batches of 1,000 NDJSON events through
// the whole handler (auth, rate limit, read, decode, validate, answer with
// the ids) with a publisher that does nothing.
func BenchmarkHandlerNDJSON1000(b *testing.B) {
	const n = 1000
	body := ndjsonBatch(n, testNow.Add(-time.Minute))
	h, err := New(Config{Tokens: []string{tokenA}, RatePerToken: 1e9, Burst: 1 << 30}, nopPublisher{}, WithClock((&clock{now: testNow}).Now))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, PathEvents, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/x-ndjson")
		req.Header.Set("Authorization", "Bearer "+tokenA)
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %.300s", rec.Code, rec.Body)
		}
	}
	b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkDecode1000 is each /v1/events decoder alone on the same 1,000
// lines, to see what the HTTP layer adds and what line splitting saves over
// the streaming tokenizer.
func BenchmarkDecode1000(b *testing.B) {
	const n = 1000
	body := ndjsonBatch(n, testNow.Add(-time.Minute))
	for _, d := range []struct {
		name string
		fn   func([]byte, decode.Options) (*decode.Batch, error)
	}{{"NDJSON", decode.NDJSON}, {"Events", decode.Events}} {
		b.Run(d.name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				batch, err := d.fn(body, decode.Options{Now: testNow})
				if err != nil || len(batch.Events) != n {
					b.Fatalf("%v (%d events)", err, len(batch.Events))
				}
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
