/* Deterministic message generator (see gen.h).
 *
 * The simulated world is sites x devices; each device is also a room with a heat pump. A device
 * speaks in one payload format (fixed, or cycling over the formats in mixed mode) through one
 * stream per sensor (home sensors have one stream: their topic has no sensor level). Messages go
 * round-robin over the streams, so message n belongs to stream n % streams, round n / streams.
 *
 * Randomness is a hash of (seed, message number, purpose), so output never depends on how many
 * random numbers something else drew. The only state carried between messages is the rooms'
 * temperatures (they integrate the heat-pump history) and the error-diffusion accumulator that
 * spreads invalid messages so their count stays within one of fraction x messages. */
#include "gen.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_STREAMS 10000000UL
#define MAX_BATCH 10000
#define DEFAULT_SMART_BATCH 3
#define OUT_OF_RANGE_VALUE "-1000000.0"
#define YEAR_2100_MS 4102444800000LL
#define TWO_DAYS_MS (2LL * 86400 * 1000)
#define YEAR_10000_MS 253402300800000LL /* no timestamp format goes further */

enum salt { SALT_INVALID = 1, SALT_KIND, SALT_NOISE, SALT_BAD_ID, SALT_LAT, SALT_LON };

static const char *const format_names[GEN_FORMAT_COUNT] = {
    "factory",     "factory-human", "factory-type", "home", "power",
    "temperature", "bare",          "batch",        "mixed"};
static const char *const invalid_names[GEN_INVALID_COUNT] = {
    "valid", "malformed", "error_value", "nan", "out_of_range", "future_ts", "bad_id"};
static const char *const room_names[] = {"livingroom", "kitchen", "bedroom", "bathroom",
                                         "office",     "hall",    "attic",   "cellar"};
static const char *const factory_units[] = {"C", "BAR", "RPM", "V"};
static const char *const temp_units[] = {"C", "F", "K"};
static const char *const bare_metrics[] = {"temperature", "humidity", "co2"};
static const char *const device_types[] = {"hvac", "compressor", "pump", "boiler", "conveyor"};
static const char *const bad_ids[] = {"a#b", "a+b", "a/b"};

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct stream {
	uint32_t slot;   /* device slot: site * devices + device; also its room */
	uint32_t sensor; /* sensor index within the device */
	uint8_t format;  /* base format */
	uint8_t batched;
};

struct room {
	double temp;
	double phys_ms; /* physics clock of temp */
	bool started;
	atomic_bool on;
};

struct gen {
	struct gen_config cfg;
	struct stream *streams;
	size_t nstreams;
	struct room *rooms;
	uint8_t *slot_format; /* base format of each device slot */
	size_t nrooms;
	/* Room lookup by "site/device": open addressing over key offsets into keys. */
	char *keys;
	uint32_t *key_off, *key_len;
	uint32_t *table; /* room index + 1; 0 = empty */
	size_t table_mask;
	int batch_n;    /* readings in a batched message */
	int round_span; /* event-time steps per round: batch_n when any stream batches, else 1 */
	uint64_t n;     /* next message number */
	double acc;     /* error diffusion for the invalid fraction */
	int64_t t0;     /* physics origin: the first event time */
	bool t0_set;
};

const char *gen_format_name(enum gen_format f)
{
	return (unsigned)f < GEN_FORMAT_COUNT ? format_names[f] : NULL;
}

int gen_format_parse(const char *name)
{
	for (int i = 0; i < GEN_FORMAT_COUNT; i++)
		if (strcmp(name, format_names[i]) == 0)
			return i;
	return -1;
}

const char *gen_invalid_name(enum gen_invalid k)
{
	return (unsigned)k < GEN_INVALID_COUNT ? invalid_names[k] : NULL;
}

void gen_config_init(struct gen_config *c)
{
	memset(c, 0, sizeof(*c));
	c->format = GEN_MIXED;
	c->sites = 1;
	c->devices = 4;
	c->sensors = 2;
	c->batch = 1;
	c->seed = 1;
	c->step_ms = 1000;
	c->time_scale = 1.0;
	c->start_temp = 17.0;
	c->outside_temp = 10.0;
	c->heat_rate = 1.0;
	c->tau_min = 30.0;
}

void gen_msg_free(struct gen_msg *m)
{
	if (!m)
		return;
	buf_free(&m->topic);
	buf_free(&m->payload);
}

