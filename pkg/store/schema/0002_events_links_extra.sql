-- links: ids of the events an event was derived from (a templated log names
-- its raw log, an incident its alerts), so analysts walk the chain with
-- arrayJoin(links). extra: the envelope's unknown top-level fields as a JSON
-- object, kept rather than dropped.
ALTER TABLE events ADD COLUMN links Array(String) AFTER resource.value;
ALTER TABLE events ADD COLUMN extra String AFTER body;
