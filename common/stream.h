/* The record stream every processing service runs on: one input (a Kafka topic or stdin as
 * JSON lines), any number of outputs (Kafka topics, stdout, a file, or stderr), and the
 * batch-then-commit rule that makes the pipeline at-least-once:
 *
 *   a checkpoint (every checkpoint_ms or checkpoint_records, before partitions are revoked, and
 *   at close) first waits until Kafka acknowledged every record the outputs produced, then runs
 *   the service's flush hook (raw-saver's PostgreSQL COMMIT), and only then commits the input
 *   offsets. A failed delivery or flush means no commit: the records will be read again.
 *
 *   A stream without hooks (nothing but records in and out: the cleaner) does not stop for its
 *   periodic checkpoints: it notes the offsets read so far, goes on reading and producing, and
 *   commits those offsets once Kafka acknowledged every record produced before the note
 *   (common/ack_epochs.h). The rule is the same; only the waiting is gone. Checkpoints before a
 *   revocation, on stream_checkpoint() and at close still wait.
 *
 * Stateful services choose what to commit per partition (commit_position hook) and keep their
 * watermark in the commit metadata, which on_assign hands back after a restart.
 *
 * Input records that cannot be decoded (unknown schema, garbage) are dead-lettered unchanged
 * to the dead-letter topic with the reason in the iotpipe-error header, counted, and skipped.
 *
 * Output specs: "-" is stdout (JSON lines). With Kafka brokers configured, any other value is
 * a topic. Without brokers, a value containing '/' or ending in ".jsonl" is a file (appended,
 * JSON lines) and anything else goes to stderr as JSON lines (side outputs such as rejected or
 * late records never mix into stdout). */
#ifndef IOTPIPE_STREAM_H
#define IOTPIPE_STREAM_H

#include "kafka.h"
#include "records.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Header carrying a record's first Kafka position across relays: "cluster/topic/partition/offset". */
#define ORIGIN_HEADER "iotpipe-origin"
#define ERROR_HEADER "iotpipe-error"

struct origin {
	char cluster[128];
	char topic[256];
	int32_t partition;
	int64_t offset;
};

struct stream_config {
	const char *brokers;	     /* NULL or "" when running on stdio only */
	const char *group;	     /* consumer group */
	const char *in;		     /* "-", or topics (comma-separated, ^regex allowed) */
	enum rec_type in_type;	     /* expected record type; required for stdin; REC_UNKNOWN:
					any type from Kafka */
	const char *cluster;	     /* this cluster's alias for origins (default "local") */
	const char *dead_letter;     /* topic for undecodable input; NULL: log and skip */
	long long checkpoint_ms;     /* default 1000 */
	long long checkpoint_records; /* default 50000 */
	size_t max_line;	     /* stdin line limit, default 1 MiB */
	bool raw_input;		     /* do not decode values (the relay forwards bytes) */
	const char *out_brokers;     /* outputs' cluster when it differs from the input's */
	const char *in_prefix;	     /* -X prefix for the input cluster ("source.") or NULL */
	const char *out_prefix;	     /* -X prefix for the output cluster ("target.") or NULL */
	/* A service's own client defaults (NULL-terminated key, value pairs; NULL for none),
	 * applied before the user's -X properties: see kafka_producer_new_with. */
	const char *const *in_defaults;
	const char *const *out_defaults;
	/* Called for every delivery report of the outputs' producer (NULL: none); records a
	 * service produces itself with kafka_produce on stream_producer() pass their opaque. */
	kafka_dr_fn on_delivery;
	void *delivery_ctx;
	/* The commit_position hook returns only offsets whose outputs Kafka acknowledged (the
	 * service tracks acknowledgements in on_delivery): periodic checkpoints then commit
	 * without waiting for the producer to drain, so reading never pauses for them.
	 * Checkpoints before a revocation and at close still wait. */
	bool acked_positions;
};

