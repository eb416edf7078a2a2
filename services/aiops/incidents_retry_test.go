package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// A command whose answer was lost (the connection cut after the API
// applied it) is sent again under its Idempotency-Key, rather than failing
// and leaving the person to run it again under a new key, which would
// apply it twice.
func TestIncidentsCommandWhoseAnswerWasLostIsSentAgain(t *testing.T) {
	const token = "0123456789abcdef0123"
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if len(keys) == 1 {
			// applied, then the answer is lost
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
			return
		}
		json.NewEncoder(w).Encode(correlate.State{IncidentID: "inc-1", State: "acknowledged", Title: "DBDown on db", Services: []string{"db"}})
	}))
	t.Cleanup(srv.Close)
	args := []string{"ack", "inc-1", "-by", "ana", "-url", srv.URL, "-set", "correlator.api.token_file=" + tokenFile(t, token)}
	var out, errOut bytes.Buffer
	if err := incidentsMain(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("ack whose first answer was lost: %v after %d sends, want it sent again under its key", err, len(keys))
	}
	if len(keys) != 2 || keys[0] == "" || keys[0] != keys[1] {
		t.Errorf("Idempotency-Keys sent: %q, want the same one twice", keys)
	}
}
