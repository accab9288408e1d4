/* The relay's batch path (see batches.h). */
#include "batches.h"

#include "conn.h"
#include "kbatch.h"
#include "kwire.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "records.h"
#include "relay_int.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <zlib.h>

#define CLIENT_ID "iotpipe-mirror-relay"
#define META_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MS 5000
/* A response larger than this is refused (the fetch asks for fetch.max.bytes plus overhead). */
#define RESPONSE_SLACK (1 << 20)
/* Output batches are closed at this size: well under the 1 MB a Kafka topic accepts by
 * default (max.message.bytes), and big enough that the per-batch work is spread thin. */
#define OUT_BATCH_BYTES (256 * 1024)
/* A gzip batch may not inflate beyond this (a hostile batch could claim anything). */
#define INFLATE_MAX (64 << 20)
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define WARN_EVERY_MS 10000

struct broker {
	int32_t id;
	char *host;
	int port;
	struct conn conn;
	int64_t retry_at; /* no connection attempt before (backoff after a failure) */
	int backoff_ms;
	int64_t warned_at; /* connection trouble is logged at most every WARN_EVERY_MS */
	bool fetching; /* source side: a Fetch is in flight */
	int64_t fetch_deadline;
};

struct brokers {
	struct broker **b;
	size_t n;
	const char *side; /* "source" / "target", for messages */
};

/* An assigned source partition. */
struct bpart {
	struct relay_part *rp;
	int64_t next;	   /* everything before is on the target (or skipped): what is committed */
	int64_t fetch_pos; /* next offset to fetch: past next while a round is on the way */
	int64_t fetched_at; /* offset the Fetch in flight asks for */
	int64_t committed; /* -1: nothing committed by this run */
	int32_t leader;	   /* source broker id, -1 unknown */
	int32_t fetch_from; /* broker whose Fetch in flight asks for it, -1 none */
	bool reset;	   /* next comes from auto.offset.reset */
	int64_t retry_at;  /* after an error: no fetch before */
	struct ttopic *tt; /* its target topic, once known */
	/* This round: */
	bool in_round;
	int64_t round_next;
	long round_records, round_skipped;
	double round_bytes;
	int64_t round_max_ts;
};

/* A target topic's layout and the round's output slots, per partition. */
struct ttopic {
	struct relay_topic *t;
	int32_t n;	 /* partitions known (leader and slot arrays) */
	int32_t *leader; /* -1 unknown */
	int *slot;	 /* index in b->slots, -1 none this round */
	uint32_t spread; /* keyless records: the partition of this round */
};

/* Everything one round writes to one target partition. */
struct slot {
	struct ttopic *tt;
	int32_t partition;
	struct wbuf buf; /* finished batches back to back, then the one being built */
	struct kbuilder kb;
	bool building;
	size_t *ends; /* end of each finished batch in buf */
	size_t nends, capends;
	size_t acked; /* batches the target acknowledged */
};

struct batches {
	struct relay *r;
	const struct batches_config *cfg;
	struct kafka_consumer *consumer;
	struct kafka_producer *producer;
	rd_kafka_t *crk, *prk;
	struct brokers src, tgt;
	struct bpart **parts;
	size_t nparts;
	struct ttopic **tts;
	size_t ntts;
	struct slot *slots;
	size_t nslots, capslots;
	struct bpart **round; /* source partitions in the round */
	size_t nround;
	int64_t *round_ts; /* source timestamps of the round's records (latency) */
	size_t nround_ts, capround_ts;
	struct wbuf req, scratch, inflated;
	int32_t corr;
	bool src_meta_stale, tgt_meta_stale, fallback;
	int64_t next_commit, next_tgt_refresh;
	long since_commit;
	/* Source and target client settings the path honours. */
	int32_t fetch_wait_ms, fetch_min_bytes, fetch_max_bytes, part_max_bytes;
	int8_t isolation;
	/* The target producer's partitioner for keyed records (librdkafka's own function, so both
	 * paths place a key alike); keyless records go to one partition per round unless the
	 * partitioner hashes them too. */
	int32_t (*hash)(const rd_kafka_topic_t *, const void *, size_t, int32_t, void *, void *);
	bool hash_keyless;
	int16_t acks;
	int32_t request_timeout_ms;
	bool reset_latest;
	int64_t warned_at, refused_warned_at;
};

/* Doubles a pause after each failure in a row, from BACKOFF_MIN_MS up to BACKOFF_MAX_MS. */
static int backoff_next(int *ms)
{
	*ms = *ms ? *ms * 2 : BACKOFF_MIN_MS;
	if (*ms > BACKOFF_MAX_MS)
		*ms = BACKOFF_MAX_MS;
	return *ms;
}

/* True at most once every WARN_EVERY_MS per *at: repeated trouble is one line, not a flood. */
static bool warn_due(int64_t *at)
{
	int64_t now = now_mono_ms();
	if (now - *at < WARN_EVERY_MS)
		return false;
	*at = now;
	return true;
}

/* ---- client settings ---- */

static long conf_long(rd_kafka_t *rk, const char *name, long dflt)
{
	char v[64];
	size_t n = sizeof(v);
	if (rd_kafka_conf_get(rd_kafka_conf(rk), name, v, &n) != RD_KAFKA_CONF_OK)
		return dflt;
	char *end;
	long x = strtol(v, &end, 10);
	return end != v ? x : dflt;
}

static bool conf_is(rd_kafka_t *rk, const char *name, const char *want)
{
	char v[64];
	size_t n = sizeof(v);
	return rd_kafka_conf_get(rd_kafka_conf(rk), name, v, &n) == RD_KAFKA_CONF_OK &&
	       strcmp(v, want) == 0;
}

/* Returns false for a partitioner the batch path cannot follow. */
static bool partitioner_read(struct batches *b)
{
	static const struct {
		const char *name;
		int32_t (*fn)(const rd_kafka_topic_t *, const void *, size_t, int32_t, void *,
			      void *);
		bool keyless;
	} known[] = {
		{"consistent_random", rd_kafka_msg_partitioner_consistent, false},
		{"consistent", rd_kafka_msg_partitioner_consistent, true},
		{"murmur2_random", rd_kafka_msg_partitioner_murmur2, false},
		{"murmur2", rd_kafka_msg_partitioner_murmur2, true},
		{"fnv1a_random", rd_kafka_msg_partitioner_fnv1a, false},
		{"fnv1a", rd_kafka_msg_partitioner_fnv1a, true},
	};
	char v[64];
	size_t n = sizeof(v);
	if (rd_kafka_conf_get(rd_kafka_conf(b->prk), "partitioner", v, &n) != RD_KAFKA_CONF_OK)
		snprintf(v, sizeof(v), "consistent_random");
	for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcmp(v, known[i].name) == 0) {
			b->hash = known[i].fn;
			b->hash_keyless = known[i].keyless;
			return true;
		}
	log_info("target partitioner %s: records go through the Kafka client", v);
	return false;
}