/* ---- hashing ---- */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static uint64_t hash3(uint64_t seed, uint64_t a, uint64_t b, enum salt s)
{
	return mix64(seed ^ mix64(a ^ mix64(b ^ mix64((uint64_t)s))));
}

static double unit01(uint64_t h)
{
	return (double)(h >> 11) * 0x1.0p-53;
}

/* ---- names ---- */

static bool is_factory(int f)
{
	return f == GEN_FACTORY || f == GEN_FACTORY_HUMAN || f == GEN_FACTORY_TYPE;
}

static void site_name(int f, long s, char *out, size_t n)
{
	if (is_factory(f))
		snprintf(out, n, "%ld", 101 + s);
	else if (f == GEN_HOME)
		snprintf(out, n, "home%ld", s + 1);
	else
		snprintf(out, n, "site%ld", s + 1);
}

static void device_name(int f, long d, char *out, size_t n)
{
	if (is_factory(f))
		snprintf(out, n, "%ld", 1001 + d);
	else if (f == GEN_HOME && d < (long)NELEM(room_names))
		snprintf(out, n, "%s", room_names[d]);
	else if (f == GEN_HOME)
		snprintf(out, n, "%s%ld", room_names[d % (long)NELEM(room_names)],
		         d / (long)NELEM(room_names) + 1);
	else
		snprintf(out, n, "dev%ld", d + 1);
}

/* ---- room lookup ---- */

static uint64_t fnv_add(uint64_t h, const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		h ^= (unsigned char)s[i];
		h *= 0x100000001b3ULL;
	}
	return h;
}

static uint64_t room_hash(const char *site, size_t sl, const char *dev, size_t dl)
{
	uint64_t h = fnv_add(0xcbf29ce484222325ULL, site, sl);
	h = fnv_add(h, "/", 1);
	return fnv_add(h, dev, dl);
}

static long room_find(const struct gen *g, const char *site, size_t sl, const char *dev, size_t dl)
{
	size_t want = sl + 1 + dl;
	for (size_t i = room_hash(site, sl, dev, dl) & g->table_mask;;
	     i = (i + 1) & g->table_mask) {
		uint32_t e = g->table[i];
		if (!e)
			return -1;
		const char *k = g->keys + g->key_off[e - 1];
		if (g->key_len[e - 1] == want && memcmp(k, site, sl) == 0 && k[sl] == '/' &&
		    memcmp(k + sl + 1, dev, dl) == 0)
			return (long)e - 1;
	}
}

static int rooms_index(struct gen *g)
{
	size_t cap = 0, len = 0;
	g->key_off = calloc(g->nrooms, sizeof(*g->key_off));
	g->key_len = calloc(g->nrooms, sizeof(*g->key_len));
	size_t tsize = 16;
	while (tsize < g->nrooms * 2)
		tsize *= 2;
	g->table = calloc(tsize, sizeof(*g->table));
	if (!g->key_off || !g->key_len || !g->table)
		return -1;
	g->table_mask = tsize - 1;
	for (size_t r = 0; r < g->nrooms; r++) {
		int f = g->slot_format[r];
		char site[32], dev[48];
		site_name(f, (long)(r / (size_t)g->cfg.devices), site, sizeof(site));
		device_name(f, (long)(r % (size_t)g->cfg.devices), dev, sizeof(dev));
		size_t sl = strlen(site), dl = strlen(dev), kl = sl + 1 + dl;
		if (len + kl + 1 > cap) {
			cap = cap ? cap * 2 : 4096;
			while (cap < len + kl + 1)
				cap *= 2;
			char *nk = realloc(g->keys, cap);
			if (!nk)
				return -1;
			g->keys = nk;
		}
		memcpy(g->keys + len, site, sl);
		g->keys[len + sl] = '/';
		memcpy(g->keys + len + sl + 1, dev, dl + 1);
		g->key_off[r] = (uint32_t)len;
		g->key_len[r] = (uint32_t)kl;
		len += kl + 1;
		size_t i = room_hash(site, sl, dev, dl) & g->table_mask;
		while (g->table[i])
			i = (i + 1) & g->table_mask;
		g->table[i] = (uint32_t)r + 1;
	}
	return 0;
}

/* ---- construction ---- */

