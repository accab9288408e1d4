/* Per-sensor state of one rule, in a chained hash table keyed by (site, device, sensor).
 *
 * A state holds what the rule remembers about one sensor: the side of the last command it sent
 * and, while one is open, the threshold episode. Entries exist only while they remember
 * something, so sensors that never cross a threshold cost nothing. Each entry is one allocation
 * (struct plus key strings), made when a sensor first needs remembering; lookups never
 * allocate. */
#ifndef IOTPIPE_ACTUATOR_STATETAB_H
#define IOTPIPE_ACTUATOR_STATETAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIDE_UNKNOWN (-1)

struct sensor_state {
	struct sensor_state *next; /* hash chain */
	uint64_t hash;
	int32_t partition; /* Kafka partition the sensor's readings come from */

	/* Command state machine: SIDE_UNKNOWN until the first command, then the side last sent. */
	int side;
	double cmd_value; /* reading that caused the last command */
	int64_t cmd_reading_ts;
	int64_t cmd_issued_at; /* wall clock of the last (re)send, for re-assertion */

	/* Threshold episode, while open. */
	bool open;
	struct sensor_state *open_prev, *open_next; /* the rule's list of open episodes */
	int64_t first_offset; /* offset of the reading that opened it: replay must start there */
	int64_t started_at, count;
	int64_t last_ts; /* event time of the newest reading this state took */
	double mean, max;

	const char *device, *sensor; /* point into site[] */
	char site[];
};

struct statetab {
	struct sensor_state **buckets;
	size_t nbuckets; /* power of two, or 0 before the first insert */
	size_t count;
};

/* Hash of a key under the process's table key (see siphash.h). */
uint64_t statetab_hash(const uint8_t key[16], const char *site, const char *device,
                       const char *sensor);

/* The entry for the key, or NULL. */
struct sensor_state *statetab_find(const struct statetab *t, uint64_t hash, const char *site,
                                   const char *device, const char *sensor);

/* Adds a zeroed entry (side SIDE_UNKNOWN, closed) for a key not present. Returns NULL when
 * memory runs out. The table owns the entry. */
struct sensor_state *statetab_add(struct statetab *t, uint64_t hash, const char *site,
                                  const char *device, const char *sensor);

/* Removes and frees s. */
void statetab_remove(struct statetab *t, struct sensor_state *s);

/* Calls fn on every entry; entries for which fn returns true are removed and freed after it
 * returns (fn must not remove them itself). Returns how many were removed. */
size_t statetab_each(struct statetab *t, bool (*fn)(struct sensor_state *s, void *ctx), void *ctx);

/* Frees every entry and the buckets; the table is then empty and reusable. */
void statetab_clear(struct statetab *t);

#endif
