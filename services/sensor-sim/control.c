/* Heat-pump command parsing. Input comes from the broker, so anything goes: every shape other
 * than the documented one is refused with a reason, never trusted. */
#include "control.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const char suffix[] = "/heatpump/set";

int control_parse(const char *topic, size_t topic_len, const void *payload, size_t len,
                  struct control_cmd *out, char *err, size_t errlen)
{
	size_t sl = sizeof(suffix) - 1;
	const char *slash = topic_len > sl ? memchr(topic, '/', topic_len - sl) : NULL;
	if (!slash || memcmp(topic + topic_len - sl, suffix, sl) != 0) {
		snprintf(err, errlen, "topic is not {site}/{device}/heatpump/set");
		return -1;
	}
	out->site = topic;
	out->site_len = (size_t)(slash - topic);
	out->device = slash + 1;
	out->device_len = topic_len - sl - out->site_len - 1;
	if (!out->site_len || !out->device_len || memchr(out->device, '/', out->device_len)) {
		snprintf(err, errlen, "topic is not {site}/{device}/heatpump/set");
		return -1;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(payload, len, 0, &jerr);
	if (!doc) {
		snprintf(err, errlen, "payload is not JSON: %s", jerr.text);
		return -1;
	}
	json_t *st = json_is_object(doc) ? json_object_get(doc, "status") : NULL;
	int ret = 0;
	if (json_is_string(st) && strcmp(json_string_value(st), "1") == 0)
		out->on = true;
	else if (json_is_string(st) && strcmp(json_string_value(st), "0") == 0)
		out->on = false;
	else if (json_is_integer(st) &&
	         (json_integer_value(st) == 0 || json_integer_value(st) == 1))
		out->on = json_integer_value(st) == 1;
	else if (json_is_boolean(st))
		out->on = json_is_true(st);
	else {
		snprintf(err, errlen, "payload has no \"status\" of \"1\" or \"0\"");
		ret = -1;
	}
	json_decref(doc);
	return ret;
}
