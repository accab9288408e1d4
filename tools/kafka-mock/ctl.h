/* The kafka-mock control language: one command per line, one answer line per command.
 *
 * Kept apart from main.c so the parsing of every argument (topic names, broker ids, API keys,
 * error names, counts) is in one place, and main.c stays the program's description. */
#ifndef IOTPIPE_KAFKA_MOCK_CTL_H
#define IOTPIPE_KAFKA_MOCK_CTL_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include <stdbool.h>
#include <stddef.h>

/* Limits enforced on flags and commands alike. */
enum {
	MOCK_BROKERS_MAX = 32,
	MOCK_PARTITIONS_MAX = 10000,
	MOCK_TOPIC_NAME_MAX = 249, /* Kafka's own limit */
	MOCK_ERROR_COUNT_MAX = 100000,
	MOCK_RTT_MS_MAX = 600000,
};

/* A topic as given to --topic or the "topic" command. */
struct mock_topic_spec {
	char name[MOCK_TOPIC_NAME_MAX + 1];
	int partitions;
	int replication; /* 1 when not given */
};

/* Parses "NAME:PARTITIONS[:REPLICATION]". Returns 0, or -1 with the reason in err. */
int mock_topic_spec_parse(const char *text, int broker_cnt, struct mock_topic_spec *spec, char *err,
                          size_t errlen);

/* Creates the topic in the cluster. Returns 0, or -1 with the reason in err. */
int mock_topic_create(rd_kafka_mock_cluster_t *mcluster, const struct mock_topic_spec *spec,
                      char *err, size_t errlen);

/* Runs one control line (modified in place while tokenising) and writes the answer, without a
 * newline, into answer: "ok ..." or "error ...". Blank lines and lines starting with '#' produce
 * an empty answer, which is not to be printed. Returns true when the line asked to quit. */
bool mock_ctl_execute(rd_kafka_mock_cluster_t *mcluster, int broker_cnt, char *line, char *answer,
                      size_t answerlen);

#endif
