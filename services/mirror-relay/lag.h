/* Replication lag, computed on its own thread so the gauges keep moving while the main thread
 * is held up by a target outage (it then waits inside the producer for queue space).
 *
 *   lag_records = records in the source partition the target does not hold yet
 *               = (source end offset - next offset to read) + (handed to the producer - acked)
 *   lag_seconds = when lag_records > 0: now - the newest source timestamp the target holds for
 *                 the partition (record timestamps, so clock skew between the edge's producers
 *                 and the relay shows here); else 0.
 *
 * The source end offset is asked from the source cluster (ListOffsets) each interval, because
 * the consumer's own view stops moving when its prefetch queue is full. */
#ifndef MIRROR_RELAY_LAG_H
#define MIRROR_RELAY_LAG_H

#include "relay.h"

#include <librdkafka/rdkafka.h>
#include <stddef.h>

struct lag_monitor;

/* Starts the thread. rk: the source consumer's handle (borrowed). Returns NULL with a reason. */
struct lag_monitor *lag_monitor_start(struct relay *r, rd_kafka_t *rk, long long interval_ms,
				      char *err, size_t errlen);
/* Runs one round now instead of at the next interval. The round's ListOffsets requests also
 * wake a fetcher that stopped because the prefetch queue was full (see relay_tick). */
void lag_monitor_poke(struct lag_monitor *m);
/* Stops and joins the thread; NULL is accepted. */
void lag_monitor_stop(struct lag_monitor *m);
/* Computes the gauges of every assigned partition once (the thread's body; tests call it). */
void lag_monitor_update(struct relay *r, rd_kafka_t *rk);

#endif
