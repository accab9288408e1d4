/* The least a relay built on librdkafka can do per record, as a yardstick for mirror-relay's CPU:
 * a consumer group reads the source topic in batches, every record is handed to an idempotent
 * producer (same partition number, key, value and timestamp; copied, as the consumed record is
 * freed right after), and the delivery reports are counted. Nothing else: no offsets committed,
 * no metrics, no per-partition bookkeeping. With --origin each record also gets an origin
 * header built the way the relay builds it (the consumed headers taken over, one added).
 *
 *   relay_floor SOURCE TARGET TOPIC TARGET_TOPIC RECORDS [--origin] [-X prop=value]...
 *
 * -X applies to both clients (source.prop / target.prop to one of them), after the relay's own
 * defaults. Prints "records/s cpu_us_per_record peak_rss_kB"; records/s counts from the first
 * record read to the last acknowledgement, CPU is the whole process's from start to end.
 * Build: cc -O2 -o relay_floor bench/relay_floor.c -lrdkafka */
#include <librdkafka/rdkafka.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

static long acked, failed;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	(void)opaque;
	if (m->err)
		failed++;
	else
		acked++;
}

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void set(rd_kafka_conf_t *c, const char *k, const char *v)
{
	char err[256];
	if (rd_kafka_conf_set(c, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK) {
		fprintf(stderr, "relay_floor: %s: %s\n", k, err);
		exit(2);
	}
}

/* Appends v in decimal; returns the length (v >= 0). */
static size_t put_u64(char *out, uint64_t v)
{
	char tmp[24];
	size_t n = 0, len = 0;
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10));
	while (n)
		out[len++] = tmp[--n];
	return len;
}

int main(int argc, char **argv)
{
	if (argc < 6) {
		fprintf(stderr, "usage: relay_floor SOURCE TARGET TOPIC TARGET_TOPIC RECORDS "
				"[--origin] [-X prop=value]...\n");
		return 2;
	}
	const char *topic = argv[3], *out = argv[4];
	long want = atol(argv[5]);
	int origin = 0;
	rd_kafka_conf_t *cc = rd_kafka_conf_new(), *pc = rd_kafka_conf_new();
	set(cc, "bootstrap.servers", argv[1]);
	char group[64];
	snprintf(group, sizeof(group), "relay-floor-%ld", (long)getpid()); /* a new group: no rebalance */
	set(cc, "group.id", group);
	set(cc, "enable.auto.commit", "false");
	set(cc, "enable.auto.offset.store", "false");
	set(cc, "auto.offset.reset", "earliest");
	set(pc, "bootstrap.servers", argv[2]);
	set(pc, "enable.idempotence", "true");
	set(pc, "message.timeout.ms", "0");
	set(pc, "linger.ms", "5");
	for (int i = 6; i < argc; i++) {
		if (strcmp(argv[i], "--origin") == 0) {
			origin = 1;
			continue;
		}
		if (strcmp(argv[i], "-X") != 0 || i + 1 >= argc || !strchr(argv[i + 1], '=')) {
			fprintf(stderr, "relay_floor: unexpected argument %s\n", argv[i]);
			return 2;
		}
		char *kv = argv[++i], *eq = strchr(kv, '=');
		*eq = 0;
		if (strncmp(kv, "source.", 7) == 0)
			set(cc, kv + 7, eq + 1);
		else if (strncmp(kv, "target.", 7) == 0)
			set(pc, kv + 7, eq + 1);
		else {
			set(cc, kv, eq + 1);
			set(pc, kv, eq + 1);
		}
	}
	rd_kafka_conf_set_dr_msg_cb(pc, on_delivery);
	char err[512];
	rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "relay_floor: consumer: %s\n", err);
		return 1;
	}
	rd_kafka_t *p = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
	if (!p) {
		fprintf(stderr, "relay_floor: producer: %s\n", err);
		return 1;
	}
	rd_kafka_poll_set_consumer(c);
	rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
	rd_kafka_subscribe(c, subs);
	rd_kafka_topic_partition_list_destroy(subs);
	rd_kafka_queue_t *q = rd_kafka_queue_get_consumer(c);
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(p, out, NULL);
	static rd_kafka_message_t *batch[1000];
	char prefix[300];
	size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "local/%s/", topic);
	double t0 = 0;
	int rc = 0;
	while (acked + failed < want) {
		ssize_t n = rd_kafka_consume_batch_queue(q, 0, batch, 1000);
		if (n <= 0) {
			rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 2);
			n = 0;
			if (m)
				batch[n++] = m;
		}
		for (ssize_t i = 0; i < n; i++) {
			rd_kafka_message_t *m = batch[i];
			if (m->err) {
				rd_kafka_message_destroy(m);
				continue;
			}
			if (!t0)
				t0 = now_s();
			rd_kafka_headers_t *h = NULL;
			if (origin) {
				char v[400];
				if (rd_kafka_message_detach_headers(m, &h))
					h = rd_kafka_headers_new(1);
				memcpy(v, prefix, plen);
				size_t len = plen + put_u64(v + plen, (uint64_t)m->partition);
				v[len++] = '/';
				len += put_u64(v + len, (uint64_t)m->offset);
				rd_kafka_header_add(h, "iotpipe-origin", -1, v, (ssize_t)len);
			}
			rd_kafka_timestamp_type_t tstype;
			rd_kafka_resp_err_t e;
			while ((e = rd_kafka_producev(
					p, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_PARTITION(m->partition),
					RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					RD_KAFKA_V_KEY(m->key, m->key_len),
					RD_KAFKA_V_VALUE(m->payload, m->len),
					RD_KAFKA_V_TIMESTAMP(rd_kafka_message_timestamp(m, &tstype)),
					RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END)) ==
			       RD_KAFKA_RESP_ERR__QUEUE_FULL)
				rd_kafka_poll(p, 10);
			rd_kafka_message_destroy(m);
			if (e) {
				fprintf(stderr, "relay_floor: produce: %s\n", rd_kafka_err2str(e));
				if (h)
					rd_kafka_headers_destroy(h);
				rc = 1;
				goto out;
			}
		}
		rd_kafka_poll(p, 0);
	}
	double t1 = now_s();
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
		     (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
	printf("%.0f %.2f %ld\n", (double)want / (t1 - t0), cpu * 1e6 / (double)want, ru.ru_maxrss);
	if (failed) {
		fprintf(stderr, "relay_floor: %ld deliveries failed\n", failed);
		rc = 1;
	}
out:
	rd_kafka_topic_destroy(rkt);
	rd_kafka_consumer_close(c);
	rd_kafka_queue_destroy(q);
	rd_kafka_destroy(c);
	rd_kafka_flush(p, 10000);
	rd_kafka_destroy(p);
	return rc;
}
