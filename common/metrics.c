/* Metric registry and HTTP exposition. Registration takes a mutex (rare); updates are atomic
 * compare-and-swap on the double's bits, so worker threads and librdkafka callbacks can update
 * without contending with the scraper. */
#include "metrics.h"

#include "buf.h"
#include "log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum metric_kind { M_COUNTER, M_GAUGE, M_HISTOGRAM };

#define MAX_BUCKETS 32

struct metric {
	enum metric_kind kind;
	char *name;
	char *help;
	char *labels;
	_Atomic uint64_t value; /* double bits; for histograms: the sum */
	double bounds[MAX_BUCKETS];
	size_t nbuckets;
	_Atomic uint64_t buckets[MAX_BUCKETS + 1]; /* non-cumulative counts, last is +Inf */
	struct metric *next;
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct metric *reg_head, *reg_tail;
static struct MHD_Daemon *daemon_handle;
static atomic_bool ready_flag;

const double metrics_latency_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
					  0.1,	  0.25,	 0.5,	 1,	2.5,  5,     10};
const size_t metrics_latency_nbuckets = sizeof(metrics_latency_buckets) / sizeof(double);

static double bits_to_double(uint64_t u)
{
	double d;
	memcpy(&d, &u, sizeof(d));
	return d;
}

static uint64_t double_to_bits(double d)
{
	uint64_t u;
	memcpy(&u, &d, sizeof(u));
	return u;
}

static struct metric *metric_get(enum metric_kind kind, const char *name, const char *help,
				 const char *labels, const double *buckets, size_t nbuckets)
{
	const char *lb = labels ? labels : "";
	pthread_mutex_lock(&reg_lock);
	struct metric *m;
	for (m = reg_head; m; m = m->next)
		if (strcmp(m->name, name) == 0 && strcmp(m->labels, lb) == 0)
			break;
	if (!m && (m = calloc(1, sizeof(*m)))) {
		m->kind = kind;
		m->name = strdup(name);
		m->help = strdup(help ? help : "");
		m->labels = strdup(lb);
		m->nbuckets = nbuckets > MAX_BUCKETS ? MAX_BUCKETS : nbuckets;
		if (buckets)
			memcpy(m->bounds, buckets, m->nbuckets * sizeof(double));
		if (!m->name || !m->help || !m->labels) {
			free(m->name);
			free(m->help);
			free(m->labels);
			free(m);
			m = NULL;
		} else {
			/* Appending keeps one name's series together in the exposition. */
			struct metric *after = NULL;
			for (struct metric *p = reg_head; p; p = p->next)
				if (strcmp(p->name, name) == 0)
					after = p;
			if (after) {
				m->next = after->next;
				after->next = m;
				if (reg_tail == after)
					reg_tail = m;
			} else {
				if (reg_tail)
					reg_tail->next = m;
				else
					reg_head = m;
				reg_tail = m;
			}
		}
	}
	pthread_mutex_unlock(&reg_lock);
	return m;
}

struct metric *metrics_counter(const char *name, const char *help, const char *labels)
{
	return metric_get(M_COUNTER, name, help, labels, NULL, 0);
}

struct metric *metrics_gauge(const char *name, const char *help, const char *labels)
{
	return metric_get(M_GAUGE, name, help, labels, NULL, 0);
}

struct metric *metrics_histogram(const char *name, const char *help, const char *labels,
				 const double *buckets, size_t nbuckets)
{
	return metric_get(M_HISTOGRAM, name, help, labels, buckets, nbuckets);
}

static void atomic_add_double(_Atomic uint64_t *cell, double v)
{
	uint64_t old = atomic_load_explicit(cell, memory_order_relaxed);
	while (!atomic_compare_exchange_weak_explicit(cell, &old,
						      double_to_bits(bits_to_double(old) + v),
						      memory_order_relaxed, memory_order_relaxed))
		;
}

void metric_add(struct metric *m, double v)
{
	if (m)
		atomic_add_double(&m->value, v);
}

void metric_set(struct metric *m, double v)
{
	if (m)
		atomic_store_explicit(&m->value, double_to_bits(v), memory_order_relaxed);
}

void metric_observe(struct metric *m, double v)
{
	if (!m)
		return;
	size_t i = 0;
	while (i < m->nbuckets && v > m->bounds[i])
		i++;
	atomic_fetch_add_explicit(&m->buckets[i], 1, memory_order_relaxed);
	atomic_add_double(&m->value, v);
}

double metric_value(const struct metric *m)
{
	return m ? bits_to_double(atomic_load_explicit(&((struct metric *)m)->value,
						       memory_order_relaxed))
		 : 0;
}

void metrics_label(char *out, size_t outlen, const char *key, const char *value)
{
	size_t j = (size_t)snprintf(out, outlen, "%s=\"", key);
	for (const char *p = value ? value : ""; *p && j + 3 < outlen; p++) {
		if (*p == '\\' || *p == '"') {
			out[j++] = '\\';
			out[j++] = *p;
		} else if (*p == '\n') {
			out[j++] = '\\';
			out[j++] = 'n';
		} else {
			out[j++] = *p;
		}
	}
	if (j + 1 < outlen)
		out[j++] = '"';
	out[j < outlen ? j : outlen - 1] = 0;
}

static void render_value(struct buf *b, double v)
{
	if (v == (double)(long long)v && v < 1e15 && v > -1e15)
		buf_printf(b, "%lld\n", (long long)v);
	else
		buf_printf(b, "%.17g\n", v);
}

