/* librdkafka wrappers. The delivery report callback runs on whichever thread polls the producer
 * (always the service's main thread here), so plain counters suffice for in-flight bookkeeping;
 * they are read by other threads only through metrics. */
#include "kafka.h"

#include "config.h"
#include "lifecycle.h"
#include "log.h"

#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct kafka_producer {
	rd_kafka_t *rk;
	kafka_dr_fn on_delivery;
	void *ctx;
	atomic_long inflight;
	long failed_since_flush;
	atomic_long failed_total;
	atomic_long retries_total;
	bool batch_polling;
};

struct kafka_consumer {
	rd_kafka_t *rk;
	/* The group's queue: batches are read from it, background commits report to it. */
	rd_kafka_queue_t *queue;
	struct kafka_consumer_hooks hooks;
	bool closed;
	bool failed; /* committed offsets could not be read: the service must stop */
};

static const char *const known_prefixes[] = {"source.", "target."};

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* syslog levels: 0-3 error, 4 warning, 5-6 info (we demote to debug: librdkafka is chatty
	 * about reconnects that the suite reports itself), 7 debug. */
	enum log_level lv = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : LOG_DEBUG;
	if ((int)lv <= (int)log_get_level())
		log_write(lv, "librdkafka", 0, "%s: %s: %s", rd_kafka_name(rk), fac, buf);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	(void)opaque;
	rd_kafka_resp_err_t e = (rd_kafka_resp_err_t)err;
	if (e == RD_KAFKA_RESP_ERR__FATAL) {
		char why[512];
		rd_kafka_fatal_error(rk, why, sizeof(why));
		log_error("%s: fatal Kafka error: %s", rd_kafka_name(rk), why);
		lifecycle_request_stop();
		return;
	}
	/* Transport errors are retried by librdkafka; say so once per event, as a warning. */
	log_warn("%s: %s: %s", rd_kafka_name(rk), rd_kafka_err2name(e), reason);
}

static int conf_set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err,
		    size_t errlen)
{
	char why[512];
	if (rd_kafka_conf_set(conf, k, v, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
		snprintf(err, errlen, "Kafka property %s: %s", k, why);
		return -1;
	}
	return 0;
}

/* Suite defaults, then a service's own defaults (extra), then the user's properties. */
static rd_kafka_conf_t *conf_build(const char *brokers, const char *prefix,
				   const char *const *defaults, const char *const *extra,
				   char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (brokers && *brokers && conf_set(conf, "bootstrap.servers", brokers, err, errlen) < 0)
		goto fail;
	for (size_t i = 0; defaults && defaults[i]; i += 2)
		if (conf_set(conf, defaults[i], defaults[i + 1], err, errlen) < 0)
			goto fail;
	for (size_t i = 0; extra && extra[i]; i += 2)
		if (conf_set(conf, extra[i], extra[i + 1], err, errlen) < 0)
			goto fail;
	const struct strlist *props = config_kafka_props();
	for (size_t i = 0; i < props->len; i++) {
		const char *kv = props->items[i];
		const char *key = kv;
		bool prefixed = false;
		for (size_t k = 0; k < sizeof(known_prefixes) / sizeof(*known_prefixes); k++)
			if (strncmp(kv, known_prefixes[k], strlen(known_prefixes[k])) == 0) {
				prefixed = true;
				if (prefix && strcmp(prefix, known_prefixes[k]) == 0)
					key = kv + strlen(prefix);
			}
		if (prefixed && key == kv)
			continue; /* meant for the other cluster */
		const char *eq = strchr(key, '=');
		char name[256];
		snprintf(name, sizeof(name), "%.*s", (int)(eq - key), key);
		if (conf_set(conf, name, eq + 1, err, errlen) < 0)
			goto fail;
	}
	rd_kafka_conf_set_log_cb(conf, on_log);
	rd_kafka_conf_set_error_cb(conf, on_error);
	return conf;
fail:
	rd_kafka_conf_destroy(conf);
	return NULL;
}

rd_kafka_conf_t *kafka_conf_new(const char *brokers, const char *prefix,
				const char *const *defaults, char *err, size_t errlen)
{
	return conf_build(brokers, prefix, defaults, NULL, err, errlen);
}

/* ---- producer ---- */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	struct kafka_producer *p = opaque;
	atomic_fetch_sub(&p->inflight, 1);
	if (m->err) {
		p->failed_since_flush++;
		atomic_fetch_add(&p->failed_total, 1);
		log_error("delivery to %s [%d] failed: %s", rd_kafka_topic_name(m->rkt),
			  (int)m->partition, rd_kafka_err2str(m->err));
	}
	if (p->on_delivery)
		p->on_delivery(p->ctx, m);
}

