/* libFuzzer target: arbitrary text as a JSON line for every record type (the stdin reader of
 * `--in -`), and what parses must encode to Avro. */
#include "jsonl.h"
#include "records.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char err[512];
	if (!ready) {
		if (records_init(err, sizeof(err)) < 0)
			abort();
		ready = 1;
	}
	for (int t = 0; t < REC_TYPE_COUNT; t++) {
		json_t *rec = NULL;
		if (jsonl_parse(records_schema(t), (const char *)data, size, &rec, err, sizeof(err)) ==
		    0) {
			struct buf b = {0};
			if (records_encode(t, rec, &b, err, sizeof(err)) != 0)
				abort(); /* a parsed line is a valid record */
			buf_free(&b);
			json_decref(rec);
		}
	}
	return 0;
}
