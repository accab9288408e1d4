/* Input, outputs and checkpoints for the services (see stream.h for the delivery rule). */
#include "stream.h"

#include "ack_epochs.h"
#include "buf.h"
#include "jsonl.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct position {
	char *topic;
	int32_t partition;
	int64_t next_offset;	   /* -1 until a record was read */
	int64_t committed;	   /* last offset committed (or found committed) */
	int64_t snapped;	   /* last offset taken into a background checkpoint */
	char committed_meta[256];  /* metadata of that commit */
	struct metric *records_in; /* cached counter */
};

struct stream_out {
	struct stream *s;
	char *name;
	enum rec_type type;
	enum { OUT_KAFKA, OUT_FILE } kind;
	FILE *f;
	bool close_file;
	struct metric *records_out;
	struct stream_out *next;
};

/* A background checkpoint: the offsets to commit once its epoch is acknowledged. */
struct snapshot {
	uint64_t epoch;
	rd_kafka_topic_partition_list_t *offs;
	int64_t taken; /* monotonic ms */
};

struct stream {
	struct stream_config cfg;
	struct stream_hooks hooks;
	struct kafka_consumer *consumer;
	struct kafka_producer *producer;
	struct jsonl_reader reader;
	bool stdin_input;
	struct stream_out *outs;
	struct position *pos;
	size_t npos;
	int64_t last_checkpoint;
	long long since_checkpoint;
	bool failed;
	bool in_checkpoint;
	/* A stream without hooks takes its periodic checkpoints in the background: records read
	 * and produced after a checkpoint began go on flowing while Kafka acknowledges the ones
	 * before it, and its offsets are committed once they all are. Services with hooks need
	 * the checkpoint to happen at one moment (their state, their database), so they wait. */
	bool pipelined;
	struct ack_epochs epochs;
	struct snapshot snaps[ACK_EPOCHS_RING];
	size_t nsnaps;
	/* The record handed out by the last stream_poll, or the batch of stream_poll_batch. */
	rd_kafka_message_t *cur_kmsg;
	rd_kafka_message_t **batch;
	size_t nbatch, batch_cap;
	struct position *last_pos; /* records arrive in runs of one partition */
	json_t *cur_rec;
	struct stream_msg msg;
	struct buf scratch;
	struct metric *m_decode_errors, *m_dead_letters, *m_checkpoint, *m_commit_fail, *m_stdin_in;
};

static bool has_brokers(const struct stream *s)
{
	return s->cfg.brokers && *s->cfg.brokers;
}

void origin_format(const struct origin *o, char *out, size_t outlen)
{
	snprintf(out, outlen, "%s/%s/%" PRId32 "/%" PRId64, o->cluster, o->topic, o->partition,
		 o->offset);
}

int origin_parse(const char *text, struct origin *o)
{
	const char *a = strchr(text, '/');
	const char *b = a ? strchr(a + 1, '/') : NULL;
	const char *c = b ? strchr(b + 1, '/') : NULL;
	if (!a || !b || !c || a == text || b == a + 1 || (size_t)(a - text) >= sizeof(o->cluster) ||
	    (size_t)(b - a - 1) >= sizeof(o->topic))
		return -1;
	char *end;
	errno = 0;
	long part = strtol(b + 1, &end, 10);
	if (end != c || errno || part < -1 || part > INT32_MAX)
		return -1;
	long long off = strtoll(c + 1, &end, 10);
	if (*end || errno || end == c + 1)
		return -1;
	snprintf(o->cluster, sizeof(o->cluster), "%.*s", (int)(a - text), text);
	snprintf(o->topic, sizeof(o->topic), "%.*s", (int)(b - a - 1), a + 1);
	o->partition = (int32_t)part;
	o->offset = off;
	return 0;
}

void stream_msg_origin(const struct stream *s, const struct stream_msg *m, struct origin *o)
{
	char hdr[512];
	if (m->kmsg && kafka_header_get(m->kmsg, ORIGIN_HEADER, hdr, sizeof(hdr)) &&
	    origin_parse(hdr, o) == 0)
		return;
	snprintf(o->cluster, sizeof(o->cluster), "%s",
		 m->kmsg ? (s->cfg.cluster ? s->cfg.cluster : "local") : "-");
	snprintf(o->topic, sizeof(o->topic), "%s", m->topic);
	o->partition = m->partition;
	o->offset = m->offset;
}

