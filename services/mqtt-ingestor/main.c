/* mqtt-ingestor: subscribes to MQTT topic filters and produces every message, unchanged, as a
 * RawMessage to Kafka (iot.raw), keyed by topic so each device keeps its order.
 *
 * Messages arrive on paho's thread and are produced to librdkafka from there (both are
 * thread-safe); the main thread serves delivery reports and applies backpressure: when more
 * than --max-queue records (or --max-queue-bytes) wait for Kafka, it disconnects from MQTT with
 * the persistent session kept, so the broker holds new messages until Kafka drains.
 *
 * The one loss window: paho acknowledges a QoS 1 message before we see it, so a kill -9 loses
 * what sits in librdkafka's queue (bounded by linger.ms and the queue cap). SIGTERM loses
 * nothing: stop taking messages, flush, exit. */
#include "buf.h"
#include "config.h"
#include "jsonl.h"
#include "kafka.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "records.h"

#include "raw.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
	const char *brokers, *out, *source, *share, *key;
	struct strlist filters;
	long long qos, max_payload, max_queue, max_queue_bytes, metrics_port;
	struct mqtt_cli mqtt;
} opt;

static struct opt table[] = {
	{"brokers", 'b', OPT_STRING, &opt.brokers, NULL, "HOST:PORT,...",
	 "Kafka bootstrap servers (without them --out must be -)"},
	{"out", 'o', OPT_STRING, &opt.out, "iot.raw", "TOPIC|-",
	 "Kafka topic for RawMessage records; - writes JSON lines to stdout"},
	{"filter", 't', OPT_LIST, &opt.filters, "#", "FILTER",
	 "MQTT topic filter to subscribe to (repeatable; env: comma-separated)"},
	{"share", 0, OPT_STRING, &opt.share, NULL, "GROUP",
	 "subscribe as $share/GROUP/<filter> so replicas split the stream"},
	{"qos", 0, OPT_INT, &opt.qos, "1", "0|1|2", "subscription QoS", 0, 0, 2},
	{"source", 0, OPT_STRING, &opt.source, "mqtt", "NAME",
	 "name of this broker or region, stored in every record"},
	{"key", 0, OPT_STRING, &opt.key, "topic", "topic|level:N",
	 "Kafka key: the MQTT topic, or its N-th level (0-based)"},
	{"max-payload", 0, OPT_SIZE, &opt.max_payload, "256k", NULL,
	 "larger payloads are dropped (counted and logged)", 0, 1, 256 * 1048576.0},
	{"max-queue", 0, OPT_INT, &opt.max_queue, "20000", "N",
	 "records waiting for Kafka before MQTT intake pauses", 0, 10, 1e7},
	{"max-queue-bytes", 0, OPT_SIZE, &opt.max_queue_bytes, "8M", NULL,
	 "bytes waiting for Kafka before MQTT intake pauses", 0, 65536, 1073741824.0},
	{"metrics-port", 0, OPT_INT, &opt.metrics_port, "0", "PORT",
	 "serve /metrics, /healthz and /readyz on this port (0: off)", 0, 0, 65535},
	MQTT_CLI_OPTS(&opt.mqtt, "mqtt://127.0.0.1:1883", NULL, "1h"),
	{NULL},
};

static const struct config_spec spec = {
	"mqtt-ingestor", "Forward MQTT messages, unchanged, to Kafka as RawMessage records.",
	"The client id defaults to mqtt-ingestor-<hostname>; keep it stable so the broker's\n"
	"persistent session (--session-expiry) queues QoS 1 messages while the ingestor is away.\n"
	"Example:\n"
	"  mqtt-ingestor -b localhost:9092 --mqtt mqtt://broker:1883 -t 'factory/#' -t '+/+/temperature' \\\n"
	"                --share iotpipe --source north",
	table};

static struct ingestor {
	struct kafka_producer *producer;
	struct mqtt_client *mqtt;
	struct raw_key_rule key;
	struct buf scratch; /* used on paho's thread only */
	atomic_long queued, queued_bytes;
	atomic_bool connected;
	struct metric *m_received, *m_produced, *m_latency, *m_depth, *m_depth_bytes, *m_paused,
		*m_reconnects;
} ing;

static void count_drop(const char *reason, const char *topic, size_t len)
{
	char labels[128];
	metrics_label(labels, sizeof(labels), "reason", reason);
	struct metric *m = metrics_counter("iotpipe_ingestor_dropped_total",
					   "MQTT messages not forwarded, by reason", labels);
	metric_add(m, 1);
	/* One line per event, but a flood must not drown the log: every 1000th after the 10th. */
	double n = metric_value(m);
	if (n <= 10 || (long long)n % 1000 == 0)
		log_warn("dropped a message on %.200s (%zu bytes): %s (%.0f so far)", topic, len,
			 reason, n);
}

