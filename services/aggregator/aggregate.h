/* The Aggregate record of a closed window (schemas/Aggregate.avsc). Internal to the engine. */
#ifndef IOTPIPE_AGG_AGGREGATE_H
#define IOTPIPE_AGG_AGGREGATE_H

#include "part.h"

#include <jansson.h>
#include <stdint.h>

/* Returns a new object (the caller owns it), or NULL when memory runs out. The key fields and
 * unit must be valid UTF-8 (the engine checks them when it creates a series or window). */
json_t *agg_aggregate_json(const struct agg_series *s, const struct agg_win *w, int64_t size_ms);

#endif
