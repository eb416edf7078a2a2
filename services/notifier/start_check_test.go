package notifier

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

// A PagerDuty severity or client_url that can never be sent (a literal
// "high", a client_url without a scheme) is a configuration mistake: it
// must be refused when the notifier starts, naming the key, rather than
// accepted and then refusing (dead-lettering) every trigger.
func TestPagerDutyLiteralsThatCannotBeSentRefusedAtStart(t *testing.T) {
	for yml, want := range map[string]string{
		"pagerduty_configs: [{routing_key: k, severity: high}]":                  "severity",
		"pagerduty_configs: [{routing_key: k, client_url: 'aiops.example.com'}]": "client_url",
	} {
		routes := filepath.Join(t.TempDir(), "am.yml")
		os.WriteFile(routes, []byte("route: {receiver: x, group_wait: 0s}\nreceivers:\n- name: x\n  "+yml+"\n"), 0o600)
		_, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
		if err == nil || !strings.Contains(err.Error(), "pagerduty_configs[0]") || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s:\n%v\nwant an invalid configuration naming %q", yml, err, want)
		}
	}
}

// Config.Validate is what `aiops run -check` (scripts/run.sh, before it
// starts anything) asks of the notifier's section: a routes file that the
// notifier refuses when it starts (a template written for Alertmanager's
// data, a webhook timeout past 15s, max_alerts on the aiops payload, a
// tls_config.ca_file that is not there, oauth2) must fail it too.
func TestValidateRefusesWhatStartRefuses(t *testing.T) {
	for _, yml := range []string{
		"slack_configs: [{api_url: 'http://127.0.0.1:1/', title: '{{ .CommonLabels.alertname }}'}]",
		"webhook_configs: [{url: 'http://127.0.0.1:1/', timeout: 1m}]",
		"aiops_webhook_configs: [{url: 'http://127.0.0.1:1/', secret_file: s, max_alerts: 3}]",
		"webhook_configs: [{url: 'http://127.0.0.1:1/', http_config: {tls_config: {ca_file: /nonexistent/ca.pem}}}]",
	} {
		routes := filepath.Join(t.TempDir(), "am.yml")
		os.WriteFile(routes, []byte("route: {receiver: x, group_wait: 0s}\nreceivers:\n- name: x\n  "+yml+"\n"), 0o600)
		_, startErr := NewProcessor(Config{Routes: routes}, zerolog.Nop())
		checkErr := Config{Routes: routes}.Validate()
		if startErr == nil {
			t.Fatalf("%s: the notifier started", yml)
		}
		if checkErr == nil || !errors.Is(checkErr, ErrInvalidConfig) {
			t.Errorf("%s:\nValidate (aiops run -check): %v\nbut the notifier refuses to start: %v", yml, checkErr, startErr)
		}
	}
}

// global.slack_api_url: <secret> (what Alertmanager's /api/v2/status and
// `amtool config show` print in place of the URL, pasted back) is taken
// as Alertmanager takes it, but a Slack integration that inherits it has
// no URL to send to: every notification would be refused (dead-lettered).
// It must be refused at start, naming the key.
func TestSlackRedactedGlobalURLRefusedAtStart(t *testing.T) {
	routes := filepath.Join(t.TempDir(), "am.yml")
	os.WriteFile(routes, []byte("global: {slack_api_url: '<secret>'}\nroute: {receiver: x, group_wait: 0s}\nreceivers:\n- name: x\n  slack_configs: [{channel: '#x'}]\n"), 0o600)
	_, err := NewProcessor(Config{Routes: routes}, zerolog.Nop())
	if err == nil || !strings.Contains(err.Error(), "slack_api_url") {
		t.Fatalf("NewProcessor: %v, want an error naming slack_api_url", err)
	}
}
