/* Batch writer (see writer.h): the hand-over between the main thread, which fills a batch,
 * and the database thread, which writes the other one.
 *
 * Ownership: `fill` belongs to the main thread. `flight` belongs to the database thread while
 * a job runs and to the main thread otherwise; the job state under the mutex says which, and
 * the mutex orders every access. The connection (pg) follows flight: the main thread uses it
 * (maintenance) only while no job runs. */
#include "writer.h"

#include "batch.h"
#include "dbwrite.h"
#include "jsonl.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEAD_LETTER_FLUSH_MS 30000

enum job { JOB_NONE, JOB_RUNNING, JOB_DONE };

struct table_metrics {
	struct metric *rows, *written, *duplicates, *dead;
};

struct writer {
	struct writer_config cfg;
	struct dbwrite *db;
	struct batch batches[2];
	struct batch *fill, *flight;
	/* Next offsets per partition whose records are all committed in PostgreSQL. */
	struct posmap durable;
	bool async; /* inside writer_checkpoint */
	struct backoff bo;
	bool failing;
	/* The database thread. */
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	enum job job;
	bool stop;
	struct dbwrite_result result;
	int64_t job_ms;
	/* Dead letters. */
	struct stream *s;
	struct stream_out *dead_out;
	const char *dead_topic;
	struct table_metrics tm[REC_TYPE_COUNT];
	struct metric *m_batch_rows, *m_batch_seconds, *m_retries, *m_up, *m_pending,
	    *m_copy_fallbacks, *m_dead_dropped;
};

static const double batch_row_buckets[] = {1,    10,    100,   500,   1000,  2000,
                                           5000, 10000, 20000, 50000, 100000};

static void *db_thread(void *arg)
{
	struct writer *w = arg;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (w->job != JOB_RUNNING && !w->stop)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->stop)
			break;
		pthread_mutex_unlock(&w->mu);
		int64_t start = now_mono_ms();
		struct dbwrite_result res;
		dbwrite_batch(w->db, w->flight, &res);
		pthread_mutex_lock(&w->mu);
		w->result = res;
		w->job_ms = now_mono_ms() - start;
		w->job = JOB_DONE;
		pthread_cond_broadcast(&w->cv);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

static enum job job_state(struct writer *w)
{
	pthread_mutex_lock(&w->mu);
	enum job j = w->job;
	pthread_mutex_unlock(&w->mu);
	return j;
}

static void job_start(struct writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->job = JOB_RUNNING;
	pthread_cond_broadcast(&w->cv);
	pthread_mutex_unlock(&w->mu);
}

static void job_wait(struct writer *w)
{
	pthread_mutex_lock(&w->mu);
	while (w->job == JOB_RUNNING)
		pthread_cond_wait(&w->cv, &w->mu);
	pthread_mutex_unlock(&w->mu);
}

static void metrics_for(struct writer *w, enum rec_type t)
{
	char labels[200];
	metrics_label(labels, sizeof(labels), "table", table_name(t));
	w->tm[t].rows =
	    metrics_counter("iotpipe_db_rows_total",
	                    "Rows committed to PostgreSQL (new or already present)", labels);
	w->tm[t].written = metrics_counter("iotpipe_db_rows_written_total",
	                                   "Rows PostgreSQL inserted or updated", labels);
	w->tm[t].duplicates = metrics_counter(
	    "iotpipe_db_rows_duplicate_total",
	    "Rows already present (re-delivered records) that changed nothing", labels);
	w->tm[t].dead =
	    metrics_counter("iotpipe_db_dead_letters_total",
	                    "Records PostgreSQL refused, sent to the dead-letter topic", labels);
}

