/* The duplicate filter's fingerprint set (see fpset.h). */
#include "fpset.h"

#include <stdlib.h>

static void put(uint64_t *slots, uint32_t mask, uint64_t fp)
{
	uint32_t pos = (uint32_t)fp & mask;
	while (slots[pos])
		pos = (pos + 1) & mask;
	slots[pos] = fp;
}

static int grow(struct agg_fpset *s)
{
	/* Starts small: most windows of a sparse series see a handful of readings. */
	uint32_t cap = s->slots ? (s->mask + 1) * 2 : 8;
	if (cap == 0)
		return -1;
	uint64_t *n = calloc(cap, sizeof(*n));
	if (!n)
		return -1;
	if (s->slots)
		for (uint32_t i = 0; i <= s->mask; i++)
			if (s->slots[i])
				put(n, cap - 1, s->slots[i]);
	free(s->slots);
	s->slots = n;
	s->mask = cap - 1;
	return 0;
}

int agg_fpset_add(struct agg_fpset *s, uint64_t fp)
{
	if (fp == 0) {
		if (s->has_zero)
			return 0;
		s->has_zero = true;
		return 1;
	}
	if (s->slots) {
		uint32_t pos = (uint32_t)fp & s->mask;
		for (; s->slots[pos]; pos = (pos + 1) & s->mask)
			if (s->slots[pos] == fp)
				return 0;
	}
	/* Three quarters full at most: the fingerprints are already well mixed. */
	if (!s->slots || (uint64_t)(s->len + 1) * 4 > (uint64_t)(s->mask + 1) * 3) {
		if (grow(s) < 0)
			return -1;
	}
	put(s->slots, s->mask, fp);
	s->len++;
	return 1;
}

void agg_fpset_free(struct agg_fpset *s)
{
	free(s->slots);
	s->slots = NULL;
	s->mask = 0;
	s->len = 0;
	s->has_zero = false;
}
