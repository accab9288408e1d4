/* The relay's batch path: records travel between the clusters as Kafka record batches over
 * the relay's own plaintext connections, Fetch v4 from the source partitions' leaders and
 * Produce v3 to the target's, with the origin header written into each record on the way.
 * librdkafka still does what it does best here: the consumer group (assignment, committed
 * offsets, commits), metadata, and creating target topics. What it does per record (a message
 * object for every record read, another for every record written, a delivery report each) is
 * what this path leaves out; see docs/mirror-relay.md for the measurements.
 *
 * Delivery rule, as on the client path: a source offset is committed only when the target
 * acknowledged every record before it. Here it is simpler: each fetched response is a round,
 * and the next round starts only when the target acknowledged all of this one (a target outage
 * therefore pauses reading with at most one response per source broker in memory).
 *
 * Not handled here (batches_run returns BATCHES_FALLBACK and the relay uses the client path): TLS or SASL on either side, and batches compressed with anything but
 * gzip. */
#ifndef MIRROR_RELAY_BATCHES_H
#define MIRROR_RELAY_BATCHES_H

#include "relay.h"

#include <stdbool.h>
#include <stddef.h>

struct batches_config {
	const char *source, *target; /* bootstrap servers */
	const char *group, *topics;
	const char *const *source_defaults, *const *target_defaults;
	long long checkpoint_ms, checkpoint_records;
};

/* batches_run's result when a cluster is not plaintext, or when it met records it cannot relay
 * (compressed with a codec it does not decode): everything before them is committed and the
 * client path should go on. */
#define BATCHES_FALLBACK 3

/* Relays until a stop is requested or the relay fails. Returns the exit status (0 when
 * everything read was acknowledged and committed, else 1) or BATCHES_FALLBACK. */
int batches_run(struct relay *r, const struct batches_config *cfg);

#endif