static void settings_read(struct batches *b)
{
	b->fetch_wait_ms = (int32_t)conf_long(b->crk, "fetch.wait.max.ms", 500);
	b->fetch_min_bytes = (int32_t)conf_long(b->crk, "fetch.min.bytes", 1);
	b->fetch_max_bytes = (int32_t)conf_long(b->crk, "fetch.max.bytes", 52428800);
	b->part_max_bytes = (int32_t)conf_long(b->crk, "max.partition.fetch.bytes", 1048576);
	b->isolation = conf_is(b->crk, "isolation.level", "read_uncommitted") ? 0 : 1;
	b->reset_latest = conf_is(b->crk, "auto.offset.reset", "latest") ||
			  conf_is(b->crk, "auto.offset.reset", "largest") ||
			  conf_is(b->crk, "auto.offset.reset", "end");
	b->acks = conf_is(b->prk, "acks", "1") ? 1 : -1;
	b->request_timeout_ms = (int32_t)conf_long(b->prk, "request.timeout.ms", 30000);
}

/* ---- brokers ---- */

static struct broker *broker_find(struct brokers *bs, int32_t id)
{
	for (size_t i = 0; i < bs->n; i++)
		if (bs->b[i]->id == id)
			return bs->b[i];
	return NULL;
}

/* Adds or updates a broker from metadata. Returns 0 or -1 (out of memory). */
static int broker_set(struct brokers *bs, int32_t id, const char *host, int port)
{
	struct broker *k = broker_find(bs, id);
	if (k) {
		if (k->port == port && strcmp(k->host, host) == 0)
			return 0;
		char *h = strdup(host);
		if (!h)
			return -1;
		free(k->host);
		k->host = h;
		k->port = port;
		conn_close(&k->conn);
		k->fetching = false;
		return 0;
	}
	struct broker **n = realloc(bs->b, (bs->n + 1) * sizeof(*n));
	if (!n)
		return -1;
	bs->b = n;
	k = calloc(1, sizeof(*k));
	if (!k || !(k->host = strdup(host))) {
		free(k);
		return -1;
	}
	k->id = id;
	k->port = port;
	conn_init(&k->conn);
	bs->b[bs->n++] = k;
	return 0;
}

static void brokers_free(struct brokers *bs)
{
	for (size_t i = 0; i < bs->n; i++) {
		conn_free(&bs->b[i]->conn);
		free(bs->b[i]->host);
		free(bs->b[i]);
	}
	free(bs->b);
	bs->b = NULL;
	bs->n = 0;
}

/* Connects when needed. Returns 0, or -1 (logged at most every WARN_EVERY_MS; backoff set). */
static int broker_connect(struct brokers *bs, struct broker *k)
{
	if (k->conn.fd >= 0)
		return 0;
	int64_t now = now_mono_ms();
	if (now < k->retry_at)
		return -1;
	char err[512];
	if (conn_open(&k->conn, k->host, k->port, CONNECT_TIMEOUT_MS, err, sizeof(err)) == 0) {
		k->backoff_ms = 0;
		return 0;
	}
	k->retry_at = now + backoff_next(&k->backoff_ms);
	if (warn_due(&k->warned_at))
		log_warn("%s broker %d: %s; retrying", bs->side, (int)k->id, err);
	return -1;
}

/* A broker whose connection failed: closed, retried after a pause, leaders asked again. */
static void broker_failed(struct batches *b, struct brokers *bs, struct broker *k,
			  const char *err)
{
	conn_close(&k->conn);
	k->fetching = false;
	k->retry_at = now_mono_ms() + backoff_next(&k->backoff_ms);
	if (warn_due(&k->warned_at))
		log_warn("%s broker %d: %s", bs->side, (int)k->id, err);
	if (bs == &b->src)
		b->src_meta_stale = true;
	else
		b->tgt_meta_stale = true;
}

/* ---- metadata ---- */

/* Brokers and partition leaders of topic through rk. Calls leader(ctx, partition, id) for each
 * partition; returns the partition count, or -1 (err). */
static int metadata_topic(struct brokers *bs, rd_kafka_t *rk, const char *topic,
			  void (*leader)(void *ctx, int32_t partition, int32_t id), void *ctx,
			  char *err, size_t errlen)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	const struct rd_kafka_metadata *md = NULL;
	int n = -1;
	if (!rkt) {
		snprintf(err, errlen, "%s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
		return -1;
	}
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, META_TIMEOUT_MS);
	if (e) {
		snprintf(err, errlen, "metadata of %s: %s", topic, rd_kafka_err2str(e));
		goto out;
	}
	for (int i = 0; i < md->broker_cnt; i++)
		if (broker_set(bs, md->brokers[i].id, md->brokers[i].host, md->brokers[i].port) <
		    0) {
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	if (md->topic_cnt != 1 || md->topics[0].err) {
		snprintf(err, errlen, "metadata of %s: %s", topic,
			 md->topic_cnt ? rd_kafka_err2str(md->topics[0].err) : "no topic");
		goto out;
	}
	for (int i = 0; i < md->topics[0].partition_cnt; i++) {
		const rd_kafka_metadata_partition_t *p = &md->topics[0].partitions[i];
		leader(ctx, p->id, p->err ? -1 : p->leader);
	}
	n = md->topics[0].partition_cnt;
out:
	if (md)
		rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	return n;
}

struct src_leader_ctx {
	struct batches *b;
	const char *topic;
};

static void src_leader(void *ctx, int32_t partition, int32_t id)
{
	struct src_leader_ctx *c = ctx;
	for (size_t i = 0; i < c->b->nparts; i++) {
		struct bpart *p = c->b->parts[i];
		if (p->rp->partition == partition && strcmp(p->rp->t->name, c->topic) == 0)
			p->leader = id;
	}
}

static void source_refresh(struct batches *b)
{
	b->src_meta_stale = false;
	char err[512];
	for (size_t i = 0; i < b->nparts; i++) {
		const char *topic = b->parts[i]->rp->t->name;
		bool seen = false;
		for (size_t j = 0; j < i && !seen; j++)
			seen = strcmp(b->parts[j]->rp->t->name, topic) == 0;
		if (seen)
			continue;
		struct src_leader_ctx c = {b, topic};
		if (metadata_topic(&b->src, b->crk, topic, src_leader, &c, err, sizeof(err)) < 0) {
			log_warn("source %s; asking again", err);
			b->src_meta_stale = true;
		}
	}
}

static void tgt_leader(void *ctx, int32_t partition, int32_t id)
{
	struct ttopic *tt = ctx;
	if (partition >= 0 && partition < tt->n)
		tt->leader[partition] = id;
}

