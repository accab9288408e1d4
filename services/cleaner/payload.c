/* The fast way to parse a payload: the jansson tree of a valid JSON text, built straight from the
 * bytes.
 *
 * jansson's parser reads its input one byte at a time through a callback and a UTF-8 state
 * machine; on sensor payloads that was a third of the cleaner's main thread's time. This parser
 * walks the buffer directly and builds exactly the tree json_loadb() with JSON_DECODE_ANY,
 * JSON_ALLOW_NUL and JSON_REJECT_DUPLICATES builds (the same value types, numbers converted by
 * the same strtoll/strtod, members in the same order).
 *
 * It only ever says yes when it is sure. Anything it does not take (every error, a number that
 * overflows or underflows, a number or nesting beyond its small bounds, a NUL in a key, a
 * duplicate key, bad UTF-8 or escapes) makes it return NULL, and the caller parses again with
 * jansson, whose verdicts and error texts stay the reference. So it cannot accept a payload
 * jansson refuses; tests/fuzz/fuzz_cleaner_json.c compares the two trees. */
#include "clean_internal.h"

#include "text.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Deeper payloads were rejected before parsing (CLEANER_MAX_DEPTH); this only bounds recursion. */
#define FAST_DEPTH_MAX 64
/* Longer numbers (rare, e.g. 40 decimals) go to jansson rather than to a heap copy. */
#define FAST_NUMBER_MAX 64
/* Escaped strings are decoded here; longer ones take a heap buffer. */
#define FAST_STRING_STACK 256

struct fast {
	const char *p, *end;
	int depth;
};

static json_t *fast_value(struct fast *f);

static void fast_ws(struct fast *f)
{
	while (f->p < f->end && (*f->p == ' ' || *f->p == '\t' || *f->p == '\n' || *f->p == '\r'))
		f->p++;
}

/* After a member or element: 1 at the closing bracket, 0 after a comma, -1 otherwise. */
static int fast_next(struct fast *f, char close)
{
	fast_ws(f);
	if (f->p >= f->end || (*f->p != close && *f->p != ','))
		return -1;
	int closed = *f->p == close;
	f->p++;
	fast_ws(f);
	return closed;
}

static int hex4(const char *p, const char *end, unsigned *out)
{
	if (end - p < 4)
		return -1;
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		v <<= 4;
		if (c >= '0' && c <= '9')
			v |= (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v |= (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v |= (unsigned)(c - 'A' + 10);
		else
			return -1;
	}
	*out = v;
	return 0;
}

static size_t utf8_put(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | (cp >> 6));
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | (cp >> 12));
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | (cp >> 18));
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

/* Decodes the escaped string body [s, e) (e is its closing quote) into out, which has room for
 * e - s bytes: an escape never decodes longer than it is written. Returns the length or -1. */
static long unescape(const char *s, const char *e, char *out)
{
	char *o = out;
	while (s < e) {
		if (*s != '\\') {
			*o++ = *s++;
			continue;
		}
		char c = s[1];
		s += 2;
		switch (c) {
		case '"':
		case '\\':
		case '/':
			*o++ = c;
			break;
		case 'b':
			*o++ = '\b';
			break;
		case 'f':
			*o++ = '\f';
			break;
		case 'n':
			*o++ = '\n';
			break;
		case 'r':
			*o++ = '\r';
			break;
		case 't':
			*o++ = '\t';
			break;
		case 'u': {
			unsigned cp, lo;
			if (hex4(s, e, &cp) < 0)
				return -1;
			s += 4;
			if (cp >= 0xDC00 && cp <= 0xDFFF)
				return -1;
			if (cp >= 0xD800 && cp <= 0xDBFF) {
				if (e - s < 6 || s[0] != '\\' || s[1] != 'u' ||
				    hex4(s + 2, e, &lo) < 0 || lo < 0xDC00 || lo > 0xDFFF)
					return -1;
				s += 6;
				cp = ((cp - 0xD800) << 10) + (lo - 0xDC00) + 0x10000;
			}
			o += utf8_put(o, cp);
			break;
		}
		default:
			return -1;
		}
	}
	return o - out;
}

