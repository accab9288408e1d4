/* Hashing and the open-addressing index (see hashidx.h for why it is built this way). */
#include "hashidx.h"

#include <stdlib.h>
#include <string.h>

uint64_t agg_hash_bytes(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 0x6a09e667f3bcc909ULL ^ ((uint64_t)len * 0x9e3779b97f4a7c15ULL);
	uint64_t k;

	/* Eight bytes per step: keys are short ids, so the tail handling matters as much as the
	 * loop. The byte order of the loads is irrelevant: hashes never leave the process. */
	while (len >= 8) {
		memcpy(&k, p, 8);
		h = (h ^ agg_hash_mix(k)) * 0x9fb21c651e98df25ULL;
		p += 8;
		len -= 8;
	}
	k = 0;
	memcpy(&k, p, len);
	return agg_hash_mix(h ^ agg_hash_mix(k ^ 0xa0761d6478bd642fULL));
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 8;
	while (c < n)
		c <<= 1;
	return c;
}

int agg_index_init(struct agg_index *x, size_t min_capacity)
{
	size_t cap = pow2_at_least(min_capacity);
	x->slots = calloc(cap, sizeof(*x->slots));
	if (!x->slots)
		return -1;
	x->mask = cap - 1;
	x->len = 0;
	return 0;
}

void agg_index_free(struct agg_index *x)
{
	free(x->slots);
	x->slots = NULL;
	x->mask = 0;
	x->len = 0;
}

static void place(struct agg_index_slot *slots, size_t mask, uint64_t hash, uint32_t ref1)
{
	size_t pos = (size_t)hash & mask;
	while (slots[pos].ref)
		pos = (pos + 1) & mask;
	slots[pos].hash = hash;
	slots[pos].ref = ref1;
}

static int grow(struct agg_index *x)
{
	size_t cap = (x->mask + 1) * 2;
	struct agg_index_slot *n = calloc(cap, sizeof(*n));
	if (!n)
		return -1;
	for (size_t i = 0; i <= x->mask; i++)
		if (x->slots[i].ref)
			place(n, cap - 1, x->slots[i].hash, x->slots[i].ref);
	free(x->slots);
	x->slots = n;
	x->mask = cap - 1;
	return 0;
}

int agg_index_insert(struct agg_index *x, uint64_t hash, uint32_t ref)
{
	/* Half full at most: linear probing stays at about 1.5 probes per hit and 2.5 per miss. */
	if ((x->len + 1) * 2 > x->mask + 1 && grow(x) < 0)
		return -1;
	place(x->slots, x->mask, hash, ref + 1);
	x->len++;
	return 0;
}

void agg_index_remove(struct agg_index *x, uint64_t hash, uint32_t ref)
{
	size_t mask = x->mask;
	size_t pos = (size_t)hash & mask;

	while (x->slots[pos].ref != ref + 1) {
		if (!x->slots[pos].ref)
			return;
		pos = (pos + 1) & mask;
	}
	/* Backward shift: pull later members of the probe run into the hole when the hole lies
	 * between their home slot and where they sit, so no lookup ever stops early. */
	size_t hole = pos;
	for (size_t next = (hole + 1) & mask; x->slots[next].ref; next = (next + 1) & mask) {
		size_t home = (size_t)x->slots[next].hash & mask;
		if (((next - home) & mask) >= ((next - hole) & mask)) {
			x->slots[hole] = x->slots[next];
			hole = next;
		}
	}
	x->slots[hole].ref = 0;
	x->slots[hole].hash = 0;
	x->len--;
}
