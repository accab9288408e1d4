/* Rules file parser. Line-oriented on purpose: every problem is reported as "file:line: reason"
 * without a JSON parser's idea of where things are, and a payload template containing JSON needs
 * no quoting. A section's keys are collected first and turned into a rule when the section ends,
 * because some checks need several keys at once (topic vs low_topic, low <= high). */
#include "rules.h"

#include "config.h"
#include "glob.h"
#include "text.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RULES_MAX_BYTES (1 << 20)
#define RULE_NAME_MAX 128

enum key {
	K_METRIC,
	K_SITE,
	K_DEVICE,
	K_SENSOR,
	K_LOW,
	K_HIGH,
	K_TOPIC,
	K_LOW_TOPIC,
	K_HIGH_TOPIC,
	K_LOW_PAYLOAD,
	K_HIGH_PAYLOAD,
	K_PAYLOAD_FORMAT,
	K_QOS,
	K_RETAIN,
	K_THRESHOLD,
	K_HYSTERESIS,
	K_COUNT
};

static const char *const key_names[K_COUNT] = {
    "metric", "site",      "device",     "sensor",      "low",          "high",
    "topic",  "low_topic", "high_topic", "low_payload", "high_payload", "payload_format",
    "qos",    "retain",    "threshold",  "hysteresis",
};

/* A section being read: values point into the parser's private copy of the text. */
struct section {
	const char *name;
	int line;
	const char *val[K_COUNT];
	int vline[K_COUNT];
};

struct parser {
	const char *file;
	char *err;
	size_t errlen;
	struct ruleset *rs;
};

static int fail(const struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(const struct parser *p, int line, const char *fmt, ...)
{
	int n = line > 0 ? snprintf(p->err, p->errlen, "%s:%d: ", p->file, line)
	                 : snprintf(p->err, p->errlen, "%s: ", p->file);
	if (n < 0 || (size_t)n >= p->errlen)
		return -1;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err + n, p->errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -1;
}

const char *side_name(enum side s)
{
	return s == SIDE_LOW ? "low" : "high";
}

static void rule_clear(struct rule *r)
{
	free(r->name);
	free(r->metric);
	free(r->site);
	free(r->device);
	free(r->sensor);
	for (int s = 0; s < 2; s++) {
		tmpl_free(r->topic[s]);
		tmpl_free(r->payload[s]);
	}
	memset(r, 0, sizeof(*r));
}

void rules_free(struct ruleset *rs)
{
	if (!rs)
		return;
	for (size_t i = 0; i < rs->len; i++)
		rule_clear(&rs->rules[i]);
	free(rs->rules);
	free(rs);
}

const struct rule *rules_find(const struct ruleset *rs, const char *name)
{
	for (size_t i = 0; i < rs->len; i++)
		if (strcmp(rs->rules[i].name, name) == 0)
			return &rs->rules[i];
	return NULL;
}

static bool pattern_ok(const char *pattern, const char *s)
{
	return !pattern || glob_match(pattern, s);
}

bool rule_matches(const struct rule *r, const char *site, const char *device, const char *sensor,
                  const char *metric)
{
	return strcmp(r->metric, metric) == 0 && pattern_ok(r->site, site) &&
	       pattern_ok(r->device, device) && pattern_ok(r->sensor, sensor);
}

static bool same_opt(const char *a, const char *b)
{
	return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

bool rule_same_match(const struct rule *a, const struct rule *b)
{
	return strcmp(a->metric, b->metric) == 0 && same_opt(a->site, b->site) &&
	       same_opt(a->device, b->device) && same_opt(a->sensor, b->sensor);
}

static char *trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

static bool name_ok(const char *s)
{
	if (!*s || strlen(s) > RULE_NAME_MAX)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == '.'))
			return false;
	return true;
}

static int number_get(const struct parser *p, const struct section *sec, enum key k, double *out)
{
	const char *s = sec->val[k];
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || *end || errno == ERANGE || !isfinite(v))
		return fail(p, sec->vline[k], "%s: expected a finite number, got \"%s\"",
		            key_names[k], s);
	*out = v;
	return 0;
}

static int pattern_get(const struct parser *p, const struct section *sec, enum key k, char **out)
{
	const char *s = sec->val[k];
	if (!s || strcmp(s, "*") == 0)
		return 0; /* matches everything: no pattern to run */
	char why[128];
	if (!*s)
		return fail(p, sec->vline[k], "%s: empty pattern (use * for any)", key_names[k]);
	if (glob_check(s, why, sizeof(why)) < 0)
		return fail(p, sec->vline[k], "%s: %s", key_names[k], why);
	if (!(*out = strdup(s)))
		return fail(p, sec->vline[k], "out of memory");
	return 0;
}

static int template_get(const struct parser *p, const struct section *sec, enum key k,
                        enum tmpl_kind kind, struct tmpl **out)
{
	char why[512];
	if (!(*out = tmpl_compile(sec->val[k], kind, why, sizeof(why))))
		return fail(p, sec->vline[k], "%s: %s", key_names[k], why);
	return 0;
}