/* The base format of device slot i and whether it sends batches. */
static void slot_kind(const struct gen_config *c, size_t i, int *fmt, bool *batched)
{
	*batched = c->batch > 1;
	if (c->format == GEN_MIXED) {
		size_t k = i % (GEN_BASE_COUNT + 1);
		if (k == GEN_BASE_COUNT) {
			*batched = true;
			*fmt = (int)((i / (GEN_BASE_COUNT + 1)) % GEN_BASE_COUNT);
		} else {
			*fmt = (int)k;
		}
	} else if (c->format == GEN_BATCH) {
		*batched = true;
		*fmt = (int)(i % GEN_BASE_COUNT);
	} else {
		*fmt = c->format;
	}
}

struct gen *gen_new(const struct gen_config *c, char *err, size_t errlen)
{
	if ((unsigned)c->format >= GEN_FORMAT_COUNT) {
		snprintf(err, errlen, "unknown format %d", (int)c->format);
		return NULL;
	}
	if (c->sites < 1 || c->devices < 1 || c->sensors < 1) {
		snprintf(err, errlen, "sites, devices and sensors must each be at least 1");
		return NULL;
	}
	if (c->batch < 1 || c->batch > MAX_BATCH) {
		snprintf(err, errlen, "batch must be 1..%d readings", MAX_BATCH);
		return NULL;
	}
	if (!(c->invalid >= 0 && c->invalid <= 1)) {
		snprintf(err, errlen, "invalid fraction must be within 0..1");
		return NULL;
	}
	if (c->step_ms < 1) {
		snprintf(err, errlen, "step must be at least 1 ms");
		return NULL;
	}
	if (c->backfill && c->start_ts < 0) {
		snprintf(err, errlen, "start time must not be before 1970");
		return NULL;
	}
	if (!(c->time_scale > 0) || !(c->tau_min > 0) || !isfinite(c->heat_rate)) {
		snprintf(err, errlen, "time scale and heat-loss time constant must be positive");
		return NULL;
	}
	double nrooms = (double)c->sites * (double)c->devices;
	if (nrooms * (double)c->sensors > (double)MAX_STREAMS) {
		snprintf(err, errlen,
		         "%ld sites x %ld devices x %ld sensors is more than %lu streams", c->sites,
		         c->devices, c->sensors, MAX_STREAMS);
		return NULL;
	}

	struct gen *g = calloc(1, sizeof(*g));
	if (!g)
		goto oom;
	g->cfg = *c;
	g->nrooms = (size_t)nrooms;
	g->batch_n = c->batch > 1 ? c->batch : DEFAULT_SMART_BATCH;
	g->rooms = calloc(g->nrooms, sizeof(*g->rooms));
	g->slot_format = calloc(g->nrooms, 1);
	size_t max_streams = g->nrooms * (size_t)c->sensors;
	g->streams = calloc(max_streams, sizeof(*g->streams));
	if (!g->rooms || !g->slot_format || !g->streams)
		goto oom;
	bool any_batched = false;
	for (size_t i = 0; i < g->nrooms; i++) {
		int f;
		bool b;
		slot_kind(c, i, &f, &b);
		g->slot_format[i] = (uint8_t)f;
		any_batched |= b;
		atomic_init(&g->rooms[i].on, false);
		/* A home's topic has no sensor level: one temperature stream per room. */
		long k_end = f == GEN_HOME ? 1 : c->sensors;
		for (long k = 0; k < k_end; k++)
			g->streams[g->nstreams++] = (struct stream){.slot = (uint32_t)i,
			                                            .sensor = (uint32_t)k,
			                                            .format = (uint8_t)f,
			                                            .batched = b};
	}
	g->round_span = any_batched ? g->batch_n : 1;
	if (rooms_index(g) < 0)
		goto oom;
	return g;
oom:
	snprintf(err, errlen, "out of memory for %ld x %ld x %ld sensors", c->sites, c->devices,
	         c->sensors);
	gen_free(g);
	return NULL;
}

void gen_free(struct gen *g)
{
	if (!g)
		return;
	free(g->streams);
	free(g->rooms);
	free(g->slot_format);
	free(g->keys);
	free(g->key_off);
	free(g->key_len);
	free(g->table);
	free(g);
}

size_t gen_streams(const struct gen *g)
{
	return g->nstreams;
}