/* Sizes tt's arrays for n partitions. Returns 0 or -1. */
static int ttopic_resize(struct ttopic *tt, int32_t n)
{
	if (n <= tt->n)
		return 0;
	int32_t *l = realloc(tt->leader, (size_t)n * sizeof(*l));
	if (l)
		tt->leader = l;
	int *s = l ? realloc(tt->slot, (size_t)n * sizeof(*s)) : NULL;
	if (!s)
		return -1;
	tt->slot = s;
	for (int32_t i = tt->n; i < n; i++) {
		tt->leader[i] = -1;
		tt->slot[i] = -1;
	}
	tt->n = n;
	return 0;
}

static void target_refresh(struct batches *b)
{
	b->tgt_meta_stale = false;
	b->next_tgt_refresh = now_mono_ms() + b->r->o.refresh_ms;
	char err[512];
	for (size_t i = 0; i < b->ntts; i++) {
		struct ttopic *tt = b->tts[i];
		for (int32_t j = 0; j < tt->n; j++)
			tt->leader[j] = -1;
		int n = metadata_topic(&b->tgt, b->prk, tt->t->target, tgt_leader, tt, err,
				       sizeof(err));
		if (n < 0) {
			log_warn("target %s; asking again", err);
			b->tgt_meta_stale = true;
			continue;
		}
		if (n > tt->t->target_parts) {
			log_info("target topic %s now has %d partitions (was %d)", tt->t->target, n,
				 (int)tt->t->target_parts);
			if (ttopic_resize(tt, n) == 0) {
				tt->t->target_parts = n;
				metadata_topic(&b->tgt, b->prk, tt->t->target, tgt_leader, tt, err,
					       sizeof(err));
			}
		}
	}
}

static struct ttopic *ttopic_get(struct batches *b, struct relay_topic *t)
{
	for (size_t i = 0; i < b->ntts; i++)
		if (b->tts[i]->t == t)
			return b->tts[i];
	if (!t->target_parts && relay_target_prepare(b->r, t) < 0)
		return NULL;
	struct ttopic **n = realloc(b->tts, (b->ntts + 1) * sizeof(*n));
	if (!n)
		return NULL;
	b->tts = n;
	struct ttopic *tt = calloc(1, sizeof(*tt));
	if (!tt || ttopic_resize(tt, t->target_parts) < 0) {
		if (tt) {
			free(tt->leader);
			free(tt->slot);
		}
		free(tt);
		log_error("out of memory");
		return NULL;
	}
	tt->t = t;
	b->tts[b->ntts++] = tt;
	b->tgt_meta_stale = true;
	return tt;
}

/* ---- assignment (consumer callbacks) ---- */

static struct bpart *bpart_find(struct batches *b, const char *topic, size_t tlen,
				int32_t partition)
{
	for (size_t i = 0; i < b->nparts; i++) {
		struct bpart *p = b->parts[i];
		const char *name = p->rp->t->name;
		if (p->rp->partition == partition && strncmp(name, topic, tlen) == 0 &&
		    name[tlen] == '\0')
			return p;
	}
	return NULL;
}

static void on_assign(void *ctx, const rd_kafka_topic_partition_list_t *l)
{
	struct batches *b = ctx;
	for (int i = 0; i < l->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &l->elems[i];
		if (bpart_find(b, e->topic, strlen(e->topic), e->partition))
			continue;
		struct relay_part *rp = relay_part_get(b->r, e->topic, e->partition);
		struct bpart *p = rp ? calloc(1, sizeof(*p)) : NULL;
		struct bpart **n = p ? realloc(b->parts, (b->nparts + 1) * sizeof(*n)) : NULL;
		if (!n) {
			free(p);
			log_error("out of memory taking %s [%d]", e->topic, (int)e->partition);
			relay_fail(b->r);
			return;
		}
		b->parts = n;
		p->rp = rp;
		p->next = e->offset >= 0 ? e->offset : -1;
		p->fetch_pos = p->next;
		p->committed = p->next;
		p->reset = e->offset < 0;
		p->leader = -1;
		p->fetch_from = -1;
		atomic_store(&rp->next_offset, p->next);
		atomic_store(&rp->assigned, true);
		/* Created with the assignment, as the stream does: it shows the partitions are
		 * taken (zero until records come). */
		if (!rp->t->records_in) {
			char labels[300];
			metrics_label(labels, sizeof(labels), "topic", rp->t->name);
			rp->t->records_in = metrics_counter(
				"iotpipe_records_in_total", "Records read from the input", labels);
		}
		b->parts[b->nparts++] = p;
	}
	b->src_meta_stale = true;
}

static void commit(struct batches *b, struct bpart **parts, size_t n, bool wait)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n; i++) {
		struct bpart *p = parts[i];
		if (p->next >= 0 && p->next != p->committed)
			rd_kafka_topic_partition_list_add(l, p->rp->t->name, p->rp->partition)
				->offset = p->next;
	}
	if (l->cnt && (wait ? kafka_consumer_commit(b->consumer, l)
			    : kafka_consumer_commit_async(b->consumer, l)) == 0)
		for (size_t i = 0; i < n; i++)
			parts[i]->committed = parts[i]->next;
	rd_kafka_topic_partition_list_destroy(l);
	b->since_commit = 0;
	b->next_commit = now_mono_ms() + b->cfg->checkpoint_ms;
}

static void on_revoke(void *ctx, const rd_kafka_topic_partition_list_t *l)
{
	struct batches *b = ctx;
	commit(b, b->parts, b->nparts, true);
	for (int i = 0; i < l->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &l->elems[i];
		struct bpart *p = bpart_find(b, e->topic, strlen(e->topic), e->partition);
		if (!p)
			continue;
		atomic_store(&p->rp->assigned, false);
		metric_set(p->rp->lag_records, 0);
		metric_set(p->rp->lag_seconds, 0);
		for (size_t j = 0; j < b->nparts; j++)
			if (b->parts[j] == p)
				b->parts[j] = b->parts[--b->nparts];
		/* Never in a round here: the group is served between rounds only (round_pause). */
		free(p);
	}
}

/* Records the clients fetched before their partitions were paused are not ours to relay:
 * the batch path reads every partition itself, from the committed offsets. */
static void serve_consumer(struct batches *b)
{
	rd_kafka_message_t *m;
	while ((m = kafka_consumer_poll(b->consumer, 0)))
		rd_kafka_message_destroy(m);
}