static long stat_int(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_integer(v) ? (long)json_integer_value(v) : 0;
}

/* Statistics arrive only when statistics.interval.ms is set; the retry count is the one figure
 * the suite exports from them (a target that keeps refusing shows here first). librdkafka counts
 * request retries per broker, and re-sent messages only implicitly: a partition's transmissions
 * (txmsgs) beyond the messages that left its queues were sent again. */
static int on_stats(rd_kafka_t *rk, char *text, size_t len, void *opaque)
{
	(void)rk;
	struct kafka_producer *p = opaque;
	json_t *root = json_loadb(text, len, 0, NULL);
	const char *name, *pname;
	json_t *b, *t, *tp;
	long sum = 0;
	json_object_foreach(json_object_get(root, "brokers"), name, b)
	{
		sum += stat_int(b, "txretries");
	}
	json_object_foreach(json_object_get(root, "topics"), name, t)
	{
		json_object_foreach(json_object_get(t, "partitions"), pname, tp)
		{
			if (stat_int(tp, "partition") < 0)
				continue; /* messages not yet partitioned */
			long sent = stat_int(tp, "msgs") - stat_int(tp, "msgq_cnt") -
				    stat_int(tp, "xmit_msgq_cnt");
			long again = stat_int(tp, "txmsgs") - sent;
			if (again > 0)
				sum += again;
		}
	}
	if (root)
		atomic_store(&p->retries_total, sum);
	json_decref(root);
	return 0; /* librdkafka frees the text */
}

struct kafka_producer *kafka_producer_new(const char *brokers, const char *prefix,
					  kafka_dr_fn dr, void *ctx, char *err, size_t errlen)
{
	return kafka_producer_new_with(brokers, prefix, NULL, dr, ctx, err, errlen);
}

