-- anomalies: the alarm episode each anomaly event belongs to (the detector
-- publishes one event when an episode opens, updates at a bounded rate while
-- it lasts and one event when it closes). Questions: one row per episode
-- with its start, end and peak (argMax over its events), episodes open now
-- (no close yet), how long episodes last per metric.
--
-- episode is open, update or close; '' (with the columns below at their
-- defaults: zero times, 0) for an anomaly without an episode (an error
-- burst, a producer's own). episode_id is the same for every event of one
-- episode. episode_end is the episode's last anomalous observation so far
-- (its end on the close event). peak is the highest score so far, at
-- peak_time with the value peak_value.
--
-- One column a statement: 18.16 has no ADD COLUMN IF NOT EXISTS, and a
-- statement whose column exists already counts as done, so a second run
-- (or one that stopped half-way) completes what is missing.
ALTER TABLE anomalies ADD COLUMN episode String AFTER reason;
ALTER TABLE anomalies ADD COLUMN episode_id String AFTER episode;
ALTER TABLE anomalies ADD COLUMN episode_start DateTime AFTER episode_id;
ALTER TABLE anomalies ADD COLUMN episode_end DateTime AFTER episode_start;
ALTER TABLE anomalies ADD COLUMN peak Float64 AFTER episode_end;
ALTER TABLE anomalies ADD COLUMN peak_time DateTime AFTER peak;
ALTER TABLE anomalies ADD COLUMN peak_value Float64 AFTER peak_time;

-- +min-version 20.3
ALTER TABLE anomalies MODIFY COLUMN episode LowCardinality(String);
