/* Mapping rules: for payloads no built-in format knows, a small file says, per MQTT topic
 * filter, where each Reading field comes from. Syntax (docs/cleaner.md has the full text):
 *
 *   [acme-line]                  a rule, named for messages and logs
 *   match  = acme/+/line/#       MQTT filter; the first matching rule wins
 *   site   = topic[0]            a topic level (negative counts from the end)
 *   device = $.dev.id | "main"   JSON paths and "constants", tried left to right
 *   value  = $.readings[0].v
 *   ts_format = iso8601          auto (default), ms, s, us, ns, iso8601
 *
 * or, to route topics to a built-in format:  match = legacy/#  +  format = power.
 * Everything is checked at load time and reported as FILE:LINE: reason, so a bad file stops the
 * service at start-up instead of rejecting traffic later. */
#include "clean_internal.h"
#include "text.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum map_field {
	MF_SITE, /* MF_SITE..MF_METRIC follow enum cand_id */
	MF_DEVICE,
	MF_SENSOR,
	MF_METRIC,
	MF_UNIT,
	MF_VALUE,
	MF_TS,
	MF_LAT,
	MF_LON,
	MF_DEVICE_TYPE,
	MF_COUNT
};
static const char *const mf_names[MF_COUNT] = {
    "site", "device", "sensor", "metric", "unit", "value", "ts", "lat", "lon", "device_type"};

enum src_kind { SRC_PATH, SRC_TOPIC, SRC_CONST };
#define MAP_ALTS_MAX 4
struct map_src {
	enum src_kind kind;
	struct jpath path;
	long level;
	char *text; /* constant */
	size_t len;
};
struct map_spec {
	struct map_src alt[MAP_ALTS_MAX];
	size_t n;
	char expr[80]; /* as written, for rejection reasons */
};

struct mapping_rule {
	char *name;
	char *filter;
	int line;
	enum cleaner_format format;
	struct map_spec f[MF_COUNT];
	enum ts_unit ts_unit;
	bool tags;
	bool seen_format, seen_ts_format, seen_tags;
};

struct mapping {
	struct mapping_rule *rules;
	size_t n;
};

static void rule_clear(struct mapping_rule *r)
{
	free(r->name);
	free(r->filter);
	for (int k = 0; k < MF_COUNT; k++) {
		for (size_t a = 0; a < r->f[k].n; a++) {
			jpath_free(&r->f[k].alt[a].path);
			free(r->f[k].alt[a].text);
		}
	}
}

void mapping_free(struct mapping *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n; i++)
		rule_clear(&m->rules[i]);
	free(m->rules);
	free(m);
}

/* ---- MQTT filters ---- */

/* Checks a filter: '+' and '#' only as whole levels, '#' only last. NULL when valid. */
static const char *filter_problem(const char *f)
{
	if (!*f)
		return "empty topic filter";
	for (const char *p = f; *p; p++) {
		bool start = p == f || p[-1] == '/';
		bool end = p[1] == 0 || p[1] == '/';
		if (*p == '+' && !(start && end))
			return "'+' must be a whole level";
		if (*p == '#' && !(start && p[1] == 0))
			return "'#' must be the whole last level";
	}
	return NULL;
}

bool mapping_filter_matches(const char *filter, const struct topic *t)
{
	const char *f = filter, *s = t->s, *end = t->s + t->len;
	/* MQTT: wildcards at the first level never match $SYS-style topics. */
	if (t->len && t->s[0] == '$' && (*f == '+' || *f == '#'))
		return false;
	bool more = true; /* the topic has a level left at s */
	for (;;) {
		const char *fe = strchr(f, '/');
		size_t flen = fe ? (size_t)(fe - f) : strlen(f);
		if (flen == 1 && *f == '#')
			return true;
		if (!more)
			return false;
		const char *se = memchr(s, '/', (size_t)(end - s));
		size_t slen = se ? (size_t)(se - s) : (size_t)(end - s);
		if (!(flen == 1 && *f == '+') && (flen != slen || memcmp(f, s, slen) != 0))
			return false;
		if (se)
			s = se + 1;
		else
			more = false;
		if (!fe)
			return !more;
		f = fe + 1;
	}
}

/* ---- parsing ---- */

struct parser {
	const char *name;
	int line;
	char *err;
	size_t errlen;
};

