/* Per-partition offsets: what was processed, where a consumer may commit, and the watermark
 * that lets a restarted engine replay readings without emitting their outputs again.
 * docs/actuator.md explains why committing the earliest open episode's offset together with
 * this watermark makes episodes exact across kill -9. */
#include "engine.h"

#include "fmt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARTITION_MAX (1 << 20)
#define META_PREFIX "actuator v1 emitted="

struct part *partition_get(struct actuator *a, int32_t partition, char *err, size_t errlen)
{
	if (partition < 0 || partition >= PARTITION_MAX) {
		snprintf(err, errlen, "partition %" PRId32 " out of range", partition);
		return NULL;
	}
	size_t p = (size_t)partition;
	if (p >= a->nparts) {
		size_t n = a->nparts ? a->nparts : 8;
		while (n <= p)
			n *= 2;
		struct part *grown = realloc(a->parts, n * sizeof(*grown));
		if (!grown) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		for (size_t i = a->nparts; i < n; i++)
			grown[i] = (struct part){-1, -1};
		a->parts = grown;
		a->nparts = n;
	}
	return &a->parts[p];
}

int actuator_skip(struct actuator *a, int32_t partition, int64_t offset, char *err, size_t errlen)
{
	struct part *pt = partition_get(a, partition, err, errlen);
	if (!pt)
		return -1;
	if (offset >= pt->next)
		pt->next = offset + 1;
	return 0;
}

int actuator_commit_point(const struct actuator *a, int32_t partition, int64_t *offset, char *meta,
                          size_t metalen)
{
	if (partition < 0 || (size_t)partition >= a->nparts || a->parts[partition].next < 0)
		return 0;
	const struct part *pt = &a->parts[partition];
	int64_t need = pt->next;
	for (size_t i = 0; i < a->rs->len; i++)
		for (const struct sensor_state *s = a->slots[i].open_head; s; s = s->open_next)
			if (s->partition == partition && s->first_offset < need)
				need = s->first_offset;
	*offset = need;
	/* During a replay, the old watermark still covers outputs not yet reached again. */
	int64_t emitted = pt->next > pt->emitted_below ? pt->next : pt->emitted_below;
	snprintf(meta, metalen, META_PREFIX "%" PRId64, emitted);
	return 1;
}

int actuator_partition_restore(struct actuator *a, int32_t partition, const char *meta, char *err,
                               size_t errlen)
{
	struct part *pt = partition_get(a, partition, err, errlen);
	if (!pt)
		return -1;
	pt->next = -1;
	pt->emitted_below = -1;
	if (!meta || !*meta)
		return 0;
	size_t plen = strlen(META_PREFIX);
	const char *num = meta + plen;
	char *end;
	long long v = 0;
	bool ok = strncmp(meta, META_PREFIX, plen) == 0 && *num >= '0' && *num <= '9';
	if (ok) {
		errno = 0;
		v = strtoll(num, &end, 10);
		ok = errno == 0 && !*end;
	}
	if (!ok) {
		char q[96];
		snprintf(err, errlen, "partition %" PRId32 ": commit metadata \"%s\" is not ours",
		         partition, fmt_quote(meta, q, sizeof(q)));
		return -1;
	}
	pt->emitted_below = v;
	return 0;
}

struct drop_ctx {
	struct slot *slot;
	int32_t partition;
};

static bool drop_partition_state(struct sensor_state *s, void *ctx)
{
	struct drop_ctx *d = ctx;
	if (s->partition != d->partition)
		return false;
	if (s->open)
		episode_unlink(d->slot, s);
	return true;
}

void actuator_partition_drop(struct actuator *a, int32_t partition)
{
	for (size_t i = 0; i < a->rs->len; i++) {
		struct drop_ctx d = {&a->slots[i], partition};
		a->nstates -= statetab_each(&a->slots[i].tab, drop_partition_state, &d);
	}
	if (partition >= 0 && (size_t)partition < a->nparts)
		a->parts[partition] = (struct part){-1, -1};
}
