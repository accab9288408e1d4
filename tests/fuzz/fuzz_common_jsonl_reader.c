/* libFuzzer target: the stdin path of `--in -` — jsonl_reader splitting a stream into lines
 * under a length limit, then jsonl_parse on each line — with the stream's bytes chosen by the
 * fuzzer.
 *
 * Input layout: byte 0 sets the line limit (1..256), byte 1 the record type, the rest is the
 * stream. The reader must return exactly the input's lines (a trailing CR removed), report
 * each line over the limit once and go on with the next, and count lines exactly. A line
 * that does not parse must be refused with a reason fit for a log line: printable ASCII, so a
 * hostile producer cannot forge or split log lines through it. */
#include "jsonl.h"
#include "records.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_reason(const char *err)
{
	if (!err[0])
		abort();
	for (const char *p = err; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p > 0x7E) {
			fprintf(stderr, "unprintable byte 0x%02x in reason: %s\n",
			        (unsigned char)*p, err);
			abort();
		}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static int ready;
	char err[512];
	if (!ready) {
		if (records_init(err, sizeof(err)) < 0)
			abort();
		ready = 1;
	}
	if (size < 3)
		return 0;
	size_t max_len = (size_t)data[0] + 1;
	enum rec_type type = (enum rec_type)(data[1] % REC_TYPE_COUNT);
	const uint8_t *in = data + 2;
	size_t len = size - 2;
	FILE *f = fmemopen((void *)in, len, "r");
	if (!f)
		return 0;
	struct jsonl_reader r;
	jsonl_reader_init(&r, f, max_len);
	const uint8_t *seg = in, *end = in + len;
	long lines = 0;
	for (;;) {
		int rc = jsonl_reader_next(&r);
		if (rc == 0)
			break;
		if (rc == -2 || seg >= end)
			abort(); /* no read errors from memory; no line beyond the input */
		const uint8_t *nl = memchr(seg, '\n', (size_t)(end - seg));
		size_t seg_len = (size_t)((nl ? nl : end) - seg);
		lines++;
		if (r.lineno != lines)
			abort();
		if (seg_len > max_len) {
			if (rc != -1)
				abort();
		} else {
			size_t want = seg_len;
			if (want && seg[want - 1] == '\r')
				want--;
			if (rc != 1 || r.line.len != want || memcmp(r.line.data, seg, want) != 0 ||
			    r.line.data[want] != 0)
				abort();
			json_t *rec = NULL;
			if (jsonl_parse(records_schema(type), (const char *)r.line.data, r.line.len,
			                &rec, err, sizeof(err)) == 0)
				json_decref(rec);
			else
				check_reason(err);
		}
		seg = nl ? nl + 1 : end;
	}
	if (seg != end)
		abort(); /* every byte of the input belongs to a line that was returned */
	jsonl_reader_free(&r);
	fclose(f);
	return 0;
}
