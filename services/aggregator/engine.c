/* The aggregator's windowing engine (see engine.h for the contract, docs/aggregator.md for why
 * a restart emits the same windows with the same values). */
#include "engine.h"

#include "aggregate.h"
#include "fpset.h"
#include "hashidx.h"
#include "part.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Kafka partition ids are small and dense; the table of partitions is indexed by them. */
#define PARTITION_LIMIT 65536
/* Window slabs are addressed by 32-bit indices with a few values reserved as markers. */
#define MAX_WINDOWS_LIMIT (UINT64_C(1) << 30)

/* Markers for a reading's windows while it is classified (window indices stay below 2^30). */
#define W_NEW AGG_INDEX_NONE
#define W_LATE (AGG_INDEX_NONE - 1)
#define W_REPLAY (AGG_INDEX_NONE - 2)

struct agg_engine {
	struct agg_config cfg;
	struct agg_part **parts; /* indexed by partition id; NULL for partitions not seen */
	size_t nparts;
	uint64_t star_hash; /* hash of "*", the value of fields outside the group-by */
	struct agg_counters c;
};

int agg_config_check(const struct agg_config *cfg, char *err, size_t errlen)
{
	char why[200];
	if (agg_window_spec_check(&cfg->window, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "--window/--hop: %s", why);
		return -1;
	}
	if (cfg->grace_ms < 0 || cfg->grace_ms > AGG_SPAN_LIMIT) {
		snprintf(err, errlen,
		         "--grace: %" PRId64 " ms is out of range (0 to %" PRId64 " ms)",
		         cfg->grace_ms, AGG_SPAN_LIMIT);
		return -1;
	}
	if (cfg->idle_timeout_ms < 0 || cfg->idle_timeout_ms > AGG_SPAN_LIMIT) {
		snprintf(err, errlen,
		         "--idle-timeout: %" PRId64 " ms is out of range (0 = off, up to %" PRId64
		         " ms)",
		         cfg->idle_timeout_ms, AGG_SPAN_LIMIT);
		return -1;
	}
	if (agg_group_by_check(cfg->group_by, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "--group-by: %s", why);
		return -1;
	}
	if (cfg->max_windows < 1 || (uint64_t)cfg->max_windows > MAX_WINDOWS_LIMIT) {
		snprintf(err, errlen, "--max-windows: %zu is out of range (1 to %" PRIu64 ")",
		         cfg->max_windows, MAX_WINDOWS_LIMIT);
		return -1;
	}
	if (!cfg->emit) {
		snprintf(err, errlen, "no emit callback");
		return -1;
	}
	return 0;
}

struct agg_engine *agg_engine_new(const struct agg_config *cfg, char *err, size_t errlen)
{
	if (agg_config_check(cfg, err, errlen) < 0)
		return NULL;
	struct agg_engine *e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->cfg = *cfg;
	e->star_hash = agg_hash_bytes("*", 1);
	return e;
}

void agg_engine_free(struct agg_engine *e)
{
	if (!e)
		return;
	for (size_t i = 0; i < e->nparts; i++)
		agg_part_free(e->parts[i]);
	free(e->parts);
	free(e);
}

static struct agg_part *part_find(const struct agg_engine *e, int32_t id)
{
	return id >= 0 && (size_t)id < e->nparts ? e->parts[id] : NULL;
}

static struct agg_part *part_get(struct agg_engine *e, int32_t id, char *err, size_t errlen)
{
	struct agg_part *p = part_find(e, id);
	if (p)
		return p;
	if (id < 0 || id >= PARTITION_LIMIT) {
		snprintf(err, errlen, "partition %" PRId32 " is out of range (0 to %d)", id,
		         PARTITION_LIMIT - 1);
		return NULL;
	}
	if ((size_t)id >= e->nparts) {
		size_t n = (size_t)id + 1;
		struct agg_part **a = realloc(e->parts, n * sizeof(*a));
		if (!a)
			goto oom;
		memset(a + e->nparts, 0, (n - e->nparts) * sizeof(*a));
		e->parts = a;
		e->nparts = n;
	}
	p = agg_part_new(id);
	if (!p)
		goto oom;
	e->parts[id] = p;
	return p;
oom:
	snprintf(err, errlen, "out of memory creating the state of partition %" PRId32, id);
	return NULL;
}

