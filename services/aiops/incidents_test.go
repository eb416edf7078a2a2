package aiops

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/testenv"
)

// fakeIncidentsAPI serves n incidents the way the incidents API lists
// them (newest first, limit, next_cursor) to a client with token; the
// client's logic around it is what the tests here check (TestRunPipeline
// runs the command against the real API).
func fakeIncidentsAPI(t *testing.T, token string, n int) (url string, requests *int) {
	t.Helper()
	requests = new(int)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*requests++
		if r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusUnauthorized)
			json.NewEncoder(w).Encode(map[string]string{"error": "missing or wrong bearer token"})
			return
		}
		if r.URL.Path == "/v1/incidents/hostile" {
			// What anyone who can post an alert or a comment can write.
			json.NewEncoder(w).Encode(correlate.State{IncidentID: "hostile", State: "open", Title: "a\u202egnp.exe", Services: []string{"x"},
				Comments: []correlate.Comment{{By: "mallory\x1b[2J", Text: "ok\x1b]0;pwned\x07\rhidden\nsecond line"}}})
			return
		}
		if r.URL.Path != "/v1/incidents" {
			w.WriteHeader(http.StatusNotFound)
			json.NewEncoder(w).Encode(map[string]string{"error": "no incident \"" + strings.TrimPrefix(r.URL.Path, "/v1/incidents/") + "\""})
			return
		}
		limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
		from := 0
		if c := r.URL.Query().Get("cursor"); c != "" {
			from, _ = strconv.Atoi(c)
		}
		var page []correlate.State
		for i := from; i < n && len(page) < limit; i++ {
			page = append(page, correlate.State{IncidentID: "inc-" + strconv.Itoa(i), State: "open", Title: "Failing\x1b[2J on svc-" + strconv.Itoa(i),
				Service: "svc-" + strconv.Itoa(i), OpenedAt: time.Date(2026, 12, 5, 12, 0, 0, 0, time.UTC).Add(-time.Duration(i) * time.Minute)})
		}
		answer := map[string]any{"incidents": page, "truncated": from+len(page) < n}
		if from+len(page) < n {
			answer["next_cursor"] = strconv.Itoa(from + len(page))
		}
		json.NewEncoder(w).Encode(answer)
	}))
	t.Cleanup(srv.Close)
	return srv.URL, requests
}

func tokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "api-token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func emptyFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// A list follows the API's pages up to -limit, says when more match, and
// prints a title's control characters escaped (an escape sequence in an
// alert's name must not drive the terminal).
func TestIncidentsListFollowsPages(t *testing.T) {
	defer func(n int) { incidentsPage = n }(incidentsPage)
	incidentsPage = 2
	token := "cli-test-token-0123456789abcdef"
	url, requests := fakeIncidentsAPI(t, token, 5)
	var out, errOut bytes.Buffer
	err := incidentsMain(context.Background(), []string{"list", "-limit", "4", "-url", url, "-set", "correlator.api.token_file=" + tokenFile(t, token)}, &out, &errOut)
	if err != nil {
		t.Fatalf("list: %v (%s)", err, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "ID") || !strings.HasPrefix(lines[1], "inc-0") || !strings.HasPrefix(lines[4], "inc-3") || *requests != 2 {
		t.Fatalf("list in %d requests:\n%s\nwant a header and inc-0 to inc-3 in two pages", *requests, out.String())
	}
	if strings.Contains(out.String(), "\x1b") || !strings.Contains(out.String(), `Failing\x1b[2J on svc-0`) {
		t.Errorf("a title's escape sequence was printed as it is:\n%q", out.String())
	}
	if !strings.Contains(errOut.String(), "4 shown, more match") {
		t.Errorf("stderr %q: want it to say more match", errOut.String())
	}

	out.Reset()
	errOut.Reset()
	if err := incidentsMain(context.Background(), []string{"list", "-json", "-url", url, "-set", "correlator.api.token_file=" + tokenFile(t, token)}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	var all struct {
		Incidents []correlate.State
		Truncated bool
	}
	if err := json.Unmarshal(out.Bytes(), &all); err != nil || len(all.Incidents) != 5 || all.Truncated || errOut.Len() != 0 {
		t.Fatalf("list -json: %v\n%s\n%s; want all 5 incidents, not truncated", err, out.String(), errOut.String())
	}
}

// What the API refuses is told in the API's words; what keeps the command
// from reaching it (no token, no API, a bad flag) names what to do.
func TestIncidentsErrorsNameTheProblem(t *testing.T) {
	token := "cli-test-token-0123456789abcdef"
	url, _ := fakeIncidentsAPI(t, token, 1)
	dir := t.TempDir()
	for name, tc := range map[string]struct {
		args []string
		want string
	}{
		"wrong token":      {[]string{"list", "-url", url, "-set", "correlator.api.token_file=" + tokenFile(t, "another-token-0123456789abcdef")}, "401 Unauthorized: missing or wrong bearer token"},
		"unknown incident": {[]string{"show", "nope", "-url", url, "-set", "correlator.api.token_file=" + tokenFile(t, token)}, `404 Not Found: no incident "nope"`},
		"no generated token yet": {[]string{"list", "-set", "correlator.api.generate_token_file=" + dir + "/api-token"},
			"no API token in " + dir + "/api-token: aiops run makes it at its first start"},
		"no API": {[]string{"list", "-url", "http://" + testenv.FreeAddr(t), "-set", "correlator.api.token_file=" + tokenFile(t, token)}, "no incidents API at http://"},
		// Read as every secret file is: bounded, an empty one refused.
		"token file too large": {[]string{"list", "-url", url, "-set", "correlator.api.token_file=" + tokenFile(t, strings.Repeat("t", 70<<10))}, "larger than 65536 bytes"},
		"token file empty":     {[]string{"list", "-url", url, "-set", "correlator.api.generate_token_file=" + emptyFile(t)}, "is empty"},
		"id missing":           {[]string{"ack", "-by", "ana"}, "the incident id comes first"},
		"by missing":           {[]string{"ack", "inc-0", "-url", url}, "-by is required"},
		"unknown action":       {[]string{"delete", "inc-0"}, `unknown action "delete"`},
		"bad url":              {[]string{"list", "-url", "127.0.0.1:8081", "-set", "correlator.api.token_file=" + tokenFile(t, token)}, "want http://host:port"},
		"flag of another":      {[]string{"show", "inc-0", "-limit", "3"}, "flag provided but not defined: -limit"},
	} {
		t.Run(name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := incidentsMain(context.Background(), tc.args, &out, &errOut)
			if err == nil || !strings.Contains(err.Error()+errOut.String(), tc.want) {
				t.Fatalf("aiops incidents %s: %v (%s); want an error saying %q", strings.Join(tc.args, " "), err, errOut.String(), tc.want)
			}
		})
	}
}

// show prints what others wrote (titles, comments) with every character
// that would drive the terminal or reorder the line escaped, and a
// password in -url never appears in a message.
func TestIncidentsShowEscapesWhatOthersWrote(t *testing.T) {
	token := "cli-test-token-0123456789abcdef"
	url, _ := fakeIncidentsAPI(t, token, 1)
	var out, errOut bytes.Buffer
	if err := incidentsMain(context.Background(), []string{"show", "hostile", "-url", url, "-set", "correlator.api.token_file=" + tokenFile(t, token)}, &out, &errOut); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"\x1b", "\x07", "\r", "\u202e"} {
		if strings.Contains(out.String(), raw) {
			t.Errorf("show printed %q as it is:\n%q", raw, out.String())
		}
	}
	for _, want := range []string{`a\u202egnp.exe`, `comment by mallory\x1b[2J`, `  ok\x1b]0;pwned\a\rhidden`, "  second line"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("show lacks %q:\n%s", want, out.String())
		}
	}
	err := incidentsMain(context.Background(), []string{"list", "-url", "http://ana:s3cret@" + testenv.FreeAddr(t), "-set", "correlator.api.token_file=" + tokenFile(t, token)}, &out, &errOut)
	if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.Contains(err.Error(), "ana:xxxxx@") {
		t.Errorf("an unreachable -url with a password: %v", err)
	}
}