static int perr(struct parser *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int perr(struct parser *p, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	snprintf(p->err, p->errlen, "%s:%d: %s", p->name, p->line, msg);
	return -1;
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

/* Parses one alternative at s[*i]; stops at '|' or the end. */
static int src_parse(struct parser *p, const char *key, const char *s, size_t len, size_t *i,
                     struct map_src *src)
{
	char err[160];
	size_t start = *i;
	memset(src, 0, sizeof(*src));
	if (s[*i] == '"') {
		size_t k = *i + 1;
		char *t = malloc(len - k + 1);
		size_t o = 0;
		if (!t)
			return perr(p, "out of memory");
		while (k < len && s[k] != '"') {
			if (s[k] == '\\' && k + 1 < len)
				k++;
			t[o++] = s[k++];
		}
		if (k >= len) {
			free(t);
			return perr(p, "%s: unterminated \"constant\"", key);
		}
		t[o] = 0;
		src->kind = SRC_CONST;
		src->text = t;
		src->len = o;
		*i = k + 1;
		return 0;
	}
	if (len - *i >= 6 && memcmp(s + *i, "topic[", 6) == 0) {
		size_t k = *i + 6;
		bool neg = k < len && s[k] == '-';
		long v = 0;
		size_t d0 = k += neg;
		while (k < len && s[k] >= '0' && s[k] <= '9' && k - d0 < 4)
			v = v * 10 + (s[k++] - '0');
		if (k == d0 || k >= len || s[k] != ']')
			return perr(p, "%s: expected topic[N] with N a level number", key);
		v = neg ? -v : v;
		if (v >= TOPIC_LEVELS_MAX || v < -TOPIC_LEVELS_MAX)
			return perr(p, "%s: topic level %ld out of range (-%d..%d)", key, v,
			            TOPIC_LEVELS_MAX, TOPIC_LEVELS_MAX - 1);
		src->kind = SRC_TOPIC;
		src->level = v;
		*i = k + 1;
		return 0;
	}
	if (s[*i] == '$') {
		/* The path ends at the first blank or '|' outside ["..."]. */
		size_t k = *i;
		bool quoted = false;
		while (k < len && (quoted || (!is_space(s[k]) && s[k] != '|'))) {
			if (s[k] == '"' && (k == 0 || s[k - 1] != '\\'))
				quoted = !quoted;
			k++;
		}
		if (jpath_compile(s + start, k - start, &src->path, err, sizeof(err)))
			return perr(p, "%s: JSON path '%.*s': %s", key, (int)(k - start), s + start,
			            err);
		src->kind = SRC_PATH;
		*i = k;
		return 0;
	}
	return perr(p, "%s: expected a JSON path ($.a.b), topic[N] or \"constant\"", key);
}

static int field_parse(struct parser *p, enum map_field f, const char *val, struct map_spec *spec)
{
	const char *key = mf_names[f];
	size_t len = strlen(val), i = 0;
	snprintf(spec->expr, sizeof(spec->expr), "%s", val);
	for (;;) {
		while (i < len && is_space(val[i]))
			i++;
		if (i >= len)
			return perr(p, "%s: expected a source after '|'", key);
		if (spec->n == MAP_ALTS_MAX)
			return perr(p, "%s: at most %d alternatives", key, MAP_ALTS_MAX);
		struct map_src *src = &spec->alt[spec->n];
		if (src_parse(p, key, val, len, &i, src))
			return -1;
		spec->n++;
		if (src->kind == SRC_CONST && f >= MF_VALUE && f <= MF_LON)
			return perr(p, "%s: a constant is not allowed here", key);
		if (src->kind == SRC_TOPIC && f >= MF_VALUE && f <= MF_LON)
			return perr(p, "%s: topic levels can give identifiers and units only", key);
		if (src->kind == SRC_CONST) {
			bool id = f <= MF_METRIC;
			const char *why =
			    text_ident_problem(src->text, src->len, CLEANER_ID_MAX, id);
			if (why)
				return perr(p, "%s: constant %s", key, why);
		}
		while (i < len && is_space(val[i]))
			i++;
		if (i >= len)
			return 0;
		if (val[i] != '|')
			return perr(p, "%s: unexpected '%c' (alternatives are separated by '|')",
			            key, val[i]);
		i++;
	}
}

static int rule_finish(struct parser *p, struct mapping_rule *r)
{
	int line = p->line;
	p->line = r->line;
	int rc = 0;
	if (!r->filter) {
		rc = perr(p, "rule '%s' has no 'match'", r->name);
	} else if (r->seen_format) {
		if (r->seen_ts_format || r->seen_tags)
			rc = perr(p, "rule '%s': 'format' cannot be combined with '%s'", r->name,
			          r->seen_ts_format ? "ts_format" : "tags");
		for (int k = 0; k < MF_COUNT && !rc; k++)
			if (r->f[k].n)
				rc = perr(p, "rule '%s': 'format' cannot be combined with '%s'",
				          r->name, mf_names[k]);
	} else {
		static const enum map_field required[] = {MF_SITE, MF_DEVICE, MF_SENSOR, MF_METRIC,
		                                          MF_VALUE};
		for (size_t k = 0; k < sizeof(required) / sizeof(*required) && !rc; k++)
			if (!r->f[required[k]].n)
				rc = perr(p, "rule '%s' has no '%s'", r->name,
				          mf_names[required[k]]);
		if (!rc && (r->f[MF_LAT].n != 0) != (r->f[MF_LON].n != 0))
			rc = perr(p, "rule '%s': 'lat' and 'lon' go together", r->name);
	}
	p->line = line;
	return rc;
}

static char *trim(char *s)
{
	while (is_space(*s))
		s++;
	size_t n = strlen(s);
	while (n && (is_space(s[n - 1]) || s[n - 1] == '\r'))
		s[--n] = 0;
	return s;
}

static int line_parse(struct parser *p, struct mapping *m, char *line)
{
	/* Rule names and paths are quoted in rejection reasons, which must stay writable as
	 * Avro strings (UTF-8) and as single log lines: a file that is not such text is refused
	 * at start-up, or every rejection naming it would stop the service. */
	if (!utf8_valid(line, strlen(line)))
		return perr(p, "not valid UTF-8");
	for (const char *c = line; *c; c++)
		if (((unsigned char)*c < 0x20 && *c != '\t' && !(*c == '\r' && !c[1])) ||
		    *c == 0x7F)
			return perr(p, "control character 0x%02X", (unsigned)(unsigned char)*c);
	char *s = trim(line);
	if (!*s || *s == '#')
		return 0;
	struct mapping_rule *r = m->n ? &m->rules[m->n - 1] : NULL;
	if (*s == '[') {
		size_t n = strlen(s);
		if (s[n - 1] != ']')
			return perr(p, "expected '[name]'");
		s[n - 1] = 0;
		char *name = trim(s + 1);
		if (!*name)
			return perr(p, "a rule needs a name: [name]");
		if (r && rule_finish(p, r))
			return -1;
		for (size_t i = 0; i < m->n; i++)
			if (strcmp(m->rules[i].name, name) == 0)
				return perr(p, "rule '%s' already defined on line %d", name,
				            m->rules[i].line);
		struct mapping_rule *nr = realloc(m->rules, (m->n + 1) * sizeof(*nr));
		if (!nr)
			return perr(p, "out of memory");
		m->rules = nr;
		r = &m->rules[m->n];
		memset(r, 0, sizeof(*r));
		r->tags = true;
		r->line = p->line;
		r->name = strdup(name);
		m->n++;
		if (!r->name)
			return perr(p, "out of memory");
		return 0;
	}
	char *eq = strchr(s, '=');
	if (!eq)
		return perr(p, "expected 'key = value' or '[name]'");
	*eq = 0;
	char *key = trim(s), *val = trim(eq + 1);
	if (!r)
		return perr(p, "'%s' outside a rule (start one with a [name] line)", key);
	if (!*val)
		return perr(p, "%s: empty value", key);
	if (strcmp(key, "match") == 0) {
		if (r->filter)
			return perr(p, "duplicate key 'match'");
		const char *why = filter_problem(val);
		if (why)
			return perr(p, "match: %s", why);
		r->filter = strdup(val);
		return r->filter ? 0 : perr(p, "out of memory");
	}
	if (strcmp(key, "format") == 0) {
		int f = cleaner_format_parse(val);
		if (r->seen_format)
			return perr(p, "duplicate key 'format'");
		if (f <= CLEANER_FORMAT_AUTO)
			return perr(p,
			            "format: unknown '%s' (expected factory, home, power, "
			            "temperature or bare)",
			            val);
		r->format = (enum cleaner_format)f;
		r->seen_format = true;
		return 0;
	}
	if (strcmp(key, "ts_format") == 0) {
		int u = ts_unit_parse(val);
		if (r->seen_ts_format)
			return perr(p, "duplicate key 'ts_format'");
		if (u < 0)
			return perr(p,
			            "ts_format: unknown '%s' (expected auto, ms, s, us, ns or "
			            "iso8601)",
			            val);
		r->ts_unit = (enum ts_unit)u;
		r->seen_ts_format = true;
		return 0;
	}
	if (strcmp(key, "tags") == 0) {
		if (r->seen_tags)
			return perr(p, "duplicate key 'tags'");
		if (strcmp(val, "rest") != 0 && strcmp(val, "none") != 0)
			return perr(p, "tags: expected 'rest' or 'none'");
		r->tags = strcmp(val, "rest") == 0;
		r->seen_tags = true;
		return 0;
	}
	for (int k = 0; k < MF_COUNT; k++) {
		if (strcmp(key, mf_names[k]) != 0)
			continue;
		if (r->f[k].n)
			return perr(p, "duplicate key '%s'", key);
		return field_parse(p, (enum map_field)k, val, &r->f[k]);
	}
	return perr(p,
	            "unknown key '%s' (expected match, format, site, device, sensor, metric, "
	            "unit, value, ts, ts_format, lat, lon, device_type or tags)",
	            key);
}

int mapping_parse(const char *name, const char *text, struct mapping **out, char *err,
                  size_t errlen)
{
	struct parser p = {.name = name, .line = 0, .err = err, .errlen = errlen};
	struct mapping *m = calloc(1, sizeof(*m));
	char *copy = strdup(text);
	int rc = -1;
	if (!m || !copy) {
		snprintf(err, errlen, "%s: out of memory", name);
		goto out;
	}
	char *line = copy;
	while (line) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		p.line++;
		if (line_parse(&p, m, line))
			goto out;
		line = nl ? nl + 1 : NULL;
	}
	if (m->n == 0) {
		snprintf(err, errlen, "%s: no rules (a rule starts with a [name] line)", name);
		goto out;
	}
	if (rule_finish(&p, &m->rules[m->n - 1]))
		goto out;
	*out = m;
	m = NULL;
	rc = 0;
out:
	free(copy);
	mapping_free(m);
	return rc;
}

/* ---- matching and extraction ---- */

const struct mapping_rule *mapping_match(const struct mapping *m, const struct topic *t)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n; i++)
		if (mapping_filter_matches(m->rules[i].filter, t))
			return &m->rules[i];
	return NULL;
}

