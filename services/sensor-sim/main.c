/* sensor-sim: simulated homes and factories, and the suite's load generator.
 *
 * Generates readings in every payload format the pipeline understands (gen.c), publishes them to
 * MQTT at a steady rate or as fast as the broker takes them, and listens for heat-pump commands
 * so the rooms it simulates respond to the actuator. With --stdout it writes the same messages as
 * RawMessage JSON lines instead, for shell pipelines. At the end it reports what it sent, how
 * many of each invalid kind, and how many publishes the broker confirmed. */
#include "control.h"
#include "gen.h"
#include "tally.h"

#include "config.h"
#include "jsonl.h"
#include "lifecycle.h"
#include "log.h"
#include "mqtt.h"
#include "records.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
	const char *format;
	long long sites, devices, sensors, batch, count, seed, qos, inflight;
	long long duration_ms, step_ms, drain_ms, connect_ms;
	double rate, invalid, time_scale;
	const char *start_ts, *source, *summary;
	bool to_stdout, retain, no_control;
	struct mqtt_cli mqtt;
} opt;

static struct opt options[] = {
    {"format", 'f', OPT_STRING, &opt.format, "mixed", "FORMAT",
     "factory, factory-human, factory-type, home, power, temperature, bare, batch or mixed"},
    {"sites", 0, OPT_INT, &opt.sites, "1", "N", "sites (homes, factories)", 0, 1, 1e7},
    {"devices", 0, OPT_INT, &opt.devices, "4", "N", "devices (rooms) per site", 0, 1, 1e7},
    {"sensors", 0, OPT_INT, &opt.sensors, "2", "N", "sensors per device", 0, 1, 1e6},
    {"rate", 'r', OPT_DOUBLE, &opt.rate, "10", "MSG/S",
     "messages per second (0: as fast as possible)", 0, 0, 1e9},
    {"count", 'n', OPT_INT, &opt.count, "0", "N", "stop after N messages (0: no limit)", 0, 0,
     1e15},
    {"duration", 'd', OPT_DURATION, &opt.duration_ms, "0", NULL,
     "stop after this long (0: no limit)", 0, 0, 3.2e12},
    {"seed", 's', OPT_INT, &opt.seed, "1", "N", "random seed: same seed and flags, same messages"},
    {"start-ts", 0, OPT_STRING, &opt.start_ts, NULL, "TIME",
     "back-fill: event times from TIME (ms since the epoch or 2024-01-01T00:00:00Z)"},
    {"step", 0, OPT_DURATION, &opt.step_ms, "1s", NULL,
     "event time between a sensor's readings (back-fill, batches)", 0, 1, 1e12},
    {"batch", 0, OPT_INT, &opt.batch, "1", "N", "readings per message, sent as a JSON array", 0, 1,
     10000},
    {"invalid", 0, OPT_DOUBLE, &opt.invalid, "0", "FRACTION",
     "fraction of deliberately invalid messages", 0, 0, 1},
    {"time-scale", 0, OPT_DOUBLE, &opt.time_scale, "1", "X",
     "room physics runs X times faster than event time", 0, 1e-6, 1e6},
    {"qos", 'q', OPT_INT, &opt.qos, "1", "0|1|2", "MQTT QoS of the readings", 0, 0, 2},
    {"retain", 0, OPT_FLAG, &opt.retain, NULL, NULL, "publish the readings retained"},
    {"inflight", 0, OPT_INT, &opt.inflight, "100", "N",
     "publishes awaiting acknowledgement at most", 0, 1, 65535},
    {"drain-timeout", 0, OPT_DURATION, &opt.drain_ms, "30s", NULL,
     "how long to wait for the last acknowledgements", 0, 0, 86400000},
    {"connect-timeout", 0, OPT_DURATION, &opt.connect_ms, "30s", NULL,
     "how long to wait for the broker at start-up", 0, 0, 86400000},
    {"no-control", 0, OPT_FLAG, &opt.no_control, NULL, NULL,
     "do not subscribe to heat-pump commands (open loop)"},
    {"stdout", 0, OPT_FLAG, &opt.to_stdout, NULL, NULL,
     "write RawMessage JSON lines to stdout instead of publishing"},
    {"source", 0, OPT_STRING, &opt.source, "sensor-sim", "NAME",
     "RawMessage source field with --stdout"},
    {"summary", 0, OPT_STRING, &opt.summary, NULL, "FILE",
     "write the run's summary as JSON to FILE (- for stderr)"},
    MQTT_CLI_OPTS(&opt.mqtt, "mqtt://localhost:1883", NULL, "0"),
    {NULL},
};

