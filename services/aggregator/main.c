/* aggregator: per-window statistics of the readings, exact across crashes.
 *
 * Reads Reading records (iot.clean) and writes one Aggregate record (iot.aggregates) per group
 * and event-time window, when the partition's watermark (largest event time - grace) passes the
 * window's end. Readings for windows already emitted are late: counted, and sent to --late or
 * dropped. With --in -, end of input closes every window.
 *
 * Delivery: a checkpoint commits, per partition, the oldest offset an open window still needs,
 * with what was already emitted in the commit metadata; a restart rebuilds the open windows from
 * there and skips what was emitted, so every window comes out with the same values however often
 * the process dies (docs/aggregator.md). */
#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "records.h"
#include "service.h"

#include "engine.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
	struct service_opts so;
	long long window_ms, hop_ms, grace_ms, idle_ms, max_windows;
	const char *group_by, *late;
} opt;

static struct opt table[] = {
    SERVICE_OPTS(&opt.so, "iot.clean", "iot.aggregates", "aggregator"),
    {"window", 'w', OPT_DURATION, &opt.window_ms, "60s", NULL, "window size", 0, 1,
     1099511627776.0},
    {"hop", 0, OPT_DURATION, &opt.hop_ms, "0", NULL,
     "start a window every HOP (hopping windows); 0: the window size (tumbling)", 0, 0,
     1099511627776.0},
    {"grace", 0, OPT_DURATION, &opt.grace_ms, "5s", NULL,
     "how far behind the largest event time a reading still counts", 0, 0, 1099511627776.0},
    {"group-by", 0, OPT_STRING, &opt.group_by, "site,device,sensor,metric", "FIELDS",
     "group key: site plus any of device, sensor, metric (the others are *)"},
    {"idle-timeout", 0, OPT_DURATION, &opt.idle_ms, "30s", NULL,
     "after this long without input a partition's event time follows the clock (0: never)", 0, 0,
     1099511627776.0},
    {"late", 0, OPT_STRING, &opt.late, "iot.late", "drop|TOPIC|FILE",
     "where late readings go (without brokers: a file, else stderr); drop: only count them"},
    {"max-windows", 0, OPT_INT, &opt.max_windows, "100000", "N",
     "open windows at most, all partitions together (about 300 bytes + 16 per reading each)", 0, 1,
     1073741824.0},
    {NULL},
};

static const struct config_spec spec = {
    "aggregator", "Per-window statistics of readings: count, mean, min, max, stddev, first, last.",
    "Windows are aligned to the epoch; a window is emitted once, when the watermark passes its\n"
    "end. Exceeding --max-windows stops the service (exit 1): raise it, or shorten --window or\n"
    "--grace. With --in -, end of input closes every window.\n"
    "Example:\n"
    "  aggregator -b localhost:9092 --group-by site,metric --window 1m --grace 10s\n"
    "  cleaner --in - --out - < raw.jsonl | aggregator --in - --out - --window 5m",
    table};

static struct {
	struct agg_engine *engine;
	struct stream_out *out, *late; /* late is NULL with --late drop */
	bool on_stdin;
	bool failed;  /* the engine's state can no longer be committed */
	bool holding; /* an idle advance waits for a commit before its windows go out */
	char (*meta)[AGG_META_MAX]; /* metadata last handed to a commit, by partition */
	size_t nmeta;
	struct metric *m_added, *m_duplicate, *m_late, *m_replayed, *m_invalid, *m_aggregates,
	    *m_open;
} agg;

static void metrics_register(void)
{
	static const char *name = "iotpipe_aggregator_readings_total";
	static const char *help = "Readings by what became of them";
	agg.m_added = metrics_counter(name, help, "result=\"added\"");
	agg.m_duplicate = metrics_counter(name, help, "result=\"duplicate\"");
	agg.m_late = metrics_counter(name, help, "result=\"late\"");
	agg.m_replayed = metrics_counter(name, help, "result=\"replayed\"");
	agg.m_invalid = metrics_counter(name, help, "result=\"invalid\"");
	agg.m_aggregates =
	    metrics_counter("iotpipe_aggregator_aggregates_total", "Aggregates emitted", NULL);
	agg.m_open = metrics_gauge("iotpipe_aggregator_open_windows",
	                           "Windows open or waiting for a commit", NULL);
}

