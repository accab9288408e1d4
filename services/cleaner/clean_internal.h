/* Internals shared by the cleaner's files (not part of its API; tests may use them).
 *
 * A payload element goes through three steps: a format (built-in or a mapping rule) extracts a
 * candidate (struct cand: pointers into the parsed JSON and the topic, nothing copied), the
 * validator checks and normalises it, and reading_build turns it into a Reading object. Any step
 * may refuse the element with a verdict (reason code + text). */
#ifndef IOTPIPE_CLEAN_INTERNAL_H
#define IOTPIPE_CLEAN_INTERNAL_H

#include "cleaner.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- verdicts ---- */

#define VERDICT_MAX 256
struct verdict {
	enum cleaner_reason code;
	char text[VERDICT_MAX];
};
/* Sets the verdict and returns -1, so extractors can `return verdict_set(...)`. */
int verdict_set(struct verdict *v, enum cleaner_reason code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- untrusted text (text.c) ---- */

/* Why s cannot be an identifier ("empty", "contains '/'", ...), or NULL when it can.
 * topic_safe also forbids '+', '#' and '/', which would change an MQTT topic built from it. */
const char *text_ident_problem(const char *s, size_t len, size_t max, bool topic_safe);
/* Writes a short, quoted, ASCII-only rendering of s (for reasons); returns out. */
char *text_snippet(const char *s, size_t len, char *out, size_t n);
/* Renders any JSON value shortly for reasons ("\"abc\"", "true", "object"); returns out. */
char *text_json_snippet(const json_t *j, char *out, size_t n);
/* Strict decimal number (JSON number grammar, no spaces). 0 = finite number, 1 = a non-finite
 * spelling (nan, inf, infinity, 1e999, any case and sign), -1 = not a number. */
int text_number_parse(const char *s, size_t len, double *out);
/* Shortest "%g" rendering that reads back as the same double. */
int text_double_format(double v, char *out, size_t n);

/* ---- payload parsing (payload.c) ---- */

/* The payload as the tree json_loadb(JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)
 * builds (a new reference), or NULL when this fast path does not take it: invalid JSON, or a
 * case it leaves to jansson. On NULL, parse with jansson for the result and the error. */
json_t *payload_parse(const char *s, size_t len);
/* True when two trees are identical: types, integers, doubles bit for bit, string bytes, and
 * object members in the same order (stricter than json_equal, which ignores member order). For
 * the tests that hold payload_parse to jansson's parser. */
bool payload_tree_same(const json_t *a, const json_t *b);

/* ---- time (ts.c) ---- */

enum ts_unit { TS_AUTO = 0, TS_MS, TS_S, TS_US, TS_NS, TS_ISO8601 };
/* "auto", "ms", "s", "us", "ns", "iso8601" -> unit; -1 if unknown. */
int ts_unit_parse(const char *name);
/* ISO 8601 date-time "YYYY-MM-DD[T ]HH:MM[:SS[.f...]][Z|+HH[:MM]|-HH[:MM]]", no zone = UTC
 * (also covers "YYYY-MM-DD HH:MM:SS"). Returns 0 with ms since the epoch, or -1. */
int ts_parse_iso(const char *s, size_t len, int64_t *ms);
/* A number of the given unit (TS_AUTO: by magnitude, see docs) to ms. 0 or -1. */
int ts_from_number(double v, enum ts_unit unit, int64_t *ms);
/* A JSON number or string to ms; on failure returns -1 with the verdict set for field `name`. */
int ts_from_json(const json_t *j, enum ts_unit unit, int64_t *ms, struct verdict *v);
/* "2 days", "1 hour", "30 seconds", "250 ms" (floored to the largest unit). */
void ts_duration_format(int64_t ms, char *out, size_t n);

/* ---- topic ---- */

#define TOPIC_LEVELS_MAX 32
struct topic {
	const char *s;
	size_t len;
	size_t nlev; /* real number of levels; offsets are kept for the first TOPIC_LEVELS_MAX */
	uint32_t off[TOPIC_LEVELS_MAX];
	uint32_t lev_len[TOPIC_LEVELS_MAX];
};
void topic_split(struct topic *t, const char *s, size_t len);
/* Level i (negative counts from the end); false when there is no such level. */
bool topic_level(const struct topic *t, long i, const char **s, size_t *len);

/* ---- candidates ---- */

enum cand_id { ID_SITE, ID_DEVICE, ID_SENSOR, ID_METRIC, ID_COUNT };
extern const char *const cand_id_names[ID_COUNT];

#define CAND_CONSUMED_MAX 24
struct cand {
	const char *id[ID_COUNT]; /* NULL = missing */
	size_t id_len[ID_COUNT];
	char id_num[ID_COUNT][24]; /* identifiers sent as integers, rendered */
	const char *unit;          /* NULL = the metric's default unit */
	size_t unit_len;
	const json_t *unit_bad; /* a unit that was not text (reported by validation) */
	const json_t *value;    /* NULL = missing */
	const json_t *ts;       /* NULL = use received_at */
	enum ts_unit ts_unit;
	const json_t *lat, *lon;      /* both NULL = no location */
	const json_t *device_type;    /* NULL = none */
	const char *device_type_text; /* a constant device type (mapping rules) */
	size_t device_type_len;
	const json_t *tags_root; /* object whose other members become tags; NULL = no tags */
	const json_t *consumed[CAND_CONSUMED_MAX]; /* members that are not tags */
	size_t nconsumed;
};
void cand_reset(struct cand *c);
/* Marks j as used (not a tag). NULL and the shared true/false/null singletons are ignored. */
void cand_consume(struct cand *c, const json_t *j);
/* Looks up key in obj and marks the member used. NULL when absent. */
const json_t *cand_take(struct cand *c, const json_t *obj, const char *key);
/* Sets identifier `id` from a string, or an integer (rendered); else -1 with a verdict. */
int cand_id_from_json(struct cand *c, enum cand_id id, const json_t *j, struct verdict *v);
void cand_id_set(struct cand *c, enum cand_id id, const char *s, size_t len);

/* ---- built-in formats (formats.c) ---- */

/* The built-in format an element looks like, or CLEANER_FORMAT_AUTO when none fits. */
enum cleaner_format format_detect(const json_t *elem);
/* Fills c from elem in format f. 0, or -1 with the verdict. */
int format_extract(enum cleaner_format f, const json_t *elem, const struct topic *t, struct cand *c,
                   struct verdict *v);
/* Default unit of a metric with no unit in the payload ("C" for temperature), or "". */
const char *format_default_unit(const char *metric, size_t len);

/* ---- JSON paths (jpath.c): $.a.b[0]["c d"][-1] ---- */

#define JPATH_SEGMENTS_MAX 16
struct jpath_seg {
	char *name; /* NULL for an index */
	long index; /* negative counts from the end */
};
struct jpath {
	struct jpath_seg seg[JPATH_SEGMENTS_MAX];
	size_t n;
};
/* 0, or -1 with the reason ("expected ']' at column 5"). p must be freed with jpath_free. */
int jpath_compile(const char *s, size_t len, struct jpath *p, char *err, size_t errlen);
const json_t *jpath_eval(const struct jpath *p, const json_t *root);
void jpath_free(struct jpath *p);

/* ---- mapping rules (mapping.c) ---- */

struct mapping;
struct mapping_rule;
/* Parses rules text; name is used in errors ("name:line: reason"). 0 or -1 with the reason. */
int mapping_parse(const char *name, const char *text, struct mapping **out, char *err,
                  size_t errlen);
void mapping_free(struct mapping *m);
/* The first rule whose filter matches the topic, or NULL. */
const struct mapping_rule *mapping_match(const struct mapping *m, const struct topic *t);
/* A rule that only selects a built-in format returns it; else CLEANER_FORMAT_AUTO. */
enum cleaner_format mapping_rule_format(const struct mapping_rule *r);
const char *mapping_rule_name(const struct mapping_rule *r);
int mapping_extract(const struct mapping_rule *r, const json_t *elem, const struct topic *t,
                    struct cand *c, struct verdict *v);
/* MQTT filter matching with + and #; exposed for tests. */
bool mapping_filter_matches(const char *filter, const struct topic *t);

/* ---- limits (limits.c): plausible ranges and known error values per metric ---- */

struct metric_limit {
	char metric[CLEANER_ID_MAX + 1];
	bool has_min, has_max;
	double min, max;
	double *errors;
	size_t nerrors;
	bool user_range, user_errors; /* set from options: replace the defaults */
};
struct limits {
	struct metric_limit *v;
	size_t n;
};
int limits_init(struct limits *l);
int limits_range_add(struct limits *l, const char *spec, char *err, size_t errlen);
int limits_error_add(struct limits *l, const char *spec, char *err, size_t errlen);
const struct metric_limit *limits_find(const struct limits *l, const char *metric, size_t len);
void limits_free(struct limits *l);

/* ---- validation and output ---- */

/* A candidate after validation: what goes into the Reading. */
struct clean {
	const char *id[ID_COUNT];
	size_t id_len[ID_COUNT];
	char metric[CLEANER_ID_MAX + 1]; /* lower-cased copy */
	const char *unit;
	size_t unit_len;
	double value;
	int64_t ts;
	bool has_location;
	double lat, lon;
	const char *device_type;
	size_t device_type_len;
};

struct validate_ctx {
	const struct limits *limits;
	int64_t now_ms, received_at, max_age_ms, max_skew_ms;
};
/* Checks and normalises c into out. 0, or -1 with the verdict. */
int cand_validate(const struct validate_ctx *ctx, const struct cand *c, struct clean *out,
                  struct verdict *v);
/* A Reading object (tags from c's unconsumed members), or NULL when memory ran out. reuse is
 * NULL or a reference to a Reading built here before, which is rewritten in place when nothing
 * else holds it (members something else holds are replaced, never changed); building and freeing
 * Readings was 40% of the instructions spent cleaning a message. The call takes the reference
 * to reuse either way. */
json_t *reading_build(const struct cand *c, const struct clean *k, int64_t received_at,
                      json_t *reuse);

#endif
