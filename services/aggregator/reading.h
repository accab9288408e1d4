/* The part of a Reading the aggregator uses, and the group-by that picks its key fields.
 *
 * A Kafka consumer sees only its partitions, and iot.clean is keyed by site, so a group must
 * include site: otherwise readings of one group would be split across consumers and each would
 * emit its own partial aggregate under the same identity. */
#ifndef IOTPIPE_AGG_READING_H
#define IOTPIPE_AGG_READING_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum agg_field { AGG_SITE, AGG_DEVICE, AGG_SENSOR, AGG_METRIC, AGG_NFIELDS };

#define AGG_BY_SITE (1u << AGG_SITE)
#define AGG_BY_DEVICE (1u << AGG_DEVICE)
#define AGG_BY_SENSOR (1u << AGG_SENSOR)
#define AGG_BY_METRIC (1u << AGG_METRIC)
#define AGG_BY_ALL (AGG_BY_SITE | AGG_BY_DEVICE | AGG_BY_SENSOR | AGG_BY_METRIC)

/* Longest site, device, sensor, metric or unit accepted (bytes): keys are held per open series,
 * so an unbounded key would make memory unbounded too. */
#define AGG_FIELD_MAX 256

/* A string that need not be NUL-terminated and may contain NUL. */
struct agg_str {
	const char *s;
	size_t len;
};

/* Every string is borrowed: it must stay valid during the call that receives the reading. */
struct agg_reading {
	struct agg_str key[AGG_NFIELDS]; /* site, device, sensor, metric */
	struct agg_str unit;
	double value;
	int64_t ts; /* event time, ms since the epoch */
};

/* "site", "device", "sensor", "metric". */
const char *agg_field_name(enum agg_field f);

/* Fills r from a Reading record (schemas/Reading.avsc); r borrows the record's strings.
 * Returns 0, or -1 with the reason when a field is missing or mistyped, or agg_reading_check
 * refuses the reading. */
int agg_reading_from_json(const json_t *rec, struct agg_reading *r, char *err, size_t errlen);
/* Returns 0 when the engine can take r, or -1 with the reason: a field longer than
 * AGG_FIELD_MAX, a value that is not finite or so large (|value| > 1e150) that the variance
 * could overflow, or an event time beyond +-AGG_TS_LIMIT. */
int agg_reading_check(const struct agg_reading *r, char *err, size_t errlen);

/* True when s holds valid UTF-8 (NUL allowed). Key fields and units become strings of the
 * output records, so the engine checks them once per series and window it creates. */
bool agg_utf8_valid(const char *s, size_t len);

/* Parses "site,device,sensor,metric" (any subset, any order, containing site) into a mask of
 * AGG_BY_* bits. Returns 0, or -1 with the reason. */
int agg_group_by_parse(const char *spec, unsigned *mask, char *err, size_t errlen);
/* Returns 0 when mask is an accepted group-by, or -1 with the reason. */
int agg_group_by_check(unsigned mask, char *err, size_t errlen);

#endif
