/* The actuator's rules file: which readings a rule watches, when it commands a device, and when
 * it reports a threshold episode. The format is described in docs/actuator.md:
 *
 *   # comment
 *   [rule heating]
 *   metric       = temperature
 *   site         = home-*
 *   low          = 20
 *   high         = 25
 *   topic        = {site}/{device}/heatpump/set
 *   low_payload  = {"status":"1"}
 *   high_payload = {"status":"0"}
 *
 * A ruleset is immutable once parsed, so a reload parses a new one and the caller swaps it in
 * only when that succeeded: a bad file never disturbs the rules in force. */
#ifndef IOTPIPE_ACTUATOR_RULES_H
#define IOTPIPE_ACTUATOR_RULES_H

#include "template.h"

#include <stdbool.h>
#include <stddef.h>

enum side { SIDE_LOW = 0, SIDE_HIGH = 1 };

struct rule {
	char *name;
	int line; /* of its "[rule NAME]" header */
	/* Match: metric exactly; site/device/sensor glob patterns (glob.h), NULL = any. */
	char *metric;
	char *site, *device, *sensor;
	/* Commands: below low -> side low, above high -> side high (strictly). */
	bool has_commands;
	double low, high;
	struct tmpl *topic[2];   /* indexed by enum side */
	struct tmpl *payload[2]; /* indexed by enum side */
	int qos;                 /* 0, 1 or 2; default 1 */
	bool retain;             /* default true */
	/* Threshold events: starts when value > threshold, ends when value < threshold -
	 * hysteresis. */
	bool has_events;
	double threshold, hysteresis;
};

/* Read-only after parsing. rules[] is in file order, which is the order rules act in. */
struct ruleset {
	struct rule *rules;
	size_t len;
};

/* Parses the rules file at path. Returns NULL with "path:line: reason" (or "path: reason")
 * in err. The result owns everything; free with rules_free (accepts NULL). */
struct ruleset *rules_load(const char *path, char *err, size_t errlen);
/* The same from text in memory; name is what error messages call it. */
struct ruleset *rules_parse(const char *name, const char *text, char *err, size_t errlen);
void rules_free(struct ruleset *rs);

/* The rule called name, or NULL. */
const struct rule *rules_find(const struct ruleset *rs, const char *name);

/* True when the reading's identity matches the rule. */
bool rule_matches(const struct rule *r, const char *site, const char *device, const char *sensor,
                  const char *metric);

/* True when a and b watch the same readings (metric and patterns), so per-sensor state kept
 * for one remains meaningful for the other across a reload. */
bool rule_same_match(const struct rule *a, const struct rule *b);

const char *side_name(enum side s);

#endif