struct writer *writer_new(const struct writer_config *cfg, char *err, size_t errlen)
{
	struct writer *w = calloc(1, sizeof(*w));
	if (!w) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	w->cfg = *cfg;
	w->fill = &w->batches[0];
	w->flight = &w->batches[1];
	backoff_init(&w->bo, cfg->retry_min_ms, cfg->retry_max_ms);
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	w->db = dbwrite_new(cfg->pg, cfg->tables, cfg->copy);
	if (!w->db) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	int rc = pthread_create(&w->thread, NULL, db_thread, w);
	if (rc) {
		snprintf(err, errlen, "cannot start the database thread: %s", strerror(rc));
		goto fail;
	}
	w->thread_started = true;
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		metrics_for(w, (enum rec_type)t);
	w->m_batch_rows = metrics_histogram("iotpipe_db_batch_rows", "Records per committed batch",
	                                    NULL, batch_row_buckets,
	                                    sizeof(batch_row_buckets) / sizeof(*batch_row_buckets));
	w->m_batch_seconds = metrics_histogram(
	    "iotpipe_db_batch_seconds", "Time to write and commit a batch (successful attempts)",
	    NULL, metrics_latency_buckets, metrics_latency_nbuckets);
	w->m_retries = metrics_counter("iotpipe_db_retries_total",
	                               "Batch attempts that failed and will be retried", NULL);
	w->m_up =
	    metrics_gauge("iotpipe_db_up", "1 while the last PostgreSQL attempt succeeded", NULL);
	w->m_pending = metrics_gauge("iotpipe_db_pending_rows",
	                             "Records read and not yet committed to PostgreSQL", NULL);
	w->m_copy_fallbacks = metrics_counter(
	    "iotpipe_db_copy_fallbacks_total",
	    "COPY batches that met a re-delivered record and were written with INSERT", NULL);
	w->m_dead_dropped = metrics_counter(
	    "iotpipe_db_dead_letters_unsent_total",
	    "Refused records read from the dead-letter topic itself, logged and not re-sent", NULL);
	return w;
fail:
	writer_free(w);
	return NULL;
}

