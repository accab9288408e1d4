/* Kafka clients with the suite's delivery rules built in.
 *
 * Producer: idempotent, never gives up on its own (message.timeout.ms=0 by default, so a Kafka
 * outage stalls instead of failing records), blocks its caller while the local queue is full
 * (backpressure, never a drop), and counts delivery failures so a batch whose outputs were not
 * all acknowledged is never committed.
 *
 * Consumer: consumer group with auto-commit and auto offset store off; the caller commits the
 * offsets it chooses (stream.h does it after its outputs are acknowledged), with metadata.
 *
 * Configuration: -b brokers, then suite defaults, then the -X properties (config.h) that have no
 * cluster prefix or have `prefix` ("source." / "target."), so the user can override anything. */
#ifndef IOTPIPE_KAFKA_H
#define IOTPIPE_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* defaults: NULL-terminated list of key, value pairs applied before the user's properties. */
rd_kafka_conf_t *kafka_conf_new(const char *brokers, const char *prefix,
				const char *const *defaults, char *err, size_t errlen);

/* ---- producer ---- */

struct kafka_producer;

/* Called for every delivery report on the thread that polls the producer, after the producer's
 * own bookkeeping. m->_private is the opaque given to kafka_produce. */
typedef void (*kafka_dr_fn)(void *ctx, const rd_kafka_message_t *m);

struct kafka_producer *kafka_producer_new(const char *brokers, const char *prefix,
					  kafka_dr_fn on_delivery, void *ctx, char *err,
					  size_t errlen);
/* As kafka_producer_new, with extra default properties (NULL-terminated key, value pairs, may be
 * NULL) applied after the suite's defaults and before the user's -X properties: a service tunes
 * its own client (queue limits, statistics) and the user can still override it. */
struct kafka_producer *kafka_producer_new_with(const char *brokers, const char *prefix,
					       const char *const *defaults,
					       kafka_dr_fn on_delivery, void *ctx, char *err,
					       size_t errlen);
/* Destroys without waiting: call kafka_producer_flush first. Logs records left unsent. */
void kafka_producer_free(struct kafka_producer *p);
rd_kafka_t *kafka_producer_handle(struct kafka_producer *p);

/* Queues a copy of one record. partition: RD_KAFKA_PARTITION_UA to partition by key.
 * ts_ms: 0 for now. hdrs: ownership passes to the producer, also on failure (may be NULL).
 * While the local queue is full it polls and retries (stalling the caller) until stop_wait_ms
 * after a stop was requested has passed. Returns 0, or -1 with the reason (record too large,
 * unknown topic, fatal error, or stalled past the stop deadline). */
int kafka_produce(struct kafka_producer *p, const char *topic, int32_t partition, const void *key,
		  size_t klen, const void *val, size_t vlen, int64_t ts_ms,
		  rd_kafka_headers_t *hdrs, void *opaque, char *err, size_t errlen);

/* As kafka_produce, to a topic handle (rd_kafka_topic_new on kafka_producer_handle; destroy it
 * before the producer): no lookup of the topic by name for each record. */
int kafka_produce_rkt(struct kafka_producer *p, rd_kafka_topic_t *rkt, int32_t partition,
		      const void *key, size_t klen, const void *val, size_t vlen, int64_t ts_ms,
		      rd_kafka_headers_t *hdrs, void *opaque, char *err, size_t errlen);

/* Serves delivery reports. */
void kafka_producer_poll(struct kafka_producer *p, int timeout_ms);
/* By default kafka_produce serves delivery reports after every record. A caller that produces
 * in batches and calls kafka_producer_poll once per batch turns that off: one queue lock per
 * batch instead of one per record. */
void kafka_producer_batch_polling(struct kafka_producer *p, bool on);
/* Records queued or in flight. */
long kafka_producer_inflight(const struct kafka_producer *p);
/* Waits until nothing is in flight or timeout_ms passed (-1: no limit, but returns when a stop
 * was requested and 30 s have passed since). Returns 0 when every record produced since the
 * previous successful flush was acknowledged; -1 when some failed or are still in flight. */
