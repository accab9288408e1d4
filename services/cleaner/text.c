/* Byte-level checks on untrusted text: UTF-8, identifiers, numbers written as strings, and the
 * short renderings of bad values that go into rejection reasons (always ASCII, so a reason is a
 * valid Avro string and safe in a terminal whatever the payload held). */
#include "clean_internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

int verdict_set(struct verdict *v, enum cleaner_reason code, const char *fmt, ...)
{
	va_list ap;
	v->code = code;
	va_start(ap, fmt);
	vsnprintf(v->text, sizeof(v->text), fmt, ap);
	va_end(ap);
	return -1;
}

/* Length of the UTF-8 sequence at s (1..4), or 0 when it is not a valid, shortest-form scalar
 * value. Surrogates and code points over U+10FFFF are invalid (RFC 3629). */
static size_t utf8_seq(const unsigned char *s, size_t avail, uint32_t *cp)
{
	unsigned char c = s[0];
	size_t n;
	uint32_t v;
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xC2 && c <= 0xDF) {
		n = 2;
		v = c & 0x1F;
	} else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		v = c & 0x0F;
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		v = c & 0x07;
	} else {
		return 0;
	}
	if (avail < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (s[i] & 0x3F);
	}
	if ((n == 3 && v < 0x800) || (n == 4 && v < 0x10000) || v > 0x10FFFF ||
	    (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return n;
}

const char *text_ident_problem(const char *s, size_t len, size_t max, bool topic_safe)
{
	if (!s || len == 0)
		return "empty";
	if (len > max)
		return "too long";
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		uint32_t cp;
		size_t n = utf8_seq(p + i, len - i, &cp);
		if (!n)
			return "invalid UTF-8";
		if (cp == 0)
			return "contains NUL";
		if (cp < 0x20 || cp == 0x7F || (cp >= 0x80 && cp <= 0x9F))
			return "contains a control character";
		if (topic_safe) {
			if (cp == '/')
				return "contains '/'";
			if (cp == '+')
				return "contains '+'";
			if (cp == '#')
				return "contains '#'";
		}
		i += n;
	}
	return NULL;
}

char *text_snippet(const char *s, size_t len, char *out, size_t n)
{
	static const size_t shown = 40;
	size_t o = 0;
	if (n < 8) {
		if (n)
			out[0] = 0;
		return out;
	}
	out[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (i >= shown || o + 8 >= n) {
			memcpy(out + o, "...", 3);
			o += 3;
			break;
		}
		if (c >= 0x20 && c < 0x7F && c != '"' && c != '\\') {
			out[o++] = (char)c;
		} else {
			o += (size_t)snprintf(out + o, n - o, "\\x%02X", c);
		}
	}
	out[o++] = '"';
	out[o] = 0;
	return out;
}

char *text_json_snippet(const json_t *j, char *out, size_t n)
{
	const char *name = "nothing";
	switch (j ? json_typeof(j) : JSON_NULL) {
	case JSON_STRING:
		return text_snippet(json_string_value(j), json_string_length(j), out, n);
	case JSON_INTEGER:
		snprintf(out, n, "%lld", (long long)json_integer_value(j));
		return out;
	case JSON_REAL:
		text_double_format(json_real_value(j), out, n);
		return out;
	case JSON_TRUE:
		name = "true";
		break;
	case JSON_FALSE:
		name = "false";
		break;
	case JSON_NULL:
		name = j ? "null" : "nothing";
		break;
	case JSON_OBJECT:
		name = "an object";
		break;
	case JSON_ARRAY:
		name = "an array";
		break;
	}
	snprintf(out, n, "%s", name);
	return out;
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

int text_number_parse(const char *s, size_t len, double *out)
{
	static const char *const nonfinite[] = {"nan", "inf", "infinity"};
	size_t i = 0;
	if (len == 0 || len > 64)
		return -1;
	size_t sign = (s[0] == '-' || s[0] == '+') ? 1 : 0;
	for (size_t k = 0; k < sizeof(nonfinite) / sizeof(*nonfinite); k++)
		if (len - sign == strlen(nonfinite[k]) &&
		    strncasecmp(s + sign, nonfinite[k], len - sign) == 0)
			return 1;
	/* JSON grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
	if (s[i] == '-')
		i++;
	if (i < len && s[i] == '0') {
		i++;
	} else if (i < len && is_digit(s[i])) {
		while (i < len && is_digit(s[i]))
			i++;
	} else {
		return -1;
	}
	if (i < len && s[i] == '.') {
		i++;
		if (i >= len || !is_digit(s[i]))
			return -1;
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i < len && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < len && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= len || !is_digit(s[i]))
			return -1;
		while (i < len && is_digit(s[i]))
			i++;
	}
	if (i != len)
		return -1;
	char tmp[72];
	memcpy(tmp, s, len);
	tmp[len] = 0;
	errno = 0;
	double d = strtod(tmp, NULL);
	if (!isfinite(d))
		return 1;
	/* Underflow to zero or a denormal is a number, just a tiny one. */
	*out = d;
	return 0;
}

int text_double_format(double v, char *out, size_t n)
{
	int w = snprintf(out, n, "%.15g", v);
	if (w > 0 && (size_t)w < n && strtod(out, NULL) == v)
		return w;
	return snprintf(out, n, "%.17g", v);
}