static void part_forget(struct agg_engine *e, int32_t id)
{
	struct agg_part *p = part_find(e, id);
	if (!p)
		return;
	e->c.open_windows -= p->nwins;
	agg_part_free(p);
	e->parts[id] = NULL;
}

/* Hands a closed window to the emit callback and frees it, whatever the callback says. */
static enum agg_status emit_window(struct agg_engine *e, struct agg_part *p, uint32_t w, char *err,
                                   size_t errlen)
{
	json_t *o =
	    agg_aggregate_json(&p->series[p->wins[w].series], &p->wins[w], e->cfg.window.size_ms);
	int rc = -1;
	if (!o)
		snprintf(err, errlen, "out of memory building an aggregate");
	else
		rc = e->cfg.emit(e->cfg.emit_ctx, p->id, o, err, errlen);
	json_decref(o);
	agg_part_win_release(p, w);
	e->c.open_windows--;
	if (rc < 0)
		return AGG_FAILED;
	e->c.emitted++;
	return AGG_OK;
}

/* Closes the windows ending at or before `until`, in (end, creation) order: emitted at once, or
 * held while an idle advance waits for its commit. *last_end receives the last end closed. */
static enum agg_status close_until(struct agg_engine *e, struct agg_part *p, int64_t until,
                                   int64_t *last_end, char *err, size_t errlen)
{
	int64_t end;
	uint32_t w;
	while ((w = agg_part_heap_top(p, &end)) != AGG_INDEX_NONE && end <= until) {
		if (p->holding && agg_part_hold(p, w) < 0) {
			snprintf(err, errlen, "out of memory holding closed windows");
			return AGG_FAILED;
		}
		agg_part_heap_pop(p);
		if (last_end)
			*last_end = end;
		if (!p->holding && emit_window(e, p, w, err, errlen) != AGG_OK)
			return AGG_FAILED;
	}
	return AGG_OK;
}

static enum agg_status raise_wm(struct agg_engine *e, struct agg_part *p, int64_t wm, char *err,
                                size_t errlen)
{
	if (wm <= p->wm)
		return AGG_OK;
	p->wm = wm;
	return close_until(e, p, wm, NULL, err, errlen);
}

/* A restored idle advance takes effect at the same offset as in the run that decided it. */
static enum agg_status apply_due_advance(struct agg_engine *e, struct agg_part *p, int64_t offset,
                                         char *err, size_t errlen)
{
	if (!p->has_adv || p->holding || offset < 0 || offset < p->adv_at)
		return AGG_OK;
	p->has_adv = false;
	return raise_wm(e, p, p->adv_wm, err, errlen);
}

static enum agg_status check_offset(const struct agg_part *p, int64_t offset, char *err,
                                    size_t errlen)
{
	if (offset >= 0 && (p->next_offset < 0 || offset >= p->next_offset))
		return AGG_OK;
	snprintf(err, errlen,
	         "offset %" PRId64 " of partition %" PRId32 " is before the next expected (%" PRId64
	         "): offsets must increase; restore the partition to read it again",
	         offset, p->id, p->next_offset);
	return AGG_FAILED;
}

/* Moves the partition's position past offset. */
static enum agg_status consume(struct agg_engine *e, struct agg_part *p, int64_t offset, char *err,
                               size_t errlen)
{
	p->next_offset = offset + 1;
	p->activity++;
	return apply_due_advance(e, p, p->next_offset, err, errlen);
}

