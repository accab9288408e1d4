/* The built-in payload formats: how each is recognised and where its fields are.
 *
 * Detection looks only at which keys an element has (a few hash lookups), never at the topic,
 * so a message is classified the same way on any topic; the topic then only supplies identity
 * for the formats that carry none. The conventions are documented in docs/cleaner.md. */
#include "clean_internal.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

enum cleaner_format format_detect(const json_t *elem)
{
	if (json_is_number(elem))
		return CLEANER_FORMAT_BARE;
	if (json_is_string(elem)) {
		double d;
		/* Numeric text ("21.5" sent as a JSON string) is a bare number too; NaN spelled as
		 * text is one that validation then refuses by name. */
		if (text_number_parse(json_string_value(elem), json_string_length(elem), &d) >= 0)
			return CLEANER_FORMAT_BARE;
		return CLEANER_FORMAT_AUTO;
	}
	if (!json_is_object(elem))
		return CLEANER_FORMAT_AUTO;
	if (json_object_get(elem, "metadata") || json_object_get(elem, "measurement"))
		return CLEANER_FORMAT_FACTORY;
	if (json_object_get(elem, "sensor_energy_value"))
		return CLEANER_FORMAT_POWER;
	if (json_object_get(elem, "sensor_id") && json_object_get(elem, "temperature"))
		return CLEANER_FORMAT_TEMPERATURE;
	if (json_object_get(elem, "value") || json_object_get(elem, "temperature"))
		return CLEANER_FORMAT_HOME;
	return CLEANER_FORMAT_AUTO;
}

const char *format_default_unit(const char *metric, size_t len)
{
	static const struct {
		const char *metric, *unit;
	} units[] = {
	    {"temperature", "C"}, {"humidity", "%"}, {"energy", "kWh"},
	    {"power", "W"},       {"voltage", "V"},  {"current", "A"},
	};
	for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++)
		if (strlen(units[i].metric) == len && memcmp(units[i].metric, metric, len) == 0)
			return units[i].unit;
	return "";
}

/* Factory payloads name a unit but not what is measured: the metric follows from the unit. */
static const char *metric_from_unit(const char *unit, size_t len)
{
	static const struct {
		const char *unit, *metric;
	} map[] = {
	    {"bar", "pressure"},
	    {"mbar", "pressure"},
	    {"pa", "pressure"},
	    {"hpa", "pressure"},
	    {"kpa", "pressure"},
	    {"mpa", "pressure"},
	    {"psi", "pressure"},
	    {"c", "temperature"},
	    {"\xC2\xB0"
	     "c",
	     "temperature"},
	    {"degc", "temperature"},
	    {"celsius", "temperature"},
	    {"f", "temperature"},
	    {"\xC2\xB0"
	     "f",
	     "temperature"},
	    {"degf", "temperature"},
	    {"fahrenheit", "temperature"},
	    {"k", "temperature"},
	    {"kelvin", "temperature"},
	    {"%rh", "humidity"},
	    {"rh", "humidity"},
	    {"wh", "energy"},
	    {"kwh", "energy"},
	    {"mwh", "energy"},
	    {"j", "energy"},
	    {"kj", "energy"},
	    {"w", "power"},
	    {"kw", "power"},
	    {"mw", "power"},
	    {"v", "voltage"},
	    {"mv", "voltage"},
	    {"kv", "voltage"},
	    {"a", "current"},
	    {"ma", "current"},
	    {"hz", "frequency"},
	    {"rpm", "speed"},
	    {"l/min", "flow"},
	    {"l/s", "flow"},
	    {"m3/h", "flow"},
	};
	for (size_t i = 0; i < sizeof(map) / sizeof(*map); i++)
		if (strlen(map[i].unit) == len && strncasecmp(map[i].unit, unit, len) == 0)
			return map[i].metric;
	return "measurement";
}

