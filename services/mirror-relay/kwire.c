/* Fetch v4 / Produce v3 encoders and bounded decoders (see kwire.h). */
#include "kwire.h"

#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- growable output buffer ---- */

void wbuf_reset(struct wbuf *b)
{
	b->len = 0;
	b->oom = false;
}

void wbuf_free(struct wbuf *b)
{
	free(b->p);
	*b = (struct wbuf){0};
}

uint8_t *wbuf_room(struct wbuf *b, size_t n)
{
	if (b->oom)
		return NULL; /* once something was dropped, later bytes would land at wrong offsets
		              */
	if (n <= b->cap - b->len)
		return b->p + b->len;
	if (n > SIZE_MAX / 2 - b->len) {
		b->oom = true;
		return NULL;
	}
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < n)
		cap *= 2;
	uint8_t *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return NULL;
	}
	b->p = p;
	b->cap = cap;
	return p + b->len;
}

void wbuf_put(struct wbuf *b, const void *p, size_t n)
{
	uint8_t *d = wbuf_room(b, n);
	if (!d)
		return;
	if (n)
		memcpy(d, p, n);
	b->len += n;
}

static void be_store(uint8_t *d, uint64_t v, int n)
{
	for (int i = n - 1; i >= 0; i--) {
		d[i] = (uint8_t)v;
		v >>= 8;
	}
}

static void wbuf_be(struct wbuf *b, uint64_t v, int n)
{
	uint8_t *d = wbuf_room(b, (size_t)n);
	if (!d)
		return;
	be_store(d, v, n);
	b->len += (size_t)n;
}

void wbuf_i8(struct wbuf *b, int8_t v)
{
	wbuf_be(b, (uint8_t)v, 1);
}
void wbuf_i16(struct wbuf *b, int16_t v)
{
	wbuf_be(b, (uint16_t)v, 2);
}
void wbuf_i32(struct wbuf *b, int32_t v)
{
	wbuf_be(b, (uint32_t)v, 4);
}
void wbuf_i64(struct wbuf *b, int64_t v)
{
	wbuf_be(b, (uint64_t)v, 8);
}

static uint64_t zigzag(int64_t v)
{
	return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}

size_t kwire_varint_size(int64_t v)
{
	/* 7 bits a byte: bits needed, rounded up to sevens (0 needs one byte too) */
	unsigned bits = 64 - (unsigned)__builtin_clzll(zigzag(v) | 1);
	return (bits + 6) / 7;
}

void wbuf_varint(struct wbuf *b, int64_t v)
{
	uint8_t *d = wbuf_room(b, 10);
	if (!d)
		return;
	uint64_t u = zigzag(v);
	size_t n = 0;
	while (u >= 0x80) {
		d[n++] = (uint8_t)(u | 0x80);
		u >>= 7;
	}
	d[n++] = (uint8_t)u;
	b->len += n;
}

void wbuf_str(struct wbuf *b, const char *s, size_t n)
{
	if (n > INT16_MAX) {
		b->oom = true; /* not representable: refuse rather than send a wrong length */
		return;
	}
	wbuf_i16(b, (int16_t)n);
	wbuf_put(b, s, n);
}

void wbuf_set_i32(struct wbuf *b, size_t at, int32_t v)
{
	if (b->oom || at > b->len || b->len - at < 4)
		return;
	be_store(b->p + at, (uint32_t)v, 4);
}

/* ---- bounded input reader ---- */

int8_t rbuf_i8(struct rbuf *r)
{
	const uint8_t *p = kwire_take(r, 1);
	return p ? (int8_t)p[0] : 0;
}
int16_t rbuf_i16(struct rbuf *r)
{
	const uint8_t *p = kwire_take(r, 2);
	return p ? (int16_t)(uint16_t)kwire_be_load(p, 2) : 0;
}
int32_t rbuf_i32(struct rbuf *r)
{
	const uint8_t *p = kwire_take(r, 4);
	return p ? (int32_t)(uint32_t)kwire_be_load(p, 4) : 0;
}
int64_t rbuf_i64(struct rbuf *r)
{
	const uint8_t *p = kwire_take(r, 8);
	return p ? (int64_t)kwire_be_load(p, 8) : 0;
}

int64_t rbuf_varint(struct rbuf *r)
{
	if (r->bad)
		return 0;
	uint64_t u = 0;
	const uint8_t *p = r->p;
	for (int shift = 0; shift < 70; shift += 7) {
		if (p == r->end)
			break;
		uint8_t c = *p++;
		u |= (uint64_t)(c & 0x7f) << shift;
		if (!(c & 0x80)) {
			/* the 10th byte carries one bit; more would not fit 64 bits */
			if (shift == 63 && c > 1)
				break;
			r->p = p;
			return (int64_t)((u >> 1) ^ (~(u & 1) + 1));
		}
	}
	r->bad = true;
	return 0;
}

