/* Partition counts of topics on either cluster, and creation of missing target topics.
 *
 * Every call here is a blocking request with a timeout; the relay makes them once per topic and
 * then every --metadata-refresh, never per record. */
#ifndef MIRROR_RELAY_TARGET_H
#define MIRROR_RELAY_TARGET_H

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

/* Partition count of a topic, asked by name through rk. Returns the count, 0 when the cluster
 * did not answer in time or the topic is not ready, or -1 when it does not exist (reason in
 * err). Asked through a producer, a cluster that allows it creates a missing topic. */
int target_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
			    size_t errlen);

/* Whether topic exists on rk's cluster, from the cluster's full topic list (which never
 * auto-creates). Returns 1 (and *partitions) when it exists, 0 when it does not, -1 when the
 * cluster did not answer in time (reason in err). */
int target_topic_exists(rd_kafka_t *rk, const char *topic, int *partitions, int timeout_ms,
			char *err, size_t errlen);

/* Creates topic with the given partitions and replication (-1: the cluster's default) through
 * the Admin API. Returns 0 when it was created or already existed, -1 with the reason (a cluster
 * that does not serve CreateTopics, such as the embedded one, answers with a timeout). */
int target_topic_create(rd_kafka_t *rk, const char *topic, int partitions, int replication,
			int timeout_ms, char *err, size_t errlen);

#endif
