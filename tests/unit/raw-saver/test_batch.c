/* Batches: records become binary COPY tuples on arrival, a record that does not fit is queued
 * refused (and the batch stays consistent), the kept Avro value rebuilds the record, positions
 * per partition only grow, and cleared batches reuse their buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "batch.h"
#include "pgbin.h"

static struct table tables[REC_TYPE_COUNT];

static int setup(void **state)
{
	(void)state;
	char err[256];
	if (records_init(err, sizeof(err)) < 0)
		return -1;
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		if (table_init(&tables[t], (enum rec_type)t, err, sizeof(err)) < 0) {
			fprintf(stderr, "%s\n", err);
			return -1;
		}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		table_free(&tables[t]);
	records_shutdown();
	return 0;
}

/* Bytes fields hold raw bytes in a jansson string (avro.h), unchecked for UTF-8. */
static json_t *raw(const char *payload, size_t n, int qos)
{
	json_t *r = json_pack("{s:s, s:s, s:i, s:b, s:I}", "source", "north", "topic", "a/b", "qos",
	                      qos, "retained", 0, "received_at", (json_int_t)1729312551123);
	json_object_set_new(r, "payload", json_stringn_nocheck(payload, n));
	return r;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void test_tuples(void **state)
{
	(void)state;
	struct batch b = {0};
	static const char payload[] = "\t'\"\\\n\0\xff";
	json_t *rec = raw(payload, sizeof(payload) - 1, 1);
	struct stream_msg m = {.type = REC_RAW_MESSAGE,
	                       .rec = rec,
	                       .topic = "iot.raw",
	                       .partition = 3,
	                       .offset = 41,
	                       .timestamp = 5};
	struct origin o = {.cluster = "edge", .topic = "iot.raw", .partition = 7, .offset = 99};
	assert_int_equal(batch_add(&b, tables, &m, &o, "iot.deadletter"), 0);
	assert_int_equal(b.n, 1);
	const struct batch_table *tb = &b.tb[REC_RAW_MESSAGE];
	assert_int_equal(tb->n, 1);
	/* COPY header, then one tuple of 10 fields. */
	assert_true(tb->tuples.len > 19);
	assert_memory_equal(tb->tuples.data, "PGCOPY\n\xff\r\n", 11);
	const struct batch_row *r = &b.rows[0];
	assert_int_equal(r->tuple_off, 19);
	assert_int_equal(r->tuple_off + r->tuple_len, tb->tuples.len);
	const uint8_t *p = tb->tuples.data + r->tuple_off;
	assert_int_equal(p[0] << 8 | p[1], 10);
	p += 2;
	const char *want[] = {"edge", "iot.raw"};
	for (int i = 0; i < 2; i++) {
		assert_int_equal(be32(p), strlen(want[i]));
		assert_memory_equal(p + 4, want[i], strlen(want[i]));
		p += 4 + be32(p);
	}
	p += 8 + 12;      /* partition, offset */
	p += 4 + be32(p); /* source */
	p += 4 + be32(p); /* topic */
	assert_int_equal(be32(p), sizeof(payload) - 1);
	assert_memory_equal(p + 4, payload, sizeof(payload) - 1);
	/* The kept value rebuilds the record. */
	json_t *back = NULL;
	char err[256];
	assert_int_equal(records_decode_as(REC_RAW_MESSAGE, b.values.data + r->value_off,
	                                   r->value_len, &back, err, sizeof(err)),
	                 0);
	assert_true(json_equal(back, rec));
	json_decref(back);
	assert_false(r->refused);
	assert_false(r->from_dead_topic);
	assert_int_equal(posmap_get(&b.pos, "iot.raw", 3), 42);
	json_decref(rec);
	batch_free(&b);
}

static void test_refused_on_arrival(void **state)
{
	(void)state;
	struct batch b = {0};
	struct origin o = {.cluster = "-", .topic = "-", .partition = -1, .offset = 1};
	json_t *good = raw("x", 1, 0);
	json_t *bad = raw("y", 1, 0);
	json_object_set_new(bad, "qos", json_string("high")); /* not from a decoder */
	struct stream_msg m = {.type = REC_RAW_MESSAGE, .rec = good, .topic = "-", .partition = -1};
	assert_int_equal(batch_add(&b, tables, &m, &o, NULL), 0);
	size_t len = b.tb[REC_RAW_MESSAGE].tuples.len;
	m.rec = bad;
	m.offset = 2;
	/* It cannot be encoded, or even kept as Avro: memory-wise nothing changes, it is an error.
	 */
	assert_int_equal(batch_add(&b, tables, &m, &o, NULL), -1);
	assert_int_equal(b.n, 1);
	assert_int_equal(b.tb[REC_RAW_MESSAGE].tuples.len, len);
	/* From Kafka the value is kept as read; a record whose fields do not fit the columns
	 * (only possible for records not made by the decoder) is queued refused, without a tuple.
	 */
	rd_kafka_message_t km = {.payload = (void *)"avro", .len = 4};
	m.kmsg = &km;
	assert_int_equal(batch_add(&b, tables, &m, &o, NULL), 0);
	assert_int_equal(b.n, 2);
	assert_true(b.rows[1].refused);
	assert_int_equal(b.rows[1].tuple_len, 0);
	assert_string_equal(b.rows[1].sqlstate, "");
	assert_non_null(strstr(b.rows[1].reason, "raw_messages: qos: value of the wrong type"));
	assert_int_equal(b.tb[REC_RAW_MESSAGE].tuples.len, len);
	assert_int_equal(b.rows[1].value_len, 4);
	m.kmsg = NULL;
	m.rec = good;
	assert_int_equal(batch_add(&b, tables, &m, &o, NULL), 0);
	assert_int_equal(b.n, 3);
	assert_int_equal(b.rows[2].tuple_off, len);
	assert_int_equal(posmap_get(&b.pos, "-", -1), -1); /* stdin has no partitions */
	json_decref(good);
	json_decref(bad);
	batch_free(&b);
}

static void test_refuse_and_clear(void **state)
{
	(void)state;
	struct batch b = {0};
	struct origin o = {.cluster = "c", .topic = "iot.deadletter", .partition = 0};
	json_t *rec = raw("x", 1, 0);
	struct stream_msg m = {
	    .type = REC_RAW_MESSAGE, .rec = rec, .topic = "iot.deadletter", .partition = 0};
	for (int i = 0; i < 3000; i++) {
		m.offset = i;
		assert_int_equal(batch_add(&b, tables, &m, &o, "iot.deadletter"), 0);
	}
	assert_true(b.rows[0].from_dead_topic);
	batch_refuse(&b.rows[5], "raw_messages", "22008", "22008: timestamp out of range");
	assert_true(b.rows[5].refused);
	assert_string_equal(b.rows[5].reason, "raw_messages: 22008: timestamp out of range");
	assert_string_equal(b.rows[5].sqlstate, "22008");
	void *rows = b.rows, *tuples = b.tb[REC_RAW_MESSAGE].tuples.data;
	batch_clear(&b);
	assert_int_equal(b.n, 0);
	assert_int_equal(b.tb[REC_RAW_MESSAGE].n, 0);
	assert_int_equal(b.pos.n, 0);
	m.offset = 0;
	assert_int_equal(batch_add(&b, tables, &m, &o, NULL), 0);
	assert_ptr_equal(b.rows, rows);
	assert_ptr_equal(b.tb[REC_RAW_MESSAGE].tuples.data, tuples);
	assert_false(b.rows[0].refused);
	assert_null(b.rows[0].reason);
	json_decref(rec);
	batch_free(&b);
	batch_free(NULL);
}

static void test_posmap(void **state)
{
	(void)state;
	struct posmap a = {0}, d = {0};
	assert_int_equal(posmap_get(&a, "t", 0), -1);
	for (int p = 0; p < 40; p++)
		assert_int_equal(posmap_raise(&a, p % 2 ? "t1" : "t2", p, 100 + p), 0);
	assert_int_equal(posmap_raise(&a, "t1", 1, 50), 0); /* never lowered */
	assert_int_equal(posmap_get(&a, "t1", 1), 101);
	assert_int_equal(posmap_get(&a, "t2", 1), -1);
	assert_int_equal(posmap_merge(&d, &a), 0);
	assert_int_equal(posmap_get(&d, "t2", 38), 138);
	posmap_forget(&d, "t2", 38);
	assert_int_equal(posmap_get(&d, "t2", 38), -1);
	assert_int_equal(posmap_raise(&d, "t2", 38, 7), 0);
	assert_int_equal(posmap_get(&d, "t2", 38), 7);
	posmap_clear(&a);
	assert_int_equal(posmap_get(&a, "t1", 1), -1);
	assert_int_equal(posmap_raise(&a, "other", 1, 5), 0); /* reuses a cleared slot */
	assert_int_equal(posmap_get(&a, "other", 1), 5);
	posmap_free(&a);
	posmap_free(&d);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_tuples),
	    cmocka_unit_test(test_refused_on_arrival),
	    cmocka_unit_test(test_refuse_and_clear),
	    cmocka_unit_test(test_posmap),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
