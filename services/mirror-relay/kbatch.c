/* Record batch v2 reader and writer, CRC-32C (see kbatch.h). */
#include "kbatch.h"

#include "text.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#if defined(__x86_64__)
#include <nmmintrin.h>
#endif

/* ---- CRC-32C ---- */

static uint32_t crc_table[8][256];

static void crc_table_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
			    (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

static uint32_t crc_sw(uint32_t c, const uint8_t *p, size_t n)
{
	while (n >= 8) {
		uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
		                   (uint32_t)p[3] << 24);
		c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		    crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^ crc_table[3][p[4]] ^
		    crc_table[2][p[5]] ^ crc_table[1][p[6]] ^ crc_table[0][p[7]];
		p += 8;
		n -= 8;
	}
	while (n--)
		c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
	return c;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const uint8_t *p, size_t n)
{
	uint64_t c64 = c;
	while (n >= 8) {
		uint64_t w;
		memcpy(&w, p, 8); /* little-endian load, as the instruction expects */
		c64 = _mm_crc32_u64(c64, w);
		p += 8;
		n -= 8;
	}
	c = (uint32_t)c64;
	while (n--)
		c = _mm_crc32_u8(c, *p++);
	return c;
}
#endif

static uint32_t (*crc_impl)(uint32_t, const uint8_t *, size_t);
static pthread_once_t crc_once = PTHREAD_ONCE_INIT;

static void crc_init(void)
{
	crc_table_init();
	crc_impl = crc_sw;
#if defined(__x86_64__)
	__builtin_cpu_init();
	if (__builtin_cpu_supports("sse4.2"))
		crc_impl = crc_hw;
#endif
}

uint32_t kbatch_crc32c(uint32_t crc, const void *p, size_t n)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_impl(~crc, p, n);
}

uint32_t kbatch_crc32c_sw(uint32_t crc, const void *p, size_t n)
{
	pthread_once(&crc_once, crc_init);
	return ~crc_sw(~crc, p, n);
}

/* ---- reading ---- */

int kbatch_next(const uint8_t *blob, size_t len, size_t *pos, struct kbatch *b, char *err,
                size_t errlen)
{
	if (*pos >= len)
		return 0;
	const uint8_t *p = blob + *pos;
	size_t rest = len - *pos;
	/* The magic sits at byte 16 in every message format, so it is read before the length
	 * is trusted: older formats have shorter headers. */
	if (rest < 17)
		return 0;
	int8_t magic = (int8_t)p[16];
	if (magic != 2) {
		errf(err, errlen,
		       "batch at byte %zu: magic %d (only magic 2 batches are relayed)", *pos,
		       magic);
		return -1;
	}
	int32_t blen = (int32_t)(uint32_t)kwire_be_load(p + 8, 4);
	if (blen < KBATCH_HEADER_SIZE - 12) {
		errf(err, errlen, "batch at byte %zu: batchLength %d is shorter than the header",
		       *pos, blen);
		return -1;
	}
	if ((size_t)blen > rest - 12)
		return 0; /* cut short by the fetch size limit */
	b->base_offset = (int64_t)kwire_be_load(p, 8);
	b->leader_epoch = (int32_t)(uint32_t)kwire_be_load(p + 12, 4);
	b->magic = magic;
	b->crc = (uint32_t)kwire_be_load(p + 17, 4);
	b->attributes = (int16_t)(uint16_t)kwire_be_load(p + 21, 2);
	b->last_offset_delta = (int32_t)(uint32_t)kwire_be_load(p + 23, 4);
	b->base_ts = (int64_t)kwire_be_load(p + 27, 8);
	b->max_ts = (int64_t)kwire_be_load(p + 35, 8);
	b->producer_id = (int64_t)kwire_be_load(p + 43, 8);
	b->producer_epoch = (int16_t)(uint16_t)kwire_be_load(p + 51, 2);
	b->base_sequence = (int32_t)(uint32_t)kwire_be_load(p + 53, 4);
	b->count = (int32_t)(uint32_t)kwire_be_load(p + 57, 4);
	b->records = p + KBATCH_HEADER_SIZE;
	b->records_len = (size_t)blen + 12 - KBATCH_HEADER_SIZE;
	b->crc_start = p + 21;
	b->crc_len = (size_t)blen + 12 - 21;
	if (b->count < 0) {
		errf(err, errlen, "batch at byte %zu (offset %lld): record count %d", *pos,
		       (long long)b->base_offset, b->count);
		return -1;
	}
	*pos += 12 + (size_t)blen;
	return 1;
}

bool kbatch_crc_ok(const struct kbatch *b)
{
	return kbatch_crc32c(0, b->crc_start, b->crc_len) == b->crc;
}

/* Record fields are read per record, so the common cases stay in this file: one- and two-byte
 * varints and skips inline, longer varints through kwire's reader. */
