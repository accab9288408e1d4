/* The simulator's message generator: which sensor speaks next, what it says, in which payload
 * format, on which topic, and whether the message is deliberately broken.
 *
 * Free of I/O and clocks, so tests can drive it. Given the same configuration (seed included)
 * and, in back-fill mode, no heat-pump commands, message n is the same bytes on every run:
 * every random choice is a hash of (seed, message number, purpose), never a shared stream.
 *
 * Topic layouts, identities and the invalid kinds are described in docs/sensor-sim.md. */
#ifndef SENSOR_SIM_GEN_H
#define SENSOR_SIM_GEN_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum gen_format {
	GEN_FACTORY,       /* {"ts","metadata":{siteId,deviceId,sensorId,unit},"measurement"} */
	GEN_FACTORY_HUMAN, /* + "ts_human" and "location":{latitude,longitude} */
	GEN_FACTORY_TYPE,  /* + metadata.deviceType */
	GEN_HOME,          /* <home>/<room>/temperature {"timestamp":ISO,"value"|"temperature"} */
	GEN_POWER,         /* <site>/<device>/energy {"sensor_id","sensor_energy_value",...} */
	GEN_TEMPERATURE,   /* <site>/<device>/temperature {"sensor_id","temperature","unit",...} */
	GEN_BARE,          /* <site>/<device>/<sensor>/<metric> 21.5 */
	GEN_BASE_COUNT,
	GEN_BATCH = GEN_BASE_COUNT, /* JSON arrays; the element format cycles over the base ones */
	GEN_MIXED,                  /* each device gets one of the above, cycling */
	GEN_FORMAT_COUNT
};

enum gen_invalid {
	GEN_VALID,
	GEN_MALFORMED,    /* truncated JSON */
	GEN_ERROR_VALUE,  /* home temperature exactly 100.0, the sensors' error value */
	GEN_NAN,          /* the value written as the bare token NaN */
	GEN_OUT_OF_RANGE, /* value -1000000.0: below absolute zero, negative energy ... */
	GEN_FUTURE_TS,    /* event time 2 days ahead (live) or in the year 2100 (back-fill) */
	GEN_BAD_ID,       /* an identifier containing '#', '+' or '/', or an empty topic level */
	GEN_INVALID_COUNT
};

/* "factory", "factory-human", ..., "batch", "mixed"; NULL when out of range. */
const char *gen_format_name(enum gen_format f);
/* The format for a name, or -1. */
int gen_format_parse(const char *name);
/* "valid", "malformed", "error_value", "nan", "out_of_range", "future_ts", "bad_id". */
const char *gen_invalid_name(enum gen_invalid k);

struct gen_config {
	enum gen_format format;
	long sites, devices, sensors; /* per site / per device; each >= 1 */
	int batch;      /* readings per message; 1 = single readings (batch devices then use 3) */
	double invalid; /* fraction of messages made invalid, 0..1 */
	uint64_t seed;
	bool backfill;       /* event times from start_ts, advancing step_ms per reading */
	int64_t start_ts;    /* ms since the epoch (back-fill) */
	int64_t step_ms;     /* event-time step between readings of one sensor (> 0) */
	double time_scale;   /* simulated seconds of room physics per second of event time */
	double start_temp;   /* rooms start here (°C) */
	double outside_temp; /* rooms cool towards this (°C) */
	double heat_rate;    /* °C per minute a heat pump adds */
	double tau_min;      /* heat-loss time constant in minutes */
};

/* Fills c with the defaults (mixed format, 1 site, 4 devices, 2 sensors, seed 1, live mode,
 * 1 s step, rooms at 17 °C cooling towards 10 °C, heat pumps adding 1 °C/min). */
void gen_config_init(struct gen_config *c);

struct gen_msg {
	struct buf topic;       /* NUL-terminated */
	struct buf payload;     /* NUL-terminated (the NUL is not part of the payload) */
	enum gen_format format; /* base format of the readings */
	bool batched;
	enum gen_invalid invalid;
	int readings;     /* readings in the message */
	int bad_readings; /* of those, how many are invalid */
	int64_t time_ms;  /* when the message is "sent": its last reading's event time */
};
/* Releases the buffers of a message (the zero value is an empty message). Accepts NULL. */
void gen_msg_free(struct gen_msg *m);

struct gen;

/* Returns NULL with the reason in err (bad sizes, too many sensors, out of memory). */
struct gen *gen_new(const struct gen_config *c, char *err, size_t errlen);
void gen_free(struct gen *g);

/* gen_next's result when event times would pass the year 9999. */
#define GEN_END_OF_TIME (-2)

/* Produces the next message into m (its buffers are reused). now_ms is the wall clock, used for
 * event times in live mode and ignored in back-fill mode. Returns 0, -1 when out of memory, or
 * GEN_END_OF_TIME. */
int gen_next(struct gen *g, int64_t now_ms, struct gen_msg *m);

/* Number of distinct streams (topics + sensor) a round of messages goes through. */
size_t gen_streams(const struct gen *g);

/* A heat-pump command for the room (site, device) as the cleaner names them (docs/sensor-sim.md).
 * Safe to call from another thread than gen_next. Returns 1 when the state changed, 0 when it
 * was already so, -1 when no such room exists. */
int gen_heatpump_set(struct gen *g, const char *site, size_t site_len, const char *device,
                     size_t device_len, bool on);
/* Rooms whose heat pump is on, and the number of rooms. */
size_t gen_heatpumps_on(const struct gen *g, size_t *rooms);

#endif
