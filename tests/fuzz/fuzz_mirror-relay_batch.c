/* libFuzzer target: arbitrary bytes as a Fetch v4 response body, a Produce v3 response body and
 * a records blob. Every walk must end cleanly: nothing read past the input, no crash. */
#include "kbatch.h"
#include "kwire.h"

#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_records(const uint8_t *p, size_t len)
{
	char err[256];
	size_t pos = 0;
	struct kbatch b;
	while (kbatch_next(p, len, &pos, &b, err, sizeof(err)) == 1) {
		(void)kbatch_crc_ok(&b);
		size_t rp = 0;
		struct krec r;
		while (krec_next(&b, &rp, &r, err, sizeof(err)) == 1) {
			size_t hp = 0;
			struct khdr h;
			while (khdr_next(&r, &hp, &h) == 1)
				;
		}
	}
}

static int on_fetch(void *ctx, const struct kwire_fetch_result *f)
{
	(void)ctx;
	for (int32_t i = 0; i < f->naborted; i++) {
		struct kwire_aborted a;
		kwire_aborted_at(f, i, &a);
	}
	if (f->records)
		walk_records(f->records, f->records_len);
	return 0;
}

static int on_produce(void *ctx, const struct kwire_produce_result *p)
{
	(void)ctx;
	(void)p;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char err[256];
	/* exact-size copies, so a read past the end is a fault whatever the caller's buffer */
	uint8_t *p = malloc(size ? size : 1);
	if (!p)
		return 0;
	for (size_t i = 0; i < size; i++)
		p[i] = data[i];
	(void)kwire_fetch_response(p, size, on_fetch, NULL, err, sizeof(err));
	(void)kwire_produce_response(p, size, on_produce, NULL, err, sizeof(err));
	walk_records(p, size);
	free(p);
	return 0;
}
