/* Target topic names. A template maps each source topic to its topic on the target cluster:
 * "{topic}" keeps names (the default), "{source}.{topic}" prefixes the source alias as
 * MirrorMaker 2 does, so topics of several edges can meet in one central cluster. */
#ifndef MIRROR_RELAY_NAMING_H
#define MIRROR_RELAY_NAMING_H

#include <stdbool.h>
#include <stddef.h>

/* Kafka's limit on topic name length. */
#define NAMING_TOPIC_MAX 249
/* An alias appears in topic names and in origin headers ("alias/topic/partition/offset"). */
#define NAMING_ALIAS_MAX 64

/* True for a legal Kafka topic name: 1..249 of [A-Za-z0-9._-], not "." or "..". */
bool naming_topic_valid(const char *name);
/* True for a usable cluster alias: 1..64 of [A-Za-z0-9._-] (no '/', which separates origins). */
bool naming_alias_valid(const char *alias);

/* Checks a template once at start: it must contain {topic}; {source} and {topic} are the only
 * placeholders; everything else must be topic-name characters. Returns 0 or -1 with the reason. */
int naming_check(const char *tmpl, char *err, size_t errlen);
/* True when the template uses {source}. */
bool naming_uses_source(const char *tmpl);
/* True when the template changes names (anything but exactly "{topic}"). */
bool naming_renames(const char *tmpl);

/* Writes the target name of topic into out (NUL-terminated). Returns 0, or -1 when the result
 * is not a valid topic name (longer than 249 characters) or does not fit outlen. */
int naming_expand(const char *tmpl, const char *alias, const char *topic, char *out,
		  size_t outlen);

#endif
