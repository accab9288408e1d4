/* Table mapping: columns derived from each schema (types, nullability, flattening, origin
 * columns), identities as primary keys, the statements' shape, and values put per column. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "pgbin.h"
#include "tables.h"

static int setup(void **state)
{
	(void)state;
	char err[256];
	if (records_init(err, sizeof(err)) < 0) {
		fprintf(stderr, "records_init: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	records_shutdown();
	return 0;
}

static const struct table_col *col(const struct table *t, const char *name)
{
	for (size_t i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i].name, name) == 0)
			return &t->cols[i];
	fail_msg("%s has no column %s", t->name, name);
	return NULL;
}

static void expect_col(const struct table *t, const char *name, enum col_kind kind, bool nullable,
                       bool key)
{
	const struct table_col *c = col(t, name);
	assert_int_equal(c->kind, kind);
	assert_int_equal(c->nullable, nullable);
	assert_int_equal(c->key, key);
}

static size_t nkeys(const struct table *t)
{
	size_t n = 0;
	for (size_t i = 0; i < t->ncols; i++)
		n += t->cols[i].key;
	return n;
}

static void test_raw_messages(void **state)
{
	(void)state;
	char err[256];
	struct table t;
	assert_int_equal(table_init(&t, REC_RAW_MESSAGE, err, sizeof(err)), 0);
	assert_string_equal(t.name, "raw_messages");
	assert_string_equal(t.time_col, "received_at");
	assert_false(t.upsert);
	static const char *const order[] = {"origin_cluster", "origin_topic", "origin_partition",
	                                    "origin_offset",  "source",       "topic",
	                                    "payload",        "qos",          "retained",
	                                    "received_at"};
	assert_int_equal(t.ncols, 10);
	for (size_t i = 0; i < 10; i++)
		assert_string_equal(t.cols[i].name, order[i]);
	expect_col(&t, "origin_cluster", COL_TEXT, false, true);
	expect_col(&t, "origin_partition", COL_INT4, false, true);
	expect_col(&t, "origin_offset", COL_INT8, false, true);
	expect_col(&t, "payload", COL_BYTEA, false, false);
	expect_col(&t, "qos", COL_INT4, false, false);
	expect_col(&t, "retained", COL_BOOL, false, false);
	expect_col(&t, "received_at", COL_TIMESTAMPTZ, false, true);
	assert_int_equal(nkeys(&t), 5);
	assert_null(col(&t, "origin_cluster")->field);
	assert_int_equal(col(&t, "origin_offset")->origin, ORIGIN_OFFSET);
	/* One array parameter per column, typed; skipped on conflict; no data in the text. */
	assert_non_null(strstr(t.insert_sql, "unnest($1::text[], $2::text[], $3::integer[], "
	                                     "$4::bigint[], $5::text[], $6::text[], $7::bytea[], "
	                                     "$8::integer[], $9::boolean[], "
	                                     "$10::timestamp with time zone[])"));
	assert_null(strstr(t.insert_sql, "$11"));
	assert_non_null(strstr(t.insert_sql, "ON CONFLICT DO NOTHING"));
	assert_null(strstr(t.insert_sql, "DO UPDATE"));
	assert_int_equal(t.param_types[6], 1001); /* bytea[] */
	assert_int_equal(t.param_types[9], 1185); /* timestamptz[] */
	assert_string_equal(t.copy_sql,
	                    "COPY \"raw_messages\" (\"origin_cluster\", \"origin_topic\", "
	                    "\"origin_partition\", \"origin_offset\", \"source\", "
	                    "\"topic\", \"payload\", \"qos\", \"retained\", "
	                    "\"received_at\") FROM STDIN (FORMAT binary)");
	table_free(&t);
}

static void test_readings(void **state)
{
	(void)state;
	char err[256];
	struct table t;
	assert_int_equal(table_init(&t, REC_READING, err, sizeof(err)), 0);
	assert_string_equal(t.name, "readings");
	expect_col(&t, "site", COL_TEXT, false, true);
	expect_col(&t, "metric", COL_TEXT, false, true);
	expect_col(&t, "unit", COL_TEXT, false, false);
	expect_col(&t, "value", COL_FLOAT8, false, false);
	expect_col(&t, "ts", COL_TIMESTAMPTZ, false, true);
	expect_col(&t, "received_at", COL_TIMESTAMPTZ, false, false);
	expect_col(&t, "location_lat", COL_FLOAT8, true, false);
	expect_col(&t, "location_lon", COL_FLOAT8, true, false);
	expect_col(&t, "device_type", COL_TEXT, true, false);
	expect_col(&t, "tags", COL_JSONB, false, false);
	assert_string_equal(col(&t, "location_lat")->field, "location");
	assert_string_equal(col(&t, "location_lat")->sub, "lat");
	assert_int_equal(nkeys(&t), 5);
	table_free(&t);
}

