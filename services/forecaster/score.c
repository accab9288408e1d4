/* Accuracy metrics (see score.h). Label values come from the data (metric names, series
 * identities), so they are escaped and cut to LABEL_VALUE_MAX bytes, and their number is capped:
 * an endless stream of new names must not grow the metrics page without bound. */
#include "score.h"

#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LABEL_VALUE_MAX 128
#define OTHER_NAME "_other"

struct slot {
	char name[LABEL_VALUE_MAX + 1];
	struct metric *mae, *mape, *scored;
	uint64_t n, pn;
	double abs_sum, pct_sum;
};

struct gauge_pair {
	struct metric *mae, *mape;
};

struct score {
	struct score_totals t;
	struct metric *m_scored, *m_abs, *m_pct_scored, *m_pct, *m_hits, *m_unscored, *m_mae,
	    *m_mape, *m_coverage;
	struct slot names[SCORE_METRIC_NAMES + 1]; /* the last one is "_other" */
	size_t nnames;
	struct gauge_pair *gauges;
	size_t ngauges, max_gauges;
};

struct score *score_new(size_t series_gauges)
{
	struct score *sc = calloc(1, sizeof(*sc));
	if (!sc)
		return NULL;
	if (series_gauges && !(sc->gauges = calloc(series_gauges, sizeof(*sc->gauges)))) {
		free(sc);
		return NULL;
	}
	sc->max_gauges = series_gauges;
	sc->m_scored = metrics_counter("iotpipe_forecaster_scored_total",
	                               "Forecasts whose window's actual mean arrived", NULL);
	sc->m_abs = metrics_counter("iotpipe_forecaster_abs_error_total",
	                            "Sum of |actual - predicted| over scored forecasts", NULL);
	sc->m_pct_scored = metrics_counter(
	    "iotpipe_forecaster_pct_scored_total",
	    "Scored forecasts whose actual is not 0 (the denominator of MAPE)", NULL);
	sc->m_pct =
	    metrics_counter("iotpipe_forecaster_pct_error_total",
	                    "Sum of |actual - predicted| / |actual| over those, in percent", NULL);
	sc->m_hits =
	    metrics_counter("iotpipe_forecaster_interval_hits_total",
	                    "Scored forecasts whose actual fell inside the interval", NULL);
	sc->m_unscored = metrics_counter("iotpipe_forecaster_unscored_total",
	                                 "Forecasts for windows that never arrived", NULL);
	sc->m_mae = metrics_gauge("iotpipe_forecaster_mae",
	                          "Mean absolute error since the process started", NULL);
	sc->m_mape =
	    metrics_gauge("iotpipe_forecaster_mape",
	                  "Mean absolute percentage error since the process started", NULL);
	sc->m_coverage = metrics_gauge(
	    "iotpipe_forecaster_interval_coverage",
	    "Fraction of scored forecasts whose actual fell inside the interval", NULL);
	return sc;
}

void score_free(struct score *sc)
{
	if (!sc)
		return;
	free(sc->gauges);
	free(sc);
}

/* Copies at most LABEL_VALUE_MAX bytes of value, never ending inside a UTF-8 sequence. */
static void label_cut(char out[LABEL_VALUE_MAX + 1], const char *value)
{
	size_t n = strnlen(value, LABEL_VALUE_MAX + 1);
	if (n > LABEL_VALUE_MAX) {
		n = LABEL_VALUE_MAX;
		while (n > 0 && ((unsigned char)value[n] & 0xC0) == 0x80)
			n--;
	}
	memcpy(out, value, n);
	out[n] = '\0';
}

static void slot_register(struct slot *sl, const char *name)
{
	char labels[2 * LABEL_VALUE_MAX + 32];
	label_cut(sl->name, name);
	metrics_label(labels, sizeof(labels), "metric", sl->name);
	sl->mae =
	    metrics_gauge("iotpipe_forecaster_metric_mae",
	                  "Mean absolute error by metric name since the process started", labels);
	sl->mape = metrics_gauge("iotpipe_forecaster_metric_mape",
	                         "Mean absolute percentage error by metric name since the process "
	                         "started",
	                         labels);
	sl->scored = metrics_counter("iotpipe_forecaster_metric_scored_total",
	                             "Scored forecasts by metric name", labels);
}