struct stream_hooks {
	void *ctx;
	/* A partition was assigned; committed is its committed offset (or a negative logical
	 * offset) and metadata the string committed with it ("" when none). */
	void (*on_assign)(void *ctx, const char *topic, int32_t partition, int64_t committed,
			  const char *metadata);
	/* A partition is going away; its last checkpoint has been taken. */
	void (*on_revoke)(void *ctx, const char *topic, int32_t partition);
	/* Offset to commit for a partition whose next unread offset is next_offset; may write
	 * metadata (NUL-terminated, at most metadata_len bytes). Default: next_offset. */
	int64_t (*commit_position)(void *ctx, const char *topic, int32_t partition,
				   int64_t next_offset, char *metadata, size_t metadata_len);
	/* Runs at each checkpoint after outputs are acknowledged; -1 skips the commit. */
	int (*flush)(void *ctx);
};

struct stream_msg {
	enum rec_type type;		/* REC_UNKNOWN when raw_input */
	json_t *rec;			/* borrowed; valid until the next stream_poll; NULL raw */
	const char *topic;		/* "-" for stdin */
	int32_t partition;		/* -1 for stdin */
	int64_t offset;			/* Kafka offset, or stdin line number */
	int64_t timestamp;		/* Kafka timestamp in ms, or -1 */
	const void *key;
	size_t key_len;
	const rd_kafka_message_t *kmsg; /* NULL for stdin: raw value and headers */
};

struct stream;
struct stream_out;

enum { STREAM_END = -1, STREAM_IDLE = 0, STREAM_RECORD = 1 };

/* Opens the input. Returns NULL with the reason on failure. */
struct stream *stream_new(const struct stream_config *cfg, const struct stream_hooks *hooks,
			  char *err, size_t errlen);
/* Adds an output (see the spec rules above); the stream owns it. */
struct stream_out *stream_output(struct stream *s, const char *spec, enum rec_type type,
				 char *err, size_t errlen);
/* True when the output writes to Kafka. */
bool stream_output_is_kafka(const struct stream_out *o);
const char *stream_output_name(const struct stream_out *o);

/* Next input record: STREAM_RECORD with *m set, STREAM_IDLE after timeout_ms without one, or
 * STREAM_END when stdin is exhausted. Takes a checkpoint when one is due. */
int stream_poll(struct stream *s, struct stream_msg **m, int timeout_ms);

/* Up to max input records into out (Kafka input with raw_input only), each valid until the
 * next call: those already fetched, or the first to arrive within timeout_ms and what came
 * with it. Takes a checkpoint when one is due. Returns the count (0 on timeout) or STREAM_END
 * after a failure. */
int stream_poll_batch(struct stream *s, struct stream_msg *out, size_t max, int timeout_ms);

/* Writes one record to an output. key may be NULL; ts_ms 0 means now; hdrs (Kafka only,
 * owned by the call, may be NULL). Returns 0 or -1 with the reason logged. */
int stream_put(struct stream_out *o, const void *key, size_t klen, const json_t *rec,
	       int64_t ts_ms, rd_kafka_headers_t *hdrs);
/* Writes raw bytes (relay): Kafka outputs only. */
int stream_put_raw(struct stream_out *o, int32_t partition, const void *key, size_t klen,
		   const void *val, size_t vlen, int64_t ts_ms, rd_kafka_headers_t *hdrs);

/* True after a delivery failure: the service should stop; stream_close then returns -1. */
bool stream_failed(const struct stream *s);

/* Takes a checkpoint now. Returns 0 when outputs were acknowledged (and offsets committed). */
int stream_checkpoint(struct stream *s);
/* Final checkpoint, leaves the group, closes outputs and frees everything; NULL is accepted.
 * Returns 0 when everything was acknowledged and committed, -1 otherwise. */
int stream_close(struct stream *s);

/* The Kafka producer behind the outputs (NULL on stdio), for services that also need it. */
struct kafka_producer *stream_producer(struct stream *s);
/* The Kafka consumer behind the input (NULL on stdin), for watermarks and metadata. */
struct kafka_consumer *stream_consumer(struct stream *s);
/* Origin of an input record: its iotpipe-origin header when present, else its own position
 * in this cluster. For stdin the origin is cluster "-", topic "-", partition -1, line number. */
void stream_msg_origin(const struct stream *s, const struct stream_msg *m, struct origin *o);
/* Formats an origin as the header value. */
void origin_format(const struct origin *o, char *out, size_t outlen);
/* Parses a header value; returns 0 or -1 when malformed. */
int origin_parse(const char *text, struct origin *o);

#endif
