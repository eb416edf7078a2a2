// Package correlate turns alerts, anomalies and changes into the few
// incidents a person should look at. It is pure logic on event time: the
// correlator service (services/correlator) feeds it from JetStream and
// `aiops correlate replay` from a file, and both give the same incidents.
//
// How a signal finds its incident:
//
//   - Deduplication: a signal's fingerprint (Alertmanager's, a producer's
//     dedup key, an anomaly's series) names one member; repeats update its
//     count, last time and status, never a new member. An anomaly of a
//     newer episode (the detector's episode_id; without one, a series
//     quiet for QuietPeriod that goes wrong again) is a new member,
//     wherever it then belongs; late events of an episode gone by change
//     nothing.
//   - Topology: a new member joins an incident opened at most
//     SpreadWindow before it (and that fired within GroupWindow, or whose
//     span, opening to last firing, open all along, holds its time) whose
//     root, its most upstream service, is the member's service, a
//     dependency of it (a dependent failing because of it, at most UpDepth
//     hops up) or a dependent of it (the root showing up late, at most
//     DownDepth hops down; the root moves down). Two failures in unrelated
//     parts of the catalog stay two incidents even when they start
//     together, and a new alert long after an incident opened, even on its
//     own services, starts another (in a busy hour, more than
//     BusyOpenings incidents opened, BusySpreadWindow instead of
//     SpreadWindow), unless the failure is still spreading
//     to it (a member joined on a direct dependency of its service within
//     FrontWindow, the incident opened within FrontLimit).
//   - An alert first seen resolved (it resolved within Alertmanager's
//     group_wait, or an inhibition rule muted it while it fired) joins, as
//     a resolved member, what it would have joined at its startsAt; it
//     opens nothing.
//   - Slow alerts (SlowAlerts: rules that wait long before firing, an
//     SLO's slow burn) join, up to SlowAlertWait later than others may,
//     the incident holding a failure of their service that fired until at
//     most SlowAlertWait before them, whatever changed there since.
//   - Signals the catalog cannot place (UnplacedSignals) join what spread
//     to a catalogued service within UnplacedWindow before them, and are
//     adopted by what spreads within UnplacedWindow after.
//   - Evidence: of the incidents a signal may join, the best scoring wins
//     (Correlator.best): its relation to the root, less how long ago the
//     incident last fired, plus PathWeight when the incident already has
//     a member on a direct dependency of the signal's service and
//     LabelWeight when a label of the signal names one of its services.
//   - Merging: when a signal becomes an incident's root, the incidents
//     it could have joined as their late root (opened within SpreadWindow)
//     are merged into it (Correlator.absorb): symptoms that alerted before
//     their cause, also a caller whose signals name the root, or a
//     dependent of it at most DownDepth hops above, by a peer label (its
//     upstream, its circuit: the label is the edge, declared or not).
//     The merged incident's last event is resolved, with
//     State.MergedInto; where it went is remembered for ReopenWindow
//     (Correlator.MergedInto), and commands given to it apply there.
//   - Bursts: failures of what the catalog does not relate still come
//     together. A shared service (no dependencies, no dependents) that
//     alerts amid SharedBurst incidents, StormBurst incidents opened
//     within StormWindow each holding an alert of one name (an alert
//     storm), and LocationBurst incidents opened within LocationWindow in
//     one region, zone or cluster (a location burst) are each one failure:
//     they merge, and the merged incident takes new signals from any
//     service (of that location) within SpreadWindow of its opening.
//   - Changes as evidence: a service changed after an incident opened (at
//     most ChangeWindow before the signal; for a slow alert, before its
//     wait began) no longer joins that incident
//     (a new failure after a deploy is the deploy's, not the running
//     one's), unless the incident has a member on a direct dependency of
//     it (the failure came its way; the change most likely broke nothing).
//   - Resource alerts (LocalAlerts: a service's own CPU, memory, disk)
//     join no incident as a symptom of what their service calls (a shared
//     service included), and an incident of them alone is no symptom of
//     a late root.
//   - Heartbeats (IgnoredAlerts: kube-prometheus's Watchdog) are counted
//     and join nothing.
//   - Advisory alerts (AdvisoryAlerts: forecasts, housekeeping) join no
//     incident rooted on another service but one of advisory alerts
//     alone holding an alert of their name, and an incident of them
//     alone takes nothing else from another service, nor makes or joins
//     a location burst.
//   - Without a catalog entry a service relates only to itself.
//   - Changes to a service or its dependencies within ChangeWindow before
//     an incident opened are linked to it.
//
// Lifecycle: opened; acknowledged (by command); resolved once every member
// resolved (an alert, or an anomaly episode closed) and QuietPeriod passed
// (three QuietPeriods without a signal while an episode's close is
// missing; with AlertExpiry, once nothing of it was heard for that long
// while its alerts fire); reopened instead of a new incident when a
// related signal fires within ReopenWindow of the resolution. A member that
// changes state FlapStart times within FlapWindow is flapping: its changes
// update the incident's members but publish no update, and the incident
// does not resolve, until it calms (fewer than FlapStop changes within the
// window). A resolution by hand holds while an alert still fires or an
// anomaly episode stays open (their repeats are no news); only firing
// again, or a new episode, is.
package correlate

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
)

