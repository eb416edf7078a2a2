package stagetest

import (
	"context"
	"errors"
	"sync"
)

// ErrInsert is the error of an insert failed on purpose (Table.FailNext).
var ErrInsert = errors.New("stagetest: insert failed on purpose")

// Table is an in-memory table behind a batching sink's inserter (the
// writer's Inserter): Add commits a row at once, or holds it until Flush
// when Hold is on; FailNext makes the next rows fail instead.
type Table struct {
	mu       sync.Mutex
	rows     [][]any
	held     []heldRow
	hold     bool
	failNext int
	failWith error
	closed   bool
}

type heldRow struct {
	row  []any
	done func(error)
}

// NewTable returns an empty table.
func NewTable() *Table { return &Table{} }

// Hold makes Add keep rows until Flush (as a batch waits to fill).
func (t *Table) Hold(on bool) {
	t.mu.Lock()
	t.hold = on
	t.mu.Unlock()
}

// FailNext makes the next n rows fail with err (ErrInsert when nil).
func (t *Table) FailNext(n int, err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err == nil {
		err = ErrInsert
	}
	t.failNext, t.failWith = n, err
}

// Add takes one row.
func (t *Table) Add(_ context.Context, row []any, done func(error)) error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return errors.New("stagetest: table closed")
	}
	if t.hold {
		t.held = append(t.held, heldRow{row, done})
		t.mu.Unlock()
		return nil
	}
	err := t.commit(row)
	t.mu.Unlock()
	done(err)
	return nil
}

// commit stores row or fails it as told; t.mu is held.
func (t *Table) commit(row []any) error {
	if t.failNext > 0 {
		t.failNext--
		return t.failWith
	}
	t.rows = append(t.rows, row)
	return nil
}

// Flush commits the held rows.
func (t *Table) Flush(context.Context) error {
	t.mu.Lock()
	held := t.held
	t.held = nil
	results := make([]error, len(held))
	for i, h := range held {
		results[i] = t.commit(h.row)
	}
	t.mu.Unlock()
	for i, h := range held {
		h.done(results[i])
	}
	return nil
}

// Close flushes and refuses further rows.
func (t *Table) Close(ctx context.Context) error {
	err := t.Flush(ctx)
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	return err
}

// Held is the number of rows waiting for Flush.
func (t *Table) Held() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.held)
}

// Rows returns the committed rows.
func (t *Table) Rows() [][]any {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([][]any(nil), t.rows...)
}
