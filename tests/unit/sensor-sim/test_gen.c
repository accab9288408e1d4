/* sensor-sim's generator: determinism, the invalid fraction and kinds, every format's payload
 * shape and topic layout, back-fill times, batches, and the rooms' response to heat pumps. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gen.h"
#include "tally.h"

#define START_TS 1704067200000LL /* 2024-01-01T00:00:00Z */

static struct gen *make(enum gen_format f, long sites, long devices, long sensors, int batch,
                        double invalid, uint64_t seed)
{
	struct gen_config c;
	gen_config_init(&c);
	c.format = f;
	c.sites = sites;
	c.devices = devices;
	c.sensors = sensors;
	c.batch = batch;
	c.invalid = invalid;
	c.seed = seed;
	c.backfill = true;
	c.start_ts = START_TS;
	char err[256];
	struct gen *g = gen_new(&c, err, sizeof(err));
	if (!g)
		fail_msg("gen_new: %s", err);
	return g;
}

static size_t split_topic(const char *topic, char levels[][64], size_t max)
{
	size_t n = 0;
	const char *p = topic;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (n < max) {
			assert_true(len < 64);
			memcpy(levels[n], p, len);
			levels[n][len] = 0;
		}
		n++;
		if (!slash)
			return n;
		p = slash + 1;
	}
}

