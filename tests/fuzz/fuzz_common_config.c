/* libFuzzer target: the configuration parsers that take text from outside without exiting —
 * durations, sizes and booleans (flags, environment, mapping and rules files use them) — and
 * config_read_file, which reads secrets, rules, mappings and --kafka-config files.
 *
 * Input layout: byte 0 selects what to do; the rest is the text (a copy of exactly its length,
 * NUL-terminated at its first NUL, so reads past the end are caught) or the file's content.
 * Accepted durations and sizes must be non-negative and read back as the same value from their
 * canonical spelling; a file must read back byte for byte (minus one trimmed newline), or fail
 * with EFBIG exactly when it is over the limit. */
#include "config.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_scaled(int (*parse)(const char *, long long *), const char *s, const char *unit)
{
	long long v = -1, again = -1;
	if (parse(s, &v) != 0)
		return;
	if (v < 0) {
		fprintf(stderr, "'%s' parsed to a negative %lld\n", s, v);
		abort();
	}
	char canon[64];
	snprintf(canon, sizeof(canon), "%lld%s", v, unit);
	/* Values near the limit may round up past it when spelled out: only what fits in a
	 * double exactly must come back the same. */
	if (v <= (1LL << 53) && (parse(canon, &again) != 0 || again != v)) {
		fprintf(stderr, "'%s' parsed to %lld, but '%s' reads back as %lld\n", s, v, canon,
		        again);
		abort();
	}
}

static int memfd;

static void check_read_file(const uint8_t *data, size_t size, size_t max, bool trim)
{
	if (ftruncate(memfd, 0) != 0 || pwrite(memfd, data, size, 0) != (ssize_t)size)
		abort();
	char path[64];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", memfd);
	errno = 0;
	char *text = config_read_file(path, max, trim);
	if (!text) {
		if (errno != EFBIG || size <= max) {
			fprintf(stderr, "read of %zu bytes (max %zu) failed: %s\n", size, max,
			        strerror(errno));
			abort();
		}
		return;
	}
	size_t want = size;
	if (trim && want > 0 && data[want - 1] == '\n') {
		want--;
		if (want > 0 && data[want - 1] == '\r')
			want--;
	}
	if (size > max || memcmp(text, data, want) != 0 || text[want] != 0) {
		fprintf(stderr, "read of %zu bytes (max %zu, trim %d) came back different\n", size,
		        max, trim);
		abort();
	}
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!memfd && (memfd = memfd_create("fuzz_config", 0)) < 0)
		abort();
	if (size < 1)
		return 0;
	uint8_t op = data[0];
	data++, size--;
	if (op & 0x80) {
		/* The limit comes from the next byte, so the fuzzer reaches both sides of it. */
		size_t max = size ? (size_t)data[0] * 64 : 0;
		check_read_file(data, size, max, op & 1);
		return 0;
	}
	char *s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = 0;
	switch (op % 3) {
	case 0:
		check_scaled(config_parse_duration_ms, s, "ms");
		break;
	case 1:
		check_scaled(config_parse_size, s, "");
		break;
	default: {
		bool b = false, again = !b;
		if (config_parse_bool(s, &b) == 0 &&
		    (config_parse_bool(b ? "true" : "false", &again) != 0 || again != b))
			abort();
		break;
	}
	}
	free(s);
	return 0;
}
