/* The forecaster's engine (see engine.h). */
#include "engine.h"

#include "records.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Values beyond this are refused (the aggregator refuses them too): squared errors stay finite. */
#define VALUE_LIMIT 1e150
/* Residuals needed before a forecast carries an interval. */
#define INTERVAL_MIN_RESIDUALS 10
/* Running variance of residuals: an exact mean at first, then a memory of ~100 windows. */
#define VAR_FLOOR 0.01

struct fc_engine {
	struct fc_config cfg;
	struct series_table *table;
	struct score *score;
	struct buf key;
	int64_t *clock; /* per partition: newest window end seen (for expiry) */
	size_t nclock;
};

static void seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

struct fc_engine *fc_engine_new(const struct fc_config *c, char *err, size_t errlen)
{
	if ((unsigned)c->model >= MODEL_KIND_COUNT || c->max_series == 0 || !c->emit ||
	    c->ttl_ms < 0 || !(c->z >= 0)) {
		seterr(err, errlen, "invalid forecaster configuration");
		return NULL;
	}
	struct fc_engine *e = calloc(1, sizeof(*e));
	if (!e || !(e->table = series_table_new(c->max_series)) ||
	    !(e->score = score_new(c->series_gauges))) {
		fc_engine_free(e);
		seterr(err, errlen, "out of memory");
		return NULL;
	}
	e->cfg = *c;
	return e;
}

void fc_engine_free(struct fc_engine *e)
{
	if (!e)
		return;
	series_table_free(e->table);
	score_free(e->score);
	buf_free(&e->key);
	free(e->clock);
	free(e);
}

struct series_table *fc_engine_table(struct fc_engine *e)
{
	return e->table;
}

const struct score *fc_engine_score(const struct fc_engine *e)
{
	return e->score;
}

static int64_t *clock_of(struct fc_engine *e, int32_t partition)
{
	size_t p = partition < 0 ? 0 : (size_t)partition;
	if (p >= e->nclock) {
		size_t n = p + 1;
		int64_t *c = realloc(e->clock, n * sizeof(*c));
		if (!c)
			return NULL;
		for (size_t i = e->nclock; i < n; i++)
			c[i] = INT64_MIN;
		e->clock = c;
		e->nclock = n;
	}
	return &e->clock[p];
}

/* ---- input ---- */

struct agg_view {
	const char *f[5]; /* site, device, sensor, metric, unit */
	int64_t ws, window_ms;
	double mean;
};

static const char *const field_names[5] = {"site", "device", "sensor", "metric", "unit"};

static int agg_view_get(const json_t *agg, struct agg_view *v, char *err, size_t errlen)
{
	for (int i = 0; i < 5; i++) {
		const json_t *j = json_object_get(agg, field_names[i]);
		if (!json_is_string(j)) {
			seterr(err, errlen, "Aggregate.%s is missing", field_names[i]);
			return -1;
		}
		size_t n = json_string_length(j);
		v->f[i] = json_string_value(j);
		if (n > SERIES_FIELD_MAX || strlen(v->f[i]) != n) {
			seterr(err, errlen, "Aggregate.%s is longer than %d bytes or holds NUL",
			       field_names[i], SERIES_FIELD_MAX);
			return -1;
		}
	}
	const json_t *ws = json_object_get(agg, "window_start");
	const json_t *wm = json_object_get(agg, "window_ms");
	const json_t *mean = json_object_get(agg, "mean");
	if (!json_is_integer(ws) || !json_is_integer(wm) || !json_is_number(mean)) {
		seterr(err, errlen, "Aggregate needs window_start, window_ms and mean");
		return -1;
	}
	v->ws = json_integer_value(ws);
	v->window_ms = json_integer_value(wm);
	v->mean = json_number_value(mean);
	if (v->window_ms <= 0 || v->window_ms > SERIES_WINDOW_LIMIT) {
		seterr(err, errlen, "window_ms %lld is out of range (1..2^40)",
		       (long long)v->window_ms);
		return -1;
	}
	if (v->ws < -SERIES_TIME_LIMIT || v->ws > SERIES_TIME_LIMIT) {
		seterr(err, errlen, "window_start %lld is beyond +-2^53 ms", (long long)v->ws);
		return -1;
	}
	if (!isfinite(v->mean) || fabs(v->mean) > VALUE_LIMIT) {
		seterr(err, errlen, "mean %g is not finite or beyond 1e150", v->mean);
		return -1;
	}
	return 0;
}

