package detect

import (
	"fmt"
	"math"
	"time"

	"github.com/aiops-dev/aiops/pkg/config"
)

// ErrInvalidConfig is wrapped by every error Config.Validate returns.
var ErrInvalidConfig = fmt.Errorf("detect: %w", config.ErrInvalidConfig)

// Config chooses the detectors of one series and their parameters.
//
// The zero value is usable: every zero field takes the default listed beside
// it, so Config{} is the default detector set, meant to work without tuning.
// Booleans are phrased so that false is the default.
type Config struct {
	// Threshold is the score at or above which an observation is an anomaly.
	// Default 0.5. Every detector maps its statistic so that the statistic's
	// own alarm level lands on 0.5.
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// WarmUp is the number of valid observations scored 0 while the
	// baselines settle. Default 30.
	WarmUp int `yaml:"warm_up" json:"warm_up"`
	// Window is the length of the rolling window for the median and MAD,
	// 8 to 255 observations. Default 32: small enough to keep the state of
	// a series under 512 bytes, large enough for a stable median.
	Window int `yaml:"window" json:"window"`
	// ZThreshold is the robust z (|x-median|/(1.4826 MAD)) and EWMA z at
	// which those detectors score 0.5. Default 6.
	ZThreshold float64 `yaml:"z_threshold" json:"z_threshold"`
	// Alpha is the EWMA weight of a new observation for mean and variance,
	// in (0,1). Default 0.05 (about 20 observations of memory).
	Alpha float64 `yaml:"alpha" json:"alpha"`

	// CUSUM configures the two-sided CUSUM level-shift detector.
	CUSUM CUSUMConfig `yaml:"cusum" json:"cusum"`
	// Season chooses the seasonal period: "auto" (each series picks
	// hourly, daily, weekly or none from the autocorrelation of its first
	// days; Seasonal.Period serves until then), "none" (the same as
	// Seasonal.Disabled) or a duration ("24h", the same as
	// Seasonal.Period). Default "" (DefaultSeason): Seasonal.Period.
	Season string `yaml:"season" json:"season"`
	// Seasonal configures the Holt-Winters seasonal baseline.
	Seasonal SeasonalConfig `yaml:"seasonal" json:"seasonal"`
	// Forecast configures the forecast of a threshold crossing.
	Forecast ForecastConfig `yaml:"forecast" json:"forecast"`

	// Counter marks a monotonically increasing counter: the detectors see
	// its per-second rate, and a decrease is a counter reset.
	Counter bool `yaml:"counter" json:"counter"`
	// Budget is the false-alarm budget: the expected number of false
	// alarm episodes per series per day. A series that opens episodes
	// faster sees the bar an observation must clear to open one rise
	// (each episode raises it, time lowers it at the budget's rate), so a
	// noisy or flapping series is held to its budget and a calm one keeps
	// the plain threshold. Default 1.
	Budget float64 `yaml:"budget" json:"budget"`
	// Episode configures the alarm episodes (Result.Alarm, Result.Episode).
	Episode EpisodeConfig `yaml:"episode" json:"episode"`
	// Vote configures how the series counts when it is a channel of a
	// Vote (a pipeline group of method vote); a lone series ignores it.
	Vote VoteConfig `yaml:"vote" json:"vote"`

	// GapFactor flags a gap when the time since the previous observation
	// exceeds GapFactor times the typical interval. Default 10.
	GapFactor float64 `yaml:"gap_factor" json:"gap_factor"`
}

// CUSUMConfig configures the two-sided CUSUM on the EWMA-standardised value
// and the CUSUM on its variance.
type CUSUMConfig struct {
	// Disabled turns both CUSUMs off.
	Disabled bool `yaml:"disabled" json:"disabled"`
	// Drift is the allowance k in standard deviations. Default 1: residuals
	// of real series are autocorrelated, and 0.5 added up their wander.
	Drift float64 `yaml:"drift" json:"drift"`
	// Limit is the decision interval h in standard deviations. Default 12.
	Limit float64 `yaml:"limit" json:"limit"`
}

