/* The cleaner's core: RawMessage in, validated and normalised Reading records out.
 *
 * Everything here is free of Kafka and stdio, so the same code serves the service, its unit tests
 * and its fuzzer. One call, cleaner_process(), turns one RawMessage into zero or more Readings and
 * at most one rejection. At most one, because a Rejected record's identity is the origin of its
 * raw message: a batch with several bad elements yields one rejection that names each of them,
 * while its good elements still pass.
 *
 * Payload formats, detection order, identity conventions, defaults and the mapping file are
 * described in docs/cleaner.md. */
#ifndef IOTPIPE_CLEANER_H
#define IOTPIPE_CLEANER_H

#include "config.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stable reason codes (Rejected.reason_code): for metrics and grouping, never renamed. */
enum cleaner_reason {
	CLEANER_OK = 0,
	CLEANER_PAYLOAD_TOO_LARGE,
	CLEANER_PAYLOAD_EMPTY,
	CLEANER_PAYLOAD_TOO_DEEP,
	CLEANER_PAYLOAD_NOT_UTF8,
	CLEANER_JSON_MALFORMED,
	CLEANER_BATCH_TOO_LARGE,
	CLEANER_FORMAT_UNKNOWN,
	CLEANER_TOPIC_UNMAPPED,
	CLEANER_ID_MISSING,
	CLEANER_ID_INVALID,
	CLEANER_VALUE_MISSING,
	CLEANER_VALUE_NOT_NUMBER,
	CLEANER_VALUE_NOT_FINITE,
	CLEANER_VALUE_ERROR_CODE,
	CLEANER_VALUE_OUT_OF_RANGE,
	CLEANER_UNIT_INVALID,
	CLEANER_TS_INVALID,
	CLEANER_TS_FUTURE,
	CLEANER_TS_TOO_OLD,
	CLEANER_LOCATION_INVALID,
	CLEANER_RAW_INVALID,
	CLEANER_REASON_COUNT
};

/* "payload_too_large", ...; "ok" for CLEANER_OK; NULL out of range. */
const char *cleaner_reason_code(enum cleaner_reason r);

/* Built-in payload formats. AUTO detects by shape (docs/cleaner.md, "Detection"). */
enum cleaner_format {
	CLEANER_FORMAT_AUTO = 0,
	CLEANER_FORMAT_FACTORY,
	CLEANER_FORMAT_HOME,
	CLEANER_FORMAT_POWER,
	CLEANER_FORMAT_TEMPERATURE,
	CLEANER_FORMAT_BARE,
	CLEANER_FORMAT_COUNT
};
/* "auto", "factory", "home", "power", "temperature", "bare". */
const char *cleaner_format_name(enum cleaner_format f);
/* Returns the format, or -1 for an unknown name. */
int cleaner_format_parse(const char *name);

/* Options. The field types are those config_parse() fills, so the struct can be the destination
 * of the service's option table directly (see CLEANER_OPTS). Strings and lists are
 * borrowed: they must stay valid until cleaner_new() returns. */
struct cleaner_opts {
	const char *format;          /* a cleaner_format name; NULL = "auto" */
	long long max_payload;       /* bytes; larger payloads are rejected unparsed */
	long long max_batch;         /* elements of a top-level JSON array */
	long long max_age_ms;        /* event time may be at most this far in the past */
	long long max_skew_ms;       /* ... and at most this far in the future */
	struct strlist ranges;       /* "metric=min:max" (either side may be empty = unbounded) */
	struct strlist error_values; /* "metric=v[,v...]" ("metric=" = none) */
	const char *mapping;         /* mapping file path, or NULL */
	const char *mapping_text;    /* mapping rules inline (tests, embedding); NULL = none */
};

#define CLEANER_DEFAULT_MAX_PAYLOAD "256k"
#define CLEANER_DEFAULT_MAX_BATCH "10000"
#define CLEANER_DEFAULT_MAX_AGE "7d"
#define CLEANER_DEFAULT_MAX_SKEW "5m"
/* Identifiers longer than this are rejected (they become MQTT topic levels and table keys). */
#define CLEANER_ID_MAX 128
/* Bracket nesting deeper than this is rejected before parsing (jansson recurses per level). */
#define CLEANER_MAX_DEPTH 32

/* Sets every field to its default (the CLEANER_DEFAULT_* values; no ranges or error values
 * beyond the built-in ones, no mapping). */
void cleaner_opts_default(struct cleaner_opts *o);

/* The option table entries for o, to splice into a service's table (like SERVICE_OPTS):
 *   static struct opt table[] = { SERVICE_OPTS(...), CLEANER_OPTS(&opt.cleaner), ..., {NULL} };
 * Their defaults are the CLEANER_DEFAULT_* values that cleaner_opts_default() sets. */
