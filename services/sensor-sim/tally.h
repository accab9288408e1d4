/* What a run sent, by payload format and by invalid kind, plus the delivery outcome: the numbers
 * tests compare with what the pipeline kept and rejected. */
#ifndef SENSOR_SIM_TALLY_H
#define SENSOR_SIM_TALLY_H

#include "gen.h"

#include <jansson.h>
#include <stdint.h>

struct tally {
	uint64_t messages, readings, bad_readings, batched;
	uint64_t by_invalid[GEN_INVALID_COUNT];
	uint64_t by_format[GEN_BASE_COUNT];
	/* Delivery (MQTT mode): accepted by the client, acknowledged, refused or lost, pending. */
	uint64_t published, confirmed, failed, unconfirmed;
	uint64_t reconnects;
	/* Closed loop: heat-pump commands received, and those naming no simulated room or
	 * carrying an unreadable payload. */
	uint64_t commands, commands_unknown_room, commands_bad;
	uint64_t heatpumps_on, rooms;
	int64_t elapsed_ms; /* first message to the end of the drain */
	const char *mode;   /* "mqtt" or "stdout" */
};

/* Counts one message that was handed to its output. */
void tally_add(struct tally *t, const struct gen_msg *m);

/* The tally as a JSON object (new reference), or NULL when out of memory. */
json_t *tally_json(const struct tally *t);
/* Logs the tally as a few human-readable lines at info level. */
void tally_log(const struct tally *t);

#endif