/* Offsets of partitions without a committed one, from auto.offset.reset. */
static void resolve_resets(struct batches *b)
{
	for (size_t i = 0; i < b->nparts; i++) {
		struct bpart *p = b->parts[i];
		if (!p->reset || now_mono_ms() < p->retry_at)
			continue;
		int64_t lo, hi;
		rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
			b->crk, p->rp->t->name, p->rp->partition, &lo, &hi, META_TIMEOUT_MS);
		if (e) {
			log_warn("source %s [%d]: cannot read its offsets (%s); asking again",
				 p->rp->t->name, (int)p->rp->partition, rd_kafka_err2str(e));
			p->retry_at = now_mono_ms() + BACKOFF_MAX_MS;
			continue;
		}
		p->next = p->fetch_pos = b->reset_latest ? hi : lo;
		p->reset = false;
		atomic_store(&p->rp->next_offset, p->next);
		log_info("%s [%d]: no committed offset, starting at %" PRId64 " (%s)",
			 p->rp->t->name, (int)p->rp->partition, p->next,
			 b->reset_latest ? "latest" : "earliest");
	}
}

static void fetch_send(struct batches *b, struct broker *br);

/* ---- a round: one Fetch response relayed ---- */

static struct slot *slot_get(struct batches *b, struct ttopic *tt, int32_t partition)
{
	int i = tt->slot[partition];
	if (i >= 0)
		return &b->slots[i];
	if (b->nslots == b->capslots) {
		size_t cap = b->capslots ? b->capslots * 2 : 16;
		struct slot *n = realloc(b->slots, cap * sizeof(*n));
		if (!n)
			return NULL;
		memset(n + b->capslots, 0, (cap - b->capslots) * sizeof(*n));
		/* The builders point at their slot's buffer, which has just moved. */
		for (size_t j = 0; j < b->nslots; j++)
			n[j].kb.out = &n[j].buf;
		b->slots = n;
		b->capslots = cap;
	}
	struct slot *s = &b->slots[b->nslots];
	tt->slot[partition] = (int)b->nslots++;
	s->tt = tt;
	s->partition = partition;
	wbuf_reset(&s->buf);
	s->nends = 0;
	s->acked = 0;
	s->building = false;
	return s;
}

static int slot_close_batch(struct slot *s)
{
	if (!s->building)
		return 0;
	s->building = false;
	if (kbuilder_finish(&s->kb) < 0)
		return -1;
	if (s->nends == s->capends) {
		size_t cap = s->capends ? s->capends * 2 : 4;
		size_t *n = realloc(s->ends, cap * sizeof(*n));
		if (!n)
			return -1;
		s->ends = n;
		s->capends = cap;
	}
	s->ends[s->nends++] = s->buf.len;
	return 0;
}

static int32_t target_partition(const struct batches *b, struct ttopic *tt, int32_t source_partition,
				const struct krec *rec)
{
	if (source_partition < tt->n)
		return source_partition;
	/* Keyed records by the producer's hash, so a key stays in one partition and keeps its
	 * order (librdkafka treats an empty key as none). */
	if (rec->key_len > 0 || b->hash_keyless)
		return b->hash(NULL, rec->key_len > 0 ? rec->key : NULL,
			       rec->key_len > 0 ? (size_t)rec->key_len : 0, tt->n, NULL, NULL);
	return (int32_t)(tt->spread % (uint32_t)tt->n);
}

/* Copies the headers of rec except the origin ones into b->scratch; returns their count. */
static int32_t headers_without_origin(struct batches *b, const struct krec *rec)
{
	wbuf_reset(&b->scratch);
	size_t pos = 0, klen = strlen(ORIGIN_HEADER);
	struct khdr h;
	int32_t n = 0;
	while (khdr_next(rec, &pos, &h) == 1)
		if (h.key_len != klen || memcmp(h.key, ORIGIN_HEADER, klen) != 0) {
			wbuf_put(&b->scratch, h.raw, h.raw_len);
			n++;
		}
	return n;
}

/* Adds one record to its target slot. Returns 0, or -1 when the relay must stop. */
static int forward(struct batches *b, struct bpart *p, const struct krec *rec)
{
	const struct khdr *origin = NULL;
	struct khdr h, last;
	size_t pos = 0, klen = strlen(ORIGIN_HEADER);
	while (khdr_next(rec, &pos, &h) == 1)
		if (h.key_len == klen && memcmp(h.key, ORIGIN_HEADER, klen) == 0) {
			last = h;
			origin = &last;
		}
	char text[RELAY_ORIGIN_MAX];
	size_t tlen = 0;
	enum relay_origin_act act =
		relay_origin(b->r, p->rp, origin ? origin->value : NULL,
			     origin && origin->value_len > 0 ? (size_t)origin->value_len : 0,
			     origin != NULL, rec->offset, text, &tlen);
	if (act == RELAY_ORIGIN_SKIP) {
		p->round_skipped++;
		return 0;
	}
	struct ttopic *tt = p->tt ? p->tt : (p->tt = ttopic_get(b, p->rp->t));
	if (!tt)
		return -1;
	struct slot *s = slot_get(b, tt, target_partition(b, tt, p->rp->partition, rec));
	if (!s) {
		log_error("out of memory");
		return -1;
	}
	if (!s->building) {
		kbuilder_begin(&s->kb, &s->buf);
		s->building = true;
	}
	const uint8_t *hdrs = rec->headers;
	size_t hlen = rec->headers_len;
	int32_t nh = rec->nheaders;
	if (act == RELAY_ORIGIN_REPLACE) {
		nh = headers_without_origin(b, rec);
		hdrs = b->scratch.p;
		hlen = b->scratch.len;
	}
	bool add = act != RELAY_ORIGIN_KEEP;
	kbuilder_add(&s->kb, rec->ts, rec->key, rec->key_len, rec->value, rec->value_len, hdrs,
		     hlen, nh, add ? ORIGIN_HEADER : NULL, add ? klen : 0, (const uint8_t *)text,
		     tlen);
	if (s->buf.oom || (kbuilder_size(&s->kb) >= OUT_BATCH_BYTES && slot_close_batch(s) < 0)) {
		log_error("out of memory");
		return -1;
	}
	p->round_records++;
	p->round_bytes += (rec->key_len > 0 ? rec->key_len : 0) +
			  (rec->value_len > 0 ? rec->value_len : 0);
	if (rec->ts > p->round_max_ts)
		p->round_max_ts = rec->ts;
	if (b->nround_ts == b->capround_ts) {
		size_t cap = b->capround_ts ? b->capround_ts * 2 : 4096;
		int64_t *n = realloc(b->round_ts, cap * sizeof(*n));
		if (!n) {
			log_error("out of memory");
			return -1;
		}
		b->round_ts = n;
		b->capround_ts = cap;
	}
	b->round_ts[b->nround_ts++] = rec->ts;
	return 0;
}

/* Inflates a gzip batch's records into b->inflated and points a copy of the batch at them.
 * Returns 0 or -1 (err). */