/* site/device/metric (sensor = metric) or site/device/sensor/metric. */
static int ids_from_topic(const struct topic *t, struct cand *c, struct verdict *v)
{
	if (t->nlev != 3 && t->nlev != 4)
		return verdict_set(
		    v, CLEANER_TOPIC_UNMAPPED,
		    "topic: expected site/device/metric or site/device/sensor/metric, "
		    "got %zu level%s",
		    t->nlev, t->nlev == 1 ? "" : "s");
	const char *s;
	size_t len;
	topic_level(t, 0, &s, &len);
	cand_id_set(c, ID_SITE, s, len);
	topic_level(t, 1, &s, &len);
	cand_id_set(c, ID_DEVICE, s, len);
	topic_level(t, -1, &s, &len);
	cand_id_set(c, ID_METRIC, s, len);
	/* Level 2 is the sensor, or (three levels) the metric standing in for it. */
	topic_level(t, 2, &s, &len);
	cand_id_set(c, ID_SENSOR, s, len);
	return 0;
}

/* site/device/... for payloads that name their own sensor. */
static int site_device_from_topic(const struct topic *t, struct cand *c, struct verdict *v)
{
	const char *s;
	size_t len;
	if (t->nlev < 2)
		return verdict_set(v, CLEANER_TOPIC_UNMAPPED,
		                   "topic: expected site/device/..., got 1 level");
	topic_level(t, 0, &s, &len);
	cand_id_set(c, ID_SITE, s, len);
	topic_level(t, 1, &s, &len);
	cand_id_set(c, ID_DEVICE, s, len);
	return 0;
}

static int need_object(const json_t *elem, const char *format, struct verdict *v)
{
	if (json_is_object(elem))
		return 0;
	char snip[64];
	return verdict_set(v, CLEANER_FORMAT_UNKNOWN, "payload: %s format needs an object, got %s",
	                   format, text_json_snippet(elem, snip, sizeof(snip)));
}

static void unit_from_json(struct cand *c, const json_t *j)
{
	if (json_is_string(j)) {
		c->unit = json_string_value(j);
		c->unit_len = json_string_length(j);
	} else if (j && !json_is_null(j)) {
		/* Validation reports it: a unit that is not text is never guessed at. */
		c->unit_bad = j;
	}
}

static int extract_factory(const json_t *elem, struct cand *c, struct verdict *v)
{
	if (need_object(elem, "factory", v))
		return -1;
	c->tags_root = elem;
	const json_t *md = json_object_get(elem, "metadata");
	if (!json_is_object(md))
		return verdict_set(v, md ? CLEANER_ID_INVALID : CLEANER_ID_MISSING,
		                   md ? "metadata: not an object" : "metadata: missing");
	static const char *const keys[] = {"siteId", "deviceId", "sensorId"};
	for (int i = 0; i < 3; i++)
		if (cand_id_from_json(c, (enum cand_id)i, cand_take(c, md, keys[i]), v))
			return -1;
	unit_from_json(c, cand_take(c, md, "unit"));
	const json_t *metric = cand_take(c, elem, "metric");
	if (!metric)
		metric = cand_take(c, md, "metric");
	if (metric) {
		if (cand_id_from_json(c, ID_METRIC, metric, v))
			return -1;
	} else {
		const char *m = c->unit ? metric_from_unit(c->unit, c->unit_len) : "measurement";
		cand_id_set(c, ID_METRIC, m, strlen(m));
	}
	c->value = cand_take(c, elem, "measurement");
	/* ts_human repeats ts for people; it is the time only when ts is absent. */
	const json_t *ts = cand_take(c, elem, "ts");
	const json_t *human = cand_take(c, elem, "ts_human");
	c->ts = ts ? ts : human;
	const json_t *loc = json_object_get(elem, "location");
	if (loc && !json_is_null(loc)) {
		if (!json_is_object(loc))
			return verdict_set(v, CLEANER_LOCATION_INVALID, "location: not an object");
		c->lat = cand_take(c, loc, "latitude");
		if (!c->lat)
			c->lat = cand_take(c, loc, "lat");
		c->lon = cand_take(c, loc, "longitude");
		if (!c->lon)
			c->lon = cand_take(c, loc, "lon");
		if (!c->lat && !c->lon)
			return verdict_set(v, CLEANER_LOCATION_INVALID,
			                   "location: no latitude/longitude");
	}
	c->device_type = cand_take(c, md, "deviceType");
	if (!c->device_type)
		c->device_type = cand_take(c, elem, "deviceType");
	return 0;
}

