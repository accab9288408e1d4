/* Relaying records from the source cluster to the target (see relay.h). */
#include "relay_int.h"

#include "lag.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "naming.h"
#include "origin_hdr.h"
#include "target.h"

#include <inttypes.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Timeouts of the metadata and admin requests made outside the per-record path. */
#define META_TIMEOUT_MS 5000
#define REFRESH_TIMEOUT_MS 2000

/* Waiting for input while records are in flight: their delivery reports are served between
 * waits, and the latency histogram reads the clock when they are served. */
#define INFLIGHT_WAIT_MS 2
#define IDLE_WAIT_MS 100
/* At most one wake_fetcher poke per this many ms. */
#define WAKE_MIN_MS 5

/* Single-writer counters read by the lag monitor: a plain load and store, no locked
 * read-modify-write per record. */
#define BUMP(a, n)                                                                                 \
	atomic_store_explicit(&(a), atomic_load_explicit(&(a), memory_order_relaxed) + (n),        \
			      memory_order_relaxed)
#define SET(a, v) atomic_store_explicit(&(a), (v), memory_order_relaxed)
#define GET(a) atomic_load_explicit(&(a), memory_order_relaxed)



struct relay *relay_new(const struct relay_opts *o, char *err, size_t errlen)
{
	struct relay *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->o = *o;
	pthread_mutex_init(&r->lock, NULL);
	r->m_latency = metrics_histogram(
		"iotpipe_relay_latency_seconds",
		"From a record's source timestamp to the target's acknowledgement", NULL,
		metrics_latency_buckets, metrics_latency_nbuckets);
	r->m_local_fixed = metrics_counter(
		"iotpipe_relay_origins_rewritten_total",
		"Origin headers naming cluster \"local\" rewritten to the source alias", NULL);
	r->m_malformed = metrics_counter("iotpipe_relay_origins_malformed_total",
					 "Unparseable origin headers replaced by the record's own "
					 "position",
					 NULL);
	return r;
}

bool relay_failed(const struct relay *r)
{
	return r->failed;
}

void relay_fail(struct relay *r)
{
	r->failed = true;
	lifecycle_request_stop();
}

/* ---- state ---- */

static void topic_free(struct relay_topic *t)
{
	if (!t)
		return;
	free(t->name);
	free(t->target);
	free(t);
}

static struct relay_topic *topic_get(struct relay *r, const char *name)
{
	for (size_t i = 0; i < r->ntopics; i++)
		if (strcmp(r->topics[i]->name, name) == 0)
			return r->topics[i];
	char target[NAMING_TOPIC_MAX + 1];
	if (naming_expand(r->o.tmpl, r->o.alias, name, target, sizeof(target)) < 0) {
		log_error("source topic %s: its target name under '%s' is longer than %d "
			  "characters",
			  name, r->o.tmpl, NAMING_TOPIC_MAX);
		return NULL;
	}
	struct relay_topic *t = calloc(1, sizeof(*t));
	struct relay_topic **n = realloc(r->topics, (r->ntopics + 1) * sizeof(*n));
	if (n)
		r->topics = n;
	if (!t || !n || !(t->name = strdup(name)) || !(t->target = strdup(target))) {
		log_error("out of memory");
		topic_free(t);
		return NULL;
	}
	char labels[600], tl[300];
	metrics_label(labels, sizeof(labels), "topic", name);
	metrics_label(tl, sizeof(tl), "target", target);
	strncat(labels, ",", sizeof(labels) - strlen(labels) - 1);
	strncat(labels, tl, sizeof(labels) - strlen(labels) - 1);
	t->records = metrics_counter("iotpipe_relay_records_total",
				     "Records relayed and acknowledged by the target", labels);
	t->bytes = metrics_counter("iotpipe_relay_bytes_total",
				   "Key and value bytes relayed and acknowledged by the target",
				   labels);
	metrics_label(labels, sizeof(labels), "topic", name);
	t->skipped = metrics_counter("iotpipe_relay_skipped_total",
				     "Records not relayed because they came from another cluster "
				     "(loop prevention)",
				     labels);
	r->topics[r->ntopics++] = t;
	return t;
}