static int inflate_batch(struct batches *b, const struct kbatch *in, struct kbatch *out,
			 char *err, size_t errlen)
{
	z_stream z = {0};
	if (inflateInit2(&z, 15 + 32) != Z_OK) {
		snprintf(err, errlen, "gzip: cannot start the decoder");
		return -1;
	}
	wbuf_reset(&b->inflated);
	z.next_in = (Bytef *)(uintptr_t)in->records;
	z.avail_in = (uInt)in->records_len;
	int rc = Z_OK;
	while (rc != Z_STREAM_END) {
		if (b->inflated.len >= INFLATE_MAX) {
			snprintf(err, errlen, "gzip: inflates beyond %d bytes", INFLATE_MAX);
			break;
		}
		size_t room = in->records_len * 4 + 4096;
		uint8_t *p = wbuf_room(&b->inflated, room);
		if (!p) {
			snprintf(err, errlen, "gzip: out of memory");
			break;
		}
		z.next_out = p;
		z.avail_out = (uInt)room;
		rc = inflate(&z, Z_NO_FLUSH);
		b->inflated.len += room - z.avail_out;
		if (rc != Z_OK && rc != Z_STREAM_END) {
			snprintf(err, errlen, "gzip: %s", z.msg ? z.msg : "corrupt data");
			break;
		}
		if (rc == Z_OK && z.avail_in == 0 && z.avail_out != 0) {
			snprintf(err, errlen, "gzip: data cut short");
			break;
		}
	}
	inflateEnd(&z);
	if (rc != Z_STREAM_END)
		return -1;
	*out = *in;
	out->attributes = (int16_t)(in->attributes & ~KBATCH_ATTR_COMPRESSION);
	out->records = b->inflated.p;
	out->records_len = b->inflated.len;
	return 0;
}

/* Transactions aborted in the fetched range, for read_committed: a transactional batch of a
 * producer is skipped from that producer's first aborted offset until its abort marker. */
struct aborts {
	struct kwire_aborted *a;
	int32_t n;
	int64_t *active; /* producer ids inside an aborted transaction */
	int32_t nactive;
};

static bool aborted_batch(struct aborts *ab, const struct kbatch *k)
{
	int64_t last = k->base_offset + k->last_offset_delta;
	for (int32_t i = 0; i < ab->n; i++)
		if (ab->a[i].first_offset <= last && ab->a[i].producer_id != INT64_MIN) {
			ab->active[ab->nactive++] = ab->a[i].producer_id;
			ab->a[i].producer_id = INT64_MIN; /* taken */
		}
	bool in = false;
	for (int32_t i = 0; i < ab->nactive; i++)
		if (ab->active[i] == k->producer_id) {
			in = true;
			if (k->attributes & KBATCH_ATTR_CONTROL)
				ab->active[i] = ab->active[--ab->nactive];
			break;
		}
	return in && (k->attributes & KBATCH_ATTR_TRANSACTIONAL);
}

/* Relays the records of one partition of a Fetch response into the round's slots. Returns 0,
 * -1 when the relay must stop, 1 when the batch path cannot go on (fallback). */
static int take_records(struct batches *b, struct bpart *p, const struct kwire_fetch_result *f)
{
	const char *topic = p->rp->t->name;
	int partition = (int)p->rp->partition;
	struct aborts ab = {0};
	int rc = 0;
	if (b->isolation && f->naborted > 0) {
		ab.a = malloc((size_t)f->naborted * sizeof(*ab.a));
		ab.active = malloc((size_t)f->naborted * sizeof(*ab.active));
		if (!ab.a || !ab.active) {
			log_error("out of memory");
			rc = -1;
			goto out;
		}
		for (int32_t i = 0; i < f->naborted; i++)
			kwire_aborted_at(f, i, &ab.a[i]);
		ab.n = f->naborted;
	}
	int64_t next = p->fetched_at;
	size_t pos = 0;
	struct kbatch k;
	char err[256];
	int got;
	while ((got = kbatch_next(f->records, f->records_len, &pos, &k, err, sizeof(err))) == 1) {
		int64_t last = k.base_offset + k.last_offset_delta;
		if (last < next)
			continue;
		if ((k.attributes & KBATCH_ATTR_CONTROL) || (ab.n && aborted_batch(&ab, &k))) {
			next = last + 1;
			continue;
		}
		int codec = k.attributes & KBATCH_ATTR_COMPRESSION;
		struct kbatch plain;
		if (codec == 1) {
			if (inflate_batch(b, &k, &plain, err, sizeof(err)) < 0) {
				log_error("source %s [%d] offset %" PRId64 ": %s; the batch is "
					  "fetched again",
					  topic, partition, k.base_offset, err);
				break;
			}
		} else if (codec) {
			static const char *const names[] = {"none", "gzip", "snappy", "lz4", "zstd"};
			log_info("source %s [%d] offset %" PRId64 ": records compressed with %s, "
				 "which the batch path does not decode; relaying through the "
				 "Kafka client from here on",
				 topic, partition, k.base_offset, codec < 5 ? names[codec] : "?");
			b->fallback = true;
			rc = 1;
			break;
		} else {
			plain = k;
		}
		size_t rpos = 0;
		struct krec rec;
		int r;
		while ((r = krec_next(&plain, &rpos, &rec, err, sizeof(err))) == 1) {
			if (rec.offset < next)
				continue;
			if (forward(b, p, &rec) < 0) {
				rc = -1;
				goto done;
			}
		}
		if (r < 0) {
			/* What came before is relayed; the rest is asked for again, and a batch
			 * that stays malformed stays visible in the log and the lag. */
			log_error("source %s [%d] batch at offset %" PRId64 ": %s", topic,
				  partition, k.base_offset, err);
			p->retry_at = now_mono_ms() + BACKOFF_MAX_MS;
			break;
		}
		next = last + 1;
	}
	if (got < 0) {
		log_error("source %s [%d] at offset %" PRId64 ": %s", topic, partition, next, err);
		p->retry_at = now_mono_ms() + BACKOFF_MAX_MS;
	}
done:
	p->round_next = next;
out:
	free(ab.a);
	free(ab.active);
	return rc;
}

struct fetch_ctx {
	struct batches *b;
	int32_t broker;
	int rc;
};

