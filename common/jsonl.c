/* JSON lines <-> in-memory records, driven by the schema so that bytes fields survive the trip
 * (raw MQTT payloads are often not text) and input lines are checked field by field. */
#include "jsonl.h"

#include "text.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSONL_MAX_DEPTH 64

struct jctx {
	char *err;
	size_t errlen;
	char path[256];
};

static int jfail(struct jctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int jfail(struct jctx *c, const char *fmt, ...)
{
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (c->err && c->errlen)
		snprintf(c->err, c->errlen, "%s: %s", c->path[0] ? c->path : "line", what);
	return -1;
}

/* ---- output ---- */

static int put_string(struct buf *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	if (buf_reserve(b, len + 2) < 0 || buf_putc(b, '"') < 0)
		return -1;
	size_t run = 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
		if (buf_append(b, s + run, i - run) < 0)
			return -1;
		run = i + 1;
		char esc[7] = {'\\', 0};
		switch (ch) {
		case '"': esc[1] = '"'; break;
		case '\\': esc[1] = '\\'; break;
		case '\n': esc[1] = 'n'; break;
		case '\r': esc[1] = 'r'; break;
		case '\t': esc[1] = 't'; break;
		default:
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[ch >> 4];
			esc[5] = hex[ch & 15];
		}
		if (buf_append(b, esc, strlen(esc)) < 0)
			return -1;
	}
	if (buf_append(b, s + run, len - run) < 0)
		return -1;
	return buf_putc(b, '"');
}

/* Shortest text that reads back as the same double. */
static int put_double(struct buf *b, double d)
{
	char tmp[40];
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(tmp, sizeof(tmp), "%.*g", prec, d);
		if (strtod(tmp, NULL) == d)
			break;
	}
	/* Keep doubles recognisable as doubles to readers that care (1 -> 1.0). */
	if (!strpbrk(tmp, ".eE"))
		strcat(tmp, ".0");
	return buf_append(b, tmp, strlen(tmp));
}

static bool fits(const struct avro_schema *s, const json_t *v)
{
	switch (avro_schema_type(s)) {
	case AVRO_NULL:
		return json_is_null(v);
	case AVRO_BOOLEAN:
		return json_is_boolean(v);
	case AVRO_INT:
	case AVRO_LONG:
		return json_is_integer(v);
	case AVRO_FLOAT:
	case AVRO_DOUBLE:
		return json_is_number(v);
	case AVRO_STRING:
	case AVRO_ENUM:
		return json_is_string(v);
	case AVRO_BYTES:
	case AVRO_FIXED:
		return json_is_string(v) || json_is_object(v);
	case AVRO_RECORD:
	case AVRO_MAP:
		return json_is_object(v);
	case AVRO_ARRAY:
		return json_is_array(v);
	case AVRO_UNION:
		return false;
	}
	return false;
}

static int fmt_value(struct jctx *c, const struct avro_schema *s, const json_t *v,
		     struct buf *b, int depth)
{
	if (depth > JSONL_MAX_DEPTH)
		return jfail(c, "nested too deeply");
	switch (avro_schema_type(s)) {
	case AVRO_NULL:
		return buf_append(b, "null", 4);
	case AVRO_BOOLEAN:
		return json_is_true(v) ? buf_append(b, "true", 4) : buf_append(b, "false", 5);
	case AVRO_INT:
	case AVRO_LONG:
		return buf_printf(b, "%lld", (long long)json_integer_value(v));
	case AVRO_FLOAT:
	case AVRO_DOUBLE:
		return put_double(b, json_number_value(v));
	case AVRO_STRING:
	case AVRO_ENUM:
		return put_string(b, json_string_value(v), json_string_length(v));
	case AVRO_BYTES:
	case AVRO_FIXED: {
		const char *p = json_string_value(v);
		size_t n = json_string_length(v);
		if (utf8_valid(p, n) && !memchr(p, 0, n))
			return put_string(b, p, n);
		return buf_append(b, "{\"base64\":\"", 11) < 0 || base64_encode(p, n, b) < 0 ||
				       buf_append(b, "\"}", 2) < 0
			       ? -1
			       : 0;
	}
	case AVRO_RECORD: {
		if (buf_putc(b, '{') < 0)
			return -1;
		for (size_t i = 0; i < avro_record_field_count(s); i++) {
			const char *name = avro_record_field_name(s, i);
			const json_t *fv = json_object_get(v, name);
			if (!fv)
				return jfail(c, "record field %s is missing", name);
			if ((i && buf_putc(b, ',') < 0) || put_string(b, name, strlen(name)) < 0 ||
			    buf_putc(b, ':') < 0 ||
			    fmt_value(c, avro_record_field_schema(s, i), fv, b, depth + 1) < 0)
				return -1;
		}
		return buf_putc(b, '}');
	}
	case AVRO_MAP: {
		const char *k;
		size_t klen;
		json_t *item;
		bool first = true;
		if (buf_putc(b, '{') < 0)
			return -1;
		json_object_keylen_foreach((json_t *)v, k, klen, item)
		{
			if ((!first && buf_putc(b, ',') < 0) || put_string(b, k, klen) < 0 ||
			    buf_putc(b, ':') < 0 ||
			    fmt_value(c, avro_schema_items(s), item, b, depth + 1) < 0)
				return -1;
			first = false;
		}
		return buf_putc(b, '}');
	}
	case AVRO_ARRAY:
		if (buf_putc(b, '[') < 0)
			return -1;
		for (size_t i = 0; i < json_array_size(v); i++)
			if ((i && buf_putc(b, ',') < 0) ||
			    fmt_value(c, avro_schema_items(s), json_array_get(v, i), b, depth + 1) < 0)
				return -1;
		return buf_putc(b, ']');
	case AVRO_UNION:
		for (size_t i = 0; i < avro_union_size(s); i++)
			if (fits(avro_union_branch(s, i), v))
				return fmt_value(c, avro_union_branch(s, i), v, b, depth + 1);
		return jfail(c, "value matches no branch of the union");
	}
	return -1;
}

