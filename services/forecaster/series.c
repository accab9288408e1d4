/* Series and their table: chained hashing over a power-of-two bucket array that doubles as the
 * table grows. The hash is seeded per process so that keys chosen from outside cannot be made
 * to collide on purpose; the cap bounds the table whatever the input. */
#include "series.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

struct series_table {
	struct series **buckets;
	size_t nbuckets; /* power of two */
	size_t count;
	size_t max;
	size_t bytes; /* strings of the series held */
	uint64_t seed;
};

static int field_append(struct buf *out, const char *s)
{
	for (; *s; s++) {
		int r;
		if (*s == '%')
			r = buf_append(out, "%25", 3);
		else if (*s == '/')
			r = buf_append(out, "%2F", 3);
		else
			r = buf_putc(out, (uint8_t)*s);
		if (r < 0)
			return -1;
	}
	return buf_putc(out, '/');
}

int series_key_append(struct buf *out, const char *site, const char *device, const char *sensor,
                      const char *metric, int64_t window_ms)
{
	if (field_append(out, site) < 0 || field_append(out, device) < 0 ||
	    field_append(out, sensor) < 0 || field_append(out, metric) < 0)
		return -1;
	return buf_printf(out, "%lld", (long long)window_ms);
}

struct series *series_new(const char *site, const char *device, const char *sensor,
                          const char *metric, const char *unit, int64_t window_ms,
                          int32_t partition)
{
	struct buf key = {0};
	if (series_key_append(&key, site, device, sensor, metric, window_ms) < 0) {
		buf_free(&key);
		return NULL;
	}
	const char *f[5] = {site, device, sensor, metric, unit};
	size_t len[5], total = key.len + 1;
	for (int i = 0; i < 5; i++) {
		len[i] = strlen(f[i]);
		total += len[i] + 1;
	}
	struct series *s = calloc(1, sizeof(*s) + total);
	if (!s) {
		buf_free(&key);
		return NULL;
	}
	char *p = (char *)(s + 1);
	const char **dst[5] = {&s->site, &s->device, &s->sensor, &s->metric, &s->unit};
	for (int i = 0; i < 5; i++) {
		memcpy(p, f[i], len[i] + 1);
		*dst[i] = p;
		p += len[i] + 1;
	}
	memcpy(p, key.data, key.len);
	p[key.len] = '\0';
	s->key = p;
	s->key_len = key.len;
	buf_free(&key);
	s->window_ms = window_ms;
	s->partition = partition;
	s->metric_slot = -1;
	s->gauge_slot = -1;
	model_init(&s->model);
	return s;
}

void series_free(struct series *s)
{
	free(s);
}

static size_t series_bytes(const struct series *s)
{
	return sizeof(*s) + strlen(s->site) + strlen(s->device) + strlen(s->sensor) +
	       strlen(s->metric) + strlen(s->unit) + s->key_len + 6;
}

/* ---- hashing ---- */

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t key_hash(uint64_t seed, const char *key, size_t len)
{
	uint64_t h = seed ^ (len * 0x9e3779b97f4a7c15ULL);
	size_t i = 0;
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, key + i, 8);
		h = mix64(h ^ w);
	}
	uint64_t tail = 0;
	memcpy(&tail, key + i, len - i);
	return mix64(h ^ tail ^ 0xff);
}

static uint64_t seed_new(void)
{
	uint64_t s;
	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) == (ssize_t)sizeof(s))
		return s;
	/* No entropy yet (early boot): still unpredictable enough for bucket placement. */
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_sec);
}

/* ---- table ---- */

struct series_table *series_table_new(size_t max)
{
	struct series_table *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->nbuckets = 64;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return NULL;
	}
	t->max = max;
	t->seed = seed_new();
	return t;
}

void series_table_free(struct series_table *t)
{
	if (!t)
		return;
	for (size_t b = 0; b < t->nbuckets; b++)
		for (struct series *s = t->buckets[b], *next; s; s = next) {
			next = s->next;
			series_free(s);
		}
	free(t->buckets);
	free(t);
}

size_t series_table_count(const struct series_table *t)
{
	return t->count;
}

size_t series_table_max(const struct series_table *t)
{
	return t->max;
}

size_t series_table_bytes(const struct series_table *t)
{
	return sizeof(*t) + t->nbuckets * sizeof(*t->buckets) + t->bytes;
}

struct series *series_table_find(const struct series_table *t, const char *key, size_t key_len)
{
	uint64_t h = key_hash(t->seed, key, key_len);
	for (struct series *s = t->buckets[h & (t->nbuckets - 1)]; s; s = s->next)
		if (s->hash == h && s->key_len == key_len && memcmp(s->key, key, key_len) == 0)
			return s;
	return NULL;
}

/* Doubles the buckets; on failure the table just stays denser. */
static void table_grow(struct series_table *t)
{
	size_t n = t->nbuckets * 2;
	struct series **b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < t->nbuckets; i++)
		for (struct series *s = t->buckets[i], *next; s; s = next) {
			next = s->next;
			s->next = b[s->hash & (n - 1)];
			b[s->hash & (n - 1)] = s;
		}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static void table_link(struct series_table *t, struct series *s)
{
	s->hash = key_hash(t->seed, s->key, s->key_len);
	struct series **head = &t->buckets[s->hash & (t->nbuckets - 1)];
	s->next = *head;
	*head = s;
	t->count++;
	t->bytes += series_bytes(s);
	if (t->count > t->nbuckets)
		table_grow(t);
}

static void table_unlink(struct series_table *t, struct series **link)
{
	struct series *s = *link;
	*link = s->next;
	t->count--;
	t->bytes -= series_bytes(s);
}

int series_table_add(struct series_table *t, struct series *s)
{
	if (series_table_find(t, s->key, s->key_len))
		return -2;
	if (t->count >= t->max)
		return -1;
	table_link(t, s);
	return 0;
}

int series_table_put(struct series_table *t, struct series *s)
{
	series_table_remove(t, s->key, s->key_len);
	if (t->count >= t->max)
		return -1;
	table_link(t, s);
	return 0;
}

bool series_table_remove(struct series_table *t, const char *key, size_t key_len)
{
	uint64_t h = key_hash(t->seed, key, key_len);
	for (struct series **link = &t->buckets[h & (t->nbuckets - 1)]; *link;
	     link = &(*link)->next) {
		struct series *s = *link;
		if (s->hash == h && s->key_len == key_len && memcmp(s->key, key, key_len) == 0) {
			table_unlink(t, link);
			series_free(s);
			return true;
		}
	}
	return false;
}

size_t series_table_filter(struct series_table *t, bool (*fn)(void *ctx, struct series *s),
                           void *ctx)
{
	size_t removed = 0;
	for (size_t b = 0; b < t->nbuckets; b++) {
		struct series **link = &t->buckets[b];
		while (*link) {
			struct series *s = *link;
			if (fn(ctx, s)) {
				table_unlink(t, link);
				series_free(s);
				removed++;
			} else {
				link = &s->next;
			}
		}
	}
	return removed;
}