static int on_fetch_part(void *ctx, const struct kwire_fetch_result *f)
{
	struct fetch_ctx *c = ctx;
	struct batches *b = c->b;
	struct bpart *p = bpart_find(b, f->topic, f->topic_len, f->partition);
	if (!p || p->fetch_from != c->broker || p->in_round)
		return 0; /* revoked, or reassigned, while the Fetch was in flight */
	p->fetch_from = -1;
	switch (f->error) {
	case KERR_NONE:
		break;
	case KERR_OFFSET_OUT_OF_RANGE:
		log_warn("source %s [%d]: offset %" PRId64 " is out of range (log %s); starting "
			 "again from auto.offset.reset",
			 p->rp->t->name, (int)p->rp->partition, p->next,
			 f->high_watermark >= 0 && p->next > f->high_watermark ? "truncated"
									       : "deleted");
		p->reset = true;
		return 0;
	default:
		if (!kwire_retriable(f->error))
			log_error("source %s [%d]: fetch failed: %s; retrying", p->rp->t->name,
				  (int)p->rp->partition, kwire_error_name(f->error));
		p->retry_at = now_mono_ms() + BACKOFF_MIN_MS;
		b->src_meta_stale = true;
		return 0;
	}
	if (!f->records_len)
		return 0;
	p->in_round = true;
	p->round_next = p->fetched_at;
	p->round_records = p->round_skipped = 0;
	p->round_bytes = 0;
	p->round_max_ts = -1;
	b->round[b->nround++] = p;
	int rc = take_records(b, p, f);
	if (rc)
		c->rc = rc;
	return rc;
}

/* Produce results of one request. */
struct produce_ctx {
	struct batches *b;
	struct slot **sent; /* the slots whose next batch the request carried */
	size_t nsent;
	int fatal;
	bool refused; /* some partition answered with a retriable error */
};

static int on_produce_part(void *ctx, const struct kwire_produce_result *res)
{
	struct produce_ctx *c = ctx;
	for (size_t i = 0; i < c->nsent; i++) {
		struct slot *s = c->sent[i];
		if (!s)
			continue;
		const char *name = s->tt->t->target;
		if (s->partition != res->partition || strlen(name) != res->topic_len ||
		    memcmp(name, res->topic, res->topic_len) != 0)
			continue;
		c->sent[i] = NULL;
		if (res->error == KERR_NONE) {
			s->acked++;
		} else if (kwire_retriable(res->error)) {
			if (warn_due(&c->b->refused_warned_at))
				log_warn("target %s [%d]: %s; sending the batch again", name,
					 (int)s->partition, kwire_error_name(res->error));
			c->b->tgt_meta_stale = true;
			c->refused = true;
		} else {
			log_error("target %s [%d] refused a batch of records: %s", name,
				  (int)s->partition, kwire_error_name(res->error));
			c->fatal = 1;
		}
		return 0;
	}
	return 0;
}

/* Waits a backoff while the target cannot take the round. The consumer group is not served
 * meanwhile (as the client path's producer does not while its queue is full): a rebalance then
 * waits until the round is acknowledged and committed instead of taking its partitions away
 * with records on the way, which would send them all again. The group's max.poll.interval.ms
 * bounds how long that can last. Returns 0, or -1 when a stop was requested 30 s ago. */
static int round_pause(struct batches *b, int64_t started, int *backoff, int64_t *stop_seen)
{
	int64_t now = now_mono_ms();
	if (!lifecycle_running()) {
		if (!*stop_seen)
			*stop_seen = now;
		else if (now - *stop_seen > 30000)
			return -1;
	}
	if (warn_due(&b->warned_at))
		log_warn("waiting for the target to acknowledge %ld records (%lld s)",
			 (long)b->nround_ts, (long long)(now - started) / 1000);
	atomic_fetch_add(&b->r->batch_retries, 1);
	backoff_next(backoff);
	struct timespec ts = {*backoff / 1000, (long)(*backoff % 1000) * 1000000L};
	nanosleep(&ts, NULL);
	if (b->tgt_meta_stale)
		target_refresh(b);
	return 0;
}

/* Sends every slot's batches, the next of each slot in every request, until all are
 * acknowledged. Returns 0, or -1 when the relay must stop (the round is then not committed). */
static int round_produce(struct batches *b)
{
	for (size_t i = 0; i < b->nslots; i++)
		if (slot_close_batch(&b->slots[i]) < 0) {
			log_error("out of memory");
			return -1;
		}
	struct slot **sent = malloc((b->nslots ? b->nslots : 1) * sizeof(*sent));
	struct broker **waiting = NULL;
	struct kwire_produce_topic *topics = malloc((b->nslots + 1) * sizeof(*topics));
	struct kwire_produce_part *pp = malloc((b->nslots + 1) * sizeof(*pp));
	int rc = -1, backoff = 0;
	int64_t started = now_mono_ms(), stop_seen = 0;
	char err[512];
	if (!sent || !topics || !pp) {
		log_error("out of memory");
		goto out;
	}
	for (;;) {
		if (b->tgt_meta_stale)
			target_refresh(b);
		/* Metadata may have named new brokers. */
		struct broker **w = realloc(waiting, (b->tgt.n + 1) * sizeof(*w));
		if (!w) {
			log_error("out of memory");
			goto out;
		}
		waiting = w;
		bool pending = false, trouble = false;
		size_t nwaiting = 0;
		/* One request per target broker, carrying the next batch of each of its slots. */
		for (size_t k = 0; k < b->tgt.n; k++) {
			struct broker *br = b->tgt.b[k];
			size_t nsent = 0, ntopics = 0;
			for (size_t i = 0; i < b->nslots; i++) {
				struct slot *s = &b->slots[i];
				if (s->acked >= s->nends || s->tt->leader[s->partition] != br->id)
					continue;
				sent[nsent] = s;
				pp[nsent] = (struct kwire_produce_part){
					.partition = s->partition,
					.records = s->buf.p + (s->acked ? s->ends[s->acked - 1] : 0),
					.len = s->ends[s->acked] -
					       (s->acked ? s->ends[s->acked - 1] : 0)};
				if (!ntopics || topics[ntopics - 1].topic != s->tt->t->target)
					topics[ntopics++] = (struct kwire_produce_topic){
						.topic = s->tt->t->target,
						.parts = &pp[nsent]};
				topics[ntopics - 1].nparts++;
				nsent++;
			}
			if (!nsent)
				continue;
			pending = true;
			if (broker_connect(&b->tgt, br) < 0) {
				trouble = true;
				continue;
			}
			int32_t corr = ++b->corr;
			if (kwire_produce_request(&b->req, corr, CLIENT_ID, b->acks,
						  b->request_timeout_ms, topics,
						  (int)ntopics) < 0) {
				log_error("out of memory");
				goto out;
			}
			if (conn_send(&br->conn, &b->req, corr, b->request_timeout_ms, err,
				      sizeof(err)) < 0) {
				broker_failed(b, &b->tgt, br, err);
				trouble = true;
				continue;
			}
			waiting[nwaiting++] = br;
		}
		/* Slots whose leader is unknown wait for the next metadata. */
		for (size_t i = 0; i < b->nslots; i++) {
			struct slot *s = &b->slots[i];
			if (s->acked < s->nends && !broker_find(&b->tgt, s->tt->leader[s->partition])) {
				pending = trouble = true;
				b->tgt_meta_stale = true;
			}
		}
		if (!pending) {
			rc = 0;
			goto out;
		}
		for (size_t k = 0; k < nwaiting; k++) {
			struct broker *br = waiting[k];
			const uint8_t *body;
			size_t len;
			if (conn_recv(&br->conn, &body, &len, 16 << 20, b->request_timeout_ms + 5000,
				      err, sizeof(err)) < 0) {
				broker_failed(b, &b->tgt, br, err);
				trouble = true;
				continue;
			}
			size_t nsent = 0;
			for (size_t i = 0; i < b->nslots; i++) {
				struct slot *s = &b->slots[i];
				if (s->acked < s->nends && s->tt->leader[s->partition] == br->id)
					sent[nsent++] = s;
			}
			struct produce_ctx pc = {b, sent, nsent, 0, false};
			if (kwire_produce_response(body, len, on_produce_part, &pc, err,
						   sizeof(err)) < 0) {
				broker_failed(b, &b->tgt, br, err);
				trouble = true;
				continue;
			}
			if (pc.fatal) {
				relay_fail(b->r);
				goto out;
			}
			for (size_t i = 0; i < nsent; i++)
				if (sent[i])
					trouble = true; /* not answered: sent again */
			if (pc.refused)
				trouble = true;
		}
		if (trouble && round_pause(b, started, &backoff, &stop_seen) < 0)
			goto out;
	}
out:
	free(sent);
	free(waiting);
	free(topics);
	free(pp);
	return rc;
}

