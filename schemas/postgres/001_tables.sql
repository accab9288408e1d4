-- The suite's tables, one per record type (raw-saver writes them; nothing else does).
--
-- Columns follow schemas/*.avsc field by field: timestamp-millis fields are timestamptz, maps are
-- jsonb, bytes are bytea, a nested record is one column per field (<field>_<subfield>).
-- Primary keys are the records' identities, so a re-delivered record is a no-op (aggregates and
-- forecasts are upserted); each key includes the partition column because PostgreSQL requires
-- it of a partitioned table's unique constraints.
-- Every table is range-partitioned by time: daily partitions are created ahead of need by
-- iotpipe_ensure_partitions() (002), and a default partition catches any other time, so no
-- timestamp ever fails a batch.
-- Written to be re-run safely (IF NOT EXISTS everywhere).

-- RawMessage: the bronze copy of iot.raw, payload bytes unchanged. Identity: the Kafka position
-- where the message was first written (the iotpipe-origin header of relayed records).
CREATE TABLE IF NOT EXISTS raw_messages (
	origin_cluster   text        NOT NULL,
	origin_topic     text        NOT NULL,
	origin_partition integer     NOT NULL,
	origin_offset    bigint      NOT NULL,
	source           text        NOT NULL,
	topic            text        NOT NULL,
	payload          bytea       NOT NULL,
	qos              integer     NOT NULL CONSTRAINT raw_messages_qos_check CHECK (qos BETWEEN 0 AND 2),
	retained         boolean     NOT NULL,
	received_at      timestamptz NOT NULL,
	PRIMARY KEY (origin_cluster, origin_topic, origin_partition, origin_offset, received_at)
) PARTITION BY RANGE (received_at);
CREATE TABLE IF NOT EXISTS raw_messages_default PARTITION OF raw_messages DEFAULT;

-- Reading (iot.clean). Identity: (site, device, sensor, metric, ts).
CREATE TABLE IF NOT EXISTS readings (
	site         text             NOT NULL,
	device       text             NOT NULL,
	sensor       text             NOT NULL,
	metric       text             NOT NULL,
	unit         text             NOT NULL,
	value        double precision NOT NULL,
	ts           timestamptz      NOT NULL,
	received_at  timestamptz      NOT NULL,
	location_lat double precision,
	location_lon double precision,
	device_type  text,
	tags         jsonb            NOT NULL DEFAULT '{}',
	PRIMARY KEY (site, device, sensor, metric, ts)
) PARTITION BY RANGE (ts);
CREATE TABLE IF NOT EXISTS readings_default PARTITION OF readings DEFAULT;

-- Rejected (iot.rejected). Identity: the origin of the rejected raw message, per stage. When a
-- rejection carries no origin (its input was a file or stdin), the Kafka position of the
-- Rejected record itself stands in.
CREATE TABLE IF NOT EXISTS rejected (
	source           text        NOT NULL,
	topic            text        NOT NULL,
	payload          bytea       NOT NULL,
	qos              integer     NOT NULL,
	retained         boolean     NOT NULL,
	received_at      timestamptz NOT NULL,
	origin_cluster   text        NOT NULL,
	origin_topic     text        NOT NULL,
	origin_partition integer     NOT NULL,
	origin_offset    bigint      NOT NULL,
	stage            text        NOT NULL,
	reason           text        NOT NULL,
	reason_code      text        NOT NULL,
	PRIMARY KEY (origin_cluster, origin_topic, origin_partition, origin_offset, stage, received_at)
) PARTITION BY RANGE (received_at);
CREATE TABLE IF NOT EXISTS rejected_default PARTITION OF rejected DEFAULT;

-- Aggregate (iot.aggregates). Identity: (group key, window_start, window size); upserted, the
-- last version received wins.
CREATE TABLE IF NOT EXISTS aggregates (
	site         text             NOT NULL,
	device       text             NOT NULL,
	sensor       text             NOT NULL,
	metric       text             NOT NULL,
	unit         text             NOT NULL,
	window_start timestamptz      NOT NULL,
	window_end   timestamptz      NOT NULL,
	window_ms    bigint           NOT NULL,
	count        bigint           NOT NULL,
	mean         double precision NOT NULL,
	min          double precision NOT NULL,
	max          double precision NOT NULL,
	stddev       double precision NOT NULL,
	first        double precision NOT NULL,
	first_ts     timestamptz      NOT NULL,
	last         double precision NOT NULL,
	last_ts      timestamptz      NOT NULL,
	PRIMARY KEY (site, device, sensor, metric, window_start, window_ms)
) PARTITION BY RANGE (window_start);
CREATE TABLE IF NOT EXISTS aggregates_default PARTITION OF aggregates DEFAULT;

-- Command (iot.commands): the actuator's audit log. A command is one publication: the same
-- record delivered twice is one row. (004_commands_identity.sql adds reading_ts to the key.)
CREATE TABLE IF NOT EXISTS commands (
	topic      text             NOT NULL,
	payload    text             NOT NULL,
	qos        integer          NOT NULL CONSTRAINT commands_qos_check CHECK (qos BETWEEN 0 AND 2),
	retained   boolean          NOT NULL,
	rule       text             NOT NULL,
	side       text             NOT NULL,
	site       text             NOT NULL,
	device     text             NOT NULL,
	sensor     text             NOT NULL,
	metric     text             NOT NULL,
	value      double precision NOT NULL,
	reading_ts timestamptz      NOT NULL,
	issued_at  timestamptz      NOT NULL,
	PRIMARY KEY (topic, issued_at, rule, site, device, sensor, metric)
) PARTITION BY RANGE (issued_at);
CREATE TABLE IF NOT EXISTS commands_default PARTITION OF commands DEFAULT;

-- ThresholdEvent (iot.events). Identity: (sensor key, rule, started_at, state).
CREATE TABLE IF NOT EXISTS threshold_events (
	site            text             NOT NULL,
	device          text             NOT NULL,
	sensor          text             NOT NULL,
	metric          text             NOT NULL,
	rule            text             NOT NULL,
	threshold       double precision NOT NULL,
	hysteresis      double precision NOT NULL,
	state           text             NOT NULL,
	started_at      timestamptz      NOT NULL,
	ended_at        timestamptz,
	exceeded_for_ms bigint           NOT NULL,
	average         double precision NOT NULL,
	max             double precision NOT NULL,
	count           bigint           NOT NULL,
	PRIMARY KEY (site, device, sensor, metric, rule, started_at, state)
) PARTITION BY RANGE (started_at);
CREATE TABLE IF NOT EXISTS threshold_events_default PARTITION OF threshold_events DEFAULT;

-- Forecast (iot.forecasts). Identity: (series, window_start, window size, model, horizon);
-- upserted like the aggregates it is made from.
CREATE TABLE IF NOT EXISTS forecasts (
	site         text             NOT NULL,
	device       text             NOT NULL,
	sensor       text             NOT NULL,
	metric       text             NOT NULL,
	unit         text             NOT NULL,
	window_start timestamptz      NOT NULL,
	window_ms    bigint           NOT NULL,
	horizon      integer          NOT NULL,
	predicted    double precision NOT NULL,
	lower        double precision,
	upper        double precision,
	model        text             NOT NULL,
	made_at      timestamptz      NOT NULL,
	PRIMARY KEY (site, device, sensor, metric, window_start, window_ms, model, horizon)
) PARTITION BY RANGE (window_start);
CREATE TABLE IF NOT EXISTS forecasts_default PARTITION OF forecasts DEFAULT;
