/* Chained hash table with power-of-two buckets, doubled when the load factor passes 1. A failed
 * resize is not an error: chains just get longer, which costs time but loses nothing. */
#include "statetab.h"

#include "siphash.h"

#include <stdlib.h>
#include <string.h>

uint64_t statetab_hash(const uint8_t key[16], const char *site, const char *device,
                       const char *sensor)
{
	/* Each piece with its NUL, so ("ab","c") and ("a","bc") differ. */
	struct siphash h;
	siphash_init(&h, key);
	siphash_update(&h, site, strlen(site) + 1);
	siphash_update(&h, device, strlen(device) + 1);
	siphash_update(&h, sensor, strlen(sensor) + 1);
	return siphash_final(&h);
}

struct sensor_state *statetab_find(const struct statetab *t, uint64_t hash, const char *site,
                                   const char *device, const char *sensor)
{
	if (!t->nbuckets)
		return NULL;
	for (struct sensor_state *s = t->buckets[hash & (t->nbuckets - 1)]; s; s = s->next)
		if (s->hash == hash && strcmp(s->site, site) == 0 &&
		    strcmp(s->device, device) == 0 && strcmp(s->sensor, sensor) == 0)
			return s;
	return NULL;
}

static void grow(struct statetab *t)
{
	size_t n = t->nbuckets ? t->nbuckets * 2 : 64;
	struct sensor_state **b = calloc(n, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct sensor_state *s = t->buckets[i], *next;
		for (; s; s = next) {
			next = s->next;
			s->next = b[s->hash & (n - 1)];
			b[s->hash & (n - 1)] = s;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

struct sensor_state *statetab_add(struct statetab *t, uint64_t hash, const char *site,
                                  const char *device, const char *sensor)
{
	if (t->count >= t->nbuckets)
		grow(t);
	if (!t->nbuckets)
		return NULL;
	size_t ls = strlen(site) + 1, ld = strlen(device) + 1, lz = strlen(sensor) + 1;
	struct sensor_state *s = calloc(1, sizeof(*s) + ls + ld + lz);
	if (!s)
		return NULL;
	s->hash = hash;
	s->side = SIDE_UNKNOWN;
	memcpy(s->site, site, ls);
	s->device = memcpy(s->site + ls, device, ld);
	s->sensor = memcpy(s->site + ls + ld, sensor, lz);
	struct sensor_state **head = &t->buckets[hash & (t->nbuckets - 1)];
	s->next = *head;
	*head = s;
	t->count++;
	return s;
}

void statetab_remove(struct statetab *t, struct sensor_state *s)
{
	struct sensor_state **pp = &t->buckets[s->hash & (t->nbuckets - 1)];
	while (*pp && *pp != s)
		pp = &(*pp)->next;
	if (!*pp)
		return;
	*pp = s->next;
	t->count--;
	free(s);
}

size_t statetab_each(struct statetab *t, bool (*fn)(struct sensor_state *s, void *ctx), void *ctx)
{
	size_t removed = 0;
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct sensor_state **pp = &t->buckets[i];
		while (*pp) {
			struct sensor_state *s = *pp;
			if (fn(s, ctx)) {
				*pp = s->next;
				t->count--;
				removed++;
				free(s);
			} else {
				pp = &s->next;
			}
		}
	}
	return removed;
}

void statetab_clear(struct statetab *t)
{
	for (size_t i = 0; i < t->nbuckets; i++) {
		struct sensor_state *s = t->buckets[i], *next;
		for (; s; s = next) {
			next = s->next;
			free(s);
		}
	}
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}
