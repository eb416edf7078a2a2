package amconfig

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

// TestTimeIntervalsAgainstAlertmanager starts the real Alertmanager with
// routes whose mute and active time intervals are generated around the
// current time (weekdays, times, days of the month counted from either
// end, months, years, locations), posts one alert per route and requires
// that Alertmanager notifies (a webhook on 127.0.0.1) exactly the routes
// Config.Muted says are not muted now.
func TestTimeIntervalsAgainstAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an Alertmanager server")
	}

	var mu sync.Mutex
	notified := map[string]bool{}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		mu.Lock()
		notified[strings.TrimPrefix(r.URL.Path, "/")] = true
		mu.Unlock()
	})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })

	const routes = 60
	now := time.Now()
	rng := rand.New(rand.NewPCG(uint64(now.UnixNano()), 3))
	var y strings.Builder
	fmt.Fprintf(&y, "route:\n  receiver: none\n  group_wait: 0s\n  routes:\n")
	for i := 0; i < routes; i++ {
		kind := "mute_time_intervals"
		if rng.IntN(2) == 0 {
			kind = "active_time_intervals"
		}
		fmt.Fprintf(&y, "  - matchers: ['case=\"%d\"']\n    receiver: r%d\n    %s: [i%d]\n", i, i, kind, i)
	}
	fmt.Fprintf(&y, "receivers:\n- name: none\n")
	for i := 0; i < routes; i++ {
		fmt.Fprintf(&y, "- name: r%d\n  webhook_configs: [{url: 'http://%s/%d'}]\n", i, l.Addr(), i)
	}
	fmt.Fprintf(&y, "time_intervals:\n")
	for i := 0; i < routes; i++ {
		fmt.Fprintf(&y, "- name: i%d\n  time_intervals:\n", i)
		for n := 1 + rng.IntN(2); n > 0; n-- {
			fmt.Fprintf(&y, "  - %s\n", randomInterval(rng, now))
		}
	}
	cfgPath := filepath.Join(t.TempDir(), "am.yml")
	if err := os.WriteFile(cfgPath, []byte(y.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := Load(cfgPath)
	if err != nil {
		t.Fatalf("%v\n%s", err, y.String())
	}

	addr := testenv.Alertmanager(t, cfgPath)
	before := time.Now()
	var body bytes.Buffer
	body.WriteString("[")
	for i := 0; i < routes; i++ {
		if i > 0 {
			body.WriteString(",")
		}
		fmt.Fprintf(&body, `{"labels":{"alertname":"T","case":"%d"}}`, i)
	}
	body.WriteString("]")
	resp, err := http.Post("http://"+addr+"/api/v2/alerts", "application/json", &body)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("posting alerts: %s", resp.Status)
	}

	// Alertmanager notifies at once (group_wait 0s); wait until every
	// route that should be notified is, and a little more for the others.
	want := map[string]bool{}
	for i, r := range cfg.Route.Routes {
		muted, err := cfg.Muted(r, before)
		if err != nil {
			t.Fatal(err)
		}
		want[fmt.Sprint(i)] = !muted
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		mu.Lock()
		all := true
		for k, w := range want {
			if w && !notified[k] {
				all = false
			}
		}
		mu.Unlock()
		if all {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	after := time.Now()

	mu.Lock()
	defer mu.Unlock()
	compared, active := 0, 0
	for i, r := range cfg.Route.Routes {
		key := fmt.Sprint(i)
		// A boundary crossed while the test ran makes the case moot.
		m1, _ := cfg.Muted(r, before)
		m2, _ := cfg.Muted(r, after)
		if m1 != m2 {
			continue
		}
		compared++
		if !m1 {
			active++
		}
		if notified[key] != !m1 {
			ti, _ := cfg.TimeInterval(fmt.Sprintf("i%d", i))
			t.Errorf("route %d (%s %v) at %s: Alertmanager notified=%v, amconfig muted=%v", i, r.Path, ti.TimeIntervals, before.UTC(), notified[key], m1)
		}
	}
	if compared < routes*9/10 || active == 0 || active == compared {
		t.Fatalf("compared %d of %d routes, %d not muted: not a useful comparison", compared, routes, active)
	}
	t.Logf("%d routes with generated time intervals at %s: Alertmanager notified exactly the %d that amconfig does not mute", compared, before.UTC().Format(time.RFC3339), active)
}

// randomInterval writes a time interval in flow style whose fields are
// each drawn to contain now or not, in a random location.
func randomInterval(rng *rand.Rand, now time.Time) string {
	locs := []string{"", "UTC", "Europe/Berlin", "Asia/Tokyo", "America/New_York", "Australia/Lord_Howe"}
	name := locs[rng.IntN(len(locs))]
	loc := time.UTC
	if name != "" {
		loc, _ = time.LoadLocation(name)
	}
	t := now.In(loc)
	var fields []string
	if name != "" {
		fields = append(fields, "location: "+name)
	}
	pick := func() bool { return rng.IntN(3) > 0 } // include a field 2 times in 3
	days := daysInMonth(t)
	if pick() {
		minute := t.Hour()*60 + t.Minute()
		var start, end int
		if rng.IntN(2) == 0 { // around now
			start, end = max(0, minute-rng.IntN(120)-5), min(1440, minute+rng.IntN(120)+5)
		} else if minute < 720 { // later today
			start, end = minute+10+rng.IntN(60), 1440
		} else { // earlier today
			start, end = 0, minute-10-rng.IntN(60)
		}
		fields = append(fields, fmt.Sprintf("times: [{start_time: '%02d:%02d', end_time: '%02d:%02d'}]", start/60, start%60, end/60, end%60))
	}
	if pick() {
		wd := int(t.Weekday())
		switch rng.IntN(3) {
		case 0:
			fields = append(fields, fmt.Sprintf("weekdays: [%s]", weekdayName(wd)))
		case 1:
			fields = append(fields, fmt.Sprintf("weekdays: [%s]", weekdayName((wd+1+rng.IntN(6))%7)))
		default:
			fields = append(fields, fmt.Sprintf("weekdays: ['%s:%s']", weekdayName(max(0, wd-rng.IntN(3))), weekdayName(min(6, wd+rng.IntN(3)))))
		}
	}
	if pick() {
		d := t.Day()
		switch rng.IntN(4) {
		case 0:
			fields = append(fields, fmt.Sprintf("days_of_month: ['%d']", d))
		case 1: // the same day counted from the end (as Alertmanager counts the month)
			fields = append(fields, fmt.Sprintf("days_of_month: ['%d']", d-days-1))
		case 2:
			fields = append(fields, fmt.Sprintf("days_of_month: ['%d:%d']", max(-31, d-days-1-rng.IntN(3)), -1))
		default:
			fields = append(fields, fmt.Sprintf("days_of_month: ['%d']", 1+(d+rng.IntN(27))%28))
		}
	}
	if pick() {
		m := int(t.Month())
		if rng.IntN(2) == 0 {
			fields = append(fields, fmt.Sprintf("months: ['%s']", monthName(m)))
		} else {
			fields = append(fields, fmt.Sprintf("months: ['%d']", 1+(m+rng.IntN(11))%12))
		}
	}
	if pick() {
		if y := t.Year(); rng.IntN(2) == 0 {
			fields = append(fields, fmt.Sprintf("years: ['%d:%d']", y-rng.IntN(2), y+rng.IntN(2)))
		} else {
			fields = append(fields, fmt.Sprintf("years: ['%d:%d']", y+1, y+1+rng.IntN(2)))
		}
	}
	return "{" + strings.Join(fields, ", ") + "}"
}

func weekdayName(d int) string {
	for n, v := range weekdays {
		if v == d {
			return n
		}
	}
	return ""
}