/* The first problems in full, then a sample, so a flood of bad input cannot flood the log. */
static void log_sampled(struct metric *counter, const char *what, const char *err)
{
	double n = metric_value(counter);
	if (n <= 10 || (long long)n % 1000 == 0)
		log_warn("%s: %s (%.0f so far)", what, err, n);
}

/* ---- engine callbacks and stream hooks ---- */

static int emit_aggregate(void *ctx, int32_t partition, json_t *aggregate, char *err, size_t errlen)
{
	(void)ctx;
	(void)partition;
	const json_t *site = json_object_get(aggregate, "site");
	if (stream_put(agg.out, json_string_value(site), json_string_length(site), aggregate, 0,
	               NULL) < 0) {
		snprintf(err, errlen, "cannot write an aggregate to %s",
		         stream_output_name(agg.out));
		return -1;
	}
	metric_add(agg.m_aggregates, 1);
	return 0;
}

static void on_assign(void *ctx, const char *topic, int32_t partition, int64_t committed,
                      const char *metadata)
{
	(void)ctx;
	char err[512];
	enum agg_status rc = agg_engine_restore(
	    agg.engine, partition, committed >= 0 ? committed : -1, metadata, err, sizeof(err));
	if (rc != AGG_OK) {
		/* Starting over from an offset without its metadata would emit partial windows. */
		log_error("%s [%d]: %s; stopping (use another --group, or reset this group's "
		          "offsets)",
		          topic, (int)partition, err);
		agg.failed = true;
		lifecycle_request_stop();
	} else if (committed >= 0 && !*metadata) {
		log_warn("%s [%d]: offset %lld was committed without window metadata: windows open "
		         "there are rebuilt from it and their first aggregates may be partial",
		         topic, (int)partition, (long long)committed);
	} else if (*metadata) {
		log_info("%s [%d]: resuming at offset %lld, %s", topic, (int)partition,
		         (long long)committed, metadata);
	}
}

static void on_revoke(void *ctx, const char *topic, int32_t partition)
{
	(void)ctx;
	(void)topic;
	agg_engine_drop(agg.engine, partition);
}

static void meta_remember(int32_t partition, const char *metadata)
{
	if ((size_t)partition >= agg.nmeta) {
		size_t n = (size_t)partition + 1;
		char(*m)[AGG_META_MAX] = realloc(agg.meta, n * sizeof(*m));
		if (!m)
			return; /* the held windows then wait for the next commit */
		memset(m + agg.nmeta, 0, (n - agg.nmeta) * sizeof(*m));
		agg.meta = m;
		agg.nmeta = n;
	}
	snprintf(agg.meta[partition], sizeof(agg.meta[partition]), "%s", metadata);
}

static int64_t commit_position(void *ctx, const char *topic, int32_t partition, int64_t next_offset,
                               char *metadata, size_t metadata_len)
{
	(void)ctx;
	(void)topic;
	char err[256];
	struct agg_commit c;
	struct agg_counters before, after;
	/* Records the stream dead-lettered never reached the engine: they are behind us too. */
	agg_engine_counters(agg.engine, &before);
	if (next_offset > 0 &&
	    agg_engine_skip(agg.engine, partition, next_offset - 1, err, sizeof(err)) != AGG_OK) {
		log_error("%s", err);
		agg.failed = true;
		return -1;
	}
	/* Moving past them can bring a restored idle advance due, whose windows the engine emits
	 * now: after this checkpoint's flush. A commit saying they were emitted must wait for the
	 * next checkpoint, which acknowledges them first. */
	agg_engine_counters(agg.engine, &after);
	if (after.emitted != before.emitted)
		return -1;
	if (!agg_engine_commit_point(agg.engine, partition, &c))
		return -1;
	snprintf(metadata, metadata_len, "%s", c.metadata);
	meta_remember(partition, c.metadata);
	return c.offset;
}

