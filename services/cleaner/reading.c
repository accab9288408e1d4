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

/* A Reading's members, in the order reading_build creates them (the schema's). */
enum member {
	M_SITE,
	M_DEVICE,
	M_SENSOR,
	M_METRIC,
	M_UNIT,
	M_VALUE,
	M_TS,
	M_RECEIVED_AT,
	M_LOCATION,
	M_DEVICE_TYPE,
	M_TAGS,
	M_COUNT
};
static const char *const member_names[M_COUNT] = {
    "site", "device",      "sensor",   "metric",      "unit", "value",
    "ts",   "received_at", "location", "device_type", "tags"};

/* Iterators to r's members in order; false when r is not an object shaped like a Reading. */
static bool members_find(json_t *r, void *it[M_COUNT])
{
	if (!json_is_object(r) || json_object_size(r) != M_COUNT)
		return false;
	void *i = json_object_iter(r);
	for (int m = 0; m < M_COUNT; m++, i = json_object_iter_next(r, i)) {
		if (!i || strcmp(json_object_iter_key(i), member_names[m]) != 0)
			return false;
		it[m] = i;
	}
	return true;
}

/* A member's value may be changed in place only when the Reading alone holds it. */
static json_t *member_own(void *it, json_type type)
{
	json_t *v = json_object_iter_value(it);
	return json_typeof(v) == type && v->refcount == 1 ? v : NULL;
}

static int member_replace(json_t *r, void *it, json_t *v)
{
	return v ? json_object_iter_set_new(r, it, v) : -1;
}

static int member_string(json_t *r, void *it, const char *s, size_t len)
{
	json_t *v = member_own(it, JSON_STRING);
	if (!v)
		return member_replace(r, it, json_stringn_nocheck(s, len));
	/* Sites, metrics and units repeat from one reading to the next. */
	if (json_string_length(v) == len && memcmp(json_string_value(v), s, len) == 0)
		return 0;
	return json_string_setn_nocheck(v, s, len);
}

static int member_real(json_t *r, void *it, double d)
{
	json_t *v = member_own(it, JSON_REAL);
	return v ? json_real_set(v, d) : member_replace(r, it, json_real(d));
}

static int member_integer(json_t *r, void *it, int64_t n)
{
	json_t *v = member_own(it, JSON_INTEGER);
	return v ? json_integer_set(v, (json_int_t)n) : member_replace(r, it, json_integer(n));
}

static int member_location(json_t *r, void *it, const struct clean *k)
{
	if (!k->has_location)
		return json_is_null(json_object_iter_value(it))
		           ? 0
		           : member_replace(r, it, json_null());
	json_t *loc = member_own(it, JSON_OBJECT);
	void *lat = loc ? json_object_iter(loc) : NULL;
	void *lon = lat ? json_object_iter_next(loc, lat) : NULL;
	if (json_object_size(loc) == 2 && lon && strcmp(json_object_iter_key(lat), "lat") == 0 &&
	    strcmp(json_object_iter_key(lon), "lon") == 0)
		return member_real(loc, lat, k->lat) | member_real(loc, lon, k->lon);
	loc = json_object();
	if (!loc || json_object_set_new_nocheck(loc, "lat", json_real(k->lat)) ||
	    json_object_set_new_nocheck(loc, "lon", json_real(k->lon))) {
		json_decref(loc);
		return -1;
	}
	return member_replace(r, it, loc);
}

static int member_tags(json_t *r, void *it, const struct cand *c)
{
	json_t *tags = member_own(it, JSON_OBJECT);
	if (tags) {
		json_object_clear(tags);
	} else {
		tags = json_object();
		if (member_replace(r, it, tags) < 0)
			return -1;
	}
	if (!c->tags_root)
		return 0;
	struct tagger t = {.c = c, .tags = tags};
	tags_walk(&t, c->tags_root, 0);
	return t.failed ? -1 : 0;
}

/* An object with a Reading's members, all null, to be filled like a reused one. */
static json_t *reading_new(void)
{
	json_t *r = json_object();
	for (int m = 0; r && m < M_COUNT; m++)
		if (json_object_set_new_nocheck(r, member_names[m], json_null()) < 0) {
			json_decref(r);
			return NULL;
		}
	return r;
}

json_t *reading_build(const struct cand *c, const struct clean *k, int64_t received_at,
                      json_t *reuse)
{
	void *it[M_COUNT];
	json_t *r = reuse;
	if (r && (r->refcount != 1 || !members_find(r, it))) {
		json_decref(r);
		r = NULL;
	}
	if (!r && (!(r = reading_new()) || !members_find(r, it)))
		goto oom;
	/* Identifiers and the unit were checked to be valid UTF-8 without NUL. */
	int rc = 0;
	rc |= member_string(r, it[M_SITE], k->id[ID_SITE], k->id_len[ID_SITE]);
	rc |= member_string(r, it[M_DEVICE], k->id[ID_DEVICE], k->id_len[ID_DEVICE]);
	rc |= member_string(r, it[M_SENSOR], k->id[ID_SENSOR], k->id_len[ID_SENSOR]);
	rc |= member_string(r, it[M_METRIC], k->id[ID_METRIC], k->id_len[ID_METRIC]);
	rc |= member_string(r, it[M_UNIT], k->unit, k->unit_len);
	rc |= member_real(r, it[M_VALUE], k->value);
	rc |= member_integer(r, it[M_TS], k->ts);
	rc |= member_integer(r, it[M_RECEIVED_AT], received_at);
	rc |= member_location(r, it[M_LOCATION], k);
	if (k->device_type)
		rc |= member_string(r, it[M_DEVICE_TYPE], k->device_type, k->device_type_len);
	else if (!json_is_null(json_object_iter_value(it[M_DEVICE_TYPE])))
		rc |= member_replace(r, it[M_DEVICE_TYPE], json_null());
	rc |= member_tags(r, it[M_TAGS], c);
	if (rc)
		goto oom;
	return r;
oom:
	json_decref(r);
	return NULL;
}