enum agg_status agg_engine_skip(struct agg_engine *e, int32_t partition, int64_t offset, char *err,
                                size_t errlen)
{
	struct agg_part *p = part_get(e, partition, err, errlen);
	if (!p)
		return AGG_FAILED;
	if (offset < 0 || (p->next_offset >= 0 && offset < p->next_offset))
		return AGG_OK; /* already behind the position */
	if (apply_due_advance(e, p, offset, err, errlen) != AGG_OK)
		return AGG_FAILED;
	return consume(e, p, offset, err, errlen);
}

static enum agg_status refuse(struct agg_engine *e, struct agg_part *p, int64_t offset, char *err,
                              size_t errlen)
{
	char why[256];
	snprintf(why, sizeof(why), "%s", err);
	e->c.invalid++;
	if (consume(e, p, offset, err, errlen) != AGG_OK)
		return AGG_FAILED;
	snprintf(err, errlen, "%s", why);
	return AGG_INVALID;
}

static bool key_is_text(const struct agg_reading *r, unsigned group_by, char *err, size_t errlen)
{
	for (int f = 0; f < AGG_NFIELDS; f++) {
		if ((group_by & (1u << f)) && !agg_utf8_valid(r->key[f].s, r->key[f].len)) {
			snprintf(err, errlen, "Reading.%s: not valid UTF-8",
			         agg_field_name((enum agg_field)f));
			return false;
		}
	}
	return true;
}

enum agg_status agg_engine_add(struct agg_engine *e, int32_t partition, int64_t offset,
                               const struct agg_reading *r, struct agg_outcome *out, char *err,
                               size_t errlen)
{
	const struct agg_config *cfg = &e->cfg;
	uint32_t wins[AGG_WINDOWS_PER_READING_MAX];
	int64_t first;

	memset(out, 0, sizeof(*out));
	struct agg_part *p = part_get(e, partition, err, errlen);
	if (!p || check_offset(p, offset, err, errlen) != AGG_OK)
		return AGG_FAILED;
	if (apply_due_advance(e, p, offset, err, errlen) != AGG_OK)
		return AGG_FAILED;
	if (agg_reading_check(r, err, errlen) < 0)
		return refuse(e, p, offset, err, errlen);

	/* Two hashes: the reading's identity (all four fields, for duplicates) and its group. */
	uint64_t hfull = 0, hgroup = 0;
	for (int f = 0; f < AGG_NFIELDS; f++) {
		uint64_t h = agg_hash_bytes(r->key[f].s, r->key[f].len);
		hfull = agg_hash_combine(hfull, h);
		hgroup = agg_hash_combine(hgroup, (cfg->group_by & (1u << f)) ? h : e->star_hash);
	}
	uint64_t fp = agg_fingerprint(hfull, r->ts);

	/* Classify every window first, so that a refusal (cap, bad text) changes nothing. */
	size_t n = agg_window_assign(&cfg->window, r->ts, &first);
	uint32_t s = agg_part_series_find(p, hgroup, r, cfg->group_by);
	size_t need = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t start = first + (int64_t)i * cfg->window.hop_ms;
		int64_t end = start + cfg->window.size_ms;
		if (p->has_replay_wm && offset < p->replay_end && end <= p->replay_wm)
			wins[i] = W_REPLAY;
		else if (end <= p->wm)
			wins[i] = W_LATE;
		else if (s == AGG_INDEX_NONE)
			wins[i] = W_NEW;
		else
			wins[i] = agg_part_win_find(p, s, start, agg_part_win_hash(p, s, start));
		need += wins[i] == W_NEW;
	}
	bool new_series = false;
	if (need) {
		if (e->c.open_windows + need > cfg->max_windows) {
			snprintf(err, errlen,
			         "open-window cap reached: %" PRIu64
			         " windows are open and --max-windows is "
			         "%zu (partition %" PRId32 ", event time %" PRId64
			         "); raise --max-windows "
			         "or shorten --window/--grace",
			         e->c.open_windows, cfg->max_windows, partition, r->ts);
			return AGG_FULL;
		}
		if (!agg_utf8_valid(r->unit.s, r->unit.len)) {
			snprintf(err, errlen, "Reading.unit: not valid UTF-8");
			return refuse(e, p, offset, err, errlen);
		}
		if (s == AGG_INDEX_NONE) {
			if (!key_is_text(r, cfg->group_by, err, errlen))
				return refuse(e, p, offset, err, errlen);
			s = agg_part_series_add(p, hgroup, r, cfg->group_by);
			if (s == AGG_INDEX_NONE)
				goto oom;
			new_series = true;
		}
	}

	for (size_t i = 0; i < n; i++) {
		uint32_t w = wins[i];
		if (w == W_REPLAY) {
			out->replayed++;
			continue;
		}
		if (w == W_LATE) {
			out->late++;
			continue;
		}
		if (w == W_NEW) {
			int64_t start = first + (int64_t)i * cfg->window.hop_ms;
			w = agg_part_win_add(p, s, start, start + cfg->window.size_ms,
			                     agg_part_win_hash(p, s, start), offset, &r->unit);
			if (w == AGG_INDEX_NONE)
				goto oom;
			new_series = false;
			if (++e->c.open_windows > e->c.peak_windows)
				e->c.peak_windows = e->c.open_windows;
		}
		struct agg_win *win = &p->wins[w];
		int rc = agg_fpset_add(&win->dups, fp);
		if (rc < 0)
			goto oom;
		if (rc == 0) {
			out->duplicate++;
			continue;
		}
		agg_stats_add(&win->st, r->value, r->ts);
		out->added++;
	}

	e->c.readings++;
	if (out->late)
		e->c.late++;
	else if (out->added)
		e->c.added++;
	else if (out->duplicate)
		e->c.duplicates++;
	else
		e->c.replayed++;

	if (consume(e, p, offset, err, errlen) != AGG_OK)
		return AGG_FAILED;
	return raise_wm(e, p, r->ts - cfg->grace_ms, err, errlen);
