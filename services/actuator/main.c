/* actuator: closes the loop from readings back to devices.
 *
 * Reads Reading records (iot.clean) and runs each through the rules file: when a device's wanted
 * state changes (below low, above high) it publishes the rule's command over MQTT, QoS 1 and
 * retained by default, and records it as a Command (--out, iot.commands: the audit log); when a
 * sensor goes above a rule's threshold and later back below threshold - hysteresis it reports
 * the episode as ThresholdEvent records (--events, iot.events). SIGHUP reloads the rules file;
 * a file that does not parse leaves the rules in force.
 *
 * Delivery: a checkpoint commits input offsets only after Kafka acknowledged the records and the
 * broker every publish. The commit is the earliest offset an open episode still needs, with the
 * offset up to which outputs went out in its metadata, so after kill -9 episodes are rebuilt by
 * replay and nothing already sent is sent again (docs/actuator.md). A publish the broker
 * refuses makes the engine forget that command, so the next reading sends it again. */
#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "mqtt.h"
#include "records.h"
#include "service.h"

#include "actuator.h"
#include "output.h"
#include "rules.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
	struct service_opts so;
	const char *rules, *events;
	long long reassert_ms, max_states;
	struct mqtt_cli mqtt;
} opt;

static struct opt table[] = {
    SERVICE_OPTS(&opt.so, "iot.clean", "iot.commands", "actuator"),
    {"rules", 'r', OPT_STRING, &opt.rules, NULL, "FILE",
     "rules file: thresholds, command templates, episodes (see docs/actuator.md)", OPT_REQUIRED},
    {"events", 0, OPT_STRING, &opt.events, "iot.events", "TOPIC|FILE",
     "where ThresholdEvent records go (without brokers: a file, else stderr)"},
    {"reassert", 0, OPT_DURATION, &opt.reassert_ms, "0", NULL,
     "publish each device's last command again after this long (0: never)", 0, 0, 31536000000.0},
    {"max-states", 0, OPT_INT, &opt.max_states, "1000000", "N",
     "sensor states kept at most, all rules together (about 200 bytes each)", 0, 1, 1e9},
    MQTT_CLI_OPTS(&opt.mqtt, NULL, NULL, "0"),
    {NULL},
};

static const struct config_spec spec = {
    "actuator", "Turn readings into device commands (MQTT) and threshold events, by rules.",
    "Without --mqtt, commands are recorded (--out) but not published.\n"
    "The client id defaults to actuator-<hostname>. SIGHUP reloads the rules file.\n"
    "Example:\n"
    "  actuator -b localhost:9092 --rules examples/rules/actuator.rules \\\n"
    "           --mqtt mqtt://broker:1883 --reassert 10m\n"
    "  cleaner --in - --out - < raw.jsonl | actuator --in - --out - --rules my.rules",
    table};

/* A publish in flight: what to forget if the broker refuses it. One allocation, strings after
 * the struct; freed on paho's thread when confirmed, on the main thread when failed. */
struct pub {
	struct pub *next;
	enum side side;
	int64_t received_at; /* the triggering reading's, for the latency metric; 0 if unknown */
	const char *site, *device, *sensor;
	char reason[160];
	char rule[];
};