/* A string at f->p (its opening quote). Sets *s and *len to its bytes, in the input when it has
 * no escapes, else decoded into buf (at least FAST_STRING_STACK bytes) or into *heap (free it).
 * Returns 0, or -1 when this parser does not take it (also for bytes that are not UTF-8). */
static int fast_string(struct fast *f, char *buf, char **heap, const char **s, size_t *len)
{
	const char *start = ++f->p, *q = start;
	bool escaped = false;
	for (;;) {
		if (q >= f->end)
			return -1;
		unsigned char c = (unsigned char)*q;
		if (c == '"')
			break;
		if (c < 0x20)
			return -1;
		if (c == '\\') {
			if (q + 1 >= f->end)
				return -1;
			escaped = true;
			q += 2;
			continue;
		}
		if (c >= 0x80) {
			/* Outside strings such bytes are syntax errors, so checking them here
			 * checks the whole text. */
			size_t n = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
			if ((size_t)(f->end - q) < n || !utf8_valid(q, n))
				return -1;
			q += n;
			continue;
		}
		q++;
	}
	f->p = q + 1;
	if (!escaped) {
		*s = start;
		*len = (size_t)(q - start);
		return 0;
	}
	char *out = buf;
	if ((size_t)(q - start) > FAST_STRING_STACK) {
		out = *heap = malloc((size_t)(q - start));
		if (!out)
			return -1;
	}
	long n = unescape(start, q, out);
	if (n < 0)
		return -1;
	*s = out;
	*len = (size_t)n;
	return 0;
}

static json_t *fast_number(struct fast *f)
{
	const char *start = f->p, *q = f->p;
	bool real = false;
	if (q < f->end && *q == '-')
		q++;
	if (q < f->end && *q == '0') {
		q++;
	} else if (q < f->end && *q >= '1' && *q <= '9') {
		while (q < f->end && *q >= '0' && *q <= '9')
			q++;
	} else {
		return NULL;
	}
	if (q < f->end && *q == '.') {
		real = true;
		q++;
		if (q >= f->end || *q < '0' || *q > '9')
			return NULL;
		while (q < f->end && *q >= '0' && *q <= '9')
			q++;
	}
	if (q < f->end && (*q == 'e' || *q == 'E')) {
		real = true;
		q++;
		if (q < f->end && (*q == '+' || *q == '-'))
			q++;
		if (q >= f->end || *q < '0' || *q > '9')
			return NULL;
		while (q < f->end && *q >= '0' && *q <= '9')
			q++;
	}
	size_t n = (size_t)(q - start);
	if (n >= FAST_NUMBER_MAX)
		return NULL;
	char text[FAST_NUMBER_MAX], *end;
	memcpy(text, start, n);
	text[n] = 0;
	errno = 0;
	json_t *j;
	if (real) {
		double d = strtod(text, &end);
		/* Overflow is jansson's error and underflow its business: both go to jansson. */
		if (errno || end != text + n)
			return NULL;
		j = json_real(d);
	} else {
		long long v = strtoll(text, &end, 10);
		if (errno || end != text + n)
			return NULL;
		j = json_integer((json_int_t)v);
	}
	f->p = q;
	return j;
}

static json_t *fast_literal(struct fast *f, const char *word, size_t n, json_t *v)
{
	if ((size_t)(f->end - f->p) < n || memcmp(f->p, word, n) != 0)
		return NULL;
	f->p += n;
	return v;
}

static json_t *fast_array(struct fast *f)
{
	json_t *a = json_array();
	if (!a)
		return NULL;
	f->p++;
	fast_ws(f);
	if (f->p < f->end && *f->p == ']') {
		f->p++;
		return a;
	}
	for (;;) {
		json_t *v = fast_value(f);
		if (!v || json_array_append_new(a, v) < 0)
			break;
		int next = fast_next(f, ']');
		if (next > 0)
			return a;
		if (next < 0)
			break;
	}
	json_decref(a);
	return NULL;
}

