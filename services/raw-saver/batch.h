/* A batch: the records queued for one transaction, already encoded.
 *
 * Each record's columns are encoded when it arrives, as a binary COPY tuple in its table's
 * buffer, and its Avro value is kept to rebuild it if the database refuses it; the decoded JSON
 * tree is not kept (holding thousands of them made freeing a batch cost more than writing it).
 * Buffers are reused from batch to batch, so a steady stream stops allocating.
 *
 * The batch also remembers, per input partition, the offset after its last record: once the
 * batch is committed in PostgreSQL, those offsets may be committed in Kafka. */
#ifndef RAW_SAVER_BATCH_H
#define RAW_SAVER_BATCH_H

#include "buf.h"
#include "stream.h"
#include "tables.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct batch_row {
	enum rec_type type;
	bool from_dead_topic; /* read from the dead-letter topic: never sent back to it */
	bool refused;
	char sqlstate[6]; /* of the refusal; "" when the record could not be encoded */
	char *reason;     /* why it was refused (malloc'd) */
	size_t tuple_off; /* in the table's tuples */
	size_t tuple_len; /* 0 when it could not be encoded (refused on arrival) */
	size_t value_off; /* Avro single-object encoding in values */
	size_t value_len;
	int64_t kafka_ts;
	struct origin origin;
};

/* Rows of one table: their indexes, and their tuples after the binary COPY header. */
struct batch_table {
	size_t *idx;
	size_t n, cap;
	struct buf tuples;
};

/* Next offset to read per Kafka partition. */
struct partpos {
	char *topic;
	int32_t partition;
	int64_t next;
};

struct posmap {
	struct partpos *p;
	size_t n, cap;
	size_t last; /* index of the last hit: records come in runs per partition */
};

struct batch {
	struct batch_row *rows;
	size_t n, cap;
	struct batch_table tb[REC_TYPE_COUNT];
	struct buf values;
	struct posmap pos;
	int64_t first_at; /* monotonic ms when the first record was queued */
};

/* Queues one record of m's type, encoded for tables[m->type], with origin o; dead_topic (or
 * NULL) is the dead-letter topic. A record that does not fit its columns is queued refused.
 * Returns 0, or -1 when memory runs out (the batch is unchanged). */
int batch_add(struct batch *b, const struct table *tables, const struct stream_msg *m,
              const struct origin *o, const char *dead_topic);
/* Marks row r refused with "table: why". */
void batch_refuse(struct batch_row *r, const char *table, const char *sqlstate, const char *why);
/* Empties the batch, keeping its buffers. */
void batch_clear(struct batch *b);
/* Frees everything; accepts NULL. */
void batch_free(struct batch *b);

/* Raises the next offset of (topic, partition) to next. Returns 0 or -1 (out of memory). */
int posmap_raise(struct posmap *m, const char *topic, int32_t partition, int64_t next);
/* The next offset known for (topic, partition), or -1. */
int64_t posmap_get(const struct posmap *m, const char *topic, int32_t partition);
/* Forgets (topic, partition): posmap_get gives -1 until it is raised again. */
void posmap_forget(struct posmap *m, const char *topic, int32_t partition);
/* Raises every position of `to` to those of from. Returns 0 or -1. */
int posmap_merge(struct posmap *to, const struct posmap *from);
void posmap_clear(struct posmap *m);
/* Frees the map's memory; accepts NULL. */
void posmap_free(struct posmap *m);

#endif
