/* Per-partition storage of the aggregator (see part.h). */
#include "part.h"

#include <stdlib.h>
#include <string.h>

#define INITIAL_SLOTS 64

struct agg_part *agg_part_new(int32_t id)
{
	struct agg_part *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->id = id;
	p->wm = INT64_MIN;
	p->safe_wm = INT64_MIN;
	p->next_offset = -1;
	p->replay_end = -1;
	p->last_active_ms = INT64_MIN;
	p->series_free = AGG_INDEX_NONE;
	p->wins_free = AGG_INDEX_NONE;
	p->oldest = p->newest = AGG_INDEX_NONE;
	if (agg_index_init(&p->series_ix, INITIAL_SLOTS) < 0 ||
	    agg_index_init(&p->win_ix, INITIAL_SLOTS) < 0) {
		agg_part_free(p);
		return NULL;
	}
	return p;
}

void agg_part_free(struct agg_part *p)
{
	if (!p)
		return;
	for (uint32_t i = 0; i < p->wins_cap; i++) {
		if (p->wins[i].series == AGG_INDEX_NONE)
			continue;
		free(p->wins[i].unit);
		agg_fpset_free(&p->wins[i].dups);
	}
	for (uint32_t i = 0; i < p->series_cap; i++)
		free(p->series[i].key); /* NULL in free slots */
	free(p->wins);
	free(p->series);
	free(p->heap);
	free(p->held);
	agg_index_free(&p->series_ix);
	agg_index_free(&p->win_ix);
	free(p);
}

/* Doubles a slab's capacity (limited to what 32-bit indices can address). */
static void *grow_array(void *arr, uint32_t *cap, size_t elem)
{
	uint32_t n = *cap ? *cap * 2 : INITIAL_SLOTS;
	if (n <= *cap || n >= AGG_INDEX_NONE)
		return NULL;
	void *a = realloc(arr, (size_t)n * elem);
	if (!a)
		return NULL;
	*cap = n;
	return a;
}

uint32_t agg_part_series_find(const struct agg_part *p, uint64_t hash, const struct agg_reading *r,
                              unsigned group_by)
{
	size_t pos = agg_index_start(&p->series_ix, hash);
	uint32_t i;
	while ((i = agg_index_next(&p->series_ix, hash, &pos)) != AGG_INDEX_NONE) {
		const struct agg_series *s = &p->series[i];
		int f;
		for (f = 0; f < AGG_NFIELDS; f++) {
			if (!(group_by & (1u << f)))
				continue;
			size_t len = (size_t)(s->off[f + 1] - s->off[f]);
			if (len != r->key[f].len ||
			    memcmp(s->key + s->off[f], r->key[f].s, len) != 0)
				break;
		}
		if (f == AGG_NFIELDS)
			return i;
	}
	return AGG_INDEX_NONE;
}

uint32_t agg_part_series_add(struct agg_part *p, uint64_t hash, const struct agg_reading *r,
                             unsigned group_by)
{
	size_t total = 0;
	for (int f = 0; f < AGG_NFIELDS; f++)
		total += (group_by & (1u << f)) ? r->key[f].len : 1;
	char *key = malloc(total ? total : 1);
	if (!key)
		return AGG_INDEX_NONE;

	if (p->series_free == AGG_INDEX_NONE) {
		uint32_t old = p->series_cap;
		struct agg_series *n = grow_array(p->series, &p->series_cap, sizeof(*n));
		if (!n) {
			free(key);
			return AGG_INDEX_NONE;
		}
		p->series = n;
		for (uint32_t i = p->series_cap; i-- > old;) {
			n[i].refs = 0;
			n[i].key = NULL;
			n[i].next_free = p->series_free;
			p->series_free = i;
		}
	}
	uint32_t i = p->series_free;
	if (agg_index_insert(&p->series_ix, hash, i) < 0) {
		free(key);
		return AGG_INDEX_NONE;
	}
	struct agg_series *s = &p->series[i];
	p->series_free = s->next_free;
	s->hash = hash;
	s->refs = 0;
	s->key = key;
	size_t at = 0;
	for (int f = 0; f < AGG_NFIELDS; f++) {
		s->off[f] = (uint16_t)at;
		if (group_by & (1u << f)) {
			memcpy(key + at, r->key[f].s, r->key[f].len);
			at += r->key[f].len;
		} else {
			key[at++] = '*';
		}
	}
	s->off[AGG_NFIELDS] = (uint16_t)at;
	return i;
}

void agg_part_series_unref(struct agg_part *p, uint32_t i)
{
	p->series[i].refs--;
	agg_part_series_drop_unused(p, i);
}

void agg_part_series_drop_unused(struct agg_part *p, uint32_t i)
{
	struct agg_series *s = &p->series[i];
	if (s->refs)
		return;
	agg_index_remove(&p->series_ix, s->hash, i);
	free(s->key);
	s->key = NULL;
	s->next_free = p->series_free;
	p->series_free = i;
}

