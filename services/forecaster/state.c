/* Series state blobs and the state file (see state.h). Numbers are written byte by byte in
 * little-endian order, never as memory images, so the format does not depend on the compiler's
 * struct layout or the machine. */
#include "state.h"

#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILE_HEADER "iotpipe-forecaster-state 1\n"
/* A blob is ~200 bytes (580 with a profile); anything far larger is not ours. */
#define BLOB_MAX 65536

enum { FLAG_PENDING = 1, FLAG_INTERVAL = 2 };

/* ---- writing ---- */

static int put_u8(struct buf *b, unsigned v)
{
	return buf_putc(b, (uint8_t)v);
}

static int put_u16(struct buf *b, unsigned v)
{
	uint8_t x[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
	return buf_append(b, x, 2);
}

static int put_u32(struct buf *b, uint32_t v)
{
	uint8_t x[4];
	for (int i = 0; i < 4; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	return buf_append(b, x, 4);
}

static int put_u64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (8 * i));
	return buf_append(b, x, 8);
}

static int put_f64(struct buf *b, double v)
{
	uint64_t u;
	memcpy(&u, &v, 8);
	return put_u64(b, u);
}

static int put_f32(struct buf *b, float v)
{
	uint32_t u;
	memcpy(&u, &v, 4);
	return put_u32(b, u);
}

static int put_str(struct buf *b, const char *s)
{
	size_t n = strlen(s);
	return n > SERIES_FIELD_MAX || put_u16(b, (unsigned)n) < 0 || buf_append(b, s, n) < 0 ? -1
	                                                                                      : 0;
}

int state_blob_encode(const struct series *s, enum model_kind k, struct buf *out)
{
	const struct model *m = &s->model;
	const struct series_errors *e = &s->err;
	unsigned flags =
	    (s->pending ? FLAG_PENDING : 0) | (s->pending_interval ? FLAG_INTERVAL : 0);
	int r = 0;
	r |= put_u8(out, 'F') | put_u8(out, 'C') | put_u8(out, STATE_VERSION) | put_u8(out, k);
	r |= put_u64(out, (uint64_t)s->window_ms);
	r |= put_str(out, s->site) | put_str(out, s->device) | put_str(out, s->sensor);
	r |= put_str(out, s->metric) | put_str(out, s->unit);
	r |= put_u64(out, (uint64_t)s->last_ws) | put_u64(out, (uint64_t)s->last_end);
	r |= put_u8(out, flags) | put_u64(out, (uint64_t)s->pending_ws);
	r |= put_f64(out, s->pending_value) | put_f64(out, s->pending_lower);
	r |= put_f64(out, s->pending_upper);
	r |= put_f64(out, s->res_var) | put_u32(out, s->res_n);
	r |= put_u64(out, e->scored) | put_u64(out, e->pct_scored) | put_u64(out, e->hits);
	r |= put_u64(out, e->unscored) | put_f64(out, e->abs_sum) | put_f64(out, e->pct_sum);
	r |= put_u32(out, m->n) | put_f64(out, m->last) | put_f64(out, m->level);
	r |= put_f64(out, m->trend) | put_f64(out, m->alpha) | put_f64(out, m->grad);
	r |= put_f64(out, m->scale) | put_u32(out, m->jumps);
	if (k == MODEL_HW) {
		for (int i = 0; i < MODEL_KNOTS; i++)
			r |= put_f32(out, m->profile[i]);
		for (int i = 0; i < MODEL_KNOTS; i++)
			r |= put_f32(out, m->weight[i]);
	}
	return r ? -1 : 0;
}

/* ---- reading ---- */

struct rd {
	const uint8_t *p;
	size_t left;
	bool bad;
};

