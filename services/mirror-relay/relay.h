/* The relay: every record read from the source cluster is written to its target topic with
 * key, value, headers and timestamp unchanged, plus an iotpipe-origin header when it has none.
 *
 * Delivery rule: a source offset is committed only when the target acknowledged every record
 * before it. The relay tracks acknowledgements per source partition (acks.h) and gives the
 * stream (stream.h) those watermarks as commit positions, so checkpoints commit without pausing
 * to drain the producer; it vetoes every commit (the stream's flush hook) once a record could
 * not be handed to the producer or was refused by the target, so a record is never committed
 * without having been relayed.
 *
 * Partitioning: a record goes to the same partition number on the target when the target topic
 * has that partition, else to the producer's partitioner (by key hash; keyless records spread). */
#ifndef MIRROR_RELAY_RELAY_H
#define MIRROR_RELAY_RELAY_H

#include "acks.h"
#include "stream.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct metric;

struct relay_opts {
	const char *alias;	    /* source cluster's alias in origins and {source} */
	const char *tmpl;	    /* target topic template (naming.h) */
	bool skip_foreign;	    /* loop prevention: drop records relayed here from elsewhere */
	bool create_topics;	    /* create missing target topics with the source's partitions */
	int replication;	    /* for created topics; -1: the target's default */
	long long refresh_ms;	    /* how often target partition counts are re-read */
	long long lag_interval_ms;  /* how often the lag gauges are computed */
};

/* One source topic. Owned by the relay; lives until relay_free. */
struct relay_topic {
	char *name;		  /* source topic */
	char *target;		  /* target topic */
	int32_t target_parts;	  /* 0 until known */
	rd_kafka_topic_t *rkt;	  /* the target topic's producer handle, once known */
	bool create_tried;
	struct metric *records, *bytes, *skipped;
	struct metric *records_in; /* batch path: records read (the stream counts them otherwise) */
};

/* One source partition. Owned by the relay and never freed before relay_free, because delivery
 * reports and the lag monitor may still refer to it after a rebalance took it away. */
struct relay_part {
	struct relay_topic *t;
	int32_t partition;
	char *origin_prefix; /* "alias/topic/partition/" */
	size_t origin_prefix_len;
	struct ack_queue acks; /* records in flight */
	/* Acknowledged since the counters were last published (main thread only). */
	long unpublished_records;
	double unpublished_bytes;
	bool dirty;
	/* Written by the main thread (one writer), read by the lag monitor. */
	_Atomic int64_t next_offset; /* next source offset to read; -1 unknown */
	_Atomic int64_t produced;    /* records handed to the producer in this run */
	_Atomic int64_t acked;	     /* of which the target acknowledged */
	_Atomic int64_t acked_ts;    /* newest source timestamp the target holds; -1 unknown */
	atomic_bool assigned;
	struct metric *lag_records, *lag_seconds;
};

struct relay;

/* Creates the relay's state and metrics. The options' strings are borrowed. */
struct relay *relay_new(const struct relay_opts *o, char *err, size_t errlen);
/* The hooks the relay needs from its input stream. */
struct stream_hooks relay_hooks(struct relay *r);
/* For stream_config.on_delivery (ctx: the relay). */
void relay_on_delivery(void *ctx, const rd_kafka_message_t *m);
/* Binds the relay to its stream's clients and starts the lag monitor. Returns 0 or -1. */
int relay_attach(struct relay *r, struct stream *s, char *err, size_t errlen);
/* Stops the lag monitor and releases the producer's topic handles; call before closing the
 * stream, after the last relay_forward. NULL is accepted. */
void relay_detach(struct relay *r);
/* Frees everything; after the stream is closed (its producer may report deliveries until then).
 * NULL is accepted. */
void relay_free(struct relay *r);

/* Relays one record. Returns 0, or -1 when the relay must stop (reason logged); the record's
 * offset is then never committed. */
int relay_forward(struct relay *r, const struct stream_msg *m);
/* Serves the target's delivery reports and publishes what they counted; once per batch. */
void relay_serve(struct relay *r);
/* How long the main loop may wait for input: short while records are in flight, so their
 * acknowledgements (commit positions, lag and latency figures) are not held up. */
int relay_wait_ms(const struct relay *r);
/* Periodic work (target partition counts, waking a stalled fetcher); once per batch, cheap
 * when nothing is due. drained: the last batch emptied the consumer's queue. */
void relay_tick(struct relay *r, bool drained);
bool relay_failed(const struct relay *r);

/* A copy of the current partition list for the lag monitor (malloc'd array of borrowed
 * pointers; the caller frees the array). Returns the count, 0 with *out NULL when empty. */
size_t relay_parts_snapshot(struct relay *r, struct relay_part ***out);
/* Producer figures for the monitor: records queued or in flight, and request retries. */
void relay_producer_stats(struct relay *r, long *queued, long *retries);

#endif
