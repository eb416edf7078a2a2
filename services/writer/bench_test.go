package writer

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/store"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

const benchEvents = 10_000 // distinct events, reused round robin; also the batch size

// benchEnvelopes is a traffic mix of the high-volume kinds: six logs (half
// of them templated) to four metric samples.
func benchEnvelopes(b *testing.B) ([]*event.Envelope, [][]byte) {
	base := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	envs := make([]*event.Envelope, benchEvents)
	raws := make([][]byte, benchEvents)
	for i := range envs {
		at := base.Add(time.Duration(i) * time.Millisecond)
		var body any
		kind := event.KindLog
		switch {
		case i%10 >= 6:
			kind = event.KindMetric
			v := float64(i % 97)
			body = event.MetricBody{Name: "http_latency_ms", Value: &v, Unit: "ms"}
		case i%2 == 0:
			body = event.LogBody{Message: fmt.Sprintf("GET /api/orders/%d 200 in %d ms", i, i%300), TemplateID: "t42",
				Template: "GET /api/orders/<*> 200 in <*> ms", Params: []string{fmt.Sprint(i), fmt.Sprint(i % 300)}, TraceID: fmt.Sprintf("%032x", i)}
		default:
			body = event.LogBody{Message: fmt.Sprintf("GET /api/orders/%d 200 in %d ms", i, i%300), TraceID: fmt.Sprintf("%032x", i)}
		}
		e, err := event.New(kind, fmt.Sprintf("svc-%d", i%20), at, body)
		if err != nil {
			b.Fatal(err)
		}
		e.Labels = map[string]string{"env": "prod", "region": "eu-west-1", "pod": fmt.Sprintf("pod-%d", i%50)}
		e.Severity = event.SeverityInfo
		e.Fingerprint = event.Fingerprint(e.Kind, e.Service, e.Labels, nil)
		envs[i] = e
		if raws[i], err = json.Marshal(e); err != nil {
			b.Fatal(err)
		}
	}
	return envs, raws
}

// BenchmarkWriter compares, in one run and on the same server, the
// writer's path (envelope → Rows → a BatchWriter per table → ClickHouse,
// acks joined per event) with plain clickhouse-go batches of the same rows
// in the same tables and batch size. rows/s counts table rows (two per
// event: events and the kind's table):
//
//	TMPDIR=/dev/shm go test ./services/writer -run '^$' -bench BenchmarkWriter -benchtime 300000x
//
// raw sends one table's batch after the other on one connection; raw-parallel
// sends each table's batches from its own goroutine, as the writer's batch
// writers do; writer starts from parsed envelopes, writer-json from the
// bytes off the bus (event.Parse included).
func BenchmarkWriter(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{DSN: testenv.ClickHouse(b)}, zerolog.Nop())
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Migrate(ctx, store.Schema); err != nil {
		b.Fatal(err)
	}
	envs, raws := benchEnvelopes(b)
	rowsByTable := map[string][][]any{}
	rowsPerEvent := 0
	for _, e := range envs {
		trs, err := Rows(e)
		if err != nil {
			b.Fatal(err)
		}
		rowsPerEvent += len(trs)
		for _, tr := range trs {
			rowsByTable[tr.Table] = append(rowsByTable[tr.Table], tr.Row)
		}
	}
	tables := []string{TableEvents, TableLogs, TableMetricSamples}
	insertSQL := map[string]string{}
	for _, t := range tables {
		insertSQL[t] = "INSERT INTO " + t + " (`" + strings.Join(Columns[t], "`, `") + "`)"
		if err := st.Conn.Exec(ctx, "SYSTEM STOP MERGES "+t); err != nil {
			b.Fatal(err)
		}
	}
	// share of each table in one event's rows, to split b.N events into
	// the raw batches of the same rows
	sendTable := func(table string, events int) error {
		rows := rowsByTable[table]
		perRound := len(rows) // rows of this table per benchEvents events
		n := events * perRound / benchEvents
		for sent := 0; sent < n; {
			batch, err := st.Conn.PrepareBatch(ctx, insertSQL[table])
			if err != nil {
				return err
			}
			for i := 0; i < benchEvents && sent < n; i, sent = i+1, sent+1 {
				if err := batch.Append(rows[sent%perRound]...); err != nil {
					return err
				}
			}
			if err := batch.Send(); err != nil {
				return err
			}
		}
		return nil
	}
	reset := func(b *testing.B) {
		b.Helper()
		for _, t := range tables {
			if err := st.Conn.Exec(ctx, "TRUNCATE TABLE "+t); err != nil {
				b.Fatal(err)
			}
			// warm the server and the connection for this table
			if err := sendTable(t, benchEvents); err != nil {
				b.Fatal(err)
			}
		}
		b.ResetTimer()
	}
	rate := map[string]float64{}
	report := func(b *testing.B, name string) {
		rows := float64(b.N) * float64(rowsPerEvent) / benchEvents
		rate[name] = rows / b.Elapsed().Seconds()
		b.ReportMetric(rate[name], "rows/s")
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
	}

	b.Run("raw", func(b *testing.B) {
		reset(b)
		for _, t := range tables {
			if err := sendTable(t, b.N); err != nil {
				b.Fatal(err)
			}
		}
		report(b, "raw")
	})
	b.Run("raw-parallel", func(b *testing.B) {
		reset(b)
		var wg sync.WaitGroup
		errc := make(chan error, len(tables))
		for _, t := range tables {
			wg.Go(func() { errc <- sendTable(t, b.N) })
		}
		wg.Wait()
		close(errc)
		for err := range errc {
			if err != nil {
				b.Fatal(err)
			}
		}
		report(b, "raw-parallel")
	})
	for _, fromJSON := range []bool{false, true} {
		name := "writer"
		if fromJSON {
			name = "writer-json"
		}
		b.Run(name, func(b *testing.B) {
			reset(b)
			sink, err := NewSink(st.Conn, SinkConfig{MaxRows: benchEvents, MaxAge: time.Minute, MaxPendingRows: 4 * benchEvents}, zerolog.Nop())
			if err != nil {
				b.Fatal(err)
			}
			var failed atomic.Pointer[error]
			done := func(err error) {
				if err != nil {
					failed.CompareAndSwap(nil, &err)
				}
			}
			for i := 0; i < b.N; i++ {
				e := envs[i%benchEvents]
				if fromJSON {
					if e, err = event.Parse(raws[i%benchEvents]); err != nil {
						b.Fatal(err)
					}
				}
				sink.Write(ctx, e, done)
			}
			if err := sink.Close(ctx); err != nil {
				b.Fatal(err)
			}
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
			report(b, name)
		})
	}
	best := max(rate["raw"], rate["raw-parallel"])
	for _, name := range []string{"writer", "writer-json"} {
		if best > 0 && rate[name] > 0 {
			b.Logf("%s / best raw = %.3f (%.0f vs raw %.0f, raw-parallel %.0f rows/s)", name, rate[name]/best, rate[name], rate["raw"], rate["raw-parallel"])
		}
	}
}

// BenchmarkRows is the writer's own share of the path: one event into its
// rows (the body decoded, labels laid out), without ClickHouse.
//
//	go test ./services/writer -run '^$' -bench BenchmarkRows
func BenchmarkRows(b *testing.B) {
	envs, _ := benchEnvelopes(b)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Rows(envs[i%benchEvents]); err != nil {
			b.Fatal(err)
		}
	}
}
