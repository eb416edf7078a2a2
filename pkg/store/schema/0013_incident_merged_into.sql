-- incidents and incident_history: merged_into, the id of the incident a
-- merged incident's members went to. The correlator merges an incident
-- into another whose root its own root directly depends on (its symptoms
-- alerted before their cause); the merged incident's last state is
-- resolved with merged_into set. Its resolution is not the failure's end,
-- which the other incident still holds, so MTTR and counts of resolved
-- incidents leave it out (merged_into = '', docs/queries.md). '' for every
-- other state and incident, and for rows written before this column.
--
-- One column a statement: 18.16 has no ADD COLUMN IF NOT EXISTS, and a
-- statement whose column exists already counts as done, so a second run
-- (or one that stopped half-way) completes what is missing.
ALTER TABLE incidents ADD COLUMN merged_into String AFTER resolved_at;
ALTER TABLE incident_history ADD COLUMN merged_into String AFTER resolved_at;
