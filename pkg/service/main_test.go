package service

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/config"
)

func TestExitCode(t *testing.T) {
	var cfg struct {
		N int `yaml:"n"`
	}
	configErr := config.Load(&cfg, config.Options{Sets: []string{"m=1"}})
	cases := []struct {
		err  error
		want int
	}{
		{nil, ExitOK},
		{flag.ErrHelp, ExitOK},
		{Usage(flag.ErrHelp), ExitOK},
		{Usage(errors.New("flag provided but not defined: -x")), ExitUsage},
		{configErr, ExitUsage},
		{fmt.Errorf("starting: %w", configErr), ExitUsage},
		{errors.New("nats: connection refused"), ExitFailure},
	}
	for _, c := range cases {
		if got := ExitCode(c.err); got != c.want {
			t.Errorf("ExitCode(%v) = %d, want %d", c.err, got, c.want)
		}
	}
	if Usage(nil) != nil {
		t.Error("Usage(nil) != nil")
	}
}

func TestMainExitCodesAndStderr(t *testing.T) {
	app := func(_ context.Context, args []string) error {
		fs := flag.NewFlagSet("demo", flag.ContinueOnError)
		fs.SetOutput(new(strings.Builder))
		fail := fs.Bool("fail", false, "fail at run time")
		if err := fs.Parse(args); err != nil {
			return Usage(err)
		}
		if *fail {
			return errors.New("nats: connection refused")
		}
		return nil
	}
	for _, c := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{nil, ExitOK, ""},
		{[]string{"-help"}, ExitOK, ""},
		{[]string{"-bogus"}, ExitUsage, "demo: usage: flag provided but not defined: -bogus\n"},
		{[]string{"-fail"}, ExitFailure, "demo: nats: connection refused\n"},
	} {
		var stderr strings.Builder
		if code := Main("demo", c.args, &stderr, app); code != c.code || stderr.String() != c.stderr {
			t.Errorf("Main(%v) = %d, stderr %q; want %d, %q", c.args, code, stderr.String(), c.code, c.stderr)
		}
	}
}