static json_t *parse(const struct gen_msg *m)
{
	json_error_t e;
	json_t *j = json_loadb((const char *)m->payload.data, m->payload.len, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("payload on %s is not JSON: %s: %s", (char *)m->topic.data, e.text,
		         (char *)m->payload.data);
	return j;
}

static void test_same_seed_same_bytes(void **state)
{
	(void)state;
	struct gen *a = make(GEN_MIXED, 2, 9, 3, 1, 0.1, 42);
	struct gen *b = make(GEN_MIXED, 2, 9, 3, 1, 0.1, 42);
	struct gen *c = make(GEN_MIXED, 2, 9, 3, 1, 0.1, 43);
	struct gen_msg ma = {0}, mb = {0}, mc = {0};
	int differ = 0;
	for (int i = 0; i < 5000; i++) {
		/* Different wall clocks: back-fill must not look at them. */
		assert_int_equal(gen_next(a, 1000 + i, &ma), 0);
		assert_int_equal(gen_next(b, 999999 - i, &mb), 0);
		assert_int_equal(gen_next(c, 1000 + i, &mc), 0);
		assert_string_equal((char *)ma.topic.data, (char *)mb.topic.data);
		assert_int_equal(ma.payload.len, mb.payload.len);
		assert_memory_equal(ma.payload.data, mb.payload.data, ma.payload.len);
		assert_int_equal(ma.invalid, mb.invalid);
		assert_int_equal(ma.time_ms, mb.time_ms);
		differ += ma.payload.len != mc.payload.len ||
		          memcmp(ma.payload.data, mc.payload.data, ma.payload.len) != 0;
	}
	/* Another seed changes values and which messages are invalid. */
	assert_true(differ > 4000);
	gen_msg_free(&ma);
	gen_msg_free(&mb);
	gen_msg_free(&mc);
	gen_free(a);
	gen_free(b);
	gen_free(c);
}

static void test_invalid_fraction(void **state)
{
	(void)state;
	static const double fractions[] = {0.0, 0.01, 0.05, 0.3, 0.5, 1.0};
	for (size_t k = 0; k < sizeof(fractions) / sizeof(*fractions); k++) {
		double f = fractions[k];
		struct gen *g = make(GEN_MIXED, 3, 8, 2, 1, f, 7 + k);
		struct gen_msg m = {0};
		struct tally t = {0};
		const int n = 20000;
		for (int i = 0; i < n; i++) {
			assert_int_equal(gen_next(g, 0, &m), 0);
			tally_add(&t, &m);
			/* The running count never strays from i x fraction either. */
			double invalid = (double)(t.messages - t.by_invalid[GEN_VALID]);
			assert_true(fabs(invalid - (double)(i + 1) * f) <= 1.0);
		}
		assert_int_equal(t.messages, n);
		if (f > 0.2)
			for (int kind = GEN_MALFORMED; kind < GEN_INVALID_COUNT; kind++)
				assert_true(t.by_invalid[kind] > 0);
		gen_msg_free(&m);
		gen_free(g);
	}
}

/* Checks one element of a valid message of format f on topic levels lv. */
static void check_shape(int f, json_t *e, char lv[][64], size_t nlev)
{
	switch (f) {
	case GEN_FACTORY:
	case GEN_FACTORY_HUMAN:
	case GEN_FACTORY_TYPE: {
		assert_true(json_is_object(e));
		assert_true(json_is_integer(json_object_get(e, "ts")));
		assert_true(json_is_number(json_object_get(e, "measurement")));
		json_t *md = json_object_get(e, "metadata");
		assert_true(json_is_object(md));
		assert_true(json_is_integer(json_object_get(md, "siteId")));
		assert_true(json_is_integer(json_object_get(md, "deviceId")));
		assert_true(json_is_integer(json_object_get(md, "sensorId")));
		assert_true(json_is_string(json_object_get(md, "unit")));
		/* factory/<siteId>/<deviceId>/data agrees with the payload. */
		assert_int_equal(nlev, 4);
		assert_string_equal(lv[0], "factory");
		assert_string_equal(lv[3], "data");
		assert_int_equal(atoll(lv[1]), json_integer_value(json_object_get(md, "siteId")));
		assert_int_equal(atoll(lv[2]), json_integer_value(json_object_get(md, "deviceId")));
		json_t *loc = json_object_get(e, "location");
		assert_null(json_object_get(md, "location"));
		assert_true((f == GEN_FACTORY_HUMAN) == (loc != NULL));
		assert_true((f == GEN_FACTORY_HUMAN) == (json_object_get(e, "ts_human") != NULL));
		if (loc) {
			assert_true(json_is_real(json_object_get(loc, "latitude")));
			assert_true(json_is_real(json_object_get(loc, "longitude")));
			assert_true(json_is_string(json_object_get(e, "ts_human")));
		}
		assert_true((f == GEN_FACTORY_TYPE) ==
		            json_is_string(json_object_get(md, "deviceType")));
		break;
	}
	case GEN_HOME: {
		assert_true(json_is_object(e));
		assert_true(json_is_string(json_object_get(e, "timestamp")));
		json_t *v = json_object_get(e, "value");
		if (!v)
			v = json_object_get(e, "temperature");
		assert_true(json_is_number(v));
		assert_int_equal(nlev, 3);
		assert_true(strncmp(lv[0], "home", 4) == 0);
		assert_true(lv[1][0] != 0);
		assert_string_equal(lv[2], "temperature");
		break;
	}
	case GEN_POWER: {
		assert_true(json_is_string(json_object_get(e, "sensor_id")));
		assert_true(json_is_number(json_object_get(e, "sensor_energy_value")));
		const char *ts = json_string_value(json_object_get(e, "sensor_timestamp"));
		assert_non_null(ts);
		assert_int_equal(strlen(ts), 19); /* YYYY-MM-DD HH:MM:SS */
		assert_int_equal(ts[10], ' ');
		assert_int_equal(nlev, 3);
		assert_true(strncmp(lv[0], "site", 4) == 0);
		assert_true(strncmp(lv[1], "dev", 3) == 0);
		assert_string_equal(lv[2], "energy");
		break;
	}
	case GEN_TEMPERATURE: {
		assert_true(json_is_string(json_object_get(e, "sensor_id")));
		assert_true(json_is_integer(json_object_get(e, "timestamp")));
		assert_true(json_is_number(json_object_get(e, "temperature")));
		const char *u = json_string_value(json_object_get(e, "unit"));
		assert_non_null(u);
		assert_true(strcmp(u, "C") == 0 || strcmp(u, "F") == 0 || strcmp(u, "K") == 0);
		assert_int_equal(nlev, 3);
		assert_true(strncmp(lv[0], "site", 4) == 0);
		assert_true(strncmp(lv[1], "dev", 3) == 0);
		assert_string_equal(lv[2], "temperature");
		break;
	}
	case GEN_BARE:
		assert_true(json_is_number(e));
		assert_int_equal(nlev, 4);
		assert_true(strncmp(lv[0], "site", 4) == 0);
		assert_true(strncmp(lv[1], "dev", 3) == 0);
		assert_true(strncmp(lv[2], "s", 1) == 0);
		assert_true(strcmp(lv[3], "temperature") == 0 || strcmp(lv[3], "humidity") == 0 ||
		            strcmp(lv[3], "co2") == 0);
		break;
	default:
		fail_msg("unexpected format %d", f);
	}
}

static void test_format_shapes(void **state)
{
	(void)state;
	for (int f = 0; f < GEN_FORMAT_COUNT; f++) {
		for (int batch = 1; batch <= 4; batch += 3) {
			struct gen *g = make((enum gen_format)f, 2, 9, 4, batch, 0, 5);
			struct gen_msg m = {0};
			int seen[GEN_BASE_COUNT] = {0};
			for (int i = 0; i < 300; i++) {
				assert_int_equal(gen_next(g, 0, &m), 0);
				assert_int_equal(m.invalid, GEN_VALID);
				assert_int_equal(m.bad_readings, 0);
				char lv[8][64];
				size_t nlev = split_topic((char *)m.topic.data, lv, 8);
				json_t *j = parse(&m);
				seen[m.format]++;
				if (f < GEN_BASE_COUNT)
					assert_int_equal(m.format, f);
				if (m.batched) {
					assert_true(json_is_array(j));
					assert_int_equal(json_array_size(j), (size_t)m.readings);
					for (size_t k = 0; k < json_array_size(j); k++)
						check_shape(m.format, json_array_get(j, k), lv,
						            nlev);
				} else {
					assert_int_equal(m.readings, 1);
					check_shape(m.format, j, lv, nlev);
				}
				assert_true(m.batched ==
				            (batch > 1 || f == GEN_BATCH || json_is_array(j)));
				json_decref(j);
			}
			/* Mixed and batch runs cover every format. */
			if (f >= GEN_BASE_COUNT)
				for (int k = 0; k < GEN_BASE_COUNT; k++)
					assert_true(seen[k] > 0);
			gen_msg_free(&m);
			gen_free(g);
		}
	}
}

/* The value an invalid element carries, wherever the format keeps it. */
static json_t *value_of(int f, json_t *e)
{
	switch (f) {
	case GEN_HOME:
		return json_object_get(e, "value") ? json_object_get(e, "value")
		                                   : json_object_get(e, "temperature");
	case GEN_POWER:
		return json_object_get(e, "sensor_energy_value");
	case GEN_TEMPERATURE:
		return json_object_get(e, "temperature");
	case GEN_BARE:
		return e;
	default:
		return json_object_get(e, "measurement");
	}
}

static int64_t ts_of(int f, json_t *e)
{
	switch (f) {
	case GEN_HOME:
	case GEN_POWER: {
		const char *s = json_string_value(
		    json_object_get(e, f == GEN_HOME ? "timestamp" : "sensor_timestamp"));
		assert_non_null(s);
		return (int64_t)atoi(s) * 1000; /* the year is enough here */
	}
	case GEN_TEMPERATURE:
		return json_integer_value(json_object_get(e, "timestamp"));
	default:
		return json_integer_value(json_object_get(e, "ts"));
	}
}

static bool has_bad_char(const char *s)
{
	return strpbrk(s, "#+/") != NULL;
}

static void test_invalid_kinds_are_invalid(void **state)
{
	(void)state;
	for (int batch = 1; batch <= 3; batch += 2) {
		struct gen *g = make(GEN_MIXED, 2, 8, 2, batch, 1.0, 11);
		struct gen_msg m = {0};
		for (int i = 0; i < 2000; i++) {
			assert_int_equal(gen_next(g, 0, &m), 0);
			assert_int_not_equal(m.invalid, GEN_VALID);
			char lv[8][64];
			size_t nlev = split_topic((char *)m.topic.data, lv, 8);
			json_error_t e;
			json_t *j =
			    json_loadb((char *)m.payload.data, m.payload.len, JSON_DECODE_ANY, &e);
			json_t *el = j && json_is_array(j) ? json_array_get(j, 0) : j;
			switch (m.invalid) {
			case GEN_MALFORMED:
			case GEN_NAN:
				/* NaN is no JSON token: strict parsers refuse the payload. */
				assert_null(j);
				/* Either way the whole message is lost to a parser. */
				assert_int_equal(m.bad_readings, m.readings);
				if (m.invalid == GEN_NAN)
					assert_non_null(strstr((char *)m.payload.data, "NaN"));
				break;
			case GEN_ERROR_VALUE:
				assert_int_equal(m.format, GEN_HOME);
				assert_true(json_number_value(value_of(m.format, el)) == 100.0);
				break;
			case GEN_OUT_OF_RANGE:
				assert_true(json_number_value(value_of(m.format, el)) ==
				            -1000000.0);
				break;
			case GEN_FUTURE_TS:
				assert_int_not_equal(m.format, GEN_BARE);
				/* Back-fill puts them in the year 2100. */
				if (m.format == GEN_HOME || m.format == GEN_POWER)
					assert_int_equal(ts_of(m.format, el) / 1000, 2100);
				else
					assert_true(ts_of(m.format, el) >= 4102444800000LL);
				break;
			case GEN_BAD_ID:
				if (m.format == GEN_HOME) {
					assert_string_equal(lv[1], "");
					assert_int_equal(m.bad_readings, m.readings);
				} else if (m.format == GEN_BARE) {
					assert_int_equal(nlev, 4);
					assert_string_equal(lv[2], "");
					assert_int_equal(m.bad_readings, m.readings);
				} else if (m.format == GEN_POWER || m.format == GEN_TEMPERATURE) {
					assert_true(has_bad_char(
					    json_string_value(json_object_get(el, "sensor_id"))));
				} else {
					json_t *md = json_object_get(el, "metadata");
					assert_true(has_bad_char(
					    json_string_value(json_object_get(md, "deviceId"))));
				}
				break;
			default:
				fail_msg("kind %d", m.invalid);
			}
			/* In a batch only the first element is bad (unless the whole is). */
			if (j && json_is_array(j) && m.bad_readings == 1)
				for (size_t k = 1; k < json_array_size(j); k++)
					check_shape(m.format, json_array_get(j, k), lv, nlev);
			json_decref(j);
		}
		gen_msg_free(&m);
		gen_free(g);
	}
}

static void test_backfill_times(void **state)
{
	(void)state;
	/* 3 factory streams, batches of 4: round r covers 4 steps of 1 s. */
	struct gen *g = make(GEN_FACTORY, 1, 3, 1, 4, 0, 1);
	struct gen_msg m = {0};
	for (int i = 0; i < 30; i++) {
		assert_int_equal(gen_next(g, 0, &m), 0);
		json_t *j = parse(&m);
		int64_t base = START_TS + (int64_t)(i / 3) * 4000;
		for (size_t k = 0; k < 4; k++)
			assert_int_equal(ts_of(GEN_FACTORY, json_array_get(j, k)),
			                 base + (int64_t)k * 1000);
		assert_int_equal(m.time_ms, base + 3000);
		json_decref(j);
	}
	gen_msg_free(&m);
	gen_free(g);

	/* Live mode: readings end at the wall clock given. */
	struct gen_config c;
	gen_config_init(&c);
	c.format = GEN_TEMPERATURE;
	c.batch = 2;
	char err[128];
	g = gen_new(&c, err, sizeof(err));
	assert_non_null(g);
	assert_int_equal(gen_next(g, 5000000, &m), 0);
	json_t *j = parse(&m);
	assert_int_equal(ts_of(GEN_TEMPERATURE, json_array_get(j, 0)), 4999000);
	assert_int_equal(ts_of(GEN_TEMPERATURE, json_array_get(j, 1)), 5000000);
	json_decref(j);
	gen_msg_free(&m);
	gen_free(g);
}

/* Temperature of the only room after n more readings one minute apart. */
static double run_room(struct gen *g, struct gen_msg *m, int n)
{
	double v = 0;
	for (int i = 0; i < n; i++) {
		assert_int_equal(gen_next(g, 0, m), 0);
		json_t *j = parse(m);
		v = json_number_value(value_of(GEN_HOME, j));
		json_decref(j);
	}
	return v;
}

static void test_heat_pump_closed_loop(void **state)
{
	(void)state;
	struct gen_config c;
	gen_config_init(&c);
	c.format = GEN_HOME;
	c.devices = 2;
	c.backfill = true;
	c.start_ts = START_TS;
	c.step_ms = 60000;
	char err[128];
	struct gen *g = gen_new(&c, err, sizeof(err));
	assert_non_null(g);
	struct gen_msg m = {0};

	/* Rooms start cold (17 °C) and cool towards 10 °C with the heat pump off. */
	double t0 = run_room(g, &m, 2);
	assert_true(t0 > 16.8 && t0 < 17.2);
	double cold = run_room(g, &m, 40);
	assert_true(cold < t0 - 1.0);

	assert_int_equal(gen_heatpump_set(g, "home1", 5, "livingroom", 10, true), 1);
	assert_int_equal(gen_heatpump_set(g, "home1", 5, "livingroom", 10, true), 0);
	assert_int_equal(gen_heatpump_set(g, "home1", 5, "kitchen", 7, true), 1);
	assert_int_equal(gen_heatpump_set(g, "home1", 5, "attic", 5, true), -1);
	assert_int_equal(gen_heatpump_set(g, "home2", 5, "kitchen", 7, true), -1);
	assert_int_equal(gen_heatpump_set(g, "home", 4, "1/kitchen", 9, true), -1);
	size_t rooms;
	assert_int_equal(gen_heatpumps_on(g, &rooms), 2);
	assert_int_equal(rooms, 2);

	/* 1 °C/min of heating against 30 min of heat loss: clearly warmer within 20 minutes. */
	double warm = run_room(g, &m, 40);
	assert_true(warm > cold + 5.0);
	assert_int_equal(gen_heatpump_set(g, "home1", 5, "livingroom", 10, false), 1);
	assert_int_equal(gen_heatpump_set(g, "home1", 5, "kitchen", 7, false), 1);
	double cooler = run_room(g, &m, 40);
	assert_true(cooler < warm - 1.0);

	gen_msg_free(&m);
	gen_free(g);

	/* Factory rooms are named by their numeric ids, as the cleaner renders them. */
	g = make(GEN_FACTORY, 2, 3, 1, 1, 0, 1);
	assert_int_equal(gen_heatpump_set(g, "102", 3, "1003", 4, true), 1);
	assert_int_equal(gen_heatpump_set(g, "103", 3, "1001", 4, true), -1);
	gen_free(g);
}

static void test_config_errors(void **state)
{
	(void)state;
	struct gen_config c;
	char err[256];
	gen_config_init(&c);
	c.devices = 0;
	assert_null(gen_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "at least 1"));
	gen_config_init(&c);
	c.invalid = 1.5;
	assert_null(gen_new(&c, err, sizeof(err)));
	gen_config_init(&c);
	c.sites = 100000;
	c.devices = 1000;
	assert_null(gen_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "streams"));
	gen_config_init(&c);
	c.step_ms = 0;
	assert_null(gen_new(&c, err, sizeof(err)));

	assert_int_equal(gen_format_parse("home"), GEN_HOME);
	assert_int_equal(gen_format_parse("mixed"), GEN_MIXED);
	assert_int_equal(gen_format_parse("nope"), -1);
	for (int f = 0; f < GEN_FORMAT_COUNT; f++)
		assert_int_equal(gen_format_parse(gen_format_name(f)), f);
	gen_free(NULL);
	gen_msg_free(NULL);
}