void writer_free(struct writer *w)
{
	if (!w)
		return;
	if (w->thread_started) {
		pthread_mutex_lock(&w->mu);
		while (w->job == JOB_RUNNING)
			pthread_cond_wait(&w->cv, &w->mu);
		w->stop = true;
		pthread_cond_broadcast(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
	}
	size_t left = w->fill->n + w->flight->n;
	if (left)
		log_warn("%zu records were not written; they were not committed and will be read "
		         "again",
		         left);
	batch_free(&w->batches[0]);
	batch_free(&w->batches[1]);
	posmap_free(&w->durable);
	dbwrite_free(w->db);
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
	free(w);
}

void writer_set_dead_letter(struct writer *w, struct stream *s, struct stream_out *out,
                            const char *dead_topic)
{
	w->s = s;
	w->dead_out = out;
	w->dead_topic = dead_topic;
}

int writer_add(struct writer *w, const struct stream_msg *m, const struct origin *o)
{
	if (batch_add(w->fill, w->cfg.tables, m, o, w->dead_topic) < 0)
		return -1;
	metric_set(w->m_pending, (double)(w->fill->n + w->flight->n));
	return 0;
}

size_t writer_pending(const struct writer *w)
{
	return w->fill->n;
}

size_t writer_unwritten(const struct writer *w)
{
	return w->fill->n + w->flight->n;
}

bool writer_busy(struct writer *w)
{
	return job_state(w) == JOB_RUNNING;
}

/* The fill batch's oldest record has waited --batch-ms. */
static bool fill_aged(const struct writer *w, int64_t now)
{
	return w->fill->n && now - w->fill->first_at >= w->cfg.batch_ms;
}

bool writer_due(struct writer *w)
{
	if (w->fill->n >= w->cfg.batch)
		return true;
	enum job j = job_state(w);
	/* A finished batch is taken at once, so its offsets are committed without delay. */
	if (j != JOB_NONE)
		return j == JOB_DONE;
	int64_t now = now_mono_ms();
	/* A failed batch must be written before the next one: nothing to do until its next
	 * attempt is due. */
	if (w->flight->n)
		return backoff_wait_ms(&w->bo, now) == 0;
	return fill_aged(w, now);
}

int64_t writer_retry_in_ms(const struct writer *w)
{
	return backoff_wait_ms(&w->bo, now_mono_ms());
}

void writer_retry_now(struct writer *w)
{
	w->bo.next_at = 0;
}

/* A Rejected record for a refused row: RawMessages keep their own fields; other records travel
 * as their JSON-lines form in the payload, with the record type as source. NULL when the value
 * no longer decodes (it decoded when it arrived) or memory runs out. */
static json_t *rejected_of(const struct batch *b, const struct batch_row *r)
{
	char err[256];
	json_t *rec = NULL;
	if (records_decode_as(r->type, b->values.data + r->value_off, r->value_len, &rec, err,
	                      sizeof(err)) < 0) {
		log_error("cannot rebuild a refused record: %s", err);
		return NULL;
	}
	json_t *j = json_object();
	if (!j)
		goto out;
	if (r->type == REC_RAW_MESSAGE) {
		static const char *const keep[] = {"source", "topic",    "payload",
		                                   "qos",    "retained", "received_at"};
		for (size_t i = 0; i < sizeof(keep) / sizeof(*keep); i++) {
			json_t *v = json_object_get(rec, keep[i]);
			if (v)
				json_object_set(j, keep[i], v);
		}
	} else {
		struct buf line = {0};
		if (jsonl_format(records_schema(r->type), rec, &line, err, sizeof(err)) == 0 &&
		    line.len)
			line.len--; /* without the newline */
		json_object_set_new(j, "source", json_string(records_name(r->type)));
		json_object_set_new(j, "topic", json_string(r->origin.topic));
		json_object_set_new(j, "payload",
		                    json_stringn(line.data ? (char *)line.data : "", line.len));
		json_object_set_new(j, "qos", json_integer(0));
		json_object_set_new(j, "retained", json_false());
		json_object_set_new(j, "received_at",
		                    json_integer(r->kafka_ts > 0 ? r->kafka_ts : now_wall_ms()));
		buf_free(&line);
	}
	if (strcmp(r->origin.cluster, "-") == 0)
		json_object_set_new(j, "origin", json_null());
	else
		json_object_set_new(j, "origin",
		                    json_pack("{s:s, s:s, s:i, s:I}", "cluster", r->origin.cluster,
		                              "topic", r->origin.topic, "partition",
		                              (int)r->origin.partition, "offset",
		                              (json_int_t)r->origin.offset));
	char code[16];
	snprintf(code, sizeof(code), "db_%s", r->sqlstate[0] ? r->sqlstate : "encode");
	for (char *p = code; *p; p++)
		if (*p >= 'A' && *p <= 'Z')
			*p = (char)(*p - 'A' + 'a');
	json_object_set_new(j, "stage", json_string("raw-saver"));
	json_object_set_new(j, "reason", json_string(r->reason ? r->reason : "refused"));
	json_object_set_new(j, "reason_code", json_string(code));
out:
	json_decref(rec);
	return j;
}

/* Sends the refused rows of a committed batch and waits until Kafka has them. */
static int send_dead_letters(struct writer *w, const struct batch *b)
{
	size_t sent = 0;
	for (size_t i = 0; i < b->n; i++) {
		const struct batch_row *r = &b->rows[i];
		if (!r->refused)
			continue;
		if (r->from_dead_topic || !w->dead_out) {
			metric_add(w->m_dead_dropped, 1);
			log_error("%s record %s/%s/%d/%lld refused (%s) and not sent to a "
			          "dead-letter topic: %s",
			          records_name(r->type), r->origin.cluster, r->origin.topic,
			          (int)r->origin.partition, (long long)r->origin.offset,
			          r->reason ? r->reason : "refused",
			          r->from_dead_topic ? "it was read from that topic"
			                             : "none is configured");
			continue;
		}
		json_t *rej = rejected_of(b, r);
		const char *key = r->type == REC_RAW_MESSAGE ? rec_str(rej, "topic") : NULL;
		int rc =
		    rej ? stream_put(w->dead_out, key, key ? strlen(key) : 0, rej, 0, NULL) : -1;
		json_decref(rej);
		if (rc < 0)
			return -1;
		sent++;
	}
	if (sent && stream_output_is_kafka(w->dead_out) &&
	    kafka_producer_flush(stream_producer(w->s), DEAD_LETTER_FLUSH_MS) < 0) {
		log_error("%zu refused records were not acknowledged by %s; the batch will be "
		          "written again",
		          sent, stream_output_name(w->dead_out));
		return -1;
	}
	for (size_t i = 0; i < b->n; i++)
		if (b->rows[i].refused)
			metric_add(w->tm[b->rows[i].type].dead, 1);
	return 0;
}

static void attempt_failed(struct writer *w, const char *err)
{
	int64_t delay = backoff_fail(&w->bo, now_mono_ms());
	metric_add(w->m_retries, 1);
	metric_set(w->m_up, 0);
	metrics_set_ready(false);
	if (!w->failing)
		log_error("cannot write %zu records to PostgreSQL: %s; retrying in %lld ms "
		          "(nothing is committed until it succeeds)",
		          w->flight->n, err, (long long)delay);
	else
		log_warn("still cannot write to PostgreSQL: %s; retrying in %lld ms", err,
		         (long long)delay);
	w->failing = true;
}

/* Takes the result of the finished job. Returns 0 when the flight batch is committed (it is
 * then empty), -1 when it must be written again. */
static int collect(struct writer *w)
{
	pthread_mutex_lock(&w->mu);
	w->job = JOB_NONE;
	struct dbwrite_result *res = &w->result;
	pthread_mutex_unlock(&w->mu);
	if (res->fault != PG_OK) {
		attempt_failed(w, res->err);
		return -1;
	}
	if (send_dead_letters(w, w->flight) < 0) {
		backoff_fail(&w->bo, now_mono_ms());
		metric_add(w->m_retries, 1);
		return -1;
	}
	struct batch *b = w->flight;
	for (int t = 0; t < REC_TYPE_COUNT; t++) {
		long submitted = 0;
		for (size_t i = 0; i < b->tb[t].n; i++)
			submitted += !b->rows[b->tb[t].idx[i]].refused;
		metric_add(w->tm[t].rows, (double)submitted);
		metric_add(w->tm[t].written, (double)res->affected[t]);
		if (submitted > res->affected[t] && !w->cfg.tables[t].upsert) {
			metric_add(w->tm[t].duplicates, (double)(submitted - res->affected[t]));
			log_info("%s: %ld records were already written (read again after a restart "
			         "or a rebalance) and were skipped",
			         w->cfg.tables[t].name, submitted - res->affected[t]);
		} else if (submitted > res->affected[t]) {
			metric_add(w->tm[t].duplicates, (double)(submitted - res->affected[t]));
		}
	}
	if (res->copy_fallback) {
		metric_add(w->m_copy_fallbacks, 1);
		log_info("COPY met records already written (read again after a restart or a "
		         "rebalance); writing with INSERT ... ON CONFLICT until that stops");
	}
	metric_observe(w->m_batch_rows, (double)b->n);
	metric_observe(w->m_batch_seconds, (double)w->job_ms / 1000.0);
	if (posmap_merge(&w->durable, &b->pos) < 0)
		log_warn("out of memory recording committed offsets; they are committed later");
	batch_clear(b);
	if (w->failing)
		log_info("PostgreSQL is writable again; resuming");
	w->failing = false;
	backoff_reset(&w->bo);
	metric_set(w->m_up, 1);
	metrics_set_ready(true);
	return 0;
}

/* Brings the flight batch to rest: waits for a running job and takes its result, or retries a
 * failed batch when the backoff allows. Returns 0 when flight is empty. */
static int settle(struct writer *w, bool wait)
{
	for (;;) {
		enum job j = job_state(w);
		if (j == JOB_RUNNING) {
			if (!wait)
				return -1;
			job_wait(w);
			continue;
		}
		if (j == JOB_DONE) {
			if (collect(w) < 0)
				return -1;
			continue;
		}
		if (w->flight->n == 0)
			return 0;
		if (backoff_wait_ms(&w->bo, now_mono_ms()) > 0)
			return -1;
		job_start(w);
	}
}

static int writer_flush(struct writer *w, bool sync)
{
	/* A partial batch does not wait for the one being written, and is handed over only
	 * once its oldest record has waited --batch-ms: until then it goes on filling. */
	bool full = w->fill->n >= w->cfg.batch;
	bool hand_over = sync || full || fill_aged(w, now_mono_ms());
	int rc = settle(w, sync || full);
	if (rc == 0 && w->fill->n && hand_over) {
		struct batch *t = w->fill;
		w->fill = w->flight;
		w->flight = t;
		job_start(w);
		rc = sync ? settle(w, true) : 0;
	}
	metric_set(w->m_pending, (double)(w->fill->n + w->flight->n));
	return rc;
}

int writer_checkpoint(struct writer *w, struct stream *s)
{
	w->async = true;
	int rc = stream_checkpoint(s);
	w->async = false;
	return rc;
}

int writer_flush_hook(void *ctx)
{
	struct writer *w = ctx;
	return writer_flush(w, !w->async);
}

int64_t writer_commit_position_hook(void *ctx, const char *topic, int32_t partition,
                                    int64_t next_offset, char *metadata, size_t metadata_len)
{
	struct writer *w = ctx;
	(void)metadata;
	(void)metadata_len;
	/* Nothing read is left unwritten: the whole position may be committed, including
	 * records the stream itself dead-lettered. */
	if (!w->fill->n && !w->flight->n && job_state(w) == JOB_NONE)
		return next_offset;
	return posmap_get(&w->durable, topic, partition);
}

void writer_assign_hook(void *ctx, const char *topic, int32_t partition, int64_t committed,
                        const char *metadata)
{
	struct writer *w = ctx;
	(void)metadata;
	/* Another consumer may have moved this partition on since we last wrote it, and a batch
	 * read before the rebalance may still finish: what it reports must not take the committed
	 * offset back. */
	posmap_forget(&w->durable, topic, partition);
	if (committed >= 0 && posmap_raise(&w->durable, topic, partition, committed) < 0)
		log_warn("out of memory recording the committed offset of %s [%d]", topic,
		         (int)partition);
}
