/* Series: what the forecaster keeps per (site, device, sensor, metric, window size), and the
 * table that holds them, bounded by a cap.
 *
 * A series' key is its identity as text, also the key of its records in the state topic:
 * "site/device/sensor/metric/window_ms", with '%' and '/' inside a field written %25 and %2F so
 * that distinct identities never share a key. */
#ifndef IOTPIPE_FORECASTER_SERIES_H
#define IOTPIPE_FORECASTER_SERIES_H

#include "buf.h"
#include "model.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Longest site, device, sensor, metric or unit accepted (bytes). */
#define SERIES_FIELD_MAX 1024
/* Event times and window sizes beyond these cannot come from the aggregator, and window
 * arithmetic on them could overflow: aggregates and states outside are refused. */
#define SERIES_TIME_LIMIT (1LL << 53)
#define SERIES_WINDOW_LIMIT (1LL << 40)

/* Forecast errors of a series since it began (they travel with its state across restarts). */
struct series_errors {
	uint64_t scored;     /* forecasts whose actual arrived */
	uint64_t pct_scored; /* of those, with an actual other than 0 (MAPE's denominator) */
	uint64_t hits;       /* actual inside the prediction interval */
	uint64_t unscored;   /* forecasts whose window never came */
	double abs_sum;      /* sum of |actual - predicted| */
	double pct_sum;      /* sum of |actual - predicted| / |actual| */
};

struct series {
	/* Identity; the strings live in one allocation owned by the series. */
	const char *site, *device, *sensor, *metric, *unit;
	const char *key;
	size_t key_len;
	int64_t window_ms;
	int32_t partition; /* input partition (0 on stdin); the state record goes there too */

	int64_t last_ws;  /* window_start of the last aggregate learned (replays are older) */
	int64_t last_end; /* its window_end, for expiry */

	/* The forecast made for the window after last_ws. */
	bool pending;
	bool pending_interval;
	int64_t pending_ws;
	double pending_value, pending_lower, pending_upper;

	double res_var; /* running variance of the one-step errors: the interval */
	uint32_t res_n; /* errors behind it */
	struct series_errors err;
	struct model model;

	bool dirty;      /* changed since its state was last written */
	int metric_slot; /* per-metric-name accounting (score.c); -1 none yet */
	int gauge_slot;  /* per-series gauges (score.c); -1 none */
	uint64_t hash;
	struct series *next; /* hash chain */
};

/* Appends the key of an identity to out (not NUL-terminated). Returns 0 or -1 (memory). */
int series_key_append(struct buf *out, const char *site, const char *device, const char *sensor,
                      const char *metric, int64_t window_ms);

/* A new series with a fresh model and no history; NULL when memory runs out.
 * The strings are copied. Free with series_free (NULL accepted). */
struct series *series_new(const char *site, const char *device, const char *sensor,
                          const char *metric, const char *unit, int64_t window_ms,
                          int32_t partition);
void series_free(struct series *s);

struct series_table;

/* max: the cap on series held at once. */
struct series_table *series_table_new(size_t max);
/* Frees the table and every series in it; NULL accepted. */
void series_table_free(struct series_table *t);
size_t series_table_count(const struct series_table *t);
size_t series_table_max(const struct series_table *t);
struct series *series_table_find(const struct series_table *t, const char *key, size_t key_len);
/* Takes ownership of s. Returns 0; -1 when the table is at its cap (s stays the caller's);
 * -2 when a series with the same key is already there (s stays the caller's). */
int series_table_add(struct series_table *t, struct series *s);
/* Replaces the series with s's key by s (or adds it, cap permitting); frees the old one.
 * Returns 0, or -1 when at the cap (s stays the caller's). */
int series_table_put(struct series_table *t, struct series *s);

/* Removes and frees the series held under key. Returns whether there was one. */
bool series_table_remove(struct series_table *t, const char *key, size_t key_len);

/* Visits every series; fn returns true to remove (and free) the one it was given. Returns the
 * number removed. fn must not add or remove series itself. */
size_t series_table_filter(struct series_table *t, bool (*fn)(void *ctx, struct series *s),
                           void *ctx);

/* Rough bytes held per series (structure, strings, table slot), for the memory estimate. */
size_t series_table_bytes(const struct series_table *t);

#endif
