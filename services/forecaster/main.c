/* forecaster: predicts each series' next window mean from the aggregates, and measures how good
 * its predictions were.
 *
 * Reads Aggregate records (iot.aggregates); per series (site, device, sensor, metric, window
 * size) it scores the forecast made for the window that just arrived, lets the model learn the
 * value, and writes a Forecast record for the next window (iot.forecasts). Accuracy (MAE, MAPE,
 * interval coverage) is exported as metrics.
 *
 * State: each series' model, its pending forecast and its error sums live in a compacted topic
 * (iot.forecaster-state) co-partitioned with the input. When a partition is assigned its state
 * partition is read to the end before any aggregate of it is processed; at each checkpoint the
 * series that changed are written, and acknowledged, before input offsets are committed. A
 * crash therefore re-reads at most what came after a state that is already stored, and the
 * replayed aggregates, no newer than what each series learned, change nothing
 * (docs/forecaster.md). With --in -, --state-file keeps the state between runs instead. */
#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "records.h"
#include "service.h"

#include "engine.h"
#include "state.h"
#include "store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct {
	struct service_opts so;
	const char *model, *state_topic, *state_file;
	long long state_timeout_ms, max_series, ttl_ms, series_metrics;
	double z;
} opt;

static struct opt table[] = {
    SERVICE_OPTS(&opt.so, "iot.aggregates", "iot.forecasts", "forecaster"),
    {"model", 'm', OPT_STRING, &opt.model, "holt", "naive|holt|hw",
     "naive: last value; holt: robust damped-trend smoothing; hw: holt + daily profile"},
    {"state-topic", 0, OPT_STRING, &opt.state_topic, "iot.forecaster-state", "TOPIC|none",
     "compacted topic holding each series' state (same partition count as --in)"},
    {"state-file", 0, OPT_STRING, &opt.state_file, NULL, "PATH",
     "with --in -: load the state from PATH at start and save it there at the end"},
    {"state-timeout", 0, OPT_DURATION, &opt.state_timeout_ms, "60s", NULL,
     "longest wait for the state topic while restoring", 0, 1000, 3600000},
    {"max-series", 0, OPT_INT, &opt.max_series, "50000", "N",
     "series held at most (about 800 bytes each); aggregates of further series are refused", 0, 1,
     1e8},
    {"series-ttl", 0, OPT_DURATION, &opt.ttl_ms, "2d", NULL,
     "a series without an aggregate for this long (event time) expires (0: never)", 0, 0,
     1099511627776.0},
    {"interval-z", 0, OPT_DOUBLE, &opt.z, "1.96", "Z",
     "prediction interval: +-Z residual standard deviations (0: no interval)", 0, 0, 100},
    {"series-metrics", 0, OPT_INT, &opt.series_metrics, "20", "N",
     "series (the first scored) with their own MAE/MAPE gauges", 0, 0, 10000},
    {NULL},
};

static const struct config_spec spec = {
    "forecaster",
    "Predict each series' next window mean from the aggregates, and measure the predictions.",
    "Series: (site, device, sensor, metric, window size). Each aggregate scores the forecast\n"
    "made for its window, updates the model and yields a forecast for the next window.\n"
    "The state topic is read to its end for each assigned partition before aggregates are\n"
    "processed; it is created (compacted) when missing.\n"
    "Examples:\n"
    "  forecaster -b localhost:9092 --model holt --metrics-port 9107\n"
    "  aggregator --in - --out - < readings.jsonl | forecaster --in - --out - --state-file f.st",
    table};

static struct {
	struct fc_engine *engine;
	struct state_store *store; /* NULL: no state topic */
	struct stream *s;
	struct stream_out *out;
	enum model_kind kind;
	bool failed; /* state can no longer be committed safely */
	struct metric *m_used, *m_replayed, *m_invalid, *m_refused, *m_forecasts, *m_series,
	    *m_bytes, *m_expired, *m_written, *m_restored, *m_other_model, *m_bad_state;
} fc;

