/* Lag gauges (see lag.h). */
#include "lag.h"

#include "lifecycle.h"
#include "metrics.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct lag_monitor {
	struct relay *r;
	rd_kafka_t *rk;
	long long interval_ms;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop, poked;
	struct metric *queued, *retries;
	long retries_seen;
};

/* One ListOffsets round for all partitions: the answer may wait behind the consumer's own
 * long-polling fetch on the same connection, so per-partition requests would add up. */
#define END_OFFSETS_TIMEOUT_MS 2000

/* Asks the cluster for the end offset (or with logical = RD_KAFKA_OFFSET_BEGINNING, the start)
 * of each partition; out[i] stays -1 when unknown. */
static void offsets_query(rd_kafka_t *rk, struct relay_part **parts, size_t n, int64_t logical,
			  int64_t *out)
{
	rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new((int)n);
	for (size_t i = 0; i < n; i++)
		if (out[i] == -2)
			rd_kafka_topic_partition_list_add(l, parts[i]->t->name,
							  parts[i]->partition)
				->offset = logical;
	for (size_t i = 0; i < n; i++)
		if (out[i] == -2)
			out[i] = -1;
	if (l->cnt && rd_kafka_offsets_for_times(rk, l, END_OFFSETS_TIMEOUT_MS) ==
			      RD_KAFKA_RESP_ERR_NO_ERROR)
		for (int j = 0; j < l->cnt; j++) {
			const rd_kafka_topic_partition_t *e = &l->elems[j];
			if (e->err || e->offset < 0)
				continue;
			for (size_t i = 0; i < n; i++)
				if (parts[i]->partition == e->partition &&
				    strcmp(parts[i]->t->name, e->topic) == 0)
					out[i] = e->offset;
		}
	rd_kafka_topic_partition_list_destroy(l);
}

void lag_monitor_update(struct relay *r, rd_kafka_t *rk)
{
	struct relay_part **parts;
	size_t n = relay_parts_snapshot(r, &parts);
	int64_t *hi = n ? malloc(n * sizeof(*hi)) : NULL;
	int64_t *lo = n ? malloc(n * sizeof(*lo)) : NULL;
	if (!hi || !lo)
		goto out;
	for (size_t i = 0; i < n; i++) {
		bool want = atomic_load(&parts[i]->assigned);
		hi[i] = want ? -2 : -1; /* -2: ask */
		lo[i] = want && atomic_load(&parts[i]->next_offset) < 0 ? -2 : -1;
	}
	offsets_query(rk, parts, n, RD_KAFKA_OFFSET_END, hi);
	offsets_query(rk, parts, n, RD_KAFKA_OFFSET_BEGINNING, lo);
	int64_t now = now_wall_ms();
	for (size_t i = 0; i < n; i++) {
		struct relay_part *p = parts[i];
		if (hi[i] < 0)
			continue; /* not ours, or no answer: keep the last values */
		int64_t next = atomic_load(&p->next_offset);
		if (next < 0)
			next = lo[i] >= 0 ? lo[i] : hi[i];
		int64_t unread = hi[i] > next ? hi[i] - next : 0;
		int64_t inflight = atomic_load(&p->produced) - atomic_load(&p->acked);
		int64_t lag = unread + (inflight > 0 ? inflight : 0);
		int64_t ts = atomic_load(&p->acked_ts);
		double secs = lag > 0 && ts > 0 && now > ts ? (double)(now - ts) / 1000.0 : 0.0;
		metric_set(p->lag_records, (double)lag);
		metric_set(p->lag_seconds, secs);
	}
out:
	free(hi);
	free(lo);
	free(parts);
}

static void *monitor_main(void *arg)
{
	struct lag_monitor *m = arg;
	pthread_mutex_lock(&m->lock);
	while (!m->stop) {
		pthread_mutex_unlock(&m->lock);
		lag_monitor_update(m->r, m->rk);
		long queued, retries;
		relay_producer_stats(m->r, &queued, &retries);
		metric_set(m->queued, (double)queued);
		if (retries > m->retries_seen) {
			metric_add(m->retries, (double)(retries - m->retries_seen));
			m->retries_seen = retries;
		}
		pthread_mutex_lock(&m->lock);
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		long long ns = until.tv_nsec + (m->interval_ms % 1000) * 1000000LL;
		until.tv_sec += (time_t)(m->interval_ms / 1000 + ns / 1000000000LL);
		until.tv_nsec = (long)(ns % 1000000000LL);
		while (!m->stop && !m->poked &&
		       pthread_cond_timedwait(&m->wake, &m->lock, &until) != ETIMEDOUT)
			;
		m->poked = false;
	}
	pthread_mutex_unlock(&m->lock);
	return NULL;
}

struct lag_monitor *lag_monitor_start(struct relay *r, rd_kafka_t *rk, long long interval_ms,
				      char *err, size_t errlen)
{
	struct lag_monitor *m = calloc(1, sizeof(*m));
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	m->r = r;
	m->rk = rk;
	m->interval_ms = interval_ms > 0 ? interval_ms : 1000;
	m->queued = metrics_gauge("iotpipe_relay_queued_records",
				  "Records waiting in the producer for the target's acknowledgement",
				  NULL);
	m->retries = metrics_counter("iotpipe_relay_retries_total",
				     "Produce requests or records re-sent to the target",
				     NULL);
	pthread_mutex_init(&m->lock, NULL);
	pthread_cond_init(&m->wake, NULL);
	int e = pthread_create(&m->thread, NULL, monitor_main, m);
	if (e) {
		snprintf(err, errlen, "cannot start the lag monitor: %s", strerror(e));
		pthread_cond_destroy(&m->wake);
		pthread_mutex_destroy(&m->lock);
		free(m);
		return NULL;
	}
	return m;
}

void lag_monitor_poke(struct lag_monitor *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->poked = true;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->lock);
}

void lag_monitor_stop(struct lag_monitor *m)
{
	if (!m)
		return;
	pthread_mutex_lock(&m->lock);
	m->stop = true;
	pthread_cond_signal(&m->wake);
	pthread_mutex_unlock(&m->lock);
	pthread_join(m->thread, NULL);
	pthread_cond_destroy(&m->wake);
	pthread_mutex_destroy(&m->lock);
	free(m);
}
