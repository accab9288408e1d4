/* The aggregator's windowing engine: Readings in, Aggregates out, exact across restarts.
 *
 * Readings are assigned to event-time windows (window.h) per group key (reading.h) and per
 * input partition. Each partition has a watermark, the largest event time seen minus the grace
 * period; a window is emitted once, when the watermark reaches its end ("emit final"). A reading
 * whose window was already emitted is late: it is reported, never merged.
 *
 * Restart exactness without transactions (docs/aggregator.md has the argument): for each
 * partition the engine says which offset to commit (the oldest one an open window still needs)
 * and a short metadata string (meta.h) saying what was already emitted. After a restart,
 * agg_engine_restore() takes both back; re-consumed readings of emitted windows are skipped
 * silently and open windows are rebuilt with the same contents, so every window is emitted with
 * the same values as in a run that never stopped. The caller's side of the contract:
 *   - take a commit point only when every aggregate and late reading handed out so far has been
 *     acknowledged by its sink (flush the producer first);
 *   - after a successful commit, pass its metadata to agg_engine_committed() (this releases the
 *     windows an idle advance closed: they are emitted only once that advance is durable);
 *   - after agg_engine_add() failed with AGG_FAILED, stop without committing.
 *
 * Not thread-safe: one engine per consumer thread. */
#ifndef IOTPIPE_AGG_ENGINE_H
#define IOTPIPE_AGG_ENGINE_H

#include "meta.h"
#include "reading.h"
#include "window.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Receives one Aggregate record (schemas/Aggregate.avsc), borrowed for the call: keep it with
 * json_incref. Returns 0, or -1 with the reason (the engine then returns AGG_FAILED). */
typedef int (*agg_emit_fn)(void *ctx, int32_t partition, json_t *aggregate, char *err,
                           size_t errlen);

struct agg_config {
	struct agg_window_spec window; /* hop_ms == size_ms for tumbling windows */
	int64_t grace_ms;              /* >= 0 */
	int64_t idle_timeout_ms;       /* 0 = partitions never advance by idleness */
	unsigned group_by;             /* AGG_BY_* bits, must include AGG_BY_SITE */
	size_t max_windows;            /* cap on open windows over all partitions, >= 1 */
	agg_emit_fn emit;
	void *emit_ctx;
};

/* Returns 0, or -1 with the reason (the text names the option at fault). */
int agg_config_check(const struct agg_config *cfg, char *err, size_t errlen);

/* Returns a new engine, or NULL with the reason. cfg is copied. */
struct agg_engine *agg_engine_new(const struct agg_config *cfg, char *err, size_t errlen);
/* Frees the engine and all open windows without emitting them; accepts NULL. */
void agg_engine_free(struct agg_engine *e);

enum agg_status {
	AGG_OK = 0,
	/* The record is refused (bad field, time out of range): it counts as consumed; the caller
	 * reports it and goes on. */
	AGG_INVALID = -1,
	/* The reading would open a window beyond max_windows: nothing was changed, the record is
	 * not consumed. Going on without it would make the results depend on timing, so the service
	 * stops and the operator raises the cap (or shortens --window / --grace). */
	AGG_FULL = -2,
	/* Memory ran out, the emit callback failed, or offsets went backwards: stop without
	 * committing (a restart rebuilds the state from the last commit). */
	AGG_FAILED = -3,
};

/* What became of a reading, per window it falls into (one for tumbling windows). */
struct agg_outcome {
	unsigned added;     /* counted */
	unsigned duplicate; /* the same identity was already counted in that window */
	unsigned late;      /* the window was already emitted: not counted; route the reading to
	                       the late sink when this is non-zero */
	unsigned replayed;  /* re-consumed after a restart, the window emitted before it: skip */
};

/* Adds the reading at `offset` of `partition` (offsets of a partition must increase; for
 * stdin use the line number). May emit windows the new watermark closes. *out is always set. */