static void part_free(struct relay_part *p)
{
	if (!p)
		return;
	ack_queue_clear(&p->acks);
	free(p->origin_prefix);
	free(p);
}

static struct relay_part *part_find(struct relay *r, const char *topic, int32_t partition)
{
	if (r->last && r->last->partition == partition && strcmp(r->last->t->name, topic) == 0)
		return r->last;
	for (size_t i = 0; i < r->nparts; i++)
		if (r->parts[i]->partition == partition &&
		    strcmp(r->parts[i]->t->name, topic) == 0)
			return r->last = r->parts[i];
	return NULL;
}

struct relay_part *relay_part_get(struct relay *r, const char *topic, int32_t partition)
{
	struct relay_part *p = part_find(r, topic, partition);
	if (p)
		return p;
	struct relay_topic *t = topic_get(r, topic);
	if (!t)
		return NULL;
	char prefix[NAMING_ALIAS_MAX + NAMING_TOPIC_MAX + 32];
	snprintf(prefix, sizeof(prefix), "%s/%s/%" PRId32 "/", r->o.alias, topic, partition);
	p = calloc(1, sizeof(*p));
	if (!p || !(p->origin_prefix = strdup(prefix))) {
		log_error("out of memory");
		part_free(p);
		return NULL;
	}
	p->t = t;
	p->partition = partition;
	p->origin_prefix_len = strlen(prefix);
	ack_queue_init(&p->acks, &r->acks);
	atomic_init(&p->next_offset, -1);
	atomic_init(&p->acked_ts, -1);
	char labels[400];
	metrics_label(labels, sizeof(labels) - 40, "topic", topic);
	snprintf(labels + strlen(labels), 40, ",partition=\"%" PRId32 "\"", partition);
	p->lag_records = metrics_gauge("iotpipe_relay_lag_records",
				       "Source records the target does not hold yet", labels);
	p->lag_seconds = metrics_gauge("iotpipe_relay_lag_seconds",
				       "Age of the newest record the target holds, while records "
				       "are missing",
				       labels);
	/* Room for every part in the dirty list, so marking one never allocates. */
	struct relay_part **d = realloc(r->dirty, (r->nparts + 1) * sizeof(*d));
	if (d)
		r->dirty = d;
	pthread_mutex_lock(&r->lock);
	struct relay_part **n = d ? realloc(r->parts, (r->nparts + 1) * sizeof(*n)) : NULL;
	if (n) {
		r->parts = n;
		r->parts[r->nparts++] = p;
	}
	pthread_mutex_unlock(&r->lock);
	if (!n) {
		log_error("out of memory");
		part_free(p);
		return NULL;
	}
	return r->last = p;
}

size_t relay_parts_snapshot(struct relay *r, struct relay_part ***out)
{
	*out = NULL;
	pthread_mutex_lock(&r->lock);
	size_t n = r->nparts;
	if (n && (*out = malloc(n * sizeof(**out))))
		memcpy(*out, r->parts, n * sizeof(**out));
	pthread_mutex_unlock(&r->lock);
	return *out ? n : 0;
}

void relay_producer_stats(struct relay *r, long *queued, long *retries)
{
	if (r->batch_path) {
		*queued = atomic_load(&r->batch_inflight);
		*retries = atomic_load(&r->batch_retries);
		return;
	}
	*queued = r->producer ? kafka_producer_inflight(r->producer) : 0;
	*retries = r->producer ? kafka_producer_retries_total(r->producer) : 0;
}

/* ---- target topics ---- */

/* Learns the target topic's partition count, creating the topic first when it is missing.
 * Waits while the target does not answer (a relay cannot place records it knows nothing
 * about), serving delivery reports meanwhile. Returns 0, or -1 on stop or permanent failure. */
