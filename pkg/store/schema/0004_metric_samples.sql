-- metric_samples: one row per sample. A series is its fingerprint (name plus
-- labels); the questions are "this metric over time" (p95 per hour, the
-- values around an anomaly or a change), so ORDER BY (name, fingerprint,
-- time, id) keeps each series contiguous and in time order: a query by
-- metric name and time range reads one range per series, and consecutive
-- samples of a series compress well. Daily partitions for time ranges and
-- retention.
--
-- A redelivered sample has the same id and values, hence the same sorting
-- key: ReplacingMergeTree keeps one under FINAL. type is gauge or counter
-- (a counter's value is cumulative: take increases, not sums).
CREATE TABLE IF NOT EXISTS metric_samples (
    id String,
    time DateTime,
    name String,
    value Float64,
    type String,
    unit String,
    fingerprint String,
    service String,
    labels Nested(key String, value String)
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(time)
ORDER BY (name, fingerprint, time, id);

-- +min-version 20.3
ALTER TABLE metric_samples MODIFY COLUMN type LowCardinality(String);
ALTER TABLE metric_samples MODIFY COLUMN unit LowCardinality(String);
ALTER TABLE metric_samples MODIFY COLUMN service LowCardinality(String);
ALTER TABLE metric_samples MODIFY COLUMN value Float64 CODEC(Gorilla, ZSTD(1));
