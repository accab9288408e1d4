/* Validation and normalisation of one candidate. The order of the checks decides which reason
 * a message with several faults gets: identity first (without it nothing else can be said about
 * whose reading it is), then the value, its unit, plausibility, time and position. */
#include "clean_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define UNIT_MAX 32

/* 0 = finite number in *out, 1 = a non-finite spelling, -1 = not a number. */
static int number_get(const json_t *j, double *out)
{
	if (json_is_integer(j) || json_is_real(j)) {
		*out = json_number_value(j);
		return isfinite(*out) ? 0 : 1;
	}
	if (json_is_string(j))
		return text_number_parse(json_string_value(j), json_string_length(j), out);
	return -1;
}

static int ids_check(const struct cand *c, struct clean *k, struct verdict *v)
{
	char snip[64];
	for (int i = 0; i < ID_COUNT; i++) {
		const char *name = cand_id_names[i];
		if (!c->id[i])
			return verdict_set(v, CLEANER_ID_MISSING, "%s: missing", name);
		const char *why = text_ident_problem(c->id[i], c->id_len[i], CLEANER_ID_MAX, true);
		if (why && strcmp(why, "too long") == 0)
			return verdict_set(v, CLEANER_ID_INVALID,
			                   "%s: too long (%zu bytes, max %d)", name, c->id_len[i],
			                   CLEANER_ID_MAX);
		if (why)
			return verdict_set(
			    v, CLEANER_ID_INVALID, "%s: %s: %s", name, why,
			    text_snippet(c->id[i], c->id_len[i], snip, sizeof(snip)));
		k->id[i] = c->id[i];
		k->id_len[i] = c->id_len[i];
	}
	/* Metrics are lower case so "Temperature" and "temperature" are one series. */
	for (size_t i = 0; i < c->id_len[ID_METRIC]; i++) {
		char ch = c->id[ID_METRIC][i];
		k->metric[i] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	k->metric[c->id_len[ID_METRIC]] = 0;
	k->id[ID_METRIC] = k->metric;
	return 0;
}

static int value_check(const struct cand *c, struct clean *k, struct verdict *v)
{
	char snip[64];
	if (!c->value)
		return verdict_set(v, CLEANER_VALUE_MISSING, "value: missing");
	int rc = number_get(c->value, &k->value);
	if (rc == 1)
		return verdict_set(v, CLEANER_VALUE_NOT_FINITE, "value: not a finite number: %s",
		                   text_json_snippet(c->value, snip, sizeof(snip)));
	if (rc < 0)
		return verdict_set(v, CLEANER_VALUE_NOT_NUMBER, "value: not a number: %s",
		                   text_json_snippet(c->value, snip, sizeof(snip)));
	return 0;
}

enum temp_unit { TEMP_NONE, TEMP_C, TEMP_F, TEMP_K };

static enum temp_unit temp_unit_of(const char *u, size_t len)
{
	static const struct {
		const char *name;
		enum temp_unit t;
	} names[] = {
	    {"c", TEMP_C},
	    {"\xC2\xB0"
	     "c",
	     TEMP_C},
	    {"degc", TEMP_C},
	    {"celsius", TEMP_C},
	    {"f", TEMP_F},
	    {"\xC2\xB0"
	     "f",
	     TEMP_F},
	    {"degf", TEMP_F},
	    {"fahrenheit", TEMP_F},
	    {"k", TEMP_K},
	    {"kelvin", TEMP_K},
	};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (strlen(names[i].name) == len && strncasecmp(names[i].name, u, len) == 0)
			return names[i].t;
	return TEMP_NONE;
}

/* Converted values are rounded to 1e-6: no thermometer resolves a micro-degree, and it keeps
 * 71.6 F from becoming 21.999999999999996 C. */
static double round_micro(double x)
{
	return fabs(x) < 1e12 ? round(x * 1e6) / 1e6 : x;
}

static int unit_check(const struct cand *c, struct clean *k, struct verdict *v)
{
	char snip[64];
	if (c->unit_bad)
		return verdict_set(v, CLEANER_UNIT_INVALID, "unit: not a string: %s",
		                   text_json_snippet(c->unit_bad, snip, sizeof(snip)));
	k->unit = c->unit;
	k->unit_len = c->unit_len;
	if (!k->unit || k->unit_len == 0) {
		k->unit = format_default_unit(k->metric, k->id_len[ID_METRIC]);
		k->unit_len = strlen(k->unit);
	}
	if (k->unit_len) {
		const char *why = text_ident_problem(k->unit, k->unit_len, UNIT_MAX, false);
		if (why)
			return verdict_set(v, CLEANER_UNIT_INVALID, "unit: %s: %s", why,
			                   text_snippet(k->unit, k->unit_len, snip, sizeof(snip)));
	}
	if (strcmp(k->metric, "temperature") != 0)
		return 0;
	switch (temp_unit_of(k->unit, k->unit_len)) {
	case TEMP_C:
		break;
	case TEMP_F:
		k->value = round_micro((k->value - 32.0) * 5.0 / 9.0);
		break;
	case TEMP_K:
		k->value = round_micro(k->value - 273.15);
		break;
	case TEMP_NONE:
		return verdict_set(v, CLEANER_UNIT_INVALID,
		                   "unit: %s is not a temperature unit (C, F or K)",
		                   text_snippet(k->unit, k->unit_len, snip, sizeof(snip)));
	}
	k->unit = "C";
	k->unit_len = 1;
	return 0;
}

static int limits_check(const struct limits *l, struct clean *k, struct verdict *v)
{
	const struct metric_limit *m = limits_find(l, k->metric, k->id_len[ID_METRIC]);
	if (!m)
		return 0;
	char val[40], lo[40], hi[40];
	for (size_t i = 0; i < m->nerrors; i++) {
		if (k->value == m->errors[i]) {
			text_double_format(k->value, val, sizeof(val));
			return verdict_set(v, CLEANER_VALUE_ERROR_CODE,
			                   "value: %s is a known error value of %s", val,
			                   k->metric);
		}
	}
	if ((m->has_min && k->value < m->min) || (m->has_max && k->value > m->max)) {
		text_double_format(k->value, val, sizeof(val));
		if (m->has_min)
			text_double_format(m->min, lo, sizeof(lo));
		else
			snprintf(lo, sizeof(lo), "-inf");
		if (m->has_max)
			text_double_format(m->max, hi, sizeof(hi));
		else
			snprintf(hi, sizeof(hi), "inf");
		return verdict_set(v, CLEANER_VALUE_OUT_OF_RANGE,
		                   "value: %s %.*s is outside the %s range [%s, %s]", val,
		                   (int)k->unit_len, k->unit, k->metric, lo, hi);
	}
	return 0;
}

static int ts_check(const struct validate_ctx *ctx, const struct cand *c, struct clean *k,
                    struct verdict *v)
{
	char d[48], lim[48];
	if (!c->ts)
		k->ts = ctx->received_at;
	else if (ts_from_json(c->ts, c->ts_unit, &k->ts, v))
		return -1;
	if (k->ts > ctx->now_ms + ctx->max_skew_ms) {
		ts_duration_format(k->ts - ctx->now_ms, d, sizeof(d));
		ts_duration_format(ctx->max_skew_ms, lim, sizeof(lim));
		return verdict_set(v, CLEANER_TS_FUTURE, "ts: %s in the future (max-skew %s)", d,
		                   lim);
	}
	if (k->ts < ctx->now_ms - ctx->max_age_ms) {
		ts_duration_format(ctx->now_ms - k->ts, d, sizeof(d));
		ts_duration_format(ctx->max_age_ms, lim, sizeof(lim));
		return verdict_set(v, CLEANER_TS_TOO_OLD, "ts: %s old (max-age %s)", d, lim);
	}
	return 0;
}

static int location_check(const struct cand *c, struct clean *k, struct verdict *v)
{
	char snip[64];
	k->has_location = false;
	if (!c->lat && !c->lon)
		return 0;
	if (!c->lat || !c->lon)
		return verdict_set(v, CLEANER_LOCATION_INVALID, "location: %s without %s",
		                   c->lat ? "latitude" : "longitude",
		                   c->lat ? "longitude" : "latitude");
	if (number_get(c->lat, &k->lat) != 0)
		return verdict_set(v, CLEANER_LOCATION_INVALID,
		                   "location: latitude %s is not a number",
		                   text_json_snippet(c->lat, snip, sizeof(snip)));
	if (number_get(c->lon, &k->lon) != 0)
		return verdict_set(v, CLEANER_LOCATION_INVALID,
		                   "location: longitude %s is not a number",
		                   text_json_snippet(c->lon, snip, sizeof(snip)));
	if (k->lat < -90 || k->lat > 90)
		return verdict_set(v, CLEANER_LOCATION_INVALID,
		                   "location: latitude %s outside [-90, 90]",
		                   text_json_snippet(c->lat, snip, sizeof(snip)));
	if (k->lon < -180 || k->lon > 180)
		return verdict_set(v, CLEANER_LOCATION_INVALID,
		                   "location: longitude %s outside [-180, 180]",
		                   text_json_snippet(c->lon, snip, sizeof(snip)));
	k->has_location = true;
	return 0;
}

static int device_type_check(const struct cand *c, struct clean *k, struct verdict *v)
{
	char snip[64];
	k->device_type = c->device_type_text;
	k->device_type_len = c->device_type_len;
	if (c->device_type && !json_is_null(c->device_type)) {
		if (!json_is_string(c->device_type))
			return verdict_set(v, CLEANER_ID_INVALID, "device_type: not a string: %s",
			                   text_json_snippet(c->device_type, snip, sizeof(snip)));
		k->device_type = json_string_value(c->device_type);
		k->device_type_len = json_string_length(c->device_type);
	}
	if (!k->device_type)
		return 0;
	const char *why =
	    text_ident_problem(k->device_type, k->device_type_len, CLEANER_ID_MAX, false);
	if (why)
		return verdict_set(
		    v, CLEANER_ID_INVALID, "device_type: %s: %s", why,
		    text_snippet(k->device_type, k->device_type_len, snip, sizeof(snip)));
	return 0;
}

int cand_validate(const struct validate_ctx *ctx, const struct cand *c, struct clean *k,
                  struct verdict *v)
{
	if (ids_check(c, k, v) || value_check(c, k, v) || unit_check(c, k, v) ||
	    limits_check(ctx->limits, k, v) || ts_check(ctx, c, k, v) || location_check(c, k, v) ||
	    device_type_check(c, k, v))
		return -1;
	return 0;
}