static struct {
	struct actuator *engine;
	struct mqtt_client *mqtt;
	struct stream_out *commands, *events;
	int64_t received_at;  /* of the reading being processed */
	bool unconfirmed;     /* publishes were left unconfirmed at shutdown: do not commit */
	pthread_mutex_t lock; /* guards failed */
	struct pub *failed;
	struct actuator_stats exported;
	struct metric *m_invalid, *m_publish_failed, *m_latency, *m_states, *m_open, *m_reload_ok,
	    *m_reload_bad;
} act = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* The engine's counters, exported as Prometheus counters by difference. */
static const struct {
	size_t offset;
	const char *name, *help;
} stat_metrics[] = {
    {offsetof(struct actuator_stats, readings), "iotpipe_actuator_readings_total",
     "Readings processed"},
    {offsetof(struct actuator_stats, duplicates), "iotpipe_actuator_duplicates_total",
     "Readings at offsets already processed, ignored"},
    {offsetof(struct actuator_stats, stale), "iotpipe_actuator_stale_total",
     "Readings no newer than their sensor's last one (repeats from an upstream replay), ignored"},
    {offsetof(struct actuator_stats, commands), "iotpipe_actuator_commands_total",
     "Commands issued (state changes)"},
    {offsetof(struct actuator_stats, events), "iotpipe_actuator_events_total",
     "Threshold events emitted"},
    {offsetof(struct actuator_stats, replayed), "iotpipe_actuator_replayed_total",
     "Outputs withheld while replaying what a previous run already emitted"},
    {offsetof(struct actuator_stats, refused), "iotpipe_actuator_refused_total",
     "Commands not published: an identifier is not allowed in a topic"},
    {offsetof(struct actuator_stats, state_full), "iotpipe_actuator_state_full_total",
     "Readings a rule could not track: --max-states reached"},
    {offsetof(struct actuator_stats, reasserted), "iotpipe_actuator_reasserted_total",
     "Commands published again by --reassert"},
    {offsetof(struct actuator_stats, errors), "iotpipe_actuator_errors_total",
     "Commands not issued for lack of memory"},
};
static struct metric *stat_metric[sizeof(stat_metrics) / sizeof(*stat_metrics)];

static void metrics_register(void)
{
	for (size_t i = 0; i < sizeof(stat_metrics) / sizeof(*stat_metrics); i++)
		stat_metric[i] = metrics_counter(stat_metrics[i].name, stat_metrics[i].help, NULL);
	act.m_invalid = metrics_counter("iotpipe_actuator_invalid_readings_total",
	                                "Readings without a usable identity, value or time", NULL);
	act.m_publish_failed = metrics_counter("iotpipe_actuator_publish_failed_total",
	                                       "Commands the broker did not confirm", NULL);
	act.m_latency = metrics_histogram("iotpipe_actuator_publish_seconds",
	                                  "From the reading's receipt to the broker's confirmation "
	                                  "of its command",
	                                  NULL, metrics_latency_buckets, metrics_latency_nbuckets);
	act.m_states = metrics_gauge("iotpipe_actuator_states", "Sensor states tracked", NULL);
	act.m_open = metrics_gauge("iotpipe_actuator_open_episodes", "Episodes in progress", NULL);
	act.m_reload_ok = metrics_counter("iotpipe_actuator_reloads_total",
	                                  "Rules file reloads by result", "result=\"ok\"");
	act.m_reload_bad = metrics_counter("iotpipe_actuator_reloads_total",
	                                   "Rules file reloads by result", "result=\"error\"");
}

static void metrics_export(void)
{
	const struct actuator_stats *st = actuator_stats(act.engine);
	for (size_t i = 0; i < sizeof(stat_metrics) / sizeof(*stat_metrics); i++) {
		const uint64_t *now = (const uint64_t *)((const char *)st + stat_metrics[i].offset);
		uint64_t *done = (uint64_t *)((char *)&act.exported + stat_metrics[i].offset);
		if (*now != *done)
			metric_add(stat_metric[i], (double)(*now - *done));
		*done = *now;
	}
	metric_set(act.m_states, (double)actuator_state_count(act.engine));
	metric_set(act.m_open, (double)actuator_open_episodes(act.engine));
}

/* One line per problem, but a flood must not drown the log: the first 10, then every 1000th. */
static void warn_counted(uint64_t count, const char *what, const char *err)
{
	if (count <= 10 || count % 1000 == 0)
		log_warn("%s: %s (%llu so far)", what, err, (unsigned long long)count);
}

/* ---- outputs ---- */

static void failed_push(struct pub *p)
{
	pthread_mutex_lock(&act.lock);
	p->next = act.failed;
	act.failed = p;
	pthread_mutex_unlock(&act.lock);
}

static void on_publish_done(void *ctx, void *msg_ctx, bool ok, const char *reason)
{
	(void)ctx;
	struct pub *p = msg_ctx;
	if (ok) {
		if (p->received_at > 0)
			metric_observe(act.m_latency,
			               (double)(now_wall_ms() - p->received_at) / 1000.0);
		free(p);
		return;
	}
	snprintf(p->reason, sizeof(p->reason), "%s", reason ? reason : "unknown");
	failed_push(p);
}

