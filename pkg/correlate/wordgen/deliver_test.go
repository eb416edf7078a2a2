package wordgen

import (
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// sentNote is one notification, reduced to what these tests look at.
type sentNote struct {
	at     time.Duration // after the storm's start, to the flush
	group  string
	alerts []string // alertname:status
}

func deliverOf(t *testing.T, cfg Config, add func(g *gen)) []sentNote {
	t.Helper()
	g := &gen{cfg: cfg, r: rand.New(rand.NewPCG(1, 1)), est: newEstate(), end: cfg.Start.Add(cfg.Duration), byFP: map[string]*alert{}}
	add(g)
	var out []sentNote
	for _, s := range g.deliver() {
		var l struct {
			Payload webhook `json:"payload"`
		}
		if err := json.Unmarshal(s.data, &l); err != nil {
			t.Fatal(err)
		}
		// Flushes fall on whole half minutes here; the send takes up to
		// 1.5s.
		n := sentNote{at: s.at.Sub(cfg.Start).Truncate(30 * time.Second), group: l.Payload.GroupLabels["alertname"]}
		for _, a := range l.Payload.Alerts {
			n.alerts = append(n.alerts, a.Labels["alertname"]+"/"+a.Labels["severity"]+":"+a.Status)
		}
		slices.Sort(n.alerts)
		out = append(out, n)
	}
	return out
}

func minutes(m float64) time.Duration { return time.Duration(m * float64(time.Minute)) }

// TestDeliveryFollowsAlertmanager pins the model of Alertmanager's
// dispatcher on small cases: group_wait, group_interval batching, resolved
// notifications, an alert that fired and resolved between two flushes,
// a group that resolved before its first flush, repeat_interval and the
// critical-mutes-warning inhibition.
func TestDeliveryFollowsAlertmanager(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duration = 2 * time.Hour
	cfg.RepeatInterval = time.Hour
	at := func(m float64) time.Time { return cfg.Start.Add(minutes(m)) }
	fire := func(g *gen, name, severity string, eps ...episode) {
		g.add("x", map[string]string{"alertname": name, "severity": severity, "namespace": "playback", "service": "playback-api"}, map[string]string{"summary": name}, eps...)
	}
	got := deliverOf(t, cfg, func(g *gen) {
		// Two alerts of one group, the second arriving after the first
		// flush.
		fire(g, "A", "warning", episode{at(1), at(13)})
		g.add("x", map[string]string{"alertname": "A", "severity": "warning", "namespace": "playback", "pod": "b"}, map[string]string{"summary": "A"}, episode{at(2), at(13)})
		fire(g, "Quick", "warning", episode{at(30), at(30.2)}) // resolved before group_wait ran out
		fire(g, "Long", "warning", episode{at(40), at(200)})   // repeats every hour
		fire(g, "Long", "critical", episode{at(44), at(60)})   // mutes the warning while it fires
		fire(g, "Blip", "warning", episode{at(41), at(200)})
		fire(g, "Blip", "critical", episode{at(47), at(49)}) // between flushes at 46.5 and 51.5
	})
	want := []sentNote{
		{minutes(1.5), "A", []string{"A/warning:firing"}},
		{minutes(6.5), "A", []string{"A/warning:firing", "A/warning:firing"}},
		{minutes(16.5), "A", []string{"A/warning:resolved", "A/warning:resolved"}},
		{minutes(40.5), "Long", []string{"Long/warning:firing"}},
		{minutes(41.5), "Blip", []string{"Blip/warning:firing"}},
		{minutes(45.5), "Long", []string{"Long/critical:firing"}}, // the warning is muted
		{minutes(51.5), "Blip", []string{"Blip/critical:resolved", "Blip/warning:firing"}},
		{minutes(60.5), "Long", []string{"Long/critical:resolved", "Long/warning:firing"}},
		{minutes(111.5), "Blip", []string{"Blip/warning:firing"}}, // repeat_interval after 51.5
		// Long's repeat would be at 120.5, after the storm.
	}
	slices.SortStableFunc(got, func(a, b sentNote) int { return int(a.at - b.at) })
	if len(got) != len(want) {
		t.Fatalf("%d notifications:\n%v\nwant %d:\n%v", len(got), got, len(want), want)
	}
	for i := range want {
		if got[i].at != want[i].at || got[i].group != want[i].group || strings.Join(got[i].alerts, ",") != strings.Join(want[i].alerts, ",") {
			t.Errorf("notification %d: %v, want %v", i+1, got[i], want[i])
		}
	}
}

// TestNotificationsBeforeTheStormAreHistory checks that an alert firing
// since before the storm shows up at Alertmanager's next repeat, not
// before the storm starts.
func TestNotificationsBeforeTheStormAreHistory(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Duration = 3 * time.Hour
	cfg.RepeatInterval = 4 * time.Hour
	got := deliverOf(t, cfg, func(g *gen) {
		g.add("x", map[string]string{"alertname": "Old", "severity": "warning", "namespace": "data"}, map[string]string{"summary": "old"},
			episode{cfg.Start.Add(-2 * time.Hour), cfg.Start.Add(10 * time.Hour)})
	})
	if len(got) != 1 || got[0].at != 2*time.Hour+30*time.Second {
		t.Fatalf("notifications %v, want one repeat at 2h0m30s (4h after the first, 2h before the storm)", got)
	}
}

func TestDeliveryWithoutInhibition(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Inhibit = false
	at := func(m float64) time.Time { return cfg.Start.Add(minutes(m)) }
	got := deliverOf(t, cfg, func(g *gen) {
		for _, sev := range []string{"warning", "critical"} {
			g.add("x", map[string]string{"alertname": "Long", "severity": sev, "namespace": "playback"}, map[string]string{"summary": "x"}, episode{at(40), at(44)})
		}
	})
	if len(got) != 2 || strings.Join(got[0].alerts, ",") != "Long/critical:firing,Long/warning:firing" {
		t.Fatalf("notifications %v, want both alerts firing then both resolved", got)
	}
}