// A command goes under an Idempotency-Key of its own: answered "not
// stored yet" (503), it is sent again under the same key, which the API
// applies once, instead of the person running it again, which would
// apply it twice; given up after a few tries, it says so.
func TestIncidentsCommandSentAgainUnderItsKey(t *testing.T) {
	const token = "0123456789abcdef0123"
	var keys []string
	unstored := 2
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/v1/incidents/inc-1/ack" || r.Header.Get("Authorization") != "Bearer "+token {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		keys = append(keys, r.Header.Get("Idempotency-Key"))
		if len(keys) <= unstored {
			w.Header().Set("Retry-After", "0")
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"error": "correlator: the command is applied but not stored yet"})
			return
		}
		json.NewEncoder(w).Encode(correlate.State{IncidentID: "inc-1", State: "acknowledged", Title: "DBDown on db", Services: []string{"db"}})
	}))
	t.Cleanup(srv.Close)
	args := []string{"ack", "inc-1", "-by", "ana", "-url", srv.URL, "-set", "correlator.api.token_file=" + tokenFile(t, token)}
	var out, errOut bytes.Buffer
	if err := incidentsMain(context.Background(), args, &out, &errOut); err != nil {
		t.Fatalf("ack: %v\n%s", err, errOut.String())
	}
	if len(keys) != 3 || keys[0] == "" || keys[1] != keys[0] || keys[2] != keys[0] {
		t.Fatalf("Idempotency-Keys sent %q, want one key, three times", keys)
	}
	if !strings.Contains(out.String(), "acknowledged") || strings.Count(errOut.String(), "sending it again") != 2 {
		t.Fatalf("stdout %q stderr %q: want the state, and two notes of sending it again", out.String(), errOut.String())
	}

	// A new command is a new key; one never stored is given up, saying so.
	first := keys[0]
	keys, unstored = nil, 100
	out.Reset()
	errOut.Reset()
	err := incidentsMain(context.Background(), args, &out, &errOut)
	if err == nil || !strings.Contains(err.Error(), "not stored yet") || len(keys) != commandTries {
		t.Fatalf("never stored: %v after %d sends, want the 503 told after %d", err, len(keys), commandTries)
	}
	if keys[0] == first || keys[len(keys)-1] != keys[0] {
		t.Fatalf("the second command's keys %q, the first's %q: want one key of its own", keys, first)
	}
}