/* ---- forecasting ---- */

static json_t *forecast_record(const struct fc_engine *e, const struct series *s)
{
	json_t *r = json_object();
	if (!r)
		return NULL;
	int bad = 0;
	bad |= json_object_set_new(r, "site", json_string(s->site));
	bad |= json_object_set_new(r, "device", json_string(s->device));
	bad |= json_object_set_new(r, "sensor", json_string(s->sensor));
	bad |= json_object_set_new(r, "metric", json_string(s->metric));
	bad |= json_object_set_new(r, "unit", json_string(s->unit));
	bad |= json_object_set_new(r, "window_start", json_integer(s->pending_ws));
	bad |= json_object_set_new(r, "window_ms", json_integer(s->window_ms));
	bad |= json_object_set_new(r, "horizon", json_integer(1));
	bad |= json_object_set_new(r, "predicted", json_real(s->pending_value));
	bad |= json_object_set_new(r, "lower",
	                           s->pending_interval ? json_real(s->pending_lower) : json_null());
	bad |= json_object_set_new(r, "upper",
	                           s->pending_interval ? json_real(s->pending_upper) : json_null());
	bad |= json_object_set_new(r, "model", json_string(model_name(e->cfg.model)));
	bad |= json_object_set_new(r, "made_at", json_integer(s->last_end));
	if (bad) {
		json_decref(r);
		return NULL;
	}
	return r;
}

/* Scores what was pending for s against the window that just arrived. */
static void pending_settle(struct fc_engine *e, struct series *s, int64_t ws, double actual)
{
	if (!s->pending)
		return;
	if (ws == s->pending_ws) {
		score_record(e->score, s, actual);
		double r = actual - s->pending_value;
		if (s->res_n < UINT32_MAX)
			s->res_n++;
		double w = fmax(VAR_FLOOR, 1.0 / s->res_n);
		s->res_var = (1 - w) * s->res_var + w * r * r;
	} else {
		score_unscored(e->score, s);
	}
	s->pending = false;
}

static void pending_make(struct fc_engine *e, struct series *s)
{
	int64_t next = s->last_ws + s->window_ms;
	double v;
	if (!model_predict(&s->model, e->cfg.model, 1, model_time_of_day(next + s->window_ms / 2),
	                   &v) ||
	    !isfinite(v))
		return;
	s->pending = true;
	s->pending_ws = next;
	s->pending_value = v;
	s->pending_interval = e->cfg.z > 0 && s->res_n >= INTERVAL_MIN_RESIDUALS;
	double half = s->pending_interval ? e->cfg.z * sqrt(s->res_var) : 0;
	s->pending_lower = v - half;
	s->pending_upper = v + half;
	if (!isfinite(half))
		s->pending_interval = false;
}

enum fc_result fc_engine_add(struct fc_engine *e, int32_t partition, const json_t *agg, char *err,
                             size_t errlen)
{
	struct agg_view v;
	if (agg_view_get(agg, &v, err, errlen) < 0)
		return FC_INVALID;
	if (partition < 0)
		partition = 0;
	buf_reset(&e->key);
	if (series_key_append(&e->key, v.f[0], v.f[1], v.f[2], v.f[3], v.window_ms) < 0) {
		seterr(err, errlen, "out of memory");
		return FC_FAILED;
	}
	int64_t end = v.ws + v.window_ms;
	int64_t *clock = clock_of(e, partition);
	if (!clock) {
		seterr(err, errlen, "out of memory");
		return FC_FAILED;
	}
	if (end > *clock)
		*clock = end;

	struct series *s = series_table_find(e->table, (const char *)e->key.data, e->key.len);
	if (!s) {
		s = series_new(v.f[0], v.f[1], v.f[2], v.f[3], v.f[4], v.window_ms, partition);
		if (!s) {
			seterr(err, errlen, "out of memory");
			return FC_FAILED;
		}
		if (series_table_add(e->table, s) < 0) {
			seterr(err, errlen,
			       "series cap reached: %zu series are held and --max-series is %zu; "
			       "no forecasts for %s (raise --max-series, or shorten --series-ttl "
			       "so idle series expire sooner)",
			       series_table_count(e->table), series_table_max(e->table), s->key);
			series_free(s);
			return FC_REFUSED;
		}
	} else if (s->model.n > 0 && v.ws <= s->last_ws) {
		return FC_REPLAYED;
	}

	pending_settle(e, s, v.ws, v.mean);
	int64_t steps = 1;
	if (s->model.n > 0) {
		steps = (v.ws - s->last_ws) / s->window_ms;
		if (steps < 1) /* a window not aligned with the previous ones: treat as the next */
			steps = 1;
	}
	double tod = model_time_of_day(v.ws + v.window_ms / 2);
	model_update(&s->model, e->cfg.model, v.mean, steps, tod);
	if (!model_valid(&s->model)) {
		/* Extreme input drove a parameter out of range: start this series' model over. */
		model_init(&s->model);
		model_update(&s->model, e->cfg.model, v.mean, 1, tod);
	}
	s->last_ws = v.ws;
	s->last_end = end;
	s->dirty = true;
	pending_make(e, s);
	if (!s->pending)
		return FC_USED;
	json_t *rec = forecast_record(e, s);
	if (!rec) {
		seterr(err, errlen, "out of memory");
		return FC_FAILED;
	}
	int rc = e->cfg.emit(e->cfg.emit_ctx, s, rec, err, errlen);
	json_decref(rec);
	return rc < 0 ? FC_FAILED : FC_USED;
}

