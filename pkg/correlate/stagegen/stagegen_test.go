package stagegen

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/correlate/eval"
	"github.com/aiops-dev/aiops/pkg/event"
	"gopkg.in/yaml.v3"
)

func TestDeterministic(t *testing.T) {
	for _, seed := range []uint64{1, 7, 23} {
		a, b := Generate(seed, DefaultConfig()), Generate(seed, DefaultConfig())
		if len(a.Lines) != len(b.Lines) || !bytes.Equal(a.Catalog, b.Catalog) || a.Incidents != b.Incidents || len(a.Truth) != len(b.Truth) {
			t.Fatalf("seed %d: two runs differ in size", seed)
		}
		for i := range a.Lines {
			if !bytes.Equal(a.Lines[i], b.Lines[i]) {
				t.Fatalf("seed %d: line %d differs:\n%s\n%s", seed, i, a.Lines[i], b.Lines[i])
			}
		}
		for k, v := range a.Truth {
			if b.Truth[k] != v {
				t.Fatalf("seed %d: truth of %s differs", seed, k)
			}
		}
	}
	if a, b := Generate(1, DefaultConfig()), Generate(2, DefaultConfig()); bytes.Equal(bytes.Join(a.Lines, nil), bytes.Join(b.Lines, nil)) {
		t.Fatal("seeds 1 and 2 gave the same storm")
	}
}

// replayLine is the replay format as services/aiops reads it.
type replayLine struct {
	Type    string          `json:"type"`
	Time    time.Time       `json:"time"`
	Payload json.RawMessage `json:"payload"`
	Change  *struct {
		Service string `json:"service"`
		Kind    string `json:"kind"`
		Version string `json:"version"`
		Author  string `json:"author"`
		Commit  string `json:"commit"`
		URL     string `json:"url"`
	} `json:"change"`
	Event json.RawMessage `json:"event"`
}

type payload struct {
	Version           string            `json:"version"`
	GroupKey          string            `json:"groupKey"`
	Status            string            `json:"status"`
	Receiver          string            `json:"receiver"`
	GroupLabels       map[string]string `json:"groupLabels"`
	CommonLabels      map[string]string `json:"commonLabels"`
	CommonAnnotations map[string]string `json:"commonAnnotations"`
	ExternalURL       string            `json:"externalURL"`
	Alerts            []struct {
		Status       string            `json:"status"`
		Labels       map[string]string `json:"labels"`
		Annotations  map[string]string `json:"annotations"`
		StartsAt     time.Time         `json:"startsAt"`
		EndsAt       time.Time         `json:"endsAt"`
		GeneratorURL string            `json:"generatorURL"`
		Fingerprint  string            `json:"fingerprint"`
	} `json:"alerts"`
}

