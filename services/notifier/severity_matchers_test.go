package notifier

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// An incident's severity label is aiops's own (debug, info, warning,
// error, critical), whatever the alert called it: an alert sent as
// severity=page or P1 becomes a critical incident. A route or inhibit
// rule that matches the alert's word (match: {severity: page}, very common
// in Alertmanager files) would never match an incident, and the team
// would lose its pages without a word: such a matcher is refused at start,
// naming where it is and what to write, while one that also matches the
// incident's severity (severity=~"critical|page") is taken.
func TestSeverityMatcherNoIncidentCanMatchIsRefused(t *testing.T) {
	write := func(t *testing.T, yml string) string {
		t.Helper()
		path := filepath.Join(t.TempDir(), "alertmanager.yml")
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	const receivers = `
receivers:
- name: chat
  webhook_configs: [{url: 'http://127.0.0.1:1/chat'}]
- name: pager
  webhook_configs: [{url: 'http://127.0.0.1:1/pager'}]
`
	bad := write(t, `route:
  receiver: chat
  routes:
  - match: {severity: page}
    receiver: pager
  - matchers: ['severity=~"P1|P2"']
    receiver: pager
  - matchers: ['severity!="Critical"', 'severity=~".+"']
    receiver: chat
inhibit_rules:
- source_matchers: [severity="crit"]
  target_matchers: [severity="warning"]
  equal: [service]
`+receivers)
	_, err := NewProcessor(Config{Routes: bad}, zerolog.Nop())
	if err == nil {
		t.Fatal("a file whose routes match severity=page was taken: those alerts' incidents would page nobody")
	}
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("%v: not an ErrInvalidConfig", err)
	}
	for _, want := range []string{
		`route.routes[0]: severity="page"`, `"page" is critical`,
		`route.routes[1]: severity=~"P1|P2"`, `"P1" is critical`,
		`route.routes[2]: severity!="Critical"`,
		`inhibit_rules[0], its source: severity="crit"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error does not say %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), `severity="warning"`) || strings.Contains(err.Error(), `severity=~".+"`) {
		t.Errorf("a matcher incidents can match was refused:\n%v", err)
	}

	good := write(t, `route:
  receiver: chat
  routes:
  - matchers: ['severity=~"critical|page"']
    receiver: pager
  - matchers: ['severity!~"info|none"', 'severity=~".*"']
    receiver: chat
  - match: {severity: warning}
    receiver: chat
  - match: {severity: custom-word}
    receiver: chat
inhibit_rules:
- source_matchers: [severity="critical"]
  target_matchers: [severity=~"warning|info"]
  equal: [service]
`+receivers)
	if _, err := NewProcessor(Config{Routes: good}, zerolog.Nop()); err != nil {
		t.Fatalf("severity matchers that incidents can match were refused: %v", err)
	}
}
