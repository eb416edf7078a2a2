-- changes: deploys, config changes, feature flags. Few rows, read by service
-- and time ("what changed in checkout before the incident", changes per
-- service per day), so ORDER BY (service, time, id). Monthly partitions: a
-- day of changes is a tiny part, and changes are kept long (a year by
-- default) for change-failure statistics.
--
-- A redelivered change has the same id and values: one row under FINAL.
-- change_type, not type, so queries need no quoting.
CREATE TABLE IF NOT EXISTS changes (
    id String,
    time DateTime,
    service String,
    change_type String,
    version String,
    author String,
    commit String,
    url String,
    description String,
    labels Nested(key String, value String)
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (service, time, id);
