/* iot-cat: kcat for the suite's records. Consume a topic and print its Avro records as JSON
 * lines, or read JSON lines and produce them as Avro records, so any topic can be inspected or
 * fed from a shell:
 *
 *   iot-cat -b localhost:9092 -C -t iot.clean -e | jq .value
 *   sensor-sim --stdout --count 10 | iot-cat -b localhost:9092 -P -t iot.raw --type RawMessage
 */
#include "config.h"
#include "jsonl.h"
#include "kafka.h"
#include "lifecycle.h"
#include "log.h"
#include "records.h"
#include "text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct cat_opts {
	const char *brokers;
	const char *topic;
	bool consume;
	bool produce;
	bool exit_at_end;
	bool envelope;
	long long count;
	const char *offset;
	const char *type;
	const char *key_field;
	const char *group;
};

static struct cat_opts opts;

static struct opt cat_table[] = {
	{"brokers", 'b', OPT_STRING, &opts.brokers, NULL, "HOST:PORT,...",
	 "Kafka bootstrap servers", OPT_REQUIRED},
	{"topic", 't', OPT_STRING, &opts.topic, NULL, "TOPIC", "topic to read or write",
	 OPT_REQUIRED},
	{"consume", 'C', OPT_FLAG, &opts.consume, NULL, NULL, "consumer mode (the default)"},
	{"produce", 'P', OPT_FLAG, &opts.produce, NULL, NULL,
	 "producer mode: JSON lines on stdin become Avro records"},
	{"exit", 'e', OPT_FLAG, &opts.exit_at_end, NULL, NULL,
	 "consumer: exit when every partition's end is reached"},
	{"count", 'c', OPT_INT, &opts.count, "0", "N", "consumer: exit after N records (0: no limit)",
	 0, 0, 1e15},
	{"offset", 'o', OPT_STRING, &opts.offset, "beginning", "WHERE",
	 "consumer: beginning, end, or an absolute offset"},
	{"envelope", 'E', OPT_FLAG, &opts.envelope, NULL, NULL,
	 "consumer: print {topic,partition,offset,timestamp,key,headers,type,value} per record"},
	{"type", 'T', OPT_STRING, &opts.type, NULL, "RECORD",
	 "producer: record type of the input lines (RawMessage, Reading, ...)"},
	{"key", 'k', OPT_STRING, &opts.key_field, NULL, "FIELD",
	 "producer: use this field of each record as the Kafka key"},
	{"group", 'G', OPT_STRING, &opts.group, NULL, "GROUP",
	 "consumer: join this consumer group (commits nothing) instead of reading all partitions"},
	{NULL},
};

static const struct config_spec cat_spec = {
	"iot-cat", "Print the suite's Avro records from a Kafka topic as JSON lines, or produce them.",
	"Consumer output: one record per line in its JSON-lines form; bytes fields are a string\n"
	"when valid UTF-8, else {\"base64\": \"...\"}. Undecodable values are reported on stderr.\n"
	"Exit status: 0 when every record was decoded (consumer) or delivered (producer).",
	cat_table};

static void put_json_string(struct buf *b, const void *p, size_t n)
{
	json_t *s = utf8_valid(p, n) ? json_stringn(p, n) : NULL;
	if (s) {
		char *t = json_dumps(s, JSON_ENCODE_ANY);
		buf_printf(b, "%s", t ? t : "null");
		free(t);
		json_decref(s);
	} else {
		buf_printf(b, "{\"base64\":\"");
		base64_encode(p, n, b);
		buf_printf(b, "\"}");
	}
}