// ErrInvalidConfig is wrapped by Validate's errors.
var ErrInvalidConfig = fmt.Errorf("correlate: %w", config.ErrInvalidConfig)

// Config tunes the correlator. Zero values take the defaults of
// DefaultConfig, except the evidence weights: there 0 turns the rule off
// and nil (the key left out) takes the default.
type Config struct {
	// GroupWindow is how long after an incident last fired it still takes
	// new members, and the unit of the recency in its score (see
	// Correlator.best). Longer than SpreadWindow, only the recency counts.
	GroupWindow time.Duration `yaml:"group_window"`
	// SpreadWindow is how long after an incident opened a new member may
	// still join (a failure reaches its dependents within minutes); later,
	// only its members' own signals (repeats, resolutions, firing again)
	// update it, and a new alert or series starts another incident, even
	// on one of its services.
	SpreadWindow time.Duration `yaml:"spread_window"`
	// FrontWindow and FrontLimit let a new member join past SpreadWindow
	// while the failure is still spreading: a new member joined the
	// incident on a direct dependency of its service at most FrontWindow
	// before it, and the incident opened at most FrontLimit before it.
	// FrontLimit not longer than SpreadWindow turns this off.
	FrontWindow time.Duration `yaml:"front_window"`
	FrontLimit  time.Duration `yaml:"front_limit"`
	// BusyOpenings and BusySpreadWindow: while more than BusyOpenings
	// incidents opened within the last hour, BusySpreadWindow replaces
	// SpreadWindow (in a busy hour an unrelated failure falls near
	// another more often, so nearness in time counts for less). 0 in
	// BusyOpenings is the default; a BusySpreadWindow equal to
	// SpreadWindow turns it off.
	BusyOpenings     int           `yaml:"busy_openings"`
	BusySpreadWindow time.Duration `yaml:"busy_spread_window"`
	// SharedServices and SharedBurst: a catalogued service that depends
	// on nothing and that nothing depends on (DNS, a service mesh, the
	// cluster's nodes: platform services a catalog seldom lists as
	// anyone's dependency) may be the cause of failures anywhere. When it
	// alerts while at least SharedBurst other incidents opened within
	// StormWindow of its incident, they merge into it (the symptoms came
	// first; over a longer window, unrelated failures and noise gather as
	// often); once its incident spans SharedBurst services, a new alert on
	// any service may join it. Below SharedBurst it is one service
	// among others: a standalone job failing next to two unrelated
	// incidents stays apart. false in SharedServices turns it off; nil
	// and 0 are the defaults.
	SharedServices *bool `yaml:"shared_services"`
	SharedBurst    int   `yaml:"shared_burst"`
	// UndeclaredSiblings: a service the catalog names only in depends_on
	// (it has no entry, so what it calls is unknown) is taken to call
	// what its callers call besides it: a front end named only by the
	// ingress calls the gateway beside it, a service named only by the
	// gateway calls the gateway's other backends. A guess that would
	// close a cycle is left out, and a guess only lets the undeclared
	// service's own signals join as symptoms of what it is guessed to
	// call, never makes it a root above them: most undeclared services
	// are third parties and stores that call nothing. Its guessed calls
	// also count, for its own signals, as the way a failure came to it
	// (path_weight, the change rule's exception, front_window). Declaring
	// the service (`name: {}`) ends the guess for it. false turns it off.
	UndeclaredSiblings *bool `yaml:"undeclared_siblings"`
	// AlertStorms, StormBurst and StormWindow: at least StormBurst
	// incidents opened within StormWindow, each holding an alert of one
	// name, are one failure showing the same symptom on services the
	// catalog does not relate (a feature flag or a mesh config pushed
	// everywhere, a zone's network, a platform nobody declared as a
	// dependency). When the last of them opens they merge into the
	// earliest, which then takes new signals from any service, as a shared
	// service's incident does (within SpreadWindow of its opening). Two
	// failures at one moment stay apart. false in AlertStorms turns it
	// off; nil and 0 are the defaults (StormWindow at most GroupWindow).
	AlertStorms *bool         `yaml:"alert_storms"`
	StormBurst  int           `yaml:"storm_burst"`
	StormWindow time.Duration `yaml:"storm_window"`
	// LocationBursts, LocationLabels, LocationBurst and LocationWindow:
	// a signal's location is the value of the first of LocationLabels it
	// carries that varies: signals with two of its values were seen (one
	// region tells nothing, its clusters may). At least LocationBurst
	// incidents opened within LocationWindow in one location are one
	// failure of that place (its network, its nodes, its control plane),
	// whatever their services and symptoms: they merge into the earliest,
	// which then takes new signals located there from any service, within
	// SpreadWindow of its opening (an incident holding the bursts of
	// several places, from each of them). Two failures at one moment
	// stay apart. false in LocationBursts turns it off; nil and 0
	// are the defaults (LocationWindow at most GroupWindow).
	LocationBursts *bool         `yaml:"location_bursts"`
	LocationLabels []string      `yaml:"location_labels"`
	LocationBurst  int           `yaml:"location_burst"`
	LocationWindow time.Duration `yaml:"location_window"`
	// UnplacedSignals and UnplacedWindow: a signal the catalog cannot
	// place (its service is not in the catalog and no label names one
	// that is: a blackbox probe of a public URL, an exporter's alert named
	// for the exporter) has only time to go by. It joins the incident it
	// may join that took a new member on a catalogued service at most
	// UnplacedWindow before the signal (the latest such), rather than
	// only what failed on its own unknown service; what joined so is no
	// sign of spreading, so unknown signals do not chain. The other way
	// round, a new member on a catalogued service adopts the incidents
	// such signals opened at most UnplacedWindow before it (the probe
	// failed first). false turns it off; nil and 0 are the defaults
	// (UnplacedWindow at most
	// GroupWindow). Without a catalog nothing is placed, and the rule is
	// off.
	UnplacedSignals *bool         `yaml:"unplaced_signals"`
	UnplacedWindow  time.Duration `yaml:"unplaced_window"`
	// LoneAnomalies and AnomalyWait: an anomaly that would open an
	// incident of its own (nothing it relates to is failing) waits: it
	// opens one once its series stayed anomalous for AnomalyWait in one episode (an
	// alerting rule's `for`), at once when it is critical, or when within
	// AnomalyWait of it an alert on its service or a related one, or an
	// anomaly on a related other service, tells of the same failure
	// (one the incident it opens then takes: corroborate). Meanwhile it
	// joins nothing, and if nothing comes it opens nothing (the detector
	// still stored it). On a busy host some of its hundreds
	// of series are off every few minutes (QUALITY.md, session 37). An
	// anomaly that may join an incident joins it at once. true in
	// LoneAnomalies opens one at once, as alerts do; nil is the default.
	LoneAnomalies *bool         `yaml:"lone_anomalies"`
	AnomalyWait   time.Duration `yaml:"anomaly_wait"`
	// PathWeight is added to a candidate incident's score when it already
	// has a member on a direct dependency of the signal's service: a
	// failure reaches a service through what it calls, so a symptom
	// whose dependency is failing in one incident belongs there rather
	// than to a concurrent incident it relates to only through its root.
	// 0 turns the rule off; nil is the default.
	PathWeight *float64 `yaml:"path_weight"`
	// LabelWeight is added to a candidate incident's score when a label
	// value of the signal names a service already in the incident (a
	// connection pool, an upstream, a topic's owner): the alert says what
	// it is failing on. 0 turns the rule off; nil is the default.
	LabelWeight *float64 `yaml:"label_weight"`
	// RecencyWeight is how much a candidate incident's score drops per
	// GroupWindow since it last fired (see Correlator.best).
	RecencyWeight float64 `yaml:"recency_weight"`
	// UpDepth bounds how many dependency hops above an incident's service
	// a signal's service may be and still join (a dependent failing
	// because of it).
	UpDepth int `yaml:"up_depth"`
	// DownDepth bounds how many hops below (a dependency of an incident's
	// service: the root cause arriving after its symptoms).
	DownDepth int `yaml:"down_depth"`
	// QuietPeriod is how long an incident stays open after its last member
	// resolved, and how long an anomaly series must be quiet for its next
	// anomaly to be a new member.
	QuietPeriod time.Duration `yaml:"quiet_period"`
	// ReopenWindow is how long after its resolution an incident reopens
	// rather than a new one opening.
	ReopenWindow time.Duration `yaml:"reopen_window"`
	// AlertExpiry, when set, resolves an incident whose alerts still fire
	// but of which nothing was heard for that long (by the events'
	// observed times: Alertmanager sends a firing alert again every
	// repeat_interval, 4h by default): its resolution was lost (a
	// receiver with send_resolved: false, a producer gone), and the
	// incident would stay open for ever. It resolves as of that time, its
	// firing alerts taken as resolved then, which the timeline says; one
	// sent again firing after reopens it within ReopenWindow (later, it
	// opens another), while a delivery again of what was heard before is
	// old news. Set it well above the repeat interval of what sends
	// alerts (three of them): the watermark may run up to an hour ahead
	// of the wall clock (an event timed ahead), and a replay knows when
	// each line was heard only from its "time". 0, the default, never
	// expires an alert.
	AlertExpiry time.Duration `yaml:"alert_expiry"`
	// ResendGap is how long an alert sent again may go unheard past the
	// expiry its last report gave (Signal.Expires): the events stream
	// drops a report whose id it stored within its duplicate window, and
	// a firing alert's resends keep its first send's id. The correlator
	// service sets it to the stream's window (streams.duplicate_window);
	// zero is the bus's default window, 2 minutes.
	ResendGap time.Duration `yaml:"-"`
	// ChangeWindow is how long before an incident opened a change to one
	// of its services or their dependencies is linked to it, and how long
	// a change to a service made after an incident opened keeps the
	// service's new signals out of that incident (unless the incident has
	// a member on a direct dependency of the service).
	ChangeWindow time.Duration `yaml:"change_window"`
	// FlapWindow, FlapStart and FlapStop: a member flaps from FlapStart
	// state changes within FlapWindow until it has fewer than FlapStop.
	FlapWindow time.Duration `yaml:"flap_window"`
	FlapStart  int           `yaml:"flap_start"`
	FlapStop   int           `yaml:"flap_stop"`
	// UpdateInterval is the least event time between two updated events of
	// one incident; changes in between are published together.
	UpdateInterval time.Duration `yaml:"update_interval"`
	// AdvisoryAlerts are alert names (RE2, anchored as Alertmanager's =~
	// matchers are) that warn of what may come or report housekeeping:
	// a disk forecast to fill, a certificate expiring soon, a quota nearly
	// used, a batch job that failed. No failure spreads through them: an
	// advisory alert joins an incident rooted on another service only
	// when that incident is of advisory alerts alone and has one of its
	// name (a certificate shared by several services; a failure's
	// incident does not take one because a job failed on its own service:
	// every failed job is a KubeJobFailed), nothing else of another
	// service joins an incident of advisory alerts alone, and such an
	// incident neither makes nor joins a location burst. On its own
	// service an advisory alert is a member like any other (the disk that
	// filled). nil is the default list, an empty list turns the rule off.
	AdvisoryAlerts []string `yaml:"advisory_alerts"`
	// SlowAlerts are alert names (RE2, anchored as AdvisoryAlerts) whose
	// rules wait long before firing, as kube-prometheus's workload alerts
	// wait `for: 15m` (a pod crash-looping, not ready, a rollout stuck):
	// such an alert fires long after its failure began. Past
	// SpreadWindow, at most SlowAlertWait past it, one joins an incident
	// that has an alert firing on its service, or that fired there until
	// at most SlowAlertWait before it: the failure it waited on is that
	// incident's. Other late alerts stay a failure of their own.
	// nil is the default list, an empty list turns the rule off.
	SlowAlerts    []string      `yaml:"slow_alerts"`
	SlowAlertWait time.Duration `yaml:"slow_alert_wait"`
	// LocalAlerts are alert names (RE2, anchored as AdvisoryAlerts) of
	// resource alerts: a service's own CPU, memory, disk or heap
	// running out, or its own process not answering its scrape. What they tell is of their own service, not of what it
	// calls: a failure below shows on its dependents as errors and
	// latency, not as their memory filling. So one joins no incident as a
	// symptom (its service depending on the root, or under a shared
	// service's burst), only on the root's service or as the root's cause;
	// and an incident of them alone is no symptom either: a failure of
	// what its service calls (or of a shared service), after, does not
	// take it, even when a label of it names that service. nil is the
	// default list, an empty list turns the rule off.
	LocalAlerts []string `yaml:"local_alerts"`
	// IgnoredAlerts are alert names (RE2, anchored as AdvisoryAlerts) of
	// alerts that tell of no failure and fire for ever, the alerting
	// pipeline's own heartbeats: each would be an incident open for ever.
	// They are counted (Stats.Ignored) and join nothing. nil is the
	// default list, an empty list turns the rule off.
	IgnoredAlerts []string `yaml:"ignored_alerts"`
	// GroupBy lists labels whose values must be equal for signals to share
	// an incident (for example cluster), on top of the topology.
	GroupBy []string `yaml:"group_by"`
	// MaxMembers bounds the members an incident event lists (the counts
	// stay exact).
	MaxMembers int `yaml:"max_members"`
	// MaxFingerprints bounds the members kept in memory; beyond it the
	// members of the longest-resolved incidents are forgotten first. It
	// bounds the merges remembered too (the oldest are forgotten first).
	MaxFingerprints int `yaml:"max_fingerprints"`
	// MaxStateBytes bounds the estimate of the heap the members and
	// incidents in memory take (Correlator.StateBytes: their strings and
	// a fixed overhead each), forgetting as MaxFingerprints does: a
	// count alone lets members of a megabyte each (labels, resource and
	// summary at the envelope's limits) take all memory. The saved state
	// is the same data as JSON.
	MaxStateBytes int64 `yaml:"max_state_bytes"`
}

