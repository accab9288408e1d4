/* Throughput and memory of the aggregator's windowing engine alone (no Kafka, no decoding).
 *
 * Simulates N series (sites x devices x sensors) each reporting once per second of event time,
 * slightly out of order (up to 2 s back) with 1% redelivered duplicates, through 1-minute
 * tumbling windows with a 5 s grace. Reports readings per CPU second and the peak RSS.
 * With --json, every reading is also built as a jansson object and read back with
 * agg_reading_from_json, as the service does after decoding a record.
 *
 * Build and run from the repository root with the commands in docs/aggregator.md
 * (compile this file with every services/aggregator source except main.c, -ljansson -lm). */
#include "engine.h"

#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

struct series_names {
	char site[32], device[32], sensor[32];
};

static uint64_t emitted_count;

static int count_emit(void *ctx, int32_t partition, json_t *agg, char *err, size_t errlen)
{
	(void)ctx, (void)partition, (void)agg, (void)err, (void)errlen;
	emitted_count++;
	return 0;
}

static double seconds(clockid_t clk)
{
	struct timespec ts;
	clock_gettime(clk, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static void set_str(struct agg_str *s, const char *text)
{
	s->s = text;
	s->len = strlen(text);
}

int main(int argc, char **argv)
{
	long series = 10000, secs = 600;
	int64_t window = 60000, grace = 5000;
	int use_json = 0;
	static const struct option opts[] = {
	    {"series", required_argument, NULL, 's'},
	    {"seconds", required_argument, NULL, 't'},
	    {"window-ms", required_argument, NULL, 'w'},
	    {"grace-ms", required_argument, NULL, 'g'},
	    {"json", no_argument, NULL, 'j'},
	    {NULL, 0, NULL, 0},
	};
	int c;
	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			series = atol(optarg);
			break;
		case 't':
			secs = atol(optarg);
			break;
		case 'w':
			window = atoll(optarg);
			break;
		case 'g':
			grace = atoll(optarg);
			break;
		case 'j':
			use_json = 1;
			break;
		default:
			fprintf(stderr,
			        "usage: %s [--series N] [--seconds T] [--window-ms MS] "
			        "[--grace-ms MS] [--json]\n",
			        argv[0]);
			return 2;
		}
	}
	if (series < 1 || secs < 1) {
		fprintf(stderr, "--series and --seconds must be positive\n");
		return 2;
	}

	/* 100 devices per site, 10 sensors per device: names built once, as a decoder's strings. */
	struct series_names *names = calloc((size_t)series, sizeof(*names));
	if (!names)
		return 1;
	for (long i = 0; i < series; i++) {
		snprintf(names[i].site, sizeof(names[i].site), "site-%ld", i / 1000);
		snprintf(names[i].device, sizeof(names[i].device), "dev-%ld", (i / 10) % 100);
		snprintf(names[i].sensor, sizeof(names[i].sensor), "s%ld", i % 10);
	}

	char err[512];
	struct agg_config cfg = {
	    .window = {.size_ms = window, .hop_ms = window},
	    .grace_ms = grace,
	    .group_by = AGG_BY_ALL,
	    .max_windows = 1000000,
	    .emit = count_emit,
	};
	struct agg_engine *e = agg_engine_new(&cfg, err, sizeof(err));
	if (!e) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}

	const int64_t base = 1729312500000; /* a minute boundary */
	int64_t offset = 0, prev_ts = base;
	long prev_series = 0;
	double prev_value = 0;
	double wall0 = seconds(CLOCK_MONOTONIC), cpu0 = seconds(CLOCK_PROCESS_CPUTIME_ID);
	struct agg_outcome out;
	struct agg_reading r;
	set_str(&r.key[AGG_METRIC], "temperature");
	set_str(&r.unit, "C");

	for (long t = 0; t < secs; t++) {
		for (long i = 0; i < series; i++) {
			long si = i;
			int64_t ts;
			double value;
			uint64_t x = rng();
			if (x % 100 == 0 && offset > 0) {
				/* A redelivered duplicate of the previous reading. */
				si = prev_series;
				ts = prev_ts;
				value = prev_value;
			} else {
				/* Up to 2 s out of order, within the 5 s grace. */
				ts = base + t * 1000 + (int64_t)(x >> 40) % 1000 -
				     ((x >> 20) % 10 == 0 ? 2000 : 0);
				value = 20.0 + (double)((x >> 8) % 1000) / 100.0;
			}
			set_str(&r.key[AGG_SITE], names[si].site);
			set_str(&r.key[AGG_DEVICE], names[si].device);
			set_str(&r.key[AGG_SENSOR], names[si].sensor);
			r.value = value;
			r.ts = ts;
			enum agg_status rc;
			if (use_json) {
				json_t *rec = json_pack(
				    "{s:s,s:s,s:s,s:s,s:s,s:f,s:I,s:I}", "site", names[si].site,
				    "device", names[si].device, "sensor", names[si].sensor,
				    "metric", "temperature", "unit", "C", "value", value, "ts",
				    (json_int_t)ts, "received_at", (json_int_t)ts);
				struct agg_reading jr;
				if (!rec || agg_reading_from_json(rec, &jr, err, sizeof(err)) < 0) {
					fprintf(stderr, "json: %s\n", err);
					return 1;
				}
				rc = agg_engine_add(e, 0, offset++, &jr, &out, err, sizeof(err));
				json_decref(rec);
			} else {
				rc = agg_engine_add(e, 0, offset++, &r, &out, err, sizeof(err));
			}
			if (rc != AGG_OK) {
				fprintf(stderr, "add: %s\n", err);
				return 1;
			}
			prev_series = si;
			prev_ts = ts;
			prev_value = value;
		}
	}
	if (agg_engine_close_all(e, err, sizeof(err)) != AGG_OK) {
		fprintf(stderr, "close: %s\n", err);
		return 1;
	}
	double wall = seconds(CLOCK_MONOTONIC) - wall0;
	double cpu = seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0;

	struct agg_counters cnt;
	struct rusage ru;
	agg_engine_counters(e, &cnt);
	getrusage(RUSAGE_SELF, &ru);
	printf("mode            %s\n", use_json ? "json objects + engine" : "engine");
	printf("series          %ld\n", series);
	printf("readings        %" PRId64 " (duplicates %" PRIu64 ", late %" PRIu64 ")\n", offset,
	       cnt.duplicates, cnt.late);
	printf("aggregates      %" PRIu64 "\n", emitted_count);
	printf("peak windows    %" PRIu64 "\n", cnt.peak_windows);
	printf("wall            %.3f s\n", wall);
	printf("cpu             %.3f s\n", cpu);
	printf("readings/s      %.0f (per CPU second)\n", (double)offset / cpu);
	printf("ns per reading  %.1f (CPU)\n", cpu * 1e9 / (double)offset);
	printf("peak RSS        %.1f MiB\n", (double)ru.ru_maxrss / 1024.0);
	agg_engine_free(e);
	free(names);
	return 0;
}
