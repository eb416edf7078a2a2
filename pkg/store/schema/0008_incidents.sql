-- incidents: the latest state of each incident, one row per incident_id.
--
-- ReplacingMergeTree(version) keyed by incident_id alone keeps, per
-- incident, the row with the highest version: the event time in
-- nanoseconds, so the newest state wins whatever order the states arrive
-- in, and a redelivered state (same version, same values) is one row.
-- Merges and FINAL collapse rows within a partition, so the partition key
-- must be the same for every state of an incident: the month the incident
-- opened (opened_at), never the state's own time. Retention drops whole
-- months of incidents by the time they opened.
--
-- opened_at, acknowledged_at and resolved_at come from the incident body
-- (1970-01-01 00:00:00 = not yet); when an opened state's body lacks
-- opened_at the writer uses the event time (any other state without it is
-- refused: its time is not the opening), when a resolved state lacks
-- resolved_at the event time; a resolved_at before opened_at is stored as
-- opened_at. team comes from the body, else from labels['team']. links are the
-- ids of the alerts, anomalies, changes and logs grouped into the incident.
-- Read it with FINAL or argMax(column, version) GROUP BY incident_id.
CREATE TABLE IF NOT EXISTS incidents (
    incident_id String,
    version UInt64,
    id String,
    time DateTime,
    status String,
    title String,
    service String,
    severity String,
    team String,
    opened_at DateTime,
    acknowledged_at DateTime,
    resolved_at DateTime,
    fingerprint String,
    labels Nested(key String, value String),
    links Array(String)
) ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMM(opened_at)
ORDER BY incident_id;

-- +min-version 20.3
ALTER TABLE incidents MODIFY COLUMN status LowCardinality(String);
ALTER TABLE incidents MODIFY COLUMN severity LowCardinality(String);
ALTER TABLE incidents MODIFY COLUMN team LowCardinality(String);