int kafka_producer_flush(struct kafka_producer *p, int timeout_ms);
/* Failures seen since creation (for metrics). */
long kafka_producer_failed_total(const struct kafka_producer *p);
/* Produce retries as of the last statistics report: requests re-sent plus messages sent again
 * after a retriable error; stays 0 unless statistics.interval.ms is set. */
long kafka_producer_retries_total(const struct kafka_producer *p);

/* ---- consumer ---- */

struct kafka_consumer;

struct kafka_consumer_hooks {
	void *ctx;
	/* After an assignment; parts carries the committed offsets and their metadata. */
	void (*on_assign)(void *ctx, const rd_kafka_topic_partition_list_t *parts);
	/* Before partitions are taken away: the last chance to commit them. */
	void (*on_revoke)(void *ctx, const rd_kafka_topic_partition_list_t *parts);
	/* The caller fetches the records itself (mirror-relay's batch path): assigned partitions
	 * are paused at once, so the client only keeps the group membership and the offsets. */
	bool assign_paused;
};

/* topics: comma-separated names; an entry starting with ^ is a regex (new matching topics are
 * picked up on metadata refresh). */
struct kafka_consumer *kafka_consumer_new(const char *brokers, const char *prefix,
					  const char *group, const char *topics,
					  const struct kafka_consumer_hooks *hooks, char *err,
					  size_t errlen);
/* As kafka_consumer_new, with extra default properties (see kafka_producer_new_with). */
struct kafka_consumer *kafka_consumer_new_with(const char *brokers, const char *prefix,
					       const char *const *defaults, const char *group,
					       const char *topics,
					       const struct kafka_consumer_hooks *hooks, char *err,
					       size_t errlen);
/* Closes (leaving the group, running on_revoke) and destroys; accepts NULL. */
void kafka_consumer_free(struct kafka_consumer *c);
rd_kafka_t *kafka_consumer_handle(struct kafka_consumer *c);
/* True when an assignment could not be taken up (its committed offsets were unreadable); the
 * service has been asked to stop and must exit with a failure. */
bool kafka_consumer_failed(const struct kafka_consumer *c);
/* Next record, or NULL on timeout. Consumer errors are logged here (with topic/partition) and
 * not returned; partition EOF is not an error. Destroy the message with rd_kafka_message_destroy. */
rd_kafka_message_t *kafka_consumer_poll(struct kafka_consumer *c, int timeout_ms);
/* Up to max records into out: those already fetched, or when there are none, the first to
 * arrive within timeout_ms followed by whatever came with it. One queue lock per record instead
 * of a whole poll cycle; rebalance callbacks are served in between as by kafka_consumer_poll,
 * and records of partitions revoked meanwhile are dropped by librdkafka. Errors are logged and
 * not returned, as by kafka_consumer_poll. Returns the count, 0 on timeout. Destroy each
 * record with rd_kafka_message_destroy. */
size_t kafka_consumer_poll_batch(struct kafka_consumer *c, rd_kafka_message_t **out, size_t max,
				 int timeout_ms);
/* Records fetched and not yet taken by the application. */
int kafka_consumer_queued(struct kafka_consumer *c);
/* Synchronous commit of exactly these offsets (with metadata). Returns 0 or -1 (logged). */
int kafka_consumer_commit(struct kafka_consumer *c, const rd_kafka_topic_partition_list_t *offs);
/* The same without waiting: the result is logged, when it failed, from a later
 * kafka_consumer_poll. A failed commit only means those records are read again. Returns 0, or
 * -1 (logged) when the commit could not even be sent. */
int kafka_consumer_commit_async(struct kafka_consumer *c,
				const rd_kafka_topic_partition_list_t *offs);

/* Header helpers: value of the last header called name as a NUL-terminated copy in out. */
bool kafka_header_get(const rd_kafka_message_t *m, const char *name, char *out, size_t outlen);

#endif
