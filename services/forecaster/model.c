/* The forecasting models (see model.h). Every constant below was chosen on the accuracy bench
 * (bench/forecaster_accuracy.sh) and on the unit tests' synthetic series, not fitted to one
 * data set; docs/forecaster.md gives the reasoning. */
#include "model.h"

#include <math.h>
#include <string.h>

/* Trend damping per window: a trend fades with a half-life of ~140 windows, long enough to
 * follow a meter's steady rise (the steady-state error on a linear trend is ~9% of one step),
 * short enough that a ramp that ends stops being projected within a few hours of 1-minute
 * windows. */
#define PHI 0.995
/* Trend smoothing, relative to alpha (the trend moves slower than the level). */
#define BETA 0.05
/* Learning rate of alpha's gradient step, on errors normalised by the robust scale. */
#define ETA 0.002
#define ALPHA_MIN 0.02
#define ALPHA_MAX 1.0
#define ALPHA_START 0.5
/* Mean absolute deviation times 1.25 estimates a normal standard deviation; an error beyond
 * JUMP_K of those is a level shift. */
#define MAD_TO_SD 1.25
#define JUMP_K 3.0
/* Level shifts are not detected before the scale has this many errors behind it. */
#define WARMUP 10
/* Running averages weigh a new value 1/n until n reaches 1/FLOOR, then FLOOR: an exact mean at
 * first, an exponential memory of ~100 windows after. */
#define FLOOR 0.01
/* Profile smoothing per observation, shared between the two nearest knots: each knot sees
 * ~30 windows of 1-minute data a day, so its memory is a couple of days. */
#define GAMMA 0.02

static const char *const names[MODEL_KIND_COUNT] = {"naive", "holt", "hw"};

const char *model_name(enum model_kind k)
{
	return (unsigned)k < MODEL_KIND_COUNT ? names[k] : NULL;
}

int model_parse(const char *name)
{
	for (int k = 0; k < MODEL_KIND_COUNT; k++)
		if (strcmp(name, names[k]) == 0)
			return k;
	return -1;
}

void model_init(struct model *m)
{
	memset(m, 0, sizeof(*m));
	m->alpha = ALPHA_START;
}

double model_time_of_day(int64_t ms)
{
	const int64_t day = 86400000;
	int64_t r = ms % day;
	if (r < 0)
		r += day;
	return (double)r / (double)day;
}

/* The two knots around tod and their interpolation weights. Knots sit at the middle of their
 * share of the day, so the profile is periodic and continuous across midnight. */
static void knots_find(double tod, int *i, double *wi, int *j, double *wj)
{
	double x = tod * MODEL_KNOTS - 0.5;
	double fl = floor(x);
	double f = x - fl;
	int k = (int)fl;
	*i = ((k % MODEL_KNOTS) + MODEL_KNOTS) % MODEL_KNOTS;
	*j = (*i + 1) % MODEL_KNOTS;
	*wi = 1.0 - f;
	*wj = f;
}

static double profile_at(const struct model *m, enum model_kind k, double tod)
{
	if (k != MODEL_HW)
		return 0;
	int i, j;
	double wi, wj;
	knots_find(tod, &i, &wi, &j, &wj);
	return m->profile[i] * wi + m->profile[j] * wj;
}

/* Sum of PHI^1..PHI^steps: how far the damped trend carries over `steps` windows. */
static double damped_sum(int64_t steps)
{
	return PHI * (1 - pow(PHI, (double)steps)) / (1 - PHI);
}

static double clamp(double v, double lo, double hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

bool model_predict(const struct model *m, enum model_kind k, int64_t steps, double tod, double *out)
{
	if (m->n == 0)
		return false;
	if (k == MODEL_NAIVE) {
		*out = m->last;
		return true;
	}
	*out = m->level + m->trend * damped_sum(steps < 1 ? 1 : steps) + profile_at(m, k, tod);
	return true;
}

static void profile_learn(struct model *m, double tod, double residual)
{
	int i, j;
	double wi, wj;
	knots_find(tod, &i, &wi, &j, &wj);
	int idx[2] = {i, j};
	double w[2] = {wi, wj};
	for (int n = 0; n < 2; n++) {
		if (w[n] <= 0)
			continue;
		float *kw = &m->weight[idx[n]];
		*kw = (float)fmin(*kw + w[n], 1.0 / GAMMA);
		double g = fmax(GAMMA, 1.0 / *kw) * w[n];
		m->profile[idx[n]] += (float)(g * residual);
	}
}

void model_update(struct model *m, enum model_kind k, double y, int64_t steps, double tod)
{
	if (steps < 1)
		steps = 1;
	if (k == MODEL_NAIVE || m->n == 0) {
		m->level = y - profile_at(m, k, tod);
		m->last = y;
		m->n = 1;
		return;
	}
	double season = profile_at(m, k, tod);
	double forecast = m->level + m->trend * damped_sum(steps);
	double z = y - season;
	double e = z - forecast;
	double limit = JUMP_K * MAD_TO_SD * m->scale;
	bool jump = m->scale > 0 && m->n > WARMUP && fabs(e) > limit;
	double clipped = m->scale > 0 ? clamp(e, -limit, limit) : e;
	double w = fmax(FLOOR, 1.0 / m->n);
	m->scale = (1 - w) * m->scale + w * fabs(clipped);

	double decay = pow(PHI, (double)steps);
	if (jump) {
		/* A level shift: take the new level as it is; smoothing it in would lag the series
		 * for many windows, and the step says nothing about alpha. */
		m->level = z;
		m->trend *= decay;
		m->grad = 0;
		m->jumps++;
	} else {
		if (steps == 1 && m->scale > 0) {
			/* Gradient step on the squared one-step error: d e^2 / d alpha = -2 e grad.
			 * Errors normalised by the scale keep the step size unit-free; the clamp
			 * keeps one wild value from swinging alpha across its range. */
			double s = MAD_TO_SD * m->scale;
			double u = clamp(e / s, -1e3, 1e3), v = clamp(m->grad / s, -1e3, 1e3);
			m->alpha = clamp(m->alpha + ETA * u * v, ALPHA_MIN, ALPHA_MAX);
			m->grad = e + (1 - m->alpha) * m->grad;
		} else {
			m->grad = 0;
		}
		m->level = forecast + m->alpha * e;
		m->trend = m->trend * decay + m->alpha * BETA * e;
	}
	if (k == MODEL_HW)
		profile_learn(m, tod, y - m->level - season);
	m->last = y;
	if (m->n < UINT32_MAX)
		m->n++;
}

bool model_valid(const struct model *m)
{
	if (!isfinite(m->last) || !isfinite(m->level) || !isfinite(m->trend) ||
	    !isfinite(m->grad) || !isfinite(m->scale) || m->scale < 0 || !(m->alpha >= ALPHA_MIN) ||
	    !(m->alpha <= ALPHA_MAX))
		return false;
	for (int i = 0; i < MODEL_KNOTS; i++)
		if (!isfinite(m->profile[i]) || !(m->weight[i] >= 0) ||
		    !(m->weight[i] <= 1.0 / GAMMA + 1e-3))
			return false;
	return true;
}
