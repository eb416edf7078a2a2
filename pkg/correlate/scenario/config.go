package scenario

import (
	"fmt"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
)

// ErrInvalidConfig is wrapped by every Validate error.
var ErrInvalidConfig = fmt.Errorf("scenario: %w", config.ErrInvalidConfig)

// Config shapes a generated storm. DefaultConfig is a realistic busy
// afternoon; every field must be set (Generate does not fill zeros in,
// since 0 is a meaningful count for the noise fields).
type Config struct {
	// Start is the first instant of the timeline; lines before it (the
	// background alerts started earlier) are not written.
	Start time.Time `yaml:"start" json:"start"`
	// Duration is the length of the timeline. Default 4h.
	Duration time.Duration `yaml:"duration" json:"duration"`
	// Services in the catalog, MinServices to MaxServices. Default 40.
	Services int `yaml:"services" json:"services"`
	// Incidents is the number of true multi-signal incidents (cascades,
	// deploy-induced and local failures). Default 30.
	Incidents int `yaml:"incidents" json:"incidents"`
	// CascadeShare and DeployShare are the shares of incidents that are
	// cascades from a failing backend or data store, and failures caused by
	// a change; the rest are local failures of one service (its dependents
	// rarely notice). Defaults 0.45 and 0.35.
	CascadeShare float64 `yaml:"cascade_share" json:"cascade_share"`
	DeployShare  float64 `yaml:"deploy_share" json:"deploy_share"`
	// Simultaneous is the number of clusters of 2 or 3 incidents that start
	// within one minute in unrelated parts of the graph (counted in
	// Incidents). One cluster in two is drawn among services of one team.
	// Default 4.
	Simultaneous int `yaml:"simultaneous" json:"simultaneous"`
	// FlapRate is the share of incidents in which one alert flaps
	// (fires and resolves every 1-3 minutes for 8-20 minutes). Default 0.3.
	FlapRate float64 `yaml:"flap_rate" json:"flap_rate"`
	// RefireRate is the share of incidents in which one alert resolves and
	// fires again 3-12 minutes later. Default 0.3.
	RefireRate float64 `yaml:"refire_rate" json:"refire_rate"`
	// AnomalyRate is the chance that an affected service shows detector
	// anomalies (1-4 of them) shortly before its first alert. Default 0.5.
	AnomalyRate float64 `yaml:"anomaly_rate" json:"anomaly_rate"`
	// NoiseAlerts are isolated alerts on random services at random times,
	// each a true incident of its own; a tenth of them flap. Default 45.
	NoiseAlerts int `yaml:"noise_alerts" json:"noise_alerts"`
	// NoiseAnomalies are isolated detector blips (1-3 anomaly events of
	// one series), each a true incident of its own. Default 30.
	NoiseAnomalies int `yaml:"noise_anomalies" json:"noise_anomalies"`
	// BackgroundAlerts fire from before Start to the end (an expiring
	// certificate, a disk slowly filling): singletons repeated all along.
	// Default 4.
	BackgroundAlerts int `yaml:"background_alerts" json:"background_alerts"`
	// BenignChanges are changes that cause nothing. Default 30.
	BenignChanges int `yaml:"benign_changes" json:"benign_changes"`
	// GroupWait and GroupInterval are Alertmanager's route timers: a new
	// group waits GroupWait before its first notification, and a group is
	// looked at again every GroupInterval. Defaults 30s and 1m.
	GroupWait     time.Duration `yaml:"group_wait" json:"group_wait"`
	GroupInterval time.Duration `yaml:"group_interval" json:"group_interval"`
	// RepeatMin and RepeatMax bound each route's repeat interval (drawn per
	// team, in whole GroupIntervals): a group whose alerts keep firing
	// unchanged is notified again that often. Defaults 1m and 5m.
	RepeatMin time.Duration `yaml:"repeat_min" json:"repeat_min"`
	RepeatMax time.Duration `yaml:"repeat_max" json:"repeat_max"`
}

// DefaultStart is the default Config.Start: a Monday afternoon.
var DefaultStart = time.Date(2026, 3, 2, 13, 0, 0, 0, time.UTC)