static void on_message(void *ctx, const char *topic, size_t topic_len, const void *payload,
		       size_t len, int qos, bool retained)
{
	(void)ctx;
	int64_t received_at = now_wall_ms();
	metric_add(ing.m_received, 1);
	if ((long long)len > opt.max_payload) {
		count_drop("payload_too_large", topic, len);
		return;
	}
	json_t *rec = raw_message_new(opt.source, topic, topic_len, payload, len, qos, retained,
				      received_at);
	if (!rec) {
		count_drop("topic_invalid", topic, len);
		return;
	}
	char err[512];
	buf_reset(&ing.scratch);
	if (!ing.producer) {
		if (jsonl_format(records_schema(REC_RAW_MESSAGE), rec, &ing.scratch, err,
				 sizeof(err)) < 0 ||
		    fwrite(ing.scratch.data, 1, ing.scratch.len, stdout) != ing.scratch.len) {
			count_drop("output_error", topic, len);
		} else {
			metric_add(ing.m_produced, 1);
		}
		json_decref(rec);
		return;
	}
	if (records_encode(REC_RAW_MESSAGE, rec, &ing.scratch, err, sizeof(err)) < 0) {
		json_decref(rec);
		count_drop("encode_error", topic, len);
		return;
	}
	json_decref(rec);
	const char *key;
	size_t key_len;
	raw_key(&ing.key, topic, topic_len, &key, &key_len);
	atomic_fetch_add(&ing.queued, 1);
	atomic_fetch_add(&ing.queued_bytes, (long)ing.scratch.len);
	/* The opaque carries the receive time (monotonic µs) for the produce latency. */
	void *opaque = (void *)(intptr_t)(now_mono_ms() * 1000);
	if (kafka_produce(ing.producer, opt.out, RD_KAFKA_PARTITION_UA, key, key_len,
			  ing.scratch.data, ing.scratch.len, received_at, NULL, opaque, err,
			  sizeof(err)) < 0) {
		atomic_fetch_sub(&ing.queued, 1);
		atomic_fetch_sub(&ing.queued_bytes, (long)ing.scratch.len);
		log_error("%s", err);
		count_drop("kafka_error", topic, len);
	}
}

static void on_delivery(void *ctx, const rd_kafka_message_t *m)
{
	(void)ctx;
	atomic_fetch_sub(&ing.queued, 1);
	atomic_fetch_sub(&ing.queued_bytes, (long)m->len);
	if (m->err) {
		count_drop("kafka_delivery", rd_kafka_topic_name(m->rkt), m->len);
		return;
	}
	metric_add(ing.m_produced, 1);
	int64_t start_us = (int64_t)(intptr_t)m->_private;
	metric_observe(ing.m_latency, (double)(now_mono_ms() * 1000 - start_us) / 1e6);
}

static void on_connected(void *ctx, bool reconnect)
{
	(void)ctx;
	atomic_store(&ing.connected, true);
	if (reconnect)
		metric_add(ing.m_reconnects, 1);
}

static void register_metrics(void)
{
	ing.m_received = metrics_counter("iotpipe_ingestor_received_total",
					 "MQTT messages received", NULL);
	ing.m_produced = metrics_counter("iotpipe_ingestor_produced_total",
					 "Records acknowledged by Kafka (or written to stdout)", NULL);
	ing.m_latency = metrics_histogram("iotpipe_ingestor_produce_seconds",
					  "From MQTT receipt to Kafka acknowledgement", NULL,
					  metrics_latency_buckets, metrics_latency_nbuckets);
	ing.m_depth = metrics_gauge("iotpipe_ingestor_queue_records",
				    "Records waiting for Kafka acknowledgement", NULL);
	ing.m_depth_bytes = metrics_gauge("iotpipe_ingestor_queue_bytes",
					  "Bytes waiting for Kafka acknowledgement", NULL);
	ing.m_paused = metrics_gauge("iotpipe_ingestor_paused",
				     "1 while MQTT intake is paused for backpressure", NULL);
	ing.m_reconnects = metrics_counter("iotpipe_ingestor_reconnects_total",
					   "MQTT reconnections", NULL);
	for (const char *const *r = (const char *const[]){"payload_too_large", "topic_invalid",
							   "encode_error", "kafka_error",
							   "kafka_delivery", "output_error", NULL};
	     *r; r++) {
		char labels[128];
		metrics_label(labels, sizeof(labels), "reason", *r);
		metrics_counter("iotpipe_ingestor_dropped_total",
				"MQTT messages not forwarded, by reason", labels);
	}
}

/* Pauses MQTT intake while Kafka is behind, resumes at half the cap (hysteresis, so the
 * connection does not flap at the threshold). */
