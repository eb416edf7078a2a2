package httpapi

import (
	"context"
	"time"
)

// SlotWait is how long a request waits for one of the slots that bound
// how many of its kind are answered at once (TakeSlot): an answer takes
// milliseconds, and one refused at once failed a dashboard's fifth panel
// or amtool run beside a script; a waiting request holds a goroutine,
// not the answer it will build.
const SlotWait = 5 * time.Second

// TakeSlot takes one of slots (a channel whose capacity is the bound),
// waiting up to wait for one to be freed; false when none was, or ctx
// ended first. The caller frees it with <-slots.
func TakeSlot(ctx context.Context, slots chan struct{}, wait time.Duration) bool {
	select {
	case slots <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case slots <- struct{}{}:
		return true
	case <-t.C:
		return false
	case <-ctx.Done():
		return false
	}
}
