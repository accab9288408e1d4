-- A command's identity includes the time of the reading that triggered it. Without it,
-- (topic, issued_at, rule, series) is not unique: an actuator working through a backlog (after
-- a restart or an outage upstream) issues several commands for one sensor within the same
-- millisecond, and all but the first were skipped as if they had been written already.
-- Re-runnable: the key is replaced only when it lacks reading_ts.
DO $$
BEGIN
	IF NOT EXISTS (
		SELECT 1 FROM pg_index i
		JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY (i.indkey)
		WHERE i.indrelid = 'commands'::regclass AND i.indisprimary AND a.attname = 'reading_ts'
	) THEN
		ALTER TABLE commands DROP CONSTRAINT IF EXISTS commands_pkey;
		ALTER TABLE commands
			ADD PRIMARY KEY (topic, issued_at, rule, site, device, sensor, metric, reading_ts);
	END IF;
END
$$;
