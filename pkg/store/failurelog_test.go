package store

import (
	"testing"
	"time"
)

// During an outage every batch fails: the first failure is said at once,
// then one line per failureLogEvery with how many batches failed since,
// and a success says how many failed in a row before it.
func TestFailedInsertsAreSaidOncePerPeriod(t *testing.T) {
	var f failureLog
	t0 := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	var said []int
	fail := func(at time.Duration) {
		if n := f.failed(t0.Add(at)); n > 0 {
			said = append(said, n)
		}
	}
	for s := range 61 { // a batch a second for a minute
		fail(time.Duration(s) * time.Second)
	}
	if want := []int{1, 30, 30}; len(said) != len(want) || said[0] != want[0] || said[1] != want[1] || said[2] != want[2] {
		t.Fatalf("lines said %v batches each, want %v", said, want)
	}
	if n := f.succeeded(); n != 61 {
		t.Fatalf("the success after the outage says %d batches failed, want 61", n)
	}
	if n := f.succeeded(); n != 0 {
		t.Fatalf("a second success says %d failed, want 0", n)
	}
	said = nil
	fail(61 * time.Second)
	if len(said) != 1 || said[0] != 1 {
		t.Fatalf("the first failure after a success: lines %v, want it said at once", said)
	}
}
