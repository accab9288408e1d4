/* libFuzzer target: the cleaner's mapping file, through cleaner_new as the service loads it.
 *
 * Input layout: the mapping text up to the first NUL byte; after it, "topic\x01payload" for one
 * message to clean with the rules when they parse. A refused file must give a reason naming a
 * line; accepted rules must only ever produce Readings with safe identifiers and rejections
 * whose reasons can be written (UTF-8, no control characters), however the rules and the
 * message were written. */
#include "clean_internal.h"
#include "cleaner.h"
#include "text.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW_MS 1762077600000LL

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_result(const struct cleaner_result *res)
{
	static const char *const ids[] = {"site", "device", "sensor", "metric"};
	size_t i;
	json_t *r;
	json_array_foreach(res->readings, i, r)
	{
		for (size_t k = 0; k < sizeof(ids) / sizeof(*ids); k++) {
			const json_t *s = json_object_get(r, ids[k]);
			if (!json_is_string(s) ||
			    text_ident_problem(json_string_value(s), json_string_length(s),
			                       CLEANER_ID_MAX, true)) {
				fprintf(stderr, "Reading.%s is not a safe identifier\n", ids[k]);
				abort();
			}
		}
		if (!isfinite(json_real_value(json_object_get(r, "value"))))
			abort();
	}
	if (json_array_size(res->readings) + res->rejected != res->elements)
		abort();
	/* Reasons quote payload bytes in ASCII, but rule names and paths as the file spells
	 * them: the whole must still be UTF-8 without control characters. */
	if (!utf8_valid(res->reason, strlen(res->reason)))
		abort();
	for (const char *p = res->reason; *p; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7F)
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct cleaner_result res;
	static int ready;
	if (!ready) {
		if (cleaner_result_init(&res))
			abort();
		ready = 1;
	}
	const uint8_t *nul = memchr(data, 0, size);
	size_t tlen = nul ? (size_t)(nul - data) : size;
	char *text = malloc(tlen + 1);
	if (!text)
		return 0;
	memcpy(text, data, tlen);
	text[tlen] = 0;

	struct cleaner_opts o;
	cleaner_opts_default(&o);
	o.max_payload = 4096;
	o.max_batch = 16;
	o.mapping_text = text;
	struct cleaner *c = NULL;
	char err[1024];
	err[0] = 0;
	if (cleaner_new(&o, &c, err, sizeof(err))) {
		free(text);
		if (!err[0])
			abort(); /* a refusal must give its reason */
		return 0;
	}
	free(text); /* the cleaner keeps what it needs */

	if (nul) {
		const char *msg = (const char *)nul + 1, *end = (const char *)data + size;
		const char *sep = memchr(msg, '\x01', (size_t)(end - msg));
		const char *payload = sep ? sep + 1 : end;
		json_t *raw = json_object();
		json_object_set_new(raw, "source", json_string("fuzz"));
		json_object_set_new(raw, "topic",
		                    json_stringn_nocheck(msg, (size_t)((sep ? sep : end) - msg)));
		json_object_set_new(raw, "payload",
		                    json_stringn_nocheck(payload, (size_t)(end - payload)));
		json_object_set_new(raw, "qos", json_integer(1));
		json_object_set_new(raw, "retained", json_false());
		json_object_set_new(raw, "received_at", json_integer(NOW_MS));
		if (cleaner_process(c, raw, NOW_MS, &res))
			abort();
		check_result(&res);
		json_decref(raw);
	}
	cleaner_free(c);
	return 0;
}
