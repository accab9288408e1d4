/* A set of 64-bit fingerprints: the duplicate filter of one open window.
 *
 * A reading's identity is (site, device, sensor, metric, ts). A window keeps, for every reading
 * it counted, fp = mix(series_hash + mix(ts)), where series_hash hashes the four key fields and
 * mix is a bijection. For one series, distinct ts therefore give distinct fingerprints, so a
 * window that holds one series (the default group-by) detects duplicates exactly. When a window
 * groups several series, two different readings are confused only if their fingerprints collide,
 * about n^2 / 2^65 for n readings in the window (1e-8 for a million). The set lives as long as
 * its window and is freed when the window is emitted, so its memory is bounded by open windows. */
#ifndef IOTPIPE_AGG_FPSET_H
#define IOTPIPE_AGG_FPSET_H

#include "hashidx.h"

#include <stdbool.h>
#include <stdint.h>

/* The zero value is an empty set. */
struct agg_fpset {
	uint64_t *slots; /* 0 marks an empty slot; fingerprint 0 itself is kept in has_zero */
	uint32_t mask;
	uint32_t len;
	bool has_zero;
};

static inline uint64_t agg_fingerprint(uint64_t series_hash, int64_t ts)
{
	return agg_hash_mix(series_hash + agg_hash_mix((uint64_t)ts));
}

/* Returns 1 when fp was added, 0 when it was already there, -1 when memory ran out (the set is
 * then unchanged). */
int agg_fpset_add(struct agg_fpset *s, uint64_t fp);
/* Releases the memory; the set is empty again. */
void agg_fpset_free(struct agg_fpset *s);

#endif
