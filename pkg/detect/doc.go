// Package detect finds anomalies in one metric series at a time, streaming,
// with no per-series tuning, and explains each score.
//
// A Detector holds the compact state of one series (512 bytes of heap with
// the default window of 32, measured with a million series; the seasonal
// profile adds 4 bytes per bucket, 96 with the default 24) and scores each
// observation against the state before it:
//
//   - robust z: distance from the median of the last Window values in units
//     of the larger of 1.4826 × MAD and 1.2533 × mean absolute deviation (a
//     rolling window kept sorted in place; the second keeps quantised data,
//     where the MAD is 0, from scoring every step as an outlier);
//   - EWMA: distance from a Huber-clipped exponentially weighted mean in
//     units of the equally weighted standard deviation;
//   - level shift: a two-sided CUSUM (drift 1σ, limit 12σ) of the residual
//     of a robust Holt level and slope (each step clipped to ±4 so that a
//     single spike is not a shift). Its alarm starts a regime: the slow
//     seasonal baseline and its scale are frozen, and the level-shift score
//     stays raised while the value is 4 scales or more away from them, until
//     5 points in a row are back inside, 3 hours have passed or a gap
//     comes, so that an
//     excursion stays flagged for as long as it lasts while a lasting
//     change becomes the new normal;
//   - variance: a CUSUM of the log-likelihood ratio of a doubled standard
//     deviation, on the same residual;
//   - seasonal: an additive Holt-Winters baseline: a level and slope with a
//     memory of one Period plus a centred profile of Buckets points per
//     Period, indexed by time so that gaps keep the phase and linearly
//     interpolated; it scores only after two periods of data, and all other
//     detectors see the value minus the profile. Config.Season auto lets
//     each series choose hourly, daily, weekly or no season from the
//     autocorrelation of its first days (period.go); a weekly season it
//     chose has one bucket an hour (168);
//   - trend: a two-sided CUSUM (drift 2, limit 20) of the t statistic of
//     the least-squares slope of the rolling window (values clipped to the
//     median ± 3 scales) against the slow seasonal baseline's slope,
//     counted only while the window's fitted line ends 3 slow scales or
//     more from that baseline on the side it points to, so that the wander
//     of an autocorrelated series (significant 32-point slopes that revert)
//     is not a trend. It runs once the seasonal profile is learnt (two
//     periods) and needs a full window after a gap; with the seasonal
//     baseline disabled it is off. On a series sampled so fast that the
//     window spans under 1 % of the period (one point a second against a
//     day), where a season is no slope over the window, it also runs
//     during the first period, against a slow baseline that is then an
//     EWMA of 300 observations with a scale of 50 (the regime after a
//     level shift freezes that baseline too). It finds steep ramps (0.15σ per point)
//     within three hours, not gentle ones (0.05 to 0.1σ per point), and
//     also the 4-5σ steps the level-shift CUSUM misses;
//   - forecast: a robust (Huber-clipped) Holt linear trend extrapolated to
//     ForecastConfig.Threshold ("disk full in about 9 hours").
//
// An observation that a point detector (robust z, EWMA, seasonal) already
// judges anomalous teaches the baselines at 0.3 of the usual rate, so a
// sustained anomaly stays visible for a while and a lasting change is still
// accepted in the end.
//
// Each statistic z maps to a score 1/(1+(at/z)^4), 0.5 at its alarm level,
// and the observation's Score is the maximum, so Score ≥ Config.Threshold
// (default 0.5) means at least one detector is past its alarm level. The
// Result names the winning detector, the expected value, the band outside
// which that detector fires, and the deviation.
//
// Anomalous observations make alarm episodes (Result.Alarm, Episode,
// EpisodeInfo; episode.go): an episode opens on an anomalous observation
// that also clears the series' false-alarm budget (Config.Budget, expected
// false episodes per series per day: each episode raises the bar, time
// lowers it), is updated at a bounded rate, and ends when the series is
// back under the threshold or back in the band it left, once it has
// settled on a new level (the window's median has taken it, half a window
// after a shift, and the trend test is calm: a level shift is flagged
// once, then it is the normal level; a drift is not one), or after
// Episode.MaxDuration. Every scale is floored by a fraction of the series'
// resolution (the typical non-zero step), so counts that are mostly zero
// and noise-free step series have no zero-width band.
//
// # Several channels of one asset
//
// A Vote (the default method of a pipeline group, and what `aiops detect
// eval` scores on a multivariate file) gives each channel its own
// Detector and flags a row when the channels in an alarm episode are rare
// enough together: each adds −ln of the fraction of the rows it has been
// in alarm, and Config.Vote.Severity (2) times the log ratio by which its
// score is past its budget's bar, and the sum must reach
// VoteSurprise·√channels. Its state is the channels' detectors and one
// count each.
//
// A Group (method pca) scores rows of several channels together (the sensors of one
// pump, the golden signals of one service) with a principal-component
// model learnt from its first 400 rows: Hotelling's T² and the squared
// prediction error Q against limits from the warm-up rows' own statistics,
// so that a broken relation between channels is found while each channel
// is still inside its own band. It keeps learning the relations from normal
// rows and each channel's level from every row, holds an alarm until the
// asset is calm for 5 rows, and after MaxAlarm (30 minutes) takes a lasting
// state as the new normal. A missing channel (NaN) counts as at its level;
// a row with none, a duplicate or an out-of-order row is ignored, as for a
// Detector.
//
// # Bad input
//
// Observe never panics and never returns a Score outside [0,1] or NaN:
//
//   - NaN, ±Inf and |value| > 1e100: FlagInvalid, score 0, state unchanged.
//   - Timestamp before the last accepted one: FlagOutOfOrder, score 0,
//     state unchanged (the series is a stream; late data is dropped).
//   - Timestamp equal to the last accepted one: FlagDuplicate, score 0,
//     state unchanged (the first value wins).
//   - Gap longer than GapFactor × the typical interval: FlagGap; the CUSUMs
//     restart because their evidence is stale, a regime ends (its frozen
//     baseline is as stale), and the trend test waits for a window of
//     values after the gap; the seasonal phase is kept
//     because buckets are indexed by time.
//   - A first interval over GapFactor × the second (an old sample, then
//     current ones) is a gap too: the typical interval starts from the
//     second, and the series from the sample after the gap (its seasonal
//     profile and trend wait their periods from there), instead of taking
//     the gap for its interval (the silence that ends an episode was ten
//     times it) and its profile for learnt.
//   - Counter (Config.Counter): the detectors see the per-second rate; the
//     first observation only primes it (FlagWarmUp); a decrease is a reset
//     (FlagCounterReset) and the rate is value/interval, as if the counter
//     restarted from zero.
//   - Flat line: every scale is floored at 1e-9 × |baseline| + 1e-12, so a
//     flat line scores 0 and a departure from it scores a finite statistic
//     that saturates the score at 1. On a series watched for less than a
//     day per budgeted episode (1/Config.Budget days) that first move
//     opens an episode only if the next observation is still off the
//     line (a one-sample blip opens none); flat for longer, at once.
//   - Warm-up: the first Config.WarmUp valid observations (default 30) score
//     0 with FlagWarmUp while the baselines learn; a single point is warm-up.
//
// # State
//
// MarshalBinary/UnmarshalBinary snapshot a detector (versioned, with a
// fingerprint of the config shape) so that a service restores it without
// a new warm-up.
//
// # Offline
//
// Replay scores a CSV of timestamp,value with the same code; the evaluator
// (precision, recall, F1, delay; SKAB reader) lives in detect/eval, the
// labelled generator in detect/synth, the PNG plot in detect/plot, and
// detect/pipeline reads the pipeline files (pipelines/*.yaml) that route
// series to detector settings for the service and the replay. Measured
// figures are in QUALITY.md.
package detect
