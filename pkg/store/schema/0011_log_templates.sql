-- log_templates: the log miner's template lifecycle, one row per
-- log_template event: a template seen for the first time (status new) or
-- one generalised into another (status changed: previous_id, and every id
-- folded into it in merged_from). Few rows, kept long, so "which patterns
-- are new today" does not depend on how long raw logs are kept.
--
-- Questions: new templates per service and day, what a template was merged
-- from. ORDER BY (service, template_id, time, id) keeps a template's history
-- together; monthly partitions because the table is small. A redelivered
-- event has the same id and values: one row under FINAL.
CREATE TABLE IF NOT EXISTS log_templates (
    id String,
    time DateTime,
    service String,
    template_id String,
    template String,
    status String,
    previous_id String,
    merged_from Array(String),
    example String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (service, template_id, time, id);