struct kafka_producer *kafka_producer_new_with(const char *brokers, const char *prefix,
					       const char *const *extra, kafka_dr_fn dr, void *ctx,
					       char *err, size_t errlen)
{
	static const char *const defaults[] = {
		"enable.idempotence", "true",
		/* Never expire records: an outage stalls the pipeline, it does not lose data. */
		"message.timeout.ms", "0",
		"linger.ms", "5",
		"client.id", "iotpipe",
		NULL};
	struct kafka_producer *p = calloc(1, sizeof(*p));
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rd_kafka_conf_t *conf = conf_build(brokers, prefix, defaults, extra, err, errlen);
	if (!conf)
		goto fail;
	p->on_delivery = dr;
	p->ctx = ctx;
	rd_kafka_conf_set_opaque(conf, p);
	rd_kafka_conf_set_dr_msg_cb(conf, on_delivery);
	rd_kafka_conf_set_stats_cb(conf, on_stats);
	char why[512];
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
	if (!p->rk) {
		snprintf(err, errlen, "cannot create Kafka producer: %s", why);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	/* rd_kafka_new() now owns conf. */
	return p;
fail:
	free(p);
	return NULL;
}

void kafka_producer_free(struct kafka_producer *p)
{
	if (!p)
		return;
	if (p->rk) {
		/* Records only: the client's own queue also counts metadata and admin requests. */
		long left = kafka_producer_inflight(p);
		if (left > 0)
			log_warn("closing the producer with %ld records not acknowledged", left);
		rd_kafka_destroy(p->rk);
	}
	free(p);
}

rd_kafka_t *kafka_producer_handle(struct kafka_producer *p)
{
	return p->rk;
}

/* One record to a topic handle, waiting while the local queue is full (never a drop). */
static int produce(struct kafka_producer *p, rd_kafka_topic_t *rkt, int32_t partition,
		   const void *key, size_t klen, const void *val, size_t vlen, int64_t ts_ms,
		   rd_kafka_headers_t *hdrs, void *opaque, char *err, size_t errlen)
{
	const char *topic = rd_kafka_topic_name(rkt);
	int64_t stalled_since = 0, warned = 0, stop_seen = 0;
	for (;;) {
		rd_kafka_resp_err_t e = rd_kafka_producev(
			p->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(partition),
			RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_KEY((void *)key, klen),
			RD_KAFKA_V_VALUE((void *)val, vlen), RD_KAFKA_V_TIMESTAMP(ts_ms),
			RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
		if (e == RD_KAFKA_RESP_ERR_NO_ERROR) {
			atomic_fetch_add(&p->inflight, 1);
			if (!p->batch_polling)
				rd_kafka_poll(p->rk, 0);
			return 0;
		}
		if (e != RD_KAFKA_RESP_ERR__QUEUE_FULL) {
			snprintf(err, errlen, "cannot produce to %s: %s", topic,
				 rd_kafka_err2str(e));
			if (hdrs)
				rd_kafka_headers_destroy(hdrs);
			return -1;
		}
		/* Local queue full: Kafka is slow or away. Wait for it; never drop. */
		int64_t now = now_mono_ms();
		if (!stalled_since)
			stalled_since = now;
		if (now - warned >= 10000) {
			if (warned)
				log_warn("producer queue to %s full for %lld s; waiting for Kafka",
					 topic, (long long)(now - stalled_since) / 1000);
			warned = now;
		}
		if (!lifecycle_running()) {
			if (!stop_seen)
				stop_seen = now;
			else if (now - stop_seen > 30000) {
				snprintf(err, errlen,
					 "producer queue to %s still full 30 s after stop", topic);
				if (hdrs)
					rd_kafka_headers_destroy(hdrs);
				return -1;
			}
		}
		rd_kafka_poll(p->rk, 50);
	}
}

int kafka_produce(struct kafka_producer *p, const char *topic, int32_t partition, const void *key,
		  size_t klen, const void *val, size_t vlen, int64_t ts_ms,
		  rd_kafka_headers_t *hdrs, void *opaque, char *err, size_t errlen)
{
	/* The client's handle for the name (a new reference to the one it keeps): the record
	 * holds its own reference, so this one is dropped right away. */
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(p->rk, topic, NULL);
	if (!rkt) {
		snprintf(err, errlen, "cannot produce to %s: %s", topic,
			 rd_kafka_err2str(rd_kafka_last_error()));
		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		return -1;
	}
	int rc = produce(p, rkt, partition, key, klen, val, vlen, ts_ms, hdrs, opaque, err, errlen);
	rd_kafka_topic_destroy(rkt);
	return rc;
}

int kafka_produce_rkt(struct kafka_producer *p, rd_kafka_topic_t *rkt, int32_t partition,
		      const void *key, size_t klen, const void *val, size_t vlen, int64_t ts_ms,
		      rd_kafka_headers_t *hdrs, void *opaque, char *err, size_t errlen)
{
	return produce(p, rkt, partition, key, klen, val, vlen, ts_ms, hdrs, opaque, err, errlen);
}
void kafka_producer_poll(struct kafka_producer *p, int timeout_ms)
{
	rd_kafka_poll(p->rk, timeout_ms);
}

void kafka_producer_batch_polling(struct kafka_producer *p, bool on)
{
	p->batch_polling = on;
}

long kafka_producer_inflight(const struct kafka_producer *p)
{
	return atomic_load(&((struct kafka_producer *)p)->inflight);
}

long kafka_producer_failed_total(const struct kafka_producer *p)
{
	return atomic_load(&((struct kafka_producer *)p)->failed_total);
}

long kafka_producer_retries_total(const struct kafka_producer *p)
{
	return atomic_load(&((struct kafka_producer *)p)->retries_total);
}

int kafka_producer_flush(struct kafka_producer *p, int timeout_ms)
{
	int64_t start = now_mono_ms(), warned = start, stop_seen = 0;
	while (kafka_producer_inflight(p) > 0) {
		int64_t now = now_mono_ms();
		if (timeout_ms >= 0 && now - start >= timeout_ms)
			break;
		if (!lifecycle_running()) {
			if (!stop_seen)
				stop_seen = now;
			else if (timeout_ms < 0 && now - stop_seen > 30000)
				break;
		}
		if (now - warned >= 10000) {
			log_warn("waiting for Kafka to acknowledge %ld records (%lld s)",
				 kafka_producer_inflight(p), (long long)(now - start) / 1000);
			warned = now;
		}
		rd_kafka_flush(p->rk, 100);
	}
	rd_kafka_poll(p->rk, 0);
	long failed = p->failed_since_flush;
	if (failed || kafka_producer_inflight(p) > 0)
		return -1;
	return 0;
}

/* ---- consumer ---- */

static void on_rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t err,
			 rd_kafka_topic_partition_list_t *parts, void *opaque)
{
	struct kafka_consumer *c = opaque;
	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
		/* Fetch committed offsets with their metadata so stateful services can restore.
		 * Without them a partition would start from auto.offset.reset with no state: a
		 * stateful service would emit again, or wrongly, what it had already emitted. So
		 * after a few tries the service stops (and is restarted) instead. */
		rd_kafka_resp_err_t ce = RD_KAFKA_RESP_ERR_NO_ERROR;
		for (int attempt = 1; attempt <= 3; attempt++) {
			ce = rd_kafka_committed(rk, parts, 10000);
			for (int i = 0; !ce && i < parts->cnt; i++)
				ce = parts->elems[i].err;
			if (!ce)
				break;
			log_warn("cannot read committed offsets (try %d of 3): %s", attempt,
				 rd_kafka_err2str(ce));
		}
		if (ce) {
			log_error("cannot read the committed offsets of %d assigned partitions: "
				  "stopping rather than reading them from a guessed position",
				  parts->cnt);
			c->failed = true;
			lifecycle_request_stop();
			return;
		}
		for (int i = 0; i < parts->cnt; i++)
			log_info("assigned %s [%d] at offset %lld", parts->elems[i].topic,
				 (int)parts->elems[i].partition, (long long)parts->elems[i].offset);
		if (c->hooks.on_assign)
			c->hooks.on_assign(c->hooks.ctx, parts);
		rd_kafka_assign(rk, parts);
		if (c->hooks.assign_paused)
			rd_kafka_pause_partitions(rk, parts);
	} else {
		if (c->hooks.on_revoke)
			c->hooks.on_revoke(c->hooks.ctx, parts);
		for (int i = 0; i < parts->cnt; i++)
			log_info("revoked %s [%d]", parts->elems[i].topic,
				 (int)parts->elems[i].partition);
		rd_kafka_assign(rk, NULL);
	}
}