/* The line to blame for a missing key: the section header. */
static int need(const struct parser *p, const struct section *sec, enum key k, const char *why)
{
	if (sec->val[k])
		return 0;
	return fail(p, sec->line, "rule \"%s\": missing \"%s\" (%s)", sec->name, key_names[k], why);
}

static int commands_get(const struct parser *p, const struct section *sec, struct rule *r)
{
	static const char why[] = "commands need low, high, topic and both payloads";
	if (need(p, sec, K_LOW, why) || need(p, sec, K_HIGH, why) ||
	    need(p, sec, K_LOW_PAYLOAD, why) || need(p, sec, K_HIGH_PAYLOAD, why))
		return -1;
	for (enum key k = K_LOW_TOPIC; k <= K_HIGH_TOPIC; k++) {
		if (sec->val[K_TOPIC] && sec->val[k])
			return fail(p, sec->vline[k], "\"%s\" conflicts with \"topic\" (line %d)",
			            key_names[k], sec->vline[K_TOPIC]);
		if (!sec->val[K_TOPIC] && !sec->val[k])
			return fail(p, sec->line,
			            "rule \"%s\": missing \"topic\" (or \"low_topic\" and "
			            "\"high_topic\")",
			            sec->name);
	}
	if (number_get(p, sec, K_LOW, &r->low) || number_get(p, sec, K_HIGH, &r->high))
		return -1;
	if (r->low > r->high)
		return fail(p, sec->vline[K_HIGH], "high (%g) is below low (%g)", r->high, r->low);
	enum { FMT_AUTO, FMT_JSON, FMT_TEXT } fmt = FMT_AUTO;
	const char *f = sec->val[K_PAYLOAD_FORMAT];
	if (f && strcmp(f, "json") == 0)
		fmt = FMT_JSON;
	else if (f && strcmp(f, "text") == 0)
		fmt = FMT_TEXT;
	else if (f && strcmp(f, "auto") != 0)
		return fail(p, sec->vline[K_PAYLOAD_FORMAT],
		            "payload_format: expected auto, json or text, got \"%s\"", f);
	for (int s = SIDE_LOW; s <= SIDE_HIGH; s++) {
		enum key tk =
		    sec->val[K_TOPIC] ? K_TOPIC : (s == SIDE_LOW ? K_LOW_TOPIC : K_HIGH_TOPIC);
		enum key pk = s == SIDE_LOW ? K_LOW_PAYLOAD : K_HIGH_PAYLOAD;
		bool json = fmt == FMT_JSON || (fmt == FMT_AUTO && tmpl_looks_json(sec->val[pk]));
		if (template_get(p, sec, tk, TMPL_TOPIC, &r->topic[s]) ||
		    template_get(p, sec, pk, json ? TMPL_JSON : TMPL_TEXT, &r->payload[s]))
			return -1;
	}
	r->qos = 1;
	if (sec->val[K_QOS]) {
		const char *q = sec->val[K_QOS];
		if (strlen(q) != 1 || q[0] < '0' || q[0] > '2')
			return fail(p, sec->vline[K_QOS], "qos: expected 0, 1 or 2, got \"%s\"", q);
		r->qos = q[0] - '0';
	}
	r->retain = true;
	if (sec->val[K_RETAIN] && config_parse_bool(sec->val[K_RETAIN], &r->retain) < 0)
		return fail(p, sec->vline[K_RETAIN], "retain: expected true or false, got \"%s\"",
		            sec->val[K_RETAIN]);
	r->has_commands = true;
	return 0;
}

static int events_get(const struct parser *p, const struct section *sec, struct rule *r)
{
	if (need(p, sec, K_THRESHOLD, "events need a threshold") ||
	    number_get(p, sec, K_THRESHOLD, &r->threshold))
		return -1;
	r->hysteresis = 0;
	if (sec->val[K_HYSTERESIS]) {
		if (number_get(p, sec, K_HYSTERESIS, &r->hysteresis))
			return -1;
		if (r->hysteresis < 0)
			return fail(p, sec->vline[K_HYSTERESIS],
			            "hysteresis: must not be negative");
		if (!isfinite(r->threshold - r->hysteresis))
			return fail(p, sec->vline[K_HYSTERESIS],
			            "hysteresis: threshold - hysteresis is not finite");
	}
	r->has_events = true;
	return 0;
}

