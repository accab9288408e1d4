/* Command-line and environment configuration, declared as a table.
 *
 * A service declares its options once (name, type, destination, default, help); from that table
 * come getopt_long parsing, the IOTPIPE_<NAME> environment fallback, validation and --help.
 * Precedence: command line > environment > default.
 *
 * Always present, without declaring them: -h/--help, -V/--version, --log-level LEVEL,
 * -X prop=value (librdkafka property, repeatable; "source."/"target." prefixes select a
 * cluster in the relay) and --kafka-config FILE (prop=value lines, for secrets such as
 * sasl.password that must not be on the command line).
 *
 * Secret options (OPT_SECRET) are never taken from argv: only from IOTPIPE_<NAME> or from the
 * file named by --<name>-file / IOTPIPE_<NAME>_FILE. */
#ifndef IOTPIPE_CONFIG_H
#define IOTPIPE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum opt_type {
	OPT_FLAG,     /* bool; no argument on the command line; env accepts 1/0/true/false/yes/no */
	OPT_STRING,   /* const char *; borrowed from argv/environ, or owned by config */
	OPT_INT,      /* long long */
	OPT_DOUBLE,   /* double */
	OPT_DURATION, /* long long milliseconds: 250ms, 10s, 5m, 2h, 7d; a bare number is seconds */
	OPT_SIZE,     /* long long bytes: 512, 64k, 32M, 1G (powers of 1024; KiB/MiB/GiB too) */
	OPT_LIST,     /* struct strlist; repeatable; env value is comma-separated */
};

enum opt_flags {
	OPT_REQUIRED = 1u << 0,
	OPT_SECRET = 1u << 1,
};

struct strlist {
	const char **items;
	size_t len;
};

struct opt {
	const char *name;    /* long name without dashes, e.g. "batch-ms"; env IOTPIPE_BATCH_MS */
	int short_name;      /* e.g. 'b', or 0 */
	enum opt_type type;
	void *dest;          /* bool *, const char **, long long *, double *, struct strlist * */
	const char *def;     /* default, parsed as if given; NULL for none */
	const char *metavar; /* shown in --help, e.g. "MS" */
	const char *help;    /* one line */
	unsigned flags;      /* enum opt_flags */
	double min, max;     /* numeric range, checked when min < max */
};

struct config_spec {
	const char *prog;    /* program name, e.g. "cleaner" */
	const char *summary; /* one line: what the program does */
	const char *details; /* text after the options (examples, notes); may be NULL */
	struct opt *opts;    /* terminated by an entry whose name is NULL */
};

/* Parses argv and the environment into the table's destinations. Prints help or the version and
 * exits 0 when asked; on any error prints "prog: reason" and exits 2. Sets the log level. */
void config_parse(const struct config_spec *spec, int argc, char **argv);

/* For checks a service makes after parsing: prints "prog: reason" to stderr and exits 2. */
void config_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* The -X / --kafka-config properties as "key=value" strings, in the order given (file first). */
const struct strlist *config_kafka_props(void);

/* Parsers shared with services that read durations and sizes from files. Return 0 or -1. */
int config_parse_duration_ms(const char *s, long long *out);
int config_parse_size(const char *s, long long *out);
int config_parse_bool(const char *s, bool *out);

/* Reads a whole small file (secrets, rules, mappings) into a NUL-terminated malloc'd string;
 * trims one trailing newline when trim is true. Returns NULL with errno set on failure. */
char *config_read_file(const char *path, size_t max_bytes, bool trim);

/* Releases what config_parse allocated (lists, secrets read from files). */
void config_free(void);

#endif