struct kafka_consumer *kafka_consumer_new(const char *brokers, const char *prefix,
					  const char *group, const char *topics,
					  const struct kafka_consumer_hooks *hooks, char *err,
					  size_t errlen)
{
	return kafka_consumer_new_with(brokers, prefix, NULL, group, topics, hooks, err, errlen);
}

struct kafka_consumer *kafka_consumer_new_with(const char *brokers, const char *prefix,
					       const char *const *extra, const char *group,
					       const char *topics,
					       const struct kafka_consumer_hooks *hooks, char *err,
					       size_t errlen)
{
	static const char *const defaults[] = {
		"enable.auto.commit", "false",
		"enable.auto.offset.store", "false",
		"auto.offset.reset", "earliest",
		"enable.partition.eof", "false",
		"topic.metadata.refresh.interval.ms", "10000",
		"client.id", "iotpipe",
		NULL};
	struct kafka_consumer *c = calloc(1, sizeof(*c));
	rd_kafka_topic_partition_list_t *subs = NULL;
	char *copy = NULL;
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (hooks)
		c->hooks = *hooks;
	rd_kafka_conf_t *conf = conf_build(brokers, prefix, defaults, extra, err, errlen);
	if (!conf)
		goto fail;
	if (conf_set(conf, "group.id", group, err, errlen) < 0) {
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	rd_kafka_conf_set_opaque(conf, c);
	rd_kafka_conf_set_rebalance_cb(conf, on_rebalance);
	char why[512];
	c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
	if (!c->rk) {
		snprintf(err, errlen, "cannot create Kafka consumer: %s", why);
		rd_kafka_conf_destroy(conf);
		goto fail;
	}
	/* rd_kafka_new() now owns conf. */
	rd_kafka_poll_set_consumer(c->rk);
	c->queue = rd_kafka_queue_get_consumer(c->rk);
	if (!c->queue) {
		snprintf(err, errlen, "the consumer has no group queue");
		goto fail;
	}
	subs = rd_kafka_topic_partition_list_new(4);
	copy = strdup(topics);
	for (char *save = NULL, *t = copy ? strtok_r(copy, ",", &save) : NULL; t;
	     t = strtok_r(NULL, ",", &save))
		rd_kafka_topic_partition_list_add(subs, t, RD_KAFKA_PARTITION_UA);
	if (!copy || subs->cnt == 0) {
		snprintf(err, errlen, "no input topic given");
		goto fail;
	}
	rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, subs);
	if (e) {
		snprintf(err, errlen, "cannot subscribe to %s: %s", topics, rd_kafka_err2str(e));
		goto fail;
	}
	log_info("consuming %s as group %s", topics, group);
	free(copy);
	rd_kafka_topic_partition_list_destroy(subs);
	return c;
fail:
	free(copy);
	if (subs)
		rd_kafka_topic_partition_list_destroy(subs);
	if (c->queue)
		rd_kafka_queue_destroy(c->queue);
	if (c->rk)
		rd_kafka_destroy(c->rk);
	free(c);
	return NULL;
}

