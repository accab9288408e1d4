/* Helpers shared by the forecaster's unit tests: a seeded random source with normal deviates,
 * Aggregate records from literals, and sinks that keep what the engine emits. */
#ifndef IOTPIPE_FC_TEST_H
#define IOTPIPE_FC_TEST_H

#include "engine.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define TEST_T0 1704067200000LL /* 2024-01-01T00:00:00Z */
#define TEST_MINUTE 60000LL

struct test_rng {
	uint64_t s;
};

static inline double test_unit(struct test_rng *r)
{
	r->s ^= r->s << 13;
	r->s ^= r->s >> 7;
	r->s ^= r->s << 17;
	return ((double)(r->s >> 11) + 0.5) / 9007199254740992.0;
}

/* Standard normal deviate (Box-Muller). */
static inline double test_gauss(struct test_rng *r)
{
	double u = test_unit(r), v = test_unit(r);
	return sqrt(-2.0 * log(u)) * cos(2 * M_PI * v);
}

static inline json_t *test_aggregate(const char *site, const char *metric, int64_t ws,
                                     int64_t window_ms, double mean)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, "
	                 "s:I, s:f, s:I}",
	                 "site", site, "device", "dev", "sensor", "s1", "metric", metric, "unit",
	                 "W", "window_start", (json_int_t)ws, "window_end",
	                 (json_int_t)(ws + window_ms), "window_ms", (json_int_t)window_ms, "count",
	                 (json_int_t)6, "mean", mean, "min", mean, "max", mean, "stddev", 0.0,
	                 "first", mean, "first_ts", (json_int_t)ws, "last", mean, "last_ts",
	                 (json_int_t)ws);
}

/* Keeps every forecast emitted, in order. */
struct test_sink {
	json_t *out; /* array */
	int fail;    /* refuse emissions */
};

static inline int test_sink_emit(void *ctx, const struct series *s, const json_t *forecast,
                                 char *err, size_t errlen)
{
	struct test_sink *k = ctx;
	(void)s;
	if (k->fail) {
		snprintf(err, errlen, "sink refused");
		return -1;
	}
	return json_array_append(k->out, (json_t *)forecast);
}

/* Feeds one aggregate; returns the engine's result. */
static inline enum fc_result test_feed(struct fc_engine *e, int32_t part, const char *site,
                                       const char *metric, int64_t ws, double mean)
{
	char err[512];
	json_t *a = test_aggregate(site, metric, ws, TEST_MINUTE, mean);
	enum fc_result r = fc_engine_add(e, part, a, err, sizeof(err));
	json_decref(a);
	return r;
}

#endif