// SeasonalConfig configures an additive Holt-Winters baseline whose
// seasonal profile has Buckets points per Period, indexed by the time of the
// observation (so gaps do not shift the phase) and linearly interpolated.
type SeasonalConfig struct {
	// Disabled turns the seasonal baseline off.
	Disabled bool `yaml:"disabled" json:"disabled"`
	// Period of the season. Default 24h. Config.Season auto lets each
	// series choose its own.
	Period time.Duration `yaml:"period" json:"period"`
	// Buckets per period, 2 to 1024. Default 24.
	Buckets int `yaml:"buckets" json:"buckets"`
	// Gamma is the weight of a new observation in its season bucket.
	// Default 0.1.
	Gamma float64 `yaml:"gamma" json:"gamma"`
}

// ForecastConfig configures the forecast of when the series crosses a
// threshold ("disk full in about 9 hours") from a robust Holt linear trend.
type ForecastConfig struct {
	// Enabled turns the forecast on; it is off by default because it needs
	// a threshold that only the operator knows.
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Threshold the series must not cross.
	Threshold float64 `yaml:"threshold" json:"threshold"`
	// Falling: the series must not fall below Threshold (free space);
	// default false: it must not rise above it (used space).
	Falling bool `yaml:"falling" json:"falling"`
	// Horizon: a crossing forecast within the horizon scores at least
	// Config.Threshold, sooner crossings score higher. Default 24h.
	Horizon time.Duration `yaml:"horizon" json:"horizon"`
	// Beta is the weight of a new observation in the trend of the robust
	// Holt level, which the level-shift CUSUM and the forecast share.
	// Default 0.02 (about 50 observations of memory): a faster trend
	// learns a step as a slope within a few points, so the CUSUM misses
	// 4σ shifts, and it follows the wander of autocorrelated series into
	// false alarms (measured in QUALITY.md; 0.1 before).
	Beta float64 `yaml:"beta" json:"beta"`
}

// VoteConfig configures what a channel in an alarm episode adds to the
// surprise of a Vote's row.
type VoteConfig struct {
	// RarityOnly: a channel adds only the rarity of its alarms, −ln of the
	// fraction of the rows it has been in an episode (the vote before
	// session 5). Default false: it adds Severity too.
	RarityOnly bool `yaml:"rarity_only" json:"rarity_only"`
	// Severity is what a channel adds, in nats, per unit of the log ratio
	// (ln of its statistic over the alarm level) by which its score
	// exceeds its budget's bar (the level its next episode would have to
	// clear). Default 2: Chebyshev's bound, P(|X−μ| ≥ kσ) ≤ 1/k², makes a
	// deviation e^L times its alarm level at most e^(−2L) times as likely,
	// whatever the distribution. Without it one channel adds at most
	// ln(rows), under the limit 2.5·√channels until an asset has ~e^10.9
	// rows (19 channels), so a fault that moves one metric far out is
	// flagged only when a second one joins it, rows later (QUALITY.md,
	// "Session 5").
	Severity float64 `yaml:"severity" json:"severity"`
}

// Values of Config.Season besides a duration.
const (
	SeasonAuto = "auto"
	SeasonNone = "none"
)

// DefaultSeason is Config.Season's default: "", the configured
// Seasonal.Period (daily unless set), the behaviour before auto existed.
// Auto is not the default because on the held-out parts it lowered the
// KPIs' mean F1(d7) from 0.648 to 0.630 (SMD's pooled PA-F1 rose from
// 0.772 to 0.786; QUALITY.md).
const DefaultSeason = ""