bool kafka_consumer_failed(const struct kafka_consumer *c)
{
	return c && c->failed;
}

rd_kafka_t *kafka_consumer_handle(struct kafka_consumer *c)
{
	return c->rk;
}

/* Logs a consumer error (partition EOF is none) and destroys the message. */
static void consumer_error(rd_kafka_message_t *m)
{
	if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
		if (m->rkt)
			log_warn("consumer error on %s [%d] at offset %lld: %s",
				 rd_kafka_topic_name(m->rkt), (int)m->partition,
				 (long long)m->offset, rd_kafka_message_errstr(m));
		else
			log_warn("consumer error: %s", rd_kafka_message_errstr(m));
	}
	rd_kafka_message_destroy(m);
}

rd_kafka_message_t *kafka_consumer_poll(struct kafka_consumer *c, int timeout_ms)
{
	rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
	if (!m || !m->err)
		return m;
	consumer_error(m);
	return NULL;
}

size_t kafka_consumer_poll_batch(struct kafka_consumer *c, rd_kafka_message_t **out, size_t max,
				 int timeout_ms)
{
	if (!max)
		return 0;
	/* consume_batch_queue with a timeout waits for the whole batch to fill, so it only takes
	 * what is there; waiting for the first record is consumer_poll's job. */
	ssize_t got = rd_kafka_consume_batch_queue(c->queue, 0, out, max);
	size_t n = got > 0 ? (size_t)got : 0;
	if (!n && timeout_ms > 0) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);
		if (!m)
			return 0;
		out[n++] = m;
		got = max > 1 ? rd_kafka_consume_batch_queue(c->queue, 0, out + 1, max - 1) : 0;
		n += got > 0 ? (size_t)got : 0;
	}
	size_t kept = 0;
	for (size_t i = 0; i < n; i++) {
		if (out[i]->err)
			consumer_error(out[i]);
		else
			out[kept++] = out[i];
	}
	return kept;
}

int kafka_consumer_queued(struct kafka_consumer *c)
{
	return c->queue ? rd_kafka_queue_length(c->queue) : 0;
}

static void log_commit_errors(rd_kafka_resp_err_t e, const rd_kafka_topic_partition_list_t *offs)
{
	if (e && e != RD_KAFKA_RESP_ERR__NO_OFFSET)
		log_warn("offset commit failed (%s): the records will be read again",
			 rd_kafka_err2str(e));
	for (int i = 0; offs && i < offs->cnt; i++)
		if (offs->elems[i].err)
			log_warn("offset commit for %s [%d] failed: %s", offs->elems[i].topic,
				 (int)offs->elems[i].partition, rd_kafka_err2str(offs->elems[i].err));
}

int kafka_consumer_commit(struct kafka_consumer *c, const rd_kafka_topic_partition_list_t *offs)
{
	if (!offs || offs->cnt == 0)
		return 0;
	rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, offs, 0);
	log_commit_errors(e, offs);
	return e ? -1 : 0;
}

static void on_async_commit(rd_kafka_t *rk, rd_kafka_resp_err_t e,
			    rd_kafka_topic_partition_list_t *offs, void *opaque)
{
	(void)rk;
	(void)opaque;
	log_commit_errors(e, offs);
}

int kafka_consumer_commit_async(struct kafka_consumer *c,
				const rd_kafka_topic_partition_list_t *offs)
{
	if (!offs || offs->cnt == 0)
		return 0;
	rd_kafka_resp_err_t e = rd_kafka_commit_queue(c->rk, offs, c->queue, on_async_commit, c);
	if (e) {
		log_warn("offset commit failed (%s): the records will be read again",
			 rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

void kafka_consumer_free(struct kafka_consumer *c)
{
	if (!c)
		return;
	if (c->rk) {
		rd_kafka_consumer_close(c->rk);
		if (c->queue)
			rd_kafka_queue_destroy(c->queue);
		rd_kafka_destroy(c->rk);
	}
	free(c);
}

bool kafka_header_get(const rd_kafka_message_t *m, const char *name, char *out, size_t outlen)
{
	rd_kafka_headers_t *h = NULL;
	const void *v;
	size_t len;
	if (rd_kafka_message_headers(m, &h) || !h ||
	    rd_kafka_header_get_last(h, name, &v, &len) || !v)
		return false;
	if (len >= outlen)
		return false;
	memcpy(out, v, len);
	out[len] = 0;
	return true;
}
