package notifier

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

// A silence mutes incidents by their labels, whose severity is aiops's
// (an alert's page is critical): `amtool silence add severity=page`, which
// Alertmanager takes and which would mute that page there, would mute
// nothing here, and the maintenance the team silenced would page them.
// aiops refuses it as Alertmanager refuses a bad silence, saying what to
// write, and takes the silence on the incident's severity.
func TestSilenceOnAnAlertsSeverityWordIsRefusedByAmtool(t *testing.T) {
	if testing.Short() {
		t.Skip("starts NATS")
	}
	bin := testenv.Binary(t, "amtool")
	home := t.TempDir()
	_, addr := startSilencesAPI(t, jetStream(t))
	os.WriteFile(filepath.Join(home, "token"), []byte(silencesToken), 0o600)
	os.WriteFile(filepath.Join(home, "amtool-http.yml"), []byte("authorization:\n  credentials_file: token\n"), 0o600)
	tool := amtool{t: t, bin: bin, home: home, url: addr, httpConfig: "amtool-http.yml"}

	out, err := tool.run("silence", "add", "-a", "ann", "-c", "maintenance", "-d", "1h", "service=payments-db", "severity=page")
	if err == nil {
		t.Fatalf("a silence of severity=page was taken (%s): it mutes no incident", out)
	}
	for _, want := range []string{`severity="page"`, `critical`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("amtool's error does not say %q: %v", want, err)
		}
	}
	if got := tool.must("silence", "query", "-q"); got != "" {
		t.Fatalf("silences after the refusal: %q", got)
	}
	tool.must("silence", "add", "-a", "ann", "-c", "maintenance", "-d", "1h", "service=payments-db", "severity=critical")
	tool.must("silence", "add", "-a", "ann", "-c", "maintenance", "-d", "1h", `severity=~"critical|page"`)
}