static void metrics_register(void)
{
	static const char *name = "iotpipe_forecaster_aggregates_total";
	static const char *help = "Aggregates by what became of them";
	fc.m_used = metrics_counter(name, help, "result=\"used\"");
	fc.m_replayed = metrics_counter(name, help, "result=\"replayed\"");
	fc.m_invalid = metrics_counter(name, help, "result=\"invalid\"");
	fc.m_refused = metrics_counter(name, help, "result=\"refused\"");
	fc.m_forecasts =
	    metrics_counter("iotpipe_forecaster_forecasts_total", "Forecasts written", NULL);
	fc.m_series = metrics_gauge("iotpipe_forecaster_series", "Series held", NULL);
	fc.m_bytes = metrics_gauge("iotpipe_forecaster_series_bytes",
	                           "Memory held by the series table (estimate)", NULL);
	fc.m_expired =
	    metrics_counter("iotpipe_forecaster_series_expired_total",
	                    "Series dropped after --series-ttl without aggregates", NULL);
	fc.m_written = metrics_counter("iotpipe_forecaster_state_written_total",
	                               "Series states written to the state topic", NULL);
	fc.m_restored = metrics_counter("iotpipe_forecaster_state_restored_total",
	                                "Series restored from the state topic or file", NULL);
	fc.m_other_model =
	    metrics_counter("iotpipe_forecaster_state_skipped_total",
	                    "State records not restored, by reason", "reason=\"other_model\"");
	fc.m_bad_state =
	    metrics_counter("iotpipe_forecaster_state_skipped_total",
	                    "State records not restored, by reason", "reason=\"invalid\"");
	char labels[64];
	metrics_label(labels, sizeof(labels), "model", model_name(fc.kind));
	metric_set(
	    metrics_gauge("iotpipe_forecaster_model_info", "The model in use (value 1)", labels),
	    1);
}

/* The first problems in full, then a sample, so a flood of bad input cannot flood the log. */
static void log_sampled(struct metric *counter, const char *what, const char *err)
{
	double n = metric_value(counter);
	if (n <= 10 || (long long)n % 1000 == 0)
		log_warn("%s: %s (%.0f so far)", what, err, n);
}

static void fail_stop(const char *what, const char *err)
{
	log_error("%s: %s; stopping without committing (a restart resumes from the last commit)",
	          what, err);
	fc.failed = true;
	lifecycle_request_stop();
}

/* ---- engine callbacks ---- */

static int emit_forecast(void *ctx, const struct series *s, const json_t *forecast, char *err,
                         size_t errlen)
{
	(void)ctx;
	if (stream_put(fc.out, s->site, strlen(s->site), forecast, 0, NULL) < 0) {
		snprintf(err, errlen, "cannot write a forecast to %s", stream_output_name(fc.out));
		return -1;
	}
	metric_add(fc.m_forecasts, 1);
	return 0;
}

