/* Conversions between the engine's structs and the in-memory records (jansson objects with the
 * field names of schemas/Reading.avsc, Command.avsc and ThresholdEvent.avsc). */
#ifndef IOTPIPE_ACTUATOR_OUTPUT_H
#define IOTPIPE_ACTUATOR_OUTPUT_H

#include "actuator.h"

#include <jansson.h>
#include <stddef.h>

/* Points r's fields into rec (a Reading): r borrows rec's strings, so rec must outlive r.
 * Fails with the reason when a field is missing or mistyped, a string holds a NUL byte, or the
 * value is not finite. */
int act_reading_from_json(const json_t *rec, struct act_reading *r, char *err, size_t errlen);

/* New records (caller owns the reference), or NULL when memory runs out. */
json_t *act_command_to_json(const struct act_command *c);
json_t *act_event_to_json(const struct act_event *e);

#endif