// MinStateBytes is the least Config.MaxStateBytes: room for some twenty
// of the largest members a signal makes (storedLabels), so that a signal
// is not forgotten as it arrives.
const MinStateBytes = 1 << 20

// DefaultConfig is the configuration every default was chosen for (see
// QUALITY.md).
func DefaultConfig() Config {
	return Config{
		GroupWindow:        10 * time.Minute,
		SpreadWindow:       8 * time.Minute,
		FrontWindow:        5 * time.Minute,
		BusyOpenings:       8,
		BusySpreadWindow:   6 * time.Minute,
		FrontLimit:         20 * time.Minute,
		SharedServices:     Flag(true),
		SharedBurst:        3,
		UndeclaredSiblings: Flag(true),
		AlertStorms:        Flag(true),
		StormBurst:         3,
		StormWindow:        3 * time.Minute,
		LocationBursts:     Flag(true),
		LocationLabels:     []string{"region", "zone", "cluster"},
		LocationBurst:      3,
		LocationWindow:     5 * time.Minute,
		UnplacedSignals:    Flag(true),
		UnplacedWindow:     time.Minute,
		LoneAnomalies:      Flag(false),
		AnomalyWait:        5 * time.Minute,
		PathWeight:         Weight(0.5),
		LabelWeight:        Weight(0.5),
		RecencyWeight:      4,
		UpDepth:            4,
		DownDepth:          1,
		QuietPeriod:        5 * time.Minute,
		ResendGap:          2 * time.Minute, // bus.DefaultDuplicateWindow
		ReopenWindow:       30 * time.Minute,
		ChangeWindow:       time.Hour,
		FlapWindow:         15 * time.Minute,
		FlapStart:          4,
		FlapStop:           2,
		UpdateInterval:     30 * time.Second,
		MaxMembers:         200,
		MaxFingerprints:    1_000_000,
		MaxStateBytes:      512 << 20,
		// Forecasts and housekeeping of the kube-prometheus, node and
		// cert-manager mixins (KubePersistentVolumeFillingUp,
		// NodeFilesystemSpaceFillingUp, CertManagerCertExpirySoon,
		// KubeCPUOvercommit, KubeQuotaAlmostFull, KubeJobFailed) and names
		// made like them; a certificate's coming expiry however it is
		// named (CertificateExpiry, SSLCertExpiring), not one expired.
		AdvisoryAlerts: []string{".*Soon", ".*FillingUp", ".*Overcommit", ".*QuotaAlmostFull", ".*JobFailed", "(?i).*expiry.*", "(?i).*expiring.*", "(?i).*expires.*"},
		// The kube-prometheus mixin's workload alerts that wait `for: 15m`
		// (KubeContainerWaiting waits an hour; CPUThrottlingHigh, of its
		// resource alerts, 15 minutes too), an SLO's burn (Pyrra's
		// slow one fires well after its fast one) and a consumer's or a
		// replica's lag, which builds up for minutes after what it waits
		// on failed.
		SlowAlerts: []string{"KubePodCrashLooping", "KubePodNotReady", "KubeContainerWaiting",
			"KubeDeploymentReplicasMismatch", "KubeDeploymentRolloutStuck", "KubeStatefulSetReplicasMismatch",
			"KubeDaemonSetRolloutStuck", "KubeHpaMaxedOut", "KubeHpaReplicasMismatch", "CPUThrottlingHigh", ".*ErrorBudgetBurn.*", "(?i).*consumer_?(group)?_?lag.*", "(?i).*replication_?lag.*"},
		SlowAlertWait: 15 * time.Minute,
		// Saturation of a service's own resources, as the kube-prometheus,
		// node, JVM and database mixins name it (CPUThrottlingHigh,
		// ContainerOOMKilled, NodeFilesystemAlmostOutOfSpace,
		// JvmHeapUsageHigh, PostgresqlDiskSpaceLow); OOM in capitals or
		// as a word of its own (oom_kill), not the oom of TooManyRequests;
		// and a scrape target down (kube-prometheus's TargetDown,
		// Prometheus's own example InstanceDown: up == 0), its own process
		// not answering. Not replicas: an autoscaler maxed out is as often
		// the load a slow dependency leaves on its callers (QUALITY.md,
		// session 29).
		LocalAlerts: []string{"(?i).*cpu.*", "(?i).*memory.*", ".*OOM.*", "(?i)(.*[^a-z])?oom.*", "(?i).*disk.*", "(?i).*filesystem.*", "(?i).*inode.*", "(?i).*heap.*", "TargetDown", "InstanceDown"},
		// kube-prometheus's Watchdog, which always fires so that its
		// silence says the alerting pipeline is down, and InfoInhibitor,
		// which fires while info alerts do, to mute them.
		IgnoredAlerts: []string{"Watchdog", "InfoInhibitor"},
	}
}

