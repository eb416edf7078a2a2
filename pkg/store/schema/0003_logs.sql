-- logs: one row per log event (raw logs and the log miner's templated
-- copies), with the body's fields as columns so analysts filter and group
-- without parsing JSON (18.16 has no JSONExtract; the writer extracts in Go).
--
-- Questions this table answers: error rate per service, top templates per
-- service, templates first seen today, the logs of one trace. Each of them
-- names a time range and usually a service, so ORDER BY (service, time, id)
-- reads one contiguous range per service, and daily partitions let a time
-- range skip whole days and let retention drop whole days.
--
-- Deduplication: a redelivered event is the same id with the same values, so
-- it has the same sorting key and ReplacingMergeTree keeps one row of it
-- under FINAL (and after the next merge). The partition key uses the event's
-- own time, so the copy lands in the same partition, where merges happen.
--
-- derived = 1 marks a log that repeats another one (links holds the raw
-- log's id: the log miner's templated copy). Volume and error-rate queries
-- count derived = 0, template queries read template_id != ''.
CREATE TABLE IF NOT EXISTS logs (
    id String,
    time DateTime,
    observed_time DateTime,
    service String,
    source String,
    severity String,
    message String,
    template_id String,
    template String,
    params Array(String),
    trace_id String,
    span_id String,
    fingerprint String,
    labels Nested(key String, value String),
    links Array(String),
    derived UInt8
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(time)
ORDER BY (service, time, id);

-- Newer servers: dictionary-encode the repetitive columns outside the
-- sorting key and compress the text harder.
-- +min-version 20.3
ALTER TABLE logs MODIFY COLUMN source LowCardinality(String);
ALTER TABLE logs MODIFY COLUMN severity LowCardinality(String);
ALTER TABLE logs MODIFY COLUMN template_id LowCardinality(String);
ALTER TABLE logs MODIFY COLUMN message String CODEC(ZSTD(3));
ALTER TABLE logs MODIFY COLUMN template String CODEC(ZSTD(3));
ALTER TABLE logs MODIFY COLUMN observed_time DateTime CODEC(Delta, ZSTD(1));
