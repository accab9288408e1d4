/* The state topic: a compacted Kafka topic holding the newest state of every series, keyed by
 * series, co-partitioned with the input: a series' state goes to the partition number its
 * aggregates come from. So when a consumer is assigned input partition p, reading state
 * partition p from its beginning to its end restores exactly the series it now owns, whichever
 * replica wrote them, and no object store or separate database is needed. */
#ifndef IOTPIPE_FORECASTER_STORE_H
#define IOTPIPE_FORECASTER_STORE_H

#include "kafka.h"

#include <stddef.h>
#include <stdint.h>

struct state_store;

/* A reader on the cluster of brokers (-X properties apply). timeout_ms bounds every wait.
 * Returns NULL with the reason. Free with state_store_free (NULL accepted). */
struct state_store *state_store_new(const char *brokers, const char *topic, long long timeout_ms,
                                    char *err, size_t errlen);
void state_store_free(struct state_store *st);

/* Makes sure the state topic can hold the state of every partition of the input topic: when
 * it is missing it is created compacted with the input's partition count; when it has fewer
 * partitions than the input, that is an error. Returns 0 or -1 with the reason. */
int state_store_prepare(struct state_store *st, const char *input, char *err, size_t errlen);

/* Called for each record read back, oldest first; val is NULL for a tombstone. */
typedef void (*state_record_fn)(void *ctx, const void *key, size_t key_len, const void *val,
                                size_t val_len);

/* Reads partition p from its beginning to the end it had when the call began. Returns the
 * number of records read, or -1 with the reason (broker unreachable within the timeout, the
 * partition does not exist). */
long state_store_load(struct state_store *st, int32_t p, state_record_fn fn, void *ctx, char *err,
                      size_t errlen);

/* Queues one state record (val NULL: a tombstone) for partition p on producer pr; the caller's
 * checkpoint waits for its acknowledgement. Returns 0 or -1 with the reason. */
int state_store_put(const struct state_store *st, struct kafka_producer *pr, int32_t p,
                    const void *key, size_t key_len, const void *val, size_t val_len, char *err,
                    size_t errlen);

const char *state_store_topic(const struct state_store *st);

#endif