/* ---- positions ---- */

static struct position *pos_find(struct stream *s, const char *topic, int32_t partition)
{
	for (size_t i = 0; i < s->npos; i++)
		if (s->pos[i].partition == partition && strcmp(s->pos[i].topic, topic) == 0)
			return &s->pos[i];
	return NULL;
}

static struct position *pos_add(struct stream *s, const char *topic, int32_t partition)
{
	struct position *p = pos_find(s, topic, partition);
	if (p)
		return p;
	struct position *n = realloc(s->pos, (s->npos + 1) * sizeof(*n));
	if (!n)
		return NULL;
	s->pos = n;
	s->last_pos = NULL;
	p = &s->pos[s->npos];
	*p = (struct position){.topic = strdup(topic), .partition = partition,
			       .next_offset = -1, .committed = -1, .snapped = -1};
	if (!p->topic)
		return NULL;
	char labels[300];
	metrics_label(labels, sizeof(labels), "topic", topic);
	p->records_in = metrics_counter("iotpipe_records_in_total", "Records read from the input",
					labels);
	s->npos++;
	return p;
}

static void pos_remove(struct stream *s, const char *topic, int32_t partition)
{
	struct position *p = pos_find(s, topic, partition);
	if (!p)
		return;
	char labels[300], pl[32];
	metrics_label(labels, sizeof(labels) - 40, "topic", topic);
	snprintf(pl, sizeof(pl), ",partition=\"%d\"", (int)partition);
	strncat(labels, pl, sizeof(labels) - strlen(labels) - 1);
	metric_set(metrics_gauge("iotpipe_consumer_lag", "Records behind the partition's end",
				 labels),
		   0);
	free(p->topic);
	*p = s->pos[--s->npos];
	s->last_pos = NULL;
}

/* ---- checkpoints ---- */