static int state_put(void *ctx, int32_t partition, const char *key, size_t key_len, const void *val,
                     size_t val_len)
{
	(void)ctx;
	char err[512];
	if (state_store_put(fc.store, stream_producer(fc.s), partition, key, key_len, val, val_len,
	                    err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}

struct restore_ctx {
	int32_t partition;
	size_t applied;
};

static void restore_one(void *ctx, const void *key, size_t key_len, const void *val, size_t val_len)
{
	struct restore_ctx *rc = ctx;
	char err[512];
	if (fc.failed)
		return;
	switch (fc_engine_restore(fc.engine, rc->partition, key, key_len, val, val_len, err,
	                          sizeof(err))) {
	case STATE_OK:
		rc->applied++;
		break;
	case STATE_OTHER_MODEL:
		metric_add(fc.m_other_model, 1);
		log_sampled(fc.m_other_model, "state record not restored", err);
		break;
	case STATE_INVALID:
		metric_add(fc.m_bad_state, 1);
		log_sampled(fc.m_bad_state, "state record not restored", err);
		break;
	case STATE_NOMEM:
		fail_stop("cannot restore state", err);
		break;
	}
}

/* ---- stream hooks ---- */

static void on_assign(void *ctx, const char *topic, int32_t partition, int64_t committed,
                      const char *metadata)
{
	(void)ctx;
	(void)committed;
	(void)metadata;
	if (!fc.store || fc.failed)
		return;
	char err[512];
	struct restore_ctx rc = {partition, 0};
	int64_t start = now_mono_ms();
	struct series_table *t = fc_engine_table(fc.engine);
	size_t before = series_table_count(t);
	long n = state_store_load(fc.store, partition, restore_one, &rc, err, sizeof(err));
	if (n < 0) {
		/* Going on with cold models would overwrite the stored state with worse. */
		fail_stop("cannot restore the state", err);
		return;
	}
	/* A topic not yet compacted holds several records per series: count series, not records. */
	size_t restored = series_table_count(t) - before;
	metric_add(fc.m_restored, (double)restored);
	metric_set(fc.m_series, (double)series_table_count(t));
	log_info("%s [%d]: restored %zu series from %s [%d] (%ld records, %zu applied, %lld ms)",
	         topic, (int)partition, restored, state_store_topic(fc.store), (int)partition, n,
	         rc.applied, (long long)(now_mono_ms() - start));
}

static void on_revoke(void *ctx, const char *topic, int32_t partition)
{
	(void)ctx;
	(void)topic;
	/* The checkpoint before this wrote its state; whoever gets it next reads it back. */
	fc_engine_drop(fc.engine, partition);
}

/* Runs at each checkpoint once the forecasts are acknowledged: expired series get their
 * tombstones and changed series their new state, both acknowledged before offsets are
 * committed. A state that cannot be stored stops the service without a commit: the restart
 * re-reads from the last commit, whose state is stored. Returning -1 skips the commit. */
static int flush_state(void *ctx)
{
	(void)ctx;
	if (fc.failed)
		return -1;
	struct fc_checkpoint c;
	int rc = fc_engine_checkpoint(fc.engine, fc.store ? state_put : NULL, NULL, &c);
	metric_add(fc.m_expired, (double)c.expired);
	metric_add(fc.m_written, (double)c.written);
	struct series_table *t = fc_engine_table(fc.engine);
	metric_set(fc.m_series, (double)series_table_count(t));
	metric_set(fc.m_bytes, (double)series_table_bytes(t));
	if (c.expired)
		log_info("expired %zu series idle for more than %lld ms", c.expired, opt.ttl_ms);
	if (rc < 0) {
		fail_stop("cannot write the state", "the state topic refused records");
		return -1;
	}
	if (fc.store && (c.written || c.expired) &&
	    kafka_producer_flush(stream_producer(fc.s), -1) < 0) {
		fail_stop("cannot write the state", "state records were not acknowledged");
		return -1;
	}
	return 0;
}

/* ---- the loop ---- */

static void aggregate_handle(const struct stream_msg *m)
{
	char err[1024];
	switch (fc_engine_add(fc.engine, m->partition < 0 ? 0 : m->partition, m->rec, err,
	                      sizeof(err))) {
	case FC_USED:
		metric_add(fc.m_used, 1);
		break;
	case FC_REPLAYED:
		metric_add(fc.m_replayed, 1);
		break;
	case FC_INVALID:
		metric_add(fc.m_invalid, 1);
		log_sampled(fc.m_invalid, "aggregate refused", err);
		break;
	case FC_REFUSED:
		metric_add(fc.m_refused, 1);
		log_sampled(fc.m_refused, "aggregate refused", err);
		break;
	case FC_FAILED:
		fail_stop("cannot forecast", err);
		break;
	}
}

static void summary_log(void)
{
	struct score_totals t;
	score_totals(fc_engine_score(fc.engine), &t);
	log_info("model %s: %llu forecasts scored, MAE %.6g, MAPE %.4g%%, interval coverage %.3f, "
	         "%llu for windows that never came; %zu series",
	         model_name(fc.kind), (unsigned long long)t.scored,
	         t.scored ? t.abs_sum / (double)t.scored : 0,
	         t.pct_scored ? t.pct_sum / (double)t.pct_scored : 0,
	         t.scored ? (double)t.hits / (double)t.scored : 0, (unsigned long long)t.unscored,
	         series_table_count(fc_engine_table(fc.engine)));
}

int main(int argc, char **argv)
{
	char err[1024];
	config_parse(&spec, argc, argv);
	int kind = model_parse(opt.model);
	if (kind < 0)
		config_die("--model: '%s' is not naive, holt or hw", opt.model);
	fc.kind = (enum model_kind)kind;
	bool on_stdin = strcmp(opt.so.in, "-") == 0;
	if (strchr(opt.so.in, ',') || opt.so.in[0] == '^')
		config_die("--in: the forecaster reads one topic, not '%s'", opt.so.in);
	if (opt.state_file && !on_stdin)
		config_die("--state-file goes with --in -; from Kafka the state lives in "
		           "--state-topic");
	bool use_topic = !on_stdin && opt.state_topic && *opt.state_topic &&
	                 strcmp(opt.state_topic, "none") != 0;
	if (service_start(&opt.so) < 0) {
		config_free();
		return 1;
	}
	metrics_register();

	int rc = 1;
	struct fc_config cfg = {
	    .model = fc.kind,
	    .max_series = (size_t)opt.max_series,
	    .ttl_ms = opt.ttl_ms,
	    .z = opt.z,
	    .series_gauges = (size_t)opt.series_metrics,
	    .emit = emit_forecast,
	};
	struct stream_hooks hooks = {NULL, on_assign, on_revoke, NULL, flush_state};
	if (!(fc.engine = fc_engine_new(&cfg, err, sizeof(err)))) {
		log_error("%s", err);
		goto out;
	}
	if (opt.state_file) {
		size_t skipped;
		long n = state_file_load(opt.state_file, fc_engine_table(fc.engine), fc.kind,
		                         &skipped, err, sizeof(err));
		if (n < 0) {
			log_error("%s", err);
			goto out;
		}
		metric_add(fc.m_restored, (double)n);
		metric_add(fc.m_other_model, (double)skipped);
		log_info("loaded %ld series from %s%s", n, opt.state_file,
		         skipped ? " (series of another model skipped)" : "");
	}
	if (use_topic) {
		if (!(fc.store = state_store_new(opt.so.brokers, opt.state_topic,
		                                 opt.state_timeout_ms, err, sizeof(err))) ||
		    state_store_prepare(fc.store, opt.so.in, err, sizeof(err)) < 0) {
			log_error("state topic: %s", err);
			goto out;
		}
	}
	if (!(fc.s = service_stream(&opt.so, REC_AGGREGATE, &hooks)) ||
	    !(fc.out = service_output(fc.s, opt.so.out, REC_FORECAST)))
		goto out;
	log_info("reading %s, forecasts to %s; model %s, state in %s", opt.so.in, opt.so.out,
	         model_name(fc.kind),
	         use_topic        ? opt.state_topic
	         : opt.state_file ? opt.state_file
	                          : "memory only");

	while (lifecycle_running() && !fc.failed) {
		struct stream_msg *m;
		int got = stream_poll(fc.s, &m, 100);
		if (got == STREAM_END)
			break;
		if (got == STREAM_RECORD)
			aggregate_handle(m);
	}
	rc = fc.failed ? 1 : 0;
	summary_log();
	if (opt.state_file && !fc.failed) {
		if (state_file_save(opt.state_file, fc_engine_table(fc.engine), fc.kind, err,
		                    sizeof(err)) < 0) {
			log_error("%s", err);
			rc = 1;
		} else {
			log_info("saved %zu series to %s",
			         series_table_count(fc_engine_table(fc.engine)), opt.state_file);
		}
	}
	log_info("stopping: confirming outputs%s", fc.failed ? "" : " and committing");
out:
	if (fc.s) {
		/* Final checkpoint: forecasts acknowledged, state written, offsets committed (not
		 * after a failure: flush_state refuses). */
		if (service_stop(fc.s) != 0)
			rc = 1;
	} else {
		metrics_shutdown();
		records_shutdown();
		config_free();
	}
	state_store_free(fc.store);
	fc_engine_free(fc.engine);
	return rc;
}