static const uint8_t *take(struct rd *r, size_t n)
{
	if (r->bad || r->left < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	r->left -= n;
	return p;
}

static uint64_t get_le(struct rd *r, int n)
{
	const uint8_t *p = take(r, (size_t)n);
	uint64_t v = 0;
	for (int i = 0; p && i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static double get_f64(struct rd *r)
{
	uint64_t u = get_le(r, 8);
	double v;
	memcpy(&v, &u, 8);
	return v;
}

static float get_f32(struct rd *r)
{
	uint32_t u = (uint32_t)get_le(r, 4);
	float v;
	memcpy(&v, &u, 4);
	return v;
}

/* A string field into dst (NUL-terminated): bounded, UTF-8, no NUL inside. */
static bool get_str(struct rd *r, char *dst)
{
	size_t n = (size_t)get_le(r, 2);
	const uint8_t *p = take(r, n);
	if (!p || n > SERIES_FIELD_MAX || memchr(p, 0, n) || !utf8_valid(p, n))
		return false;
	memcpy(dst, p, n);
	dst[n] = '\0';
	return true;
}

static bool time_ok(int64_t t)
{
	return t >= -SERIES_TIME_LIMIT && t <= SERIES_TIME_LIMIT;
}

static enum state_status fail(char *err, size_t errlen, enum state_status st, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static enum state_status fail(char *err, size_t errlen, enum state_status st, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return st;
}

enum state_status state_blob_decode(const void *data, size_t len, const void *key, size_t key_len,
                                    enum model_kind k, int32_t partition, struct series **out,
                                    char *err, size_t errlen)
{
	*out = NULL;
	struct rd r = {data, len, false};
	char f[5][SERIES_FIELD_MAX + 1];
	const uint8_t *hdr = take(&r, 4);
	if (!hdr || hdr[0] != 'F' || hdr[1] != 'C')
		return fail(err, errlen, STATE_INVALID, "not a forecaster state (bad magic)");
	if (hdr[2] != STATE_VERSION)
		return fail(err, errlen, STATE_INVALID,
		            "state version %u is not known (this is %d)", hdr[2], STATE_VERSION);
	if (hdr[3] >= MODEL_KIND_COUNT)
		return fail(err, errlen, STATE_INVALID, "unknown model %u", hdr[3]);
	enum model_kind kind = (enum model_kind)hdr[3];
	int64_t window_ms = (int64_t)get_le(&r, 8);
	for (int i = 0; i < 5; i++)
		if (!get_str(&r, f[i]))
			return fail(err, errlen, STATE_INVALID,
			            "identity field %d is truncated, too long or not UTF-8", i + 1);
	if (window_ms <= 0)
		return fail(err, errlen, STATE_INVALID, "window_ms %lld is not positive",
		            (long long)window_ms);
	if (kind != k)
		return fail(err, errlen, STATE_OTHER_MODEL, "state of model %s, running %s",
		            model_name(kind), model_name(k));

	struct series *s = series_new(f[0], f[1], f[2], f[3], f[4], window_ms, partition);
	if (!s)
		return fail(err, errlen, STATE_NOMEM, "out of memory");
	if (key && (key_len != s->key_len || memcmp(key, s->key, key_len) != 0)) {
		fail(err, errlen, STATE_INVALID, "the record's key does not match its series %s",
		     s->key);
		series_free(s);
		return STATE_INVALID;
	}
	struct model *m = &s->model;
	struct series_errors *e = &s->err;
	s->last_ws = (int64_t)get_le(&r, 8);
	s->last_end = (int64_t)get_le(&r, 8);
	unsigned flags = (unsigned)get_le(&r, 1);
	s->pending = flags & FLAG_PENDING;
	s->pending_interval = flags & FLAG_INTERVAL;
	s->pending_ws = (int64_t)get_le(&r, 8);
	s->pending_value = get_f64(&r);
	s->pending_lower = get_f64(&r);
	s->pending_upper = get_f64(&r);
	s->res_var = get_f64(&r);
	s->res_n = (uint32_t)get_le(&r, 4);
	e->scored = get_le(&r, 8);
	e->pct_scored = get_le(&r, 8);
	e->hits = get_le(&r, 8);
	e->unscored = get_le(&r, 8);
	e->abs_sum = get_f64(&r);
	e->pct_sum = get_f64(&r);
	m->n = (uint32_t)get_le(&r, 4);
	m->last = get_f64(&r);
	m->level = get_f64(&r);
	m->trend = get_f64(&r);
	m->alpha = get_f64(&r);
	m->grad = get_f64(&r);
	m->scale = get_f64(&r);
	m->jumps = (uint32_t)get_le(&r, 4);
	if (kind == MODEL_HW) {
		for (int i = 0; i < MODEL_KNOTS; i++)
			m->profile[i] = get_f32(&r);
		for (int i = 0; i < MODEL_KNOTS; i++)
			m->weight[i] = get_f32(&r);
	}
	const char *why = NULL;
	if (r.bad)
		why = "truncated";
	else if (r.left)
		why = "trailing bytes";
	else if (flags & ~3u)
		why = "unknown flags";
	else if (!isfinite(s->pending_value) || !isfinite(s->pending_lower) ||
	         !isfinite(s->pending_upper) || !isfinite(s->res_var) || s->res_var < 0)
		why = "a forecast or variance is not a finite number";
	else if (!isfinite(e->abs_sum) || !isfinite(e->pct_sum) || e->abs_sum < 0 ||
	         e->pct_sum < 0 || e->pct_scored > e->scored || e->hits > e->scored)
		why = "error sums are inconsistent";
	else if (!model_valid(m))
		why = "model parameters out of range";
	else if (window_ms > SERIES_WINDOW_LIMIT || !time_ok(s->last_ws) || !time_ok(s->last_end) ||
	         !time_ok(s->pending_ws) || s->last_end < s->last_ws)
		why = "window times out of range";
	if (why) {
		enum state_status st =
		    fail(err, errlen, STATE_INVALID, "state of %s: %s", s->key, why);
		series_free(s);
		return st;
	}
	*out = s;
	return STATE_OK;
}

/* ---- file ---- */

struct save_ctx {
	FILE *f;
	enum model_kind k;
	struct buf blob;
	bool failed;
};

static bool save_one(void *ctx, struct series *s)
{
	struct save_ctx *c = ctx;
	if (c->failed)
		return false;
	buf_reset(&c->blob);
	uint8_t hdr[4];
	if (state_blob_encode(s, c->k, &c->blob) < 0) {
		c->failed = true;
		return false;
	}
	uint32_t lens[2] = {(uint32_t)s->key_len, (uint32_t)c->blob.len};
	const void *parts[2] = {s->key, c->blob.data};
	for (int i = 0; i < 2; i++) {
		for (int b = 0; b < 4; b++)
			hdr[b] = (uint8_t)(lens[i] >> (8 * b));
		if (fwrite(hdr, 1, 4, c->f) != 4 || fwrite(parts[i], 1, lens[i], c->f) != lens[i])
			c->failed = true;
	}
	return false;
}

int state_file_save(const char *path, struct series_table *t, enum model_kind k, char *err,
                    size_t errlen)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp)) {
		snprintf(err, errlen, "state file name too long");
		return -1;
	}
	struct save_ctx c = {.f = fopen(tmp, "wb"), .k = k};
	if (!c.f) {
		snprintf(err, errlen, "cannot create %s: %s", tmp, strerror(errno));
		return -1;
	}
	if (fputs(FILE_HEADER, c.f) == EOF)
		c.failed = true;
	series_table_filter(t, save_one, &c);
	buf_free(&c.blob);
	int saved_errno = errno;
	if (fflush(c.f) != 0 || fsync(fileno(c.f)) != 0)
		c.failed = true;
	if (fclose(c.f) != 0)
		c.failed = true;
	if (c.failed) {
		snprintf(err, errlen, "cannot write %s: %s", tmp,
		         strerror(errno ? errno : saved_errno));
		unlink(tmp);
		return -1;
	}
	if (rename(tmp, path) != 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

/* Reads a u32 length and that many bytes into b. 0 at a clean end of file (only when
 * allow_eof), 1 on success, -1 when damaged. */
static int read_part(FILE *f, struct buf *b, size_t max, bool allow_eof)
{
	uint8_t h[4];
	size_t n = fread(h, 1, 4, f);
	if (n == 0 && allow_eof && feof(f))
		return 0;
	if (n != 4)
		return -1;
	uint32_t len =
	    (uint32_t)h[0] | (uint32_t)h[1] << 8 | (uint32_t)h[2] << 16 | (uint32_t)h[3] << 24;
	buf_reset(b);
	if (len > max || buf_reserve(b, len) < 0 || fread(b->data, 1, len, f) != len)
		return -1;
	b->len = len;
	return 1;
}

long state_file_load(const char *path, struct series_table *t, enum model_kind k, size_t *skipped,
                     char *err, size_t errlen)
{
	*skipped = 0;
	FILE *f = fopen(path, "rb");
	if (!f) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "cannot open %s: %s", path, strerror(errno));
		return -1;
	}
	long loaded = -1, records = 0;
	struct buf key = {0}, val = {0};
	char hdr[sizeof(FILE_HEADER)] = "";
	char why[300];
	if (fread(hdr, 1, sizeof(FILE_HEADER) - 1, f) != sizeof(FILE_HEADER) - 1 ||
	    strcmp(hdr, FILE_HEADER) != 0) {
		snprintf(err, errlen, "%s is not a forecaster state file", path);
		goto out;
	}
	long n = 0;
	for (;;) {
		int r = read_part(f, &key, 4 * SERIES_FIELD_MAX + 64, true);
		if (r == 0)
			break;
		records++;
		if (r < 0 || read_part(f, &val, BLOB_MAX, false) < 0) {
			snprintf(err, errlen, "%s: record %ld is truncated or too long", path,
			         records);
			goto out;
		}
		struct series *s;
		enum state_status st = state_blob_decode(val.data, val.len, key.data, key.len, k, 0,
		                                         &s, why, sizeof(why));
		if (st == STATE_OTHER_MODEL) {
			(*skipped)++;
			continue;
		}
		if (st != STATE_OK) {
			snprintf(err, errlen, "%s: record %ld: %s", path, records, why);
			goto out;
		}
		if (series_table_put(t, s) < 0) {
			series_free(s);
			snprintf(err, errlen, "%s holds more series than --max-series (%zu)", path,
			         series_table_max(t));
			goto out;
		}
		n++;
	}
	if (ferror(f)) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		goto out;
	}
	loaded = n;
out:
	buf_free(&key);
	buf_free(&val);
	fclose(f);
	return loaded;
}
