/* Forecasting models for one series of window means: predict the next window, learn from the
 * actual value. Pure computation (no I/O, no clock): the same inputs give the same state, so a
 * replay after a crash rebuilds exactly what the lost run had.
 *
 *   naive  the last value.
 *   holt   robust damped-trend exponential smoothing: level + damped trend, the level's
 *          smoothing factor tuned online by gradient descent on the one-step error, and level
 *          shifts (an error beyond 3.75 robust scales: an appliance switching, a set-point
 *          change) taken at once instead of being smoothed.
 *   hw     holt plus a daily profile: 48 knots over the day, interpolated linearly, learned from
 *          what the level does not explain (additive Holt-Winters with a coarse, smooth season).
 *
 * Why these fit per-minute sensor series, and what was measured: docs/forecaster.md. */
#ifndef IOTPIPE_FORECASTER_MODEL_H
#define IOTPIPE_FORECASTER_MODEL_H

#include <stdbool.h>
#include <stdint.h>

enum model_kind { MODEL_NAIVE, MODEL_HOLT, MODEL_HW, MODEL_KIND_COUNT };

#define MODEL_KNOTS 48

/* The whole state of one series' model; plain data, copied and serialised as is. */
struct model {
	uint32_t n;                 /* observations so far */
	double last;                /* last observed value */
	double level;               /* level without the daily profile */
	double trend;               /* per-window trend (damped when projected) */
	double alpha;               /* level smoothing factor, tuned online */
	double grad;                /* d level / d alpha, for the tuning */
	double scale;               /* mean absolute one-step error, errors clipped (robust) */
	uint32_t jumps;             /* level shifts taken */
	float profile[MODEL_KNOTS]; /* hw: daily profile at the knots */
	float weight[MODEL_KNOTS];  /* hw: weight each knot has seen (capped) */
};

/* "naive", "holt", "hw"; NULL for an unknown kind. */
const char *model_name(enum model_kind k);
/* Returns the kind, or -1 for an unknown name. */
int model_parse(const char *name);

void model_init(struct model *m);

/* Forecast `steps` windows after the last observation (steps >= 1) for the window whose middle
 * is at time of day tod (fraction of a day in [0, 1)). False before the first observation. */
bool model_predict(const struct model *m, enum model_kind k, int64_t steps, double tod,
                   double *out);

/* Learns the value y observed `steps` windows after the previous one (1 for consecutive
 * windows; larger after missing windows) at time of day tod. y must be finite. */
void model_update(struct model *m, enum model_kind k, double y, int64_t steps, double tod);

/* Time of day of an instant in ms since the epoch (UTC), as a fraction of a day in [0, 1). */
double model_time_of_day(int64_t ms);

/* False when a state read from outside cannot have come from model_update (non-finite
 * numbers, parameters out of their ranges). */
bool model_valid(const struct model *m);

#endif
