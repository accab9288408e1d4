/* RawMessage construction: no interpretation of the payload at all, so the bronze copy in
 * Kafka is exactly what the device sent. */
#include "raw.h"

#include "text.h"

#include <stdlib.h>
#include <string.h>

int raw_key_rule_parse(const char *spec, struct raw_key_rule *rule)
{
	if (strcmp(spec, "topic") == 0) {
		rule->level = -1;
		return 0;
	}
	if (strncmp(spec, "level:", 6) != 0 || !spec[6])
		return -1;
	char *end;
	long n = strtol(spec + 6, &end, 10);
	if (*end || n < 0 || n > 64)
		return -1;
	rule->level = (int)n;
	return 0;
}

void raw_key(const struct raw_key_rule *rule, const char *topic, size_t topic_len,
	     const char **key, size_t *key_len)
{
	*key = topic;
	*key_len = topic_len;
	if (rule->level < 0)
		return;
	const char *start = topic, *end = topic + topic_len;
	for (int i = 0; i < rule->level; i++) {
		const char *slash = memchr(start, '/', (size_t)(end - start));
		if (!slash)
			return;
		start = slash + 1;
	}
	const char *slash = memchr(start, '/', (size_t)(end - start));
	size_t len = (size_t)((slash ? slash : end) - start);
	if (len == 0)
		return;
	*key = start;
	*key_len = len;
}

json_t *raw_message_new(const char *source, const char *topic, size_t topic_len,
			const void *payload, size_t len, int qos, bool retained, int64_t received_at)
{
	if (!utf8_valid(topic, topic_len) || memchr(topic, 0, topic_len))
		return NULL;
	json_t *rec = json_object();
	if (!rec)
		return NULL;
	if (json_object_set_new_nocheck(rec, "source", json_string(source)) < 0 ||
	    json_object_set_new_nocheck(rec, "topic", json_stringn(topic, topic_len)) < 0 ||
	    json_object_set_new_nocheck(rec, "payload",
					json_stringn_nocheck(payload ? payload : "", len)) < 0 ||
	    json_object_set_new_nocheck(rec, "qos", json_integer(qos)) < 0 ||
	    json_object_set_new_nocheck(rec, "retained", json_boolean(retained)) < 0 ||
	    json_object_set_new_nocheck(rec, "received_at", json_integer(received_at)) < 0) {
		json_decref(rec);
		return NULL;
	}
	return rec;
}