/* The round's records are on the target: their partitions move on. */
static void round_done(struct batches *b)
{
	int64_t now = now_wall_ms();
	for (size_t i = 0; i < b->nround_ts; i++)
		if (b->round_ts[i] > 0)
			relay_observe_latency(b->r, b->round_ts[i], now);
	for (size_t i = 0; i < b->nround; i++) {
		struct bpart *p = b->round[i];
		struct relay_part *rp = p->rp;
		long read = p->round_records + p->round_skipped;
		atomic_fetch_add(&rp->produced, p->round_records);
		p->next = p->round_next;
		atomic_store(&rp->next_offset, p->next);
		if (atomic_load(&rp->acked_ts) < 0 && p->round_max_ts > 0)
			atomic_store(&rp->acked_ts, p->round_max_ts - 1);
		if (p->round_records)
			relay_count_acked(b->r, rp, p->round_records, p->round_bytes,
					  p->round_max_ts);
		if (p->round_skipped)
			metric_add(rp->t->skipped, (double)p->round_skipped);
		metric_add(rp->t->records_in, (double)read);
		b->since_commit += read;
	}
	relay_publish(b->r);
}

static void round_reset(struct batches *b)
{
	for (size_t i = 0; i < b->nround; i++)
		b->round[i]->in_round = false;
	b->nround = 0;
	b->nround_ts = 0;
	for (size_t i = 0; i < b->nslots; i++) {
		struct slot *s = &b->slots[i];
		s->tt->slot[s->partition] = -1;
		s->tt->spread++;
		s->building = false;
		/* A burst may have grown a slot's buffer; steady traffic keeps its memory. */
		if (s->buf.cap > 4 * OUT_BATCH_BYTES)
			wbuf_free(&s->buf);
	}
	b->nslots = 0;
	atomic_store(&b->r->batch_inflight, 0);
}

/* Relays one Fetch response. Returns 0, or -1 when the relay must stop, 1 to fall back. */
static int round_run(struct batches *b, struct broker *br, const uint8_t *body, size_t len)
{
	struct bpart **round = realloc(b->round, (b->nparts + 1) * sizeof(*round));
	if (!round) {
		log_error("out of memory");
		return -1;
	}
	b->round = round;
	struct fetch_ctx fc = {b, br->id, 0};
	char err[512];
	int rc = kwire_fetch_response(body, len, on_fetch_part, &fc, err, sizeof(err));
	for (size_t i = 0; i < b->nparts; i++)
		if (b->parts[i]->fetch_from == br->id)
			b->parts[i]->fetch_from = -1;
	if (rc < 0 && !fc.rc) {
		broker_failed(b, &b->src, br, err);
		round_reset(b);
		return 0;
	}
	if (fc.rc < 0) {
		round_reset(b);
		return -1;
	}
	/* The next Fetch goes out before this round is produced, so the two round trips overlap
	 * (reading positions move on; committed ones only once the target acknowledged). */
	for (size_t i = 0; i < b->nround; i++)
		b->round[i]->fetch_pos = b->round[i]->round_next;
	if (!fc.rc)
		fetch_send(b, br);
	/* On fallback, what was read before the undecodable batch is relayed first. */
	atomic_store(&b->r->batch_inflight, (long)b->nround_ts);
	if (round_produce(b) < 0) {
		round_reset(b);
		return -1;
	}
	round_done(b);
	round_reset(b);
	return fc.rc > 0 ? 1 : 0;
}

/* ---- fetching ---- */

static void fetch_send(struct batches *b, struct broker *br)
{
	int64_t now = now_mono_ms();
	struct kwire_fetch_part *fp = malloc((b->nparts + 1) * sizeof(*fp));
	struct kwire_fetch_topic *ft = malloc((b->nparts + 1) * sizeof(*ft));
	struct bpart **asked = malloc((b->nparts + 1) * sizeof(*asked));
	size_t np = 0, nt = 0;
	if (!fp || !ft || !asked)
		goto out;
	/* Partitions of one topic next to each other, as the request groups them. */
	for (size_t i = 0; i < b->nparts; i++) {
		struct bpart *p = b->parts[i];
		if (p->leader != br->id || p->reset || p->fetch_pos < 0 || p->fetch_from >= 0 ||
		    now < p->retry_at)
			continue;
		bool placed = false;
		for (size_t t = 0; t < nt && !placed; t++)
			if (strcmp(ft[t].topic, p->rp->t->name) == 0)
				placed = true;
		if (placed)
			continue;
		ft[nt] = (struct kwire_fetch_topic){.topic = p->rp->t->name, .parts = &fp[np]};
		for (size_t j = i; j < b->nparts; j++) {
			struct bpart *q = b->parts[j];
			if (q->leader != br->id || q->reset || q->fetch_pos < 0 || q->fetch_from >= 0 ||
			    now < q->retry_at || strcmp(q->rp->t->name, p->rp->t->name) != 0)
				continue;
			fp[np] = (struct kwire_fetch_part){q->rp->partition, q->fetch_pos};
			asked[np++] = q;
			ft[nt].nparts++;
		}
		nt++;
	}
	if (!np || broker_connect(&b->src, br) < 0)
		goto out;
	struct kwire_fetch_req q = {.max_wait_ms = b->fetch_wait_ms,
				    .min_bytes = b->fetch_min_bytes,
				    .max_bytes = b->fetch_max_bytes,
				    .part_max_bytes = b->part_max_bytes,
				    .isolation = b->isolation,
				    .topics = ft,
				    .ntopics = (int)nt};
	int32_t corr = ++b->corr;
	char err[512];
	if (kwire_fetch_request(&b->req, corr, CLIENT_ID, &q) < 0) {
		log_error("out of memory");
		goto out;
	}
	if (conn_send(&br->conn, &b->req, corr, b->request_timeout_ms, err, sizeof(err)) < 0) {
		broker_failed(b, &b->src, br, err);
		goto out;
	}
	for (size_t i = 0; i < np; i++) {
		asked[i]->fetch_from = br->id;
		asked[i]->fetched_at = asked[i]->fetch_pos;
	}
	br->fetching = true;
	br->fetch_deadline = now + b->fetch_wait_ms + b->request_timeout_ms;
out:
	free(fp);
	free(ft);
	free(asked);
}

