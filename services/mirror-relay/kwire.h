/* The few Kafka requests the relay's batch path speaks itself: Fetch v4 and Produce v3 (the
 * oldest versions Kafka 4 still accepts, and plain, non-flexible encodings), framed with request
 * header v1 and response header v0. Encoders append to a growable buffer; decoders walk a
 * response body (what follows the correlation id) and treat every length and count as hostile:
 * nothing is read past the end and nothing is allocated from a length taken off the wire.
 * Reference: https://kafka.apache.org/protocol (Fetch, Produce, primitive types). */
#ifndef MIRROR_RELAY_KWIRE_H
#define MIRROR_RELAY_KWIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- growable output buffer ---- */
struct wbuf {
	uint8_t *p;
	size_t len, cap;
	bool oom; /* an append failed; everything after it was dropped */
};
void wbuf_reset(struct wbuf *b); /* len = 0, oom = false; keeps the memory */
void wbuf_free(struct wbuf *b);
/* Room for n more bytes; returns a pointer to them (len not advanced) or NULL (oom set). */
uint8_t *wbuf_room(struct wbuf *b, size_t n);
void wbuf_put(struct wbuf *b, const void *p, size_t n);
void wbuf_i8(struct wbuf *b, int8_t v);
void wbuf_i16(struct wbuf *b, int16_t v); /* big-endian, as every fixed-width Kafka integer */
void wbuf_i32(struct wbuf *b, int32_t v);
void wbuf_i64(struct wbuf *b, int64_t v);
void wbuf_varint(struct wbuf *b, int64_t v); /* zig-zag varint (record fields); up to 10 bytes */
/* int16 length + bytes; a string longer than 32767 bytes fails as an append does (oom). */
void wbuf_str(struct wbuf *b, const char *s, size_t n);
void wbuf_set_i32(struct wbuf *b, size_t at, int32_t v); /* overwrite 4 bytes at offset */
size_t kwire_varint_size(int64_t v);			    /* bytes wbuf_varint writes */

/* A big-endian unsigned integer of n (1..8) bytes at p. */
static inline uint64_t kwire_be_load(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

/* ---- bounded input reader ---- */
struct rbuf {
	const uint8_t *p, *end;
	bool bad; /* a read ran past the end or met an impossible value; later reads return 0 */
};
int8_t rbuf_i8(struct rbuf *r);
int16_t rbuf_i16(struct rbuf *r);
int32_t rbuf_i32(struct rbuf *r);
int64_t rbuf_i64(struct rbuf *r);
int64_t rbuf_varint(struct rbuf *r); /* zig-zag; more than 10 bytes is bad */
/* int16-length string; *s points into the buffer (not NUL-terminated). A null string (-1)
 * gives *s NULL, *n 0. */
void rbuf_str(struct rbuf *r, const char **s, size_t *n);
/* The next n bytes, or NULL (bad set) when fewer remain; inline for the per-record paths. */
static inline const uint8_t *kwire_take(struct rbuf *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return NULL;
	}
	const uint8_t *p = r->p;
	r->p += n;
	return p;
}
/* Skips n bytes (bad when fewer remain). Returns the start of the skipped bytes or NULL. */
const uint8_t *rbuf_skip(struct rbuf *r, size_t n);

/* ---- framing ---- */
enum { KWIRE_API_PRODUCE = 0, KWIRE_API_FETCH = 1 };
/* Starts a request in b (reset first): int32 size placeholder, api_key, api_version,
 * correlation id, client id (nullable string). */
void kwire_request_begin(struct wbuf *b, int16_t api_key, int16_t version, int32_t corr,
			 const char *client_id);
/* Patches the size. Returns 0, or -1 when the buffer ran out of memory. */
int kwire_request_end(struct wbuf *b);

