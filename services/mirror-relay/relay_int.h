/* The relay's state, shared by its two data paths: records through librdkafka's consumer and
 * producer (relay.c), or as record batches over the relay's own connections (batches.c). */
#ifndef MIRROR_RELAY_RELAY_INT_H
#define MIRROR_RELAY_RELAY_INT_H

#include "acks.h"
#include "kafka.h"
#include "naming.h"
#include "relay.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

struct relay {
	struct relay_opts o;
	/* The delivery report does not say which source record it was for (a cluster may even
	 * report its own append time instead of the record's timestamp): each record carries a
	 * slot of its partition's ack queue as opaque. */
	struct ack_pool acks;
	struct kafka_producer *producer;
	rd_kafka_t *prk; /* target producer */
	struct kafka_consumer *consumer;
	rd_kafka_t *crk; /* source consumer */
	struct lag_monitor *lag;
	/* The monitor thread reads the partition list; the main thread alone adds to it. */
	pthread_mutex_t lock;
	struct relay_part **parts;
	size_t nparts;
	struct relay_topic **topics;
	size_t ntopics;
	struct relay_part *last; /* records arrive in runs of one partition */
	/* Parts whose acknowledged counts wait to be published. */
	struct relay_part **dirty;
	size_t ndirty;
	int64_t served_at; /* wall clock while relay_serve serves reports, else 0 */
	bool failed;
	int64_t next_refresh;
	int64_t woke_at; /* last wake_fetcher poke */
	int64_t malformed_warned;
	struct metric *m_latency, *m_local_fixed, *m_malformed;
	/* The batch path's own figures for the lag monitor (records taken from the source and
	 * not yet acknowledged; produce requests sent again), in place of the producer's. */
	bool batch_path;
	_Atomic long batch_inflight, batch_retries;
};

/* What a record's origin header becomes. */
enum relay_origin_act {
	RELAY_ORIGIN_SKIP,    /* foreign record under loop prevention: not relayed */
	RELAY_ORIGIN_KEEP,    /* headers go as they are */
	RELAY_ORIGIN_ADD,     /* the record had none: add the value written to text */
	RELAY_ORIGIN_REPLACE, /* remove the record's origin headers, then add text */
};
/* Decides for a record of p at offset whose last origin header is val (vlen bytes), or none
 * (has false). For ADD and REPLACE the new value is written to text (room for
 * RELAY_ORIGIN_MAX bytes), its length to *len. Counts and logs rewritten and malformed ones. */
#define RELAY_ORIGIN_MAX (NAMING_ALIAS_MAX + NAMING_TOPIC_MAX + 64)
enum relay_origin_act relay_origin(struct relay *r, struct relay_part *p, const void *val,
				   size_t vlen, bool has, int64_t offset, char *text, size_t *len);

/* The partition's state, created on first use (NULL when out of memory, logged). */
struct relay_part *relay_part_get(struct relay *r, const char *topic, int32_t partition);
/* Learns (or creates) t's target topic; see relay.c. Returns 0, or -1 on stop or failure. */
int relay_target_prepare(struct relay *r, struct relay_topic *t);
/* Marks the relay failed and asks the process to stop. */
void relay_fail(struct relay *r);
/* Counts n records of p acknowledged by the target (bytes of keys and values, newest source
 * timestamp max_ts or -1); published to the per-topic counters by relay_publish. */
void relay_count_acked(struct relay *r, struct relay_part *p, long n, double bytes,
		       int64_t max_ts);
void relay_publish(struct relay *r);
/* Observes the added latency of a record with source timestamp ts acknowledged at now. */
void relay_observe_latency(struct relay *r, int64_t ts, int64_t now);
/* Binds the relay to its clients and starts the lag monitor (relay_attach without a stream). */
int relay_attach_clients(struct relay *r, struct kafka_consumer *c, struct kafka_producer *p,
			 char *err, size_t errlen);

#endif