char *metrics_render(void)
{
	struct buf b = {0};
	const char *last_name = "";
	pthread_mutex_lock(&reg_lock);
	for (struct metric *m = reg_head; m; m = m->next) {
		static const char *const kinds[] = {"counter", "gauge", "histogram"};
		if (strcmp(m->name, last_name) != 0) {
			buf_printf(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
				   kinds[m->kind]);
			last_name = m->name;
		}
		const char *sep = m->labels[0] ? "," : "";
		if (m->kind != M_HISTOGRAM) {
			if (m->labels[0])
				buf_printf(&b, "%s{%s} ", m->name, m->labels);
			else
				buf_printf(&b, "%s ", m->name);
			render_value(&b, metric_value(m));
			continue;
		}
		uint64_t cum = 0;
		for (size_t i = 0; i <= m->nbuckets; i++) {
			cum += atomic_load_explicit(&m->buckets[i], memory_order_relaxed);
			if (i < m->nbuckets)
				buf_printf(&b, "%s_bucket{%s%sle=\"%g\"} %llu\n", m->name, m->labels,
					   sep, m->bounds[i], (unsigned long long)cum);
			else
				buf_printf(&b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", m->name,
					   m->labels, sep, (unsigned long long)cum);
		}
		buf_printf(&b, "%s_sum%s%s%s ", m->name, m->labels[0] ? "{" : "", m->labels,
			   m->labels[0] ? "}" : "");
		render_value(&b, metric_value(m));
		buf_printf(&b, "%s_count%s%s%s %llu\n", m->name, m->labels[0] ? "{" : "",
			   m->labels, m->labels[0] ? "}" : "", (unsigned long long)cum);
	}
	pthread_mutex_unlock(&reg_lock);
	if (buf_terminate(&b) < 0) {
		buf_free(&b);
		return NULL;
	}
	return (char *)b.data;
}

void metrics_set_ready(bool ready)
{
	atomic_store(&ready_flag, ready);
}

bool metrics_ready(void)
{
	return atomic_load(&ready_flag);
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, char *body,
			     enum MHD_ResponseMemoryMode mode, const char *type)
{
	struct MHD_Response *r =
		MHD_create_response_from_buffer(strlen(body), body, mode);
	if (!r)
		return MHD_NO;
	MHD_add_response_header(r, "Content-Type", type);
	enum MHD_Result ret = MHD_queue_response(conn, status, r);
	MHD_destroy_response(r);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version, const char *upload,
				  size_t *upload_size, void **req_cls)
{
	(void)cls, (void)version, (void)upload, (void)upload_size, (void)req_cls;
	if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
		return reply(conn, 405, "method not allowed\n", MHD_RESPMEM_PERSISTENT,
			     "text/plain");
	if (strcmp(url, "/metrics") == 0) {
		char *text = metrics_render();
		if (!text)
			return reply(conn, 500, "out of memory\n", MHD_RESPMEM_PERSISTENT,
				     "text/plain");
		return reply(conn, 200, text, MHD_RESPMEM_MUST_FREE,
			     "text/plain; version=0.0.4; charset=utf-8");
	}
	if (strcmp(url, "/healthz") == 0)
		return reply(conn, 200, "ok\n", MHD_RESPMEM_PERSISTENT, "text/plain");
	if (strcmp(url, "/readyz") == 0)
		return metrics_ready()
			       ? reply(conn, 200, "ready\n", MHD_RESPMEM_PERSISTENT, "text/plain")
			       : reply(conn, 503, "not ready\n", MHD_RESPMEM_PERSISTENT,
				       "text/plain");
	return reply(conn, 404, "not found\n", MHD_RESPMEM_PERSISTENT, "text/plain");
}

int metrics_serve(int port, char *err, size_t errlen)
{
	if (port <= 0)
		return 0;
	if (port > 65535) {
		snprintf(err, errlen, "metrics port %d out of range", port);
		return -1;
	}
	struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	const char *bind_addr = getenv("IOTPIPE_METRICS_ADDR");
	addr.sin_addr.s_addr = htonl(INADDR_ANY);
	if (bind_addr && inet_pton(AF_INET, bind_addr, &addr.sin_addr) != 1) {
		snprintf(err, errlen, "IOTPIPE_METRICS_ADDR '%s' is not an IPv4 address", bind_addr);
		return -1;
	}
	daemon_handle = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG,
					 (uint16_t)port, NULL, NULL, on_request, NULL,
					 MHD_OPTION_SOCK_ADDR, &addr, MHD_OPTION_CONNECTION_LIMIT,
					 (unsigned)64, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10,
					 MHD_OPTION_END);
	if (!daemon_handle) {
		snprintf(err, errlen, "cannot serve metrics on port %d (in use?)", port);
		return -1;
	}
	log_info("serving /metrics, /healthz and /readyz on port %d", port);
	return 0;
}

void metrics_shutdown(void)
{
	if (daemon_handle) {
		MHD_stop_daemon(daemon_handle);
		daemon_handle = NULL;
	}
	pthread_mutex_lock(&reg_lock);
	struct metric *m = reg_head;
	reg_head = reg_tail = NULL;
	pthread_mutex_unlock(&reg_lock);
	while (m) {
		struct metric *next = m->next;
		free(m->name);
		free(m->help);
		free(m->labels);
		free(m);
		m = next;
	}
}