int jsonl_format(const struct avro_schema *s, const json_t *rec, struct buf *out, char *err,
		 size_t errlen)
{
	struct jctx c = {.err = err, .errlen = errlen};
	size_t start = out->len;
	if (err && errlen)
		err[0] = 0;
	if (fmt_value(&c, s, rec, out, 0) < 0 || buf_putc(out, '\n') < 0) {
		if (err && errlen && !err[0])
			snprintf(err, errlen, "out of memory");
		out->len = start;
		return -1;
	}
	return 0;
}

/* ---- input ---- */

static json_t *conv(struct jctx *c, const struct avro_schema *s, const json_t *v, int depth);

static json_t *conv_record(struct jctx *c, const struct avro_schema *s, const json_t *v,
			   int depth)
{
	if (!json_is_object(v))
		return jfail(c, "expected an object"), NULL;
	json_t *obj = json_object();
	size_t plen = strlen(c->path);
	for (size_t i = 0; obj && i < avro_record_field_count(s); i++) {
		const char *name = avro_record_field_name(s, i);
		snprintf(c->path + plen, sizeof(c->path) - plen, "%s%s", plen ? "." : "", name);
		const json_t *fv = json_object_get(v, name);
		json_t *nv;
		if (!fv && avro_record_field_default(s, i))
			nv = json_deep_copy(avro_record_field_default(s, i));
		else if (!fv)
			nv = (jfail(c, "missing"), NULL);
		else
			nv = conv(c, avro_record_field_schema(s, i), fv, depth + 1);
		if (!nv || json_object_set_new_nocheck(obj, name, nv) < 0) {
			json_decref(obj);
			return NULL;
		}
	}
	c->path[plen] = 0;
	return obj;
}

