-- Time partitions: created ahead of need, dropped after the retention period.
--
-- Partitions are daily, in UTC, named <table>_pYYYYMMDD. raw-saver calls these functions at
-- start (and --migrate) and then every --maintenance-interval; they can as well be run by hand
-- or from pg_cron:
--   SELECT iotpipe_ensure_partitions('readings', current_date - 1, current_date + 7);
--   SELECT iotpipe_drop_partitions('raw_messages', now() - interval '30 days');

-- The partition column and the default partition of a partitioned table (raises otherwise).
CREATE OR REPLACE FUNCTION iotpipe_partition_info(parent regclass, OUT col name, OUT def regclass)
LANGUAGE plpgsql STABLE AS $$
BEGIN
	SELECT a.attname, NULLIF(p.partdefid, 0)::regclass INTO col, def
	FROM pg_partitioned_table p
	JOIN pg_attribute a ON a.attrelid = p.partrelid AND a.attnum = p.partattrs[0]
	WHERE p.partrelid = parent;
	IF col IS NULL THEN
		RAISE EXCEPTION 'iotpipe: % is not a partitioned table', parent;
	END IF;
END
$$;

-- Creates the missing daily partitions of parent for first_day..last_day (inclusive). Rows the
-- default partition already holds for such a day are moved into the new partition (otherwise
-- PostgreSQL refuses to create it). Several savers may call this at once: an advisory lock per
-- table makes them take turns. Returns the number of partitions created.
CREATE OR REPLACE FUNCTION iotpipe_ensure_partitions(parent regclass, first_day date, last_day date)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	ns name;
	rel name;
	col name;
	def regclass;
	d date;
	part name;
	lo timestamptz;
	hi timestamptz;
	made integer := 0;
BEGIN
	SELECT n.nspname, c.relname INTO ns, rel
	FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = parent;
	SELECT i.col, i.def INTO col, def FROM iotpipe_partition_info(parent) i;
	PERFORM pg_advisory_xact_lock(hashtext('iotpipe_partitions'), parent::oid::integer);
	d := first_day;
	WHILE d <= last_day LOOP
		part := rel || '_p' || to_char(d, 'YYYYMMDD');
		IF to_regclass(format('%I.%I', ns, part)) IS NULL THEN
			lo := d::timestamp AT TIME ZONE 'UTC';
			hi := (d + 1)::timestamp AT TIME ZONE 'UTC';
			EXECUTE format('CREATE TABLE %I.%I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
				ns, part, parent);
			IF def IS NOT NULL THEN
				EXECUTE format('WITH moved AS (DELETE FROM %s WHERE %I >= $1 AND %I < $2 RETURNING *) '
					'INSERT INTO %I.%I SELECT * FROM moved', def, col, col, ns, part)
					USING lo, hi;
			END IF;
			EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I.%I FOR VALUES FROM (%L) TO (%L)',
				parent, ns, part, lo, hi);
			made := made + 1;
		END IF;
		d := d + 1;
	END LOOP;
	RETURN made;
END
$$;

-- Drops the daily partitions of parent that hold only times before older_than, and deletes such
-- rows from the default partition. Returns the number of partitions dropped.
CREATE OR REPLACE FUNCTION iotpipe_drop_partitions(parent regclass, older_than timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
	rel name;
	col name;
	def regclass;
	r record;
	dropped integer := 0;
BEGIN
	SELECT c.relname INTO rel FROM pg_class c WHERE c.oid = parent;
	SELECT i.col, i.def INTO col, def FROM iotpipe_partition_info(parent) i;
	PERFORM pg_advisory_xact_lock(hashtext('iotpipe_partitions'), parent::oid::integer);
	FOR r IN
		SELECT c.oid::regclass AS part, c.relname
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = parent
		  AND left(c.relname, length(rel) + 2) = rel || '_p'
		  AND substr(c.relname, length(rel) + 3) ~ '^[0-9]{8}$'
	LOOP
		IF (to_date(right(r.relname, 8), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC'
				<= older_than THEN
			EXECUTE format('DROP TABLE %s', r.part);
			dropped := dropped + 1;
		END IF;
	END LOOP;
	IF def IS NOT NULL THEN
		EXECUTE format('DELETE FROM %s WHERE %I < $1', def, col) USING older_than;
	END IF;
	RETURN dropped;
END
$$;
