package logminer

import (
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/logmine"
)

// A service without a format has its header detected (the default is
// auto): klog lines are mined on their message with the level the header
// gives, the choice is made after the first lines, logged and exported; a
// service configured "none" is mined whole.
func TestProcessDetectsHeader(t *testing.T) {
	l := newTestLogminer(t, Config{Formats: map[string]string{"raw": FormatNone}})
	h := startHarness(t, l)
	line := func(i int) string {
		return fmt.Sprintf("E0102 10:00:%02d.%06d       1 controller.go:117] sync of default/web-%d failed after %d retries", i%60, i, i%5, i%7)
	}
	for i := range logmine.DetectSampleLines + 5 {
		feedOK(t, h, rawEvent(t, "kube", line(i), ""))
		if i == logmine.DetectSampleLines-2 {
			if d := l.headers.detected(); len(d) != 0 {
				t.Fatalf("decided before %d lines: %v", logmine.DetectSampleLines, d)
			}
		}
	}
	msgs := h.Pub.Messages()
	var out *event.Envelope
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].Subject == "events.log.kube.templated" {
			out = decode(t, msgs[i])
			break
		}
	}
	if out == nil {
		t.Fatal("no templated log")
	}
	var body event.LogBody
	if err := out.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if body.Template != "sync of default/web-<*> failed after <*> retries" || out.Severity != event.SeverityError {
		t.Errorf("template %q severity %q", body.Template, out.Severity)
	}
	d := l.headers.detected()["kube"]
	if d.Kind != logmine.HeaderKlog || d.Matched != logmine.DetectSampleLines || d.Sampled != logmine.DetectSampleLines {
		t.Errorf("detection %+v", d)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(collector{l})
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		if f.GetName() != "aiops_logminer_header_detected" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, lp := range m.GetLabel() {
				labels[lp.GetName()] = lp.GetValue()
			}
			if labels["service"] == "kube" && labels["kind"] == "klog" && m.GetGauge().GetValue() == 1 && len(f.GetMetric()) == 1 {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no aiops_logminer_header_detected{kind=\"klog\",service=\"kube\"} 1 among %d families", len(families))
	}

	// "none": the same line is mined whole, header included
	feedOK(t, h, rawEvent(t, "raw", line(1), ""))
	msgs = h.Pub.Messages()
	var raw *event.Envelope
	for _, m := range msgs {
		if m.Subject == "events.log.raw.templated" {
			raw = decode(t, m)
		}
	}
	if raw == nil {
		t.Fatal("no templated log for raw")
	}
	if err := raw.DecodeBody(&body); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(body.Template, "E0102 ") {
		t.Errorf("none: template %q, want the whole line", body.Template)
	}
	if _, ok := l.headers.detected()["raw"]; ok {
		t.Error("a service configured none was detected")
	}
}

// All detection slots taken by services that log little does not stop
// detection for good: a new service takes the slot of the detection that
// started first, and is detected from its first lines; the slots stay
// bounded.
func TestHeaderDetectionSlotsFreed(t *testing.T) {
	h := newHeaders(zerolog.Nop())
	const line = "E0102 10:00:00.000001       1 controller.go:117] sync failed"
	for i := range maxDetecting {
		h.split(fmt.Sprintf("quiet-%d", i), line)
	}
	for range logmine.DetectSampleLines {
		h.split("late", line)
	}
	if d, ok := h.detected()["late"]; !ok || d.Kind != logmine.HeaderKlog {
		t.Fatalf("a service after %d that sent a line each: detection %+v %v, want klog", maxDetecting, d, ok)
	}
	if _, ok := h.votes["quiet-0"]; ok || len(h.votes) > maxDetecting {
		t.Fatalf("%d detections held, the first one among them: %v", len(h.votes), ok)
	}
	for i := range 3 * maxDetecting { // churn: the order of starts stays bounded
		h.split(fmt.Sprintf("churn-%d", i), line)
	}
	if len(h.votes) != maxDetecting || len(h.started) > 3*maxDetecting {
		t.Fatalf("%d detections, %d starts remembered", len(h.votes), len(h.started))
	}
}
