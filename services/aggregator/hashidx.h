/* Hashing and an open-addressing index for the aggregator's tables.
 *
 * The index maps a 64-bit hash to a 32-bit reference into a table the caller owns (a slab of
 * series or windows). It keeps the hash next to the reference, so a probe stays in the index's
 * own memory until a hash matches; the caller then compares the full key, so a collision costs
 * one comparison and never a wrong answer. Linear probing with backward-shift deletion leaves no
 * tombstones: windows are deleted as often as they are inserted, and tombstones would make
 * lookups of a long-running process slower and slower. */
#ifndef IOTPIPE_AGG_HASHIDX_H
#define IOTPIPE_AGG_HASHIDX_H

#include <stddef.h>
#include <stdint.h>

/* A bijective 64-bit finalizer: distinct inputs give distinct outputs, which the duplicate
 * filter relies on (see fpset.h). */
static inline uint64_t agg_hash_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

/* Order-dependent combination of two hashes. */
static inline uint64_t agg_hash_combine(uint64_t h, uint64_t v)
{
	return agg_hash_mix(h * 0x9e3779b97f4a7c15ULL + v + 0x632be59bd9b4e019ULL);
}

/* Hash of a byte string; the length takes part, so "ab"+"c" and "a"+"bc" differ once combined. */
uint64_t agg_hash_bytes(const void *data, size_t len);

#define AGG_INDEX_NONE UINT32_MAX

struct agg_index_slot {
	uint64_t hash;
	uint32_t ref; /* reference + 1; 0 marks an empty slot */
};

/* The zero value is not usable: call agg_index_init. */
struct agg_index {
	struct agg_index_slot *slots;
	size_t mask; /* capacity - 1; capacity is a power of two */
	size_t len;
};

/* Returns 0, or -1 when memory runs out. */
int agg_index_init(struct agg_index *x, size_t min_capacity);
/* Releases the slots; the index is then zero (and may be initialised again). */
void agg_index_free(struct agg_index *x);

/* Lookup: start with pos = agg_index_start(x, hash), then call agg_index_next until it returns
 * AGG_INDEX_NONE; every reference it returns has this exact hash, and the caller compares keys.
 * The index must not change during the iteration. */
static inline size_t agg_index_start(const struct agg_index *x, uint64_t hash)
{
	return (size_t)hash & x->mask;
}

static inline uint32_t agg_index_next(const struct agg_index *x, uint64_t hash, size_t *pos)
{
	for (;;) {
		const struct agg_index_slot *s = &x->slots[*pos];
		if (!s->ref)
			return AGG_INDEX_NONE;
		*pos = (*pos + 1) & x->mask;
		if (s->hash == hash)
			return s->ref - 1;
	}
}

/* Adds ref under hash (the caller has checked it is not there). Grows the index when it is
 * half full. Returns 0, or -1 when memory runs out (the index is then unchanged). */
int agg_index_insert(struct agg_index *x, uint64_t hash, uint32_t ref);
/* Removes ref stored under hash; nothing happens when it is not there. */
void agg_index_remove(struct agg_index *x, uint64_t hash, uint32_t ref);

#endif