/* Waits for Fetch responses (at most wait_ms) and relays those that came. Returns 0, -1 to
 * stop, 1 to fall back. */
static int fetch_serve(struct batches *b, int wait_ms)
{
	struct pollfd *fds = malloc((b->src.n + 1) * sizeof(*fds));
	struct broker **who = malloc((b->src.n + 1) * sizeof(*who));
	int rc = 0;
	nfds_t n = 0;
	if (!fds || !who) {
		log_error("out of memory");
		rc = -1;
		goto out;
	}
	int64_t now = now_mono_ms();
	for (size_t i = 0; i < b->src.n; i++) {
		struct broker *br = b->src.b[i];
		if (!br->fetching)
			continue;
		if (now > br->fetch_deadline) {
			broker_failed(b, &b->src, br, "no answer to a fetch in time");
			continue;
		}
		fds[n] = (struct pollfd){.fd = br->conn.fd, .events = POLLIN};
		who[n++] = br;
	}
	if (!n) {
		struct timespec ts = {0, (long)wait_ms * 1000000L};
		nanosleep(&ts, NULL);
		goto out;
	}
	if (poll(fds, n, wait_ms) <= 0)
		goto out;
	char err[512];
	size_t max = (size_t)b->fetch_max_bytes + (size_t)b->part_max_bytes + RESPONSE_SLACK;
	for (nfds_t i = 0; i < n && rc == 0; i++) {
		if (!fds[i].revents)
			continue;
		struct broker *br = who[i];
		const uint8_t *body;
		size_t len;
		br->fetching = false;
		if (conn_recv(&br->conn, &body, &len, max, b->request_timeout_ms, err,
			      sizeof(err)) < 0) {
			broker_failed(b, &b->src, br, err);
			for (size_t j = 0; j < b->nparts; j++)
				if (b->parts[j]->fetch_from == br->id)
					b->parts[j]->fetch_from = -1;
			continue;
		}
		rc = round_run(b, br, body, len);
	}
out:
	free(fds);
	free(who);
	return rc;
}

/* ---- lifetime ---- */

static bool plaintext(rd_kafka_t *rk)
{
	return conf_is(rk, "security.protocol", "plaintext");
}

static void batches_free(struct batches *b)
{
	brokers_free(&b->src);
	brokers_free(&b->tgt);
	for (size_t i = 0; i < b->nparts; i++)
		free(b->parts[i]);
	free(b->parts);
	for (size_t i = 0; i < b->ntts; i++) {
		free(b->tts[i]->leader);
		free(b->tts[i]->slot);
		free(b->tts[i]);
	}
	free(b->tts);
	for (size_t i = 0; i < b->capslots; i++) {
		wbuf_free(&b->slots[i].buf);
		free(b->slots[i].ends);
	}
	free(b->slots);
	free(b->round);
	free(b->round_ts);
	wbuf_free(&b->req);
	wbuf_free(&b->scratch);
	wbuf_free(&b->inflated);
}

int batches_run(struct relay *r, const struct batches_config *cfg)
{
	struct batches b = {.r = r, .cfg = cfg, .src = {.side = "source"}, .tgt = {.side = "target"}};
	char err[512];
	int status = 1;
	struct kafka_consumer_hooks hooks = {
		.ctx = &b, .on_assign = on_assign, .on_revoke = on_revoke, .assign_paused = true};
	b.producer = kafka_producer_new_with(cfg->target, "target.", cfg->target_defaults, NULL,
					     NULL, err, sizeof(err));
	if (b.producer)
		b.consumer = kafka_consumer_new_with(cfg->source, "source.", cfg->source_defaults,
						     cfg->group, cfg->topics, &hooks, err,
						     sizeof(err));
	if (!b.producer || !b.consumer) {
		log_error("%s", err);
		goto out;
	}
	b.crk = kafka_consumer_handle(b.consumer);
	b.prk = kafka_producer_handle(b.producer);
	if (!plaintext(b.crk) || !plaintext(b.prk)) {
		log_info("a cluster is not reached in plaintext: records go through the Kafka "
			 "client");
		status = BATCHES_FALLBACK;
		goto out;
	}
	if (!partitioner_read(&b)) {
		status = BATCHES_FALLBACK;
		goto out;
	}
	settings_read(&b);
	r->batch_path = true;
	if (relay_attach_clients(r, b.consumer, b.producer, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	metrics_set_ready(true);
	b.next_commit = now_mono_ms() + cfg->checkpoint_ms;
	b.next_tgt_refresh = now_mono_ms() + r->o.refresh_ms;
	int rc = 0;
	while (lifecycle_running() && rc == 0 && !relay_failed(r)) {
		serve_consumer(&b);
		if (kafka_consumer_failed(b.consumer))
			break;
		resolve_resets(&b);
		if (b.src_meta_stale)
			source_refresh(&b);
		if (now_mono_ms() >= b.next_tgt_refresh)
			target_refresh(&b);
		for (size_t i = 0; i < b.src.n; i++)
			if (!b.src.b[i]->fetching)
				fetch_send(&b, b.src.b[i]);
		int64_t wait = b.next_commit - now_mono_ms();
		rc = fetch_serve(&b, wait < 0 ? 0 : wait > 100 ? 100 : (int)wait);
		if (now_mono_ms() >= b.next_commit ||
		    b.since_commit >= cfg->checkpoint_records)
			commit(&b, b.parts, b.nparts, false);
	}
	commit(&b, b.parts, b.nparts, true);
	if (rc > 0)
		status = BATCHES_FALLBACK;
	else
		status = rc < 0 || relay_failed(r) || kafka_consumer_failed(b.consumer) ? 1 : 0;
out:
	relay_detach(r);
	/* Leaving the group runs on_revoke, which commits once more. */
	kafka_consumer_free(b.consumer);
	for (size_t i = 0; i < b.nparts; i++)
		atomic_store(&b.parts[i]->rp->assigned, false);
	if (b.producer)
		kafka_producer_free(b.producer);
	r->producer = NULL;
	r->consumer = NULL;
	r->batch_path = false;
	batches_free(&b);
	return status;
}