static void test_tally_json(void **state)
{
	(void)state;
	struct gen *g = make(GEN_MIXED, 1, 8, 1, 1, 0.25, 3);
	struct gen_msg m = {0};
	struct tally t = {.mode = "stdout"};
	for (int i = 0; i < 400; i++) {
		assert_int_equal(gen_next(g, 0, &m), 0);
		tally_add(&t, &m);
	}
	json_t *j = tally_json(&t);
	assert_non_null(j);
	assert_int_equal(json_integer_value(json_object_get(j, "messages")), 400);
	json_int_t invalid = json_integer_value(json_object_get(j, "invalid"));
	assert_true(invalid >= 99 && invalid <= 101);
	assert_int_equal(invalid + json_integer_value(json_object_get(j, "valid")), 400);
	json_t *kinds = json_object_get(j, "invalid_by_kind");
	json_int_t sum = 0;
	const char *k;
	json_t *v;
	json_object_foreach(kinds, k, v) sum += json_integer_value(v);
	assert_int_equal(sum, invalid);
	assert_int_equal(json_integer_value(json_object_get(j, "readings")) -
	                     json_integer_value(json_object_get(j, "valid_readings")),
	                 (json_int_t)t.bad_readings);
	json_decref(j);
	gen_msg_free(&m);
	gen_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_same_seed_same_bytes),
	    cmocka_unit_test(test_invalid_fraction),
	    cmocka_unit_test(test_format_shapes),
	    cmocka_unit_test(test_invalid_kinds_are_invalid),
	    cmocka_unit_test(test_backfill_times),
	    cmocka_unit_test(test_heat_pump_closed_loop),
	    cmocka_unit_test(test_config_errors),
	    cmocka_unit_test(test_tally_json),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
