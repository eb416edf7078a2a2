-- webhook_deliveries: every attempt the notifier makes to deliver an
-- incident to a receiver (written by the notifier, not from events).
-- Questions: the deliveries of one incident, failure rate and latency per
-- receiver. ORDER BY (receiver, time, incident_id, attempt, id) serves the
-- per-receiver statistics over time ranges; an incident's attempts are found
-- by incident_id within the range. id is the attempt's own id, so a retried
-- insert of the same attempt is one row under FINAL. Daily partitions for
-- time ranges and retention. status_code 0 means no HTTP answer (error says
-- why: timeout, connection refused).
CREATE TABLE IF NOT EXISTS webhook_deliveries (
    id String,
    time DateTime,
    incident_id String,
    receiver String,
    attempt UInt16,
    status_code UInt16,
    error String,
    duration_ms UInt32,
    idempotency_key String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMMDD(time)
ORDER BY (receiver, time, incident_id, attempt, id);
