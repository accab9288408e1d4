/* cleaner: every payload format in, one clean Reading out, bad data dead-lettered with a reason.
 *
 * Reads RawMessage records (iot.raw, or JSON lines on stdin), writes Reading records to --out
 * (iot.clean, key = site, so one site's readings stay in one partition) and Rejected records to
 * --rejected (iot.rejected, key = MQTT topic). Parsing, validation and the mapping file live in
 * cleaner.h and its neighbours (docs/cleaner.md); this file wires them to the stream.
 *
 * Delivery: the stream commits input offsets only after Kafka acknowledged every Reading and
 * Rejected produced from them, so a crash cleans a batch again; that is harmless because a
 * Reading's identity is (site, device, sensor, metric, ts) and a Rejected's is its origin. */
#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "records.h"
#include "service.h"

#include "cleaner.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
	struct service_opts so;
	struct cleaner_opts co;
	const char *rejected;
} opt;

static struct opt table[] = {
    SERVICE_OPTS(&opt.so, "iot.raw", "iot.clean", "cleaner"),
    {"rejected", 'r', OPT_STRING, &opt.rejected, "iot.rejected", "TOPIC|FILE",
     "where Rejected records go (without brokers: a file, else stderr)"},
    CLEANER_OPTS(&opt.co),
    {NULL},
};

static const struct config_spec spec = {
    "cleaner",
    "Turn raw MQTT messages into validated, normalised readings; dead-letter the rest with a "
    "reason.",
    "Formats: factory, home, power, temperature, bare numbers and JSON arrays of them, detected\n"
    "by shape; --mapping describes any other payload. See docs/cleaner.md.\n"
    "Examples:\n"
    "  cleaner -b localhost:9092\n"
    "  cleaner -b kafka:9092 --max-age 400d --mapping /etc/iotpipe/mapping.conf\n"
    "  sensor-sim --stdout | cleaner --in - --out - --rejected rejected.jsonl | jq .",
    table};

static struct {
	struct cleaner *cl;
	struct stream_out *clean, *rejected;
	struct cleaner_result res;
	struct cleaner_stats exported;
	struct metric *m_messages, *m_readings, *m_rejected[CLEANER_REASON_COUNT];
} run;

static void metrics_register(void)
{
	run.m_messages =
	    metrics_counter("iotpipe_cleaner_messages_total", "Raw messages cleaned", NULL);
	run.m_readings =
	    metrics_counter("iotpipe_cleaner_readings_total", "Readings produced", NULL);
	for (int i = 1; i < CLEANER_REASON_COUNT; i++) {
		char label[64];
		metrics_label(label, sizeof(label), "reason",
		              cleaner_reason_code((enum cleaner_reason)i));
		run.m_rejected[i] =
		    metrics_counter("iotpipe_cleaner_rejected_total",
		                    "Readings (or whole messages) rejected, by reason", label);
	}
}

/* The cleaner counts by element; Prometheus gets the differences. */
static void metrics_export(void)
{
	const struct cleaner_stats *st = cleaner_stats(run.cl);
	metric_add(run.m_messages, (double)(st->messages - run.exported.messages));
	metric_add(run.m_readings, (double)(st->readings - run.exported.readings));
	for (int i = 1; i < CLEANER_REASON_COUNT; i++)
		if (st->rejected[i] != run.exported.rejected[i])
			metric_add(run.m_rejected[i],
			           (double)(st->rejected[i] - run.exported.rejected[i]));
	run.exported = *st;
}

/* A producer learns a topic's partitions only when it first writes to it, and librdkafka asks for
 * unknown topics about once a second: the first readings would wait that long, and the first
 * checkpoint with them. Asking now, while the consumer group forms, takes one round trip. Best
 * effort: on failure the producer asks later as usual. */
static void output_metadata_fetch(struct stream *s, const struct stream_out *o)
{
	if (!stream_output_is_kafka(o))
		return;
	rd_kafka_t *rk = kafka_producer_handle(stream_producer(s));
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, stream_output_name(o), NULL);
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e =
	    rkt ? rd_kafka_metadata(rk, 0, rkt, &md, 5000) : RD_KAFKA_RESP_ERR__INVALID_ARG;
	if (e)
		log_debug("metadata of %s: %s", stream_output_name(o), rd_kafka_err2str(e));
	if (md)
		rd_kafka_metadata_destroy(md);
	if (rkt)
		rd_kafka_topic_destroy(rkt);
}

