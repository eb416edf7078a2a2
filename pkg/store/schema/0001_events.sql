-- events: every envelope that crossed the bus (raw events and every stage's
-- results: templated logs, anomalies, incidents), one row per event id.
--
-- ReplacingMergeTree collapses rows with equal sorting keys: a redelivered
-- event carries the same id, kind, service and time, so it leaves no visible
-- duplicate under FINAL (and none at all after the next merge). The partition
-- key uses the event's own time, so a redelivery lands in the same partition,
-- where merging happens.
--
-- ORDER BY (kind, service, time, id) serves "events of a service in a time
-- range": kind has a handful of values, so a query by service and time reads
-- at most that many contiguous key ranges, and one that also names the kind
-- (the usual "logs of checkout between T1 and T2") reads exactly one. Kind
-- first keeps similar bodies together, which compresses better, and makes
-- "all anomalies in a window" cheap too. id last makes the key unique per
-- event; ULIDs sort by time within the second that DateTime keeps.
--
-- labels and resource are Nested (parallel key/value arrays, labels.key and
-- labels.value), because ClickHouse 18.16 has no Map type; Nested also makes
-- the server reject a row whose key and value arrays differ in length.
-- body is the raw JSON of the envelope body.
--
-- Retention is not a TTL: DropPartitionsOlderThan drops whole day
-- partitions, which works on every server version and keeps the retention
-- period a runtime setting.
CREATE TABLE IF NOT EXISTS events (
    id String,
    kind String,
    time DateTime,
    observed_time DateTime,
    source String,
    service String,
    severity String,
    fingerprint String,
    labels Nested(key String, value String),
    resource Nested(key String, value String),
    body String,
    schema_version UInt16,
    inserted_at DateTime DEFAULT now()
) ENGINE = ReplacingMergeTree(inserted_at)
PARTITION BY toYYYYMMDD(time)
ORDER BY (kind, service, time, id);

-- Newer servers: dictionary-encode the low-cardinality columns outside the
-- sorting key (changing a key column's type is not allowed) and compress the
-- bulky or monotonic ones harder. 20.3 is the first LTS where LowCardinality
-- needs no experimental setting and codecs are stable.
-- +min-version 20.3
ALTER TABLE events MODIFY COLUMN source LowCardinality(String);
ALTER TABLE events MODIFY COLUMN severity LowCardinality(String);
ALTER TABLE events MODIFY COLUMN body String CODEC(ZSTD(3));
ALTER TABLE events MODIFY COLUMN observed_time DateTime CODEC(Delta, ZSTD(1));
ALTER TABLE events MODIFY COLUMN inserted_at DateTime DEFAULT now() CODEC(Delta, ZSTD(1));
