/* Target topic naming (see naming.h). */
#include "naming.h"

#include <stdio.h>
#include <string.h>

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

static bool chars_valid(const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!name_char(s[i]))
			return false;
	return true;
}

bool naming_topic_valid(const char *name)
{
	return chars_valid(name, NAMING_TOPIC_MAX) && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

bool naming_alias_valid(const char *alias)
{
	return chars_valid(alias, NAMING_ALIAS_MAX);
}

static const char *placeholder(const char *p, size_t *len)
{
	static const char *const names[] = {"{topic}", "{source}"};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (strncmp(p, names[i], strlen(names[i])) == 0) {
			*len = strlen(names[i]);
			return names[i];
		}
	return NULL;
}

int naming_check(const char *tmpl, char *err, size_t errlen)
{
	bool has_topic = false;
	for (const char *p = tmpl; *p;) {
		size_t len;
		const char *ph = placeholder(p, &len);
		if (ph) {
			has_topic |= strcmp(ph, "{topic}") == 0;
			p += len;
			continue;
		}
		if (*p == '{') {
			snprintf(err, errlen,
				 "unknown placeholder at '%.20s' (use {topic} and {source})", p);
			return -1;
		}
		if (!name_char(*p)) {
			snprintf(err, errlen,
				 "'%c' cannot be part of a topic name (use a-z A-Z 0-9 . _ -)", *p);
			return -1;
		}
		p++;
	}
	if (!has_topic) {
		snprintf(err, errlen,
			 "the template must contain {topic}, or every source topic would be "
			 "merged into one");
		return -1;
	}
	return 0;
}

bool naming_uses_source(const char *tmpl)
{
	return strstr(tmpl, "{source}") != NULL;
}

bool naming_renames(const char *tmpl)
{
	return strcmp(tmpl, "{topic}") != 0;
}

int naming_expand(const char *tmpl, const char *alias, const char *topic, char *out,
		  size_t outlen)
{
	size_t n = 0;
	for (const char *p = tmpl; *p;) {
		size_t len;
		const char *ph = placeholder(p, &len);
		const char *piece = ph ? (strcmp(ph, "{topic}") == 0 ? topic : alias) : p;
		size_t plen = ph ? strlen(piece) : 1;
		if (n + plen >= outlen)
			return -1;
		memcpy(out + n, piece, plen);
		n += plen;
		p += ph ? len : 1;
	}
	if (outlen == 0)
		return -1;
	out[n] = 0;
	return naming_topic_valid(out) ? 0 : -1;
}