/* A failed engine must not commit: its position would claim work it did not finish. */
static int flush_check(void *ctx)
{
	(void)ctx;
	return agg.failed ? -1 : 0;
}

/* Consumer defaults, before the user's -X. A backlog (a restart after an outage) would otherwise
 * be prefetched up to librdkafka's 64 MiB queue and 50 MB fetches, next to the open windows;
 * 16 MiB of queued readings (about 250,000) keep the engine fed all the same. */
static const char *const consumer_defaults[] = {"queued.max.messages.kbytes", "16384",
                                                "fetch.max.bytes", "8388608", NULL};

/* ---- the loop ---- */

static void reading_handle(const struct stream_msg *m)
{
	char err[512];
	/* stdin has no partitions: one stream, offsets are line numbers. */
	int32_t partition = m->partition < 0 ? 0 : m->partition;
	struct agg_reading r;
	struct agg_outcome out;
	enum agg_status rc;

	if (agg_reading_from_json(m->rec, &r, err, sizeof(err)) < 0)
		rc = AGG_INVALID;
	else
		rc = agg_engine_add(agg.engine, partition, m->offset, &r, &out, err, sizeof(err));
	if (rc == AGG_INVALID) {
		metric_add(agg.m_invalid, 1);
		log_sampled(agg.m_invalid, "reading refused", err);
		/* Refused before the engine saw it: the position still moves past it. */
		rc = agg_engine_skip(agg.engine, partition, m->offset, err, sizeof(err));
		if (rc == AGG_OK)
			return;
	}
	if (rc != AGG_OK) {
		log_error(
		    "%s; stopping without committing (a restart resumes from the last commit)",
		    err);
		agg.failed = true;
		lifecycle_request_stop();
		return;
	}
	if (out.late) {
		metric_add(agg.m_late, 1);
		if (agg.late && stream_put(agg.late, r.key[AGG_SITE].s, r.key[AGG_SITE].len, m->rec,
		                           0, NULL) < 0)
			log_error("cannot write a late reading to %s",
			          stream_output_name(agg.late));
	} else if (out.added) {
		metric_add(agg.m_added, 1);
	} else if (out.duplicate) {
		metric_add(agg.m_duplicate, 1);
	} else if (out.replayed) {
		metric_add(agg.m_replayed, 1);
	}
}

/* Windows closed by an idle advance go out once a commit carries the advance. On stdin there is
 * nothing to commit and no later run to protect, so they go out at once. */
static void held_release(struct stream *s)
{
	char err[512];
	enum agg_status rc = AGG_OK;
	if (agg.on_stdin) {
		struct agg_commit c;
		if (agg_engine_commit_point(agg.engine, 0, &c))
			rc = agg_engine_committed(agg.engine, 0, c.metadata, err, sizeof(err));
	} else {
		/* A commit that fails leaves the windows held: the next attempt commits again. */
		if (stream_checkpoint(s) < 0)
			return;
		for (size_t p = 0; p < agg.nmeta && rc == AGG_OK; p++)
			if (agg.meta[p][0])
				rc = agg_engine_committed(agg.engine, (int32_t)p, agg.meta[p], err,
				                          sizeof(err));
	}
	if (rc != AGG_OK) {
		log_error("%s; stopping without committing", err);
		agg.failed = true;
		lifecycle_request_stop();
	}
}

/* Lets idle partitions close their windows with the wall clock (every 100 ms at most), and
 * retries releasing held windows while a commit has not carried them yet. */
