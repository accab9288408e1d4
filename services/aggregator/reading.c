/* Reading fields and the group-by (see reading.h). */
#include "reading.h"

#include "window.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

/* Beyond this magnitude the squared deviations of Welford's update could overflow a double. */
#define VALUE_LIMIT 1e150

static const char *const field_names[AGG_NFIELDS] = {"site", "device", "sensor", "metric"};

const char *agg_field_name(enum agg_field f)
{
	return (unsigned)f < AGG_NFIELDS ? field_names[f] : "?";
}

static int get_str(const json_t *rec, const char *name, struct agg_str *out, char *err,
                   size_t errlen)
{
	const json_t *v = json_object_get(rec, name);
	if (!json_is_string(v)) {
		snprintf(err, errlen, "Reading.%s: %s", name, v ? "expected a string" : "missing");
		return -1;
	}
	out->s = json_string_value(v);
	out->len = json_string_length(v);
	return 0;
}

int agg_reading_from_json(const json_t *rec, struct agg_reading *r, char *err, size_t errlen)
{
	if (!json_is_object(rec)) {
		snprintf(err, errlen, "Reading: expected an object");
		return -1;
	}
	for (int f = 0; f < AGG_NFIELDS; f++)
		if (get_str(rec, field_names[f], &r->key[f], err, errlen) < 0)
			return -1;
	if (get_str(rec, "unit", &r->unit, err, errlen) < 0)
		return -1;

	const json_t *v = json_object_get(rec, "value");
	if (!json_is_number(v)) {
		snprintf(err, errlen, "Reading.value: %s", v ? "expected a number" : "missing");
		return -1;
	}
	r->value = json_number_value(v);

	const json_t *ts = json_object_get(rec, "ts");
	if (!json_is_integer(ts)) {
		snprintf(err, errlen, "Reading.ts: %s",
		         ts ? "expected an integer (ms)" : "missing");
		return -1;
	}
	r->ts = (int64_t)json_integer_value(ts);
	return agg_reading_check(r, err, errlen);
}

bool agg_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p++;
		if (c < 0x80)
			continue;
		size_t n;
		unsigned cp, min;
		if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else {
			return false;
		}
		if ((size_t)(end - p) < n)
			return false;
		for (size_t i = 0; i < n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		p += n;
		/* Overlong forms, UTF-16 surrogates and code points beyond Unicode are not text. */
		if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
	}
	return true;
}

int agg_reading_check(const struct agg_reading *r, char *err, size_t errlen)
{
	for (int f = 0; f <= AGG_NFIELDS; f++) {
		const struct agg_str *s = f < AGG_NFIELDS ? &r->key[f] : &r->unit;
		if (s->len > AGG_FIELD_MAX) {
			snprintf(err, errlen, "Reading.%s: %zu bytes long, at most %d are accepted",
			         f < AGG_NFIELDS ? field_names[f] : "unit", s->len, AGG_FIELD_MAX);
			return -1;
		}
	}
	if (!isfinite(r->value) || fabs(r->value) > VALUE_LIMIT) {
		snprintf(err, errlen, "Reading.value: %g is outside the accepted range (+-%g)",
		         r->value, VALUE_LIMIT);
		return -1;
	}
	if (r->ts < -AGG_TS_LIMIT || r->ts > AGG_TS_LIMIT) {
		snprintf(err, errlen,
		         "Reading.ts: %" PRId64 " ms is outside the accepted range (+-%" PRId64 ")",
		         r->ts, AGG_TS_LIMIT);
		return -1;
	}
	return 0;
}

int agg_group_by_check(unsigned mask, char *err, size_t errlen)
{
	if (mask & ~AGG_BY_ALL) {
		snprintf(err, errlen, "group-by holds unknown fields");
		return -1;
	}
	if (!(mask & AGG_BY_SITE)) {
		snprintf(err, errlen,
		         "group-by must include site: the input is partitioned by site, so a group "
		         "without it would be split across consumers, each emitting a partial "
		         "aggregate");
		return -1;
	}
	return 0;
}

int agg_group_by_parse(const char *spec, unsigned *mask, char *err, size_t errlen)
{
	unsigned m = 0;
	const char *p = spec;

	if (!spec || !*spec) {
		snprintf(err, errlen,
		         "group-by is empty; expected a list of site, device, sensor, "
		         "metric");
		return -1;
	}
	for (;;) {
		size_t n = strcspn(p, ",");
		int found = -1;
		for (int f = 0; f < AGG_NFIELDS; f++)
			if (strlen(field_names[f]) == n && memcmp(p, field_names[f], n) == 0)
				found = f;
		if (found < 0) {
			snprintf(
			    err, errlen,
			    "group-by: unknown field \"%.*s\"; expected site, device, sensor or "
			    "metric",
			    (int)(n > 64 ? 64 : n), p);
			return -1;
		}
		if (m & (1u << found)) {
			snprintf(err, errlen, "group-by: %s is given twice", field_names[found]);
			return -1;
		}
		m |= 1u << found;
		if (!p[n])
			break;
		p += n + 1;
	}
	if (agg_group_by_check(m, err, errlen) < 0)
		return -1;
	*mask = m;
	return 0;
}
