/* Avro codec: canonical form and fingerprints against the Avro specification's published
 * vectors, round trips of every suite record, schema evolution, and hostile bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "avro.h"
#include "jsonl.h"
#include "records.h"

struct vector {
	const char *input;
	const char *canonical;
	int64_t fingerprint; /* 0 = not published for this case */
};

/* Cases from the Avro specification's schema test data (inputs, canonical forms, fingerprints). */
static const struct vector vectors[] = {
	{"\"null\"", "\"null\"", 7195948357588979594LL},
	{"{\"type\":\"null\"}", "\"null\"", 0},
	{"\"boolean\"", "\"boolean\"", -6970731678124411036LL},
	{"\"int\"", "\"int\"", 8247732601305521295LL},
	{"\"long\"", "\"long\"", -3434872931120570953LL},
	{"\"float\"", "\"float\"", 5583340709985441680LL},
	{"\"double\"", "\"double\"", -8181574048448539266LL},
	{"\"bytes\"", "\"bytes\"", 5746618253357095269LL},
	{"\"string\"", "\"string\"", -8142146995180207161LL},
	{"[ \"int\"  ]", "[\"int\"]", -5232228896498058493LL},
	{"[ \"int\" , {\"type\":\"boolean\"} ]", "[\"int\",\"boolean\"]", 5392556393470105090LL},
	{"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\"}",
	 "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", -4824392279771201922LL},
	{"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"namespace\":\"x.y\"}",
	 "{\"name\":\"x.y.foo\",\"type\":\"record\",\"fields\":[]}", 5916914534497305771LL},
	{"{\"fields\":[], \"type\":\"record\", \"name\":\"a.b.foo\", \"namespace\":\"x.y\"}",
	 "{\"name\":\"a.b.foo\",\"type\":\"record\",\"fields\":[]}", -4616218487480524110LL},
	{"{\"fields\":[], \"type\":\"record\", \"name\":\"foo\", \"doc\":\"foo\", \"aliases\":[\"foo\",\"bar\"]}",
	 "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[]}", -4824392279771201922LL},
	{"{\"fields\":[{\"type\":{\"type\":\"boolean\"}, \"name\":\"f1\"}], \"type\":\"record\", \"name\":\"foo\"}",
	 "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"}]}",
	 7843277075252814651LL},
	{"{ \"fields\":[{\"type\":\"boolean\", \"aliases\":[], \"name\":\"f1\", \"default\":\"true\"},\n"
	 " {\"order\":\"descending\",\"name\":\"f2\",\"doc\":\"Hello\",\"type\":\"int\"}],\n"
	 " \"type\":\"record\", \"name\":\"foo\"}",
	 "{\"name\":\"foo\",\"type\":\"record\",\"fields\":[{\"name\":\"f1\",\"type\":\"boolean\"},{\"name\":\"f2\",\"type\":\"int\"}]}",
	 -4860222112080293046LL},
	{"{\"type\":\"enum\", \"name\":\"foo\", \"symbols\":[\"A1\"]}",
	 "{\"name\":\"foo\",\"type\":\"enum\",\"symbols\":[\"A1\"]}", -6342190197741309591LL},
	{"{\"namespace\":\"x.y.z\", \"type\":\"enum\", \"name\":\"foo\", \"doc\":\"foo bar\", \"symbols\":[\"A1\", \"A2\"]}",
	 "{\"name\":\"x.y.z.foo\",\"type\":\"enum\",\"symbols\":[\"A1\",\"A2\"]}", -4448647247586288245LL},
	{"{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}",
	 "{\"name\":\"foo\",\"type\":\"fixed\",\"size\":15}", 1756455273707447556LL},
	{"{\"namespace\":\"x.y.z\", \"type\":\"fixed\", \"name\":\"foo\", \"doc\":\"foo bar\", \"size\":32}",
	 "{\"name\":\"x.y.z.foo\",\"type\":\"fixed\",\"size\":32}", -3064184465700546786LL},
	{"{ \"items\":{\"type\":\"null\"}, \"type\":\"array\"}", "{\"type\":\"array\",\"items\":\"null\"}",
	 -589620603366471059LL},
	{"{ \"values\":\"string\", \"type\":\"map\"}", "{\"type\":\"map\",\"values\":\"string\"}",
	 -8732877298790414990LL},
	{"{\"name\":\"PigValue\",\"type\":\"record\",\n"
	 " \"fields\":[{\"name\":\"value\", \"type\":[\"null\", \"int\", \"long\", \"PigValue\"]}]}",
	 "{\"name\":\"PigValue\",\"type\":\"record\",\"fields\":[{\"name\":\"value\",\"type\":[\"null\",\"int\",\"long\",\"PigValue\"]}]}",
	 -1759257747318642341LL},
};

