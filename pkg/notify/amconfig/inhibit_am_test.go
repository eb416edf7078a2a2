package amconfig

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/testenv"
)

// TestInhibitionAgainstAlertmanager starts the real Alertmanager (Debian's
// prometheus-alertmanager, on 127.0.0.1) with testdata/inhibit.yml, posts
// generated alerts and requires Config.Inhibited to agree with the
// inhibitedBy status Alertmanager's API reports for every one of them.
func TestInhibitionAgainstAlertmanager(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an Alertmanager server")
	}
	cfgPath := filepath.Join("testdata", "inhibit.yml")
	cfg, err := Load(cfgPath)
	if err != nil {
		t.Fatal(err)
	}

	// Scenarios: a few alerts each, told apart by the case label.
	values := map[string][]string{
		"alertname": {"Disk", "CPU", "ClusterDown", "NodeDown"},
		"severity":  {"critical", "warning", "info", absent},
		"cluster":   {"a", "b", absent},
		"service":   {"x", "y", absent},
		"env":       {"prod", "dev", absent},
	}
	rng := rand.New(rand.NewPCG(7, 11))
	var scenarios [][]map[string]string
	for c := 0; c < 150; c++ {
		n := 2 + rng.IntN(4)
		var alerts []map[string]string
		for i := 0; i < n; i++ {
			ls := map[string]string{"case": strconv.Itoa(c), "n": strconv.Itoa(i)}
			for _, name := range slices.Sorted(maps.Keys(values)) { // one order: the same alerts every run
				vs := values[name]
				if v := vs[rng.IntN(len(vs))]; v != absent {
					ls[name] = v
				}
			}
			alerts = append(alerts, ls)
		}
		scenarios = append(scenarios, alerts)
	}
	want := map[string]bool{} // by case/n
	var all []map[string]string
	inhibited := 0
	for _, alerts := range scenarios {
		for _, a := range alerts {
			w := cfg.Inhibited(a, alerts)
			want[a["case"]+"/"+a["n"]] = w
			if w {
				inhibited++
			}
			all = append(all, a)
		}
	}
	if inhibited < len(all)/10 || inhibited > len(all)*9/10 {
		t.Fatalf("the scenarios inhibit %d of %d alerts: too few cases of one kind", inhibited, len(all))
	}

	addr := testenv.Alertmanager(t, cfgPath)
	client := &http.Client{Timeout: 5 * time.Second}
	type postable struct {
		Labels map[string]string `json:"labels"`
	}
	body := make([]postable, len(all))
	for i, a := range all {
		body[i] = postable{Labels: a}
	}
	js, _ := json.Marshal(body)
	resp, err := client.Post("http://"+addr+"/api/v2/alerts", "application/json", bytes.NewReader(js))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("posting alerts: %s", resp.Status)
	}

	// The inhibitor learns of new alerts asynchronously: ask until the
	// answers agree or 15s have passed.
	var mismatches []string
	deadline := time.Now().Add(15 * time.Second)
	for {
		got, err := inhibitedStatus(client, addr)
		if err != nil {
			t.Fatal(err)
		}
		mismatches = mismatches[:0]
		for key, w := range want {
			g, ok := got[key]
			if !ok || g != w {
				mismatches = append(mismatches, fmt.Sprintf("%s: Alertmanager inhibited=%v (seen %v), amconfig %v", key, g, ok, w))
			}
		}
		if len(mismatches) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	for i, m := range mismatches {
		if i == 10 {
			break
		}
		t.Error(m)
	}
	if len(mismatches) > 0 {
		t.Fatalf("%d of %d alerts judged differently from Alertmanager", len(mismatches), len(all))
	}
	t.Logf("%d scenarios, %d alerts (%d inhibited): Alertmanager agrees on every one", len(scenarios), len(all), inhibited)
}

func inhibitedStatus(client *http.Client, addr string) (map[string]bool, error) {
	resp, err := client.Get("http://" + addr + "/api/v2/alerts")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var alerts []struct {
		Labels map[string]string `json:"labels"`
		Status struct {
			InhibitedBy []string `json:"inhibitedBy"`
		} `json:"status"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&alerts); err != nil {
		return nil, err
	}
	got := map[string]bool{}
	for _, a := range alerts {
		got[a.Labels["case"]+"/"+a.Labels["n"]] = len(a.Status.InhibitedBy) > 0
	}
	return got, nil
}