static struct pub *pub_new(const struct act_command *c)
{
	size_t lr = strlen(c->rule) + 1, ls = strlen(c->site) + 1, ld = strlen(c->device) + 1,
	       lz = strlen(c->sensor) + 1;
	struct pub *p = calloc(1, sizeof(*p) + lr + ls + ld + lz);
	if (!p)
		return NULL;
	p->side = c->side;
	p->received_at = act.received_at;
	memcpy(p->rule, c->rule, lr);
	p->site = memcpy(p->rule + lr, c->site, ls);
	p->device = memcpy(p->rule + lr + ls, c->device, ld);
	p->sensor = memcpy(p->rule + lr + ls + ld, c->sensor, lz);
	return p;
}

/* Publishes a command, waiting while the in-flight window is full (backpressure on the input).
 * Returns 0 when the broker will report on it, -1 with the reason when it could not even be
 * queued. */
static int command_publish(const struct act_command *c, char *err, size_t errlen)
{
	struct pub *p = pub_new(c);
	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (int tries = 0;; tries++) {
		int rc = mqtt_publish(act.mqtt, c->topic, c->payload, strlen(c->payload), c->qos,
		                      c->retained, 1000, p, err, errlen);
		if (rc == 0)
			return 0;
		if (rc < 0 || (!lifecycle_running() && tries >= 5)) {
			if (rc > 0)
				snprintf(err, errlen, "the broker is not taking publishes");
			free(p);
			return -1;
		}
	}
}

static void on_command(void *ctx, const struct act_command *c)
{
	(void)ctx;
	char err[512];
	if (act.mqtt && command_publish(c, err, sizeof(err)) < 0) {
		/* Not sent, so not recorded; forgotten once this reading is done (not from here:
		 * the engine is busy calling us). */
		struct pub *p = pub_new(c);
		if (p) {
			snprintf(p->reason, sizeof(p->reason), "not queued: %.140s", err);
			failed_push(p);
		}
		return;
	}
	json_t *rec = act_command_to_json(c);
	if (!rec || stream_put(act.commands, c->site, strlen(c->site), rec, 0, NULL) < 0)
		log_error("cannot record the command to %s", c->topic);
	json_decref(rec);
}

static void on_event(void *ctx, const struct act_event *e)
{
	(void)ctx;
	json_t *rec = act_event_to_json(e);
	if (!rec || stream_put(act.events, e->site, strlen(e->site), rec, 0, NULL) < 0)
		log_error("cannot write the %s event of rule %s",
		          e->state == EPISODE_STARTED ? "started" : "ended", e->rule);
	json_decref(rec);
}

static const struct act_sink sink = {on_command, on_event, NULL};

/* Publishes the broker refused: the engine forgets them so the next reading resends. */
static void publish_failures_drain(void)
{
	pthread_mutex_lock(&act.lock);
	struct pub *p = act.failed;
	act.failed = NULL;
	pthread_mutex_unlock(&act.lock);
	while (p) {
		struct pub *next = p->next;
		metric_add(act.m_publish_failed, 1);
		log_warn("command of rule %s for %s/%s/%s (%s) not confirmed: %s; it will be sent "
		         "again on the next reading beyond the threshold",
		         p->rule, p->site, p->device, p->sensor, side_name(p->side), p->reason);
		if (act.engine)
			actuator_command_forget(act.engine, p->rule, p->site, p->device, p->sensor,
			                        p->side);
		free(p);
		p = next;
	}
}

/* ---- stream hooks ---- */

static void on_assign(void *ctx, const char *topic, int32_t partition, int64_t committed,
                      const char *metadata)
{
	(void)ctx;
	char err[256];
	if (actuator_partition_restore(act.engine, partition, metadata, err, sizeof(err)) < 0)
		log_warn("%s: %s; replayed events will be sent again (same identity)", topic, err);
	else if (metadata && *metadata)
		log_info("%s [%d]: resuming at %lld, %s", topic, (int)partition,
		         (long long)committed, metadata);
}

static void on_revoke(void *ctx, const char *topic, int32_t partition)
{
	(void)ctx;
	(void)topic;
	actuator_partition_drop(act.engine, partition);
}