static void test_canonical_and_fingerprints(void **state)
{
	(void)state;
	char err[256];
	size_t with_fp = 0;
	for (size_t i = 0; i < sizeof(vectors) / sizeof(*vectors); i++) {
		struct avro_schema *s = avro_schema_parse(vectors[i].input, err, sizeof(err));
		if (!s)
			fail_msg("vector %zu: %s", i, err);
		assert_string_equal(avro_schema_canonical(s), vectors[i].canonical);
		if (vectors[i].fingerprint) {
			assert_int_equal((int64_t)avro_schema_fingerprint(s), vectors[i].fingerprint);
			with_fp++;
		}
		avro_schema_free(s);
	}
	assert_true(with_fp >= 10);
}

static void test_bad_schemas(void **state)
{
	(void)state;
	const char *bad[] = {"", "{", "\"nosuchtype\"", "{\"type\":\"record\"}",
			     "{\"type\":\"record\",\"name\":\"r\",\"fields\":[{\"name\":\"a\"}]}",
			     "{\"type\":\"enum\",\"name\":\"e\",\"symbols\":[]}", "[\"int\",\"int\"]",
			     "{\"type\":\"fixed\",\"name\":\"f\",\"size\":-1}", "[[\"int\"]]"};
	char err[256];
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		err[0] = 0;
		struct avro_schema *s = avro_schema_parse(bad[i], err, sizeof(err));
		if (s)
			fail_msg("schema %zu (%s) should be refused", i, bad[i]);
		assert_true(err[0] != 0);
	}
}

static void setup_records(void)
{
	char err[256];
	if (records_init(err, sizeof(err)) < 0)
		fail_msg("records_init: %s", err);
}

/* Every fixture line: JSON lines -> in-memory -> Avro -> in-memory -> JSON lines, unchanged. */
static void test_roundtrip_all_records(void **state)
{
	(void)state;
	setup_records();
	FILE *f = fopen("tests/fixtures/records/samples.jsonl", "r");
	assert_non_null(f);
	struct jsonl_reader r;
	jsonl_reader_init(&r, f, 1 << 20);
	int seen[REC_TYPE_COUNT] = {0};
	char err[256];
	int rc;
	while ((rc = jsonl_reader_next(&r)) == 1) {
		/* Find the record type whose schema accepts the line exactly. */
		int matched = 0;
		for (int t = 0; t < REC_TYPE_COUNT && !matched; t++) {
			json_t *probe = json_loadb((char *)r.line.data, r.line.len, 0, NULL);
			assert_non_null(probe);
			size_t nfields = avro_record_field_count(records_schema(t));
			int same_keys = json_object_size(probe) == nfields;
			for (size_t k = 0; same_keys && k < nfields; k++)
				same_keys = json_object_get(probe, avro_record_field_name(
									   records_schema(t), k)) != NULL;
			json_decref(probe);
			if (!same_keys)
				continue;
			json_t *rec = NULL, *back = NULL;
			struct buf avro = {0}, text = {0};
			if (jsonl_parse(records_schema(t), (char *)r.line.data, r.line.len, &rec, err,
					sizeof(err)) < 0)
				fail_msg("line %ld: %s", r.lineno, err);
			if (records_encode(t, rec, &avro, err, sizeof(err)) < 0)
				fail_msg("line %ld: encode: %s", r.lineno, err);
			enum rec_type got;
			if (records_decode(avro.data, avro.len, &got, &back, err, sizeof(err)) < 0)
				fail_msg("line %ld: decode: %s", r.lineno, err);
			assert_int_equal(got, t);
			assert_true(json_equal(rec, back));
			if (jsonl_format(records_schema(t), back, &text, err, sizeof(err)) < 0)
				fail_msg("line %ld: format: %s", r.lineno, err);
			/* Compare as JSON values: the text form of doubles may differ (120 vs 120.0). */
			json_t *a = json_loadb((char *)r.line.data, r.line.len, 0, NULL);
			json_t *b = json_loadb((char *)text.data, text.len, 0, NULL);
			assert_non_null(b);
			assert_true(json_equal(a, b));
			json_decref(a);
			json_decref(b);
			json_decref(rec);
			json_decref(back);
			buf_free(&avro);
			buf_free(&text);
			seen[t]++;
			matched = 1;
		}
		if (!matched)
			fail_msg("fixture line %ld matches no record schema", r.lineno);
	}
	assert_int_equal(rc, 0);
	jsonl_reader_free(&r);
	fclose(f);
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		if (!seen[t])
			fail_msg("no fixture for %s", records_name(t));
	records_shutdown();
}