// Weight is a weight to set in Config (PathWeight, LabelWeight), where 0
// is a value and nil the default.
func Weight(v float64) *float64 { return &v }

// Flag is a switch to set in Config (SharedServices), where nil is the
// default.
func Flag(v bool) *bool { return &v }

// WithDefaults fills zero fields (nil weights and switches) from
// DefaultConfig.
func (c Config) WithDefaults() Config {
	d := DefaultConfig()
	fill := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&c.GroupWindow, d.GroupWindow)
	fill(&c.SpreadWindow, d.SpreadWindow)
	fill(&c.FrontWindow, d.FrontWindow)
	fill(&c.FrontLimit, d.FrontLimit)
	fill(&c.BusySpreadWindow, d.BusySpreadWindow)
	fill(&c.QuietPeriod, d.QuietPeriod)
	fill(&c.ResendGap, d.ResendGap)
	fill(&c.ReopenWindow, d.ReopenWindow)
	fill(&c.ChangeWindow, d.ChangeWindow)
	fill(&c.FlapWindow, d.FlapWindow)
	fill(&c.UpdateInterval, d.UpdateInterval)
	fill(&c.SlowAlertWait, d.SlowAlertWait)
	fill(&c.AnomalyWait, d.AnomalyWait)
	if c.LoneAnomalies == nil {
		c.LoneAnomalies = d.LoneAnomalies
	}
	if c.StormWindow == 0 {
		c.StormWindow = min(d.StormWindow, c.GroupWindow)
	}
	if c.LocationWindow == 0 {
		c.LocationWindow = min(d.LocationWindow, c.GroupWindow)
	}
	if c.LocationBursts == nil {
		c.LocationBursts = d.LocationBursts
	}
	if c.UnplacedSignals == nil {
		c.UnplacedSignals = d.UnplacedSignals
	}
	if c.UnplacedWindow == 0 {
		c.UnplacedWindow = min(d.UnplacedWindow, c.GroupWindow)
	}
	if len(c.LocationLabels) == 0 {
		c.LocationLabels = d.LocationLabels
	}
	if c.LocationBurst == 0 {
		c.LocationBurst = d.LocationBurst
	}
	if c.AdvisoryAlerts == nil {
		c.AdvisoryAlerts = d.AdvisoryAlerts
	}
	if c.SlowAlerts == nil {
		c.SlowAlerts = d.SlowAlerts
	}
	if c.LocalAlerts == nil {
		c.LocalAlerts = d.LocalAlerts
	}
	if c.IgnoredAlerts == nil {
		c.IgnoredAlerts = d.IgnoredAlerts
	}
	if c.LabelWeight == nil {
		c.LabelWeight = d.LabelWeight
	}
	if c.SharedBurst == 0 {
		c.SharedBurst = d.SharedBurst
	}
	if c.SharedServices == nil {
		c.SharedServices = d.SharedServices
	}
	if c.UndeclaredSiblings == nil {
		c.UndeclaredSiblings = d.UndeclaredSiblings
	}
	if c.AlertStorms == nil {
		c.AlertStorms = d.AlertStorms
	}
	if c.StormBurst == 0 {
		c.StormBurst = d.StormBurst
	}
	if c.PathWeight == nil {
		c.PathWeight = d.PathWeight
	}
	if c.RecencyWeight == 0 {
		c.RecencyWeight = d.RecencyWeight
	}
	for _, p := range []struct {
		v   *int
		def int
	}{
		{&c.UpDepth, d.UpDepth}, {&c.DownDepth, d.DownDepth}, {&c.BusyOpenings, d.BusyOpenings}, {&c.FlapStart, d.FlapStart},
		{&c.FlapStop, d.FlapStop}, {&c.MaxMembers, d.MaxMembers}, {&c.MaxFingerprints, d.MaxFingerprints},
	} {
		if *p.v == 0 {
			*p.v = p.def
		}
	}
	if c.MaxStateBytes == 0 {
		c.MaxStateBytes = d.MaxStateBytes
	}
	return c
}

