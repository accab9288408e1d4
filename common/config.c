/* Table-driven configuration: getopt_long + IOTPIPE_* environment + defaults + --help.
 * Everything a service needs to know about an option lives in one struct opt, so the help text
 * and the accepted environment variables can never drift from what the parser does. */
#include "config.h"

#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <librdkafka/rdkafka.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef IOTPIPE_VERSION
#define IOTPIPE_VERSION "0.0.0"
#endif

static const char *cfg_prog = "iotpipe";
static struct strlist cfg_kafka_props;
/* Every string config allocated (secrets, list arrays, -X file lines), freed by config_free. */
static void **cfg_owned;
static size_t cfg_owned_len;

static void *own(void *p)
{
	if (!p)
		return NULL;
	void **n = realloc(cfg_owned, (cfg_owned_len + 1) * sizeof(*n));
	if (!n) {
		free(p);
		return NULL;
	}
	cfg_owned = n;
	cfg_owned[cfg_owned_len++] = p;
	return p;
}

void config_die(const char *fmt, ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", cfg_prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '%s --help' for more information.\n", cfg_prog);
	config_free();
	exit(2);
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"1", "true", "yes", "on"};
	static const char *const no[] = {"0", "false", "no", "off", ""};
	for (size_t i = 0; i < sizeof(yes) / sizeof(*yes); i++)
		if (strcasecmp(s, yes[i]) == 0)
			return *out = true, 0;
	for (size_t i = 0; i < sizeof(no) / sizeof(*no); i++)
		if (strcasecmp(s, no[i]) == 0)
			return *out = false, 0;
	return -1;
}

/* Parses a non-negative number followed by a unit from the table; rejects overflow and junk. */
static int parse_scaled(const char *s, const char *const *units, const double *scale, size_t n,
			double default_scale, long long *out)
{
	if (!s || !*s)
		return -1;
	errno = 0;
	char *end;
	double v = strtod(s, &end);
	if (errno || end == s || !isfinite(v) || v < 0 || !isdigit((unsigned char)*s))
		return -1;
	double mul = default_scale;
	if (*end) {
		size_t i;
		for (i = 0; i < n; i++)
			if (strcmp(end, units[i]) == 0)
				break;
		if (i == n)
			return -1;
		mul = scale[i];
	}
	double r = v * mul;
	if (r > (double)LLONG_MAX / 2)
		return -1;
	*out = (long long)llround(r);
	return 0;
}

int config_parse_duration_ms(const char *s, long long *out)
{
	static const char *const u[] = {"ms", "s", "m", "min", "h", "d"};
	static const double k[] = {1, 1e3, 60e3, 60e3, 3600e3, 86400e3};
	return parse_scaled(s, u, k, 6, 1e3, out);
}

int config_parse_size(const char *s, long long *out)
{
	static const char *const u[] = {"b", "k", "K", "KiB", "kB", "M", "MiB", "MB", "G", "GiB", "GB"};
	static const double k[] = {1,	    1024.0,	1024.0,	    1024.0,	1024.0,	    1048576.0,
				   1048576.0, 1048576.0, 1073741824.0, 1073741824.0, 1073741824.0};
	return parse_scaled(s, u, k, 11, 1, out);
}

char *config_read_file(const char *path, size_t max_bytes, bool trim)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return NULL;
	char *data = NULL;
	size_t len = 0, cap = 0;
	for (;;) {
		if (len + 4096 + 1 > cap) {
			cap = cap ? cap * 2 : 8192;
			char *n = realloc(data, cap);
			if (!n)
				goto fail;
			data = n;
		}
		size_t r = fread(data + len, 1, cap - len - 1, f);
		len += r;
		if (len > max_bytes) {
			errno = EFBIG;
			goto fail;
		}
		if (r == 0) {
			if (ferror(f))
				goto fail;
			break;
		}
	}
	fclose(f);
	if (!data && !(data = malloc(1)))
		return NULL;
	data[len] = 0;
	if (trim && len > 0 && data[len - 1] == '\n') {
		data[--len] = 0;
		if (len > 0 && data[len - 1] == '\r')
			data[--len] = 0;
	}
	return data;
