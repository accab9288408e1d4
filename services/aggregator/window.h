/* Event-time windows aligned to the epoch, and the statistics kept per window.
 *
 * A window is [start, start + size): start inclusive, end exclusive. Windows start at every
 * multiple of hop (floor division, so negative times fall into the window below them, not the
 * one toward zero). Tumbling windows are the case hop == size: each time is in exactly one
 * window. Hopping windows (hop < size) overlap: a time is in ceil(size / hop) or
 * floor(size / hop) windows. hop > size (gaps between windows) is refused. */
#ifndef IOTPIPE_AGG_WINDOW_H
#define IOTPIPE_AGG_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* Event times (ms) the aggregator accepts: about +-285,000 years, so that no sum of a time, a
 * window size and a grace period can overflow. */
#define AGG_TS_LIMIT (INT64_C(1) << 53)
/* Largest window, hop or grace (about 34 years). */
#define AGG_SPAN_LIMIT (INT64_C(1) << 40)
/* Most windows one reading may fall into: each costs a lookup and a fingerprint per reading. */
#define AGG_WINDOWS_PER_READING_MAX 1024

struct agg_window_spec {
	int64_t size_ms;
	int64_t hop_ms; /* == size_ms for tumbling windows */
};

/* Returns 0, or -1 with the reason when the sizes are out of range or hop > size. */
int agg_window_spec_check(const struct agg_window_spec *w, char *err, size_t errlen);

/* Floor division (b > 0): agg_floor_div(-1, 60000) == -1. */
static inline int64_t agg_floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	if (a % b != 0 && a < 0)
		q--;
	return q;
}

/* The windows containing ts are those starting at *first, *first + hop, ... (the count is the
 * return value, at least 1). ts must be within +-AGG_TS_LIMIT and the spec checked. */
static inline size_t agg_window_assign(const struct agg_window_spec *w, int64_t ts, int64_t *first)
{
	int64_t last = agg_floor_div(ts, w->hop_ms) * w->hop_ms;
	/* The first start s with s + size > ts. */
	int64_t lo = (agg_floor_div(ts - w->size_ms, w->hop_ms) + 1) * w->hop_ms;
	*first = lo;
	return (size_t)((last - lo) / w->hop_ms) + 1;
}

/* Running statistics of one window. Welford's update keeps the variance accurate when the values
 * are large and close together (1e9 + noise), where a sum of squares would cancel to garbage. */
struct agg_stats {
	int64_t count;
	double mean;
	double m2; /* sum of squared deviations from the mean */
	double min, max;
	double first, last;
	int64_t first_ts, last_ts;
};

/* Adds one value. Ties on event time keep the earlier arrival as first and the later as last,
 * so the result depends only on the order of the input, which a replay reproduces. */
static inline void agg_stats_add(struct agg_stats *s, double value, int64_t ts)
{
	if (s->count == 0) {
		s->count = 1;
		s->mean = value;
		s->m2 = 0.0;
		s->min = s->max = s->first = s->last = value;
		s->first_ts = s->last_ts = ts;
		return;
	}
	s->count++;
	double delta = value - s->mean;
	s->mean += delta / (double)s->count;
	s->m2 += delta * (value - s->mean);
	if (value < s->min)
		s->min = value;
	if (value > s->max)
		s->max = value;
	if (ts < s->first_ts) {
		s->first = value;
		s->first_ts = ts;
	}
	if (ts >= s->last_ts) {
		s->last = value;
		s->last_ts = ts;
	}
}

/* Population standard deviation (0 for a single value). */
double agg_stats_stddev(const struct agg_stats *s);

#endif
