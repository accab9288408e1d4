/* Helpers shared by the aggregator's unit tests: readings from literals, and an emit callback
 * that keeps every aggregate it receives. */
#ifndef IOTPIPE_AGG_TEST_H
#define IOTPIPE_AGG_TEST_H

#include "engine.h"

#include <jansson.h>
#include <stdbool.h>
#include <string.h>

static inline struct agg_str test_str(const char *s)
{
	return (struct agg_str){.s = s, .len = strlen(s)};
}

static inline struct agg_reading test_reading(const char *site, const char *device,
                                              const char *sensor, const char *metric, double value,
                                              int64_t ts)
{
	struct agg_reading r = {.value = value, .ts = ts};
	r.key[AGG_SITE] = test_str(site);
	r.key[AGG_DEVICE] = test_str(device);
	r.key[AGG_SENSOR] = test_str(sensor);
	r.key[AGG_METRIC] = test_str(metric);
	r.unit = test_str("C");
	return r;
}

/* Collects emitted aggregates in order; fail makes the callback refuse. */
struct test_sink {
	json_t *out; /* array */
	bool fail;
};

static inline int test_sink_emit(void *ctx, int32_t partition, json_t *agg, char *err,
                                 size_t errlen)
{
	struct test_sink *s = ctx;
	(void)partition;
	if (s->fail) {
		snprintf(err, errlen, "sink refused");
		return -1;
	}
	return json_array_append(s->out, agg);
}

static inline struct agg_config test_config(struct test_sink *sink, int64_t size, int64_t hop,
                                            int64_t grace)
{
	struct agg_config c = {
	    .window = {.size_ms = size, .hop_ms = hop},
	    .grace_ms = grace,
	    .idle_timeout_ms = 0,
	    .group_by = AGG_BY_ALL,
	    .max_windows = 100000,
	    .emit = test_sink_emit,
	    .emit_ctx = sink,
	};
	return c;
}

/* The index-th emitted aggregate's integer / double field. */
static inline int64_t test_int(const struct test_sink *s, size_t index, const char *field)
{
	return json_integer_value(json_object_get(json_array_get(s->out, index), field));
}

static inline double test_real(const struct test_sink *s, size_t index, const char *field)
{
	return json_number_value(json_object_get(json_array_get(s->out, index), field));
}

static inline const char *test_text(const struct test_sink *s, size_t index, const char *field)
{
	return json_string_value(json_object_get(json_array_get(s->out, index), field));
}

#endif
