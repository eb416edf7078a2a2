-- incident_history: every state an incident went through (opened, each
-- update, resolved), one row per incident event. The question is "one
-- incident's timeline" and the MTTA/MTTR statistics, both by incident, so
-- ORDER BY (incident_id, time, id): one incident's states are contiguous and
-- in time order. Monthly partitions by the state's time (an incident's
-- history may span two months; that costs nothing here, since no two states
-- share a key). A redelivered state has the same id and values: one row
-- under FINAL.
CREATE TABLE IF NOT EXISTS incident_history (
    incident_id String,
    time DateTime,
    id String,
    status String,
    title String,
    service String,
    severity String,
    team String,
    opened_at DateTime,
    acknowledged_at DateTime,
    resolved_at DateTime,
    links Array(String)
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (incident_id, time, id);

-- +min-version 20.3
ALTER TABLE incident_history MODIFY COLUMN status LowCardinality(String);
ALTER TABLE incident_history MODIFY COLUMN severity LowCardinality(String);
ALTER TABLE incident_history MODIFY COLUMN team LowCardinality(String);