void rbuf_str(struct rbuf *r, const char **s, size_t *n)
{
	*s = NULL;
	*n = 0;
	int16_t l = rbuf_i16(r);
	if (r->bad || l == -1)
		return;
	if (l < 0) {
		r->bad = true;
		return;
	}
	const uint8_t *p = kwire_take(r, (size_t)l);
	if (p) {
		*s = (const char *)p;
		*n = (size_t)l;
	}
}

const uint8_t *rbuf_skip(struct rbuf *r, size_t n)
{
	return kwire_take(r, n);
}

/* ---- framing ---- */

void kwire_request_begin(struct wbuf *b, int16_t api_key, int16_t version, int32_t corr,
                         const char *client_id)
{
	wbuf_reset(b);
	wbuf_i32(b, 0);
	wbuf_i16(b, api_key);
	wbuf_i16(b, version);
	wbuf_i32(b, corr);
	if (client_id)
		wbuf_str(b, client_id, strlen(client_id));
	else
		wbuf_i16(b, -1);
}

int kwire_request_end(struct wbuf *b)
{
	if (b->oom || b->len < 4 || b->len - 4 > INT32_MAX)
		return -1;
	wbuf_set_i32(b, 0, (int32_t)(b->len - 4));
	return 0;
}

/* ---- Fetch v4 ---- */

int kwire_fetch_request(struct wbuf *b, int32_t corr, const char *client_id,
                        const struct kwire_fetch_req *q)
{
	kwire_request_begin(b, KWIRE_API_FETCH, 4, corr, client_id);
	wbuf_i32(b, -1); /* replica id: a consumer */
	wbuf_i32(b, q->max_wait_ms);
	wbuf_i32(b, q->min_bytes);
	wbuf_i32(b, q->max_bytes);
	wbuf_i8(b, q->isolation);
	wbuf_i32(b, q->ntopics);
	for (int t = 0; t < q->ntopics; t++) {
		const struct kwire_fetch_topic *tp = &q->topics[t];
		wbuf_str(b, tp->topic, strlen(tp->topic));
		wbuf_i32(b, tp->nparts);
		for (int i = 0; i < tp->nparts; i++) {
			wbuf_i32(b, tp->parts[i].partition);
			wbuf_i64(b, tp->parts[i].offset);
			wbuf_i32(b, q->part_max_bytes);
		}
	}
	return kwire_request_end(b);
}

void kwire_aborted_at(const struct kwire_fetch_result *f, int32_t i, struct kwire_aborted *out)
{
	const uint8_t *p = f->aborted + (size_t)i * 16;
	out->producer_id = (int64_t)kwire_be_load(p, 8);
	out->first_offset = (int64_t)kwire_be_load(p + 8, 8);
}

/* An array count: non-negative (or -1 when nullable) and no more elements than the remaining
 * bytes can hold at min_size each. Returns false when malformed. */
static bool array_count(struct rbuf *r, size_t min_size, bool nullable, int32_t *n)
{
	*n = rbuf_i32(r);
	if (r->bad)
		return false;
	if (*n == -1 && nullable)
		return true;
	if (*n < 0 || (size_t)*n > (size_t)(r->end - r->p) / min_size) {
		r->bad = true;
		return false;
	}
	return true;
}

int kwire_fetch_response(const uint8_t *body, size_t len,
                         int (*cb)(void *ctx, const struct kwire_fetch_result *f), void *ctx,
                         char *err, size_t errlen)
{
	struct rbuf r = {body, body + len, false};
	int32_t ntopics, nparts;
	(void)rbuf_i32(&r); /* throttle time */
	if (!array_count(&r, 6, false, &ntopics))
		goto bad;
	for (int32_t t = 0; t < ntopics; t++) {
		struct kwire_fetch_result f = {0};
		rbuf_str(&r, &f.topic, &f.topic_len);
		if (r.bad || !f.topic)
			goto bad;
		if (!array_count(&r, 30, false, &nparts))
			goto bad;
		for (int32_t i = 0; i < nparts; i++) {
			f.partition = rbuf_i32(&r);
			f.error = rbuf_i16(&r);
			f.high_watermark = rbuf_i64(&r);
			f.last_stable_offset = rbuf_i64(&r);
			if (!array_count(&r, 16, true, &f.naborted))
				goto bad;
			f.aborted = NULL;
			if (f.naborted > 0)
				f.aborted = rbuf_skip(&r, (size_t)f.naborted * 16);
			int32_t rl = rbuf_i32(&r);
			if (r.bad || rl < -1)
				goto bad;
			f.records = NULL;
			f.records_len = 0;
			if (rl >= 0) {
				f.records = rbuf_skip(&r, (size_t)rl);
				f.records_len = (size_t)rl;
			}
			if (r.bad)
				goto bad;
			int rc = cb(ctx, &f);
			if (rc)
				return rc;
		}
	}
	if (r.p != r.end) {
		errf(err, errlen, "fetch response: %zu bytes after the last partition",
		       (size_t)(r.end - r.p));
		return -1;
	}
	return 0;
bad:
	errf(err, errlen, "fetch response malformed at byte %zu of %zu", (size_t)(r.p - body),
	       len);
	return -1;
}