int relay_target_prepare(struct relay *r, struct relay_topic *t)
{
	char err[512];
	int64_t since = now_mono_ms(), warned = since;
	for (;;) {
		int n = 0, exists = target_topic_exists(r->prk, t->target, &n, META_TIMEOUT_MS, err,
							sizeof(err));
		if (exists == 0 && r->o.create_topics && !t->create_tried) {
			t->create_tried = true;
			int src = target_topic_partitions(r->crk, t->name, META_TIMEOUT_MS, err,
							  sizeof(err));
			if (src > 0 && target_topic_create(r->prk, t->target, src, r->o.replication,
							   META_TIMEOUT_MS, err, sizeof(err)) == 0)
				log_info("created target topic %s with %d partitions", t->target,
					 src);
			else
				log_warn("%s; relying on the target's automatic topic creation",
					 err);
			continue;
		}
		if (exists == 0) {
			/* A producer's metadata request lets the cluster create the topic when it
			 * allows automatic creation; otherwise the topic must be created by hand. */
			n = target_topic_partitions(r->prk, t->target, META_TIMEOUT_MS, err,
						    sizeof(err));
			if (n < 0) {
				log_error("target %s (create it, or allow automatic topic "
					  "creation on the target)",
					  err);
				relay_fail(r);
				return -1;
			}
		}
		if (n > 0) {
			t->target_parts = n;
			/* Without a handle, records go by name (a lookup each). */
			t->rkt = rd_kafka_topic_new(r->prk, t->target, NULL);
			log_info("relaying %s to %s (%d partitions on the target)", t->name,
				 t->target, n);
			return 0;
		}
		if (!lifecycle_running())
			return -1;
		int64_t now = now_mono_ms();
		if (now - warned >= 10000) {
			log_warn("target has not described topic %s for %lld s (%s); waiting",
				 t->target, (long long)(now - since) / 1000, err);
			warned = now;
		}
		kafka_producer_poll(r->producer, 500);
	}
}

/* librdkafka before 2.1 stops fetching while its prefetch queue is above queued.min.messages
 * or queued.max.messages.kbytes, and looks again only when something else wakes the broker
 * thread, at the latest a second later. With a backlog the relay empties the queue long before
 * that and waits for the rest of the second. So when the queue is empty although the source
 * holds records not fetched yet, a lag round is run now: its ListOffsets requests go through the
 * same broker threads, which then fetch again. */
static void wake_fetcher(struct relay *r, int64_t now)
{
	if (now - r->woke_at < WAKE_MIN_MS || kafka_consumer_queued(r->consumer) > 0)
		return;
	for (size_t i = 0; i < r->nparts; i++) {
		struct relay_part *p = r->parts[i];
		int64_t next = GET(p->next_offset), lo, hi;
		if (!atomic_load(&p->assigned) || next < 0 ||
		    rd_kafka_get_watermark_offsets(r->crk, p->t->name, p->partition, &lo, &hi) ||
		    hi <= next)
			continue;
		lag_monitor_poke(r->lag);
		r->woke_at = now;
		return;
	}
}

void relay_tick(struct relay *r, bool drained)
{
	int64_t now = now_mono_ms();
	if (drained)
		wake_fetcher(r, now);
	if (now < r->next_refresh)
		return;
	r->next_refresh = now + r->o.refresh_ms;
	char err[512];
	for (size_t i = 0; i < r->ntopics; i++) {
		struct relay_topic *t = r->topics[i];
		if (!t->target_parts)
			continue;
		int n = target_topic_partitions(r->prk, t->target, REFRESH_TIMEOUT_MS, err,
						sizeof(err));
		if (n > 0 && n != t->target_parts) {
			log_info("target topic %s now has %d partitions (was %d)", t->target, n,
				 (int)t->target_parts);
			t->target_parts = n;
		}
	}
}

/* ---- records ---- */

