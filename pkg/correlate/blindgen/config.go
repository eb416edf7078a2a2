package blindgen

import "time"

// Route is the timing of one Alertmanager route.
type Route struct {
	GroupWait, GroupInterval, RepeatInterval time.Duration
}

// Mix weighs the planned incident kinds against each other.
type Mix struct {
	Cascade  float64 // a data store, queue, provider or service fails; dependents follow
	Deploy   float64 // a deploy or config change breaks a service (a change line first)
	Local    float64 // one service in trouble on its own, several alerts, no spread
	Flapping float64 // one or two alerts oscillating around a threshold for an hour or more
	Capacity float64 // slow burn: disk filling, peak-hour saturation, warnings hours before the outage
	Infra    float64 // shared infrastructure (DNS, service mesh, a node) hitting unrelated services
}

// Config shapes a storm. DefaultConfig is the calibrated one.
type Config struct {
	// Start and Duration bound the storm: notifications are emitted from
	// Start on; alerts may have started firing before it.
	Start    time.Time
	Duration time.Duration
	// Incidents is the mean number of planned incidents (noise excluded).
	Incidents int
	Mix       Mix
	// Bursts is how many times two or three independent incidents start
	// within BurstWithin of each other.
	Bursts      int
	BurstWithin time.Duration
	// CertExpiry is the chance of a certificate expiring during the storm,
	// after days of ignored renewal warnings.
	CertExpiry float64
	// SecondWave is the chance that a cascade or a deploy incident comes
	// back after it resolved (the fix did not hold).
	SecondWave float64
	// NoiseAlerts is the mean number of unrelated alerts, each its own
	// incident; Changes the number of harmless deploys and config changes.
	NoiseAlerts int
	Changes     int
	// HotServices services, drawn per storm, are HotWeight times as likely
	// as the others to be the root of a cascade, to be deployed and broken
	// by a deploy, and to raise a noise alert: trouble is not spread evenly.
	HotServices int
	HotWeight   float64
	// DropOptional is the chance of leaving out each optional part of the
	// catalog, so catalogs differ between seeds.
	DropOptional float64
	// Critical and Warning are the Alertmanager routes of the two
	// severities (info and none go the warning way). Both group by
	// alertname, cluster and service.
	Critical, Warning Route
}

// DefaultStart is the default storm's start: a Tuesday, midnight UTC.
var DefaultStart = time.Date(2025, 3, 11, 0, 0, 0, 0, time.UTC)

// DefaultConfig is a day of production.
func DefaultConfig() Config {
	return Config{
		Start:     DefaultStart,
		Duration:  24 * time.Hour,
		Incidents: 22,
		Mix: Mix{
			Cascade:  0.28,
			Deploy:   0.24,
			Local:    0.14,
			Flapping: 0.10,
			Capacity: 0.12,
			Infra:    0.12,
		},
		Bursts:       2,
		BurstWithin:  6 * time.Minute,
		CertExpiry:   0.4,
		SecondWave:   0.2,
		NoiseAlerts:  45,
		Changes:      40,
		HotServices:  6,
		HotWeight:    5,
		DropOptional: 0.4,
		Critical:     Route{GroupWait: 30 * time.Second, GroupInterval: 5 * time.Minute, RepeatInterval: 4 * time.Hour},
		Warning:      Route{GroupWait: time.Minute, GroupInterval: 5 * time.Minute, RepeatInterval: 12 * time.Hour},
	}
}
