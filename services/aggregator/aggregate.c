/* Builds the Aggregate record of a closed window (schemas/Aggregate.avsc). */
#include "aggregate.h"

#include <jansson.h>

static int set(json_t *o, const char *k, json_t *v)
{
	return v ? json_object_set_new_nocheck(o, k, v) : -1;
}

json_t *agg_aggregate_json(const struct agg_series *s, const struct agg_win *w, int64_t size_ms)
{
	static const char *const keys[AGG_NFIELDS] = {"site", "device", "sensor", "metric"};
	json_t *o = json_object();
	int rc = 0;

	if (!o)
		return NULL;
	for (int f = 0; f < AGG_NFIELDS; f++)
		rc |= set(
		    o, keys[f],
		    json_stringn_nocheck(s->key + s->off[f], (size_t)(s->off[f + 1] - s->off[f])));
	rc |= set(o, "unit", json_stringn_nocheck(w->unit, w->unit_len));
	rc |= set(o, "window_start", json_integer(w->start));
	rc |= set(o, "window_end", json_integer(w->start + size_ms));
	rc |= set(o, "window_ms", json_integer(size_ms));
	rc |= set(o, "count", json_integer(w->st.count));
	rc |= set(o, "mean", json_real(w->st.mean));
	rc |= set(o, "min", json_real(w->st.min));
	rc |= set(o, "max", json_real(w->st.max));
	rc |= set(o, "stddev", json_real(agg_stats_stddev(&w->st)));
	rc |= set(o, "first", json_real(w->st.first));
	rc |= set(o, "first_ts", json_integer(w->st.first_ts));
	rc |= set(o, "last", json_real(w->st.last));
	rc |= set(o, "last_ts", json_integer(w->st.last_ts));
	if (rc) {
		json_decref(o);
		return NULL;
	}
	return o;
}