/* Appends v in decimal to out; returns the length written (at most 20). */
static size_t put_i64(char *out, int64_t v)
{
	char tmp[24];
	size_t n = 0;
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
	do
		tmp[n++] = (char)('0' + u % 10);
	while ((u /= 10));
	size_t len = 0;
	if (v < 0)
		out[len++] = '-';
	while (n)
		out[len++] = tmp[--n];
	return len;
}

enum relay_origin_act relay_origin(struct relay *r, struct relay_part *p, const void *val,
				   size_t vlen, bool has, int64_t offset, char *text, size_t *len)
{
	struct origin o;
	enum origin_kind kind =
		origin_hdr_classify(has ? (val ? val : "") : NULL, vlen, r->o.alias, &o);
	switch (kind) {
	case ORIGIN_FOREIGN:
		return r->o.skip_foreign ? RELAY_ORIGIN_SKIP : RELAY_ORIGIN_KEEP;
	case ORIGIN_OWN:
		return RELAY_ORIGIN_KEEP;
	case ORIGIN_LOCAL:
		snprintf(o.cluster, sizeof(o.cluster), "%s", r->o.alias);
		origin_format(&o, text, RELAY_ORIGIN_MAX);
		*len = strlen(text);
		metric_add(r->m_local_fixed, 1);
		return RELAY_ORIGIN_REPLACE;
	case ORIGIN_MALFORMED: {
		metric_add(r->m_malformed, 1);
		int64_t now = now_mono_ms();
		if (now - r->malformed_warned >= 10000) {
			log_warn("%s [%d] offset %lld: malformed %s header replaced by the record's "
				 "own position (further cases counted in "
				 "iotpipe_relay_origins_malformed_total)",
				 p->t->name, (int)p->partition, (long long)offset, ORIGIN_HEADER);
			r->malformed_warned = now;
		}
	}
		/* fall through */
	case ORIGIN_ABSENT:
		memcpy(text, p->origin_prefix, p->origin_prefix_len);
		*len = p->origin_prefix_len + put_i64(text + p->origin_prefix_len, offset);
		return kind == ORIGIN_ABSENT ? RELAY_ORIGIN_ADD : RELAY_ORIGIN_REPLACE;
	}
	return RELAY_ORIGIN_KEEP;
}

/* The headers the record leaves with, or NULL (record skipped, or out of memory: *skip says).
 * The consumed message's own header list is taken over rather than copied: the message is
 * the stream's only until its next poll, and nothing reads its headers after this. */
