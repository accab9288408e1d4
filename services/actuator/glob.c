/* Glob matching with single-star backtracking: when a later mismatch occurs, only the most
 * recent '*' needs to absorb one more character, because any earlier star's extra characters
 * could equally have been absorbed by the later one. That keeps matching polynomial. */
#include "glob.h"

#include <stdio.h>
#include <string.h>

int glob_check(const char *pattern, char *err, size_t errlen)
{
	for (const char *p = pattern; *p; p++) {
		if (*p != '\\')
			continue;
		if (!p[1]) {
			snprintf(err, errlen, "pattern ends with a lone '\\'");
			return -1;
		}
		p++;
	}
	return 0;
}

bool glob_is_literal(const char *pattern)
{
	for (const char *p = pattern; *p; p++) {
		if (*p == '*' || *p == '?')
			return false;
		if (*p == '\\' && p[1])
			p++;
	}
	return true;
}

/* Byte length of the character at s: a UTF-8 lead byte's sequence, or 1 for anything else
 * (strings are validated elsewhere; a stray byte still counts as one character). */
static size_t char_len(const unsigned char *s)
{
	size_t n = *s < 0xC0 ? 1 : *s < 0xE0 ? 2 : *s < 0xF0 ? 3 : 4;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xC0) != 0x80)
			return i;
	return n;
}

bool glob_match(const char *pattern, const char *s)
{
	const char *p = pattern;
	const char *star_p = NULL, *star_s = NULL;
	while (*s) {
		if (*p == '*') {
			star_p = ++p;
			star_s = s;
			continue;
		}
		if (*p == '?') {
			p++;
			s += char_len((const unsigned char *)s);
			continue;
		}
		const char *lit = (*p == '\\' && p[1]) ? p + 1 : p;
		if (*lit && *lit == *s) {
			p = lit + 1;
			s++;
			continue;
		}
		if (!star_p)
			return false;
		/* Let the last star swallow one more character and retry from there. */
		star_s += char_len((const unsigned char *)star_s);
		s = star_s;
		p = star_p;
	}
	while (*p == '*')
		p++;
	return *p == 0;
}