// DefaultConfig is a four-hour storm over 40 services: 30 incidents (4
// clusters of simultaneous ones), 45 noise alerts, 30 noise anomalies, 4
// background alerts and 30 benign changes.
func DefaultConfig() Config {
	return Config{
		Start:            DefaultStart,
		Duration:         4 * time.Hour,
		Services:         40,
		Incidents:        30,
		CascadeShare:     0.45,
		DeployShare:      0.35,
		Simultaneous:     4,
		FlapRate:         0.3,
		RefireRate:       0.3,
		AnomalyRate:      0.5,
		NoiseAlerts:      45,
		NoiseAnomalies:   30,
		BackgroundAlerts: 4,
		BenignChanges:    30,
		GroupWait:        30 * time.Second,
		GroupInterval:    time.Minute,
		RepeatMin:        time.Minute,
		RepeatMax:        5 * time.Minute,
	}
}

// Validate reports the first problem with c; every error wraps
// ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(field, format string, args ...any) error {
		return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
	}
	share := func(field string, v float64) error {
		if !(v >= 0 && v <= 1) {
			return bad(field, "is %g, want a share in [0,1]", v)
		}
		return nil
	}
	switch {
	case c.Start.IsZero():
		return bad("start", "is required")
	case c.Start.Year() < 1971 || c.Start.Year() > 2100:
		return bad("start", "is %s, want a year in 1971..2100", c.Start.Format(time.RFC3339))
	case c.Duration < time.Hour || c.Duration > 7*24*time.Hour:
		return bad("duration", "is %v, want 1h to 168h", c.Duration)
	case c.Services < MinServices || c.Services > MaxServices:
		return bad("services", "is %d, want %d to %d", c.Services, MinServices, MaxServices)
	case c.Incidents < 0 || c.Incidents > 1000:
		return bad("incidents", "is %d, want 0 to 1000", c.Incidents)
	case c.Simultaneous < 0 || 3*c.Simultaneous > c.Incidents:
		return bad("simultaneous", "is %d, want 0 to incidents/3 (%d)", c.Simultaneous, c.Incidents/3)
	case c.NoiseAlerts < 0 || c.NoiseAlerts > 10000:
		return bad("noise_alerts", "is %d, want 0 to 10000", c.NoiseAlerts)
	case c.NoiseAnomalies < 0 || c.NoiseAnomalies > 10000:
		return bad("noise_anomalies", "is %d, want 0 to 10000", c.NoiseAnomalies)
	case c.BackgroundAlerts < 0 || c.BackgroundAlerts > 100:
		return bad("background_alerts", "is %d, want 0 to 100", c.BackgroundAlerts)
	case c.BenignChanges < 0 || c.BenignChanges > 10000:
		return bad("benign_changes", "is %d, want 0 to 10000", c.BenignChanges)
	case c.GroupWait < 0 || c.GroupWait > 10*time.Minute:
		return bad("group_wait", "is %v, want 0 to 10m", c.GroupWait)
	case c.GroupInterval < 10*time.Second || c.GroupInterval > 30*time.Minute:
		return bad("group_interval", "is %v, want 10s to 30m", c.GroupInterval)
	case c.RepeatMin < c.GroupInterval:
		return bad("repeat_min", "is %v, want at least group_interval (%v)", c.RepeatMin, c.GroupInterval)
	case c.RepeatMax < c.RepeatMin || c.RepeatMax > 24*time.Hour:
		return bad("repeat_max", "is %v, want repeat_min (%v) to 24h", c.RepeatMax, c.RepeatMin)
	case c.CascadeShare+c.DeployShare > 1:
		return bad("cascade_share", "plus deploy_share is %g, over 1", c.CascadeShare+c.DeployShare)
	}
	for _, s := range []struct {
		field string
		v     float64
	}{
		{"cascade_share", c.CascadeShare}, {"deploy_share", c.DeployShare},
		{"flap_rate", c.FlapRate}, {"refire_rate", c.RefireRate}, {"anomaly_rate", c.AnomalyRate},
	} {
		if err := share(s.field, s.v); err != nil {
			return err
		}
	}
	return nil
}
