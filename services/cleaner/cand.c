/* Candidates (what a format extracted from one payload element) and the topic they came on.
 * Both only point into the parsed payload and the raw message: nothing is copied until a
 * Reading is built. */
#include "clean_internal.h"

#include <stdio.h>
#include <string.h>

const char *const cand_id_names[ID_COUNT] = {"site", "device", "sensor", "metric"};

void topic_split(struct topic *t, const char *s, size_t len)
{
	t->s = s;
	t->len = len;
	t->nlev = 0;
	size_t start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && s[i] != '/')
			continue;
		if (t->nlev < TOPIC_LEVELS_MAX) {
			t->off[t->nlev] = (uint32_t)start;
			t->lev_len[t->nlev] = (uint32_t)(i - start);
		}
		t->nlev++;
		start = i + 1;
	}
}

bool topic_level(const struct topic *t, long i, const char **s, size_t *len)
{
	if (i < 0)
		i += (long)t->nlev;
	if (i < 0 || (size_t)i >= t->nlev || i >= TOPIC_LEVELS_MAX)
		return false;
	*s = t->s + t->off[i];
	*len = t->lev_len[i];
	return true;
}

void cand_reset(struct cand *c)
{
	for (int i = 0; i < ID_COUNT; i++) {
		c->id[i] = NULL;
		c->id_len[i] = 0;
	}
	c->unit = NULL;
	c->unit_len = 0;
	c->unit_bad = NULL;
	c->value = NULL;
	c->ts = NULL;
	c->ts_unit = TS_AUTO;
	c->lat = c->lon = NULL;
	c->device_type = NULL;
	c->device_type_text = NULL;
	c->device_type_len = 0;
	c->tags_root = NULL;
	c->nconsumed = 0;
}

void cand_consume(struct cand *c, const json_t *j)
{
	/* true/false/null are shared singletons: marking one would hide every other. They never
	 * become tags anyway when used as values (null is skipped; booleans are not identities). */
	if (!j || json_is_true(j) || json_is_false(j) || json_is_null(j))
		return;
	if (c->nconsumed < CAND_CONSUMED_MAX)
		c->consumed[c->nconsumed++] = j;
}

const json_t *cand_take(struct cand *c, const json_t *obj, const char *key)
{
	const json_t *j = json_object_get(obj, key);
	cand_consume(c, j);
	return j;
}

void cand_id_set(struct cand *c, enum cand_id id, const char *s, size_t len)
{
	c->id[id] = s;
	c->id_len[id] = len;
}

int cand_id_from_json(struct cand *c, enum cand_id id, const json_t *j, struct verdict *v)
{
	char snip[64];
	if (json_is_string(j)) {
		cand_id_set(c, id, json_string_value(j), json_string_length(j));
		return 0;
	}
	if (json_is_integer(j)) {
		int n = snprintf(c->id_num[id], sizeof(c->id_num[id]), "%lld",
		                 (long long)json_integer_value(j));
		cand_id_set(c, id, c->id_num[id], (size_t)n);
		return 0;
	}
	if (!j || json_is_null(j))
		return verdict_set(v, CLEANER_ID_MISSING, "%s: missing", cand_id_names[id]);
	return verdict_set(v, CLEANER_ID_INVALID, "%s: not a string or integer: %s",
	                   cand_id_names[id], text_json_snippet(j, snip, sizeof(snip)));
}
