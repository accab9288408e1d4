/* The forecaster's engine: Aggregate records in, Forecast records out, per-series model state
 * kept in a bounded table. It knows nothing of Kafka or stdio: main.c feeds it aggregates and
 * state records, and hands what it emits to the outputs.
 *
 * For each aggregate (a series' window mean):
 *   1. the forecast made earlier for this window is scored against it (score.h);
 *   2. the model learns the value;
 *   3. a forecast for the next window (window_start + window_ms) is emitted.
 * An aggregate no newer than the last one the series learned is a replay (the input was read
 * again after a crash, or the aggregator re-sent a window) and changes nothing, so a replay
 * neither double-learns nor double-scores.
 *
 * State: every series changed since the last checkpoint is handed to a callback as a state
 * blob (state.h) with its partition, and series whose event time fell more than ttl behind
 * their partition's newest window are expired (a tombstone, then freed). */
#ifndef IOTPIPE_FORECASTER_ENGINE_H
#define IOTPIPE_FORECASTER_ENGINE_H

#include "model.h"
#include "score.h"
#include "series.h"
#include "state.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Receives each forecast (a Forecast record; borrowed) of series s. Returns 0, or -1 with the
 * reason: the engine then reports FC_FAILED. */
typedef int (*fc_emit_fn)(void *ctx, const struct series *s, const json_t *forecast, char *err,
                          size_t errlen);

/* Receives a state record for partition: the blob, or val NULL for a tombstone. Returns 0, or
 * -1 (the series stays dirty, or unexpired, and is offered again next time). */
typedef int (*fc_state_fn)(void *ctx, int32_t partition, const char *key, size_t key_len,
                           const void *val, size_t val_len);

struct fc_config {
	enum model_kind model;
	size_t max_series; /* cap on series held */
	int64_t ttl_ms;    /* event time without an aggregate before a series expires; 0: never */
	double z;          /* interval half-width in residual standard deviations; 0: none */
	size_t series_gauges; /* series with their own MAE/MAPE gauges */
	fc_emit_fn emit;
	void *emit_ctx;
};

enum fc_result {
	FC_USED,     /* learned, forecast emitted */
	FC_REPLAYED, /* not newer than what the series has learned: ignored */
	FC_INVALID,  /* not a usable aggregate (err says why) */
	FC_REFUSED,  /* a new series, and the table is at its cap (err says so) */
	FC_FAILED,   /* the forecast could not be emitted, or memory ran out */
};

struct fc_engine;

struct fc_engine *fc_engine_new(const struct fc_config *c, char *err, size_t errlen);
/* Frees the engine and its series; NULL accepted. */
void fc_engine_free(struct fc_engine *e);

/* One Aggregate record (borrowed) read from input partition `partition` (0 on stdin). */
enum fc_result fc_engine_add(struct fc_engine *e, int32_t partition, const json_t *agg, char *err,
                             size_t errlen);

/* Applies a state record read back from partition `partition`: a blob replaces the series
 * held under key, a tombstone (val NULL) removes it. STATE_OTHER_MODEL records are ignored
 * (the caller counts them); STATE_INVALID ones too, with the reason; STATE_NOMEM also covers
 * the cap being reached (err says which). */
enum state_status fc_engine_restore(struct fc_engine *e, int32_t partition, const void *key,
                                    size_t key_len, const void *val, size_t val_len, char *err,
                                    size_t errlen);

/* Forgets the series of a partition this process no longer owns (no tombstones). */
void fc_engine_drop(struct fc_engine *e, int32_t partition);

struct fc_checkpoint {
	size_t written; /* state records handed over */
	size_t expired; /* series expired (tombstones handed over) */
	size_t failed;  /* records the callback refused */
};

/* Expires stale series and hands every changed series to fn (NULL: state is not kept; only
 * expiry runs and changes are forgotten). Returns 0, or -1 when fn refused some. */
int fc_engine_checkpoint(struct fc_engine *e, fc_state_fn fn, void *ctx, struct fc_checkpoint *out);

struct series_table *fc_engine_table(struct fc_engine *e);
const struct score *fc_engine_score(const struct fc_engine *e);

#endif