/* Formats one consumed record; returns 0, or -1 when the value did not decode. */
static int print_record(const rd_kafka_message_t *m, struct buf *out)
{
	char err[512];
	json_t *rec = NULL;
	enum rec_type type;
	buf_reset(out);
	if (records_decode(m->payload, m->len, &type, &rec, err, sizeof(err)) < 0) {
		fprintf(stderr, "{\"topic\":\"%s\",\"partition\":%d,\"offset\":%lld,\"error\":",
			rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset);
		put_json_string(out, err, strlen(err));
		fprintf(stderr, "%.*s}\n", (int)out->len, (char *)out->data);
		return -1;
	}
	if (opts.envelope) {
		rd_kafka_timestamp_type_t tst;
		buf_printf(out, "{\"topic\":\"%s\",\"partition\":%d,\"offset\":%lld,\"timestamp\":%lld,"
				"\"key\":",
			   rd_kafka_topic_name(m->rkt), (int)m->partition, (long long)m->offset,
			   (long long)rd_kafka_message_timestamp(m, &tst));
		if (m->key)
			put_json_string(out, m->key, m->key_len);
		else
			buf_printf(out, "null");
		buf_printf(out, ",\"headers\":{");
		rd_kafka_headers_t *h = NULL;
		if (rd_kafka_message_headers(m, &h) == 0 && h) {
			const char *name;
			const void *v;
			size_t len;
			for (size_t i = 0; rd_kafka_header_get_all(h, i, &name, &v, &len) == 0; i++) {
				buf_printf(out, "%s", i ? "," : "");
				put_json_string(out, name, strlen(name));
				buf_printf(out, ":");
				put_json_string(out, v ? v : "", v ? len : 0);
			}
		}
		buf_printf(out, "},\"type\":\"%s\",\"value\":", records_name(type));
	}
	size_t before = out->len;
	jsonl_format(records_schema(type), rec, out, err, sizeof(err));
	if (opts.envelope && out->len > before) {
		out->len--; /* drop the record's newline to close the envelope */
		buf_printf(out, "}\n");
	}
	json_decref(rec);
	fwrite(out->data, 1, out->len, stdout);
	return 0;
}

static rd_kafka_topic_partition_list_t *all_partitions(rd_kafka_t *rk, int64_t start)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, opts.topic, NULL);
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, 10000);
	rd_kafka_topic_destroy(rkt);
	if (e || !md || md->topic_cnt != 1 || md->topics[0].err) {
		log_error("cannot read metadata of %s: %s", opts.topic,
			  rd_kafka_err2str(e ? e : md && md->topic_cnt ? md->topics[0].err : e));
		if (md)
			rd_kafka_metadata_destroy(md);
		return NULL;
	}
	rd_kafka_topic_partition_list_t *l =
		rd_kafka_topic_partition_list_new(md->topics[0].partition_cnt);
	for (int i = 0; i < md->topics[0].partition_cnt; i++)
		rd_kafka_topic_partition_list_add(l, opts.topic, md->topics[0].partitions[i].id)
			->offset = start;
	rd_kafka_metadata_destroy(md);
	return l;
}

