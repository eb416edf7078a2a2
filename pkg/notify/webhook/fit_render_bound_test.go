package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// A storm's incident rendered by a custom template lists as many members
// as fit in max_body_bytes (Fit), as every other payload does; it must not
// fail for good because the rendering of all of them passed the
// template's own 1 MiB bound before Fit could list fewer.
func TestFitListsFewerMembersPastTheRenderBound(t *testing.T) {
	in := SampleIncident()
	base := in.Members[0]
	in.Members = nil
	for i := range 3000 {
		m := base
		m.Fingerprint = fmt.Sprintf("%016x", i)
		m.Summary = strings.Repeat("x", 500)
		in.Members = append(in.Members, m)
	}
	in.MemberCount = len(in.Members)
	tmpl, err := ParseTemplate("storm", `{"n": {{ .MemberCount }}, "m": [{{ range $i, $m := .Members }}{{ if $i }},{{ end }}{{ json $m.Summary }}{{ end }}]}`, TemplateJSON)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Fit(in, DefaultMaxBodyBytes, tmpl.Render)
	if err != nil {
		t.Fatalf("Fit: %v (want the first members that fit in %d bytes)", err, DefaultMaxBodyBytes)
	}
	var v struct {
		N int      `json:"n"`
		M []string `json:"m"`
	}
	if err := json.Unmarshal(b, &v); err != nil || len(b) > DefaultMaxBodyBytes || v.N != 3000 || len(v.M) == 0 {
		t.Fatalf("%d bytes, %d members listed of %d, %v", len(b), len(v.M), v.N, err)
	}
}

// A JSON template that puts label names into its output unquoted
// ("{{ $k }}") passes the start-time check, yet a label name holding a
// quote (OpenTelemetry attribute names and UTF-8 label names are free
// text) adds keys of its own to the body: here a second "severity".
// Check must refuse it, as it refuses "{{ .Title }}".
func TestCheckRefusesUnquotedLabelNames(t *testing.T) {
	text := `{"severity": {{ json .Severity }}, "labels": { {{ range $k, $v := .Labels }}"{{ $k }}": {{ json $v }}, {{ end }}"_": 0 } }`
	tm, err := ParseTemplate("t", text, TemplateJSON)
	if err != nil {
		t.Fatal(err)
	}
	in := SampleIncident()
	in.Labels = map[string]string{`x": 1}, "severity": "info", "y": {"z`: "v"}
	b, _ := tm.Render(in)
	if err := tm.Check(); err == nil {
		t.Fatalf("Check took the template; an incident with a crafted label name renders %s", b)
	}
}
