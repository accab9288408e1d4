/* Rejected records: the raw message as it came, plus who refused it and why. */
#include "clean_internal.h"

/* Copies raw[key] by reference, or a fallback when the raw message lacked it (only possible
 * for records built by hand: decoded records always have every field). */
static int copy(json_t *rej, const json_t *raw, const char *key, json_t *fallback)
{
	json_t *v = json_object_get(raw, key);
	if (v) {
		json_decref(fallback);
		return json_object_set_nocheck(rej, key, v);
	}
	return fallback ? json_object_set_new_nocheck(rej, key, fallback) : -1;
}

json_t *cleaner_rejected_new(const json_t *raw, const json_t *origin, enum cleaner_reason code,
                             const char *reason)
{
	const char *rc = cleaner_reason_code(code);
	json_t *rej = json_object();
	if (!rej || !rc)
		goto fail;
	int bad = 0;
	bad |= copy(rej, raw, "source", json_string(""));
	bad |= copy(rej, raw, "topic", json_string(""));
	bad |= copy(rej, raw, "payload", json_string(""));
	bad |= copy(rej, raw, "qos", json_integer(0));
	bad |= copy(rej, raw, "retained", json_false());
	bad |= copy(rej, raw, "received_at", json_integer(0));
	if (origin)
		bad |= json_object_set_nocheck(rej, "origin", (json_t *)origin);
	else
		bad |= json_object_set_new_nocheck(rej, "origin", json_null());
	bad |= json_object_set_new_nocheck(rej, "stage", json_string("cleaner"));
	/* Reasons are built from ASCII-only renderings; json_string checks anyway. */
	json_t *why = json_string(reason ? reason : "");
	bad |= why ? json_object_set_new_nocheck(rej, "reason", why) : -1;
	bad |= json_object_set_new_nocheck(rej, "reason_code", json_string(rc));
	if (bad)
		goto fail;
	return rej;
fail:
	json_decref(rej);
	return NULL;
}
