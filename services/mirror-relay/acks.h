/* Which records of one source partition the target acknowledged, so that the relay can commit
 * the offset below which everything arrived without waiting for the producer to drain.
 *
 * Records of a partition are handed to the producer in offset order, but their acknowledgements
 * may come back out of order: when the target topic has fewer partitions, the records of one
 * source partition are spread over several target partitions by key. So each partition keeps
 * its records in flight in the order they were produced, and its watermark is the offset of the
 * first one not acknowledged yet (or the next offset to read when none is in flight).
 *
 * A slot is what the producer's delivery report carries back (its opaque). Slots live in chunks
 * shared through a pool, so steady relaying allocates nothing. One thread only (the relay's
 * main thread produces and serves delivery reports). */
#ifndef MIRROR_RELAY_ACKS_H
#define MIRROR_RELAY_ACKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ack_chunk;
struct ack_queue;

struct ack_slot {
	struct ack_queue *q;
	int64_t offset;
	int64_t ts; /* source timestamp, for the lag and latency figures */
	bool done;
};

/* Chunks no partition uses, for any partition to take. */
struct ack_pool {
	struct ack_chunk *free;
	size_t nchunks; /* allocated, free or not */
};

struct ack_queue {
	struct ack_pool *pool;
	struct ack_chunk *head, *tail; /* produce order: oldest first */
	size_t pending;		       /* slots not acknowledged */
};

void ack_queue_init(struct ack_queue *q, struct ack_pool *pool);
/* Gives the queue's chunks back to its pool. */
void ack_queue_clear(struct ack_queue *q);
/* Frees the pool's chunks; every queue using it must be cleared first. */
void ack_pool_free(struct ack_pool *pool);

/* A slot for the record at offset, produced after every slot taken before. NULL when out of
 * memory. */
struct ack_slot *ack_push(struct ack_queue *q, int64_t offset, int64_t ts);
/* The target acknowledged the slot's record; the slot must not be used afterwards. */
void ack_done(struct ack_slot *s);
/* Gives back the slot of a record that was not produced after all (the newest taken). */
void ack_unpush(struct ack_queue *q);
/* Offset below which every record handed to the producer was acknowledged: the oldest
 * unacknowledged record's offset, or next_offset when none is in flight. */
int64_t ack_watermark(const struct ack_queue *q, int64_t next_offset);

#endif