static int extract_home(const json_t *elem, const struct topic *t, struct cand *c,
                        struct verdict *v)
{
	if (need_object(elem, "home", v) || ids_from_topic(t, c, v))
		return -1;
	c->tags_root = elem;
	c->value = cand_take(c, elem, "value");
	if (!c->value)
		c->value = cand_take(c, elem, "temperature");
	c->ts = cand_take(c, elem, "timestamp");
	if (!c->ts)
		c->ts = cand_take(c, elem, "ts");
	unit_from_json(c, cand_take(c, elem, "unit"));
	return 0;
}

static int extract_sensor_id(const json_t *elem, const struct topic *t, const char *value_key,
                             const char *ts_key, const char *metric, const char *format,
                             struct cand *c, struct verdict *v)
{
	if (need_object(elem, format, v) || site_device_from_topic(t, c, v))
		return -1;
	c->tags_root = elem;
	if (cand_id_from_json(c, ID_SENSOR, cand_take(c, elem, "sensor_id"), v))
		return -1;
	cand_id_set(c, ID_METRIC, metric, strlen(metric));
	c->value = cand_take(c, elem, value_key);
	c->ts = cand_take(c, elem, ts_key);
	unit_from_json(c, cand_take(c, elem, "unit"));
	return 0;
}

static int extract_bare(const json_t *elem, const struct topic *t, struct cand *c,
                        struct verdict *v)
{
	if (json_is_object(elem) || json_is_array(elem)) {
		char snip[64];
		return verdict_set(v, CLEANER_FORMAT_UNKNOWN,
		                   "payload: bare format needs a number, got %s",
		                   text_json_snippet(elem, snip, sizeof(snip)));
	}
	if (ids_from_topic(t, c, v))
		return -1;
	c->value = elem;
	return 0;
}

int format_extract(enum cleaner_format f, const json_t *elem, const struct topic *t, struct cand *c,
                   struct verdict *v)
{
	switch (f) {
	case CLEANER_FORMAT_FACTORY:
		return extract_factory(elem, c, v);
	case CLEANER_FORMAT_HOME:
		return extract_home(elem, t, c, v);
	case CLEANER_FORMAT_POWER:
		return extract_sensor_id(elem, t, "sensor_energy_value", "sensor_timestamp",
		                         "energy", "power", c, v);
	case CLEANER_FORMAT_TEMPERATURE:
		return extract_sensor_id(elem, t, "temperature", "timestamp", "temperature",
		                         "temperature", c, v);
	case CLEANER_FORMAT_BARE:
		return extract_bare(elem, t, c, v);
	default:
		break;
	}
	char snip[64];
	if (json_is_object(elem)) {
		/* Name a few keys: enough to tell which device sends it. */
		char keys[160];
		size_t o = 0, n = 0;
		const char *key;
		const json_t *val;
		keys[0] = 0;
		json_object_foreach((json_t *)elem, key, val)
		{
			(void)val;
			if (n++ == 4) {
				snprintf(keys + o, sizeof(keys) - o, ", ...");
				break;
			}
			text_snippet(key, strlen(key), snip, sizeof(snip));
			int w =
			    snprintf(keys + o, sizeof(keys) - o, "%s%s", n > 1 ? ", " : "", snip);
			if (w < 0 || (size_t)w >= sizeof(keys) - o)
				break;
			o += (size_t)w;
		}
		return verdict_set(v, CLEANER_FORMAT_UNKNOWN,
		                   "payload: no known format has the keys %s", n ? keys : "(none)");
	}
	return verdict_set(v, CLEANER_FORMAT_UNKNOWN, "payload: no known format is %s",
	                   text_json_snippet(elem, snip, sizeof(snip)));
}
