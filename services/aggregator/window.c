/* Window specification checks and the statistics that need libm. */
#include "window.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>

int agg_window_spec_check(const struct agg_window_spec *w, char *err, size_t errlen)
{
	if (w->size_ms <= 0 || w->size_ms > AGG_SPAN_LIMIT) {
		snprintf(err, errlen,
		         "window size %" PRId64 " ms is out of range (1 ms to %" PRId64 " ms)",
		         w->size_ms, AGG_SPAN_LIMIT);
		return -1;
	}
	if (w->hop_ms <= 0 || w->hop_ms > w->size_ms) {
		snprintf(err, errlen,
		         "hop %" PRId64 " ms must be positive and at most the window size %" PRId64
		         " ms (a larger hop would leave readings in no window)",
		         w->hop_ms, w->size_ms);
		return -1;
	}
	int64_t per = (w->size_ms + w->hop_ms - 1) / w->hop_ms;
	if (per > AGG_WINDOWS_PER_READING_MAX) {
		snprintf(err, errlen,
		         "window %" PRId64 " ms with hop %" PRId64
		         " ms puts each reading in %" PRId64 " windows; at most %d are allowed",
		         w->size_ms, w->hop_ms, per, AGG_WINDOWS_PER_READING_MAX);
		return -1;
	}
	return 0;
}

double agg_stats_stddev(const struct agg_stats *s)
{
	if (s->count < 2 || s->m2 <= 0.0)
		return 0.0;
	return sqrt(s->m2 / (double)s->count);
}