static void apply_backpressure(bool *paused)
{
	long q = atomic_load(&ing.queued), qb = atomic_load(&ing.queued_bytes);
	metric_set(ing.m_depth, (double)q);
	metric_set(ing.m_depth_bytes, (double)qb);
	char err[256];
	if (!*paused && (q >= opt.max_queue || qb >= opt.max_queue_bytes)) {
		log_warn("%ld records (%ld bytes) wait for Kafka: pausing MQTT intake", q, qb);
		if (mqtt_pause(ing.mqtt, 5000, err, sizeof(err)) < 0)
			log_error("cannot pause MQTT intake: %s", err);
		*paused = true;
		atomic_store(&ing.connected, false);
	} else if (*paused && q < opt.max_queue / 2 && qb < opt.max_queue_bytes / 2) {
		log_info("Kafka caught up (%ld records waiting): resuming MQTT intake", q);
		if (mqtt_resume(ing.mqtt, err, sizeof(err)) < 0)
			log_error("cannot resume MQTT intake: %s", err);
		else
			*paused = false;
	}
	metric_set(ing.m_paused, *paused);
	struct mqtt_stats st;
	mqtt_client_stats(ing.mqtt, &st);
	metrics_set_ready(st.connected && !*paused);
}

static int open_mqtt(struct mqtt_sub *subs, char **sub_names)
{
	char err[512];
	struct mqtt_options mo;
	mqtt_options_init(&mo);
	if (mqtt_cli_apply(&opt.mqtt, &mo, err, sizeof(err)) < 0)
		config_die("%s", err);
	for (size_t i = 0; i < opt.filters.len; i++) {
		if (opt.share) {
			if (asprintf(&sub_names[i], "$share/%s/%s", opt.share, opt.filters.items[i]) < 0)
				return -1;
		} else if (!(sub_names[i] = strdup(opt.filters.items[i]))) {
			return -1;
		}
		subs[i] = (struct mqtt_sub){sub_names[i], (int)opt.qos};
	}
	mo.subs = subs;
	mo.nsubs = opt.filters.len;
	mo.on_message = on_message;
	mo.on_connected = on_connected;
	ing.mqtt = mqtt_client_open(&mo);
	return ing.mqtt ? 0 : -1;
}

int main(int argc, char **argv)
{
	char err[512], host[128] = "local", client_id[200];
	int rc = 1;
	config_parse(&spec, argc, argv);
	if (raw_key_rule_parse(opt.key, &ing.key) < 0)
		config_die("--key: '%s' is not 'topic' or 'level:N'", opt.key);
	if (strcmp(opt.out, "-") != 0 && (!opt.brokers || !*opt.brokers))
		config_die("--out %s needs Kafka brokers (-b), or use --out -", opt.out);
	if (!opt.mqtt.client_id) {
		gethostname(host, sizeof(host) - 1);
		snprintf(client_id, sizeof(client_id), "mqtt-ingestor-%s", host);
		opt.mqtt.client_id = client_id;
	}
	lifecycle_init();
	struct mqtt_sub *subs = calloc(opt.filters.len + 1, sizeof(*subs));
	char **sub_names = calloc(opt.filters.len + 1, sizeof(*sub_names));
	if (!subs || !sub_names || records_init(err, sizeof(err)) < 0) {
		log_error("cannot start: %s", subs && sub_names ? err : "out of memory");
		goto out;
	}
	register_metrics();
	if (metrics_serve((int)opt.metrics_port, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	if (strcmp(opt.out, "-") != 0) {
		ing.producer = kafka_producer_new(opt.brokers, NULL, on_delivery, NULL, err,
						  sizeof(err));
		if (!ing.producer) {
			log_error("%s", err);
			goto out;
		}
	}
	if (open_mqtt(subs, sub_names) < 0)
		goto out;
	log_info("forwarding %zu filter(s) from %s to %s", opt.filters.len, opt.mqtt.url,
		 opt.out);

	bool paused = false;
	while (lifecycle_running()) {
		if (ing.producer) {
			kafka_producer_poll(ing.producer, 100);
		} else {
			usleep(100000);
			/* A pipe's reader gets what arrived within a tick, not when stdio's
			 * buffer happens to fill. */
			fflush(stdout);
		}
		apply_backpressure(&paused);
	}

	log_info("stopping: no more MQTT intake, flushing to Kafka");
	if (mqtt_disconnect(ing.mqtt, 5000, err, sizeof(err)) < 0)
		log_warn("MQTT disconnect: %s", err);
	rc = 0;
	if (ing.producer && kafka_producer_flush(ing.producer, 30000) < 0) {
		log_error("%ld records were not acknowledged by Kafka", atomic_load(&ing.queued));
		rc = 1;
	}
	fflush(stdout);
	log_info("received %.0f, forwarded %.0f", metric_value(ing.m_received),
		 metric_value(ing.m_produced));
out:
	mqtt_client_free(ing.mqtt);
	kafka_producer_free(ing.producer);
	for (size_t i = 0; sub_names && i < opt.filters.len; i++)
		free(sub_names[i]);
	free(sub_names);
	free(subs);
	buf_free(&ing.scratch);
	metrics_shutdown();
	records_shutdown();
	config_free();
	return rc;
}
