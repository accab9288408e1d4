/* Test helpers shared by the actuator's unit tests (header-only: each test file is its own
 * binary). A recording sink keeps every output as a canonical JSON line. */
#ifndef IOTPIPE_TEST_ACTUATOR_HELPERS_H
#define IOTPIPE_TEST_ACTUATOR_HELPERS_H

#include "actuator.h"
#include "output.h"
#include "rules.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

struct recorder {
	char **lines;
	size_t len, cap;
	size_t commands, events;
};

static inline void recorder_push(struct recorder *rec, json_t *j)
{
	assert_non_null(j);
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	json_decref(j);
	assert_non_null(s);
	if (rec->len == rec->cap) {
		rec->cap = rec->cap ? rec->cap * 2 : 16;
		rec->lines = realloc(rec->lines, rec->cap * sizeof(*rec->lines));
		assert_non_null(rec->lines);
	}
	rec->lines[rec->len++] = s;
}

static inline void recorder_command(void *ctx, const struct act_command *c)
{
	struct recorder *rec = ctx;
	rec->commands++;
	recorder_push(rec, act_command_to_json(c));
}

static inline void recorder_event(void *ctx, const struct act_event *e)
{
	struct recorder *rec = ctx;
	rec->events++;
	recorder_push(rec, act_event_to_json(e));
}

static inline struct act_sink recorder_sink(struct recorder *rec)
{
	return (struct act_sink){recorder_command, recorder_event, rec};
}

static inline void recorder_clear(struct recorder *rec)
{
	for (size_t i = 0; i < rec->len; i++)
		free(rec->lines[i]);
	free(rec->lines);
	memset(rec, 0, sizeof(*rec));
}

/* The i-th output parsed back, for field checks; caller decrefs. */
static inline json_t *recorder_get(const struct recorder *rec, size_t i)
{
	assert_true(i < rec->len);
	json_t *j = json_loads(rec->lines[i], 0, NULL);
	assert_non_null(j);
	return j;
}

static inline struct ruleset *rules_from(const char *text)
{
	char err[512] = "";
	struct ruleset *rs = rules_parse("test.rules", text, err, sizeof(err));
	if (!rs)
		fail_msg("rules did not parse: %s", err);
	return rs;
}

static inline struct actuator *actuator_from(const char *text, size_t max_states)
{
	char err[256];
	struct ruleset *rs = rules_from(text);
	struct actuator *a = actuator_new(rs, max_states, err, sizeof(err));
	if (!a)
		fail_msg("actuator_new: %s", err);
	return a;
}

#endif
