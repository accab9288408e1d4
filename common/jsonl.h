/* JSON lines: the stdin/stdout form of records (`--in -`, `--out -`).
 *
 * One record per line, an object with the schema's field names. Conversions from the in-memory
 * form (avro.h): bytes and fixed fields are written as a JSON string when they are valid UTF-8
 * without NUL, else as {"base64": "..."}; on input either form is accepted. Enum symbols are
 * strings; unions are their bare value; longs (timestamps) are integers in ms.
 * Input is validated against the schema and missing fields with defaults take their defaults. */
#ifndef IOTPIPE_JSONL_H
#define IOTPIPE_JSONL_H

#include "avro.h"
#include "buf.h"
#include "records.h"

#include <jansson.h>
#include <stdio.h>

/* Appends the JSON-lines form of rec (schema s) and a newline to out. Returns 0 or -1 + reason. */
int jsonl_format(const struct avro_schema *s, const json_t *rec, struct buf *out, char *err,
		 size_t errlen);

/* Parses one line (without its newline) into the in-memory form of schema s.
 * Returns 0 with *out a new reference, or -1 with the reason (with the field path). */
int jsonl_parse(const struct avro_schema *s, const char *line, size_t len, json_t **out,
		char *err, size_t errlen);

/* Reads lines of at most max_len bytes from a stream; longer lines are reported and skipped.
 * The zero value is not usable: use jsonl_reader_init. */
struct jsonl_reader {
	FILE *f;
	struct buf line;
	size_t max_len;
	long lineno;
};
void jsonl_reader_init(struct jsonl_reader *r, FILE *f, size_t max_len);
/* Returns 1 with the line in r->line (NUL-terminated, no newline), 0 at end of input, -1 when
 * the line was over max_len (it is consumed; r->lineno says which), -2 on a read error. */
int jsonl_reader_next(struct jsonl_reader *r);
void jsonl_reader_free(struct jsonl_reader *r);

#endif
