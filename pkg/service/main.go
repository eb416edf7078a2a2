package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/aiops-dev/aiops/pkg/config"
)

// Exit codes returned by Main and ExitCode.
const (
	ExitOK      = 0 // clean shutdown, or -help
	ExitFailure = 1 // the service failed while running
	ExitUsage   = 2 // bad flags or configuration: fix the invocation, do not restart
)

// ErrUsage marks errors in the command line.
var ErrUsage = errors.New("usage")

// Usage marks err as a command-line error (exit code 2). flag.ErrHelp is
// returned as is: asking for help is not a failure.
func Usage(err error) error {
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrUsage, err)
}

// ExitCode maps an error returned by an app to the process exit code.
func ExitCode(err error) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.Is(err, ErrUsage), errors.Is(err, config.ErrInvalidConfig):
		return ExitUsage
	}
	return ExitFailure
}

// Main runs an app and returns its exit code, printing its error to stderr
// prefixed with name. The app gets a background context; Run handles the
// signals.
func Main(name string, args []string, stderr io.Writer, app func(ctx context.Context, args []string) error) int {
	err := app(context.Background(), args)
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
	}
	return ExitCode(err)
}