static int run_consumer(void)
{
	static const char *const defaults[] = {"enable.auto.commit", "false",
					       "enable.partition.eof", "true",
					       "auto.offset.reset", "earliest", NULL};
	char err[512];
	int rc = 1;
	long long seen = 0, bad = 0;
	struct buf out = {0};
	rd_kafka_topic_partition_list_t *parts = NULL;
	rd_kafka_conf_t *conf = kafka_conf_new(opts.brokers, NULL, defaults, err, sizeof(err));
	if (!conf) {
		log_error("%s", err);
		return 1;
	}
	char group[64];
	snprintf(group, sizeof(group), "iot-cat-%d", (int)getpid());
	rd_kafka_conf_set(conf, "group.id", opts.group ? opts.group : group, NULL, 0);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
	if (!rk) {
		rd_kafka_conf_destroy(conf);
		log_error("cannot create consumer: %s", err);
		return 1;
	}
	rd_kafka_poll_set_consumer(rk);
	int64_t start = RD_KAFKA_OFFSET_BEGINNING;
	if (strcmp(opts.offset, "end") == 0)
		start = RD_KAFKA_OFFSET_END;
	else if (strcmp(opts.offset, "beginning") != 0)
		start = strtoll(opts.offset, NULL, 10);
	int eofs = 0, nparts = 0;
	if (opts.group) {
		parts = rd_kafka_topic_partition_list_new(1);
		rd_kafka_topic_partition_list_add(parts, opts.topic, RD_KAFKA_PARTITION_UA);
		if (rd_kafka_subscribe(rk, parts)) {
			log_error("cannot subscribe to %s", opts.topic);
			goto out;
		}
	} else {
		if (!(parts = all_partitions(rk, start)))
			goto out;
		nparts = parts->cnt;
		if (rd_kafka_assign(rk, parts)) {
			log_error("cannot assign %s", opts.topic);
			goto out;
		}
	}
	while (lifecycle_running()) {
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
		if (!m)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
			rd_kafka_message_destroy(m);
			if (opts.exit_at_end && !opts.group && ++eofs >= nparts)
				break;
			continue;
		}
		if (m->err) {
			log_warn("%s", rd_kafka_message_errstr(m));
			rd_kafka_message_destroy(m);
			continue;
		}
		if (print_record(m, &out) < 0)
			bad++;
		rd_kafka_message_destroy(m);
		if (opts.count && ++seen >= opts.count)
			break;
	}
	fflush(stdout);
	rc = bad ? 1 : 0;
	if (bad)
		log_warn("%lld records could not be decoded", bad);
out:
	if (parts)
		rd_kafka_topic_partition_list_destroy(parts);
	rd_kafka_consumer_close(rk);
	rd_kafka_destroy(rk);
	buf_free(&out);
	return rc;
}

static int run_producer(void)
{
	char err[512];
	enum rec_type type = records_type_by_name(opts.type);
	if (type == REC_UNKNOWN)
		config_die("--type: '%s' is not a record type", opts.type ? opts.type : "");
	struct kafka_producer *p = kafka_producer_new(opts.brokers, NULL, NULL, NULL, err,
						      sizeof(err));
	if (!p) {
		log_error("%s", err);
		return 1;
	}
	struct jsonl_reader r;
	jsonl_reader_init(&r, stdin, 16 << 20);
	struct buf val = {0};
	long long bad = 0, sent = 0;
	int rc;
	while (lifecycle_running() && (rc = jsonl_reader_next(&r)) != 0) {
		json_t *rec = NULL;
		if (rc < 0 || jsonl_parse(records_schema(type), (char *)r.line.data, r.line.len,
					  &rec, err, sizeof(err)) < 0) {
			log_warn("line %ld: %s", r.lineno, rc < 0 ? "unreadable or too long" : err);
			bad++;
			if (rc == -2)
				break;
			continue;
		}
		buf_reset(&val);
		const char *key = opts.key_field ? rec_str(rec, opts.key_field) : NULL;
		if (records_encode(type, rec, &val, err, sizeof(err)) < 0 ||
		    kafka_produce(p, opts.topic, RD_KAFKA_PARTITION_UA, key, key ? strlen(key) : 0,
				  val.data, val.len, 0, NULL, NULL, err, sizeof(err)) < 0) {
			log_warn("line %ld: %s", r.lineno, err);
			bad++;
		} else {
			sent++;
		}
		json_decref(rec);
	}
	int ok = kafka_producer_flush(p, 60000) == 0;
	if (!ok)
		log_error("not every record was acknowledged");
	log_info("produced %lld records to %s, %lld refused", sent, opts.topic, bad);
	kafka_producer_free(p);
	jsonl_reader_free(&r);
	buf_free(&val);
	return ok && !bad ? 0 : 1;
}

int main(int argc, char **argv)
{
	config_parse(&cat_spec, argc, argv);
	if (opts.consume && opts.produce)
		config_die("choose one of -C and -P");
	lifecycle_init();
	char err[512];
	if (records_init(err, sizeof(err)) < 0) {
		log_error("%s", err);
		return 1;
	}
	int rc = opts.produce ? run_producer() : run_consumer();
	records_shutdown();
	config_free();
	return rc;
}
