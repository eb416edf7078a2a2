-- alerts: one row per alert notification (Alertmanager sends the same alert
-- again while it fires, then once resolved). The alert's identity is its
-- fingerprint (Alertmanager's own, kept by ingest).
--
-- Questions: the noisiest alerts, flapping alerts (firing/resolved
-- transitions per fingerprint), the alerts of an incident. All group by
-- alert name and fingerprint over a time range, so ORDER BY (alert_name,
-- fingerprint, time, id) keeps each alert's notifications together and in
-- time order. Daily partitions for time ranges and retention.
--
-- A redelivered notification has the same id and values: one row under
-- FINAL. starts_at and ends_at are 1970-01-01 00:00:00 (0) when the sender
-- did not say.
CREATE TABLE IF NOT EXISTS alerts (
    id String,
    time DateTime,
    alert_name String,
    status String,
    fingerprint String,
    starts_at DateTime,
    ends_at DateTime,
    severity String,
    service String,
    labels Nested(key String, value String),
    annotations Nested(key String, value String),
    generator_url String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(time)
ORDER BY (alert_name, fingerprint, time, id);

-- +min-version 20.3
ALTER TABLE alerts MODIFY COLUMN status LowCardinality(String);
ALTER TABLE alerts MODIFY COLUMN severity LowCardinality(String);
ALTER TABLE alerts MODIFY COLUMN service LowCardinality(String);