// Validate names the key that is wrong; zero values mean the defaults (nil
// for the weights).
func (c Config) Validate() error {
	bad := func(key, format string, args ...any) error {
		return fmt.Errorf("%w: correlator.rules.%s: %s", ErrInvalidConfig, key, fmt.Sprintf(format, args...))
	}
	for _, d := range []struct {
		key string
		v   time.Duration
	}{{"group_window", c.GroupWindow}, {"spread_window", c.SpreadWindow}, {"front_window", c.FrontWindow}, {"front_limit", c.FrontLimit}, {"busy_spread_window", c.BusySpreadWindow}, {"quiet_period", c.QuietPeriod}, {"reopen_window", c.ReopenWindow}, {"alert_expiry", c.AlertExpiry},
		{"change_window", c.ChangeWindow}, {"flap_window", c.FlapWindow}, {"update_interval", c.UpdateInterval}, {"storm_window", c.StormWindow},
		{"location_window", c.LocationWindow}, {"slow_alert_wait", c.SlowAlertWait}, {"anomaly_wait", c.AnomalyWait}, {"unplaced_window", c.UnplacedWindow}} {
		if d.v < 0 {
			return bad(d.key, "must not be negative, got %s", d.v)
		}
	}
	if c.AlertExpiry > 0 && c.AlertExpiry < time.Hour {
		return bad("alert_expiry", "%s: want 0 (never) or at least 1h: Alertmanager sends a firing alert again only every repeat_interval (4h by default)", c.AlertExpiry)
	}
	if c.LocationLabels != nil && len(c.LocationLabels) == 0 {
		return bad("location_labels", "an empty list; leave it out for the defaults, or set location_bursts: false to turn the rule off")
	}
	if i := slices.Index(c.LocationLabels, ""); i >= 0 {
		return bad(fmt.Sprintf("location_labels[%d]", i), "an empty label name")
	}
	for _, rule := range []struct {
		key      string
		patterns []string
	}{{"advisory_alerts", c.AdvisoryAlerts}, {"slow_alerts", c.SlowAlerts}, {"local_alerts", c.LocalAlerts}, {"ignored_alerts", c.IgnoredAlerts}} {
		key, patterns := rule.key, rule.patterns
		if len(patterns) > 100 {
			return bad(key, "%d patterns, want at most 100", len(patterns))
		}
		for i, p := range patterns {
			// Alone as well as wrapped: "a)|(b" compiles only wrapped,
			// and would change what the others match.
			if len(p) > 1024 {
				return bad(fmt.Sprintf("%s[%d]", key, i), "%d characters, want at most 1024", len(p))
			}
			if _, err := regexp.Compile(p); err != nil {
				return bad(fmt.Sprintf("%s[%d]", key, i), "%q is not a regular expression: %v", p, err)
			}
		}
		if _, err := namePattern(patterns); err != nil {
			return bad(key, "%v", err)
		}
	}
	c = c.WithDefaults()
	switch {
	case !(c.RecencyWeight >= 0 && c.RecencyWeight <= 100): // NaN too
		return bad("recency_weight", "%g, want 0 (default) to 100", c.RecencyWeight)
	case !(*c.LabelWeight >= 0 && *c.LabelWeight <= 100):
		return bad("label_weight", "%g, want 0 (off) to 100, or leave it out for the default %g", *c.LabelWeight, *DefaultConfig().LabelWeight)
	case !(*c.PathWeight >= 0 && *c.PathWeight <= 100):
		return bad("path_weight", "%g, want 0 (off) to 100, or leave it out for the default %g", *c.PathWeight, *DefaultConfig().PathWeight)
	case c.SharedBurst < 1:
		return bad("shared_burst", "%d, want 0 (default) or more", c.SharedBurst)
	case c.StormBurst < 2 || c.StormBurst > 1000:
		return bad("storm_burst", "%d, want 0 (default) or 2 to 1000: one incident is no storm", c.StormBurst)
	case *c.AlertStorms && c.StormWindow > c.GroupWindow:
		return bad("storm_window", "%s, want at most group_window (%s): a storm's incidents open together", c.StormWindow, c.GroupWindow)
	case *c.UnplacedSignals && c.UnplacedWindow > c.GroupWindow:
		return bad("unplaced_window", "%s, want at most group_window (%s)", c.UnplacedWindow, c.GroupWindow)
	case c.LocationBurst < 2 || c.LocationBurst > 1000:
		return bad("location_burst", "%d, want 0 (default) or 2 to 1000: one incident is no burst", c.LocationBurst)
	case *c.LocationBursts && c.LocationWindow > c.GroupWindow:
		return bad("location_window", "%s, want at most group_window (%s): a burst's incidents open together", c.LocationWindow, c.GroupWindow)
	case len(c.LocationLabels) > 16:
		return bad("location_labels", "%d labels, want at most 16", len(c.LocationLabels))
	case c.BusyOpenings < 0:
		return bad("busy_openings", "%d, want 0 (default) or more", c.BusyOpenings)
	case c.UpDepth < 0 || c.UpDepth > 32:
		return bad("up_depth", "%d, want 0 (default) to 32", c.UpDepth)
	case c.DownDepth < 0 || c.DownDepth > 32:
		return bad("down_depth", "%d, want 0 (default) to 32", c.DownDepth)
	case c.FlapStart < 2:
		return bad("flap_start", "%d, want at least 2", c.FlapStart)
	case c.FlapStop < 1 || c.FlapStop >= c.FlapStart:
		return bad("flap_stop", "%d, want 1 to flap_start-1 (%d)", c.FlapStop, c.FlapStart-1)
	case c.MaxMembers < 1 || c.MaxMembers > 10_000:
		return bad("max_members", "%d, want 1 to 10000", c.MaxMembers)
	case c.MaxFingerprints < 1:
		return bad("max_fingerprints", "%d, want at least 1", c.MaxFingerprints)
	case c.MaxStateBytes < MinStateBytes:
		return bad("max_state_bytes", "%d, want 0 (default, %d) or at least %d", c.MaxStateBytes, DefaultConfig().MaxStateBytes, MinStateBytes)
	}
	for i, l := range c.GroupBy {
		if l == "" {
			return bad(fmt.Sprintf("group_by[%d]", i), "empty label name")
		}
	}
	return nil
}

// namePattern is one expression matching any of patterns (AdvisoryAlerts,
// SlowAlerts, LocalAlerts, IgnoredAlerts), whole names only; nil when the list is empty (the rule is
// off).
func namePattern(patterns []string) (*regexp.Regexp, error) {
	if len(patterns) == 0 {
		return nil, nil
	}
	return regexp.Compile("^(?:(?:" + strings.Join(patterns, ")|(?:") + "))$")
}
