-- incident_history: version, the state's event time in nanoseconds, as
-- in incidents. `time` keeps seconds, and the states of one incident often
-- share one (an acknowledgement then a resolution a moment later, both
-- applied in one tick of the correlator): ordered by `time`, either could
-- be taken as the latest, and an incident resolved counted as not
-- resolved. Rows written before this column read it from their `time`.
ALTER TABLE incident_history ADD COLUMN version UInt64 DEFAULT toUInt64(toUnixTimestamp(time)) * 1000000000 AFTER time;
