/* libFuzzer target: arbitrary bytes as a Kafka value through the record decoder, then (when it
 * decodes) through JSON lines and back. Every path must end in a clean error, never a crash. */
#include "jsonl.h"
#include "records.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	/* Half the inputs get a valid header so the fuzzer reaches the body decoder quickly. */
	uint8_t buf[4096];
	const uint8_t *in = data;
	size_t len = size;
	if (size > 1 && (data[0] & 1) && size - 1 + 10 <= sizeof(buf)) {
		enum rec_type t = (enum rec_type)(data[0] >> 1) % REC_TYPE_COUNT;
		uint64_t fp = avro_schema_fingerprint(records_schema(t));
		buf[0] = 0xC3;
		buf[1] = 0x01;
		for (int i = 0; i < 8; i++)
			buf[2 + i] = (uint8_t)(fp >> (8 * i));
		memcpy(buf + 10, data + 1, size - 1);
		in = buf;
		len = size - 1 + 10;
	}
	enum rec_type type;
	json_t *rec = NULL;
	if (records_decode(in, len, &type, &rec, err, sizeof(err)) == 0) {
		struct buf text = {0}, again = {0};
		if (jsonl_format(records_schema(type), rec, &text, err, sizeof(err)) == 0) {
			json_t *back = NULL;
			if (jsonl_parse(records_schema(type), (char *)text.data, text.len - 1, &back,
					err, sizeof(err)) != 0)
				fprintf(stderr, "reparse: %s\n%.*s", err, (int)text.len, (char *)text.data), abort(); /* what we write we must read */
			if (records_encode(type, back, &again, err, sizeof(err)) != 0)
				abort();
			json_decref(back);
		}
		buf_free(&text);
		buf_free(&again);
		json_decref(rec);
	}
	return 0;
}
