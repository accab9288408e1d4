/* Record conversions. Kept apart from the engine so the engine never touches jansson on the
 * per-reading path; only the caller's I/O layer does. */
#include "output.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static int string_field(const json_t *rec, const char *name, const char **out, char *err,
                        size_t errlen)
{
	const json_t *v = json_object_get(rec, name);
	if (!json_is_string(v)) {
		snprintf(err, errlen, "Reading.%s: missing or not a string", name);
		return -1;
	}
	/* A NUL inside would cut the C string short: "a\u0000/b" must not pass as "a". */
	if (strlen(json_string_value(v)) != json_string_length(v)) {
		snprintf(err, errlen, "Reading.%s: contains a NUL character", name);
		return -1;
	}
	*out = json_string_value(v);
	return 0;
}

int act_reading_from_json(const json_t *rec, struct act_reading *r, char *err, size_t errlen)
{
	if (!json_is_object(rec)) {
		snprintf(err, errlen, "Reading: not an object");
		return -1;
	}
	if (string_field(rec, "site", &r->site, err, errlen) ||
	    string_field(rec, "device", &r->device, err, errlen) ||
	    string_field(rec, "sensor", &r->sensor, err, errlen) ||
	    string_field(rec, "metric", &r->metric, err, errlen))
		return -1;
	const json_t *v = json_object_get(rec, "value");
	if (!json_is_number(v) || !isfinite(json_number_value(v))) {
		snprintf(err, errlen, "Reading.value: missing or not a finite number");
		return -1;
	}
	r->value = json_number_value(v);
	const json_t *ts = json_object_get(rec, "ts");
	if (!json_is_integer(ts)) {
		snprintf(err, errlen, "Reading.ts: missing or not an integer");
		return -1;
	}
	r->ts = json_integer_value(ts);
	return 0;
}

/* Builds an object from (name, value) pairs; consumes every value, also on failure (a NULL
 * value is a failed allocation). */
static json_t *object_of(size_t n, const char *const *names, json_t **values)
{
	json_t *o = json_object();
	bool ok = o != NULL;
	for (size_t i = 0; i < n; i++) {
		if (ok && values[i])
			ok = json_object_set_new(o, names[i], values[i]) == 0;
		else {
			json_decref(values[i]);
			ok = false;
		}
	}
	if (!ok) {
		json_decref(o);
		return NULL;
	}
	return o;
}

json_t *act_command_to_json(const struct act_command *c)
{
	static const char *const names[] = {"topic", "payload",    "qos",      "retained", "rule",
	                                    "side",  "site",       "device",   "sensor",   "metric",
	                                    "value", "reading_ts", "issued_at"};
	json_t *values[] = {
	    json_string(c->topic),      json_string(c->payload), json_integer(c->qos),
	    json_boolean(c->retained),  json_string(c->rule),    json_string(side_name(c->side)),
	    json_string(c->site),       json_string(c->device),  json_string(c->sensor),
	    json_string(c->metric),     json_real(c->value),     json_integer(c->reading_ts),
	    json_integer(c->issued_at),
	};
	return object_of(sizeof(names) / sizeof(*names), names, values);
}

json_t *act_event_to_json(const struct act_event *e)
{
	static const char *const names[] = {"site",       "device",    "sensor",          "metric",
	                                    "rule",       "threshold", "hysteresis",      "state",
	                                    "started_at", "ended_at",  "exceeded_for_ms", "average",
	                                    "max",        "count"};
	bool ended = e->state == EPISODE_ENDED;
	json_t *values[] = {
	    json_string(e->site),
	    json_string(e->device),
	    json_string(e->sensor),
	    json_string(e->metric),
	    json_string(e->rule),
	    json_real(e->threshold),
	    json_real(e->hysteresis),
	    json_string(ended ? "ended" : "started"),
	    json_integer(e->started_at),
	    ended ? json_integer(e->ended_at) : json_null(),
	    json_integer(ended ? e->exceeded_for_ms : 0),
	    json_real(e->average),
	    json_real(e->max),
	    json_integer(e->count),
	};
	return object_of(sizeof(names) / sizeof(*names), names, values);
}
