/* mirror-relay: copies selected topics from a source Kafka cluster (an edge site) to a target
 * cluster (the data centre). It runs next to the target and is just another consumer group to
 * the source, so nothing is installed at the edge.
 *
 *   mirror-relay -b edge:9092 -B central:9092 -t '^iot\.(clean|aggregates|events)$' \
 *                --source-alias factory1 --target-topic '{source}.{topic}'
 */
#include "batches.h"
#include "config.h"
#include "lifecycle.h"
#include "log.h"
#include "naming.h"
#include "relay.h"
#include "service.h"

#include <string.h>

struct relay_cli {
	const char *source;
	const char *target;
	const char *topics;
	const char *tmpl;
	const char *alias;
	const char *skip;
	const char *group;
	const char *path;
	bool no_create;
	long long replication;
	long long refresh_ms;
	long long lag_ms;
	long long metrics_port;
	long long checkpoint_ms;
	long long checkpoint_records;
};

static struct relay_cli cli;

static struct opt table[] = {
	{"source-brokers", 'b', OPT_STRING, &cli.source, NULL, "HOST:PORT,...",
	 "source (edge) cluster's bootstrap servers; -X source.PROP=V configures it", OPT_REQUIRED},
	{"target-brokers", 'B', OPT_STRING, &cli.target, NULL, "HOST:PORT,...",
	 "target (central) cluster's bootstrap servers; -X target.PROP=V configures it",
	 OPT_REQUIRED},
	{"topics", 't', OPT_STRING, &cli.topics, NULL, "TOPICS",
	 "source topics: comma-separated names and ^regexes (new matches are picked up)",
	 OPT_REQUIRED},
	{"target-topic", 'T', OPT_STRING, &cli.tmpl, "{topic}", "TEMPLATE",
	 "target topic name: {topic} is the source topic, {source} the source alias"},
	{"source-alias", 'a', OPT_STRING, &cli.alias, "local", "NAME",
	 "name of the source cluster in origin headers and in {source}"},
	{"skip-relayed", 0, OPT_STRING, &cli.skip, "auto", "auto|yes|no",
	 "do not relay records whose origin header names another cluster (loop prevention); "
	 "auto: when topics are renamed"},
	{"no-create-topics", 0, OPT_FLAG, &cli.no_create, NULL, NULL,
	 "never create missing target topics (they must exist, or the target auto-creates them)"},
	{"target-replication", 0, OPT_INT, &cli.replication, "-1", "N",
	 "replication factor of target topics the relay creates (-1: the target's default)", 0,
	 -1, 100},
	{"metadata-refresh", 0, OPT_DURATION, &cli.refresh_ms, "30s", NULL,
	 "how often target partition counts are read again", 0, 1000, 86400000},
	{"lag-interval", 0, OPT_DURATION, &cli.lag_ms, "5s", NULL,
	 "how often replication lag is measured (one ListOffsets round to the source)", 0, 100,
	 3600000},
	{"group", 'g', OPT_STRING, &cli.group, "mirror-relay", "ID",
	 "consumer group on the source cluster"},
	{"data-path", 0, OPT_STRING, &cli.path, "batches", "batches|client",
	 "batches: move record batches over the relay's own connections (plaintext clusters, "
	 "uncompressed or gzip records; otherwise it switches to client by itself); client: "
	 "every record through librdkafka's consumer and producer"},
	{"metrics-port", 0, OPT_INT, &cli.metrics_port, "0", "PORT",
	 "serve /metrics, /healthz and /readyz on this port (0: off)", 0, 0, 65535},
	{"checkpoint-ms", 0, OPT_DURATION, &cli.checkpoint_ms, "1s", NULL,
	 "how often the target's acknowledgements are awaited and source offsets committed", 0,
	 1, 3600000},
	{"checkpoint-records", 0, OPT_INT, &cli.checkpoint_records, "500000", "N",
	 "commit at least every N records", 0, 1, 1e9},
	{NULL},
};

static const char details[] =
	"Each record keeps its key, value, headers and timestamp. It goes to the same partition\n"
	"number when the target topic has it, else to the producer's partitioner (key hash).\n"
	"A record without an iotpipe-origin header gets one: ALIAS/TOPIC/PARTITION/OFFSET.\n"
	"Source offsets are committed only after the target acknowledged the records, so a crash\n"
	"or an outage repeats records (the origin header identifies them) and never loses one.\n"
	"Examples:\n"
	"  mirror-relay -b edge:9092 -B central:9092 -t '^iot\\.' -a factory1 -T '{source}.{topic}'\n"
	"  mirror-relay -b a:9092 -B b:9092 -t iot.clean -X target.security.protocol=SSL";

/* Client defaults of the relay, before the user's -X. Both queues are bounded so a target
 * outage holds a fixed amount of memory: the producer blocks the relay when its queue is full,
 * and the consumer stops fetching when its prefetch is. The prefetch limits are half of what
 * they were before the relay woke a stalled fetcher itself (relay_tick): the same rate with
 * about 25 MB less resident memory. */
static const char *const source_defaults[] = {
	"queued.min.messages", "40000",
	"queued.max.messages.kbytes", "8192",
	"fetch.max.bytes", "4194304",
	NULL};