static json_t *conv(struct jctx *c, const struct avro_schema *s, const json_t *v, int depth)
{
	if (depth > JSONL_MAX_DEPTH)
		return jfail(c, "nested too deeply"), NULL;
	switch (avro_schema_type(s)) {
	case AVRO_NULL:
		return json_is_null(v) ? json_null() : (jfail(c, "expected null"), NULL);
	case AVRO_BOOLEAN:
		return json_is_boolean(v) ? json_incref((json_t *)v)
					  : (jfail(c, "expected true or false"), NULL);
	case AVRO_INT:
		if (json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
		    json_integer_value(v) <= INT32_MAX)
			return json_incref((json_t *)v);
		return jfail(c, "expected a 32-bit integer"), NULL;
	case AVRO_LONG:
		return json_is_integer(v) ? json_incref((json_t *)v)
					  : (jfail(c, "expected an integer"), NULL);
	case AVRO_FLOAT:
	case AVRO_DOUBLE:
		if (!json_is_number(v) || !isfinite(json_number_value(v)))
			return jfail(c, "expected a finite number"), NULL;
		return json_real(json_number_value(v));
	case AVRO_STRING:
		return json_is_string(v) ? json_incref((json_t *)v)
					 : (jfail(c, "expected a string"), NULL);
	case AVRO_ENUM:
		if (json_is_string(v) && avro_enum_has_symbol(s, json_string_value(v)))
			return json_incref((json_t *)v);
		return jfail(c, "not one of the enum's symbols"), NULL;
	case AVRO_BYTES:
	case AVRO_FIXED: {
		json_t *r = NULL;
		if (json_is_string(v)) {
			r = json_incref((json_t *)v);
		} else if (json_is_object(v) && json_is_string(json_object_get(v, "base64")) &&
			   json_object_size(v) == 1) {
			const json_t *b64 = json_object_get(v, "base64");
			struct buf raw = {0};
			if (base64_decode(json_string_value(b64), json_string_length(b64), &raw) < 0) {
				buf_free(&raw);
				return jfail(c, "invalid base64"), NULL;
			}
			r = json_stringn_nocheck(raw.data ? (char *)raw.data : "", raw.len);
			buf_free(&raw);
		} else {
			return jfail(c, "expected a string or {\"base64\": ...}"), NULL;
		}
		if (r && avro_schema_type(s) == AVRO_FIXED &&
		    json_string_length(r) != avro_fixed_size(s)) {
			json_decref(r);
			return jfail(c, "expected %zu bytes", avro_fixed_size(s)), NULL;
		}
		return r;
	}
	case AVRO_RECORD:
		return conv_record(c, s, v, depth);
	case AVRO_MAP: {
		if (!json_is_object(v))
			return jfail(c, "expected an object"), NULL;
		json_t *obj = json_object();
		const char *k;
		json_t *item;
		json_object_foreach((json_t *)v, k, item)
		{
			json_t *nv = obj ? conv(c, avro_schema_items(s), item, depth + 1) : NULL;
			if (!nv || json_object_set_new(obj, k, nv) < 0) {
				json_decref(obj);
				return NULL;
			}
		}
		return obj;
	}
	case AVRO_ARRAY: {
		if (!json_is_array(v))
			return jfail(c, "expected an array"), NULL;
		json_t *arr = json_array();
		for (size_t i = 0; arr && i < json_array_size(v); i++) {
			json_t *nv = conv(c, avro_schema_items(s), json_array_get(v, i), depth + 1);
			if (!nv || json_array_append_new(arr, nv) < 0) {
				json_decref(arr);
				return NULL;
			}
		}
		return arr;
	}
	case AVRO_UNION:
		for (size_t i = 0; i < avro_union_size(s); i++) {
			const struct avro_schema *br = avro_union_branch(s, i);
			if (!fits(br, v))
				continue;
			json_t *nv = conv(c, br, v, depth + 1);
			if (nv)
				return nv;
		}
		return jfail(c, "value matches no branch of the union"), NULL;
	}
	return NULL;
}

/* Reasons quote pieces of the line (jansson's "near '...'", map keys in field paths) and end
 * up in log lines: bytes that are not printable ASCII become '?', so a hostile line cannot
 * carry terminal escapes or forged log text into them. */
static int reason_clean(char *err, size_t errlen)
{
	if (err && errlen)
		for (unsigned char *p = (unsigned char *)err; *p; p++)
			if (*p < 0x20 || *p > 0x7E)
				*p = '?';
	return -1;
}

int jsonl_parse(const struct avro_schema *s, const char *line, size_t len, json_t **out,
		char *err, size_t errlen)
{
	json_error_t jerr;
	*out = NULL;
	json_t *v = json_loadb(line, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v) {
		snprintf(err, errlen, "invalid JSON at column %d: %s", jerr.column, jerr.text);
		return reason_clean(err, errlen);
	}
	struct jctx c = {.err = err, .errlen = errlen};
	if (err && errlen)
		err[0] = 0;
	*out = conv(&c, s, v, 0);
	json_decref(v);
	if (!*out) {
		if (err && errlen && !err[0])
			snprintf(err, errlen, "out of memory");
		return reason_clean(err, errlen);
	}
	return 0;
}

void jsonl_reader_init(struct jsonl_reader *r, FILE *f, size_t max_len)
{
	*r = (struct jsonl_reader){.f = f, .max_len = max_len};
}

int jsonl_reader_next(struct jsonl_reader *r)
{
	buf_reset(&r->line);
	bool too_long = false;
	for (;;) {
		int ch = getc(r->f);
		if (ch == EOF) {
			if (ferror(r->f))
				return -2;
			if (r->line.len == 0 && !too_long)
				return 0;
			break;
		}
		if (ch == '\n')
			break;
		if (too_long)
			continue;
		if (r->line.len >= r->max_len) {
			too_long = true;
			continue;
		}
		if (buf_putc(&r->line, (uint8_t)ch) < 0)
			return -2;
	}
	r->lineno++;
	if (too_long)
		return -1;
	if (r->line.len && r->line.data[r->line.len - 1] == '\r')
		r->line.len--;
	return buf_terminate(&r->line) < 0 ? -2 : 1;
}

void jsonl_reader_free(struct jsonl_reader *r)
{
	buf_free(&r->line);
}
