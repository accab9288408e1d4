/* The closed loop's input: heat-pump commands as the actuator sends them, on
 * {site}/{device}/heatpump/set with payload {"status":"1"} (on) or {"status":"0"} (off). */
#ifndef SENSOR_SIM_CONTROL_H
#define SENSOR_SIM_CONTROL_H

#include <stdbool.h>
#include <stddef.h>

/* The subscription that receives every room's commands. */
#define CONTROL_FILTER "+/+/heatpump/set"

struct control_cmd {
	const char *site, *device; /* point into the topic; not NUL-terminated */
	size_t site_len, device_len;
	bool on;
};

/* Parses one command. status may be "1"/"0", 1/0 or true/false. Returns 0, or -1 with the
 * reason when the topic or payload is not a heat-pump command. */
int control_parse(const char *topic, size_t topic_len, const void *payload, size_t len,
                  struct control_cmd *out, char *err, size_t errlen);

#endif
