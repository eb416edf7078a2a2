// Package errs separates permanent failures (bad data that no retry will fix)
// from transient ones (a server that is down now and may be up later).
//
// Stages return plain errors for transient failures; they wrap bad input with
// Permanent so that the transport dead-letters it instead of retrying forever.
package errs

import (
	"errors"
	"fmt"
)

type permanent struct{ err error }

func (p permanent) Error() string { return p.err.Error() }
func (p permanent) Unwrap() error { return p.err }

// Permanent marks err as permanent. Permanent(nil) is nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	if IsPermanent(err) {
		return err
	}
	return permanent{err}
}

// Permanentf is Permanent(fmt.Errorf(format, args...)).
func Permanentf(format string, args ...any) error {
	return permanent{fmt.Errorf(format, args...)}
}

// IsPermanent reports whether err, or any error it wraps, was marked permanent.
func IsPermanent(err error) bool {
	var p permanent
	return errors.As(err, &p)
}

type givenBack struct{ err error }

func (g givenBack) Error() string { return g.err.Error() }
func (g givenBack) Unwrap() error { return g.err }

// GivenBack marks err as a failure of the instance, not of the input: the
// input was given back unjudged (a stop before its outputs were stored, a
// lost lease, no room for its outputs), and is good. On its last delivery
// the transport still dead-letters it, as the only place that keeps it,
// saying so. GivenBack(nil) is nil.
func GivenBack(err error) error {
	if err == nil {
		return nil
	}
	return givenBack{err}
}

// IsGivenBack reports whether err, or any error it wraps, was marked
// GivenBack.
func IsGivenBack(err error) bool {
	var g givenBack
	return errors.As(err, &g)
}
