-- anomalies: what the detector found abnormal, one row per anomaly event.
-- Questions: anomalies around a change (same service, time window), the
-- anomalies of an incident (by id), the most anomalous metrics. ORDER BY
-- (service, metric, time, id) serves the per-service time windows; daily
-- partitions for time ranges and retention.
--
-- series is the fingerprint of the metric series (metric_samples.fingerprint),
-- links the ids of the samples that triggered it. A redelivered anomaly has
-- the same id and values: one row under FINAL.
CREATE TABLE IF NOT EXISTS anomalies (
    id String,
    time DateTime,
    service String,
    series String,
    metric String,
    value Float64,
    expected Float64,
    lower Float64,
    upper Float64,
    score Float64,
    detector String,
    window String,
    reason String,
    severity String,
    labels Nested(key String, value String),
    links Array(String)
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(time)
ORDER BY (service, metric, time, id);

-- +min-version 20.3
ALTER TABLE anomalies MODIFY COLUMN detector LowCardinality(String);
ALTER TABLE anomalies MODIFY COLUMN severity LowCardinality(String);
