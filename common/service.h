/* What every stream service shares: the standard flags of the command-line contract and the
 * start/stop sequence around them, so a service's main() only says what is its own.
 *
 *   static struct service_opts so;
 *   static struct opt table[] = { SERVICE_OPTS(&so, "iot.raw", "iot.clean", "cleaner"), ...own,
 *                                 {NULL} };
 *   config_parse(&spec, argc, argv);
 *   if (service_start(&so) < 0) return 1;          // records, metrics server, signals
 *   struct stream *s = service_stream(&so, REC_RAW_MESSAGE, &hooks);
 *   ... loop on stream_poll ...
 *   return service_stop(s);                         // drain, commit, free; exit status
 */
#ifndef IOTPIPE_SERVICE_H
#define IOTPIPE_SERVICE_H

#include "config.h"
#include "stream.h"

struct service_opts {
	const char *brokers;
	const char *in;
	const char *out;
	const char *group;
	const char *cluster;
	const char *dead_letter;
	long long metrics_port;
	long long checkpoint_ms;
	long long checkpoint_records;
};

#define SERVICE_OPTS(o, in_default, out_default, group_default)                                   \
	{"brokers", 'b', OPT_STRING, &(o)->brokers, NULL, "HOST:PORT,...",                         \
	 "Kafka bootstrap servers (without them, --in and --out are - or files)"},                \
		{"in", 'i', OPT_STRING, &(o)->in, in_default, "TOPIC|-",                           \
		 "input topic(s), comma-separated or ^regex; - reads JSON lines from stdin"},      \
		{"out", 'o', OPT_STRING, &(o)->out, out_default, "TOPIC|-",                        \
		 "output topic; - writes JSON lines to stdout"},                                    \
		{"group", 'g', OPT_STRING, &(o)->group, group_default, "ID", "consumer group"},    \
		{"cluster", 0, OPT_STRING, &(o)->cluster, "local", "NAME",                         \
		 "alias of this Kafka cluster in record origins"},                                 \
		{"dead-letter", 0, OPT_STRING, &(o)->dead_letter, "iot.deadletter", "TOPIC",       \
		 "topic for input records that cannot be decoded"},                                \
		{"metrics-port", 0, OPT_INT, &(o)->metrics_port, "0", "PORT",                      \
		 "serve /metrics, /healthz and /readyz on this port (0: off)", 0, 0, 65535},      \
		{"checkpoint-ms", 0, OPT_DURATION, &(o)->checkpoint_ms, "1s", NULL,                \
		 "how often outputs are confirmed and input offsets committed", 0, 1, 3600000},   \
		{"checkpoint-records", 0, OPT_INT, &(o)->checkpoint_records, "50000", "N",         \
		 "commit at least every N input records", 0, 1, 1e9}

/* Loads the record schemas, installs signal handlers and starts the metrics server.
 * Returns 0, or -1 after logging why. */
int service_start(const struct service_opts *o);

/* Opens the input stream described by the options; logs and returns NULL on failure. */
struct stream *service_stream(const struct service_opts *o, enum rec_type in_type,
			      const struct stream_hooks *hooks);
/* The same with the service's own consumer defaults (NULL-terminated key, value pairs, applied
 * before the user's -X; see stream_config.in_defaults). */
struct stream *service_stream_with(const struct service_opts *o, enum rec_type in_type,
				   const struct stream_hooks *hooks,
				   const char *const *in_defaults);

/* Opens an output on s, logging on failure. */
struct stream_out *service_output(struct stream *s, const char *spec, enum rec_type type);

/* Drains and closes the stream, stops metrics, frees the schemas and the configuration.
 * Returns the process exit status: 0 when everything was acknowledged and committed, else 1. */
int service_stop(struct stream *s);

#endif
