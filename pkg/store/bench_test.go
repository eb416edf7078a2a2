package store

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var eventColumns = []string{"id", "kind", "time", "observed_time", "source", "service", "severity", "fingerprint",
	"labels.key", "labels.value", "resource.key", "resource.value", "body", "schema_version"}

const benchBatchRows = 10_000

func benchRows(n int) [][]any {
	ts := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	rows := make([][]any, n)
	for i := range rows {
		t := ts.Add(time.Duration(i) * time.Millisecond)
		rows[i] = []any{fmt.Sprintf("01JBENCH%018d", i), "log", t, t, "bench", fmt.Sprintf("svc-%d", i%20), "info",
			fmt.Sprintf("fp-%d", i%500), []string{"env", "region"}, []string{"prod", "eu-west-1"},
			[]string{"host"}, []string{fmt.Sprintf("host-%d", i%50)},
			`{"message":"request served","status":200,"duration_ms":12}`, uint16(1)}
	}
	return rows
}

// BenchmarkInsert compares the BatchWriter with plain clickhouse-go batches
// of the same rows, batch size and table, in one run:
//
//	go test ./store -run '^$' -bench BenchmarkInsert -benchtime 200000x -count 3
func BenchmarkInsert(b *testing.B) {
	s, _ := openTestStore(b)
	ctx := context.Background()
	if _, err := s.Migrate(ctx, Schema); err != nil {
		b.Fatal(err)
	}
	insertSQL := "INSERT INTO events (`" + eventColumns[0]
	for _, c := range eventColumns[1:] {
		insertSQL += "`, `" + c
	}
	insertSQL += "`)"
	rows := benchRows(benchBatchRows)
	rate := map[string]float64{}
	// Each run starts from an empty table with merges off, so neither side
	// pays for parts the other left behind or for background merges; a
	// first untimed batch warms the server and the connection.
	if err := s.Conn.Exec(ctx, "SYSTEM STOP MERGES events"); err != nil {
		b.Fatal(err)
	}
	reset := func(b *testing.B) {
		b.Helper()
		if err := s.Conn.Exec(ctx, "TRUNCATE TABLE events"); err != nil {
			b.Fatal(err)
		}
		batch, err := s.Conn.PrepareBatch(ctx, insertSQL)
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows {
			if err := batch.Append(r...); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
		b.ResetTimer()
	}

	b.Run("raw", func(b *testing.B) {
		reset(b)
		b.ReportAllocs()
		for sent := 0; sent < b.N; {
			batch, err := s.Conn.PrepareBatch(ctx, insertSQL)
			if err != nil {
				b.Fatal(err)
			}
			for i := 0; i < benchBatchRows && sent < b.N; i, sent = i+1, sent+1 {
				if err := batch.Append(rows[i]...); err != nil {
					b.Fatal(err)
				}
			}
			if err := batch.Send(); err != nil {
				b.Fatal(err)
			}
		}
		rate["raw"] = float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(rate["raw"], "rows/s")
	})

	for _, senders := range []int{1, 2} {
		name := "store"
		if senders > 1 {
			name = fmt.Sprintf("store-senders%d", senders)
		}
		b.Run(name, func(b *testing.B) {
			reset(b)
			b.ReportAllocs()
			w, err := NewBatchWriter(s.Conn, BatchConfig{Table: "events", Columns: eventColumns, MaxRows: benchBatchRows, MaxAge: time.Minute, Senders: senders}, zerolog.Nop())
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
				if err := w.Add(ctx, rows[i%benchBatchRows], done); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Close(ctx); err != nil {
				b.Fatal(err)
			}
			if err := failed.Load(); err != nil {
				b.Fatal(*err)
			}
			rate[name] = float64(b.N) / b.Elapsed().Seconds()
			b.ReportMetric(rate[name], "rows/s")
		})
	}

	for _, name := range []string{"store", "store-senders2"} {
		if rate["raw"] > 0 && rate[name] > 0 {
			b.Logf("%s/raw = %.3f (%.0f vs %.0f rows/s)", name, rate[name]/rate["raw"], rate[name], rate["raw"])
		}
	}
}
