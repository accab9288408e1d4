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

static int same(const json_t *a, const json_t *b)
{
	if (json_typeof(a) != json_typeof(b))
		return 0;
	switch (json_typeof(a)) {
	case JSON_OBJECT: {
		if (json_object_size(a) != json_object_size(b))
			return 0;
		void *ia = json_object_iter((json_t *)a), *ib = json_object_iter((json_t *)b);
		for (; ia && ib;
		     ia = json_object_iter_next((json_t *)a, ia), ib = json_object_iter_next((json_t *)b, ib)) {
			size_t la = json_object_iter_key_len(ia), lb = json_object_iter_key_len(ib);
			if (la != lb ||
			    memcmp(json_object_iter_key(ia), json_object_iter_key(ib), la) != 0 ||
			    !same(json_object_iter_value(ia), json_object_iter_value(ib)))
				return 0;
		}
		return !ia && !ib;
	}
	case JSON_ARRAY:
		if (json_array_size(a) != json_array_size(b))
			return 0;
		for (size_t i = 0; i < json_array_size(a); i++)
			if (!same(json_array_get(a, i), json_array_get(b, i)))
				return 0;
		return 1;
	case JSON_STRING:
		return json_string_length(a) == json_string_length(b) &&
		       memcmp(json_string_value(a), json_string_value(b), json_string_length(a)) == 0;
	case JSON_INTEGER:
		return json_integer_value(a) == json_integer_value(b);
	case JSON_REAL: {
		double x = json_real_value(a), y = json_real_value(b);
		return memcmp(&x, &y, sizeof(x)) == 0;
	}
	default:
		return 1;
	}
}

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
	if (fast && !same(fast, ref)) {
		fprintf(stderr, "fast parser built a different tree\n");
		abort();
	}
	json_decref(fast);
	json_decref(ref);
	return 0;
}