/* ---- state ---- */

enum state_status fc_engine_restore(struct fc_engine *e, int32_t partition, const void *key,
                                    size_t key_len, const void *val, size_t val_len, char *err,
                                    size_t errlen)
{
	if (partition < 0)
		partition = 0;
	if (!val) {
		series_table_remove(e->table, key, key_len);
		return STATE_OK;
	}
	struct series *s;
	enum state_status st =
	    state_blob_decode(val, val_len, key, key_len, e->cfg.model, partition, &s, err, errlen);
	if (st != STATE_OK)
		return st;
	/* What was dirty in the old run was written; a restored series starts clean. */
	s->dirty = false;
	if (series_table_put(e->table, s) < 0) {
		series_free(s);
		seterr(err, errlen,
		       "series cap reached while restoring state: the state holds more series than "
		       "--max-series (%zu); raise it",
		       series_table_max(e->table));
		return STATE_NOMEM;
	}
	int64_t *clock = clock_of(e, partition);
	if (clock && s->last_end > *clock)
		*clock = s->last_end;
	return STATE_OK;
}

struct drop_ctx {
	int32_t partition;
};

static bool drop_match(void *ctx, struct series *s)
{
	return s->partition == ((struct drop_ctx *)ctx)->partition;
}

void fc_engine_drop(struct fc_engine *e, int32_t partition)
{
	struct drop_ctx c = {partition < 0 ? 0 : partition};
	series_table_filter(e->table, drop_match, &c);
	int64_t *clock = clock_of(e, partition);
	if (clock)
		*clock = INT64_MIN;
}

struct ckpt_ctx {
	struct fc_engine *e;
	fc_state_fn fn;
	void *ctx;
	struct buf blob;
	struct fc_checkpoint *out;
};

static bool ckpt_visit(void *ctx, struct series *s)
{
	struct ckpt_ctx *c = ctx;
	struct fc_engine *e = c->e;
	if (e->cfg.ttl_ms > 0) {
		int64_t clock =
		    s->partition < (int32_t)e->nclock ? e->clock[s->partition] : INT64_MIN;
		if (clock != INT64_MIN && s->last_end < clock - e->cfg.ttl_ms) {
			if (c->fn && c->fn(c->ctx, s->partition, s->key, s->key_len, NULL, 0) < 0) {
				c->out->failed++;
				return false;
			}
			c->out->expired++;
			return true;
		}
	}
	if (!s->dirty)
		return false;
	if (!c->fn) {
		s->dirty = false;
		return false;
	}
	buf_reset(&c->blob);
	if (state_blob_encode(s, e->cfg.model, &c->blob) < 0 ||
	    c->fn(c->ctx, s->partition, s->key, s->key_len, c->blob.data, c->blob.len) < 0) {
		c->out->failed++;
		return false;
	}
	s->dirty = false;
	c->out->written++;
	return false;
}

int fc_engine_checkpoint(struct fc_engine *e, fc_state_fn fn, void *ctx, struct fc_checkpoint *out)
{
	struct fc_checkpoint local;
	if (!out)
		out = &local;
	memset(out, 0, sizeof(*out));
	struct ckpt_ctx c = {e, fn, ctx, {0}, out};
	series_table_filter(e->table, ckpt_visit, &c);
	buf_free(&c.blob);
	return out->failed ? -1 : 0;
}
