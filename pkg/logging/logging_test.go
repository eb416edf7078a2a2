package logging

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

var fixedTime = time.Date(2026, 11, 21, 19, 41, 21, 123456789, time.FixedZone("CET", 3600))

func decodeLines(t *testing.T, buf *bytes.Buffer) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("line %q is not JSON: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

func TestParseLevel(t *testing.T) {
	cases := map[string]zerolog.Level{
		"":        zerolog.InfoLevel,
		"debug":   zerolog.DebugLevel,
		"INFO":    zerolog.InfoLevel,
		"Warning": zerolog.WarnLevel,
		"error":   zerolog.ErrorLevel,
		"trace":   zerolog.TraceLevel,
	}
	for in, want := range cases {
		got, err := ParseLevel(in)
		if err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"verbose", "1", "fatal", "info "} {
		_, err := ParseLevel(bad)
		if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), bad) {
			t.Errorf("ParseLevel(%q): err = %v, want ErrInvalidOptions naming it", bad, err)
		}
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	_, err := New(new(bytes.Buffer), Options{Level: "loud"})
	if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "log.level") {
		t.Errorf("bad level: err = %v, want ErrInvalidOptions naming log.level", err)
	}
	_, err = New(new(bytes.Buffer), Options{Format: "xml"})
	if !errors.Is(err, ErrInvalidOptions) || !strings.Contains(err.Error(), "log.format") {
		t.Errorf("bad format: err = %v, want ErrInvalidOptions naming log.format", err)
	}
}

func TestNewJSONHasServiceTimeAndLevel(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Level: "info", Format: FormatAuto, Service: "ingest", Now: func() time.Time { return fixedTime }})
	if err != nil {
		t.Fatal(err)
	}
	log.Debug().Msg("hidden")
	log.Info().Str(FieldEventID, "01J").Msg("published")
	lines := decodeLines(t, &buf) // auto on a buffer (no terminal) is JSON
	if len(lines) != 1 {
		t.Fatalf("got %d lines, want 1 (debug filtered at info): %s", len(lines), buf.String())
	}
	got := lines[0]
	want := map[string]any{
		FieldService: "ingest",
		FieldTime:    "2026-11-21T18:41:21.123Z",
		"level":      "info",
		"message":    "published",
		FieldEventID: "01J",
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v (line %v)", k, got[k], v, got)
		}
	}
}

func TestNewCaller(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Format: FormatJSON, Caller: true})
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Msg("x")
	caller, _ := decodeLines(t, &buf)[0]["caller"].(string)
	if !strings.Contains(caller, "logging_test.go:") {
		t.Errorf("caller = %q, want this test file", caller)
	}
}

func TestNewConsole(t *testing.T) {
	var buf bytes.Buffer
	log, err := New(&buf, Options{Format: FormatConsole, Service: "detector", Now: func() time.Time { return fixedTime }})
	if err != nil {
		t.Fatal(err)
	}
	log.Warn().Msg("slow")
	out := buf.String()
	if json.Valid(buf.Bytes()) {
		t.Errorf("console output is JSON: %s", out)
	}
	for _, want := range []string{"WRN", "slow", "service=detector"} {
		if !strings.Contains(out, want) {
			t.Errorf("console output %q lacks %q", out, want)
		}
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("console output to a non-terminal has colour codes: %q", out)
	}
}
