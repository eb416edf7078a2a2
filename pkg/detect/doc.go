// Package detect finds anomalies in one metric series at a time, streaming,
// with no per-series tuning, and explains each score.
//
// A Detector holds the compact state of one series (about 400 bytes with
// the default window, plus 4 bytes per seasonal bucket) and scores each
// observation against the state before it:
//
//   - robust z: distance from the median of the last Window values in units
//     of 1.4826 × MAD (a rolling window kept sorted in place);
//   - EWMA: distance from a Huber-clipped exponentially weighted mean in
//     units of the equally weighted standard deviation;
//   - level shift: a two-sided CUSUM of the robust Holt residual z (each step clipped
//     to ±4 so that a single spike is not a shift);
//   - variance: a CUSUM of the log-likelihood ratio of a doubled standard
//     deviation;
//   - seasonal: an additive Holt-Winters baseline whose profile has Buckets
//     points per Period, indexed by time so that gaps keep the phase; it
//     scores only after two periods of data; all other detectors see the
//     value minus the seasonal profile;
//   - forecast: a robust (Huber-clipped) Holt linear trend extrapolated to
//     ForecastConfig.Threshold ("disk full in about 9 hours").
//
// Each statistic z maps to a score 1/(1+(at/z)^4), 0.5 at its alarm level,
// and the observation's Score is the maximum, so Score ≥ Config.Threshold
// (default 0.5) means at least one detector is past its alarm level. The
// Result names the winning detector, the expected value, the band outside
// which that detector fires, and the deviation.
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
//     restart because their evidence is stale; the seasonal phase is kept
//     because buckets are indexed by time.
//   - Counter (Config.Counter): the detectors see the per-second rate; the
//     first observation only primes it (FlagWarmUp); a decrease is a reset
//     (FlagCounterReset) and the rate is value/interval, as if the counter
//     restarted from zero.
//   - Flat line: MAD = 0 is floored at a quarter of the EWMA standard
//     deviation and at 1e-9 × |median| + 1e-12, so a flat line scores 0 and
//     a departure from it scores a finite statistic that saturates at 1.
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
// Replay scores a CSV of timestamp,value with the same code; Evaluate-style
// scoring lives in detect/eval, the labelled generator in detect/synth, the
// PNG plot in detect/plot.
package detect
