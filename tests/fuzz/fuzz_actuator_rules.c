/* libFuzzer target: the actuator's rules file parser, and the commands the parsed rules build
 * from hostile readings.
 *
 * Input layout: the rules text up to the first NUL byte; after it, one reading per line as
 * "site\x01device\x01sensor\x01metric\x01value" (identifiers may hold any valid UTF-8, NUL
 * included, as decoded records can, and go through act_reading_from_json). A rules file that
 * parses is run over those readings, twice each so both command sides and episodes get
 * exercised, and every command must keep the promises of template.h: a topic without wildcards, NUL
 * or a leading '$', valid UTF-8, and a payload that parses when its template is JSON. A refused
 * parse must say why. */
#include "actuator.h"
#include "output.h"
#include "rules.h"
#include "text.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_READINGS 64

static void check_command(void *ctx, const struct act_command *c)
{
	const struct ruleset *rs = ctx;
	size_t tl = strlen(c->topic);
	if (tl == 0 || tl > 65535 || c->topic[0] == '$' || strpbrk(c->topic, "+#") ||
	    !utf8_valid(c->topic, tl)) {
		fprintf(stderr, "unsafe command topic '%s'\n", c->topic);
		abort();
	}
	if (!utf8_valid(c->payload, strlen(c->payload)) || c->qos < 0 || c->qos > 2) {
		fprintf(stderr, "bad command payload or QoS\n");
		abort();
	}
	const struct rule *r = rules_find(rs, c->rule);
	if (!r || !r->has_commands) {
		fprintf(stderr, "command from unknown rule '%s'\n", c->rule);
		abort();
	}
	if (tmpl_kind_of(r->payload[c->side]) == TMPL_JSON) {
		json_error_t je;
		json_t *j = json_loads(c->payload, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
		if (!j) {
			fprintf(stderr, "JSON payload does not parse: %s: %s\n", je.text,
			        c->payload);
			abort();
		}
		json_decref(j);
	}
	/* A command must also make a valid Command record. */
	json_t *rec = act_command_to_json(c);
	if (!rec)
		abort();
	json_decref(rec);
}

static void check_event(void *ctx, const struct act_event *e)
{
	(void)ctx;
	if (e->state == EPISODE_ENDED && e->ended_at < e->started_at) {
		fprintf(stderr, "episode of %s/%s/%s ended at %lld before it started at %lld\n",
		        e->site, e->device, e->sensor, (long long)e->ended_at,
		        (long long)e->started_at);
		abort();
	}
	json_t *rec = act_event_to_json(e);
	if (!rec)
		abort();
	json_decref(rec);
}

/* Builds the Reading record of one input line; NULL when the line has too few fields. */
static json_t *reading_of(const char *line, size_t len, int64_t ts)
{
	static const char *const ids[] = {"site", "device", "sensor", "metric"};
	json_t *rec = json_object();
	const char *p = line, *end = line + len;
	for (size_t i = 0; i < 4; i++) {
		const char *sep = memchr(p, '\x01', (size_t)(end - p));
		if (!sep) {
			json_decref(rec);
			return NULL;
		}
		/* Decoders (Avro, JSON lines) only ever hand over valid UTF-8. */
		json_t *id = json_stringn(p, (size_t)(sep - p));
		if (!id) {
			json_decref(rec);
			return NULL;
		}
		json_object_set_new(rec, ids[i], id);
		p = sep + 1;
	}
	char num[64];
	size_t nl = (size_t)(end - p) < sizeof(num) - 1 ? (size_t)(end - p) : sizeof(num) - 1;
	memcpy(num, p, nl);
	num[nl] = 0;
	double v = strtod(num, NULL);
	/* jansson refuses non-finite reals; such a record cannot be decoded from Kafka either. */
	json_object_set_new(rec, "value", isfinite(v) ? json_real(v) : json_string(num));
	json_object_set_new(rec, "ts", json_integer(ts));
	return rec;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, 0, size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	char *text = malloc(tlen + 1);
	if (!text)
		return 0;
	memcpy(text, data, tlen);
	text[tlen] = 0;
	char err[1024];
	err[0] = 0;
	struct ruleset *rs = rules_parse("fuzz.rules", text, err, sizeof(err));
	free(text);
	if (!rs) {
		if (!err[0] || strlen(err) >= sizeof(err))
			abort(); /* a refusal must give its reason */
		return 0;
	}
	struct actuator *a = actuator_new(rs, 256, err, sizeof(err));
	if (!a) {
		rules_free(rs);
		return 0;
	}
	const struct act_sink sink = {check_command, check_event, (void *)actuator_rules(a)};
	const char *p = nul ? (const char *)nul + 1 : NULL, *end = (const char *)data + size;
	int64_t offset = 0;
	for (int n = 0; p && p < end && n < MAX_READINGS; n++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
		for (int rep = 0; rep < 2; rep++) {
			json_t *rec = reading_of(p, len, 1700000000000LL + offset * 1000);
			struct act_reading r;
			if (rec && act_reading_from_json(rec, &r, err, sizeof(err)) == 0) {
				/* Alternate extremes so commands flip sides and episodes open and
				 * close. */
				if (rep == 1)
					r.value = -r.value;
				actuator_process(a, 0, offset++, &r, 1700000000000LL, &sink, err,
				                 sizeof(err));
			}
			json_decref(rec);
		}
		p = nl ? nl + 1 : NULL;
	}
	actuator_reassert(a, 1800000000000LL, 0, &sink);
	actuator_close_all(a, &sink);
	actuator_free(a);
	return 0;
}
