/* The open state of one input partition: its series, its windows and the orders kept over them.
 *
 * Each partition is independent (its own watermark, its own committed offset), so its windows
 * live in their own tables: dropping a revoked partition frees them without touching others,
 * and a group key that appears in two partitions never mixes their offsets.
 *
 * Storage: series and windows sit in slabs (arrays reused through free lists, addressed by
 * 32-bit indices, so growing a slab does not invalidate the indexes over it). A series is kept
 * while at least one of its windows is open. Three orders are kept over the windows:
 *   - an index by (series, window start) for the per-reading lookup;
 *   - a min-heap by (end, creation) that says which windows the watermark closes, in a
 *     deterministic order;
 *   - a list in creation order: windows are created by their first reading and offsets grow,
 *     so the oldest window holds the smallest offset still needed, which is what is committed.
 * This header is internal to the aggregator's engine. */
#ifndef IOTPIPE_AGG_PART_H
#define IOTPIPE_AGG_PART_H

#include "fpset.h"
#include "hashidx.h"
#include "reading.h"
#include "window.h"

#include <stdbool.h>
#include <stdint.h>

struct agg_series {
	uint64_t hash; /* of the group key */
	uint32_t refs; /* windows of this series still allocated; 0 = slot free */
	uint32_t next_free;
	char *key; /* the four fields ("*" outside the group-by), back to back */
	uint16_t off[AGG_NFIELDS + 1]; /* field f is key[off[f]] .. key[off[f + 1]] */
};

struct agg_win {
	uint64_t hash; /* of (series, start) */
	int64_t start;
	int64_t first_offset;  /* offset of the first reading counted: the oldest one it needs */
	uint64_t seq;          /* creation order, breaks ties between equal ends */
	uint32_t series;       /* AGG_INDEX_NONE when the slot is free */
	uint32_t older, newer; /* creation-order list; also the free list (newer) */
	bool indexed;          /* still findable by readings (false once closed) */
	uint16_t unit_len;
	char *unit; /* unit of the first reading */
	struct agg_stats st;
	struct agg_fpset dups;
};

struct agg_heap_ent {
	int64_t end;
	uint64_t seq;
	uint32_t win;
};

struct agg_part {
	int32_t id;

	/* Event time. Windows ending at or before wm are closed. */
	int64_t wm;      /* INT64_MIN until the first reading */
	int64_t safe_wm; /* every window ending at or before it was handed to the emit callback */
	bool holding;    /* closed windows wait in held[] for a commit (idle advance) */
	bool has_adv;    /* an idle advance to adv_wm at offset adv_at: held, or restored */
	int64_t adv_wm, adv_at;

	/* Position. */
	int64_t next_offset; /* after the last record processed; -1 when none */
	int64_t replay_end;  /* offsets below it were processed by an earlier run; -1 when none */
	bool has_replay_wm;
	int64_t replay_wm; /* windows ending at or before it were emitted by an earlier run */

	/* Idleness, measured between calls to agg_engine_advance_idle. */
	uint64_t activity, activity_seen;
	int64_t last_active_ms; /* INT64_MIN until the first check */
	int64_t idle_base_wm;

	/* Storage. */
	struct agg_series *series;
	uint32_t series_cap, series_free;
	struct agg_win *wins;
	uint32_t wins_cap, wins_free;
	uint32_t nwins; /* allocated windows (open or held) */
	struct agg_index series_ix, win_ix;
	struct agg_heap_ent *heap;
	uint32_t heap_len, heap_cap;
	uint32_t *held;
	uint32_t held_len, held_cap;
	uint32_t oldest, newest;
	uint64_t seq;
};

/* Returns a partition with no state, or NULL when memory runs out. */
struct agg_part *agg_part_new(int32_t id);
/* Frees the partition and every window and series in it; accepts NULL. */
void agg_part_free(struct agg_part *p);

/* The series with this group hash and key, or AGG_INDEX_NONE. */
uint32_t agg_part_series_find(const struct agg_part *p, uint64_t hash, const struct agg_reading *r,
                              unsigned group_by);
/* Adds a series with the key of r ("*" outside group_by). AGG_INDEX_NONE when memory runs out. */
uint32_t agg_part_series_add(struct agg_part *p, uint64_t hash, const struct agg_reading *r,
                             unsigned group_by);
/* Drops a window's reference; the series is released when no window references it any more. */
void agg_part_series_unref(struct agg_part *p, uint32_t s);
/* Releases a series that no window references (one just added whose window could not be). */
void agg_part_series_drop_unused(struct agg_part *p, uint32_t s);

static inline uint64_t agg_part_win_hash(const struct agg_part *p, uint32_t series, int64_t start)
{
	return agg_hash_combine(p->series[series].hash, (uint64_t)start);
}

/* The open window of series starting at start, or AGG_INDEX_NONE. */
uint32_t agg_part_win_find(const struct agg_part *p, uint32_t series, int64_t start, uint64_t hash);
/* Adds an empty window, indexed, on the heap and newest in creation order. The series gains a
 * reference. AGG_INDEX_NONE when memory runs out (nothing is then changed). */
uint32_t agg_part_win_add(struct agg_part *p, uint32_t series, int64_t start, int64_t end,
                          uint64_t hash, int64_t first_offset, const struct agg_str *unit);

/* The window on top of the heap (smallest end), or AGG_INDEX_NONE; *end receives its end. */
uint32_t agg_part_heap_top(const struct agg_part *p, int64_t *end);
/* Takes the top window off the heap and out of the index: no reading can reach it any more. */
void agg_part_heap_pop(struct agg_part *p);
/* Appends a closed window to the held list. Returns 0, or -1 when memory runs out. */
int agg_part_hold(struct agg_part *p, uint32_t w);
/* Frees a closed window (not on the heap any more): unlinks it and drops its series reference. */
void agg_part_win_release(struct agg_part *p, uint32_t w);

#endif
