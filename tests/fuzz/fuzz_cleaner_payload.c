/* libFuzzer target: arbitrary bytes as an MQTT topic and payload through the cleaner.
 *
 * Input layout: byte 0 picks the cleaner (auto-detect, each forced format, or mapping rules),
 * byte 1 the topic length, then the topic bytes, then the payload. Besides crashes and leaks it
 * checks the cleaner's promises on every input: each Reading has a finite value and identifiers
 * that are safe MQTT topic levels, every reason is printable ASCII, and a Rejected record can be
 * built for every rejection. */
#include "clean_internal.h"
#include "cleaner.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NOW_MS 1762077600000LL

static const char rules[] = "[deep]\n"
                            "match = m/+/#\n"
                            "site = topic[1] | \"s\"\n"
                            "device = $.d | $.a.b[0][\"c d\"] | topic[-1]\n"
                            "sensor = $.s[-1] | \"0\"\n"
                            "metric = $.m | topic[2]\n"
                            "unit = $.u\n"
                            "value = $.v | $.a.b[1]\n"
                            "ts = $.t\n"
                            "lat = $.g[0]\n"
                            "lon = $.g[1]\n"
                            "device_type = $.k\n"
                            "[iso]\n"
                            "match = i/#\n"
                            "site = \"i\"\n"
                            "device = topic[1]\n"
                            "sensor = topic[2]\n"
                            "metric = \"temperature\"\n"
                            "value = $\n"
                            "ts = $.t\n"
                            "ts_format = iso8601\n"
                            "tags = none\n"
                            "[routed]\n"
                            "match = r/#\n"
                            "format = factory\n";

#define NCLEANERS (CLEANER_FORMAT_COUNT + 1)
static struct cleaner *cleaners[NCLEANERS];
static struct cleaner_result res;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	char err[512];
	for (int i = 0; i < NCLEANERS; i++) {
		struct cleaner_opts o;
		cleaner_opts_default(&o);
		/* Small limits so the fuzzer reaches them. */
		o.max_payload = 4096;
		o.max_batch = 64;
		if (i < CLEANER_FORMAT_COUNT)
			o.format = cleaner_format_name((enum cleaner_format)i);
		else
			o.mapping_text = rules;
		if (cleaner_new(&o, &cleaners[i], err, sizeof(err))) {
			fprintf(stderr, "fuzz_cleaner_payload: %s\n", err);
			abort();
		}
	}
	if (cleaner_result_init(&res))
		abort();
	return 0;
}

static void check_id(const json_t *r, const char *field)
{
	const json_t *s = json_object_get(r, field);
	if (!json_is_string(s) ||
	    text_ident_problem(json_string_value(s), json_string_length(s), CLEANER_ID_MAX, true)) {
		fprintf(stderr, "Reading.%s is not a safe identifier\n", field);
		abort();
	}
}

static void check_reading(const json_t *r)
{
	static const char *const ids[] = {"site", "device", "sensor", "metric"};
	for (size_t i = 0; i < sizeof(ids) / sizeof(*ids); i++)
		check_id(r, ids[i]);
	if (!isfinite(json_real_value(json_object_get(r, "value"))) ||
	    !json_is_integer(json_object_get(r, "ts")) ||
	    !json_is_string(json_object_get(r, "unit")) ||
	    !json_is_object(json_object_get(r, "tags")) || json_object_size(r) != 11) {
		fprintf(stderr, "Reading breaks its schema\n");
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	struct cleaner *c = cleaners[data[0] % NCLEANERS];
	size_t tlen = data[1] % 48;
	if (tlen > size - 2)
		tlen = size - 2;
	const char *topic = (const char *)data + 2;
	const char *payload = topic + tlen;
	size_t plen = size - 2 - tlen;

	/* Topic and payload as decoded records hold them: any bytes, NUL included. */
	json_t *raw = json_object();
	json_object_set_new(raw, "source", json_string("fuzz"));
	json_object_set_new(raw, "topic", json_stringn_nocheck(topic, tlen));
	json_object_set_new(raw, "payload", json_stringn_nocheck(payload, plen));
	json_object_set_new(raw, "qos", json_integer(1));
	json_object_set_new(raw, "retained", json_false());
	json_object_set_new(raw, "received_at", json_integer(NOW_MS));
	if (cleaner_process(c, raw, NOW_MS, &res))
		abort(); /* only out of memory, which the fuzzer's limits make an error */

	size_t i;
	json_t *r;
	json_array_foreach(res.readings, i, r)
	{
		check_reading(r);
	}
	if (json_array_size(res.readings) + res.rejected != res.elements)
		abort();
	if (res.code != CLEANER_OK) {
		for (const char *p = res.reason; *p; p++)
			if (*p < 0x20 || *p > 0x7E)
				abort();
		json_t *rej = cleaner_rejected_new(raw, NULL, res.code, res.reason);
		if (!rej)
			abort();
		json_decref(rej);
	} else if (res.reason[0] || res.rejected) {
		abort();
	}
	json_decref(raw);
	return 0;
}