oom:
	if (new_series)
		agg_part_series_drop_unused(p, s);
	snprintf(err, errlen, "out of memory adding a reading to partition %" PRId32, partition);
	return AGG_FAILED;
}

static int64_t add_saturating(int64_t a, int64_t b)
{
	if (b > 0 && a > INT64_MAX - b)
		return INT64_MAX;
	return a + b;
}

int agg_engine_advance_idle(struct agg_engine *e, int64_t now_wall_ms, char *err, size_t errlen)
{
	int started = 0;
	for (size_t i = 0; i < e->nparts; i++) {
		struct agg_part *p = e->parts[i];
		if (!p)
			continue;
		if (p->activity != p->activity_seen || p->last_active_ms == INT64_MIN) {
			p->activity_seen = p->activity;
			p->last_active_ms = now_wall_ms;
			p->idle_base_wm = p->wm;
			continue;
		}
		int64_t idle_for = now_wall_ms - p->last_active_ms;
		if (e->cfg.idle_timeout_ms <= 0 || idle_for < e->cfg.idle_timeout_ms ||
		    p->holding || p->has_adv || p->wm == INT64_MIN ||
		    (p->replay_end >= 0 && p->next_offset < p->replay_end))
			continue;

		/* Event time is taken to have gone on at wall-clock speed since the partition fell
		 * idle. The watermark moves only to the end of the last window that closes, so a
		 * reading that arrives later is late only for windows really emitted. */
		int64_t target = add_saturating(p->idle_base_wm, idle_for);
		int64_t end;
		if (agg_part_heap_top(p, &end) == AGG_INDEX_NONE || end > target)
			continue;
		p->safe_wm = p->wm;
		p->holding = true;
		int64_t last = end;
		if (close_until(e, p, target, &last, err, errlen) != AGG_OK)
			return -1;
		p->wm = last;
		p->has_adv = true;
		p->adv_wm = last;
		p->adv_at = p->next_offset;
		started++;
	}
	return started;
}

