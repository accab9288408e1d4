/* What the cleaner's unit tests share (each test_*.c is its own binary, so these are
 * static inline). Self-contained: it brings the cmocka headers with it. */
#ifndef CLEANER_TEST_H
#define CLEANER_TEST_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "clean_internal.h"
#include "cleaner.h"
#include "schemas_embedded.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2025-11-02T10:00:00Z: the wall clock of most tests. */
#define NOW_MS 1762077600000LL

static inline struct cleaner *cl_new_opts(const struct cleaner_opts *o)
{
	struct cleaner *c = NULL;
	char err[512];
	int rc = cleaner_new(o, &c, err, sizeof(err));
	if (rc)
		fail_msg("cleaner_new: %s", err);
	return c;
}

static inline struct cleaner *cl_new(void)
{
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	return cl_new_opts(&o);
}

/* A RawMessage with payload bytes p[0..len). */
static inline json_t *raw_newn(const char *topic, const char *p, size_t len, int64_t received_at)
{
	json_t *raw = json_object();
	json_object_set_new(raw, "source", json_string("test"));
	json_object_set_new(raw, "topic", json_stringn_nocheck(topic, strlen(topic)));
	json_object_set_new(raw, "payload", json_stringn_nocheck(p, len));
	json_object_set_new(raw, "qos", json_integer(1));
	json_object_set_new(raw, "retained", json_false());
	json_object_set_new(raw, "received_at", json_integer(received_at));
	return raw;
}

static inline json_t *raw_new(const char *topic, const char *payload)
{
	return raw_newn(topic, payload, strlen(payload), NOW_MS);
}

/* Cleans (topic, payload) at now into res. */
static inline void run_at(struct cleaner *c, const char *topic, const char *payload, int64_t now,
                          struct cleaner_result *res)
{
	json_t *raw = raw_newn(topic, payload, strlen(payload), now);
	assert_int_equal(cleaner_process(c, raw, now, res), 0);
	json_decref(raw);
}

static inline void run(struct cleaner *c, const char *topic, const char *payload,
                       struct cleaner_result *res)
{
	run_at(c, topic, payload, NOW_MS, res);
}

/* The readings of res must all match Reading.avsc; checks the field names and JSON types. */
static inline void assert_reading_shape(const json_t *r)
{
	static const struct {
		const char *name;
		int type; /* json_type; -1 = null or object (location), -2 = null or string */
	} fields[] = {
	    {"site", JSON_STRING},   {"device", JSON_STRING},       {"sensor", JSON_STRING},
	    {"metric", JSON_STRING}, {"unit", JSON_STRING},         {"value", JSON_REAL},
	    {"ts", JSON_INTEGER},    {"received_at", JSON_INTEGER}, {"location", -1},
	    {"device_type", -2},     {"tags", JSON_OBJECT},
	};
	size_t n = sizeof(fields) / sizeof(*fields);
	assert_int_equal(json_object_size(r), n);
	for (size_t i = 0; i < n; i++) {
		const json_t *v = json_object_get(r, fields[i].name);
		if (!v)
			fail_msg("Reading lacks %s", fields[i].name);
		int t = (int)json_typeof(v);
		if (fields[i].type == -1) {
			assert_true(t == JSON_NULL || t == JSON_OBJECT);
			if (t == JSON_OBJECT) {
				assert_int_equal(json_object_size(v), 2);
				assert_true(json_is_real(json_object_get(v, "lat")));
				assert_true(json_is_real(json_object_get(v, "lon")));
			}
		} else if (fields[i].type == -2) {
			assert_true(t == JSON_NULL || t == JSON_STRING);
		} else if (t != fields[i].type) {
			fail_msg("Reading.%s has JSON type %d, want %d", fields[i].name, t,
			         fields[i].type);
		}
	}
	const char *k;
	json_t *tv;
	json_object_foreach((json_t *)json_object_get(r, "tags"), k, tv)
	{
		assert_true(json_is_string(tv));
	}
}

/* Exactly one reading and no rejection; returns it (borrowed from res). */
static inline json_t *one_reading(const struct cleaner_result *res)
{
	if (res->code != CLEANER_OK)
		fail_msg("rejected: %s (%s)", res->reason, cleaner_reason_code(res->code));
	assert_int_equal(json_array_size(res->readings), 1);
	json_t *r = json_array_get(res->readings, 0);
	assert_reading_shape(r);
	return r;
}

/* What a reading must say. */
struct want {
	const char *site, *device, *sensor, *metric, *unit;
	double value;
	int64_t ts;
};

static inline const char *field_str(const json_t *r, const char *key)
{
	return json_string_value(json_object_get(r, key));
}

static inline void assert_reading_is(const json_t *r, struct want w)
{
	assert_string_equal(field_str(r, "site"), w.site);
	assert_string_equal(field_str(r, "device"), w.device);
	assert_string_equal(field_str(r, "sensor"), w.sensor);
	assert_string_equal(field_str(r, "metric"), w.metric);
	assert_string_equal(field_str(r, "unit"), w.unit);
	assert_float_equal(json_real_value(json_object_get(r, "value")), w.value, 1e-9);
	assert_int_equal(json_integer_value(json_object_get(r, "ts")), w.ts);
}

static inline void expect_reading(struct cleaner *c, const char *topic, const char *payload,
                                  const char *site, const char *device, const char *sensor,
                                  const char *metric, const char *unit, double value, int64_t ts)
{
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, topic, payload, &res);
	json_t *r = one_reading(&res);
	assert_reading_is(r, (struct want){site, device, sensor, metric, unit, value, ts});
	assert_int_equal(json_integer_value(json_object_get(r, "received_at")), NOW_MS);
	cleaner_result_free(&res);
}

/* The message is rejected as a whole with code, and the reason contains `reason`. */
static inline void expect_reject_at(struct cleaner *c, const char *topic, const char *payload,
                                    int64_t now, enum cleaner_reason code, const char *reason)
{
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run_at(c, topic, payload, now, &res);
	if (res.code != code)
		fail_msg("payload %.60s: got %s (%s), want %s", payload,
		         cleaner_reason_code(res.code), res.reason, cleaner_reason_code(code));
	if (!strstr(res.reason, reason))
		fail_msg("reason '%s' lacks '%s'", res.reason, reason);
	assert_int_equal(json_array_size(res.readings), 0);
	assert_int_equal(res.rejected, res.elements);
	cleaner_result_free(&res);
}

static inline void expect_reject(struct cleaner *c, const char *topic, const char *payload,
                                 enum cleaner_reason code, const char *reason)
{
	expect_reject_at(c, topic, payload, NOW_MS, code, reason);
}

static inline const char *tag(const json_t *r, const char *key)
{
	return json_string_value(json_object_get(json_object_get(r, "tags"), key));
}

/* rec has exactly the fields of the embedded schema at path (e.g. "schemas/Reading.avsc"). */
static inline void assert_fields_follow_schema(const json_t *rec, const char *path)
{
	for (const struct embedded_schema *e = embedded_schemas; e->path; e++) {
		if (strcmp(e->path, path) != 0)
			continue;
		json_t *s = json_loads(e->text, 0, NULL);
		json_t *fields = json_object_get(s, "fields");
		assert_int_equal(json_array_size(fields), json_object_size(rec));
		size_t i;
		json_t *f;
		json_array_foreach(fields, i, f)
		{
			const char *name = json_string_value(json_object_get(f, "name"));
			if (!json_object_get(rec, name))
				fail_msg("record lacks %s's field %s", path, name);
		}
		json_decref(s);
		return;
	}
	fail_msg("no embedded schema %s", path);
}

#endif
