/* The state topic (see store.h). The reader is a plain consumer that assigns one partition at a
 * time and never joins a group or commits: where it starts is always the partition's beginning
 * (compaction keeps that short), where it stops is the end offset seen when the read began. */
#include "store.h"

#include "lifecycle.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CREATE_WAIT_MS 15000

struct state_store {
	rd_kafka_t *rk;
	char *topic;
	int timeout_ms;
};

struct state_store *state_store_new(const char *brokers, const char *topic, long long timeout_ms,
                                    char *err, size_t errlen)
{
	/* clang-format off */
	static const char *const defaults[] = {
		"group.id", "iotpipe-forecaster-state-reader", /* required by the API; never joined */
		"enable.auto.commit", "false",
		"enable.partition.eof", "true",
		"auto.offset.reset", "earliest",
		NULL};
	/* clang-format on */
	struct state_store *st = calloc(1, sizeof(*st));
	if (!st || !(st->topic = strdup(topic))) {
		free(st);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->timeout_ms = timeout_ms > 0 && timeout_ms < 3600000 ? (int)timeout_ms : 60000;
	rd_kafka_conf_t *conf = kafka_conf_new(brokers, NULL, defaults, err, errlen);
	if (!conf)
		goto fail;
	char why[512];
	st->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
	if (!st->rk) {
		rd_kafka_conf_destroy(conf);
		snprintf(err, errlen, "cannot create the state topic reader: %s", why);
		goto fail;
	}
	/* rd_kafka_new() now owns conf. */
	rd_kafka_poll_set_consumer(st->rk);
	return st;
fail:
	free(st->topic);
	free(st);
	return NULL;
}

void state_store_free(struct state_store *st)
{
	if (!st)
		return;
	if (st->rk) {
		rd_kafka_consumer_close(st->rk);
		rd_kafka_destroy(st->rk);
	}
	free(st->topic);
	free(st);
}

const char *state_store_topic(const struct state_store *st)
{
	return st->topic;
}

/* Partition count of a topic: > 0, 0 when it does not exist, -1 on error (reason in err).
 * Asks for every topic's metadata: a request naming the topic would make a broker that creates
 * topics on first use create it, with its default partition count and cleanup policy. */
static int topic_partitions(struct state_store *st, const char *topic, char *err, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(st->rk, 1, NULL, &md, st->timeout_ms);
	if (e) {
		snprintf(err, errlen, "cannot read the cluster's metadata: %s",
		         rd_kafka_err2str(e));
		return -1;
	}
	int n = 0;
	for (int i = 0; i < md->topic_cnt; i++) {
		if (strcmp(md->topics[i].topic, topic) != 0)
			continue;
		if (md->topics[i].err) {
			snprintf(err, errlen, "%s: %s", topic, rd_kafka_err2str(md->topics[i].err));
			n = -1;
		} else {
			n = md->topics[i].partition_cnt;
		}
		break;
	}
	rd_kafka_metadata_destroy(md);
	return n;
}

static int topic_create(struct state_store *st, int partitions, char *err, size_t errlen)
{
	char why[512];
	int rc = -1;
	rd_kafka_NewTopic_t *nt =
	    rd_kafka_NewTopic_new(st->topic, partitions, -1, why, sizeof(why));
	rd_kafka_queue_t *q = rd_kafka_queue_new(st->rk);
	rd_kafka_AdminOptions_t *ao =
	    rd_kafka_AdminOptions_new(st->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_event_t *ev = NULL;
	if (!nt || !q || !ao) {
		snprintf(err, errlen, "cannot prepare the creation of %s: %s", st->topic,
		         nt ? "out of memory" : why);
		goto out;
	}
	/* A cluster without a controller (kafka-mock) never answers: do not wait long for it. */
	int wait_ms = st->timeout_ms < CREATE_WAIT_MS ? st->timeout_ms : CREATE_WAIT_MS;
	rd_kafka_AdminOptions_set_request_timeout(ao, wait_ms, why, sizeof(why));
	rd_kafka_AdminOptions_set_operation_timeout(ao, wait_ms, why, sizeof(why));
	rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
	rd_kafka_CreateTopics(st->rk, &nt, 1, ao, q);
	ev = rd_kafka_queue_poll(q, wait_ms + 5000);
	if (!ev) {
		snprintf(err, errlen, "creating %s timed out", st->topic);
		goto out;
	}
	if (rd_kafka_event_error(ev)) {
		snprintf(err, errlen, "cannot create %s: %s", st->topic,
		         rd_kafka_event_error_string(ev));
		goto out;
	}
	const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
	size_t n = 0;
	const rd_kafka_topic_result_t **tr =
	    res ? rd_kafka_CreateTopics_result_topics(res, &n) : NULL;
	rd_kafka_resp_err_t te =
	    n ? rd_kafka_topic_result_error(tr[0]) : RD_KAFKA_RESP_ERR_NO_ERROR;
	if (te && te != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
		const char *msg = rd_kafka_topic_result_error_string(tr[0]);
		snprintf(err, errlen, "cannot create %s: %s", st->topic,
		         msg ? msg : rd_kafka_err2str(te));
		goto out;
	}
	rc = 0;
out:
	if (ev)
		rd_kafka_event_destroy(ev);
	if (ao)
		rd_kafka_AdminOptions_destroy(ao);
	if (q)
		rd_kafka_queue_destroy(q);
	if (nt)
		rd_kafka_NewTopic_destroy(nt);
	return rc;
}

int state_store_prepare(struct state_store *st, const char *input, char *err, size_t errlen)
{
	int in = 0;
	/* The input may not exist yet when the forecaster starts before its producers. */
	int64_t deadline = now_mono_ms() + st->timeout_ms;
	while ((in = topic_partitions(st, input, err, errlen)) == 0 && lifecycle_running() &&
	       now_mono_ms() < deadline) {
		log_info("input topic %s does not exist yet; waiting", input);
		rd_kafka_poll(st->rk, 1000);
	}
	if (in < 0)
		return -1;
	if (in == 0) {
		snprintf(err, errlen,
		         "input topic %s does not exist: the state topic %s must have its "
		         "partition count, so create %s first",
		         input, st->topic, input);
		return -1;
	}
	int have = topic_partitions(st, st->topic, err, errlen);
	if (have < 0)
		return -1;
	if (have == 0) {
		log_info("creating state topic %s: %d partitions, cleanup.policy=compact",
		         st->topic, in);
		if (topic_create(st, in, err, errlen) < 0) {
			size_t n = strlen(err);
			snprintf(
			    err + n, errlen - n,
			    "; create it yourself with %d partitions and cleanup.policy=compact",
			    in);
			return -1;
		}
		return 0;
	}
	if (have < in) {
		snprintf(err, errlen,
		         "state topic %s has %d partitions but input %s has %d: a series' state "
		         "lives in the partition number of its input, so add partitions to %s",
		         st->topic, have, input, in, st->topic);
		return -1;
	}
	return 0;
}

long state_store_load(struct state_store *st, int32_t p, state_record_fn fn, void *ctx, char *err,
                      size_t errlen)
{
	int64_t lo = 0, hi = 0;
	rd_kafka_resp_err_t e =
	    rd_kafka_query_watermark_offsets(st->rk, st->topic, p, &lo, &hi, st->timeout_ms);
	if (e) {
		snprintf(err, errlen, "cannot read the end of %s [%d]: %s", st->topic, (int)p,
		         rd_kafka_err2str(e));
		return -1;
	}
	if (hi <= lo)
		return 0;
	rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(parts, st->topic, p)->offset = lo;
	e = rd_kafka_assign(st->rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (e) {
		snprintf(err, errlen, "cannot read %s [%d]: %s", st->topic, (int)p,
		         rd_kafka_err2str(e));
		return -1;
	}
	long n = 0;
	int64_t last_progress = now_mono_ms();
	bool done = false;
	while (!done) {
		if (!lifecycle_running()) {
			snprintf(err, errlen, "stopping while reading %s [%d]", st->topic, (int)p);
			n = -1;
			break;
		}
		if (now_mono_ms() - last_progress > st->timeout_ms) {
			snprintf(err, errlen,
			         "no progress reading %s [%d] for %d ms (at %ld of %lld)",
			         st->topic, (int)p, st->timeout_ms, n, (long long)(hi - lo));
			n = -1;
			break;
		}
		rd_kafka_message_t *m = rd_kafka_consumer_poll(st->rk, 200);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			done = m->offset >= hi;
		} else if (m->err) {
			log_warn("reading %s [%d]: %s", st->topic, (int)p,
			         rd_kafka_message_errstr(m));
		} else {
			last_progress = now_mono_ms();
			fn(ctx, m->key, m->key_len, m->len ? m->payload : NULL, m->len);
			n++;
			done = m->offset >= hi - 1;
		}
		rd_kafka_message_destroy(m);
	}
	rd_kafka_assign(st->rk, NULL);
	return n;
}

int state_store_put(const struct state_store *st, struct kafka_producer *pr, int32_t p,
                    const void *key, size_t key_len, const void *val, size_t val_len, char *err,
                    size_t errlen)
{
	return kafka_produce(pr, st->topic, p, key, key_len, val, val_len, 0, NULL, NULL, err,
	                     errlen);
}