fail: {
	int e = errno;
	free(data);
	fclose(f);
	errno = e ? e : EIO;
	return NULL;
}
}

static void env_name(const char *name, const char *suffix, char *out, size_t n)
{
	size_t j = (size_t)snprintf(out, n, "IOTPIPE_");
	for (const char *p = name; *p && j + 1 < n; p++)
		out[j++] = *p == '-' ? '_' : (char)toupper((unsigned char)*p);
	out[j] = 0;
	if (suffix)
		strncat(out, suffix, n - strlen(out) - 1);
}

static int list_push(struct strlist *l, const char *s)
{
	const char **n = realloc(l->items, (l->len + 1) * sizeof(*n));
	if (!n)
		return -1;
	if (!l->items)
		own(n);
	else
		for (size_t i = 0; i < cfg_owned_len; i++)
			if (cfg_owned[i] == (void *)l->items)
				cfg_owned[i] = n;
	l->items = n;
	l->items[l->len++] = s;
	return 0;
}

static void add_kafka_prop(const char *kv, const char *where)
{
	const char *eq = strchr(kv, '=');
	if (!eq || eq == kv)
		config_die("%s: expected prop=value, got '%s'", where, kv);
	if (list_push(&cfg_kafka_props, kv) < 0)
		config_die("out of memory");
}

static void load_kafka_config(const char *path)
{
	char *text = own(config_read_file(path, 1 << 20, false));
	if (!text)
		config_die("--kafka-config %s: %s", path, strerror(errno));
	int lineno = 0;
	for (char *line = text, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		lineno++;
		size_t l = strlen(line);
		while (l && isspace((unsigned char)line[l - 1]))
			line[--l] = 0;
		while (isspace((unsigned char)*line))
			line++;
		if (!*line || *line == '#')
			continue;
		/* The line is not echoed: this file holds secrets, and "sasl.password: x" (Java
		 * properties syntax) would otherwise end up in the log. */
		char *eq = strchr(line, '=');
		if (!eq || eq == line)
			config_die("--kafka-config %s:%d: expected PROP=VALUE", path, lineno);
		/* "key = value", as Java properties files often have it, means key=value. */
		char *key_end = eq, *value = eq + 1;
		while (key_end > line && isspace((unsigned char)key_end[-1]))
			key_end--;
		while (isspace((unsigned char)*value))
			value++;
		if (key_end == line)
			config_die("--kafka-config %s:%d: expected PROP=VALUE", path, lineno);
		*key_end = '=';
		memmove(key_end + 1, value, strlen(value) + 1);
		add_kafka_prop(line, path);
	}
}

/* Checks every Kafka property with librdkafka itself, so a misspelt name or a value it refuses is
 * a configuration error (exit 2) before anything starts, rather than a runtime failure of the
 * first client. A relay's "source."/"target." prefix is not part of the name. */