static const char *const target_defaults[] = {
	/* A record waits at most this long for companions (the suite's default is 5 ms): at full
	 * speed batches fill anyway, at 10 000 records/s it takes about 4 ms off every record. */
	"linger.ms", "1",
	"queue.buffering.max.messages", "50000",
	"queue.buffering.max.kbytes", "32768",
	"statistics.interval.ms", "5000",
	NULL};

static void options_check(struct relay_opts *ro)
{
	char err[256];
	if (!naming_alias_valid(cli.alias))
		config_die("--source-alias '%s': use 1-%d characters of a-z A-Z 0-9 . _ -",
			   cli.alias, NAMING_ALIAS_MAX);
	if (naming_check(cli.tmpl, err, sizeof(err)) < 0)
		config_die("--target-topic '%s': %s", cli.tmpl, err);
	if (naming_uses_source(cli.tmpl) && strcmp(cli.alias, "local") == 0)
		config_die("--target-topic uses {source}: name the source cluster with "
			   "--source-alias (several sources would otherwise share 'local')");
	bool renames = naming_renames(cli.tmpl);
	if (strcmp(cli.skip, "auto") == 0)
		ro->skip_foreign = renames;
	else if (strcmp(cli.skip, "yes") == 0)
		ro->skip_foreign = true;
	else if (strcmp(cli.skip, "no") == 0)
		ro->skip_foreign = false;
	else
		config_die("--skip-relayed '%s': expected auto, yes or no", cli.skip);
	if (strcmp(cli.path, "batches") != 0 && strcmp(cli.path, "client") != 0)
		config_die("--data-path '%s': expected batches or client", cli.path);
	if (!renames && strcmp(cli.source, cli.target) == 0)
		config_die("source and target are the same cluster and topics keep their names: "
			   "every record would be relayed again forever");
	ro->alias = cli.alias;
	ro->tmpl = cli.tmpl;
	ro->create_topics = !cli.no_create;
	ro->replication = (int)cli.replication;
	ro->refresh_ms = cli.refresh_ms;
	ro->lag_interval_ms = cli.lag_ms;
}

/* Records taken from the consumer at a time: enough to spread the per-batch work thin, few
 * enough that delivery reports are served often. */
#define BATCH 1000

static struct stream_msg batch[BATCH];

int main(int argc, char **argv)
{
	const struct config_spec spec = {
		.prog = "mirror-relay",
		.summary = "Relay topics from a source Kafka cluster to a target cluster, "
			   "at least once, with origin headers.",
		.details = details,
		.opts = table,
	};
	config_parse(&spec, argc, argv);
	struct relay_opts ro = {0};
	options_check(&ro);
	struct service_opts so = {.metrics_port = cli.metrics_port};
	if (service_start(&so) < 0) {
		config_free();
		return 1;
	}
	char err[512];
	struct stream *s = NULL;
	struct relay *r = relay_new(&ro, err, sizeof(err));
	if (!r)
		goto fail;
	log_info("relaying %s from %s (as %s) to %s as %s%s", cli.topics, cli.source, cli.alias,
		 cli.target, cli.tmpl, ro.skip_foreign ? ", skipping relayed records" : "");
	if (strcmp(cli.path, "batches") == 0) {
		const struct batches_config bc = {
			.source = cli.source,
			.target = cli.target,
			.group = cli.group,
			.topics = cli.topics,
			.source_defaults = source_defaults,
			.target_defaults = target_defaults,
			.checkpoint_ms = cli.checkpoint_ms,
			.checkpoint_records = cli.checkpoint_records,
		};
		int status = batches_run(r, &bc);
		if (status != BATCHES_FALLBACK) {
			status |= service_stop(NULL);
			relay_free(r);
			return status;
		}
	}
	struct stream_hooks hooks = relay_hooks(r);
	struct stream_config cfg = {
		.brokers = cli.source,
		.group = cli.group,
		.in = cli.topics,
		.in_type = REC_UNKNOWN,
		.cluster = cli.alias,
		.checkpoint_ms = cli.checkpoint_ms,
		.checkpoint_records = cli.checkpoint_records,
		.raw_input = true,
		.out_brokers = cli.target,
		.in_prefix = "source.",
		.out_prefix = "target.",
		.in_defaults = source_defaults,
		.out_defaults = target_defaults,
		.on_delivery = relay_on_delivery,
		.delivery_ctx = r,
		.acked_positions = true,
	};
	s = stream_new(&cfg, &hooks, err, sizeof(err));
	if (!s || relay_attach(r, s, err, sizeof(err)) < 0)
		goto fail;

	while (lifecycle_running()) {
		int n = stream_poll_batch(s, batch, BATCH, relay_wait_ms(r));
		if (n == STREAM_END)
			break;
		int i = 0;
		while (i < n && relay_forward(r, &batch[i]) == 0)
			i++;
		relay_serve(r);
		if (i < n)
			break;
		relay_tick(r, n < BATCH);
	}

	relay_detach(r);
	int status = service_stop(s);
	relay_free(r);
	return status;
fail:
	log_error("%s", err);
	relay_detach(r);
	service_stop(s); /* the producer may still report deliveries to the relay */
	relay_free(r);
	return 1;
}
