/* Kafka record batches (message format v2, magic 2): reading the batches a Fetch returns and
 * writing the ones a Produce sends. Reference: https://kafka.apache.org/documentation/#recordbatch
 *
 *   baseOffset int64, batchLength int32, partitionLeaderEpoch int32, magic int8 (2),
 *   crc uint32 (CRC-32C of everything from attributes to the end), attributes int16
 *   (bits 0-2 compression, 3 timestamp type, 4 transactional, 5 control), lastOffsetDelta int32,
 *   baseTimestamp int64, maxTimestamp int64, producerId int64, producerEpoch int16,
 *   baseSequence int32, records count int32, records...
 *   record: length varint, attributes int8, timestampDelta varlong, offsetDelta varint,
 *   keyLength varint (-1 null), key, valueLength varint, value, headers count varint,
 *   header: keyLength varint, key, valueLength varint (-1 null), value.
 *
 * Input is hostile: every length is checked against the bytes that are really there. */
#ifndef MIRROR_RELAY_KBATCH_H
#define MIRROR_RELAY_KBATCH_H

#include "kwire.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KBATCH_HEADER_SIZE 61 /* baseOffset .. records count */
#define KBATCH_ATTR_COMPRESSION 0x07
#define KBATCH_ATTR_LOG_APPEND_TIME 0x08
#define KBATCH_ATTR_TRANSACTIONAL 0x10
#define KBATCH_ATTR_CONTROL 0x20

struct kbatch {
	int64_t base_offset;
	int32_t leader_epoch;
	int8_t magic;
	uint32_t crc;
	int16_t attributes;
	int32_t last_offset_delta;
	int64_t base_ts, max_ts;
	int64_t producer_id;
	int16_t producer_epoch;
	int32_t base_sequence;
	int32_t count;
	const uint8_t *records; /* the records section (after count) */
	size_t records_len;
	const uint8_t *crc_start; /* attributes .. end, what crc covers */
	size_t crc_len;
};

/* Next batch of a Fetch's records blob at *pos. Returns 1 (filled, *pos advanced), 0 at the end
 * or when the rest is a batch cut short by the fetch size limit (normal), -1 when malformed:
 * batchLength too small for the header, a negative record count, magic other than 2 (err names
 * the magic: older formats are not relayed by this path; the magic is read before batchLength
 * is trusted since it sits at the same byte in every format). Does not check the CRC
 * (kbatch_crc_ok does). */
int kbatch_next(const uint8_t *blob, size_t len, size_t *pos, struct kbatch *b, char *err,
		size_t errlen);
bool kbatch_crc_ok(const struct kbatch *b);

struct krec {
	int64_t offset; /* base_offset + offsetDelta */
	int64_t ts;	/* base_ts + timestampDelta; max_ts when the batch has LOG_APPEND_TIME */
	const uint8_t *key;
	int32_t key_len; /* -1: null key */
	const uint8_t *value;
	int32_t value_len; /* -1: null value */
	int32_t nheaders;
	const uint8_t *headers; /* the raw header entries, valid as they are in another record */
	size_t headers_len;
};
/* Next record of an uncompressed batch at *pos (start at 0, within b->records). Returns 1, 0
 * after the last, -1 malformed (err: which field, at which byte). Lengths that overrun the
 * record or the batch, negative lengths other than -1 where null is allowed, and header counts
 * that do not fit are malformed; so is a record count the records section cannot hold (checked
 * on the first call, *pos 0). Records are read until the section ends: *pos cannot carry how
 * many were read, so a count smaller than the records present is not noticed. */
int krec_next(const struct kbatch *b, size_t *pos, struct krec *r, char *err, size_t errlen);

struct khdr {
	const uint8_t *key;
	size_t key_len;
	const uint8_t *value;
	int32_t value_len; /* -1: null */
	const uint8_t *raw; /* the whole entry, raw_len bytes, for copying it unchanged */
	size_t raw_len;
};
/* Next header of r at *pos (start at 0). Returns 1, 0 after the last, -1 malformed. */
int khdr_next(const struct krec *r, size_t *pos, struct khdr *h);

/* Builds one batch, record by record, into a wbuf. */
struct kbuilder {
	struct wbuf *out;
	size_t start; /* where the batch begins in out */
	int32_t count;
	int64_t base_ts, max_ts;
};
/* Starts a batch at the end of out: baseOffset 0, leader epoch -1, no producer id (-1, -1, -1),
 * CreateTime, no compression. */
void kbuilder_begin(struct kbuilder *k, struct wbuf *out);
/* Appends a record. key/value: NULL with len -1 for null. hdrs: raw header entries to copy as
 * they are (nhdrs of them, hdrs_len bytes; may be 0), then one extra header when extra_key is
 * not NULL. ts: the record's timestamp. */
void kbuilder_add(struct kbuilder *k, int64_t ts, const uint8_t *key, int32_t key_len,
		  const uint8_t *value, int32_t value_len, const uint8_t *hdrs, size_t hdrs_len,
		  int32_t nhdrs, const char *extra_key, size_t extra_key_len,
		  const uint8_t *extra_value, size_t extra_value_len);
/* Bytes the batch holds so far (header included). */
size_t kbuilder_size(const struct kbuilder *k);
/* Writes the header fields and the CRC. Returns 0, or -1 when out of memory (out->oom) or the
 * batch is empty. */
int kbuilder_finish(struct kbuilder *k);

/* CRC-32C (Castagnoli) as Kafka uses it: hardware instructions when the CPU has them. */
uint32_t kbatch_crc32c(uint32_t crc, const void *p, size_t n);
/* The same with the portable table code only, whatever the CPU (to check one against the other). */
uint32_t kbatch_crc32c_sw(uint32_t crc, const void *p, size_t n);

#endif
