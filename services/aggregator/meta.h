/* The commit metadata: what a partition's committed offset cannot say by itself.
 *
 * Text form (kept short; Kafka stores it with the offset):
 *     wm=<E>;next=<P>[;adv=<W>@<Q>]
 *   E  every window ending at or before E has been emitted ("-" when nothing has been).
 *   P  every offset below P was processed by a run before the commit; a re-consumed reading
 *      below P whose window ends at or before E is a replay, skipped silently.
 *   W@Q  an idle advance of the watermark to W that took effect at offset Q: a restarted run
 *      applies it at the same place, so it closes the same windows with the same contents.
 * docs/aggregator.md explains why these three facts make a restart exact. */
#ifndef IOTPIPE_AGG_META_H
#define IOTPIPE_AGG_META_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Enough for the longest form (four 20-digit numbers and the punctuation). */
#define AGG_META_MAX 112

struct agg_meta {
	bool has_wm;
	int64_t wm;
	int64_t next;
	bool has_adv;
	int64_t adv_wm;
	int64_t adv_at;
};

/* Writes the text form into out (at least AGG_META_MAX bytes). */
void agg_meta_format(const struct agg_meta *m, char *out, size_t outlen);
/* Parses the text form. NULL or "" give an empty state (no watermark, next = -1).
 * Returns 0, or -1 with the reason for anything else that is not exactly the form above. */
int agg_meta_parse(const char *s, struct agg_meta *m, char *err, size_t errlen);

#endif
