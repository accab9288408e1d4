/* Turning one MQTT message into a RawMessage record and its Kafka key. */
#ifndef IOTPIPE_INGESTOR_RAW_H
#define IOTPIPE_INGESTOR_RAW_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How the Kafka key is chosen: the whole MQTT topic, or one of its levels (so each device's
 * messages keep their order in one partition while a site's devices spread out). */
struct raw_key_rule {
	int level; /* -1: the whole topic; else the 0-based topic level */
};

/* Parses "topic" or "level:N". Returns 0 or -1. */
int raw_key_rule_parse(const char *spec, struct raw_key_rule *rule);

/* Points *key at the key bytes inside topic. A topic with fewer levels than asked for is keyed
 * by the whole topic (never an empty key, which would lose per-device order). */
void raw_key(const struct raw_key_rule *rule, const char *topic, size_t topic_len,
	     const char **key, size_t *key_len);

/* Builds the RawMessage record. The payload is copied byte-exact. Returns a new reference or
 * NULL when the topic is not valid UTF-8 (MQTT requires it; the caller counts and drops). */
json_t *raw_message_new(const char *source, const char *topic, size_t topic_len,
			const void *payload, size_t len, int qos, bool retained, int64_t received_at);

#endif
