/* The registry of compiled-in schemas: current versions (readers) and history (writers we still
 * read), looked up by the fingerprint in each single-object-encoded value. */
#include "records.h"

#include "schemas_embedded.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SOE_MAGIC0 0xC3
#define SOE_MAGIC1 0x01
#define SOE_HEADER 10
#define MAX_WRITERS 64

static const char *const rec_names[REC_TYPE_COUNT] = {
	"RawMessage", "Reading", "Rejected", "Aggregate", "Command", "ThresholdEvent", "Forecast",
};

struct writer {
	uint64_t fp;
	enum rec_type type;
	struct avro_schema *schema;
};

static struct avro_schema *current[REC_TYPE_COUNT];
static struct writer writers[MAX_WRITERS];
static size_t nwriters;
static int initialised;

const char *records_name(enum rec_type t)
{
	return t >= 0 && t < REC_TYPE_COUNT ? rec_names[t] : "unknown";
}

enum rec_type records_type_by_name(const char *name)
{
	if (!name)
		return REC_UNKNOWN;
	if (strncmp(name, "iotpipe.", 8) == 0)
		name += 8;
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		if (strcmp(name, rec_names[t]) == 0)
			return (enum rec_type)t;
	return REC_UNKNOWN;
}

const struct avro_schema *records_schema(enum rec_type t)
{
	return t >= 0 && t < REC_TYPE_COUNT ? current[t] : NULL;
}

void records_shutdown(void)
{
	for (size_t i = 0; i < nwriters; i++)
		if (writers[i].schema != current[writers[i].type])
			avro_schema_free(writers[i].schema);
	for (int t = 0; t < REC_TYPE_COUNT; t++) {
		avro_schema_free(current[t]);
		current[t] = NULL;
	}
	nwriters = 0;
	initialised = 0;
}

int records_init(char *err, size_t errlen)
{
	if (initialised)
		return 0;
	char why[256];
	/* Current schemas first, so history entries can be checked against them. */
	for (int pass = 0; pass < 2; pass++) {
		for (const struct embedded_schema *e = embedded_schemas; e->path; e++) {
			bool history = strstr(e->path, "/history/") != NULL;
			if (history != (pass == 1))
				continue;
			struct avro_schema *s = avro_schema_parse(e->text, why, sizeof(why));
			if (!s) {
				snprintf(err, errlen, "%s: %s", e->path, why);
				goto fail;
			}
			enum rec_type t = records_type_by_name(avro_schema_name(s));
			if (t == REC_UNKNOWN || (!history && current[t]) || nwriters == MAX_WRITERS) {
				snprintf(err, errlen, "%s: unexpected record %s", e->path,
					 avro_schema_name(s));
				avro_schema_free(s);
				goto fail;
			}
			if (history &&
			    avro_schema_compatible(s, current[t], why, sizeof(why)) < 0) {
				snprintf(err, errlen, "%s: cannot be read as the current %s: %s",
					 e->path, rec_names[t], why);
				avro_schema_free(s);
				goto fail;
			}
			if (!history)
				current[t] = s;
			writers[nwriters++] = (struct writer){avro_schema_fingerprint(s), t, s};
		}
	}
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		if (!current[t]) {
			snprintf(err, errlen, "schema for %s is missing from schemas/", rec_names[t]);
			goto fail;
		}
	initialised = 1;
	return 0;
fail:
	records_shutdown();
	return -1;
}

int records_encode(enum rec_type t, const json_t *rec, struct buf *out, char *err, size_t errlen)
{
	const struct avro_schema *s = records_schema(t);
	if (!s) {
		snprintf(err, errlen, "unknown record type %d", (int)t);
		return -1;
	}
	uint64_t fp = avro_schema_fingerprint(s);
	uint8_t hdr[SOE_HEADER] = {SOE_MAGIC0, SOE_MAGIC1};
	for (int i = 0; i < 8; i++)
		hdr[2 + i] = (uint8_t)(fp >> (8 * i));
	size_t start = out->len;
	if (buf_append(out, hdr, sizeof(hdr)) < 0) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	char why[256];
	if (avro_encode(s, rec, out, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "%s.%s", rec_names[t], why);
		out->len = start;
		return -1;
	}
	return 0;
}

int records_decode(const void *data, size_t len, enum rec_type *type, json_t **out, char *err,
		   size_t errlen)
{
	const uint8_t *p = data;
	*out = NULL;
	if (!p || len < SOE_HEADER) {
		snprintf(err, errlen, "value of %zu bytes is too short for single-object encoding",
			 len);
		return -1;
	}
	if (p[0] != SOE_MAGIC0 || p[1] != SOE_MAGIC1) {
		snprintf(err, errlen, "not Avro single-object encoding (magic %02x %02x)", p[0],
			 p[1]);
		return -1;
	}
	uint64_t fp = 0;
	for (int i = 0; i < 8; i++)
		fp |= (uint64_t)p[2 + i] << (8 * i);
	const struct writer *w = NULL;
	for (size_t i = 0; i < nwriters && !w; i++)
		if (writers[i].fp == fp)
			w = &writers[i];
	if (!w) {
		snprintf(err, errlen, "unknown schema fingerprint %016llx",
			 (unsigned long long)fp);
		return -1;
	}
	char why[256];
	if (avro_decode(w->schema, current[w->type], p + SOE_HEADER, len - SOE_HEADER, out, why,
			sizeof(why)) < 0) {
		snprintf(err, errlen, "%s.%s", rec_names[w->type], why);
		return -1;
	}
	if (type)
		*type = w->type;
	return 0;
}

int records_decode_as(enum rec_type want, const void *data, size_t len, json_t **out, char *err,
		      size_t errlen)
{
	enum rec_type got;
	if (records_decode(data, len, &got, out, err, errlen) < 0)
		return -1;
	if (got != want) {
		snprintf(err, errlen, "expected a %s record, got %s", rec_names[want],
			 rec_names[got]);
		json_decref(*out);
		*out = NULL;
		return -1;
	}
	return 0;
}

const char *rec_str(const json_t *rec, const char *field)
{
	return json_string_value(json_object_get(rec, field));
}

int64_t rec_int(const json_t *rec, const char *field, int64_t fallback)
{
	const json_t *v = json_object_get(rec, field);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : fallback;
}

double rec_double(const json_t *rec, const char *field, double fallback)
{
	const json_t *v = json_object_get(rec, field);
	return json_is_number(v) ? json_number_value(v) : fallback;
}