int gen_heatpump_set(struct gen *g, const char *site, size_t site_len, const char *device,
                     size_t device_len, bool on)
{
	long r = room_find(g, site, site_len, device, device_len);
	if (r < 0)
		return -1;
	return atomic_exchange_explicit(&g->rooms[r].on, on, memory_order_relaxed) != on;
}

size_t gen_heatpumps_on(const struct gen *g, size_t *rooms)
{
	size_t on = 0;
	for (size_t i = 0; i < g->nrooms; i++)
		on += atomic_load_explicit(&g->rooms[i].on, memory_order_relaxed);
	if (rooms)
		*rooms = g->nrooms;
	return on;
}

/* ---- physics and values ---- */

/* The room's temperature at event time ts: Newton cooling towards the outside, plus a constant
 * heating power while the heat pump is on (solved exactly, so the step size does not matter). */
static double room_temp(struct gen *g, struct room *rm, int64_t ts)
{
	if (!g->t0_set) {
		g->t0 = ts;
		g->t0_set = true;
	}
	double phys = (double)(ts - g->t0) * g->cfg.time_scale;
	if (!rm->started) {
		rm->temp = g->cfg.start_temp;
		rm->phys_ms = phys;
		rm->started = true;
	}
	double dt = phys - rm->phys_ms;
	if (dt > 0) {
		bool on = atomic_load_explicit(&rm->on, memory_order_relaxed);
		double tau_ms = g->cfg.tau_min * 60000.0;
		double eq = g->cfg.outside_temp + (on ? g->cfg.heat_rate * g->cfg.tau_min : 0);
		rm->temp = eq + (rm->temp - eq) * exp(-dt / tau_ms);
		rm->phys_ms = phys;
	}
	return rm->temp;
}

enum metric { M_TEMP, M_PRESSURE, M_RPM, M_VOLTAGE, M_ENERGY, M_HUMIDITY, M_CO2 };

static enum metric stream_metric(const struct stream *st)
{
	switch (st->format) {
	case GEN_FACTORY:
	case GEN_FACTORY_HUMAN:
	case GEN_FACTORY_TYPE: {
		static const enum metric m[] = {M_TEMP, M_PRESSURE, M_RPM, M_VOLTAGE};
		return m[st->sensor % NELEM(m)];
	}
	case GEN_POWER:
		return M_ENERGY;
	case GEN_BARE: {
		static const enum metric m[] = {M_TEMP, M_HUMIDITY, M_CO2};
		return m[st->sensor % NELEM(m)];
	}
	default:
		return M_TEMP;
	}
}

/* One reading's value in its metric's unit (°C for temperatures). j is the reading's index in
 * its stream, which makes the energy meters' totals grow monotonically. */
static double reading_value(struct gen *g, const struct stream *st, int64_t ts, uint64_t n, int i,
                            uint64_t j)
{
	double u = unit01(hash3(g->cfg.seed, n, (uint64_t)i, SALT_NOISE));
	double dev = (double)(st->slot % (uint32_t)g->cfg.devices);
	switch (stream_metric(st)) {
	case M_TEMP:
		return room_temp(g, &g->rooms[st->slot], ts) + (u - 0.5) * 0.1;
	case M_PRESSURE:
		return 120.0 + (u - 0.5) * 10.0;
	case M_RPM:
		return 1450.0 + (u - 0.5) * 100.0;
	case M_VOLTAGE:
		return 230.0 + (u - 0.5) * 6.0;
	case M_ENERGY:
		return 1000.0 + 100.0 * dev + 10.0 * st->sensor + (double)j * 0.05 + u * 0.04;
	case M_HUMIDITY:
		return 45.0 + (u - 0.5) * 20.0;
	case M_CO2:
		return 600.0 + (u - 0.5) * 300.0;
	}
	return 0;
}