static void test_rejected_origin(void **state)
{
	(void)state;
	char err[256];
	struct table t;
	assert_int_equal(table_init(&t, REC_REJECTED, err, sizeof(err)), 0);
	/* The nullable Origin record becomes required columns that fall back to the Kafka origin.
	 */
	expect_col(&t, "origin_cluster", COL_TEXT, false, true);
	expect_col(&t, "origin_topic", COL_TEXT, false, true);
	expect_col(&t, "origin_partition", COL_INT4, false, true);
	expect_col(&t, "origin_offset", COL_INT8, false, true);
	expect_col(&t, "stage", COL_TEXT, false, true);
	expect_col(&t, "received_at", COL_TIMESTAMPTZ, false, true);
	assert_int_equal(col(&t, "origin_topic")->origin, ORIGIN_TOPIC);
	assert_int_equal(nkeys(&t), 6);

	struct origin kafka = {
	    .cluster = "central", .topic = "iot.rejected", .partition = 2, .offset = 77};
	json_t *with = json_pack("{s:{s:s, s:s, s:i, s:I}}", "origin", "cluster", "edge1", "topic",
	                         "iot.raw", "partition", 3, "offset", (json_int_t)12345);
	json_t *without = json_pack("{s:n}", "origin");
	struct buf b = {0};
	assert_int_equal(
	    table_col_put(col(&t, "origin_cluster"), with, &kafka, &b, err, sizeof(err)), 0);
	assert_int_equal(b.len, 4 + 5);
	assert_memory_equal(b.data + 4, "edge1", 5);
	buf_reset(&b);
	assert_int_equal(
	    table_col_put(col(&t, "origin_offset"), with, &kafka, &b, err, sizeof(err)), 0);
	assert_memory_equal(b.data, ((const uint8_t[]){0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0x30, 0x39}),
	                    12);
	buf_reset(&b);
	assert_int_equal(
	    table_col_put(col(&t, "origin_cluster"), without, &kafka, &b, err, sizeof(err)), 0);
	assert_memory_equal(b.data + 4, "central", 7);
	buf_reset(&b);
	assert_int_equal(
	    table_col_put(col(&t, "origin_partition"), without, &kafka, &b, err, sizeof(err)), 0);
	assert_memory_equal(b.data, ((const uint8_t[]){0, 0, 0, 4, 0, 0, 0, 2}), 8);
	json_decref(with);
	json_decref(without);
	buf_free(&b);
	table_free(&t);
}

static void test_upserted_tables(void **state)
{
	(void)state;
	char err[256];
	struct table t;
	assert_int_equal(table_init(&t, REC_AGGREGATE, err, sizeof(err)), 0);
	assert_true(t.upsert);
	assert_string_equal(t.time_col, "window_start");
	expect_col(&t, "window_start", COL_TIMESTAMPTZ, false, true);
	expect_col(&t, "window_ms", COL_INT8, false, true);
	expect_col(&t, "count", COL_INT8, false, false);
	expect_col(&t, "last_ts", COL_TIMESTAMPTZ, false, false);
	assert_int_equal(nkeys(&t), 6);
	/* The last version of an identity in a batch wins, and a replay changes nothing. */
	assert_non_null(strstr(t.insert_sql,
	                       "SELECT DISTINCT ON (\"site\", \"device\", \"sensor\", "
	                       "\"metric\", \"window_start\", \"window_ms\")"));
	assert_non_null(strstr(t.insert_sql, "WITH ORDINALITY"));
	assert_non_null(strstr(t.insert_sql, "iotpipe_ord DESC"));
	assert_non_null(strstr(t.insert_sql,
	                       "ON CONFLICT (\"site\", \"device\", \"sensor\", "
	                       "\"metric\", \"window_start\", \"window_ms\") DO UPDATE "
	                       "SET \"unit\" = EXCLUDED.\"unit\""));
	assert_non_null(strstr(t.insert_sql, ") IS DISTINCT FROM (EXCLUDED.\"unit\""));
	assert_null(strstr(t.insert_sql, "\"site\" = EXCLUDED"));
	table_free(&t);

	assert_int_equal(table_init(&t, REC_FORECAST, err, sizeof(err)), 0);
	assert_true(t.upsert);
	expect_col(&t, "lower", COL_FLOAT8, true, false);
	expect_col(&t, "horizon", COL_INT4, false, true);
	assert_int_equal(nkeys(&t), 8);
	table_free(&t);
}

