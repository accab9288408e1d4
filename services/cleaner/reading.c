/* Building Reading objects, and the tags: every payload member a format did not use, flattened
 * to dotted keys ("metadata.firmware", "probes.0") with string values.
 *
 * Tags are bounded (count, key and value length) because they come from the device: a payload
 * within --max-payload could otherwise multiply into megabytes of keys (every leaf repeating a
 * long parent name). What is over a bound is left out, never truncated into something else. */
#include "clean_internal.h"

#include <stdio.h>
#include <string.h>

#define TAGS_MAX 64
#define TAG_KEY_MAX 128
#define TAG_VALUE_MAX 1024

struct tagger {
	const struct cand *c;
	json_t *tags;
	char key[TAG_KEY_MAX + 1];
	int failed; /* out of memory */
};

static bool consumed(const struct cand *c, const json_t *j)
{
	for (size_t i = 0; i < c->nconsumed; i++)
		if (c->consumed[i] == j)
			return true;
	return false;
}

static void tag_put(struct tagger *t, const char *val, size_t len)
{
	if (json_object_size(t->tags) >= TAGS_MAX || len > TAG_VALUE_MAX || memchr(val, 0, len))
		return;
	json_t *s = json_stringn_nocheck(val, len);
	if (!s || json_object_set_new_nocheck(t->tags, t->key, s))
		t->failed = 1;
}

static void tags_walk(struct tagger *t, const json_t *j, size_t klen);

/* Appends ".name" (or "name" at the top) to the key and walks the child. */
static void tags_child(struct tagger *t, const char *name, size_t nlen, const json_t *child,
                       size_t klen)
{
	if (consumed(t->c, child))
		return;
	size_t need = klen + (klen ? 1 : 0) + nlen;
	if (need > TAG_KEY_MAX || memchr(name, 0, nlen))
		return;
	size_t k = klen;
	if (k)
		t->key[k++] = '.';
	memcpy(t->key + k, name, nlen);
	t->key[need] = 0;
	tags_walk(t, child, need);
	t->key[klen] = 0;
}

static void tags_walk(struct tagger *t, const json_t *j, size_t klen)
{
	char buf[40];
	int n;
	if (t->failed || json_object_size(t->tags) >= TAGS_MAX)
		return;
	switch (json_typeof(j)) {
	case JSON_OBJECT: {
		const char *name;
		json_t *child;
		json_object_foreach((json_t *)j, name, child)
		{
			tags_child(t, name, strlen(name), child, klen);
		}
		return;
	}
	case JSON_ARRAY: {
		size_t i;
		json_t *child;
		json_array_foreach(j, i, child)
		{
			n = snprintf(buf, sizeof(buf), "%zu", i);
			tags_child(t, buf, (size_t)n, child, klen);
		}
		return;
	}
	case JSON_STRING:
		tag_put(t, json_string_value(j), json_string_length(j));
		return;
	case JSON_INTEGER:
		n = snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(j));
		tag_put(t, buf, (size_t)n);
		return;
	case JSON_REAL:
		n = text_double_format(json_real_value(j), buf, sizeof(buf));
		tag_put(t, buf, (size_t)n);
		return;
	case JSON_TRUE:
		tag_put(t, "true", 4);
		return;
	case JSON_FALSE:
		tag_put(t, "false", 5);
		return;
	case JSON_NULL:
		/* No value to record, and "null" would read as a string that says null. */
		return;
	}
}

static int set(json_t *obj, const char *key, json_t *val)
{
	return val ? json_object_set_new_nocheck(obj, key, val) : -1;
}

json_t *reading_build(const struct cand *c, const struct clean *k, int64_t received_at)
{
	json_t *r = json_object();
	json_t *tags = json_object();
	if (!r || !tags)
		goto oom;
	/* Identifiers and the unit were checked to be valid UTF-8 without NUL. */
	int rc = 0;
	rc |= set(r, "site", json_stringn_nocheck(k->id[ID_SITE], k->id_len[ID_SITE]));
	rc |= set(r, "device", json_stringn_nocheck(k->id[ID_DEVICE], k->id_len[ID_DEVICE]));
	rc |= set(r, "sensor", json_stringn_nocheck(k->id[ID_SENSOR], k->id_len[ID_SENSOR]));
	rc |= set(r, "metric", json_stringn_nocheck(k->id[ID_METRIC], k->id_len[ID_METRIC]));
	rc |= set(r, "unit", json_stringn_nocheck(k->unit, k->unit_len));
	rc |= set(r, "value", json_real(k->value));
	rc |= set(r, "ts", json_integer(k->ts));
	rc |= set(r, "received_at", json_integer(received_at));
	if (k->has_location) {
		json_t *loc = json_object();
		if (!loc)
			goto oom;
		rc |= set(loc, "lat", json_real(k->lat));
		rc |= set(loc, "lon", json_real(k->lon));
		rc |= set(r, "location", loc);
	} else {
		rc |= set(r, "location", json_null());
	}
	rc |= set(r, "device_type",
	          k->device_type ? json_stringn_nocheck(k->device_type, k->device_type_len)
	                         : json_null());
	if (rc)
		goto oom;
	if (c->tags_root) {
		struct tagger t = {.c = c, .tags = tags};
		tags_walk(&t, c->tags_root, 0);
		if (t.failed)
			goto oom;
	}
	if (set(r, "tags", tags)) {
		tags = NULL; /* set() consumed it */
		goto oom;
	}
	return r;
oom:
	json_decref(tags);
	json_decref(r);
	return NULL;
}
