/* Acknowledgement watermarks of source partitions (see acks.h). */
#include "acks.h"

#include <stdlib.h>

/* 32 bytes a slot: a chunk is 32 KiB, and a partition at full speed fills a few. */
#define ACK_CHUNK 1024

struct ack_chunk {
	struct ack_chunk *next;
	unsigned first, end; /* live slots: [first, end) */
	struct ack_slot slots[ACK_CHUNK];
};

void ack_queue_init(struct ack_queue *q, struct ack_pool *pool)
{
	*q = (struct ack_queue){.pool = pool};
}

static void chunk_put(struct ack_pool *pool, struct ack_chunk *c)
{
	c->next = pool->free;
	pool->free = c;
}

void ack_queue_clear(struct ack_queue *q)
{
	while (q->head) {
		struct ack_chunk *c = q->head;
		q->head = c->next;
		chunk_put(q->pool, c);
	}
	q->tail = NULL;
	q->pending = 0;
}

void ack_pool_free(struct ack_pool *pool)
{
	while (pool->free) {
		struct ack_chunk *c = pool->free;
		pool->free = c->next;
		free(c);
	}
	pool->nchunks = 0;
}

struct ack_slot *ack_push(struct ack_queue *q, int64_t offset, int64_t ts)
{
	struct ack_chunk *c = q->tail;
	if (!c || c->end == ACK_CHUNK) {
		c = q->pool->free;
		if (c)
			q->pool->free = c->next;
		else if ((c = malloc(sizeof(*c))))
			q->pool->nchunks++;
		else
			return NULL;
		c->next = NULL;
		c->first = c->end = 0;
		if (q->tail)
			q->tail->next = c;
		else
			q->head = c;
		q->tail = c;
	}
	struct ack_slot *s = &c->slots[c->end++];
	*s = (struct ack_slot){.q = q, .offset = offset, .ts = ts};
	q->pending++;
	return s;
}

void ack_unpush(struct ack_queue *q)
{
	struct ack_chunk *c = q->tail;
	if (!c || c->end == c->first)
		return;
	c->end--;
	q->pending--;
	/* An emptied chunk stays as the tail: the next push fills it again. */
}

void ack_done(struct ack_slot *s)
{
	struct ack_queue *q = s->q;
	s->done = true;
	q->pending--;
	/* Drop acknowledged slots from the front; acknowledgements mostly come in produce order,
	 * so this usually moves past exactly the slot just acknowledged. */
	struct ack_chunk *c = q->head;
	while (c) {
		while (c->first < c->end && c->slots[c->first].done)
			c->first++;
		if (c->first < c->end)
			return;
		if (c != q->tail) {
			q->head = c->next;
			chunk_put(q->pool, c);
			c = q->head;
			continue;
		}
		c->first = c->end = 0; /* the tail is empty: reuse it in place */
		return;
	}
}

int64_t ack_watermark(const struct ack_queue *q, int64_t next_offset)
{
	const struct ack_chunk *c = q->head;
	if (!c || c->first == c->end)
		return next_offset;
	int64_t oldest = c->slots[c->first].offset;
	return oldest < next_offset ? oldest : next_offset;
}