func TestLinesWellFormed(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		s := Generate(seed, DefaultConfig())
		seen := map[string]bool{}
		var last time.Time
		kinds := map[string]int{}
		for i, raw := range s.Lines {
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			var l replayLine
			if err := dec.Decode(&l); err != nil {
				t.Fatalf("seed %d line %d: %v: %s", seed, i, err, raw)
			}
			if l.Time.IsZero() {
				t.Fatalf("seed %d line %d has no time", seed, i)
			}
			if l.Time.Before(last) {
				t.Fatalf("seed %d line %d goes back in time: %s after %s", seed, i, l.Time, last)
			}
			last = l.Time
			kinds[l.Type]++
			switch l.Type {
			case "alertmanager":
				var p payload
				if err := json.Unmarshal(l.Payload, &p); err != nil {
					t.Fatalf("seed %d line %d: payload: %v", seed, i, err)
				}
				if p.Version != "4" || p.GroupKey == "" || p.Receiver == "" || len(p.Alerts) == 0 || (p.Status != "firing" && p.Status != "resolved") {
					t.Fatalf("seed %d line %d: not a webhook v4 payload: %s", seed, i, raw)
				}
				for _, a := range p.Alerts {
					if a.Labels["alertname"] == "" || a.StartsAt.IsZero() || a.Fingerprint != event.AlertmanagerFingerprint(a.Labels) {
						t.Fatalf("seed %d line %d: bad alert %+v", seed, i, a)
					}
					switch a.Status {
					case "firing":
						if !a.EndsAt.IsZero() {
							t.Fatalf("seed %d line %d: firing alert with endsAt", seed, i)
						}
					case "resolved":
						if a.EndsAt.Before(a.StartsAt) || a.EndsAt.After(l.Time) {
							t.Fatalf("seed %d line %d: resolved alert ends %s, starts %s, sent %s", seed, i, a.EndsAt, a.StartsAt, l.Time)
						}
					default:
						t.Fatalf("seed %d line %d: status %q", seed, i, a.Status)
					}
					if a.StartsAt.After(l.Time) {
						t.Fatalf("seed %d line %d: alert starts after it is sent", seed, i)
					}
					seen[a.Fingerprint] = true
				}
			case "change":
				c := l.Change
				if c == nil || c.Service == "" || c.Version == "" || c.Author == "" || c.Commit == "" || c.URL == "" {
					t.Fatalf("seed %d line %d: bad change %s", seed, i, raw)
				}
				if !strings.Contains(" deploy config feature_flag infrastructure ", " "+c.Kind+" ") {
					t.Fatalf("seed %d line %d: change kind %q", seed, i, c.Kind)
				}
			case "event":
				e, err := event.Parse(l.Event)
				if err != nil {
					t.Fatalf("seed %d line %d: %v", seed, i, err)
				}
				if err := e.Validate(); err != nil {
					t.Fatalf("seed %d line %d: invalid envelope: %v\n%s", seed, i, err, raw)
				}
				if e.Kind != event.KindAnomaly || !e.ObservedTime.Equal(l.Time) || e.Time.After(l.Time) {
					t.Fatalf("seed %d line %d: unexpected envelope %s", seed, i, raw)
				}
				var b event.AnomalyBody
				if err := e.DecodeBody(&b); err != nil {
					t.Fatal(err)
				}
				if e.Source == "detector" && b.EpisodeID == "" || e.Source == "logminer" && b.Episode != "" {
					t.Fatalf("seed %d line %d: detector events have episodes, bursts not: %s", seed, i, raw)
				}
				if seen[e.ID] {
					t.Fatalf("seed %d line %d: duplicate event id %s", seed, i, e.ID)
				}
				seen[e.ID] = true
			default:
				t.Fatalf("seed %d line %d: type %q", seed, i, l.Type)
			}
		}
		for _, k := range []string{"alertmanager", "change", "event"} {
			if kinds[k] == 0 {
				t.Errorf("seed %d: no %s lines", seed, k)
			}
		}
		for id := range s.Truth {
			if !seen[id] {
				t.Errorf("seed %d: truth item %s is in no line", seed, id)
			}
		}
		incs := map[string]bool{}
		for _, v := range s.Truth {
			incs[v] = true
		}
		if len(incs) != s.Incidents {
			t.Errorf("seed %d: Incidents %d, truth has %d", seed, s.Incidents, len(incs))
		}
		var cat struct {
			Services map[string]struct {
				Owner     string   `yaml:"owner"`
				Team      string   `yaml:"team"`
				Tier      int      `yaml:"tier"`
				Runbook   string   `yaml:"runbook"`
				DependsOn []string `yaml:"depends_on"`
			} `yaml:"services"`
		}
		dec := yaml.NewDecoder(bytes.NewReader(s.Catalog))
		dec.KnownFields(true)
		if err := dec.Decode(&cat); err != nil || len(cat.Services) < 30 {
			t.Fatalf("seed %d: catalog: %v, %d services", seed, err, len(cat.Services))
		}
	}
}

// calibration is the mean F1 of the two baselines over seeds.
func calibration(from, to uint64) (byService, window float64, incidents, items float64) {
	n := float64(to - from + 1)
	for seed := from; seed <= to; seed++ {
		s := Generate(seed, DefaultConfig())
		byService += eval.Pairwise(s.BaselineByService(), s.Truth).F1 / n
		window += eval.Pairwise(s.BaselineTimeWindow(5*time.Minute), s.Truth).F1 / n
		incidents += float64(s.Incidents) / n
		items += float64(len(s.Truth)) / n
	}
	return
}

func TestCalibration(t *testing.T) {
	bs, tw, inc, items := calibration(1, 20)
	t.Logf("seeds 1-20: by service F1 %.3f, 5-minute window F1 %.3f; %.1f incidents, %.1f items", bs, tw, inc, items)
	if bs < 0.09 || bs > 0.20 {
		t.Errorf("by-service baseline F1 %.3f outside 0.09-0.20", bs)
	}
	if tw < 0.63 || tw > 0.73 {
		t.Errorf("5-minute window baseline F1 %.3f outside 0.63-0.73", tw)
	}
	if os.Getenv("STAGEGEN_CALIBRATION") != "" {
		for seed := uint64(1); seed <= 40; seed++ {
			s := Generate(seed, DefaultConfig())
			t.Logf("seed %2d: service %.3f window %.3f incidents %d items %d lines %d", seed,
				eval.Pairwise(s.BaselineByService(), s.Truth).F1, eval.Pairwise(s.BaselineTimeWindow(5*time.Minute), s.Truth).F1,
				s.Incidents, len(s.Truth), len(s.Lines))
		}
		bs, tw, inc, items := calibration(21, 40)
		t.Logf("seeds 21-40: by service F1 %.3f, 5-minute window F1 %.3f; %.1f incidents, %.1f items", bs, tw, inc, items)
	}
}