static inline int64_t rd_varint(struct rbuf *r)
{
	const uint8_t *p = r->p;
	if (!r->bad && r->end - p >= 2) {
		uint64_t u;
		if (!(p[0] & 0x80)) {
			u = p[0];
			r->p = p + 1;
		} else if (!(p[1] & 0x80)) {
			u = (p[0] & 0x7fu) | (uint64_t)p[1] << 7;
			r->p = p + 2;
		} else {
			return rbuf_varint(r);
		}
		return (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
	}
	return rbuf_varint(r);
}

/* A varint that must fit an int32 and lie in [lo, hi]; false (r->bad) otherwise. */
static inline bool varint32(struct rbuf *r, int64_t lo, int64_t hi, int64_t *v)
{
	*v = rd_varint(r);
	if (r->bad || *v < lo || *v > hi) {
		r->bad = true;
		return false;
	}
	return true;
}

/* A length or count varint: at least lo, and at most what the bytes left after it can hold at
 * 1 << shift bytes an element (computed after the varint is read). */
static inline bool varlen(struct rbuf *r, int64_t lo, int shift, int64_t *v)
{
	*v = rd_varint(r);
	if (r->bad || *v < lo || *v > ((r->end - r->p) >> shift)) {
		r->bad = true;
		return false;
	}
	return true;
}

/* The smallest record: length, attributes, timestampDelta, offsetDelta, key length, value
 * length and header count, one byte each. */
#define KREC_MIN 7

/* Walks n headers of a record over r; false when one does not fit. */
static bool headers_ok(struct rbuf *r, int64_t n)
{
	int64_t l;
	for (int64_t i = 0; i < n; i++) {
		if (!varlen(r, 0, 0, &l) || !kwire_take(r, (size_t)l))
			return false;
		if (!varlen(r, -1, 0, &l))
			return false;
		if (l > 0 && !kwire_take(r, (size_t)l))
			return false;
	}
	return true;
}

int krec_next(const struct kbatch *b, size_t *pos, struct krec *out, char *err, size_t errlen)
{
	if (b->attributes & KBATCH_ATTR_COMPRESSION) {
		errf(err, errlen,
		       "batch at offset %lld is compressed (codec %d): not decoded here",
		       (long long)b->base_offset, b->attributes & KBATCH_ATTR_COMPRESSION);
		return -1;
	}
	if (*pos == 0 && (b->count < 0 || (size_t)b->count > b->records_len / KREC_MIN ||
	                  (b->count == 0) != (b->records_len == 0))) {
		errf(err, errlen, "batch at offset %lld: %d records do not fit its %zu bytes",
		       (long long)b->base_offset, b->count, b->records_len);
		return -1;
	}
	if (*pos >= b->records_len)
		return 0;
	struct rbuf r = {b->records + *pos, b->records + b->records_len, false};
	const char *field = "length";
	int64_t rlen, v;
	if (!varlen(&r, 0, 0, &rlen))
		goto bad;
	const uint8_t *rec_end = r.p + rlen;
	r.end = rec_end;
	field = "attributes";
	(void)kwire_take(&r, 1);
	field = "timestampDelta";
	int64_t tsd = rd_varint(&r);
	if (r.bad)
		goto bad;
	field = "offsetDelta";
	if (!varint32(&r, 0, INT32_MAX, &v))
		goto bad;
	out->offset = (int64_t)((uint64_t)b->base_offset + (uint64_t)v);
	out->ts = b->attributes & KBATCH_ATTR_LOG_APPEND_TIME
	              ? b->max_ts
	              : (int64_t)((uint64_t)b->base_ts + (uint64_t)tsd);
	field = "keyLength";
	if (!varlen(&r, -1, 0, &v))
		goto bad;
	out->key_len = (int32_t)v;
	out->key = v >= 0 ? kwire_take(&r, (size_t)v) : NULL;
	if (r.bad)
		goto bad;
	field = "valueLength";
	if (!varlen(&r, -1, 0, &v))
		goto bad;
	out->value_len = (int32_t)v;
	out->value = v >= 0 ? kwire_take(&r, (size_t)v) : NULL;
	if (r.bad)
		goto bad;
	field = "headers count";
	/* two bytes at least a header: key length and value length */
	if (!varlen(&r, 0, 1, &v))
		goto bad;
	out->nheaders = (int32_t)v;
	out->headers = r.p;
	field = "header";
	if (!headers_ok(&r, v))
		goto bad;
	out->headers_len = (size_t)(r.p - out->headers);
	if (r.p != rec_end) {
		field = "length (bytes left after the headers)";
		goto bad;
	}
	*pos = (size_t)(rec_end - b->records);
	return 1;
bad:
	errf(err, errlen, "record at byte %zu of batch at offset %lld: bad %s near byte %zu",
	       *pos, (long long)b->base_offset, field, (size_t)(r.p - b->records));
	return -1;
}

int khdr_next(const struct krec *rec, size_t *pos, struct khdr *h)
{
	if (*pos >= rec->headers_len)
		return 0;
	struct rbuf r = {rec->headers + *pos, rec->headers + rec->headers_len, false};
	int64_t v;
	if (!varlen(&r, 0, 0, &v))
		return -1;
	h->key_len = (size_t)v;
	h->key = kwire_take(&r, (size_t)v);
	if (!varlen(&r, -1, 0, &v))
		return -1;
	h->value_len = (int32_t)v;
	h->value = v >= 0 ? kwire_take(&r, (size_t)v) : NULL;
	if (r.bad)
		return -1;
	h->raw = rec->headers + *pos;
	h->raw_len = (size_t)(r.p - h->raw);
	*pos += h->raw_len;
	return 1;
}

/* ---- writing ---- */

static void be_store(uint8_t *d, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		d[i] = (uint8_t)v;
		v >>= 8;
	}
}

