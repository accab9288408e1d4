/* A minimal JSON path for mapping rules: $ followed by .name, ["any name"] and [index] steps
 * (negative indexes count from the end). No wildcards or filters: a rule names one value, and
 * compiling paths once at load time keeps evaluation to a few lookups per record. */
#include "clean_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool name_char(char c)
{
	return c && c != '.' && c != '[' && c != ']' && c != '"' && c != ' ' && c != '\t' &&
	       c != '|';
}

static int seg_add(struct jpath *p, char *name, long index, size_t col, char *err, size_t errlen)
{
	if (p->n == JPATH_SEGMENTS_MAX) {
		free(name);
		snprintf(err, errlen, "more than %d steps at column %zu", JPATH_SEGMENTS_MAX, col);
		return -1;
	}
	p->seg[p->n].name = name;
	p->seg[p->n].index = index;
	p->n++;
	return 0;
}

int jpath_compile(const char *s, size_t len, struct jpath *p, char *err, size_t errlen)
{
	size_t i = 0;
	p->n = 0;
	if (len == 0 || s[0] != '$') {
		snprintf(err, errlen, "a JSON path starts with '$'");
		return -1;
	}
	i = 1;
	while (i < len) {
		size_t col = i + 1;
		if (s[i] == '.') {
			size_t start = ++i;
			while (i < len && name_char(s[i]))
				i++;
			if (i == start) {
				snprintf(err, errlen, "expected a name after '.' at column %zu",
				         col);
				goto fail;
			}
			char *name = strndup(s + start, i - start);
			if (!name || seg_add(p, name, 0, col, err, errlen)) {
				if (!name)
					snprintf(err, errlen, "out of memory");
				goto fail;
			}
		} else if (s[i] == '[' && i + 1 < len && s[i + 1] == '"') {
			i += 2;
			char *name = malloc(len - i + 1);
			size_t o = 0;
			if (!name) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			while (i < len && s[i] != '"') {
				if (s[i] == '\\' && i + 1 < len)
					i++;
				name[o++] = s[i++];
			}
			name[o] = 0;
			if (i + 1 >= len || s[i + 1] != ']') {
				free(name);
				snprintf(err, errlen, "unterminated [\"name\"] at column %zu", col);
				goto fail;
			}
			i += 2;
			if (seg_add(p, name, 0, col, err, errlen))
				goto fail;
		} else if (s[i] == '[') {
			i++;
			bool neg = i < len && s[i] == '-';
			if (neg)
				i++;
			size_t start = i;
			long v = 0;
			while (i < len && s[i] >= '0' && s[i] <= '9' && i - start < 9)
				v = v * 10 + (s[i++] - '0');
			if (i == start || i >= len || s[i] != ']') {
				snprintf(err, errlen,
				         "expected [number] or [\"name\"] at column %zu", col);
				goto fail;
			}
			i++;
			if (seg_add(p, NULL, neg ? -v : v, col, err, errlen))
				goto fail;
		} else {
			snprintf(err, errlen, "unexpected '%c' at column %zu", s[i], col);
			goto fail;
		}
	}
	return 0;
fail:
	jpath_free(p);
	return -1;
}

const json_t *jpath_eval(const struct jpath *p, const json_t *root)
{
	const json_t *j = root;
	for (size_t k = 0; k < p->n && j; k++) {
		const struct jpath_seg *g = &p->seg[k];
		if (g->name) {
			j = json_object_get(j, g->name);
		} else {
			if (!json_is_array(j))
				return NULL;
			long n = (long)json_array_size(j),
			     i = g->index < 0 ? n + g->index : g->index;
			j = i >= 0 && i < n ? json_array_get(j, (size_t)i) : NULL;
		}
	}
	return j;
}

void jpath_free(struct jpath *p)
{
	if (!p)
		return;
	for (size_t k = 0; k < p->n; k++)
		free(p->seg[k].name);
	p->n = 0;
}