static void idle_tick(struct stream *s)
{
	static int64_t next_tick, next_release;
	char err[512];
	int64_t now = now_mono_ms();
	if (now < next_tick || agg.failed)
		return;
	next_tick = now + 100;
	int started = agg_engine_advance_idle(agg.engine, now_wall_ms(), err, sizeof(err));
	if (started < 0) {
		log_error("%s; stopping without committing", err);
		agg.failed = true;
		lifecycle_request_stop();
		return;
	}
	struct agg_counters c;
	agg_engine_counters(agg.engine, &c);
	metric_set(agg.m_open, (double)c.open_windows);
	if (c.held_windows && (started > 0 || now >= next_release)) {
		next_release = now + 1000;
		held_release(s);
	}
}

int main(int argc, char **argv)
{
	char err[512];
	config_parse(&spec, argc, argv);
	if (strchr(opt.so.in, ',') || opt.so.in[0] == '^')
		config_die("--in: the aggregator reads one topic, not '%s'", opt.so.in);
	struct agg_config cfg = {
	    .window = {.size_ms = opt.window_ms, .hop_ms = opt.hop_ms ? opt.hop_ms : opt.window_ms},
	    .grace_ms = opt.grace_ms,
	    .idle_timeout_ms = opt.idle_ms,
	    .max_windows = (size_t)opt.max_windows,
	    .emit = emit_aggregate,
	};
	if (agg_group_by_parse(opt.group_by, &cfg.group_by, err, sizeof(err)) < 0)
		config_die("--group-by: %s", err);
	if (agg_config_check(&cfg, err, sizeof(err)) < 0)
		config_die("%s", err);
	if (service_start(&opt.so) < 0) {
		config_free();
		return 1;
	}
	metrics_register();
	agg.on_stdin = strcmp(opt.so.in, "-") == 0;

	int rc = 1;
	struct stream *s = NULL;
	struct stream_hooks hooks = {NULL, on_assign, on_revoke, commit_position, flush_check};
	if (!(agg.engine = agg_engine_new(&cfg, err, sizeof(err)))) {
		log_error("%s", err);
		goto out;
	}
	if (!(s = service_stream_with(&opt.so, REC_READING, &hooks, consumer_defaults)) ||
	    !(agg.out = service_output(s, opt.so.out, REC_AGGREGATE)) ||
	    (strcmp(opt.late, "drop") != 0 &&
	     !(agg.late = service_output(s, opt.late, REC_READING))))
		goto out;
	log_info("reading %s, aggregates to %s, late readings to %s; window %lld ms, hop %lld ms, "
	         "grace %lld ms, group-by %s",
	         opt.so.in, opt.so.out, opt.late, opt.window_ms, (long long)cfg.window.hop_ms,
	         opt.grace_ms, opt.group_by);
	metrics_set_ready(true);

	while (lifecycle_running() && !agg.failed) {
		struct stream_msg *m;
		int got = stream_poll(s, &m, 100);
		if (got == STREAM_END)
			break;
		if (got == STREAM_RECORD)
			reading_handle(m);
		idle_tick(s);
	}
	/* On stdin nothing could rebuild open windows later: end of input (or a stop) closes them.
	 * From Kafka they stay open: the commit keeps their readings for the next run. */
	if (agg.on_stdin && !agg.failed && !stream_failed(s) &&
	    agg_engine_close_all(agg.engine, err, sizeof(err)) != AGG_OK) {
		log_error("%s", err);
		agg.failed = true;
	}
	log_info("stopping: confirming outputs%s", agg.failed ? "" : " and committing");
	rc = agg.failed ? 1 : 0;
out:
	if (s) {
		/* Final checkpoint: outputs acknowledged, then offsets committed (not after a
		 * failure: flush_check refuses). */
		if (service_stop(s) != 0)
			rc = 1;
	} else {
		metrics_shutdown();
		records_shutdown();
		config_free();
	}
	agg_engine_free(agg.engine);
	free(agg.meta);
	return rc;
}