/* The slot of a metric name: the series remembers it, so the search runs once per series. */
static struct slot *slot_of(struct score *sc, struct series *s)
{
	if (s->metric_slot >= 0 && (size_t)s->metric_slot <= SCORE_METRIC_NAMES)
		return &sc->names[s->metric_slot];
	char cut[LABEL_VALUE_MAX + 1];
	label_cut(cut, s->metric);
	size_t i = 0;
	for (; i < sc->nnames; i++)
		if (strcmp(sc->names[i].name, cut) == 0)
			break;
	if (i == sc->nnames) {
		if (sc->nnames < SCORE_METRIC_NAMES) {
			slot_register(&sc->names[i], cut);
			sc->nnames++;
		} else {
			i = SCORE_METRIC_NAMES;
			if (!sc->names[i].mae)
				slot_register(&sc->names[i], OTHER_NAME);
		}
	}
	s->metric_slot = (int)i;
	return &sc->names[i];
}

static void labels_cat(char *out, size_t outlen, const char *key, const char *value)
{
	char cut[LABEL_VALUE_MAX + 1], one[2 * LABEL_VALUE_MAX + 32];
	label_cut(cut, value);
	metrics_label(one, sizeof(one), key, cut);
	size_t n = strlen(out);
	snprintf(out + n, outlen - n, "%s%s", n ? "," : "", one);
}

static struct gauge_pair *gauges_of(struct score *sc, struct series *s)
{
	if (s->gauge_slot >= 0 && (size_t)s->gauge_slot < sc->ngauges)
		return &sc->gauges[s->gauge_slot];
	if (sc->ngauges >= sc->max_gauges)
		return NULL;
	char labels[6 * (2 * LABEL_VALUE_MAX + 32)] = "", win[32];
	labels_cat(labels, sizeof(labels), "site", s->site);
	labels_cat(labels, sizeof(labels), "device", s->device);
	labels_cat(labels, sizeof(labels), "sensor", s->sensor);
	labels_cat(labels, sizeof(labels), "metric", s->metric);
	snprintf(win, sizeof(win), "%lld", (long long)s->window_ms);
	labels_cat(labels, sizeof(labels), "window_ms", win);
	struct gauge_pair *g = &sc->gauges[sc->ngauges];
	g->mae = metrics_gauge("iotpipe_forecaster_series_mae",
	                       "Mean absolute error of a series since it began (first series only)",
	                       labels);
	g->mape = metrics_gauge("iotpipe_forecaster_series_mape",
	                        "Mean absolute percentage error of a series since it began (first "
	                        "series only)",
	                        labels);
	s->gauge_slot = (int)sc->ngauges++;
	return g;
}

static double ratio(double num, uint64_t den)
{
	return den ? num / (double)den : 0;
}

void score_record(struct score *sc, struct series *s, double actual)
{
	double abs_err = fabs(actual - s->pending_value);
	bool pct = actual != 0;
	double pct_err = pct ? 100.0 * abs_err / fabs(actual) : 0;
	bool hit = s->pending_interval && actual >= s->pending_lower && actual <= s->pending_upper;

	struct series_errors *e = &s->err;
	e->scored++;
	e->abs_sum += abs_err;
	e->pct_scored += pct;
	e->pct_sum += pct_err;
	e->hits += hit;

	struct score_totals *t = &sc->t;
	t->scored++;
	t->abs_sum += abs_err;
	t->pct_scored += pct;
	t->pct_sum += pct_err;
	t->hits += hit;
	metric_add(sc->m_scored, 1);
	metric_add(sc->m_abs, abs_err);
	if (pct) {
		metric_add(sc->m_pct_scored, 1);
		metric_add(sc->m_pct, pct_err);
	}
	if (hit)
		metric_add(sc->m_hits, 1);
	metric_set(sc->m_mae, ratio(t->abs_sum, t->scored));
	metric_set(sc->m_mape, ratio(t->pct_sum, t->pct_scored));
	metric_set(sc->m_coverage, ratio((double)t->hits, t->scored));

	struct slot *sl = slot_of(sc, s);
	sl->n++;
	sl->abs_sum += abs_err;
	sl->pn += pct;
	sl->pct_sum += pct_err;
	metric_add(sl->scored, 1);
	metric_set(sl->mae, ratio(sl->abs_sum, sl->n));
	metric_set(sl->mape, ratio(sl->pct_sum, sl->pn));

	struct gauge_pair *g = gauges_of(sc, s);
	if (g) {
		metric_set(g->mae, ratio(e->abs_sum, e->scored));
		metric_set(g->mape, ratio(e->pct_sum, e->pct_scored));
	}
}

void score_unscored(struct score *sc, struct series *s)
{
	s->err.unscored++;
	sc->t.unscored++;
	metric_add(sc->m_unscored, 1);
}

void score_totals(const struct score *sc, struct score_totals *out)
{
	*out = sc->t;
}
