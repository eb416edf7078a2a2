package aiops

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

// Two listeners of one configuration on the same port, written
// differently (every address and loopback, localhost and 127.0.0.1),
// cannot both bind: -check said nothing and exit 0, then aiops run failed
// at the second one ("correlator.api.listen: listen tcp 127.0.0.1:P:
// bind: address already in use", its own ingest holding it) after NATS and
// ClickHouse had started.
func TestRunCheckNamesListenersThatOverlap(t *testing.T) {
	for _, ingest := range []string{":%s", "0.0.0.0:%s", "localhost:%s"} {
		_, port, _ := net.SplitHostPort(testenv.FreeAddr(t))
		ingestAddr := strings.Replace(ingest, "%s", port, 1)
		dir := t.TempDir()
		args := append([]string{"-check"}, firstRunArgs(t, dir, "clickhouse://"+testenv.FreeAddr(t)+"/default", map[string]string{
			"ingest.listen": ingestAddr, "correlator.api.listen": "127.0.0.1:" + port,
		})...)
		err := runPipelineTo(context.Background(), args, nil)
		if err == nil {
			t.Errorf("aiops run -check with ingest.listen=%s and correlator.api.listen=127.0.0.1:%s: no error; aiops run fails on them", ingestAddr, port)
			continue
		}
		for _, want := range []string{"correlator.api.listen 127.0.0.1:" + port, "ingest.listen", "-set correlator.api.listen=127.0.0.1:"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%v\nwant it to say %q", err, want)
			}
		}
		notStarted(t, dir)
	}
}
