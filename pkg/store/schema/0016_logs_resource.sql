-- logs: resource, where the log ran (the host a syslog daemon names, an
-- OTLP resource's host.name, a pod), as in events: analysts filter logs
-- by host, and it was only in events. Empty for rows written before.
--
-- One column a statement: 18.16 has no ADD COLUMN IF NOT EXISTS, and a
-- statement whose column exists already counts as done, so a second run
-- (or one that stopped half-way) completes what is missing.
ALTER TABLE logs ADD COLUMN resource.key Array(String) AFTER labels.value;
ALTER TABLE logs ADD COLUMN resource.value Array(String) AFTER resource.key;
