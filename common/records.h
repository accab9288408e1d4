/* The suite's record types and their wire format on Kafka.
 *
 * Every Kafka value is Avro single-object encoding: 0xC3 0x01, the 8-byte little-endian
 * CRC-64-AVRO fingerprint of the writer schema's canonical form, then the binary body. The
 * schemas in schemas/ (current) and schemas/history/ (older versions still readable)
 * are compiled into every binary, so a record decodes with no registry.
 *
 * In memory a record is a jansson object with the schema's field names (see avro.h for how each
 * Avro type looks). Field names are the JSON-lines names too. */
#ifndef IOTPIPE_RECORDS_H
#define IOTPIPE_RECORDS_H

#include "avro.h"
#include "buf.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

enum rec_type {
	REC_RAW_MESSAGE,
	REC_READING,
	REC_REJECTED,
	REC_AGGREGATE,
	REC_COMMAND,
	REC_THRESHOLD_EVENT,
	REC_FORECAST,
	REC_TYPE_COUNT,
	REC_UNKNOWN = -1
};

/* Parses the embedded schemas. Idempotent; call before any other function here.
 * Returns 0, or -1 with the reason (a broken schema file is a build defect). */
int records_init(char *err, size_t errlen);
void records_shutdown(void);

/* "RawMessage", "Reading", ... */
const char *records_name(enum rec_type t);
/* REC_UNKNOWN when no such record. Accepts "Reading" and "iotpipe.Reading". */
enum rec_type records_type_by_name(const char *name);
/* The current (reader) schema of a type. */
const struct avro_schema *records_schema(enum rec_type t);

/* Appends the single-object encoding of rec (current schema of t) to out.
 * Returns 0 or -1 with the reason ("Reading.value: expected a number"). */
int records_encode(enum rec_type t, const json_t *rec, struct buf *out, char *err, size_t errlen);

/* Decodes a single-object-encoded value written with any known version of any record type into
 * the current schema of its type. *type is set on success. Unknown fingerprints, bad magic,
 * truncated or trailing bytes give -1 with the reason, never a crash. */
int records_decode(const void *data, size_t len, enum rec_type *type, json_t **out, char *err,
		   size_t errlen);

/* Like records_decode, but fails unless the record is of type `want`. */
int records_decode_as(enum rec_type want, const void *data, size_t len, json_t **out, char *err,
		      size_t errlen);

/* Small typed accessors for services. Missing or mistyped fields give the fallback. */
const char *rec_str(const json_t *rec, const char *field);             /* NULL when absent */
int64_t rec_int(const json_t *rec, const char *field, int64_t fallback);
double rec_double(const json_t *rec, const char *field, double fallback); /* accepts integers */

#endif