int agg_engine_commit_point(const struct agg_engine *e, int32_t partition, struct agg_commit *c)
{
	const struct agg_part *p = part_find(e, partition);
	if (!p || p->next_offset < 0)
		return 0;
	struct agg_meta m = {0};
	c->offset = p->oldest != AGG_INDEX_NONE ? p->wins[p->oldest].first_offset : p->next_offset;
	m.wm = p->holding ? p->safe_wm : p->wm;
	m.has_wm = m.wm != INT64_MIN;
	m.next = p->next_offset > p->replay_end ? p->next_offset : p->replay_end;
	m.has_adv = p->has_adv;
	m.adv_wm = p->adv_wm;
	m.adv_at = p->adv_at;
	agg_meta_format(&m, c->metadata, sizeof(c->metadata));
	return 1;
}

/* Emits the held windows in the order they closed. */
static enum agg_status release_held(struct agg_engine *e, struct agg_part *p, char *err,
                                    size_t errlen)
{
	p->holding = false;
	p->has_adv = false;
	for (uint32_t i = 0; i < p->held_len; i++) {
		if (emit_window(e, p, p->held[i], err, errlen) != AGG_OK) {
			memmove(p->held, p->held + i + 1, (p->held_len - i - 1) * sizeof(*p->held));
			p->held_len -= i + 1;
			return AGG_FAILED;
		}
	}
	p->held_len = 0;
	return AGG_OK;
}

enum agg_status agg_engine_committed(struct agg_engine *e, int32_t partition, const char *metadata,
                                     char *err, size_t errlen)
{
	struct agg_part *p = part_find(e, partition);
	struct agg_meta m;
	char why[200];
	if (!p || !p->holding || agg_meta_parse(metadata, &m, why, sizeof(why)) < 0)
		return AGG_OK;
	if (!m.has_adv || m.adv_wm != p->adv_wm || m.adv_at != p->adv_at)
		return AGG_OK;
	return release_held(e, p, err, errlen);
}

enum agg_status agg_engine_restore(struct agg_engine *e, int32_t partition, int64_t offset,
                                   const char *metadata, char *err, size_t errlen)
{
	struct agg_meta m;
	if (agg_meta_parse(metadata, &m, err, errlen) < 0)
		return AGG_INVALID;
	part_forget(e, partition);
	struct agg_part *p = part_get(e, partition, err, errlen);
	if (!p)
		return AGG_FAILED;
	p->next_offset = offset >= 0 ? offset : -1;
	if (m.has_wm) {
		p->wm = m.wm;
		p->has_replay_wm = true;
		p->replay_wm = m.wm;
	}
	p->replay_end = m.next;
	if (m.has_adv) {
		p->has_adv = true;
		p->adv_wm = m.adv_wm;
		p->adv_at = m.adv_at;
	}
	return apply_due_advance(e, p, p->next_offset, err, errlen);
}

void agg_engine_drop(struct agg_engine *e, int32_t partition)
{
	part_forget(e, partition);
}

enum agg_status agg_engine_close_all(struct agg_engine *e, char *err, size_t errlen)
{
	for (size_t i = 0; i < e->nparts; i++) {
		struct agg_part *p = e->parts[i];
		if (!p)
			continue;
		if (p->holding && release_held(e, p, err, errlen) != AGG_OK)
			return AGG_FAILED;
		p->has_adv = false;
		int64_t last = p->wm;
		if (close_until(e, p, INT64_MAX, &last, err, errlen) != AGG_OK)
			return AGG_FAILED;
		if (last > p->wm)
			p->wm = last;
	}
	return AGG_OK;
}

void agg_engine_counters(const struct agg_engine *e, struct agg_counters *c)
{
	*c = e->c;
	c->held_windows = 0;
	for (size_t i = 0; i < e->nparts; i++)
		if (e->parts[i])
			c->held_windows += e->parts[i]->held_len;
}