/* ---- Produce v3 ---- */

int kwire_produce_request(struct wbuf *b, int32_t corr, const char *client_id, int16_t acks,
                          int32_t timeout_ms, const struct kwire_produce_topic *topics, int ntopics)
{
	kwire_request_begin(b, KWIRE_API_PRODUCE, 3, corr, client_id);
	wbuf_i16(b, -1); /* transactional id: null */
	wbuf_i16(b, acks);
	wbuf_i32(b, timeout_ms);
	wbuf_i32(b, ntopics);
	for (int t = 0; t < ntopics; t++) {
		const struct kwire_produce_topic *tp = &topics[t];
		wbuf_str(b, tp->topic, strlen(tp->topic));
		wbuf_i32(b, tp->nparts);
		for (int i = 0; i < tp->nparts; i++) {
			const struct kwire_produce_part *pp = &tp->parts[i];
			wbuf_i32(b, pp->partition);
			if (pp->len > INT32_MAX) {
				b->oom = true;
				break;
			}
			wbuf_i32(b, (int32_t)pp->len);
			wbuf_put(b, pp->records, pp->len);
		}
	}
	return kwire_request_end(b);
}

int kwire_produce_response(const uint8_t *body, size_t len,
                           int (*cb)(void *ctx, const struct kwire_produce_result *p), void *ctx,
                           char *err, size_t errlen)
{
	struct rbuf r = {body, body + len, false};
	int32_t ntopics, nparts;
	if (!array_count(&r, 6, false, &ntopics))
		goto bad;
	for (int32_t t = 0; t < ntopics; t++) {
		struct kwire_produce_result p = {0};
		rbuf_str(&r, &p.topic, &p.topic_len);
		if (r.bad || !p.topic)
			goto bad;
		if (!array_count(&r, 22, false, &nparts))
			goto bad;
		for (int32_t i = 0; i < nparts; i++) {
			p.partition = rbuf_i32(&r);
			p.error = rbuf_i16(&r);
			p.base_offset = rbuf_i64(&r);
			(void)rbuf_i64(&r); /* log append time */
			if (r.bad)
				goto bad;
			int rc = cb(ctx, &p);
			if (rc)
				return rc;
		}
	}
	(void)rbuf_i32(&r); /* throttle time */
	if (r.bad)
		goto bad;
	if (r.p != r.end) {
		errf(err, errlen, "produce response: %zu bytes after the throttle time",
		       (size_t)(r.end - r.p));
		return -1;
	}
	return 0;
bad:
	errf(err, errlen, "produce response malformed at byte %zu of %zu", (size_t)(r.p - body),
	       len);
	return -1;
}

/* ---- error codes ---- */

bool kwire_retriable(int16_t error)
{
	switch (error) {
	case 2:
	case 3:
	case 5:
	case 6:
	case 7:
	case 13:
	case 14:
	case 15:
	case 16:
	case 19:
	case 20:
	case 41:
	case 51:
	case 56:
	case 70:
	case 71:
	case 72:
	case 74:
	case 75:
	case 78:
	case 80:
	case 88:
	case 89:
		return true;
	default:
		return false;
	}
}