/* Turns a finished section into the next rule of the set. */
static int section_end(struct parser *p, const struct section *sec)
{
	const struct rule *dup = rules_find(p->rs, sec->name);
	if (dup)
		return fail(p, sec->line, "duplicate rule \"%s\" (first defined at line %d)",
		            sec->name, dup->line);
	struct rule *grown = realloc(p->rs->rules, (p->rs->len + 1) * sizeof(*grown));
	if (!grown)
		return fail(p, sec->line, "out of memory");
	p->rs->rules = grown;
	struct rule *r = &p->rs->rules[p->rs->len];
	memset(r, 0, sizeof(*r));
	r->line = sec->line;
	if (!(r->name = strdup(sec->name)))
		return fail(p, sec->line, "out of memory");
	/* Counted now so rules_free releases whatever is built below, even on failure. */
	p->rs->len++;

	if (need(p, sec, K_METRIC, "which readings the rule watches"))
		return -1;
	if (!*sec->val[K_METRIC])
		return fail(p, sec->vline[K_METRIC], "metric: must not be empty");
	if (!(r->metric = strdup(sec->val[K_METRIC])))
		return fail(p, sec->vline[K_METRIC], "out of memory");
	if (pattern_get(p, sec, K_SITE, &r->site) || pattern_get(p, sec, K_DEVICE, &r->device) ||
	    pattern_get(p, sec, K_SENSOR, &r->sensor))
		return -1;
	bool commands = false, events = false;
	for (enum key k = K_LOW; k <= K_RETAIN; k++)
		commands |= sec->val[k] != NULL;
	for (enum key k = K_THRESHOLD; k <= K_HYSTERESIS; k++)
		events |= sec->val[k] != NULL;
	if (!commands && !events)
		return fail(p, sec->line,
		            "rule \"%s\": does nothing: give low/high (commands) or threshold "
		            "(events), or both",
		            sec->name);
	if (commands && commands_get(p, sec, r) < 0)
		return -1;
	if (events && events_get(p, sec, r) < 0)
		return -1;
	return 0;
}

static int section_begin(struct parser *p, char *line, int lineno, struct section *sec)
{
	size_t n = strlen(line);
	if (line[n - 1] != ']')
		return fail(p, lineno, "section header must end with ']'");
	line[n - 1] = 0;
	char *inner = trim(line + 1);
	if (strncmp(inner, "rule", 4) != 0 || (inner[4] != ' ' && inner[4] != '\t'))
		return fail(p, lineno, "expected \"[rule NAME]\"");
	char *name = trim(inner + 4);
	if (!name_ok(name))
		return fail(p, lineno,
		            "invalid rule name \"%s\" (1 to %d letters, digits, '_', '-' or '.')",
		            name, RULE_NAME_MAX);
	memset(sec, 0, sizeof(*sec));
	sec->name = name;
	sec->line = lineno;
	return 0;
}

static int key_value(struct parser *p, char *line, int lineno, struct section *sec)
{
	char *eq = strchr(line, '=');
	if (!eq)
		return fail(p, lineno,
		            "expected \"[rule NAME]\", \"key = value\", a comment or a blank line");
	*eq = 0;
	char *key = trim(line), *val = trim(eq + 1);
	int k = 0;
	while (k < K_COUNT && strcmp(key_names[k], key) != 0)
		k++;
	if (k == K_COUNT)
		return fail(p, lineno, "unknown key \"%s\"", key);
	if (!sec->name)
		return fail(p, lineno, "\"%s\" outside a rule: start one with \"[rule NAME]\"",
		            key);
	if (sec->val[k])
		return fail(p, lineno, "\"%s\" given twice in rule \"%s\" (first at line %d)", key,
		            sec->name, sec->vline[k]);
	sec->val[k] = val;
	sec->vline[k] = lineno;
	return 0;
}

struct ruleset *rules_parse(const char *name, const char *text, char *err, size_t errlen)
{
	struct parser p = {name, err, errlen, calloc(1, sizeof(struct ruleset))};
	char *copy = strdup(text);
	struct section sec = {0};
	int lineno = 0;
	if (!p.rs || !copy) {
		fail(&p, 0, "out of memory");
		goto fail;
	}
	for (char *line = copy, *next; line; line = next) {
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		lineno++;
		if (!utf8_valid(line, strlen(line))) {
			fail(&p, lineno, "not valid UTF-8");
			goto fail;
		}
		line = trim(line);
		if (!*line || *line == '#' || *line == ';')
			continue;
		if (*line == '[') {
			if (sec.name && section_end(&p, &sec) < 0)
				goto fail;
			if (section_begin(&p, line, lineno, &sec) < 0)
				goto fail;
		} else if (key_value(&p, line, lineno, &sec) < 0) {
			goto fail;
		}
	}
	if (sec.name && section_end(&p, &sec) < 0)
		goto fail;
	if (!p.rs->len) {
		fail(&p, 0, "no rules (a rule starts with \"[rule NAME]\")");
		goto fail;
	}
	free(copy);
	return p.rs;
fail:
	free(copy);
	rules_free(p.rs);
	return NULL;
}

struct ruleset *rules_load(const char *path, char *err, size_t errlen)
{
	struct parser p = {path, err, errlen, NULL};
	char *text = config_read_file(path, RULES_MAX_BYTES, false);
	if (!text) {
		if (errno == EFBIG)
			fail(&p, 0, "larger than %d bytes", RULES_MAX_BYTES);
		else
			fail(&p, 0, "%s", strerror(errno));
		return NULL;
	}
	/* config_read_file stops a string at the first NUL byte; a rules file with one would lose
	 * its tail silently, so compare with the size on disk. */
	struct stat st;
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (size_t)st.st_size != strlen(text)) {
		free(text);
		fail(&p, 0, "contains a NUL byte (or changed while being read)");
		return NULL;
	}
	struct ruleset *rs = rules_parse(path, text, err, errlen);
	free(text);
	return rs;
}