#define CLEANER_OPTS(o)                                                                            \
	{"format",                                                                                 \
	 0,                                                                                        \
	 OPT_STRING,                                                                               \
	 &(o)->format,                                                                             \
	 "auto",                                                                                   \
	 "NAME",                                                                                   \
	 "payload format: auto, factory, home, power, temperature or bare"},                       \
	    {"max-payload",                                                                        \
	     0,                                                                                    \
	     OPT_SIZE,                                                                             \
	     &(o)->max_payload,                                                                    \
	     CLEANER_DEFAULT_MAX_PAYLOAD,                                                          \
	     "SIZE",                                                                               \
	     "reject larger payloads without parsing them",                                        \
	     0,                                                                                    \
	     1,                                                                                    \
	     1073741824.0},                                                                        \
	    {"max-batch",                                                                          \
	     0,                                                                                    \
	     OPT_INT,                                                                              \
	     &(o)->max_batch,                                                                      \
	     CLEANER_DEFAULT_MAX_BATCH,                                                            \
	     "N",                                                                                  \
	     "reject JSON arrays with more elements",                                              \
	     0,                                                                                    \
	     1,                                                                                    \
	     1e7},                                                                                 \
	    {"max-age",                                                                            \
	     0,                                                                                    \
	     OPT_DURATION,                                                                         \
	     &(o)->max_age_ms,                                                                     \
	     CLEANER_DEFAULT_MAX_AGE,                                                              \
	     "DURATION",                                                                           \
	     "reject event times older than this (raise it to back-fill)"},                        \
	    {"max-skew",                                                                           \
	     0,                                                                                    \
	     OPT_DURATION,                                                                         \
	     &(o)->max_skew_ms,                                                                    \
	     CLEANER_DEFAULT_MAX_SKEW,                                                             \
	     "DURATION",                                                                           \
	     "reject event times further than this in the future"},                                \
	    {"range",                                                                              \
	     0,                                                                                    \
	     OPT_LIST,                                                                             \
	     &(o)->ranges,                                                                         \
	     NULL,                                                                                 \
	     "METRIC=MIN:MAX",                                                                     \
	     "plausible range of a metric (repeatable; an empty side is unbounded)"},              \
	    {"error-value",                                                                        \
	     0,                                                                                    \
	     OPT_LIST,                                                                             \
	     &(o)->error_values,                                                                   \
	     NULL,                                                                                 \
	     "METRIC=V[,V]",                                                                       \
	     "values a metric's sensors send when broken (repeatable; replaces the defaults)"},    \
	{                                                                                          \
		"mapping", 'm', OPT_STRING, &(o)->mapping, NULL, "FILE",                           \
		    "mapping rules for payloads no built-in format knows (docs/cleaner.md)"        \
	}

struct cleaner;

/* Builds a cleaner: parses the format name, ranges, error values and the mapping file.
 * Returns 0 with *out owned by the caller (free with cleaner_free), or -1 with the reason in err:
 * "--range 'x': ..." or "FILE:LINE: reason" for the mapping file (a configuration error: exit 2).
 */
int cleaner_new(const struct cleaner_opts *o, struct cleaner **out, char *err, size_t errlen);
void cleaner_free(struct cleaner *c);

#define CLEANER_REASON_MAX 512

/* What one message became. Initialise once with cleaner_result_init, reuse for every message
 * (the readings array keeps its capacity), release with cleaner_result_free. */
struct cleaner_result {
	json_t *readings;                /* array of Reading objects, owned by the result; take a
	                                  * reference (json_incref) to keep one past the next call */
	enum cleaner_reason code;        /* CLEANER_OK when nothing was rejected */
	char reason[CLEANER_REASON_MAX]; /* "" when nothing was rejected */
	size_t elements;                 /* readings the payload carried (array length, else 1) */
	size_t rejected;                 /* how many of them were rejected */
};
int cleaner_result_init(struct cleaner_result *res);
void cleaner_result_free(struct cleaner_result *res);

/* Cleans one RawMessage (source, topic, payload, qos, retained, received_at; payload is a JSON
 * string holding raw bytes). now_ms is the wall clock the event-time window is measured from.
 * On return res holds the Readings that passed and, when code != CLEANER_OK, the rejection of the
 * rest (the whole message, or the bad elements of a batch: "[3] value: not a number; ...").
 * Returns 0, or -1 only when memory ran out (res is then unusable until the next call). */
int cleaner_process(struct cleaner *c, const json_t *raw, int64_t now_ms,
                    struct cleaner_result *res);

/* Counters since cleaner_new, by element: readings produced and rejections by reason. */
struct cleaner_stats {
	uint64_t messages;
	uint64_t readings;
	uint64_t rejected[CLEANER_REASON_COUNT];
};
const struct cleaner_stats *cleaner_stats(const struct cleaner *c);

/* Builds a Rejected record: raw's fields (the payload string is shared, not copied), origin
 * (NULL or an Origin object {cluster, topic, partition, offset}; a reference is taken), stage
 * "cleaner", reason and its reason_code. Returns a new reference, or NULL when memory ran out. */
json_t *cleaner_rejected_new(const json_t *raw, const json_t *origin, enum cleaner_reason code,
                             const char *reason);

#endif
