/* Log-safe quoting and round-trip number formatting. */
#include "fmt.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Length of the well-formed UTF-8 sequence at s (RFC 3629 table), or 0 when it is not one:
 * quoting keeps whole characters and shows broken bytes as \xNN. */
static size_t utf8_seq_len(const unsigned char *s, size_t left)
{
	unsigned char c = s[0];
	if (c < 0x80)
		return 1;
	size_t n;
	unsigned char lo = 0x80, hi = 0xBF;
	if (c >= 0xC2 && c <= 0xDF)
		n = 2;
	else if (c >= 0xE0 && c <= 0xEF) {
		n = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		n = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* above U+10FFFF */
	} else
		return 0;
	if (left < n || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xBF)
			return 0;
	return n;
}

const char *fmt_quote(const char *s, char *out, size_t outlen)
{
	enum { SHOWN = 48 };
	if (!outlen)
		return out;
	const unsigned char *p = (const unsigned char *)(s ? s : "");
	size_t len = strlen((const char *)p), o = 0, shown = 0, i = 0;
	/* Reserve room for "..." and the NUL so truncation is always visible. */
	size_t room = outlen > 4 ? outlen - 4 : 0;
	while (i < len && shown < SHOWN) {
		char tmp[8];
		size_t n = utf8_seq_len(p + i, len - i), tl;
		if (n == 1 && (p[i] < 0x20 || p[i] == 0x7F))
			tl = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02X", p[i]);
		else if (n == 1 && (p[i] == '"' || p[i] == '\\'))
			tmp[0] = '\\', tmp[1] = (char)p[i], tl = 2;
		else if (n == 0)
			tl = (size_t)snprintf(tmp, sizeof(tmp), "\\x%02X", p[i]), n = 1;
		else
			memcpy(tmp, p + i, n), tl = n;
		if (o + tl > room)
			break;
		memcpy(out + o, tmp, tl);
		o += tl;
		i += n ? n : 1;
		shown++;
	}
	if (i < len && o + 3 < outlen) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o < outlen ? o : outlen - 1] = 0;
	return out;
}

size_t fmt_double(double v, char *out, size_t outlen)
{
	int n = 0;
	for (int prec = 15; prec <= 17; prec++) {
		n = snprintf(out, outlen, "%.*g", prec, v);
		if (n < 0 || (size_t)n >= outlen)
			return 0;
		if (strtod(out, NULL) == v)
			break;
	}
	return (size_t)n;
}