static int64_t commit_position(void *ctx, const char *topic, int32_t partition, int64_t next_offset,
                               char *metadata, size_t metadata_len)
{
	(void)ctx;
	(void)topic;
	char err[128];
	int64_t off = next_offset;
	/* Records the stream skipped (dead letters) never reached the engine: mark them done. */
	if (next_offset > 0 &&
	    actuator_skip(act.engine, partition, next_offset - 1, err, sizeof(err)) < 0)
		return -1;
	if (actuator_commit_point(act.engine, partition, &off, metadata, metadata_len) == 0)
		metadata[0] = 0;
	return off;
}

/* Commands must be confirmed by the broker before their readings are committed. */
static int flush_publishes(void *ctx)
{
	(void)ctx;
	if (!act.mqtt)
		return act.unconfirmed ? -1 : 0;
	int pending = mqtt_flush(act.mqtt, 5000);
	publish_failures_drain();
	if (pending > 0) {
		log_warn("%d commands not yet confirmed by the broker: not committing", pending);
		return -1;
	}
	return 0;
}

/* ---- main loop ---- */

static void rules_reload(void)
{
	char err[1024];
	struct ruleset *rs = rules_load(opt.rules, err, sizeof(err));
	struct act_reload_report rep;
	if (!rs || actuator_rules_replace(act.engine, rs, &rep, err, sizeof(err)) < 0) {
		rules_free(rs);
		metric_add(act.m_reload_bad, 1);
		log_error("reload: %s; keeping the rules in force", err);
		return;
	}
	metric_add(act.m_reload_ok, 1);
	log_info("reloaded %s: %zu rules (%zu kept their state); dropped %zu states and %zu open "
	         "episodes",
	         opt.rules, actuator_rules(act.engine)->len, rep.rules_kept, rep.states_dropped,
	         rep.episodes_dropped);
}

static void reading_handle(const struct stream_msg *m)
{
	char err[512];
	/* stdin has no partitions: one stream, offsets are line numbers. */
	int32_t partition = m->partition < 0 ? 0 : m->partition;
	struct act_reading r;
	if (act_reading_from_json(m->rec, &r, err, sizeof(err)) < 0) {
		metric_add(act.m_invalid, 1);
		warn_counted((uint64_t)metric_value(act.m_invalid), "invalid reading", err);
		actuator_skip(act.engine, partition, m->offset, err, sizeof(err));
		return;
	}
	act.received_at = rec_int(m->rec, "received_at", 0);
	if (actuator_process(act.engine, partition, m->offset, &r, now_wall_ms(), &sink, err,
	                     sizeof(err)) < 0) {
		const struct actuator_stats *st = actuator_stats(act.engine);
		warn_counted(st->refused + st->state_full + st->errors, "reading not acted on",
		             err);
	}
}

/* Checks the MQTT flags before anything starts, so a bad one exits with status 2. */
static void mqtt_flags_apply(struct mqtt_options *mo, char *client_id, size_t len)
{
	char err[512], host[128] = "local";
	mqtt_options_init(mo);
	if (!opt.mqtt.client_id) {
		gethostname(host, sizeof(host) - 1);
		snprintf(client_id, len, "actuator-%s", host);
		opt.mqtt.client_id = client_id;
	}
	if (mqtt_cli_apply(&opt.mqtt, mo, err, sizeof(err)) < 0)
		config_die("%s", err);
	mo->on_publish_done = on_publish_done;
}

static int mqtt_open(const struct mqtt_options *mo)
{
	char err[512];
	if (!(act.mqtt = mqtt_client_new(mo, err, sizeof(err)))) {
		log_error("%s", err);
		return -1;
	}
	/* Keep trying until the broker answers; give up only when it refuses us. */
	while (lifecycle_running() && mqtt_connect(act.mqtt, 10000, err, sizeof(err)) < 0) {
		if (strstr(err, "refused") || strstr(err, "authori") || strstr(err, "password")) {
			log_error(
			    "%s; not retrying: the broker refuses these credentials or options",
			    err);
			return -1;
		}
		log_warn("%s; retrying", err);
	}
	return lifecycle_running() ? 0 : -1;
}