static void kafka_props_check(void)
{
	static const char *const prefixes[] = {"source.", "target."};
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	if (!conf)
		config_die("out of memory");
	for (size_t i = 0; i < cfg_kafka_props.len; i++) {
		const char *key = cfg_kafka_props.items[i];
		for (size_t k = 0; k < sizeof(prefixes) / sizeof(*prefixes); k++)
			if (strncmp(key, prefixes[k], strlen(prefixes[k])) == 0)
				key += strlen(prefixes[k]);
		const char *eq = strchr(key, '=');
		char name[256], why[512];
		snprintf(name, sizeof(name), "%.*s", eq ? (int)(eq - key) : 0, key);
		if (!eq ||
		    rd_kafka_conf_set(conf, name, eq + 1, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
			rd_kafka_conf_destroy(conf);
			config_die("Kafka property %s: %s", name, eq ? why : "expected prop=value");
		}
	}
	rd_kafka_conf_destroy(conf);
}

/* Stores one textual value into the option's destination, or dies with the reason. */
static void set_value(const struct opt *o, const char *v, const char *origin)
{
	long long ll;
	double d;
	char *end;
	switch (o->type) {
	case OPT_FLAG:
		if (config_parse_bool(v, (bool *)o->dest) < 0)
			config_die("%s: '%s' is not a boolean (use true or false)", origin, v);
		return;
	case OPT_STRING:
		*(const char **)o->dest = v;
		return;
	case OPT_LIST: {
		struct strlist *l = o->dest;
		if (strchr(origin, '$') || strncmp(origin, "IOTPIPE_", 8) == 0 ||
		    strncmp(origin, "default", 7) == 0) {
			/* From the environment or a default: comma-separated. */
			char *copy = own(strdup(v));
			if (!copy)
				config_die("out of memory");
			for (char *save = NULL, *tok = strtok_r(copy, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save))
				if (*tok && list_push(l, tok) < 0)
					config_die("out of memory");
		} else if (list_push(l, v) < 0) {
			config_die("out of memory");
		}
		return;
	}
	case OPT_INT:
		errno = 0;
		ll = strtoll(v, &end, 10);
		if (errno || end == v || *end)
			config_die("%s: '%s' is not a whole number", origin, v);
		d = (double)ll;
		if (o->min < o->max && (d < o->min || d > o->max))
			config_die("%s: %lld is out of range [%g, %g]", origin, ll, o->min, o->max);
		*(long long *)o->dest = ll;
		return;
	case OPT_DOUBLE:
		errno = 0;
		d = strtod(v, &end);
		if (errno || end == v || *end || !isfinite(d))
			config_die("%s: '%s' is not a finite number", origin, v);
		if (o->min < o->max && (d < o->min || d > o->max))
			config_die("%s: %g is out of range [%g, %g]", origin, d, o->min, o->max);
		*(double *)o->dest = d;
		return;
	case OPT_DURATION: {
		/* A flag named *-ms promises milliseconds: a bare number there is ms, not seconds. */
		size_t nl = strlen(o->name);
		char *end_ms;
		errno = 0;
		long long bare = strtoll(v, &end_ms, 10);
		if (nl > 3 && strcmp(o->name + nl - 3, "-ms") == 0 && end_ms != v && !*end_ms &&
		    !errno && bare >= 0) {
			ll = bare;
		} else if (config_parse_duration_ms(v, &ll) < 0)
			config_die("%s: '%s' is not a duration (e.g. 500ms, 10s, 5m, 2h, 1d)", origin,
				   v);
		if (o->min < o->max && ((double)ll < o->min || (double)ll > o->max))
			config_die("%s: %s is out of range [%gms, %gms]", origin, v, o->min, o->max);
		*(long long *)o->dest = ll;
		return;
	}
	case OPT_SIZE:
		if (config_parse_size(v, &ll) < 0)
			config_die("%s: '%s' is not a size (e.g. 4096, 64k, 32M, 1G)", origin, v);
		if (o->min < o->max && ((double)ll < o->min || (double)ll > o->max))
			config_die("%s: %s is out of range [%g, %g] bytes", origin, v, o->min, o->max);
		*(long long *)o->dest = ll;
		return;
	}
}

static const char *type_metavar(const struct opt *o)
{
	if (o->metavar)
		return o->metavar;
	switch (o->type) {
	case OPT_INT:
		return "N";
	case OPT_DOUBLE:
		return "X";
	case OPT_DURATION:
		return "DURATION";
	case OPT_SIZE:
		return "SIZE";
	default:
		return "VALUE";
	}
}

static void print_help(const struct config_spec *spec)
{
	printf("Usage: %s [OPTIONS]\n%s\n\nOptions:\n", spec->prog, spec->summary);
	char left[128], env[128];
	for (const struct opt *o = spec->opts; o->name; o++) {
		const char *mv = o->type == OPT_FLAG ? "" : type_metavar(o);
		if (o->flags & OPT_SECRET)
			snprintf(left, sizeof(left), "    --%s-file FILE", o->name);
		else if (o->short_name)
			snprintf(left, sizeof(left), "-%c, --%s%s%s", o->short_name, o->name,
				 *mv ? " " : "", mv);
		else
			snprintf(left, sizeof(left), "    --%s%s%s", o->name, *mv ? " " : "", mv);
		env_name(o->name, NULL, env, sizeof(env));
		printf("  %-34s %s", left, o->help);
		if (o->def && !(o->flags & OPT_SECRET))
			printf(" (default: %s)", o->def);
		if (o->flags & OPT_REQUIRED)
			printf(" (required)");
		if (o->flags & OPT_SECRET)
			printf("\n  %-34s   secret: from $%s or $%s_FILE, never from argv", "", env, env);
		else
			printf(" [$%s]", env);
		putchar('\n');
	}
	printf("  %-34s %s\n", "-X, --property PROP=VALUE",
	       "librdkafka property, repeatable; source./target. prefixes pick a cluster");
	printf("  %-34s %s [$IOTPIPE_KAFKA_CONFIG]\n", "    --kafka-config FILE",
	       "librdkafka properties file (PROP=VALUE lines), for secrets");
	printf("  %-34s %s (default: info) [$IOTPIPE_LOG_LEVEL]\n", "    --log-level LEVEL",
	       "error, warn, info or debug");
	printf("  %-34s %s\n", "-h, --help", "show this help and exit");
	printf("  %-34s %s\n", "-V, --version", "show the version and exit");
	printf("\nDurations: 250ms, 10s, 5m, 2h, 1d (a bare number is seconds, or milliseconds for "
	       "flags named *-ms). "
	       "Sizes: 4096, 64k, 32M, 1G.\n"
	       "Exit status: 0 clean shutdown, 1 runtime failure, 2 usage or configuration error.\n");
	if (spec->details)
		printf("\n%s\n", spec->details);
}

enum { LONG_LOG_LEVEL = 1000, LONG_KAFKA_CONFIG, LONG_BASE };

void config_parse(const struct config_spec *spec, int argc, char **argv)
{
	cfg_prog = spec->prog;
	size_t n = 0;
	while (spec->opts[n].name)
		n++;
	struct option *lo = calloc(n + 6, sizeof(*lo));
	bool *seen = calloc(n + 1, sizeof(*seen));
	char *shorts = malloc(3 * n + 16);
	char (*names)[96] = calloc(n + 1, sizeof(*names));
	if (!lo || !seen || !shorts || !names)
		config_die("out of memory");
	size_t k = 0, s = 0;
	shorts[s++] = ':';
	for (size_t i = 0; i < n; i++) {
		const struct opt *o = &spec->opts[i];
		if (o->flags & OPT_SECRET)
			snprintf(names[i], sizeof(names[i]), "%s-file", o->name);
		else
			snprintf(names[i], sizeof(names[i]), "%s", o->name);
		lo[k++] = (struct option){names[i], o->type == OPT_FLAG ? no_argument : required_argument,
					  NULL, (int)(LONG_BASE + i)};
		if (o->short_name && !(o->flags & OPT_SECRET)) {
			shorts[s++] = (char)o->short_name;
			if (o->type != OPT_FLAG)
				shorts[s++] = ':';
		}
	}
	lo[k++] = (struct option){"help", no_argument, NULL, 'h'};
	lo[k++] = (struct option){"version", no_argument, NULL, 'V'};
	lo[k++] = (struct option){"log-level", required_argument, NULL, LONG_LOG_LEVEL};
	lo[k++] = (struct option){"property", required_argument, NULL, 'X'};
	lo[k++] = (struct option){"kafka-config", required_argument, NULL, LONG_KAFKA_CONFIG};
	memcpy(shorts + s, "hVX:", 5);

	const char *log_level = getenv("IOTPIPE_LOG_LEVEL");
	const char *kafka_config = getenv("IOTPIPE_KAFKA_CONFIG");
	struct strlist cli_props = {0};
	char origin[160];
	int c;
	opterr = 0;
	optind = 1;
	/* First pass records what argv sets; environment and defaults fill the rest afterwards. */
	while ((c = getopt_long(argc, argv, shorts, lo, NULL)) != -1) {
		if (c == 'h') {
			print_help(spec);
			goto exit_ok;
		} else if (c == 'V') {
			printf("%s %s\n", spec->prog, IOTPIPE_VERSION);
			goto exit_ok;
		} else if (c == LONG_LOG_LEVEL) {
			log_level = optarg;
		} else if (c == LONG_KAFKA_CONFIG) {
			kafka_config = optarg;
		} else if (c == 'X') {
			if (list_push(&cli_props, optarg) < 0)
				config_die("out of memory");
		} else if (c == ':') {
			config_die("option '%s' needs a value", argv[optind - 1]);
		} else if (c == '?') {
			config_die("unknown option '%s'", argv[optind - 1]);
		} else {
			size_t i = 0;
			if (c >= LONG_BASE)
				i = (size_t)(c - LONG_BASE);
			else
				while (i < n && spec->opts[i].short_name != c)
					i++;
			const struct opt *o = &spec->opts[i];
			snprintf(origin, sizeof(origin), "--%s", names[i]);
			if (o->flags & OPT_SECRET) {
				char *v = own(config_read_file(optarg, 1 << 16, true));
				if (!v)
					config_die("--%s %s: %s", names[i], optarg, strerror(errno));
				set_value(o, v, origin);
			} else {
				set_value(o, o->type == OPT_FLAG ? "true" : optarg, origin);
			}
			seen[i] = true;
		}
	}
	if (optind < argc)
		config_die("unexpected argument '%s'", argv[optind]);

	for (size_t i = 0; i < n; i++) {
		const struct opt *o = &spec->opts[i];
		if (seen[i])
			continue;
		char env[128], envfile[140];
		env_name(o->name, NULL, env, sizeof(env));
		env_name(o->name, "_FILE", envfile, sizeof(envfile));
		const char *v = getenv(env);
		if (v) {
			set_value(o, v, env);
		} else if ((o->flags & OPT_SECRET) && (v = getenv(envfile))) {
			char *text = own(config_read_file(v, 1 << 16, true));
			if (!text)
				config_die("$%s %s: %s", envfile, v, strerror(errno));
			set_value(o, text, envfile);
		} else if (o->def) {
			snprintf(origin, sizeof(origin), "default of --%s", o->name);
			set_value(o, o->def, origin);
		} else if (o->flags & OPT_REQUIRED) {
			if (o->flags & OPT_SECRET)
				config_die("--%s-file or $%s is required", o->name, env);
			config_die("--%s is required", o->name);
		}
	}

	if (log_level) {
		int lv = log_level_parse(log_level);
		if (lv < 0)
			config_die("--log-level: '%s' is not one of error, warn, info, debug",
				   log_level);
		log_init(spec->prog, (enum log_level)lv);
	} else {
		log_init(spec->prog, LOG_INFO);
	}
	if (kafka_config)
		load_kafka_config(kafka_config);
	const char *envprops = getenv("IOTPIPE_KAFKA_PROPS");
	if (envprops && !cli_props.len) {
		/* Environment form of -X: PROP=VALUE pairs separated by ';' or newlines. */
		char *copy = own(strdup(envprops));
		if (!copy)
			config_die("out of memory");
		for (char *save = NULL, *tok = strtok_r(copy, ";\n", &save); tok;
		     tok = strtok_r(NULL, ";\n", &save))
			if (*tok)
				add_kafka_prop(tok, "$IOTPIPE_KAFKA_PROPS");
	}
	for (size_t i = 0; i < cli_props.len; i++)
		add_kafka_prop(cli_props.items[i], "-X");
	kafka_props_check();
	free(lo);
	free(seen);
	free(shorts);
	free(names);
	return;
exit_ok:
	free(lo);
	free(seen);
	free(shorts);
	free(names);
	config_free();
	exit(0);
}

const struct strlist *config_kafka_props(void)
{
	return &cfg_kafka_props;
}

void config_free(void)
{
	for (size_t i = 0; i < cfg_owned_len; i++)
		free(cfg_owned[i]);
	free(cfg_owned);
	cfg_owned = NULL;
	cfg_owned_len = 0;
	cfg_kafka_props = (struct strlist){0};
}