enum cleaner_format mapping_rule_format(const struct mapping_rule *r)
{
	return r->format;
}

const char *mapping_rule_name(const struct mapping_rule *r)
{
	return r->name;
}

/* The first alternative that yields something: a JSON value (non-null) or a string. */
static bool spec_eval(const struct map_spec *spec, const json_t *elem, const struct topic *t,
                      const json_t **j, const char **s, size_t *len)
{
	*j = NULL;
	for (size_t a = 0; a < spec->n; a++) {
		const struct map_src *src = &spec->alt[a];
		switch (src->kind) {
		case SRC_PATH:
			*j = jpath_eval(&src->path, elem);
			if (*j && !json_is_null(*j))
				return true;
			*j = NULL;
			break;
		case SRC_TOPIC:
			if (topic_level(t, src->level, s, len))
				return true;
			break;
		case SRC_CONST:
			*s = src->text;
			*len = src->len;
			return true;
		}
	}
	return false;
}

int mapping_extract(const struct mapping_rule *r, const json_t *elem, const struct topic *t,
                    struct cand *c, struct verdict *v)
{
	const json_t *j;
	const char *s;
	size_t len;
	for (int k = 0; k < MF_COUNT; k++) {
		const struct map_spec *spec = &r->f[k];
		if (!spec->n)
			continue;
		if (!spec_eval(spec, elem, t, &j, &s, &len)) {
			if (k <= MF_METRIC)
				return verdict_set(v, CLEANER_ID_MISSING,
				                   "%s: not found (rule %s: %s)", mf_names[k],
				                   r->name, spec->expr);
			if (k == MF_VALUE)
				return verdict_set(v, CLEANER_VALUE_MISSING,
				                   "value: not found (rule %s: %s)", r->name,
				                   spec->expr);
			continue;
		}
		cand_consume(c, j);
		switch ((enum map_field)k) {
		case MF_SITE:
		case MF_DEVICE:
		case MF_SENSOR:
		case MF_METRIC:
			if (!j)
				cand_id_set(c, (enum cand_id)k, s, len);
			else if (cand_id_from_json(c, (enum cand_id)k, j, v))
				return -1;
			break;
		case MF_UNIT:
			if (!j) {
				c->unit = s;
				c->unit_len = len;
			} else if (json_is_string(j)) {
				c->unit = json_string_value(j);
				c->unit_len = json_string_length(j);
			} else {
				c->unit_bad = j;
			}
			break;
		case MF_DEVICE_TYPE:
			if (!j) {
				/* Validation reads device_type as JSON; a constant has none. */
				c->device_type_text = s;
				c->device_type_len = len;
			} else {
				c->device_type = j;
			}
			break;
		case MF_VALUE:
			c->value = j;
			break;
		case MF_TS:
			c->ts = j;
			break;
		case MF_LAT:
			c->lat = j;
			break;
		case MF_LON:
			c->lon = j;
			break;
		case MF_COUNT:
			break;
		}
	}
	c->ts_unit = r->ts_unit;
	c->tags_root = r->tags && json_is_object(elem) ? elem : NULL;
	return 0;
}