static json_t *fast_object(struct fast *f)
{
	json_t *o = json_object();
	char buf[FAST_STRING_STACK];
	char *heap = NULL;
	if (!o)
		return NULL;
	f->p++;
	fast_ws(f);
	if (f->p < f->end && *f->p == '}') {
		f->p++;
		return o;
	}
	for (;;) {
		const char *key;
		size_t klen;
		if (f->p >= f->end || *f->p != '"' || fast_string(f, buf, &heap, &key, &klen) < 0 ||
		    memchr(key, 0, klen))
			goto fail;
		fast_ws(f);
		if (f->p >= f->end || *f->p != ':')
			goto fail;
		f->p++;
		fast_ws(f);
		json_t *v = fast_value(f);
		if (!v)
			goto fail;
		/* A duplicate key replaces the member instead of adding one: jansson's error. */
		size_t before = json_object_size(o);
		if (json_object_setn_new_nocheck(o, key, klen, v) < 0 ||
		    json_object_size(o) == before)
			goto fail;
		free(heap);
		heap = NULL;
		int next = fast_next(f, '}');
		if (next > 0)
			return o;
		if (next < 0)
			goto fail;
	}
fail:
	free(heap);
	json_decref(o);
	return NULL;
}

static json_t *fast_value(struct fast *f)
{
	if (f->p >= f->end)
		return NULL;
	switch (*f->p) {
	case '{':
	case '[': {
		if (++f->depth > FAST_DEPTH_MAX)
			return NULL;
		json_t *v = *f->p == '{' ? fast_object(f) : fast_array(f);
		f->depth--;
		return v;
	}
	case '"': {
		char buf[FAST_STRING_STACK];
		char *heap = NULL;
		const char *s;
		size_t len;
		json_t *v = NULL;
		if (fast_string(f, buf, &heap, &s, &len) == 0)
			v = json_stringn_nocheck(s, len);
		free(heap);
		return v;
	}
	case 't':
		return fast_literal(f, "true", 4, json_true());
	case 'f':
		return fast_literal(f, "false", 5, json_false());
	case 'n':
		return fast_literal(f, "null", 4, json_null());
	default:
		return fast_number(f);
	}
}

json_t *payload_parse(const char *s, size_t len)
{
	struct fast f = {.p = s, .end = s + len};
	fast_ws(&f);
	json_t *v = fast_value(&f);
	if (!v)
		return NULL;
	fast_ws(&f);
	if (f.p != f.end) {
		json_decref(v);
		return NULL;
	}
	return v;
}

bool payload_tree_same(const json_t *a, const json_t *b)
{
	if (json_typeof(a) != json_typeof(b))
		return false;
	switch (json_typeof(a)) {
	case JSON_OBJECT: {
		void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
		for (; ia && ib; ia = json_object_iter_next((json_t *)a, ia),
		                 ib = json_object_iter_next((json_t *)b, ib))
			if (json_object_iter_key_len(ia) != json_object_iter_key_len(ib) ||
			    memcmp(json_object_iter_key(ia), json_object_iter_key(ib),
			           json_object_iter_key_len(ia)) != 0 ||
			    !payload_tree_same(json_object_iter_value(ia),
			                       json_object_iter_value(ib)))
				return false;
		return !ia && !ib;
	}
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return false;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!payload_tree_same(json_array_get(a, i), json_array_get(b, i)))
				return false;
		return true;
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) ==
		           0;
	case JSON_INTEGER:
		return json_integer_value(a) == json_integer_value(b);
	case JSON_REAL: {
		double x = json_real_value(a), y = json_real_value(b);
		return memcmp(&x, &y, sizeof(x)) == 0;
	}
	default:
		return true;
	}
}