static const struct config_spec spec = {
    .prog = "sensor-sim",
    .summary = "Simulated sensors for iotpipe: publishes readings to MQTT (or JSON lines) and "
               "heats rooms on command.",
    .details = "Examples:\n"
               "  sensor-sim --mqtt mqtt://localhost:1883 --format mixed --rate 100\n"
               "  sensor-sim --rate 0 --count 100000 --format factory --qos 1\n"
               "  sensor-sim --stdout --count 1000 --seed 7 --start-ts 2024-01-01T00:00:00Z\n"
               "Topic layouts, payloads and invalid kinds: docs/sensor-sim.md.",
    .opts = options,
};

/* State the MQTT callbacks share with the main loop (they run on paho's threads). */
struct sim {
	struct gen *g;
	atomic_uint_fast64_t commands, unknown_room, bad_commands, failures_logged;
};

static void on_command(void *ctx, const char *topic, size_t topic_len, const void *payload,
                       size_t len, int qos, bool retained)
{
	struct sim *s = ctx;
	(void)qos;
	(void)retained;
	char err[160];
	struct control_cmd cmd;
	if (control_parse(topic, topic_len, payload, len, &cmd, err, sizeof(err)) < 0) {
		if (atomic_fetch_add(&s->bad_commands, 1) < 10)
			log_warn("ignoring command on %.*s: %s",
			         (int)(topic_len > 200 ? 200 : topic_len), topic, err);
		return;
	}
	atomic_fetch_add(&s->commands, 1);
	int r = gen_heatpump_set(s->g, cmd.site, cmd.site_len, cmd.device, cmd.device_len, cmd.on);
	if (r < 0)
		atomic_fetch_add(&s->unknown_room, 1);
	else if (r > 0)
		log_debug("heat pump %.*s/%.*s %s", (int)cmd.site_len, cmd.site,
		          (int)cmd.device_len, cmd.device, cmd.on ? "on" : "off");
}

static void on_publish_done(void *ctx, void *msg_ctx, bool ok, const char *reason)
{
	struct sim *s = ctx;
	(void)msg_ctx;
	if (ok)
		return;
	uint64_t n = atomic_fetch_add(&s->failures_logged, 1);
	if (n < 5)
		log_warn("publish failed: %s", reason);
	else if (n == 5)
		log_warn("more publishes failed; counting them without logging");
}

