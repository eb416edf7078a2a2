-- incidents and incident_history: acknowledged_by and resolved_by, who
-- gave the command (the correlator's incident state names them; a
-- resolution by time alone names nobody). MTTA per responder, and who
-- closed what, without reading the timeline. '' for rows written before
-- these columns, and from a producer that does not send them.
--
-- One column a statement: 18.16 has no ADD COLUMN IF NOT EXISTS, and a
-- statement whose column exists already counts as done, so a second run
-- (or one that stopped half-way) completes what is missing.
ALTER TABLE incidents ADD COLUMN acknowledged_by String AFTER merged_into;
ALTER TABLE incidents ADD COLUMN resolved_by String AFTER acknowledged_by;
ALTER TABLE incident_history ADD COLUMN acknowledged_by String AFTER merged_into;
ALTER TABLE incident_history ADD COLUMN resolved_by String AFTER acknowledged_by;
