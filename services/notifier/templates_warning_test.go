package notifier

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// An Alertmanager file's templates (custom template files, often
// redefining Alertmanager's own, such as slack.default.title) are not
// read: the text keys are templates of the aiops incident. A team moving
// its file would lose what those files changed without a word; the
// notifier says so when it starts, naming the key and what to do.
func TestAlertmanagerTemplateFilesAreWarnedAboutAtStart(t *testing.T) {
	got := startLog(t, "templates: ['templates/*.tmpl']\n")
	if !strings.Contains(got, `"level":"warn"`) || !strings.Contains(got, "templates") || !strings.Contains(got, "not read") {
		t.Fatalf("no warning that the template files are not read; the log:\n%s", got)
	}
}

// A text key written for Alertmanager's data (.CommonLabels, a template
// of its files, its functions) is refused at start naming the key (as
// TestTemplateErrorsAtStart checks), and says what aiops's templates take,
// so that the team moving its file knows what to write instead.
func TestAlertmanagerTemplateInATextKeySaysWhatToWrite(t *testing.T) {
	for _, text := range []string{
		`{{ .CommonLabels.alertname }}`,
		`{{ template "slack.default.title" . }}`,
		`{{ .Status | toUpper }}`,
		`{{ range .Alerts }}{{ .Annotations.summary }}{{ end }}`,
	} {
		routes := filepath.Join(t.TempDir(), "am.yml")
		os.WriteFile(routes, []byte("route: {receiver: x}\nreceivers:\n- name: x\n  slack_configs: [{api_url: 'http://127.0.0.1:1/', title: '"+text+"'}]\n"), 0o600)
		_, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
		if err == nil {
			t.Fatalf("%s: taken", text)
		}
		for _, want := range []string{"slack_configs[0].title", "{{ .Title }}", "not of Alertmanager's", "services/notifier/README.md"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%s: the error does not say %q:\n%v", text, want, err)
			}
		}
	}
}

// Alertmanager's global.resolve_timeout applies to the alerts posted to
// it, which aiops's gateway takes: a file that changes it is warned about
// at start, naming the key to set instead; the default is not.
func TestResolveTimeoutIsWarnedAboutAtStart(t *testing.T) {
	for _, c := range []struct {
		global string
		warned bool
	}{{"global: {resolve_timeout: 1h}\n", true}, {"global: {resolve_timeout: 5m}\n", false}, {"", false}} {
		logs := startLog(t, c.global)
		if got := strings.Contains(logs, "ingest.resolve_timeout"); got != c.warned {
			t.Errorf("%q: warned %t, want %t; the log:\n%s", c.global, got, c.warned, logs)
		}
	}
}

// startLog is what a notifier logs at start with a routes file of head
// and one webhook receiver.
func startLog(t *testing.T, head string) string {
	t.Helper()
	routes := filepath.Join(t.TempDir(), "alertmanager.yml")
	os.WriteFile(routes, []byte(head+`route: {receiver: hook}
receivers:
- name: hook
  webhook_configs: [{url: 'http://127.0.0.1:1/'}]
`), 0o600)
	var logs bytes.Buffer
	if _, err := NewProcessor(Config{Routes: routes}, zerolog.New(&logs)); err != nil {
		t.Fatal(err)
	}
	return logs.String()
}