void kbuilder_begin(struct kbuilder *k, struct wbuf *out)
{
	*k = (struct kbuilder){.out = out, .start = out->len};
	uint8_t *d = wbuf_room(out, KBATCH_HEADER_SIZE);
	if (!d)
		return;
	memset(d, 0, KBATCH_HEADER_SIZE);
	be_store(d + 12, (uint32_t)-1, 4); /* partition leader epoch */
	d[16] = 2;                         /* magic */
	be_store(d + 43, (uint64_t)-1, 8); /* producer id */
	be_store(d + 51, (uint16_t)-1, 2); /* producer epoch */
	be_store(d + 53, (uint32_t)-1, 4); /* base sequence */
	out->len += KBATCH_HEADER_SIZE;
}

/* kwire_varint_size, inlined: it is summed a dozen times a record */
static inline size_t vsize(int64_t v)
{
	uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	return (64 - (unsigned)__builtin_clzll(u | 1) + 6) / 7;
}

static uint8_t *put_varint(uint8_t *d, int64_t v)
{
	uint64_t u = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	while (u >= 0x80) {
		*d++ = (uint8_t)(u | 0x80);
		u >>= 7;
	}
	*d++ = (uint8_t)u;
	return d;
}

static uint8_t *put_bytes(uint8_t *d, const void *p, size_t n)
{
	if (n)
		memcpy(d, p, n);
	return d + n;
}

void kbuilder_add(struct kbuilder *k, int64_t ts, const uint8_t *key, int32_t key_len,
                  const uint8_t *value, int32_t value_len, const uint8_t *hdrs, size_t hdrs_len,
                  int32_t nhdrs, const char *extra_key, size_t extra_key_len,
                  const uint8_t *extra_value, size_t extra_value_len)
{
	if (k->out->oom)
		return;
	if (k->count == 0)
		k->base_ts = k->max_ts = ts;
	if (key_len < 0)
		key_len = -1;
	if (value_len < 0)
		value_len = -1;
	int64_t tsd = (int64_t)((uint64_t)ts - (uint64_t)k->base_ts);
	int32_t nh = nhdrs + (extra_key ? 1 : 0);
	size_t body = 1 + vsize(tsd) + vsize(k->count) + vsize(key_len) +
	              (key_len > 0 ? (size_t)key_len : 0) + vsize(value_len) +
	              (value_len > 0 ? (size_t)value_len : 0) + vsize(nh) + hdrs_len;
	if (extra_key)
		body += vsize((int64_t)extra_key_len) + extra_key_len +
		        vsize((int64_t)extra_value_len) + extra_value_len;
	if (body > INT32_MAX) {
		k->out->oom = true; /* a record Kafka could never take */
		return;
	}
	size_t total = vsize((int64_t)body) + body;
	uint8_t *d = wbuf_room(k->out, total);
	if (!d)
		return;
	d = put_varint(d, (int64_t)body);
	*d++ = 0; /* record attributes: none defined */
	d = put_varint(d, tsd);
	d = put_varint(d, k->count);
	d = put_varint(d, key_len);
	if (key_len > 0)
		d = put_bytes(d, key, (size_t)key_len);
	d = put_varint(d, value_len);
	if (value_len > 0)
		d = put_bytes(d, value, (size_t)value_len);
	d = put_varint(d, nh);
	d = put_bytes(d, hdrs, hdrs_len);
	if (extra_key) {
		d = put_varint(d, (int64_t)extra_key_len);
		d = put_bytes(d, extra_key, extra_key_len);
		d = put_varint(d, (int64_t)extra_value_len);
		d = put_bytes(d, extra_value, extra_value_len);
	}
	k->out->len += total;
	k->count++;
	if (ts > k->max_ts)
		k->max_ts = ts;
}

size_t kbuilder_size(const struct kbuilder *k)
{
	return k->out->len - k->start;
}

int kbuilder_finish(struct kbuilder *k)
{
	struct wbuf *out = k->out;
	if (out->oom || k->count == 0)
		return -1;
	size_t n = out->len - k->start;
	if (n - 12 > INT32_MAX) {
		out->oom = true;
		return -1;
	}
	uint8_t *d = out->p + k->start;
	be_store(d + 8, n - 12, 4);
	be_store(d + 23, (uint32_t)(k->count - 1), 4);
	be_store(d + 27, (uint64_t)k->base_ts, 8);
	be_store(d + 35, (uint64_t)k->max_ts, 8);
	be_store(d + 57, (uint32_t)k->count, 4);
	be_store(d + 17, kbatch_crc32c(0, d + 21, n - 21), 4);
	return 0;
}