/* The Rejected record of the current message: origin null for stdin, as the schema says. */
static int rejection_put(struct stream *s, const struct stream_msg *m)
{
	json_t *origin = NULL;
	if (m->kmsg) {
		struct origin o;
		stream_msg_origin(s, m, &o);
		origin = json_pack("{s:s, s:s, s:i, s:I}", "cluster", o.cluster, "topic", o.topic,
		                   "partition", (int)o.partition, "offset", (json_int_t)o.offset);
		if (!origin)
			return -1;
	}
	json_t *rej = cleaner_rejected_new(m->rec, origin, run.res.code, run.res.reason);
	json_decref(origin);
	if (!rej)
		return -1;
	const json_t *topic = json_object_get(m->rec, "topic");
	int rc = stream_put(run.rejected, json_string_value(topic), json_string_length(topic), rej,
	                    0, NULL);
	json_decref(rej);
	log_debug("rejected %s: %s", json_string_value(topic), run.res.reason);
	return rc;
}

/* Cleans one message and writes what it became. -1 stops the service: memory ran out or an
 * output failed, and the message will be read again after a restart. */
static int message_clean(struct stream *s, const struct stream_msg *m)
{
	if (cleaner_process(run.cl, m->rec, now_wall_ms(), &run.res) < 0) {
		log_error("out of memory cleaning %s [%d] at %lld", m->topic, (int)m->partition,
		          (long long)m->offset);
		return -1;
	}
	size_t i;
	json_t *r;
	json_array_foreach(run.res.readings, i, r)
	{
		const json_t *site = json_object_get(r, "site");
		if (stream_put(run.clean, json_string_value(site), json_string_length(site), r, 0,
		               NULL) < 0)
			return -1;
	}
	if (run.res.code != CLEANER_OK && rejection_put(s, m) < 0)
		return -1;
	return 0;
}

int main(int argc, char **argv)
{
	config_parse(&spec, argc, argv);
	char err[1024];
	if (cleaner_new(&opt.co, &run.cl, err, sizeof(err)) < 0)
		config_die("%s", err);
	if (cleaner_result_init(&run.res) < 0 || service_start(&opt.so) < 0) {
		cleaner_result_free(&run.res);
		cleaner_free(run.cl);
		config_free();
		return 1;
	}
	metrics_register();

	int status = 1;
	struct stream *s = service_stream(&opt.so, REC_RAW_MESSAGE, NULL);
	if (s) {
		run.clean = service_output(s, opt.so.out, REC_READING);
		run.rejected = service_output(s, opt.rejected, REC_REJECTED);
	}
	if (!s || !run.clean || !run.rejected)
		goto out;
	output_metadata_fetch(s, run.clean);
	output_metadata_fetch(s, run.rejected);
	log_info("cleaning %s into %s, rejections to %s (format %s%s%s)", opt.so.in,
	         stream_output_name(run.clean), stream_output_name(run.rejected), opt.co.format,
	         opt.co.mapping ? ", mapping " : "", opt.co.mapping ? opt.co.mapping : "");

	bool fatal = false;
	while (lifecycle_running() && !stream_failed(s)) {
		struct stream_msg *m;
		int rc = stream_poll(s, &m, 200);
		if (rc == STREAM_END)
			break;
		if (rc == STREAM_RECORD && message_clean(s, m) < 0) {
			fatal = true;
			break;
		}
		metrics_export();
	}
	if (fatal) {
		/* Closing the stream would commit past the message whose outputs were not all
		 * written: its checkpoint waits only for records that reached the producer, and a
		 * failed put (out of memory, a record Kafka refused, a stop while the queue was
		 * full) left some out. Stop as a crash would instead: the message is read again
		 * after a restart, and what was written before it is idempotent by identity. */
		log_error("stopping without committing");
		fflush(NULL);
		_Exit(1);
	}
	status = 0;
out:
	/* Drain: wait until every output is acknowledged, commit, close. */
	if (service_stop(s) != 0)
		status = 1;
	cleaner_result_free(&run.res);
	cleaner_free(run.cl);
	return status;
}
