/* SipHash-2-4 over several pieces, for the actuator's state tables.
 *
 * Identifiers come from devices, so a predictable hash would let anyone who can publish a
 * reading fill one bucket and turn every lookup into a list walk. A keyed hash with a random
 * key per process closes that door at a few nanoseconds per reading. */
#ifndef IOTPIPE_ACTUATOR_SIPHASH_H
#define IOTPIPE_ACTUATOR_SIPHASH_H

#include <stddef.h>
#include <stdint.h>

struct siphash {
	uint64_t v0, v1, v2, v3;
	uint64_t tail; /* bytes not yet forming a whole 8-byte word */
	size_t ntail;
	uint64_t total;
};

/* Fills key with 16 random bytes (getrandom, falling back to time and address bits). */
void siphash_key_random(uint8_t key[16]);

void siphash_init(struct siphash *h, const uint8_t key[16]);
void siphash_update(struct siphash *h, const void *data, size_t len);
uint64_t siphash_final(struct siphash *h);

#endif