int main(int argc, char **argv)
{
	char err[1024], client_id[200];
	struct mqtt_options mo;
	config_parse(&spec, argc, argv);
	if (strchr(opt.so.in, ',') || opt.so.in[0] == '^')
		config_die("--in: the actuator reads one topic, not '%s'", opt.so.in);
	if (opt.mqtt.url)
		mqtt_flags_apply(&mo, client_id, sizeof(client_id));
	struct ruleset *rs = rules_load(opt.rules, err, sizeof(err));
	if (!rs)
		config_die("--rules: %s", err);
	if (service_start(&opt.so) < 0) {
		rules_free(rs);
		config_free();
		return 1;
	}
	metrics_register();
	struct stream *s = NULL;
	int rc = 1;
	if (!(act.engine = actuator_new(rs, (size_t)opt.max_states, err, sizeof(err)))) {
		log_error("%s", err);
		rules_free(rs);
		goto out;
	}
	if (opt.mqtt.url && mqtt_open(&mo) < 0)
		goto out;
	if (!opt.mqtt.url)
		log_warn("no --mqtt: commands are recorded to %s but not published", opt.so.out);
	struct stream_hooks hooks = {NULL, on_assign, on_revoke, commit_position, flush_publishes};
	if (!(s = service_stream(&opt.so, REC_READING, &hooks)) ||
	    !(act.commands = service_output(s, opt.so.out, REC_COMMAND)) ||
	    !(act.events = service_output(s, opt.events, REC_THRESHOLD_EVENT)))
		goto out;
	log_info("%zu rules from %s; reading %s, commands to %s%s%s, events to %s",
	         actuator_rules(act.engine)->len, opt.rules, opt.so.in,
	         opt.mqtt.url ? opt.mqtt.url : "", opt.mqtt.url ? " and " : "", opt.so.out,
	         opt.events);

	int64_t next_reassert = now_mono_ms();
	while (lifecycle_running()) {
		if (lifecycle_take_reload())
			rules_reload();
		publish_failures_drain();
		if (opt.reassert_ms > 0 && now_mono_ms() >= next_reassert) {
			act.received_at = 0; /* no reading behind a re-assertion */
			actuator_reassert(act.engine, now_wall_ms(), opt.reassert_ms, &sink);
			next_reassert =
			    now_mono_ms() + (opt.reassert_ms < 10000 ? opt.reassert_ms / 10 : 1000);
		}
		struct mqtt_stats ms;
		if (act.mqtt)
			mqtt_client_stats(act.mqtt, &ms);
		metrics_set_ready(!act.mqtt || ms.connected);
		struct stream_msg *m;
		int got = stream_poll(s, &m, 100);
		if (got == STREAM_END) {
			/* End of stdin closes every open episode. From Kafka this means the stream
			 * failed: open episodes are left for the restart to rebuild. */
			if (strcmp(opt.so.in, "-") == 0)
				actuator_close_all(act.engine, &sink);
			break;
		}
		if (got == STREAM_RECORD)
			reading_handle(m);
		metrics_export();
	}
	log_info("stopping: confirming publishes and committing");
	rc = 0;
out:
	/* The client goes first: its last callbacks still count into live metrics, and what it
	 * could not confirm must keep the final checkpoint from committing those readings. */
	if (act.mqtt) {
		act.unconfirmed = mqtt_flush(act.mqtt, 10000) > 0;
		if (mqtt_disconnect(act.mqtt, 5000, err, sizeof(err)) < 0)
			log_warn("MQTT disconnect: %s", err);
		mqtt_client_free(act.mqtt);
		act.mqtt = NULL;
		if (act.unconfirmed)
			log_error("commands left unconfirmed by the broker: their readings stay "
			          "uncommitted and are read again on restart");
	}
	publish_failures_drain();
	if (act.engine)
		metrics_export();
	if (s) {
		/* Final checkpoint: outputs acknowledged, then offsets committed. */
		if (service_stop(s) != 0)
			rc = 1;
	} else {
		rc = 1;
		metrics_shutdown();
		records_shutdown();
		config_free();
	}
	actuator_free(act.engine);
	return rc;
}