static void update_lag(struct stream *s, struct position *p)
{
	int64_t lo, hi;
	if (!s->consumer || p->next_offset < 0 ||
	    rd_kafka_get_watermark_offsets(kafka_consumer_handle(s->consumer), p->topic,
					   p->partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
	    hi < 0)
		return;
	char labels[300], pl[32];
	metrics_label(labels, sizeof(labels) - 40, "topic", p->topic);
	snprintf(pl, sizeof(pl), ",partition=\"%d\"", (int)p->partition);
	strncat(labels, pl, sizeof(labels) - strlen(labels) - 1);
	metric_set(metrics_gauge("iotpipe_consumer_lag", "Records behind the partition's end",
				 labels),
		   (double)(hi > p->next_offset ? hi - p->next_offset : 0));
}

static int commit_positions(struct stream *s)
{
	if (!s->consumer)
		return 0;
	rd_kafka_topic_partition_list_t *offs = rd_kafka_topic_partition_list_new((int)s->npos);
	int64_t *chosen = calloc(s->npos + 1, sizeof(*chosen));
	char(*metas)[256] = calloc(s->npos + 1, sizeof(*metas));
	int rc = 0;
	if (!chosen || !metas) {
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < s->npos; i++) {
		struct position *p = &s->pos[i];
		chosen[i] = -1;
		if (p->next_offset < 0)
			continue;
		int64_t off = p->next_offset;
		if (s->hooks.commit_position)
			off = s->hooks.commit_position(s->hooks.ctx, p->topic, p->partition,
						       p->next_offset, metas[i], sizeof(metas[i]));
		update_lag(s, p);
		if (off < 0 || (off == p->committed && strcmp(metas[i], p->committed_meta) == 0))
			continue;
		rd_kafka_topic_partition_t *e =
			rd_kafka_topic_partition_list_add(offs, p->topic, p->partition);
		e->offset = off;
		if (metas[i][0]) {
			/* The list frees metadata on destroy, so it gets its own copy. */
			e->metadata = strdup(metas[i]);
			e->metadata_size = e->metadata ? strlen(metas[i]) : 0;
		}
		chosen[i] = off;
	}
	if (offs->cnt && kafka_consumer_commit(s->consumer, offs) < 0) {
		metric_add(s->m_commit_fail, 1);
		rc = -1;
		goto out;
	}
	for (size_t i = 0; i < s->npos; i++)
		if (chosen[i] >= 0) {
			s->pos[i].committed = chosen[i];
			snprintf(s->pos[i].committed_meta, sizeof(s->pos[i].committed_meta), "%s",
				 metas[i]);
		}
out:
	free(chosen);
	free(metas);
	rd_kafka_topic_partition_list_destroy(offs);
	return rc;
}

static void snapshots_drop(struct stream *s)
{
	while (s->nsnaps)
		rd_kafka_topic_partition_list_destroy(s->snaps[--s->nsnaps].offs);
}

static void delivery_failed(struct stream *s)
{
	log_error("records were not delivered: input offsets stay uncommitted; stopping so a "
		  "restart reads them again");
	s->failed = true;
	snapshots_drop(s);
	lifecycle_request_stop();
}

/* wait: first wait until the producer has nothing in flight. Without it (acked_positions) the
 * commit_position hook has the last word on what is acknowledged; a delivery failure still
 * stops the stream. */
static int checkpoint(struct stream *s, bool wait)
{
	if (s->in_checkpoint)
		return 0;
	s->in_checkpoint = true;
	int64_t start = now_mono_ms();
	int rc = 0;
	if (!wait && s->producer) {
		kafka_producer_poll(s->producer, 0);
		if (kafka_producer_failed_total(s->producer) > 0) {
			delivery_failed(s);
			rc = -1;
			goto out;
		}
	} else if (s->producer && kafka_producer_flush(s->producer, -1) < 0) {
		if (kafka_producer_failed_total(s->producer) > 0)
			delivery_failed(s);
		rc = -1;
		goto out;
	}
	/* Everything produced is acknowledged: the offsets below supersede any background
	 * checkpoint still waiting. */
	snapshots_drop(s);
	for (struct stream_out *o = s->outs; o; o = o->next)
		if (o->f && fflush(o->f) != 0) {
			log_error("cannot write %s: %s", o->name, strerror(errno));
			s->failed = true;
			rc = -1;
			goto out;
		}
	if (s->hooks.flush && s->hooks.flush(s->hooks.ctx) < 0) {
		rc = -1;
		goto out;
	}
	/* A record that could not even be queued (stream_put failed) was never written: its
	 * input offset must not be committed. */
	if (s->failed) {
		rc = -1;
		goto out;
	}
	rc = commit_positions(s);
	metric_observe(s->m_checkpoint, (double)(now_mono_ms() - start) / 1000.0);
out:
	s->last_checkpoint = now_mono_ms();
	s->since_checkpoint = 0;
	s->in_checkpoint = false;
	return rc;
}

/* Commits the background checkpoints whose records were all acknowledged, oldest first. */
static void snapshots_finish(struct stream *s)
{
	while (s->nsnaps && ack_epochs_complete(&s->epochs, s->snaps[0].epoch)) {
		if (kafka_producer_failed_total(s->producer) > 0) {
			delivery_failed(s);
			return;
		}
		struct snapshot sn = s->snaps[0];
		memmove(&s->snaps[0], &s->snaps[1], --s->nsnaps * sizeof(s->snaps[0]));
		if (!s->failed && kafka_consumer_commit_async(s->consumer, sn.offs) == 0) {
			for (int i = 0; i < sn.offs->cnt; i++) {
				struct position *p = pos_find(s, sn.offs->elems[i].topic,
							      sn.offs->elems[i].partition);
				if (p) {
					p->committed = sn.offs->elems[i].offset;
					p->committed_meta[0] = 0;
				}
			}
			metric_observe(s->m_checkpoint, (double)(now_mono_ms() - sn.taken) / 1000.0);
		} else if (!s->failed) {
			metric_add(s->m_commit_fail, 1);
		}
		rd_kafka_topic_partition_list_destroy(sn.offs);
	}
}

/* Starts a background checkpoint of the offsets read so far. Waits only when the epochs
 * still waiting for Kafka fill the ring (Kafka far behind or away), as a flush would. */
static void snapshot_begin(struct stream *s)
{
	s->last_checkpoint = now_mono_ms();
	s->since_checkpoint = 0;
	if (s->failed)
		return;
	rd_kafka_topic_partition_list_t *offs = NULL;
	for (size_t i = 0; i < s->npos; i++) {
		struct position *p = &s->pos[i];
		update_lag(s, p);
		if (p->next_offset < 0 || p->next_offset == p->snapped ||
		    p->next_offset == p->committed)
			continue;
		if (!offs && !(offs = rd_kafka_topic_partition_list_new((int)s->npos)))
			return; /* out of memory: the next checkpoint tries again */
		rd_kafka_topic_partition_list_add(offs, p->topic, p->partition)->offset =
			p->next_offset;
		p->snapped = p->next_offset;
	}
	if (!offs)
		return;
	while (!ack_epochs_can_close(&s->epochs) && !s->failed) {
		kafka_producer_poll(s->producer, 50);
		snapshots_finish(s);
		if (!lifecycle_running()) {
			/* Stopping: the final checkpoint waits for everything anyway. */
			rd_kafka_topic_partition_list_destroy(offs);
			return;
		}
	}
	if (s->failed) {
		rd_kafka_topic_partition_list_destroy(offs);
		return;
	}
	s->snaps[s->nsnaps++] = (struct snapshot){.epoch = ack_epochs_close(&s->epochs),
						  .offs = offs, .taken = now_mono_ms()};
}

static void *output_tag(struct stream *s)
{
	return s->pipelined ? ack_epochs_tag(&s->epochs) : NULL;
}

static void on_output_delivery(void *ctx, const rd_kafka_message_t *m)
{
	struct stream *s = ctx;
	ack_epochs_done(&s->epochs, m->_private);
}

int stream_checkpoint(struct stream *s)
{
	return checkpoint(s, true);
}

/* now: the caller's clock reading, which it also uses for its poll deadline (one read per
 * record, not two). Returns true when a checkpoint ran (the clock has moved on). */
static bool checkpoint_if_due(struct stream *s, int64_t now)
{
	if (s->nsnaps)
		snapshots_finish(s);
	if (s->since_checkpoint < s->cfg.checkpoint_records &&
	    now - s->last_checkpoint < s->cfg.checkpoint_ms)
		return false;
	if (s->pipelined)
		snapshot_begin(s);
	else
		checkpoint(s, !s->cfg.acked_positions);
	return true;
}

/* ---- rebalance ---- */

static void on_assign(void *ctx, const rd_kafka_topic_partition_list_t *parts)
{
	struct stream *s = ctx;
	for (int i = 0; i < parts->cnt; i++) {
		const rd_kafka_topic_partition_t *e = &parts->elems[i];
		struct position *p = pos_add(s, e->topic, e->partition);
		char meta[256] = "";
		if (e->metadata && e->metadata_size)
			snprintf(meta, sizeof(meta), "%.*s", (int)e->metadata_size,
				 (const char *)e->metadata);
		if (p) {
			p->committed = e->offset;
			snprintf(p->committed_meta, sizeof(p->committed_meta), "%s", meta);
		} else if (s->batch) {
			/* stream_poll_batch drops records of partitions it does not know (they may
			 * have been revoked while the batch was taken), so this one would never be
			 * read: stop rather than skip it silently. */
			log_error("%s [%d]: out of memory for its position; stopping", e->topic,
				  (int)e->partition);
			s->failed = true;
			lifecycle_request_stop();
		}
		if (s->hooks.on_assign)
			s->hooks.on_assign(s->hooks.ctx, e->topic, e->partition, e->offset, meta);
	}
}

static void on_revoke(void *ctx, const rd_kafka_topic_partition_list_t *parts)
{
	struct stream *s = ctx;
	stream_checkpoint(s);
	for (int i = 0; i < parts->cnt; i++) {
		if (s->hooks.on_revoke)
			s->hooks.on_revoke(s->hooks.ctx, parts->elems[i].topic,
					   parts->elems[i].partition);
		pos_remove(s, parts->elems[i].topic, parts->elems[i].partition);
	}
}

/* ---- construction ---- */

struct stream *stream_new(const struct stream_config *cfg, const struct stream_hooks *hooks,
			  char *err, size_t errlen)
{
	struct stream *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	s->cfg = *cfg;
	if (s->cfg.checkpoint_ms <= 0)
		s->cfg.checkpoint_ms = 1000;
	if (s->cfg.checkpoint_records <= 0)
		s->cfg.checkpoint_records = 50000;
	if (!s->cfg.max_line)
		s->cfg.max_line = 1 << 20;
	if (hooks)
		s->hooks = *hooks;
	s->last_checkpoint = now_mono_ms();
	s->m_decode_errors = metrics_counter("iotpipe_input_errors_total",
					     "Input records that could not be decoded", NULL);
	s->m_dead_letters = metrics_counter("iotpipe_dead_letters_total",
					    "Undecodable input records sent to the dead-letter topic",
					    NULL);
	s->m_checkpoint = metrics_histogram(
		"iotpipe_checkpoint_seconds",
		"Time to get a batch's outputs acknowledged and its offsets committed", NULL,
		metrics_latency_buckets, metrics_latency_nbuckets);
	s->m_commit_fail = metrics_counter("iotpipe_commit_failures_total",
					   "Offset commits that failed (records will be re-read)",
					   NULL);
	if (!cfg->in || !*cfg->in) {
		snprintf(err, errlen, "no input given");
		goto fail;
	}
	if (strcmp(cfg->in, "-") == 0) {
		if (cfg->in_type == REC_UNKNOWN && !cfg->raw_input) {
			snprintf(err, errlen, "reading stdin needs the record type");
			goto fail;
		}
		s->stdin_input = true;
		jsonl_reader_init(&s->reader, stdin, s->cfg.max_line);
		s->m_stdin_in = metrics_counter("iotpipe_records_in_total",
						"Records read from the input", "topic=\"-\"");
	} else {
		if (!has_brokers(s)) {
			snprintf(err, errlen, "input topic %s needs Kafka brokers (-b)", cfg->in);
			goto fail;
		}
		struct kafka_consumer_hooks kh = {s, on_assign, on_revoke};
		s->consumer = kafka_consumer_new_with(cfg->brokers, cfg->in_prefix,
						      cfg->in_defaults, cfg->group, cfg->in, &kh,
						      err, errlen);
		if (!s->consumer)
			goto fail;
	}
	if (has_brokers(s)) {
		const char *ob = cfg->out_brokers && *cfg->out_brokers ? cfg->out_brokers
								       : cfg->brokers;
		s->pipelined = s->consumer && !cfg->on_delivery && !s->hooks.on_assign &&
			       !s->hooks.on_revoke && !s->hooks.commit_position && !s->hooks.flush;
		s->producer = kafka_producer_new_with(
			ob, cfg->out_prefix, cfg->out_defaults,
			s->pipelined ? on_output_delivery : cfg->on_delivery,
			s->pipelined ? (void *)s : cfg->delivery_ctx, err, errlen);
		if (!s->producer)
			goto fail;
	}
	metrics_set_ready(true);
	return s;
fail:
	kafka_consumer_free(s->consumer);
	s->consumer = NULL;
	free(s);
	return NULL;
}

struct stream_out *stream_output(struct stream *s, const char *spec, enum rec_type type,
				 char *err, size_t errlen)
{
	if (!spec || !*spec) {
		snprintf(err, errlen, "empty output");
		return NULL;
	}
	struct stream_out *o = calloc(1, sizeof(*o));
	if (!o || !(o->name = strdup(spec))) {
		free(o);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	o->s = s;
	o->type = type;
	size_t n = strlen(spec);
	if (strcmp(spec, "-") == 0) {
		o->kind = OUT_FILE;
		o->f = stdout;
	} else if (has_brokers(s)) {
		o->kind = OUT_KAFKA;
	} else if (strchr(spec, '/') || (n > 6 && strcmp(spec + n - 6, ".jsonl") == 0)) {
		o->kind = OUT_FILE;
		o->f = fopen(spec, "a");
		o->close_file = true;
		if (!o->f) {
			snprintf(err, errlen, "cannot open %s: %s", spec, strerror(errno));
			free(o->name);
			free(o);
			return NULL;
		}
	} else {
		o->kind = OUT_FILE;
		o->f = stderr;
	}
	char labels[300];
	metrics_label(labels, sizeof(labels), "output", spec);
	o->records_out = metrics_counter("iotpipe_records_out_total", "Records written", labels);
	o->next = s->outs;
	s->outs = o;
	return o;
}

bool stream_output_is_kafka(const struct stream_out *o)
{
	return o->kind == OUT_KAFKA;
}

const char *stream_output_name(const struct stream_out *o)
{
	return o->name;
}

struct kafka_producer *stream_producer(struct stream *s)
{
	return s->producer;
}

struct kafka_consumer *stream_consumer(struct stream *s)
{
	return s->consumer;
}

bool stream_failed(const struct stream *s)
{
	return s->failed || kafka_consumer_failed(s->consumer);
}

/* ---- output ---- */

int stream_put(struct stream_out *o, const void *key, size_t klen, const json_t *rec,
	       int64_t ts_ms, rd_kafka_headers_t *hdrs)
{
	struct stream *s = o->s;
	char err[512];
	buf_reset(&s->scratch);
	if (o->kind == OUT_KAFKA) {
		if (records_encode(o->type, rec, &s->scratch, err, sizeof(err)) < 0) {
			log_error("cannot encode a record for %s: %s", o->name, err);
			if (hdrs)
				rd_kafka_headers_destroy(hdrs);
			return -1;
		}
		if (kafka_produce(s->producer, o->name, RD_KAFKA_PARTITION_UA, key, klen,
				  s->scratch.data, s->scratch.len, ts_ms, hdrs, output_tag(s), err,
				  sizeof(err)) < 0) {
			log_error("%s", err);
			s->failed = true;
			return -1;
		}
	} else {
		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		if (jsonl_format(records_schema(o->type), rec, &s->scratch, err, sizeof(err)) < 0) {
			log_error("cannot format a record for %s: %s", o->name, err);
			return -1;
		}
		if (fwrite(s->scratch.data, 1, s->scratch.len, o->f) != s->scratch.len) {
			log_error("cannot write %s: %s", o->name, strerror(errno));
			s->failed = true;
			lifecycle_request_stop();
			return -1;
		}
	}
	metric_add(o->records_out, 1);
	return 0;
}

int stream_put_raw(struct stream_out *o, int32_t partition, const void *key, size_t klen,
		   const void *val, size_t vlen, int64_t ts_ms, rd_kafka_headers_t *hdrs)
{
	char err[512];
	if (o->kind != OUT_KAFKA) {
		log_error("%s: raw records can only go to Kafka", o->name);
		if (hdrs)
			rd_kafka_headers_destroy(hdrs);
		return -1;
	}
	if (kafka_produce(o->s->producer, o->name, partition, key, klen, val, vlen, ts_ms, hdrs,
			  output_tag(o->s), err, sizeof(err)) < 0) {
		log_error("%s", err);
		o->s->failed = true;
		return -1;
	}
	metric_add(o->records_out, 1);
	return 0;
}

/* ---- input ---- */

static void release_current(struct stream *s)
{
	for (size_t i = 0; i < s->nbatch; i++)
		rd_kafka_message_destroy(s->batch[i]);
	s->nbatch = 0;
	if (s->cur_kmsg)
		rd_kafka_message_destroy(s->cur_kmsg);
	json_decref(s->cur_rec);
	s->cur_kmsg = NULL;
	s->cur_rec = NULL;
}

static void dead_letter(struct stream *s, const rd_kafka_message_t *km, const char *reason)
{
	const char *topic = rd_kafka_topic_name(km->rkt);
	metric_add(s->m_decode_errors, 1);
	log_warn("%s [%d] offset %lld: cannot decode: %s", topic, (int)km->partition,
		 (long long)km->offset, reason);
	if (!s->cfg.dead_letter || !s->producer)
		return;
	rd_kafka_headers_t *orig = NULL, *h;
	if (rd_kafka_message_headers(km, &orig) == 0 && orig)
		h = rd_kafka_headers_copy(orig);
	else
		h = rd_kafka_headers_new(2);
	char origin_text[512];
	struct stream_msg m = {.topic = topic, .partition = km->partition, .offset = km->offset,
			       .kmsg = km};
	struct origin o;
	stream_msg_origin(s, &m, &o);
	origin_format(&o, origin_text, sizeof(origin_text));
	rd_kafka_header_remove(h, ERROR_HEADER);
	rd_kafka_header_add(h, ERROR_HEADER, -1, reason, -1);
	if (rd_kafka_header_get_last(h, ORIGIN_HEADER, &(const void *){0}, &(size_t){0}))
		rd_kafka_header_add(h, ORIGIN_HEADER, -1, origin_text, -1);
	char err[512];
	if (kafka_produce(s->producer, s->cfg.dead_letter, RD_KAFKA_PARTITION_UA, km->key,
			  km->key_len, km->payload, km->len, 0, h, output_tag(s), err,
			  sizeof(err)) < 0) {
		log_error("dead letter: %s", err);
		s->failed = true;
		return;
	}
	metric_add(s->m_dead_letters, 1);
}

static int poll_stdin(struct stream *s, struct stream_msg **m)
{
	char err[512];
	for (;;) {
		int rc = jsonl_reader_next(&s->reader);
		if (rc == 0)
			return STREAM_END;
		if (rc == -2) {
			log_error("cannot read stdin: %s", strerror(errno));
			return STREAM_END;
		}
		if (rc == -1) {
			metric_add(s->m_decode_errors, 1);
			log_warn("stdin line %ld: longer than %zu bytes, skipped", s->reader.lineno,
				 s->cfg.max_line);
			continue;
		}
		if (s->reader.line.len == 0)
			continue;
		json_t *rec;
		if (jsonl_parse(records_schema(s->cfg.in_type), (char *)s->reader.line.data,
				s->reader.line.len, &rec, err, sizeof(err)) < 0) {
			metric_add(s->m_decode_errors, 1);
			log_warn("stdin line %ld: not a %s: %s", s->reader.lineno,
				 records_name(s->cfg.in_type), err);
			continue;
		}
		metric_add(s->m_stdin_in, 1);
		s->cur_rec = rec;
		s->msg = (struct stream_msg){.type = s->cfg.in_type, .rec = rec, .topic = "-",
					     .partition = -1, .offset = s->reader.lineno,
					     .timestamp = -1};
		*m = &s->msg;
		return STREAM_RECORD;
	}
}

int stream_poll(struct stream *s, struct stream_msg **m, int timeout_ms)
{
	release_current(s);
	*m = NULL;
	if (s->failed)
		return STREAM_END;
	int64_t now = now_mono_ms();
	if (checkpoint_if_due(s, now))
		now = now_mono_ms();
	if (s->stdin_input)
		return poll_stdin(s, m);
	int64_t deadline = now + timeout_ms;
	char err[512];
	for (;;) {
		int64_t left = deadline - now_mono_ms();
		rd_kafka_message_t *km =
			kafka_consumer_poll(s->consumer, left > 0 ? (int)left : 0);
		if (!km) {
			if (s->producer)
				kafka_producer_poll(s->producer, 0);
			if (s->nsnaps)
				snapshots_finish(s);
			if (now_mono_ms() >= deadline || s->failed || !lifecycle_running())
				return STREAM_IDLE;
			continue;
		}
		const char *topic = rd_kafka_topic_name(km->rkt);
		struct position *p = pos_find(s, topic, km->partition);
		if (!p)
			p = pos_add(s, topic, km->partition);
		if (p) {
			p->next_offset = km->offset + 1;
			metric_add(p->records_in, 1);
		}
		s->since_checkpoint++;
		json_t *rec = NULL;
		enum rec_type type = REC_UNKNOWN;
		if (!s->cfg.raw_input) {
			if (records_decode(km->payload, km->len, &type, &rec, err, sizeof(err)) < 0) {
				dead_letter(s, km, err);
				rd_kafka_message_destroy(km);
				continue;
			}
			if (s->cfg.in_type != REC_UNKNOWN && type != s->cfg.in_type) {
				snprintf(err, sizeof(err), "expected a %s record, got %s",
					 records_name(s->cfg.in_type), records_name(type));
				dead_letter(s, km, err);
				json_decref(rec);
				rd_kafka_message_destroy(km);
				continue;
			}
		}
		s->cur_kmsg = km;
		s->cur_rec = rec;
		rd_kafka_timestamp_type_t tstype;
		s->msg = (struct stream_msg){.type = type, .rec = rec, .topic = topic,
					     .partition = km->partition, .offset = km->offset,
					     .timestamp = rd_kafka_message_timestamp(km, &tstype),
					     .key = km->key, .key_len = km->key_len, .kmsg = km};
		*m = &s->msg;
		return STREAM_RECORD;
	}
}

int stream_poll_batch(struct stream *s, struct stream_msg *out, size_t max, int timeout_ms)
{
	release_current(s);
	if (s->failed || !s->consumer || !s->cfg.raw_input)
		return STREAM_END;
	checkpoint_if_due(s, now_mono_ms());
	if (max > s->batch_cap) {
		rd_kafka_message_t **b = realloc(s->batch, max * sizeof(*b));
		if (!b) {
			log_error("out of memory for a batch of %zu records", max);
			s->failed = true;
			lifecycle_request_stop();
			return STREAM_END;
		}
		s->batch = b;
		s->batch_cap = max;
	}
	size_t got = kafka_consumer_poll_batch(s->consumer, s->batch, max, timeout_ms);
	struct position *p = s->last_pos; /* after the poll: a rebalance may move positions */
	long long run = 0;
	size_t n = 0;
	for (size_t i = 0; i < got; i++) {
		rd_kafka_message_t *km = s->batch[i];
		const char *topic = rd_kafka_topic_name(km->rkt);
		if (!p || p->partition != km->partition || strcmp(p->topic, topic) != 0) {
			if (p)
				metric_add(p->records_in, (double)run);
			run = 0;
			p = pos_find(s, topic, km->partition);
		}
		if (!p) {
			/* Revoked while the batch was taken: the partition's new owner reads it. */
			log_debug("%s [%d] offset %lld: partition no longer assigned, record dropped",
				  topic, (int)km->partition, (long long)km->offset);
			rd_kafka_message_destroy(km);
			continue;
		}
		p->next_offset = km->offset + 1;
		run++;
		rd_kafka_timestamp_type_t tstype;
		out[n] = (struct stream_msg){.type = REC_UNKNOWN, .topic = topic,
					     .partition = km->partition, .offset = km->offset,
					     .timestamp = rd_kafka_message_timestamp(km, &tstype),
					     .key = km->key, .key_len = km->key_len, .kmsg = km};
		s->batch[n++] = km;
	}
	if (p)
		metric_add(p->records_in, (double)run);
	s->last_pos = p;
	s->nbatch = n;
	s->since_checkpoint += (long long)n;
	return (int)n;
}

int stream_close(struct stream *s)
{
	if (!s)
		return 0;
	release_current(s);
	int rc = stream_checkpoint(s);
	snapshots_drop(s);
	if (s->failed || kafka_consumer_failed(s->consumer))
		rc = -1;
	/* Leaving the group runs on_revoke, which checkpoints once more (a no-op when clean). */
	kafka_consumer_free(s->consumer);
	s->consumer = NULL;
	if (s->producer && kafka_producer_flush(s->producer, 30000) < 0)
		rc = -1;
	kafka_producer_free(s->producer);
	for (struct stream_out *o = s->outs, *next; o; o = next) {
		next = o->next;
		if (o->f && fflush(o->f) != 0)
			rc = -1;
		if (o->close_file && o->f && fclose(o->f) != 0)
			rc = -1;
		free(o->name);
		free(o);
	}
	for (size_t i = 0; i < s->npos; i++)
		free(s->pos[i].topic);
	free(s->pos);
	free(s->batch);
	if (s->stdin_input)
		jsonl_reader_free(&s->reader);
	buf_free(&s->scratch);
	free(s);
	return rc;
}