uint32_t agg_part_win_find(const struct agg_part *p, uint32_t series, int64_t start, uint64_t hash)
{
	size_t pos = agg_index_start(&p->win_ix, hash);
	uint32_t i;
	while ((i = agg_index_next(&p->win_ix, hash, &pos)) != AGG_INDEX_NONE)
		if (p->wins[i].series == series && p->wins[i].start == start)
			return i;
	return AGG_INDEX_NONE;
}

static bool heap_less(const struct agg_heap_ent *a, const struct agg_heap_ent *b)
{
	return a->end < b->end || (a->end == b->end && a->seq < b->seq);
}

static void heap_sift_up(struct agg_heap_ent *h, uint32_t i)
{
	struct agg_heap_ent e = h[i];
	while (i > 0) {
		uint32_t parent = (i - 1) / 2;
		if (!heap_less(&e, &h[parent]))
			break;
		h[i] = h[parent];
		i = parent;
	}
	h[i] = e;
}

static void heap_sift_down(struct agg_heap_ent *h, uint32_t len, uint32_t i)
{
	struct agg_heap_ent e = h[i];
	for (;;) {
		uint32_t c = 2 * i + 1;
		if (c >= len)
			break;
		if (c + 1 < len && heap_less(&h[c + 1], &h[c]))
			c++;
		if (!heap_less(&h[c], &e))
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = e;
}

uint32_t agg_part_win_add(struct agg_part *p, uint32_t series, int64_t start, int64_t end,
                          uint64_t hash, int64_t first_offset, const struct agg_str *unit)
{
	/* Reserve everything that can fail before changing anything. */
	if (p->heap_len == p->heap_cap) {
		struct agg_heap_ent *h = grow_array(p->heap, &p->heap_cap, sizeof(*h));
		if (!h)
			return AGG_INDEX_NONE;
		p->heap = h;
	}
	if (p->wins_free == AGG_INDEX_NONE) {
		uint32_t old = p->wins_cap;
		struct agg_win *n = grow_array(p->wins, &p->wins_cap, sizeof(*n));
		if (!n)
			return AGG_INDEX_NONE;
		p->wins = n;
		for (uint32_t i = p->wins_cap; i-- > old;) {
			memset(&n[i], 0, sizeof(n[i]));
			n[i].series = AGG_INDEX_NONE;
			n[i].newer = p->wins_free;
			p->wins_free = i;
		}
	}
	char *u = malloc(unit->len ? unit->len : 1);
	if (!u)
		return AGG_INDEX_NONE;
	uint32_t i = p->wins_free;
	if (agg_index_insert(&p->win_ix, hash, i) < 0) {
		free(u);
		return AGG_INDEX_NONE;
	}

	struct agg_win *w = &p->wins[i];
	p->wins_free = w->newer;
	memset(w, 0, sizeof(*w));
	w->hash = hash;
	w->start = start;
	w->first_offset = first_offset;
	w->seq = p->seq++;
	w->series = series;
	w->indexed = true;
	memcpy(u, unit->s, unit->len);
	w->unit = u;
	w->unit_len = (uint16_t)unit->len;

	w->older = p->newest;
	w->newer = AGG_INDEX_NONE;
	if (p->newest != AGG_INDEX_NONE)
		p->wins[p->newest].newer = i;
	else
		p->oldest = i;
	p->newest = i;

	p->heap[p->heap_len] = (struct agg_heap_ent){.end = end, .seq = w->seq, .win = i};
	heap_sift_up(p->heap, p->heap_len++);

	p->series[series].refs++;
	p->nwins++;
	return i;
}

uint32_t agg_part_heap_top(const struct agg_part *p, int64_t *end)
{
	if (!p->heap_len)
		return AGG_INDEX_NONE;
	*end = p->heap[0].end;
	return p->heap[0].win;
}

void agg_part_heap_pop(struct agg_part *p)
{
	struct agg_win *w = &p->wins[p->heap[0].win];
	agg_index_remove(&p->win_ix, w->hash, p->heap[0].win);
	w->indexed = false;
	p->heap[0] = p->heap[--p->heap_len];
	if (p->heap_len)
		heap_sift_down(p->heap, p->heap_len, 0);
}

int agg_part_hold(struct agg_part *p, uint32_t w)
{
	if (p->held_len == p->held_cap) {
		uint32_t *h = grow_array(p->held, &p->held_cap, sizeof(*h));
		if (!h)
			return -1;
		p->held = h;
	}
	p->held[p->held_len++] = w;
	return 0;
}

void agg_part_win_release(struct agg_part *p, uint32_t i)
{
	struct agg_win *w = &p->wins[i];
	if (w->older != AGG_INDEX_NONE)
		p->wins[w->older].newer = w->newer;
	else
		p->oldest = w->newer;
	if (w->newer != AGG_INDEX_NONE)
		p->wins[w->newer].older = w->older;
	else
		p->newest = w->older;

	agg_part_series_unref(p, w->series);
	free(w->unit);
	w->unit = NULL;
	agg_fpset_free(&w->dups);
	w->series = AGG_INDEX_NONE;
	w->newer = p->wins_free;
	p->wins_free = i;
	p->nwins--;
}