static rd_kafka_headers_t *headers_for(struct relay *r, struct relay_part *p,
				       const struct stream_msg *m, bool *skip)
{
	rd_kafka_headers_t *h = NULL;
	const void *ov = NULL;
	size_t olen = 0;
	*skip = false;
	if (rd_kafka_message_headers(m->kmsg, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
		h = NULL;
	bool has = h && rd_kafka_header_get_last(h, ORIGIN_HEADER, &ov, &olen) ==
				RD_KAFKA_RESP_ERR_NO_ERROR;
	char text[RELAY_ORIGIN_MAX];
	size_t len = 0;
	enum relay_origin_act act = relay_origin(r, p, ov, olen, has, m->offset, text, &len);
	if (act == RELAY_ORIGIN_SKIP) {
		*skip = true;
		return NULL;
	}
	if (h)
		rd_kafka_message_detach_headers((rd_kafka_message_t *)m->kmsg, &h);
	else
		h = rd_kafka_headers_new(1);
	if (!h)
		return NULL;
	if (act == RELAY_ORIGIN_REPLACE)
		rd_kafka_header_remove(h, ORIGIN_HEADER);
	if (act != RELAY_ORIGIN_KEEP)
		rd_kafka_header_add(h, ORIGIN_HEADER, -1, text, (ssize_t)len);
	return h;
}

int relay_forward(struct relay *r, const struct stream_msg *m)
{
	struct relay_part *p = relay_part_get(r, m->topic, m->partition);
	if (!p) {
		relay_fail(r);
		return -1;
	}
	SET(p->next_offset, m->offset + 1);
	if (GET(p->acked_ts) < 0 && m->timestamp > 0)
		SET(p->acked_ts, m->timestamp - 1);
	bool skip;
	rd_kafka_headers_t *h = headers_for(r, p, m, &skip);
	if (skip) {
		metric_add(p->t->skipped, 1);
		return 0;
	}
	/* Only now: a topic whose records are all skipped gets no target topic. */
	if (h && !p->t->target_parts && relay_target_prepare(r, p->t) < 0) {
		/* Stopping before the target could be described: the record was not relayed. */
		rd_kafka_headers_destroy(h);
		relay_fail(r);
		return -1;
	}
	struct ack_slot *slot = h ? ack_push(&p->acks, m->offset, m->timestamp) : NULL;
	if (!slot) {
		log_error("%s [%d] offset %lld: out of memory", m->topic, (int)m->partition,
			  (long long)m->offset);
		if (h)
			rd_kafka_headers_destroy(h);
		relay_fail(r);
		return -1;
	}
	int32_t part = m->partition < p->t->target_parts ? m->partition : RD_KAFKA_PARTITION_UA;
	char err[512];
	BUMP(p->produced, 1);
	int64_t ts = m->timestamp > 0 ? m->timestamp : 0;
	if ((p->t->rkt ? kafka_produce_rkt(r->producer, p->t->rkt, part, m->key, m->key_len,
					   m->kmsg->payload, m->kmsg->len, ts, h, slot, err,
					   sizeof(err))
		       : kafka_produce(r->producer, p->t->target, part, m->key, m->key_len,
				       m->kmsg->payload, m->kmsg->len, ts, h, slot, err,
				       sizeof(err))) < 0) {
		BUMP(p->produced, -1);
		ack_unpush(&p->acks);
		log_error("%s [%d] offset %lld: %s", m->topic, (int)m->partition,
			  (long long)m->offset, err);
		relay_fail(r);
		return -1;
	}
	return 0;
}

/* Adds what delivery reports counted to the per-topic counters: per batch of reports, not per
 * record. */
void relay_publish(struct relay *r)
{
	for (size_t i = 0; i < r->ndirty; i++) {
		struct relay_part *p = r->dirty[i];
		metric_add(p->t->records, (double)p->unpublished_records);
		metric_add(p->t->bytes, p->unpublished_bytes);
		p->unpublished_records = 0;
		p->unpublished_bytes = 0;
		p->dirty = false;
	}
	r->ndirty = 0;
}

void relay_serve(struct relay *r)
{
	r->served_at = now_wall_ms();
	kafka_producer_poll(r->producer, 0);
	r->served_at = 0;
	relay_publish(r);
}

int relay_wait_ms(const struct relay *r)
{
	return r->producer && kafka_producer_inflight(r->producer) > 0 ? INFLIGHT_WAIT_MS
								      : IDLE_WAIT_MS;
}

void relay_on_delivery(void *ctx, const rd_kafka_message_t *m)
{
	struct relay *r = ctx;
	struct ack_slot *slot = m->_private;
	if (!slot)
		return;
	if (m->err) {
		/* Logged and counted by the producer. The slot stays unacknowledged, so no
		 * commit passes this record, and the relay stops: a restart reads it again. */
		relay_fail(r);
		return;
	}
	struct relay_part *p = (struct relay_part *)(void *)((char *)slot->q -
							    offsetof(struct relay_part, acks));
	int64_t ts = slot->ts;
	ack_done(slot);
	relay_count_acked(r, p, 1, (double)(m->len + m->key_len), ts);
	if (ts > 0)
		relay_observe_latency(r, ts, r->served_at ? r->served_at : now_wall_ms());
}

void relay_count_acked(struct relay *r, struct relay_part *p, long n, double bytes,
		       int64_t max_ts)
{
	BUMP(p->acked, n);
	if (max_ts > GET(p->acked_ts))
		SET(p->acked_ts, max_ts);
	p->unpublished_records += n;
	p->unpublished_bytes += bytes;
	if (!p->dirty) {
		p->dirty = true;
		r->dirty[r->ndirty++] = p;
	}
}

void relay_observe_latency(struct relay *r, int64_t ts, int64_t now)
{
	int64_t age = now - ts;
	metric_observe(r->m_latency, age > 0 ? (double)age / 1000.0 : 0.0);
}

/* ---- stream hooks ---- */

static void on_assign(void *ctx, const char *topic, int32_t partition, int64_t committed,
		      const char *metadata)
{
	(void)metadata;
	struct relay *r = ctx;
	struct relay_part *p = relay_part_get(r, topic, partition);
	if (!p)
		return;
	SET(p->next_offset, committed >= 0 ? committed : -1);
	atomic_store(&p->assigned, true);
}

static void on_revoke(void *ctx, const char *topic, int32_t partition)
{
	struct relay *r = ctx;
	struct relay_part *p = part_find(r, topic, partition);
	if (!p)
		return;
	atomic_store(&p->assigned, false);
	metric_set(p->lag_records, 0);
	metric_set(p->lag_seconds, 0);
}

/* A failed relay vetoes the commit: the record it could not hand over must be read again. */
static int on_flush(void *ctx)
{
	struct relay *r = ctx;
	relay_publish(r); /* reports served while the checkpoint waited */
	return r->failed ? -1 : 0;
}

/* Everything before the oldest record still in flight was acknowledged. */
static int64_t commit_position(void *ctx, const char *topic, int32_t partition,
			       int64_t next_offset, char *metadata, size_t metadata_len)
{
	(void)metadata;
	(void)metadata_len;
	struct relay *r = ctx;
	struct relay_part *p = part_find(r, topic, partition);
	return p ? ack_watermark(&p->acks, next_offset) : next_offset;
}

struct stream_hooks relay_hooks(struct relay *r)
{
	return (struct stream_hooks){.ctx = r, .on_assign = on_assign, .on_revoke = on_revoke,
				     .commit_position = commit_position, .flush = on_flush};
}

/* ---- lifetime ---- */

int relay_attach(struct relay *r, struct stream *s, char *err, size_t errlen)
{
	if (relay_attach_clients(r, stream_consumer(s), stream_producer(s), err, errlen) < 0)
		return -1;
	kafka_producer_batch_polling(r->producer, true);
	return 0;
}

int relay_attach_clients(struct relay *r, struct kafka_consumer *c, struct kafka_producer *p,
			 char *err, size_t errlen)
{
	if (!c || !p) {
		snprintf(err, errlen, "the relay needs Kafka on both sides");
		return -1;
	}
	r->producer = p;
	r->prk = kafka_producer_handle(p);
	r->consumer = c;
	r->crk = kafka_consumer_handle(c);
	r->next_refresh = now_mono_ms() + r->o.refresh_ms;
	r->lag = lag_monitor_start(r, r->crk, r->o.lag_interval_ms, err, errlen);
	return r->lag ? 0 : -1;
}

void relay_detach(struct relay *r)
{
	if (!r)
		return;
	lag_monitor_stop(r->lag);
	r->lag = NULL;
	for (size_t i = 0; i < r->ntopics; i++) {
		if (r->topics[i]->rkt)
			rd_kafka_topic_destroy(r->topics[i]->rkt);
		r->topics[i]->rkt = NULL;
	}
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	relay_detach(r);
	for (size_t i = 0; i < r->nparts; i++)
		part_free(r->parts[i]);
	for (size_t i = 0; i < r->ntopics; i++)
		topic_free(r->topics[i]);
	free(r->parts);
	free(r->topics);
	free(r->dirty);
	ack_pool_free(&r->acks);
	pthread_mutex_destroy(&r->lock);
	free(r);
}