enum agg_status agg_engine_add(struct agg_engine *e, int32_t partition, int64_t offset,
                               const struct agg_reading *r, struct agg_outcome *out, char *err,
                               size_t errlen);

/* Records that the record at offset carried no reading (undecodable, refused before the
 * engine): the partition's position moves past it. An offset already behind the position
 * changes nothing, so a caller that only knows "everything before N was read" can pass N - 1.
 * Like agg_engine_add, it may emit windows: a restored idle advance due at the new position
 * takes effect (a caller in the middle of a checkpoint sees them in the emitted counter, and
 * must not commit the partition before they are acknowledged). Returns AGG_OK or AGG_FAILED. */
enum agg_status agg_engine_skip(struct agg_engine *e, int32_t partition, int64_t offset, char *err,
                                size_t errlen);

/* Moves the watermark of every partition that received nothing for idle_timeout_ms (measured
 * between calls: call it every few hundred ms with the wall clock) with wall-clock time: from
 * the watermark it had when it fell idle, plus the time since. It moves only far enough to close
 * windows, and the windows it closes are held until agg_engine_committed() confirms a commit
 * whose metadata carries the advance, so a crash can never emit them with different contents.
 * Returns the number of partitions that started holding windows (commit soon), or -1 with the
 * reason. A partition that is re-reading what an earlier run processed is not idle. */
int agg_engine_advance_idle(struct agg_engine *e, int64_t now_wall_ms, char *err, size_t errlen);

struct agg_commit {
	int64_t offset;              /* the offset to commit (the next record to read) */
	char metadata[AGG_META_MAX]; /* to store with it */
};

/* The commit for a partition: returns 1 with *c set, or 0 when the partition has no position
 * yet (nothing consumed nor restored). Take it only after every aggregate emitted so far has
 * been acknowledged. */
int agg_engine_commit_point(const struct agg_engine *e, int32_t partition, struct agg_commit *c);

/* Tells the engine that a commit with this metadata is durable. Windows held by an idle advance
 * that the metadata carries are emitted now. Returns AGG_OK or AGG_FAILED (emit failed). */
enum agg_status agg_engine_committed(struct agg_engine *e, int32_t partition, const char *metadata,
                                     char *err, size_t errlen);

/* Starts a partition from its committed offset (the next record the consumer will read; -1 when
 * unknown) and metadata (NULL or "" for none), discarding state it had. Returns AGG_OK, AGG_INVALID
 * with the reason when the metadata is malformed (nothing is changed: the caller decides whether
 * to start the partition afresh with NULL), or AGG_FAILED. */
enum agg_status agg_engine_restore(struct agg_engine *e, int32_t partition, int64_t offset,
                                   const char *metadata, char *err, size_t errlen);

/* Forgets a partition (revoked by a rebalance): its open windows are dropped, not emitted; the
 * next owner rebuilds them from the committed offset. */
void agg_engine_drop(struct agg_engine *e, int32_t partition);

/* End of input: emits every open and held window of every partition. Returns AGG_OK or
 * AGG_FAILED. */
enum agg_status agg_engine_close_all(struct agg_engine *e, char *err, size_t errlen);

struct agg_counters {
	uint64_t readings;     /* readings given to agg_engine_add and accepted */
	uint64_t added;        /* counted in at least one window */
	uint64_t duplicates;   /* counted in no window: each of its windows already had it */
	uint64_t late;         /* late for at least one of its windows */
	uint64_t replayed;     /* skipped as a replay after a restart */
	uint64_t invalid;      /* refused with AGG_INVALID */
	uint64_t emitted;      /* aggregates emitted */
	uint64_t open_windows; /* open or held */
	uint64_t peak_windows;
	uint64_t held_windows; /* closed by an idle advance, waiting for agg_engine_committed */
};
void agg_engine_counters(const struct agg_engine *e, struct agg_counters *c);

#endif