static void test_other_tables(void **state)
{
	(void)state;
	char err[256];
	struct table t;
	assert_int_equal(table_init(&t, REC_COMMAND, err, sizeof(err)), 0);
	assert_string_equal(t.name, "commands");
	assert_string_equal(t.time_col, "issued_at");
	expect_col(&t, "side", COL_TEXT, false, false);
	expect_col(&t, "issued_at", COL_TIMESTAMPTZ, false, true);
	/* Several commands of one sensor can be issued within a millisecond (a backlog): the
	 * triggering reading's time tells them apart. */
	expect_col(&t, "reading_ts", COL_TIMESTAMPTZ, false, true);
	assert_int_equal(nkeys(&t), 8);
	table_free(&t);

	assert_int_equal(table_init(&t, REC_THRESHOLD_EVENT, err, sizeof(err)), 0);
	assert_string_equal(t.name, "threshold_events");
	expect_col(&t, "state", COL_TEXT, false, true);
	expect_col(&t, "ended_at", COL_TIMESTAMPTZ, true, false);
	expect_col(&t, "started_at", COL_TIMESTAMPTZ, false, true);
	assert_int_equal(nkeys(&t), 7);
	table_free(&t);

	for (int type = 0; type < REC_TYPE_COUNT; type++) {
		assert_int_equal(table_init(&t, (enum rec_type)type, err, sizeof(err)), 0);
		assert_int_equal(table_type_by_name(t.name), type);
		/* Parameters $1..$ncols, nothing more. */
		char p[16];
		snprintf(p, sizeof(p), "$%zu::", t.ncols);
		assert_non_null(strstr(t.insert_sql, p));
		snprintf(p, sizeof(p), "$%zu::", t.ncols + 1);
		assert_null(strstr(t.insert_sql, p));
		table_free(&t);
	}
	assert_int_equal(table_type_by_name("nope"), REC_UNKNOWN);
	assert_null(table_name(REC_UNKNOWN));
	table_free(NULL);
}

static void test_col_put(void **state)
{
	(void)state;
	char err[256];
	struct table t;
	struct buf b = {0};
	assert_int_equal(table_init(&t, REC_READING, err, sizeof(err)), 0);
	json_t *r = json_pack("{s:s, s:f, s:I, s:n, s:{s:s}}", "site", "it's \"quoted\"", "value",
	                      21.5, "ts", (json_int_t)946684800000, "location", "tags", "a.b", "c");
	assert_int_equal(table_col_put(col(&t, "site"), r, NULL, &b, err, sizeof(err)), 0);
	assert_int_equal(b.len, 4 + strlen("it's \"quoted\""));
	buf_reset(&b);
	assert_int_equal(table_col_put(col(&t, "location_lat"), r, NULL, &b, err, sizeof(err)), 0);
	assert_memory_equal(b.data, ((const uint8_t[]){0xff, 0xff, 0xff, 0xff}), 4);
	buf_reset(&b);
	assert_int_equal(table_col_put(col(&t, "ts"), r, NULL, &b, err, sizeof(err)), 0);
	assert_memory_equal(b.data, ((const uint8_t[]){0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0}), 12);
	buf_reset(&b);
	assert_int_equal(table_col_put(col(&t, "tags"), r, NULL, &b, err, sizeof(err)), 0);
	assert_int_equal(b.data[4], 1);
	/* A required field that is missing, and a value of the wrong type, are refused. */
	buf_reset(&b);
	assert_int_equal(table_col_put(col(&t, "metric"), r, NULL, &b, err, sizeof(err)), -1);
	assert_string_equal(err, "metric: missing");
	json_object_set_new(r, "value", json_string("21.5"));
	assert_int_equal(table_col_put(col(&t, "value"), r, NULL, &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "value: value of the wrong type"));
	json_decref(r);
	table_free(&t);

	assert_int_equal(table_init(&t, REC_RAW_MESSAGE, err, sizeof(err)), 0);
	r = json_pack("{s:I}", "qos", (json_int_t)INT32_MAX + 1);
	assert_int_equal(table_col_put(col(&t, "qos"), r, NULL, &b, err, sizeof(err)), -1);
	json_decref(r);
	table_free(&t);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_raw_messages),    cmocka_unit_test(test_readings),
	    cmocka_unit_test(test_rejected_origin), cmocka_unit_test(test_upserted_tables),
	    cmocka_unit_test(test_other_tables),    cmocka_unit_test(test_col_put),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
