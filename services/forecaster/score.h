/* Forecast accuracy as Prometheus metrics, with bounded cardinality:
 *
 *   overall        counters of scored forecasts, absolute and percentage error sums, interval
 *                  hits (rate() of them gives MAE/MAPE over any time range), and gauges of MAE,
 *                  MAPE and interval coverage since the process started;
 *   by metric name MAE, MAPE and count per Aggregate `metric`, for the first SCORE_METRIC_NAMES
 *                  names seen, the rest under metric="_other";
 *   by series      MAE and MAPE of a series since it began (carried in its state across
 *                  restarts), for the first `series_gauges` series this process scores.
 *
 * Registered metrics live until metrics_shutdown(); nothing here allocates per series. */
#ifndef IOTPIPE_FORECASTER_SCORE_H
#define IOTPIPE_FORECASTER_SCORE_H

#include "series.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SCORE_METRIC_NAMES 32

struct score_totals {
	uint64_t scored, pct_scored, hits, unscored;
	double abs_sum, pct_sum;
};

struct score;

/* Registers the metrics. NULL when memory runs out. Free with score_free (NULL accepted). */
struct score *score_new(size_t series_gauges);
void score_free(struct score *sc);

/* Records the outcome of the forecast pending for s, whose window's actual mean arrived: the
 * series' own sums (s->err) and the process's. */
void score_record(struct score *sc, struct series *s, double actual);
/* The forecast pending for s was for a window that never came. */
void score_unscored(struct score *sc, struct series *s);

/* This process's totals (for the summary at exit and for tests). */
void score_totals(const struct score *sc, struct score_totals *out);

#endif
