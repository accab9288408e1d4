/* Per-metric plausibility: a range of believable values and the values a sensor sends when it
 * is broken (home sensors report exactly 100.0 °C when their probe fails). Values are checked in
 * the unit the Reading carries, i.e. after temperatures were converted to °C.
 *
 * A handful of metrics at most, so a linear search by name is faster than any hash here. */
#include "clean_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
	const char *metric;
	double min, max;
	double error; /* NAN = none */
} defaults[] = {
    /* Bounds that hold in any unit the metric is commonly sent in: gauge pressure is never
     * below vacuum (-101325 in Pa, the unit with the largest numbers), meter totals and
     * concentrations are not negative. */
    {"temperature", -100, 200, 100.0},
    {"humidity", 0, 100, NAN},
    {"pressure", -101325, INFINITY, NAN},
    {"energy", 0, INFINITY, NAN},
    {"co2", 0, 1000000, NAN},
    {"speed", -100000, 100000, NAN},
    {"voltage", -100000, 100000, NAN},
};

static struct metric_limit *limit_get(struct limits *l, const char *metric, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (strlen(l->v[i].metric) == len && memcmp(l->v[i].metric, metric, len) == 0)
			return &l->v[i];
	if (len > CLEANER_ID_MAX)
		return NULL;
	struct metric_limit *n = realloc(l->v, (l->n + 1) * sizeof(*n));
	if (!n)
		return NULL;
	l->v = n;
	struct metric_limit *m = &l->v[l->n++];
	memset(m, 0, sizeof(*m));
	memcpy(m->metric, metric, len);
	m->metric[len] = 0;
	return m;
}

static int error_push(struct metric_limit *m, double e)
{
	double *n = realloc(m->errors, (m->nerrors + 1) * sizeof(*n));
	if (!n)
		return -1;
	m->errors = n;
	m->errors[m->nerrors++] = e;
	return 0;
}

int limits_init(struct limits *l)
{
	l->v = NULL;
	l->n = 0;
	for (size_t i = 0; i < sizeof(defaults) / sizeof(*defaults); i++) {
		struct metric_limit *m =
		    limit_get(l, defaults[i].metric, strlen(defaults[i].metric));
		if (!m)
			goto oom;
		m->has_min = isfinite(defaults[i].min);
		m->has_max = isfinite(defaults[i].max);
		m->min = defaults[i].min;
		m->max = defaults[i].max;
		if (!isnan(defaults[i].error) && error_push(m, defaults[i].error))
			goto oom;
	}
	return 0;
oom:
	limits_free(l);
	return -1;
}

void limits_free(struct limits *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].errors);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

const struct metric_limit *limits_find(const struct limits *l, const char *metric, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (strlen(l->v[i].metric) == len && memcmp(l->v[i].metric, metric, len) == 0)
			return &l->v[i];
	return NULL;
}

/* Splits "metric=rest"; checks the metric name. */
static int spec_split(const char *spec, const char *flag, const char **rest, size_t *mlen,
                      char *err, size_t errlen)
{
	const char *eq = strchr(spec, '=');
	if (!eq) {
		snprintf(err, errlen, "%s '%s': expected metric=...", flag, spec);
		return -1;
	}
	*mlen = (size_t)(eq - spec);
	const char *why = text_ident_problem(spec, *mlen, CLEANER_ID_MAX, true);
	if (why) {
		snprintf(err, errlen, "%s '%s': metric name %s", flag, spec, why);
		return -1;
	}
	for (size_t i = 0; i < *mlen; i++) {
		if (spec[i] >= 'A' && spec[i] <= 'Z') {
			snprintf(err, errlen, "%s '%s': metric names are lower case", flag, spec);
			return -1;
		}
	}
	*rest = eq + 1;
	return 0;
}

static int bound_parse(const char *s, size_t len, double *out)
{
	return text_number_parse(s, len, out) == 0 ? 0 : -1;
}

int limits_range_add(struct limits *l, const char *spec, char *err, size_t errlen)
{
	const char *rest;
	size_t mlen;
	if (spec_split(spec, "--range", &rest, &mlen, err, errlen))
		return -1;
	struct metric_limit m = {0};
	if (*rest) {
		const char *colon = strchr(rest, ':');
		if (!colon) {
			snprintf(err, errlen, "--range '%s': expected metric=min:max", spec);
			return -1;
		}
		size_t lo_len = (size_t)(colon - rest), hi_len = strlen(colon + 1);
		if (lo_len && bound_parse(rest, lo_len, &m.min)) {
			snprintf(err, errlen, "--range '%s': minimum is not a number", spec);
			return -1;
		}
		if (hi_len && bound_parse(colon + 1, hi_len, &m.max)) {
			snprintf(err, errlen, "--range '%s': maximum is not a number", spec);
			return -1;
		}
		m.has_min = lo_len > 0;
		m.has_max = hi_len > 0;
		if (m.has_min && m.has_max && m.min > m.max) {
			snprintf(err, errlen, "--range '%s': minimum is above maximum", spec);
			return -1;
		}
	}
	struct metric_limit *t = limit_get(l, spec, mlen);
	if (!t) {
		snprintf(err, errlen, "--range '%s': out of memory", spec);
		return -1;
	}
	if (t->user_range) {
		snprintf(err, errlen, "--range '%s': metric given twice", spec);
		return -1;
	}
	t->user_range = true;
	t->has_min = m.has_min;
	t->has_max = m.has_max;
	t->min = m.min;
	t->max = m.max;
	return 0;
}

int limits_error_add(struct limits *l, const char *spec, char *err, size_t errlen)
{
	const char *rest;
	size_t mlen;
	if (spec_split(spec, "--error-value", &rest, &mlen, err, errlen))
		return -1;
	struct metric_limit *t = limit_get(l, spec, mlen);
	if (!t) {
		snprintf(err, errlen, "--error-value '%s': out of memory", spec);
		return -1;
	}
	/* The first option for a metric replaces its defaults; further ones add to it. */
	if (!t->user_errors) {
		t->nerrors = 0;
		t->user_errors = true;
	}
	while (*rest) {
		const char *comma = strchr(rest, ',');
		size_t len = comma ? (size_t)(comma - rest) : strlen(rest);
		double e;
		if (bound_parse(rest, len, &e)) {
			snprintf(err, errlen, "--error-value '%s': '%.*s' is not a number", spec,
			         (int)len, rest);
			return -1;
		}
		if (error_push(t, e)) {
			snprintf(err, errlen, "--error-value '%s': out of memory", spec);
			return -1;
		}
		rest += len + (comma ? 1 : 0);
		if (comma && !*rest) {
			snprintf(err, errlen, "--error-value '%s': trailing comma", spec);
			return -1;
		}
	}
	return 0;
}