/* Steady pacing on an absolute schedule, so sleeping late catches up instead of drifting. */
struct pacer {
	double rate;
	int64_t t0_ns;
	uint64_t n;
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void pacer_wait(struct pacer *p, int64_t end_ns)
{
	if (p->rate <= 0)
		return;
	int64_t now = mono_ns();
	if (p->n == 0)
		p->t0_ns = now;
	int64_t due = p->t0_ns + (int64_t)((double)p->n * 1e9 / p->rate);
	/* After a stall (broker busy, window full) resume the rate rather than bursting. */
	if (now - due > 1000000000LL) {
		p->t0_ns = now - (int64_t)((double)p->n * 1e9 / p->rate);
		due = now;
	}
	if (end_ns > 0 && due > end_ns)
		due = end_ns;
	if (due > now) {
		struct timespec ts = {.tv_sec = due / 1000000000LL, .tv_nsec = due % 1000000000LL};
		clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	}
	p->n++;
}

static bool keep_going(uint64_t sent, int64_t end_ns)
{
	if (!lifecycle_running())
		return false;
	if (opt.count > 0 && sent >= (uint64_t)opt.count)
		return false;
	return end_ns == 0 || mono_ns() < end_ns;
}

/* The next message: 1, or 0 when event times ran out (the run ends normally), or -1 when out of
 * memory (logged). */
static int next_message(struct gen *g, int64_t now_ms, struct gen_msg *m)
{
	int r = gen_next(g, now_ms, m);
	if (r == GEN_END_OF_TIME) {
		log_warn("event times would pass the year 9999: stopping");
		return 0;
	}
	if (r < 0) {
		log_error("out of memory");
		return -1;
	}
	return 1;
}

/* Writes RawMessage records, one JSON line each. Returns the exit status: 0, or 1 after logging
 * why. */
static int run_stdout(struct gen *g, struct tally *t)
{
	char err[256];
	int ret = 1;
	struct gen_msg m = {0};
	struct buf line = {0};
	json_t *rec = NULL;
	if (records_init(err, sizeof(err)) < 0) {
		log_error("records: %s", err);
		return 1;
	}
	const struct avro_schema *schema = records_schema(REC_RAW_MESSAGE);
	rec = json_object();
	if (!rec || json_object_set_new(rec, "source", json_string(opt.source)) ||
	    json_object_set_new(rec, "qos", json_integer(opt.qos)) ||
	    json_object_set_new(rec, "retained", json_boolean(opt.retain)))
		goto oom;
	static char obuf[1 << 16];
	setvbuf(stdout, obuf, _IOFBF, sizeof(obuf));
	struct pacer p = {.rate = opt.rate};
	int64_t start = mono_ns();
	int64_t end_ns = opt.duration_ms > 0 ? start + opt.duration_ms * 1000000LL : 0;
	while (keep_going(t->messages, end_ns)) {
		pacer_wait(&p, end_ns);
		int64_t now = now_wall_ms();
		int more = next_message(g, now, &m);
		if (more < 0)
			goto out;
		if (more == 0)
			break;
		/* Bytes fields hold raw bytes (avro.h): the payload goes in unchecked. */
		if (json_object_set_new(rec, "topic", json_string((char *)m.topic.data)) ||
		    json_object_set_new(
		        rec, "payload",
		        json_stringn_nocheck((char *)m.payload.data, m.payload.len)) ||
		    json_object_set_new(rec, "received_at",
		                        json_integer(opt.start_ts ? m.time_ms : now)))
			goto oom;
		buf_reset(&line);
		if (jsonl_format(schema, rec, &line, err, sizeof(err)) < 0) {
			log_error("RawMessage for %s: %s", (char *)m.topic.data, err);
			goto out;
		}
		if (fwrite(line.data, 1, line.len, stdout) != line.len) {
			log_error("stdout: %s", strerror(errno));
			goto out;
		}
		tally_add(t, &m);
	}
	if (fflush(stdout) != 0) {
		log_error("stdout: %s", strerror(errno));
		goto out;
	}
	t->elapsed_ms = (mono_ns() - start) / 1000000;
	ret = 0;
	goto out;
oom:
	log_error("out of memory");
out:
	json_decref(rec);
	buf_free(&line);
	gen_msg_free(&m);
	records_shutdown();
	return ret;
}

/* The MQTT client, with the closed loop's subscription unless it is off. Returns NULL with the
 * reason (the options are unusable). */
static struct mqtt_client *sim_client_new(struct sim *s, char *err, size_t errlen)
{
	static char client_id[64];
	struct mqtt_options mo;
	mqtt_options_init(&mo);
	if (!opt.mqtt.client_id) {
		snprintf(client_id, sizeof(client_id), "sensor-sim-%ld", (long)getpid());
		opt.mqtt.client_id = client_id;
	}
	if (mqtt_cli_apply(&opt.mqtt, &mo, err, errlen) < 0)
		return NULL;
	static const struct mqtt_sub sub = {CONTROL_FILTER, 1};
	mo.max_inflight = (int)opt.inflight;
	mo.subs = opt.no_control ? NULL : &sub;
	mo.nsubs = opt.no_control ? 0 : 1;
	mo.on_message = on_command;
	mo.on_publish_done = on_publish_done;
	mo.ctx = s;
	return mqtt_client_new(&mo, err, errlen);
}

/* Publishes to MQTT and waits for the acknowledgements. Returns the exit status: 0 when every
 * publish was confirmed, else 1 (after logging why). */
static int run_mqtt(struct sim *s, struct mqtt_client *c, struct tally *t)
{
	char err[512];
	int ret = 1;
	struct gen *g = s->g;
	struct gen_msg m = {0};
	if (mqtt_connect(c, (int)opt.connect_ms, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}

	struct pacer p = {.rate = opt.rate};
	int64_t start = mono_ns(), last_report = start;
	int64_t end_ns = opt.duration_ms > 0 ? start + opt.duration_ms * 1000000LL : 0;
	bool failed = false;
	while (keep_going(t->messages, end_ns)) {
		pacer_wait(&p, end_ns);
		int more = next_message(g, now_wall_ms(), &m);
		if (more <= 0) {
			failed = more < 0;
			break;
		}
		int rc;
		/* A full window means the broker is behind (or away): wait, but keep an ear on
		 * stop requests. */
		while ((rc = mqtt_publish(c, (char *)m.topic.data, m.payload.data, m.payload.len,
		                          (int)opt.qos, opt.retain, 200, NULL, err, sizeof(err))) ==
		           MQTT_BUSY &&
		       lifecycle_running())
			;
		if (rc == MQTT_BUSY)
			break; /* stopping; this message was never handed over */
		if (rc < 0) {
			log_error("%s", err);
			failed = true;
			break;
		}
		tally_add(t, &m);
		int64_t now = mono_ns();
		if (now - last_report >= 10000000000LL) {
			struct mqtt_stats ms;
			mqtt_client_stats(c, &ms);
			log_info("published %" PRIu64 " (%.0f msg/s), confirmed %" PRIu64
			         ", failed %" PRIu64 ", in flight %d",
			         ms.published, (double)t->messages * 1e9 / (double)(now - start),
			         ms.confirmed, ms.failed, ms.inflight);
			last_report = now;
		}
	}

	int left = mqtt_flush(c, (int)opt.drain_ms);
	t->elapsed_ms = (mono_ns() - start) / 1000000;
	if (left > 0)
		log_error("%d publishes still unacknowledged after %lld ms", left, opt.drain_ms);
	if (mqtt_disconnect(c, 1000, err, sizeof(err)) < 0)
		log_warn("%s", err);

	struct mqtt_stats ms;
	mqtt_client_stats(c, &ms);
	t->published = ms.published;
	t->confirmed = ms.confirmed;
	t->failed = ms.failed;
	t->unconfirmed = (uint64_t)ms.inflight;
	t->reconnects = ms.reconnects;
	ret = failed || ms.failed > 0 || ms.inflight > 0 ? 1 : 0;
out:
	t->commands = atomic_load(&s->commands);
	t->commands_unknown_room = atomic_load(&s->unknown_room);
	t->commands_bad = atomic_load(&s->bad_commands);
	gen_msg_free(&m);
	return ret;
}

/* Milliseconds since the epoch from digits, or from an ISO 8601 UTC date-time. */
static int parse_start_ts(const char *s, int64_t *out)
{
	char *end;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (!errno && end != s && !*end && v >= 0) {
		*out = v;
		return 0;
	}
	struct tm tm = {0};
	const char *rest = strptime(s, "%Y-%m-%d", &tm);
	if (!rest)
		return -1;
	if (*rest == 'T' || *rest == ' ') {
		rest = strptime(rest + 1, "%H:%M:%S", &tm);
		if (!rest)
			return -1;
	}
	if (*rest == 'Z')
		rest++;
	if (*rest)
		return -1;
	time_t t = timegm(&tm);
	if (t < 0)
		return -1;
	*out = (int64_t)t * 1000;
	return 0;
}

static int write_summary(const struct tally *t)
{
	json_t *j = tally_json(t);
	if (!j) {
		log_error("summary: out of memory");
		return -1;
	}
	int r;
	if (strcmp(opt.summary, "-") == 0) {
		r = json_dumpf(j, stderr, JSON_COMPACT);
		fputc('\n', stderr);
	} else {
		FILE *f = fopen(opt.summary, "w");
		r = f ? json_dumpf(j, f, JSON_COMPACT) : -1;
		if (f && (fputc('\n', f) == EOF || fclose(f) != 0))
			r = -1;
		if (r < 0)
			log_error("summary %s: %s", opt.summary, strerror(errno));
	}
	json_decref(j);
	return r < 0 ? -1 : 0;
}

int main(int argc, char **argv)
{
	config_parse(&spec, argc, argv);

	struct gen_config gc;
	gen_config_init(&gc);
	int f = gen_format_parse(opt.format);
	if (f < 0)
		config_die(
		    "--format: '%s' is not one of factory, factory-human, factory-type, home, "
		    "power, temperature, bare, batch, mixed",
		    opt.format);
	gc.format = (enum gen_format)f;
	gc.sites = (long)opt.sites;
	gc.devices = (long)opt.devices;
	gc.sensors = (long)opt.sensors;
	gc.batch = (int)opt.batch;
	gc.invalid = opt.invalid;
	gc.seed = (uint64_t)opt.seed;
	gc.step_ms = opt.step_ms;
	gc.time_scale = opt.time_scale;
	if (opt.rate > 0 && opt.rate < 0.001)
		config_die("--rate: %g is below the slowest rate, 0.001 messages/s", opt.rate);
	if (opt.start_ts) {
		if (parse_start_ts(opt.start_ts, &gc.start_ts) < 0)
			config_die("--start-ts: '%s' is neither milliseconds since the epoch nor "
			           "YYYY-MM-DD[THH:MM:SS[Z]]",
			           opt.start_ts);
		gc.backfill = true;
	}
	char err[512];
	struct gen *g = gen_new(&gc, err, sizeof(err));
	if (!g)
		config_die("%s", err);
	struct sim s = {.g = g};
	struct mqtt_client *c = NULL;
	if (!opt.to_stdout && !(c = sim_client_new(&s, err, sizeof(err)))) {
		gen_free(g);
		config_die("%s", err);
	}

	lifecycle_init();
	log_info("simulating %ld site(s) x %ld device(s) x %ld sensor(s): %zu streams, format %s, "
	         "%s%s",
	         gc.sites, gc.devices, gc.sensors, gen_streams(g), opt.format,
	         opt.rate > 0 ? "steady rate" : "as fast as possible",
	         gc.backfill ? ", back-fill" : "");
	struct tally t = {.mode = opt.to_stdout ? "stdout" : "mqtt"};
	int r = opt.to_stdout ? run_stdout(g, &t) : run_mqtt(&s, c, &t);
	/* Freed before reading the rooms: no command can arrive any more. */
	mqtt_client_free(c);
	size_t rooms;
	t.heatpumps_on = gen_heatpumps_on(g, &rooms);
	t.rooms = rooms;
	tally_log(&t);
	if (opt.summary && write_summary(&t) < 0 && r == 0)
		r = 1;
	gen_free(g);
	config_free();
	return r;
}