const char *kwire_error_name(int16_t error)
{
	static const char *const names[] = {
	    [0] = "NONE",
	    [1] = "OFFSET_OUT_OF_RANGE",
	    [2] = "CORRUPT_MESSAGE",
	    [3] = "UNKNOWN_TOPIC_OR_PARTITION",
	    [4] = "INVALID_FETCH_SIZE",
	    [5] = "LEADER_NOT_AVAILABLE",
	    [6] = "NOT_LEADER_OR_FOLLOWER",
	    [7] = "REQUEST_TIMED_OUT",
	    [8] = "BROKER_NOT_AVAILABLE",
	    [9] = "REPLICA_NOT_AVAILABLE",
	    [10] = "MESSAGE_TOO_LARGE",
	    [11] = "STALE_CONTROLLER_EPOCH",
	    [12] = "OFFSET_METADATA_TOO_LARGE",
	    [13] = "NETWORK_EXCEPTION",
	    [14] = "COORDINATOR_LOAD_IN_PROGRESS",
	    [15] = "COORDINATOR_NOT_AVAILABLE",
	    [16] = "NOT_COORDINATOR",
	    [17] = "INVALID_TOPIC_EXCEPTION",
	    [18] = "RECORD_LIST_TOO_LARGE",
	    [19] = "NOT_ENOUGH_REPLICAS",
	    [20] = "NOT_ENOUGH_REPLICAS_AFTER_APPEND",
	    [21] = "INVALID_REQUIRED_ACKS",
	    [22] = "ILLEGAL_GENERATION",
	    [23] = "INCONSISTENT_GROUP_PROTOCOL",
	    [24] = "INVALID_GROUP_ID",
	    [25] = "UNKNOWN_MEMBER_ID",
	    [26] = "INVALID_SESSION_TIMEOUT",
	    [27] = "REBALANCE_IN_PROGRESS",
	    [28] = "INVALID_COMMIT_OFFSET_SIZE",
	    [29] = "TOPIC_AUTHORIZATION_FAILED",
	    [30] = "GROUP_AUTHORIZATION_FAILED",
	    [31] = "CLUSTER_AUTHORIZATION_FAILED",
	    [32] = "INVALID_TIMESTAMP",
	    [33] = "UNSUPPORTED_SASL_MECHANISM",
	    [34] = "ILLEGAL_SASL_STATE",
	    [35] = "UNSUPPORTED_VERSION",
	    [36] = "TOPIC_ALREADY_EXISTS",
	    [37] = "INVALID_PARTITIONS",
	    [38] = "INVALID_REPLICATION_FACTOR",
	    [39] = "INVALID_REPLICA_ASSIGNMENT",
	    [40] = "INVALID_CONFIG",
	    [41] = "NOT_CONTROLLER",
	    [42] = "INVALID_REQUEST",
	    [43] = "UNSUPPORTED_FOR_MESSAGE_FORMAT",
	    [44] = "POLICY_VIOLATION",
	    [45] = "OUT_OF_ORDER_SEQUENCE_NUMBER",
	    [46] = "DUPLICATE_SEQUENCE_NUMBER",
	    [47] = "INVALID_PRODUCER_EPOCH",
	    [48] = "INVALID_TXN_STATE",
	    [49] = "INVALID_PRODUCER_ID_MAPPING",
	    [50] = "INVALID_TRANSACTION_TIMEOUT",
	    [51] = "CONCURRENT_TRANSACTIONS",
	    [52] = "TRANSACTION_COORDINATOR_FENCED",
	    [53] = "TRANSACTIONAL_ID_AUTHORIZATION_FAILED",
	    [54] = "SECURITY_DISABLED",
	    [55] = "OPERATION_NOT_ATTEMPTED",
	    [56] = "KAFKA_STORAGE_ERROR",
	    [57] = "LOG_DIR_NOT_FOUND",
	    [58] = "SASL_AUTHENTICATION_FAILED",
	    [59] = "UNKNOWN_PRODUCER_ID",
	    [60] = "REASSIGNMENT_IN_PROGRESS",
	    [70] = "FETCH_SESSION_ID_NOT_FOUND",
	    [71] = "INVALID_FETCH_SESSION_EPOCH",
	    [72] = "LISTENER_NOT_FOUND",
	    [74] = "FENCED_LEADER_EPOCH",
	    [75] = "UNKNOWN_LEADER_EPOCH",
	    [76] = "UNSUPPORTED_COMPRESSION_TYPE",
	    [78] = "OFFSET_NOT_AVAILABLE",
	    [80] = "PREFERRED_LEADER_NOT_AVAILABLE",
	    [87] = "INVALID_RECORD",
	    [88] = "UNSTABLE_OFFSET_COMMIT",
	    [89] = "THROTTLING_QUOTA_EXCEEDED",
	};
	if (error == -1)
		return "UNKNOWN_SERVER_ERROR";
	if (error < 0 || (size_t)error >= sizeof(names) / sizeof(names[0]) || !names[error])
		return "UNKNOWN";
	return names[error];
}
