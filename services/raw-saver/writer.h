/* The batch writer: records accumulate in a batch that is written to PostgreSQL in one
 * transaction (dbwrite.h) by a database thread, while the main thread goes on reading and
 * encoding the next batch. At most one batch is being written while the next one fills, so the
 * saver never holds more than two batches, and reading stops while both are full.
 *
 * Offsets: the stream commits, per partition, only what PostgreSQL has committed. A checkpoint
 * the saver starts itself (writer_checkpoint) hands the full batch over and commits the
 * offsets of the batches already written; every other checkpoint (rebalance, shutdown) waits
 * until everything read is written, then commits all of it.
 *
 * Records the database refuses go to the dead-letter output as Rejected records (stage
 * "raw-saver", the server's error as the reason) before their batch's offsets are committed.
 * While the database cannot be reached, the batch is kept and retried with exponential backoff,
 * nothing is committed, and /readyz reports not ready. */
#ifndef RAW_SAVER_WRITER_H
#define RAW_SAVER_WRITER_H

#include "pg.h"
#include "stream.h"
#include "tables.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct writer_config {
	struct pg *pg;                        /* borrowed */
	const struct table *tables;           /* REC_TYPE_COUNT tables, borrowed */
	long long retry_min_ms, retry_max_ms; /* backoff between failed attempts */
	bool copy;                            /* allow the COPY mode (dbwrite.h) */
	size_t batch;                         /* records per batch */
	long long batch_ms;                   /* longest wait before a partial batch is written */
};

struct writer;

/* Starts the database thread. Returns NULL with the reason on failure. */
struct writer *writer_new(const struct writer_config *cfg, char *err, size_t errlen);
/* Stops the thread and drops whatever is not written (it was not committed, so it will be read
 * again); accepts NULL. Touches no metric, so it may run after metrics_shutdown(). */
void writer_free(struct writer *w);

/* Where refused records go: out (owned by s) receives Rejected records; records read from the
 * topic named dead_topic are never sent back to it. out may be NULL: refused records are then
 * only logged. */
void writer_set_dead_letter(struct writer *w, struct stream *s, struct stream_out *out,
                            const char *dead_topic);

/* Queues one decoded record with its origin. Returns 0, or -1 when memory runs out. */
int writer_add(struct writer *w, const struct stream_msg *m, const struct origin *o);
/* Records queued in the batch being filled. */
size_t writer_pending(const struct writer *w);
/* Records read and not yet committed in PostgreSQL. */
size_t writer_unwritten(const struct writer *w);
/* True when the saver should take a checkpoint: the batch is full, its oldest record has
 * waited --batch-ms, a written batch is ready to be acknowledged, or a failed one may be tried
 * again. */
bool writer_due(struct writer *w);
/* True while the database thread is writing (the connection is then not free). */
bool writer_busy(struct writer *w);
/* Milliseconds until the next attempt is allowed after a failure (0: now). */
int64_t writer_retry_in_ms(const struct writer *w);
/* Allows an attempt now, whatever the backoff says (final flush at shutdown). */
void writer_retry_now(struct writer *w);

/* Takes a checkpoint of s that hands the batch over without waiting for it to be written.
 * Returns stream_checkpoint's result. */
int writer_checkpoint(struct writer *w, struct stream *s);

/* Stream hooks; ctx is the writer. The flush hook waits for everything to be written unless
 * called from writer_checkpoint; it returns -1 (no commit) while something failed. */
int writer_flush_hook(void *ctx);
int64_t writer_commit_position_hook(void *ctx, const char *topic, int32_t partition,
                                    int64_t next_offset, char *metadata, size_t metadata_len);
void writer_assign_hook(void *ctx, const char *topic, int32_t partition, int64_t committed,
                        const char *metadata);

#endif
