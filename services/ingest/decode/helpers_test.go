package decode

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/errs"
	"github.com/aiops-dev/aiops/pkg/event"
)

var testNow = time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)

func opts() Options { return Options{Now: testNow} }

// problemsOf asserts err is a permanent *Error and returns its problems.
func problemsOf(t *testing.T, err error) []Problem {
	t.Helper()
	if err == nil {
		t.Fatal("want an error, got nil")
	}
	if !errs.IsPermanent(err) {
		t.Fatalf("error is not permanent: %v", err)
	}
	var de *Error
	if !errors.As(err, &de) {
		t.Fatalf("error is not a *decode.Error: %v", err)
	}
	return de.Problems
}

// refusedProblem asserts that the input item was refused for field: in
// the error when the whole request was, else counted in
// Skipped[SkippedInvalid] with its problem in b.Problems (remote-write and
// Alertmanager take the good inputs of a request).
func refusedProblem(t *testing.T, b *Batch, err error, item int, field string) Problem {
	t.Helper()
	if err != nil {
		return hasProblem(t, err, item, field)
	}
	if b.Skipped[SkippedInvalid] == 0 {
		t.Fatalf("nothing refused, want item %d field %q", item, field)
	}
	for _, p := range b.Problems {
		if p.Item == item && p.Field == field {
			return p
		}
	}
	t.Fatalf("no problem for item %d field %q in %v", item, field, b.Problems)
	return Problem{}
}

// hasProblem asserts that a problem with item and field exists.
func hasProblem(t *testing.T, err error, item int, field string) Problem {
	t.Helper()
	for _, p := range problemsOf(t, err) {
		if p.Item == item && p.Field == field {
			return p
		}
	}
	t.Fatalf("no problem for item %d field %q in %v", item, field, err)
	return Problem{}
}

func body[T any](t *testing.T, e *event.Envelope) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(e.Body, &v); err != nil {
		t.Fatalf("body of %s: %v", e.ID, err)
	}
	return v
}

func eq[T any](t *testing.T, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s = %#v, want %#v", what, got, want)
	}
}

// checkValid asserts every event of a batch passes validation and has the
// source.
func checkValid(t *testing.T, b *Batch, source string) {
	t.Helper()
	for i, e := range b.Events {
		if err := e.Validate(); err != nil {
			t.Errorf("event %d invalid: %v", i, err)
		}
		if e.Source != source {
			t.Errorf("event %d source = %q, want %q", i, e.Source, source)
		}
	}
}

func ptr(f float64) *float64 { return &f }