/* ---- Fetch v4 ---- */
struct kwire_fetch_part {
	int32_t partition;
	int64_t offset;
};
struct kwire_fetch_topic {
	const char *topic;
	const struct kwire_fetch_part *parts;
	int nparts;
};
struct kwire_fetch_req {
	int32_t max_wait_ms, min_bytes, max_bytes, part_max_bytes;
	int8_t isolation; /* 0 read_uncommitted, 1 read_committed */
	const struct kwire_fetch_topic *topics;
	int ntopics;
};
/* A whole request (begin + body + end). Returns 0 or -1 (oom). */
int kwire_fetch_request(struct wbuf *b, int32_t corr, const char *client_id,
			const struct kwire_fetch_req *q);

struct kwire_aborted {
	int64_t producer_id, first_offset;
};
/* One partition of a Fetch response. Pointers point into the response. */
struct kwire_fetch_result {
	const char *topic;
	size_t topic_len;
	int32_t partition;
	int16_t error;
	int64_t high_watermark, last_stable_offset;
	const uint8_t *aborted; /* naborted raw pairs; read them with kwire_aborted_at */
	int32_t naborted;	/* -1 when null */
	const uint8_t *records; /* concatenated record batches, the last possibly cut short */
	size_t records_len;
};
void kwire_aborted_at(const struct kwire_fetch_result *f, int32_t i, struct kwire_aborted *out);
/* Walks a Fetch v4 response body, calling cb for each partition in order; cb returns 0 to go
 * on or non-zero to stop (that value is returned). Returns 0, -1 malformed (err says where),
 * or cb's value. Bytes after the last field are malformed too (a version mismatch shows there);
 * cb may have been called for the partitions before the point where the body went wrong. */
int kwire_fetch_response(const uint8_t *body, size_t len,
			 int (*cb)(void *ctx, const struct kwire_fetch_result *f), void *ctx,
			 char *err, size_t errlen);

/* ---- Produce v3 ---- */
struct kwire_produce_part {
	int32_t partition;
	const uint8_t *records; /* exactly one record batch (Kafka refuses more in v3+) */
	size_t len;
};
struct kwire_produce_topic {
	const char *topic;
	const struct kwire_produce_part *parts;
	int nparts;
};
/* transactional id null. acks: -1 all, 1 leader. Returns 0 or -1 (oom). */
int kwire_produce_request(struct wbuf *b, int32_t corr, const char *client_id, int16_t acks,
			  int32_t timeout_ms, const struct kwire_produce_topic *topics,
			  int ntopics);
struct kwire_produce_result {
	const char *topic;
	size_t topic_len;
	int32_t partition;
	int16_t error;
	int64_t base_offset;
};
/* As kwire_fetch_response, for a Produce v3 response body. */
int kwire_produce_response(const uint8_t *body, size_t len,
			   int (*cb)(void *ctx, const struct kwire_produce_result *p), void *ctx,
			   char *err, size_t errlen);

/* Kafka error codes the relay tells apart (protocol error codes table). */
enum {
	KERR_NONE = 0,
	KERR_OFFSET_OUT_OF_RANGE = 1,
	KERR_CORRUPT_MESSAGE = 2,
	KERR_UNKNOWN_TOPIC_OR_PARTITION = 3,
	KERR_LEADER_NOT_AVAILABLE = 5,
	KERR_NOT_LEADER_OR_FOLLOWER = 6,
	KERR_REQUEST_TIMED_OUT = 7,
	KERR_MESSAGE_TOO_LARGE = 10,
};
/* True for errors a later attempt may not meet (Kafka's "retriable" column), e.g. 5, 6, 7,
 * 13 NETWORK_EXCEPTION, 14-16 coordinator ones, 19/20 NOT_ENOUGH_REPLICAS*, 56
 * KAFKA_STORAGE_ERROR, 74/75 FENCED/UNKNOWN_LEADER_EPOCH, 3 and 2 (Kafka marks them retriable). */
bool kwire_retriable(int16_t error);
/* Kafka's name of an error code ("NOT_LEADER_OR_FOLLOWER"), "UNKNOWN" for unknown codes. */
const char *kwire_error_name(int16_t error);

#endif
