/* Internals shared by the engine's files (actuator.c, commands.c, episodes.c, offsets.c).
 * Nothing outside the engine includes this: the contract is actuator.h. */
#ifndef IOTPIPE_ACTUATOR_ENGINE_H
#define IOTPIPE_ACTUATOR_ENGINE_H

#include "actuator.h"
#include "buf.h"
#include "statetab.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A rule in force and what it remembers per sensor. */
struct slot {
	const struct rule *rule;
	struct statetab tab;
	struct sensor_state *open_head; /* open episodes, for commits and end of input */
	size_t nopen;
};

struct part {
	int64_t next;          /* next offset to process; -1 before the first */
	int64_t emitted_below; /* outputs of offsets below this were emitted by a previous run */
};

struct actuator {
	struct ruleset *rs;
	struct slot *slots; /* parallel to rs->rules */
	size_t max_states, nstates;
	uint8_t hash_key[16];
	struct part *parts;
	size_t nparts;
	struct buf topic, payload; /* reused for every command */
	struct actuator_stats stats;
};

/* Everything one (reading, rule) step needs, so the helpers below stay short. */
struct step {
	struct actuator *a;
	struct slot *slot;
	const struct act_reading *r;
	int32_t partition;
	int64_t offset, now_ms;
	uint64_t hash;
	bool replay; /* outputs withheld: a previous run emitted them */
	const struct act_sink *sink;
	char *err;
	size_t errlen;
};

/* The partition's bookkeeping, created on first use; NULL with the reason when the partition
 * number is out of range or memory runs out. (offsets.c) */
struct part *partition_get(struct actuator *a, int32_t partition, char *err, size_t errlen);

/* Writes "rule R, site/device/sensor: " and the message into the step's err, bumps the
 * counter, and returns -1. (actuator.c) */
int step_fail(const struct step *st, uint64_t *counter, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* s itself, or a new state for the step's sensor; NULL (counted, err set) when the cap is
 * reached or memory runs out. (actuator.c) */
struct sensor_state *step_state(struct step *st, struct sensor_state *s);

/* One reading through one rule's command machine / episode machine. *sp is the sensor's state
 * (NULL when it has none) and is set when one is created. Return 0 or -1 (err set). */
int command_step(struct step *st, struct sensor_state **sp);
int episode_step(struct step *st, struct sensor_state **sp);
/* Takes s off its rule's list of open episodes and marks it closed. (episodes.c) */
void episode_unlink(struct slot *slot, struct sensor_state *s);

#endif
