/* Prometheus metrics and the health endpoints, served by one small HTTP server per process
 * (libmicrohttpd, its own thread): GET /metrics, /healthz (the process answers), /readyz (the
 * service says it can do its job: connected to its sources and sinks).
 *
 * Metrics are registered by name + label set and live until metrics_shutdown(). Registering the
 * same name and labels again returns the same metric, so labelled counters (by reason, by topic)
 * can be looked up on demand; hot paths keep the pointer. Updates are lock-free. */
#ifndef IOTPIPE_METRICS_H
#define IOTPIPE_METRICS_H

#include <stdbool.h>
#include <stddef.h>

struct metric;

/* labels: NULL, or Prometheus label pairs without braces, e.g. "topic=\"iot.raw\"".
 * Label values are escaped by metrics_label() (use it for values from outside). */
struct metric *metrics_counter(const char *name, const char *help, const char *labels);
struct metric *metrics_gauge(const char *name, const char *help, const char *labels);
/* buckets: ascending upper bounds (seconds, bytes...), at most 32; +Inf is implied. */
struct metric *metrics_histogram(const char *name, const char *help, const char *labels,
				 const double *buckets, size_t nbuckets);

void metric_add(struct metric *m, double v); /* counters and gauges; NULL is ignored */
void metric_set(struct metric *m, double v); /* gauges */
void metric_observe(struct metric *m, double v); /* histograms */
double metric_value(const struct metric *m);

/* Writes `key="value"` into out with the value escaped for the exposition format. */
void metrics_label(char *out, size_t outlen, const char *key, const char *value);

/* Latency buckets in seconds from 0.5 ms to 10 s, for batch and produce latencies. */
extern const double metrics_latency_buckets[];
extern const size_t metrics_latency_nbuckets;

/* Starts the HTTP server on all interfaces (pods are scraped from outside) at port; port 0
 * disables it. Set IOTPIPE_METRICS_ADDR=127.0.0.1 to bind loopback only. Returns 0 or -1. */
int metrics_serve(int port, char *err, size_t errlen);
void metrics_set_ready(bool ready);
bool metrics_ready(void);
/* Renders the exposition text (what /metrics serves) into a malloc'd string. */
char *metrics_render(void);
/* Stops the server and frees every metric. */
void metrics_shutdown(void);

#endif