// Defaults returned by DefaultConfig.
const (
	DefaultThreshold  = 0.5
	DefaultWarmUp     = 30
	DefaultWindow     = 32
	DefaultZThreshold = 6.0
	DefaultAlpha      = 0.05
	DefaultDrift      = 1.0
	DefaultLimit      = 12.0
	DefaultPeriod     = 24 * time.Hour
	DefaultBuckets    = 24
	DefaultGamma      = 0.1
	DefaultHorizon    = 24 * time.Hour
	DefaultBeta       = 0.02
	DefaultGapFactor  = 10.0
	// DefaultVoteSeverity is VoteConfig.Severity's default.
	DefaultVoteSeverity = 2.0
)

// DefaultConfig returns Config{} with every default filled in.
func DefaultConfig() Config { return Config{}.WithDefaults() }

// WithDefaults returns c with every zero field set to its default.
func (c Config) WithDefaults() Config {
	if c.Threshold == 0 {
		c.Threshold = DefaultThreshold
	}
	if c.WarmUp == 0 {
		c.WarmUp = DefaultWarmUp
	}
	if c.Window == 0 {
		c.Window = DefaultWindow
	}
	if c.ZThreshold == 0 {
		c.ZThreshold = DefaultZThreshold
	}
	if c.Alpha == 0 {
		c.Alpha = DefaultAlpha
	}
	if c.CUSUM.Drift == 0 {
		c.CUSUM.Drift = DefaultDrift
	}
	if c.CUSUM.Limit == 0 {
		c.CUSUM.Limit = DefaultLimit
	}
	if c.Season == "" {
		c.Season = DefaultSeason
	}
	switch c.Season {
	case "", SeasonAuto:
	case SeasonNone:
		c.Seasonal.Disabled = true
	default:
		// a bad duration is left for Validate to name
		if p, err := time.ParseDuration(c.Season); err == nil && c.Seasonal.Period == 0 {
			c.Seasonal.Period = p
		}
	}
	if c.Seasonal.Period == 0 {
		c.Seasonal.Period = DefaultPeriod
	}
	if c.Seasonal.Buckets == 0 {
		c.Seasonal.Buckets = DefaultBuckets
	}
	if c.Seasonal.Gamma == 0 {
		c.Seasonal.Gamma = DefaultGamma
	}
	if c.Forecast.Horizon == 0 {
		c.Forecast.Horizon = DefaultHorizon
	}
	if c.Forecast.Beta == 0 {
		c.Forecast.Beta = DefaultBeta
	}
	if c.GapFactor == 0 {
		c.GapFactor = DefaultGapFactor
	}
	if c.Budget == 0 {
		c.Budget = DefaultBudget
	}
	if c.Episode.Release == 0 {
		c.Episode.Release = DefaultEpisodeRelease
	}
	if c.Episode.UpdateEvery == 0 {
		c.Episode.UpdateEvery = DefaultEpisodeUpdateEvery
	}
	if c.Episode.MaxDuration == 0 {
		c.Episode.MaxDuration = DefaultEpisodeMaxDuration
	}
	if c.Vote.Severity == 0 {
		c.Vote.Severity = DefaultVoteSeverity
	}
	return c
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidConfig, field, fmt.Sprintf(format, args...))
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Validate checks c after filling defaults; each error names the field and
// wraps ErrInvalidConfig.
func (c Config) Validate() error {
	c = c.WithDefaults()
	if err := c.validateSeason(); err != nil {
		return err
	}
	switch {
	case !finite(c.Threshold) || c.Threshold <= 0 || c.Threshold >= 1:
		return invalid("threshold", "%v is not in (0,1)", c.Threshold)
	case c.WarmUp < 1 || c.WarmUp > 1_000_000:
		return invalid("warm_up", "%d is not in [1,1000000]", c.WarmUp)
	case c.Window < 8 || c.Window > 255:
		return invalid("window", "%d is not in [8,255]", c.Window)
	case !finite(c.ZThreshold) || c.ZThreshold <= 0 || c.ZThreshold > 1000:
		return invalid("z_threshold", "%v is not in (0,1000]", c.ZThreshold)
	case !finite(c.Alpha) || c.Alpha <= 0 || c.Alpha >= 1:
		return invalid("alpha", "%v is not in (0,1)", c.Alpha)
	case !finite(c.CUSUM.Drift) || c.CUSUM.Drift < 0 || c.CUSUM.Drift > 10:
		return invalid("cusum.drift", "%v is not in [0,10]", c.CUSUM.Drift)
	case !finite(c.CUSUM.Limit) || c.CUSUM.Limit <= 0 || c.CUSUM.Limit > 1000:
		return invalid("cusum.limit", "%v is not in (0,1000]", c.CUSUM.Limit)
	case c.Seasonal.Period < time.Second:
		return invalid("seasonal.period", "%v is shorter than 1s", c.Seasonal.Period)
	case c.Seasonal.Buckets < 2 || c.Seasonal.Buckets > 1024:
		return invalid("seasonal.buckets", "%d is not in [2,1024]", c.Seasonal.Buckets)
	case c.Seasonal.Period/time.Duration(c.Seasonal.Buckets) < time.Millisecond:
		return invalid("seasonal.buckets", "%d buckets make buckets of %v, shorter than 1ms", c.Seasonal.Buckets, c.Seasonal.Period/time.Duration(c.Seasonal.Buckets))
	case !finite(c.Seasonal.Gamma) || c.Seasonal.Gamma <= 0 || c.Seasonal.Gamma >= 1:
		return invalid("seasonal.gamma", "%v is not in (0,1)", c.Seasonal.Gamma)
	case !finite(c.Forecast.Threshold) || math.Abs(c.Forecast.Threshold) > MaxAbsValue:
		return invalid("forecast.threshold", "%v is not a finite number of magnitude below 1e100", c.Forecast.Threshold)
	case c.Forecast.Horizon <= 0:
		return invalid("forecast.horizon", "%v is not positive", c.Forecast.Horizon)
	case !finite(c.Forecast.Beta) || c.Forecast.Beta <= 0 || c.Forecast.Beta >= 1:
		return invalid("forecast.beta", "%v is not in (0,1)", c.Forecast.Beta)
	case !finite(c.GapFactor) || c.GapFactor <= 1:
		return invalid("gap_factor", "%v is not a finite number above 1", c.GapFactor)
	case !finite(c.Budget) || c.Budget <= 0 || c.Budget > 10_000:
		return invalid("budget", "%v false episodes per day is not in (0,10000]", c.Budget)
	case c.Episode.Release < 1 || c.Episode.Release > 255:
		return invalid("episode.release", "%d is not in [1,255]", c.Episode.Release)
	case c.Episode.UpdateEvery <= 0:
		return invalid("episode.update_every", "%v is not positive", c.Episode.UpdateEvery)
	case c.Episode.MaxDuration <= 0:
		return invalid("episode.max_duration", "%v is not positive", c.Episode.MaxDuration)
	case c.Episode.Silence < 0:
		return invalid("episode.silence", "%v is negative", c.Episode.Silence)
	case !finite(c.Vote.Severity) || c.Vote.Severity <= 0 || c.Vote.Severity > 100:
		return invalid("vote.severity", "%v nats per unit of log ratio is not in (0,100]", c.Vote.Severity)
	}
	return nil
}

// validateSeason checks Config.Season (after defaults) against
// Seasonal.Period.
func (c Config) validateSeason() error {
	if len(c.Season) > 64 {
		return invalid("season", "%d characters; want auto, none or a duration", len(c.Season))
	}
	switch c.Season {
	case "", SeasonAuto, SeasonNone:
		return nil
	}
	p, err := time.ParseDuration(c.Season)
	switch {
	case err != nil:
		return invalid("season", "%q is not auto, none or a duration", c.Season)
	case p != c.Seasonal.Period:
		return invalid("season", "%v disagrees with seasonal.period %v", p, c.Seasonal.Period)
	}
	return nil
}
