/* libFuzzer target: the cleaner's fast payload parser against jansson on arbitrary bytes.
 *
 * payload_parse() may decline any input (the cleaner then asks jansson), but what it returns must
 * be exactly what json_loadb() with the cleaner's flags returns: the same types, integers,
 * doubles bit for bit, string bytes, and object members in the same order. It must never
 * accept an input jansson refuses. */
#include "clean_internal.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_t *fast = payload_parse((const char *)data, size);
	json_error_t jerr;
	json_t *ref = json_loadb((const char *)data, size,
	                         JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
	if (fast && !ref) {
		fprintf(stderr, "fast parser accepted what jansson refuses: %s\n", jerr.text);
		abort();
	}
	if (fast && !payload_tree_same(fast, ref)) {
		fprintf(stderr, "fast parser built a different tree\n");
		abort();
	}
	json_decref(fast);
	json_decref(ref);
	return 0;
}