/* ---- formatting ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;
	return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

static void utc_parts(int64_t ms, struct tm *tm, int *msec)
{
	int64_t secs = floor_div(ms, 1000);
	*msec = (int)(ms - secs * 1000);
	time_t t = (time_t)secs;
	gmtime_r(&t, tm);
}

/* ISO 8601 in local time at offset_min from UTC, milliseconds only when not zero. */
static int put_iso(struct buf *b, int64_t ms, int offset_min, bool always_ms)
{
	struct tm tm;
	int msec;
	utc_parts(ms + (int64_t)offset_min * 60000, &tm, &msec);
	int r = buf_printf(b, "%04d-%02d-%02dT%02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
	                   tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
	if (r == 0 && (msec || always_ms))
		r = buf_printf(b, ".%03d", msec);
	if (r == 0 && offset_min == 0)
		r = buf_putc(b, 'Z');
	else if (r == 0)
		r = buf_printf(b, "%c%02d:%02d", offset_min < 0 ? '-' : '+', abs(offset_min) / 60,
		               abs(offset_min) % 60);
	return r;
}

static int put_plain_time(struct buf *b, int64_t ms)
{
	struct tm tm;
	int msec;
	utc_parts(ms, &tm, &msec);
	return buf_printf(b, "%04d-%02d-%02d %02d:%02d:%02d", tm.tm_year + 1900, tm.tm_mon + 1,
	                  tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* The value as JSON text, or the invalid spelling the message calls for. */
static int put_value(struct buf *b, double v, int decimals, enum gen_invalid inv)
{
	switch (inv) {
	case GEN_NAN:
		return buf_printf(b, "NaN");
	case GEN_OUT_OF_RANGE:
		return buf_printf(b, OUT_OF_RANGE_VALUE);
	case GEN_ERROR_VALUE:
		return buf_printf(b, "100.0");
	default:
		return buf_printf(b, "%.*f", decimals, v);
	}
}

struct element {
	const struct stream *st;
	int64_t ts; /* event time */
	double value;
	enum gen_invalid inv; /* applied to this element */
	const char *bad_id;
};

static int64_t event_time(const struct gen *g, const struct element *e)
{
	if (e->inv != GEN_FUTURE_TS)
		return e->ts;
	return g->cfg.backfill ? YEAR_2100_MS + (e->ts - g->cfg.start_ts) : e->ts + TWO_DAYS_MS;
}

static int put_factory(struct gen *g, struct buf *b, const struct element *e)
{
	const struct stream *st = e->st;
	long s = (long)(st->slot / (uint32_t)g->cfg.devices);
	long d = (long)(st->slot % (uint32_t)g->cfg.devices);
	long sensor_id = 10001 + d * g->cfg.sensors + (long)st->sensor;
	int64_t ts = event_time(g, e);
	int r = buf_printf(b, "{\"ts\":%lld", (long long)ts);
	if (r == 0 && st->format == GEN_FACTORY_HUMAN) {
		r = buf_printf(b, ",\"ts_human\":\"");
		r = r ? r : put_iso(b, ts, 0, true);
		r = r ? r : buf_putc(b, '"');
	}
	r = r ? r : buf_printf(b, ",\"metadata\":{\"siteId\":%ld,\"deviceId\":", 101 + s);
	if (r == 0 && e->bad_id)
		r = buf_printf(b, "\"%s\"", e->bad_id);
	else if (r == 0)
		r = buf_printf(b, "%ld", 1001 + d);
	r = r ? r
	      : buf_printf(b, ",\"sensorId\":%ld,\"unit\":\"%s\"", sensor_id,
	                   factory_units[st->sensor % NELEM(factory_units)]);
	if (r == 0 && st->format == GEN_FACTORY_TYPE)
		r = buf_printf(b, ",\"deviceType\":\"%s\"",
		               device_types[d % (long)NELEM(device_types)]);
	r = r ? r : buf_printf(b, "},\"measurement\":");
	r = r ? r : put_value(b, e->value, 2, e->inv);
	if (r == 0 && st->format == GEN_FACTORY_HUMAN) {
		/* Each site somewhere in central Europe, its devices a few metres apart. */
		double lat = 45.0 + 10.0 * unit01(hash3(g->cfg.seed, (uint64_t)s, 0, SALT_LAT));
		double lon = 5.0 + 15.0 * unit01(hash3(g->cfg.seed, (uint64_t)s, 0, SALT_LON));
		r = buf_printf(b, ",\"location\":{\"latitude\":%.5f,\"longitude\":%.5f}",
		               lat + 0.0001 * (double)d, lon + 0.0001 * (double)d);
	}
	return r ? r : buf_putc(b, '}');
}

static int put_home(struct gen *g, struct buf *b, const struct element *e)
{
	long s = (long)(e->st->slot / (uint32_t)g->cfg.devices);
	long d = (long)(e->st->slot % (uint32_t)g->cfg.devices);
	/* Odd homes report local time at +01:00, so zone handling is exercised. */
	int r = buf_printf(b, "{\"timestamp\":\"");
	r = r ? r : put_iso(b, event_time(g, e), (s % 2) ? 60 : 0, false);
	/* Half the rooms name the value "temperature", as some home sensors do. */
	r = r ? r : buf_printf(b, "\",\"%s\":", (d % 2) ? "temperature" : "value");
	r = r ? r : put_value(b, e->value, 2, e->inv);
	return r ? r : buf_putc(b, '}');
}

static int put_power(struct gen *g, struct buf *b, const struct element *e)
{
	int r = e->bad_id ? buf_printf(b, "{\"sensor_id\":\"%s\"", e->bad_id)
	                  : buf_printf(b, "{\"sensor_id\":\"meter%u\"", e->st->sensor + 1);
	r = r ? r : buf_printf(b, ",\"sensor_energy_value\":");
	r = r ? r : put_value(b, e->value, 3, e->inv);
	r = r ? r : buf_printf(b, ",\"sensor_timestamp\":\"");
	r = r ? r : put_plain_time(b, event_time(g, e));
	return r ? r : buf_printf(b, "\"}");
}

static int put_temperature(struct gen *g, struct buf *b, const struct element *e)
{
	const struct stream *st = e->st;
	size_t idx = (size_t)(st - g->streams);
	const char *unit = temp_units[idx % NELEM(temp_units)];
	double v = e->value;
	if (unit[0] == 'F')
		v = v * 9.0 / 5.0 + 32.0;
	else if (unit[0] == 'K')
		v = v + 273.15;
	int r = e->bad_id ? buf_printf(b, "{\"sensor_id\":\"%s\"", e->bad_id)
	                  : buf_printf(b, "{\"sensor_id\":\"t-%u\"", st->sensor + 1);
	r = r ? r
	      : buf_printf(b, ",\"timestamp\":%lld,\"temperature\":", (long long)event_time(g, e));
	r = r ? r : put_value(b, v, 2, e->inv);
	return r ? r : buf_printf(b, ",\"unit\":\"%s\"}", unit);
}

static int put_element(struct gen *g, struct buf *b, const struct element *e)
{
	switch (e->st->format) {
	case GEN_FACTORY:
	case GEN_FACTORY_HUMAN:
	case GEN_FACTORY_TYPE:
		return put_factory(g, b, e);
	case GEN_HOME:
		return put_home(g, b, e);
	case GEN_POWER:
		return put_power(g, b, e);
	case GEN_TEMPERATURE:
		return put_temperature(g, b, e);
	default:
		return put_value(b, e->value, 2, e->inv);
	}
}

/* Home and bare-number identities live in the topic; there a bad identifier is an empty level
 * (MQTT forbids '+' and '#' in published topics, and '/' would just add a level). */
static int put_topic(struct gen *g, struct buf *b, const struct stream *st, bool bad_level)
{
	long s = (long)(st->slot / (uint32_t)g->cfg.devices);
	long d = (long)(st->slot % (uint32_t)g->cfg.devices);
	char site[32], dev[48];
	site_name(st->format, s, site, sizeof(site));
	device_name(st->format, d, dev, sizeof(dev));
	int r;
	switch (st->format) {
	case GEN_FACTORY:
	case GEN_FACTORY_HUMAN:
	case GEN_FACTORY_TYPE:
		r = buf_printf(b, "factory/%s/%s/data", site, dev);
		break;
	case GEN_HOME:
		r = buf_printf(b, "%s/%s/temperature", site, bad_level ? "" : dev);
		break;
	case GEN_POWER:
		r = buf_printf(b, "%s/%s/energy", site, dev);
		break;
	case GEN_TEMPERATURE:
		r = buf_printf(b, "%s/%s/temperature", site, dev);
		break;
	default:
		if (bad_level)
			r = buf_printf(b, "%s/%s//%s", site, dev,
			               bare_metrics[st->sensor % NELEM(bare_metrics)]);
		else
			r = buf_printf(b, "%s/%s/s%u/%s", site, dev, st->sensor + 1,
			               bare_metrics[st->sensor % NELEM(bare_metrics)]);
	}
	return r ? r : buf_terminate(b);
}

/* The invalid kinds that make sense for a format. */
static size_t applicable_kinds(int f, enum gen_invalid *out)
{
	size_t n = 0;
	out[n++] = GEN_MALFORMED;
	if (f == GEN_HOME)
		out[n++] = GEN_ERROR_VALUE;
	out[n++] = GEN_NAN;
	out[n++] = GEN_OUT_OF_RANGE;
	if (f != GEN_BARE)
		out[n++] = GEN_FUTURE_TS;
	out[n++] = GEN_BAD_ID;
	return n;
}

int gen_next(struct gen *g, int64_t now_ms, struct gen_msg *m)
{
	uint64_t n = g->n++;
	const struct stream *st = &g->streams[n % g->nstreams];
	uint64_t round = n / g->nstreams;
	int bn = st->batched ? g->batch_n : 1;

	enum gen_invalid inv = GEN_VALID;
	if (g->cfg.invalid > 0) {
		/* Error diffusion with a random threshold: placement looks random, and the count
		 * after n messages stays within one of n x fraction. */
		g->acc += g->cfg.invalid;
		if (g->acc >= unit01(hash3(g->cfg.seed, n, 0, SALT_INVALID))) {
			g->acc -= 1.0;
			enum gen_invalid kinds[GEN_INVALID_COUNT];
			size_t nk = applicable_kinds(st->format, kinds);
			inv = kinds[hash3(g->cfg.seed, n, 0, SALT_KIND) % nk];
		}
	}
	bool topic_identity = st->format == GEN_HOME || st->format == GEN_BARE;
	bool bad_topic = inv == GEN_BAD_ID && topic_identity;
	/* Readings lost with the message: a payload that is no JSON (a NaN token makes a whole
	 * batch unparsable), or an identity broken in the topic. */
	bool whole = inv == GEN_MALFORMED || inv == GEN_NAN || bad_topic;

	buf_reset(&m->topic);
	buf_reset(&m->payload);
	if (put_topic(g, &m->topic, st, bad_topic) < 0)
		return -1;

	int64_t base, span;
	if (g->cfg.backfill) {
		if (__builtin_mul_overflow((int64_t)round, (int64_t)g->round_span * g->cfg.step_ms,
		                           &span) ||
		    __builtin_add_overflow(g->cfg.start_ts, span, &base))
			return GEN_END_OF_TIME;
	} else {
		base = now_ms - (int64_t)(bn - 1) * g->cfg.step_ms;
	}
	if (base > YEAR_10000_MS - (int64_t)bn * g->cfg.step_ms)
		return GEN_END_OF_TIME;
	int r = st->batched ? buf_putc(&m->payload, '[') : 0;
	int64_t last = base;
	for (int i = 0; i < bn && r == 0; i++) {
		struct element e = {.st = st, .ts = base + (int64_t)i * g->cfg.step_ms};
		e.value = reading_value(g, st, e.ts, n, i, round * (uint64_t)bn + (uint64_t)i);
		/* One bad element per batch: a cleaner can keep the good ones. */
		if (i == 0 && inv != GEN_VALID && inv != GEN_MALFORMED && !bad_topic) {
			e.inv = inv;
			if (inv == GEN_BAD_ID)
				e.bad_id =
				    bad_ids[hash3(g->cfg.seed, n, 0, SALT_BAD_ID) % NELEM(bad_ids)];
		}
		if (i > 0)
			r = buf_putc(&m->payload, ',');
		r = r ? r : put_element(g, &m->payload, &e);
		last = e.ts;
	}
	if (r == 0 && st->batched)
		r = buf_putc(&m->payload, ']');
	if (r == 0 && inv == GEN_MALFORMED) {
		/* Cut before the end and open a string: no prefix of these payloads followed by a
		 * quote is a complete JSON text. */
		m->payload.len /= 2;
		r = buf_putc(&m->payload, '"');
	}
	if (r < 0 || buf_terminate(&m->payload) < 0)
		return -1;

	m->format = (enum gen_format)st->format;
	m->batched = st->batched;
	m->invalid = inv;
	m->readings = bn;
	m->bad_readings = inv == GEN_VALID ? 0 : whole ? bn : 1;
	m->time_ms = last;

	return 0;
}
