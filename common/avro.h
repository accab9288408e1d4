/* A small Avro implementation for the suite's records: schema parsing, Parsing Canonical Form,
 * CRC-64-AVRO fingerprints, and binary encoding/decoding with schema resolution.
 *
 * Values are jansson json_t trees shaped like the JSON-lines form of a record:
 *   null/boolean/int/long/float/double/string -> the JSON scalar (longs as json_integer);
 *   bytes/fixed -> a json string holding the raw bytes (may be invalid UTF-8 or contain NUL:
 *                  always read them with json_string_length);
 *   enum -> its symbol as a string;  array -> array;  map -> object;  record -> object;
 *   union -> the bare value of the branch (branches are chosen by the value's JSON type).
 * Doubles must be finite (JSON has no NaN): decoding a non-finite double is an error.
 *
 * Why not avro-c: its reader allocates whatever length the bytes claim (a hostile record can ask
 * for gigabytes), it has no canonical form or fingerprints, and its JSON form wraps unions, which
 * is not the plain JSON-lines form our CLI contract promises. This codec bounds every length by
 * the bytes actually present and decodes straight into the JSON tree the services use. */
#ifndef IOTPIPE_AVRO_H
#define IOTPIPE_AVRO_H

#include "buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct avro_schema;

/* Parses schema JSON text. Returns NULL and writes the reason into err on failure.
 * The result owns all its memory; free with avro_schema_free (accepts NULL). */
struct avro_schema *avro_schema_parse(const char *json_text, char *err, size_t errlen);
void avro_schema_free(struct avro_schema *s);

/* Full name ("iotpipe.Reading") of a named schema, or the primitive's name. */
const char *avro_schema_name(const struct avro_schema *s);
/* Parsing Canonical Form (Avro spec); owned by the schema, computed at parse time. */
const char *avro_schema_canonical(const struct avro_schema *s);
/* CRC-64-AVRO of the canonical form (the single-object-encoding fingerprint). */
uint64_t avro_schema_fingerprint(const struct avro_schema *s);
uint64_t avro_crc64(const void *data, size_t len);

/* Record-level introspection, for generic consumers such as raw-saver.
 * Returns the number of fields (0 for non-records); names and types stay owned by the schema. */
size_t avro_record_field_count(const struct avro_schema *s);
const char *avro_record_field_name(const struct avro_schema *s, size_t i);
const struct avro_schema *avro_record_field_schema(const struct avro_schema *s, size_t i);

enum avro_type {
	AVRO_NULL, AVRO_BOOLEAN, AVRO_INT, AVRO_LONG, AVRO_FLOAT, AVRO_DOUBLE, AVRO_BYTES,
	AVRO_STRING, AVRO_RECORD, AVRO_ENUM, AVRO_ARRAY, AVRO_MAP, AVRO_UNION, AVRO_FIXED
};
enum avro_type avro_schema_type(const struct avro_schema *s);
/* The logicalType attribute ("timestamp-millis"...) or NULL. */
const char *avro_schema_logical(const struct avro_schema *s);
/* Array items or map values; NULL for other types. */
const struct avro_schema *avro_schema_items(const struct avro_schema *s);
/* Union branches (0 for non-unions). */
size_t avro_union_size(const struct avro_schema *s);
const struct avro_schema *avro_union_branch(const struct avro_schema *s, size_t i);
/* A record field's default (schema JSON form, borrowed) or NULL when it has none. */
const json_t *avro_record_field_default(const struct avro_schema *s, size_t i);
/* True when sym is one of an enum's symbols. */
bool avro_enum_has_symbol(const struct avro_schema *s, const char *sym);
/* Size of a fixed; 0 for other types. */
size_t avro_fixed_size(const struct avro_schema *s);
/* For a union ["null", X]: X; otherwise s itself. */
const struct avro_schema *avro_schema_nonnull(const struct avro_schema *s);

/* Appends the binary encoding of value to out. Returns 0, or -1 with the reason in err
 * (naming the field path, e.g. "Reading.value: expected a number"). */
int avro_encode(const struct avro_schema *s, const json_t *value, struct buf *out, char *err,
		size_t errlen);

/* Decodes one datum written with `writer` and resolves it to `reader` (pass the same schema for
 * both when they are equal). Reader fields missing from the writer take their defaults; writer
 * fields unknown to the reader are skipped; int->long->float->double promotions apply.
 * The whole input must be consumed. Returns 0 with *out a new reference, or -1 with the reason
 * in err (field path and byte offset). Never reads past len; never allocates more than a small
 * multiple of len. */
int avro_decode(const struct avro_schema *writer, const struct avro_schema *reader,
		const uint8_t *data, size_t len, json_t **out, char *err, size_t errlen);

/* Checks that `writer` data can be read as `reader` (names match, fields without defaults exist).
 * Returns 0 or -1 with the reason. */
int avro_schema_compatible(const struct avro_schema *writer, const struct avro_schema *reader,
			   char *err, size_t errlen);

#endif