/* A Reading written by the first schema version (no device_type) reads with the default. */
static void test_old_writer_gets_defaults(void **state)
{
	(void)state;
	setup_records();
	FILE *f = fopen("schemas/history/Reading.v1.avsc", "r");
	assert_non_null(f);
	char text[8192];
	size_t n = fread(text, 1, sizeof(text) - 1, f);
	text[n] = 0;
	fclose(f);
	char err[256];
	struct avro_schema *v1 = avro_schema_parse(text, err, sizeof(err));
	assert_non_null(v1);
	json_t *old = json_pack("{s:s,s:s,s:s,s:s,s:s,s:f,s:I,s:I,s:n,s:{s:s}}", "site", "h",
				"device", "d", "sensor", "s", "metric", "temperature", "unit", "C",
				"value", 20.5, "ts", (json_int_t)1000, "received_at", (json_int_t)1001,
				"location", "tags", "k", "v");
	struct buf b = {0};
	uint64_t fp = avro_schema_fingerprint(v1);
	uint8_t hdr[10] = {0xC3, 0x01};
	for (int i = 0; i < 8; i++)
		hdr[2 + i] = (uint8_t)(fp >> (8 * i));
	buf_append(&b, hdr, 10);
	assert_int_equal(avro_encode(v1, old, &b, err, sizeof(err)), 0);
	json_t *now = NULL;
	enum rec_type t;
	if (records_decode(b.data, b.len, &t, &now, err, sizeof(err)) < 0)
		fail_msg("decode v1: %s", err);
	assert_int_equal(t, REC_READING);
	assert_true(json_is_null(json_object_get(now, "device_type")));
	assert_string_equal(rec_str(now, "site"), "h");
	assert_true(rec_double(now, "value", 0) == 20.5);
	json_decref(now);
	json_decref(old);
	buf_free(&b);
	avro_schema_free(v1);
	records_shutdown();
}

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

/* 100k random, truncated and bit-flipped values: errors, never a crash (ASan/UBSan/LSan). */
static void test_hostile_bytes(void **state)
{
	(void)state;
	setup_records();
	json_t *reading = json_pack("{s:s,s:s,s:s,s:s,s:s,s:f,s:I,s:I,s:n,s:s,s:{s:s,s:s}}", "site",
				    "home1", "device", "kitchen", "sensor", "t0", "metric",
				    "temperature", "unit", "C", "value", 21.5, "ts",
				    (json_int_t)1762077600000, "received_at",
				    (json_int_t)1762077600042, "location", "device_type", "x",
				    "tags", "a", "b", "c", "d");
	struct buf good = {0};
	char err[256];
	assert_int_equal(records_encode(REC_READING, reading, &good, err, sizeof(err)), 0);
	uint8_t data[512];
	long ok = 0, bad = 0;
	for (int i = 0; i < 100000; i++) {
		size_t len;
		int mode = i % 4;
		if (mode == 0) { /* random bytes after a valid header */
			len = 10 + rng() % 100;
			memcpy(data, good.data, 10);
			for (size_t k = 10; k < len; k++)
				data[k] = (uint8_t)rng();
		} else if (mode == 1) { /* truncated */
			len = rng() % good.len;
			memcpy(data, good.data, len);
		} else if (mode == 2) { /* bit flips */
			len = good.len;
			memcpy(data, good.data, len);
			for (int k = 0; k < 3; k++)
				data[rng() % len] ^= (uint8_t)(1u << (rng() % 8));
		} else { /* pure garbage */
			len = rng() % sizeof(data);
			for (size_t k = 0; k < len; k++)
				data[k] = (uint8_t)rng();
		}
		json_t *out = NULL;
		enum rec_type t;
		if (records_decode(data, len, &t, &out, err, sizeof(err)) == 0) {
			ok++;
			json_decref(out);
		} else {
			assert_null(out);
			assert_true(err[0] != 0);
			bad++;
		}
	}
	assert_true(bad > 90000);
	print_message("hostile bytes: %ld decoded, %ld refused\n", ok, bad);
	json_decref(reading);
	buf_free(&good);
	records_shutdown();
}

static void test_encode_errors_name_the_field(void **state)
{
	(void)state;
	setup_records();
	json_t *r = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "site", "h", "device", "d",
			      "sensor", "s", "metric", "m", "unit", "C", "value", "hot", "ts",
			      (json_int_t)1, "received_at", (json_int_t)2);
	struct buf b = {0};
	char err[256];
	assert_int_equal(records_encode(REC_READING, r, &b, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Reading.value"));
	assert_int_equal(b.len, 0);
	json_decref(r);
	buf_free(&b);
	records_shutdown();
}

static void test_jsonl_errors(void **state)
{
	(void)state;
	setup_records();
	const struct avro_schema *s = records_schema(REC_RAW_MESSAGE);
	json_t *out;
	char err[256];
	const char *lines[] = {
		"not json", "{}", "{\"source\":1}",
		"{\"source\":\"a\",\"topic\":\"t\",\"payload\":{\"base64\":\"!!\"},\"qos\":1,\"retained\":false,\"received_at\":1}",
		"{\"source\":\"a\",\"topic\":\"t\",\"payload\":\"x\",\"qos\":9999999999,\"retained\":false,\"received_at\":1}",
	};
	for (size_t i = 0; i < sizeof(lines) / sizeof(*lines); i++) {
		assert_int_equal(jsonl_parse(s, lines[i], strlen(lines[i]), &out, err, sizeof(err)),
				 -1);
		assert_null(out);
	}
	records_shutdown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical_and_fingerprints),
		cmocka_unit_test(test_bad_schemas),
		cmocka_unit_test(test_roundtrip_all_records),
		cmocka_unit_test(test_old_writer_gets_defaults),
		cmocka_unit_test(test_hostile_bytes),
		cmocka_unit_test(test_encode_errors_name_the_field),
		cmocka_unit_test(test_jsonl_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
