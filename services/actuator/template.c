/* Template compilation and rendering. A template is compiled once per rules load into literal
 * and placeholder segments, so rendering a command is a walk over a short array with no parsing
 * and no allocation once the output buffer has grown to size. */
#include "template.h"

#include "fmt.h"
#include "text.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOPIC_MAX 65535

enum var { V_SITE, V_DEVICE, V_SENSOR, V_METRIC, V_VALUE, V_RULE, V_COUNT, V_LITERAL = V_COUNT };

static const char *const var_names[V_COUNT] = {"site",   "device", "sensor",
                                               "metric", "value",  "rule"};

struct seg {
	enum var var;
	bool in_string;  /* json kind: placeholder sits inside a JSON string */
	size_t off, len; /* literal: slice of tmpl->lit */
};

struct tmpl {
	enum tmpl_kind kind;
	char *src;
	char *lit; /* literal text of all segments, "{{" already folded */
	struct seg *segs;
	size_t nsegs;
};

/* If text[i] opens a placeholder "{name}" with name in [a-z_]+, returns the name's length and
 * sets *var (V_COUNT when the name is unknown); otherwise 0. */
static size_t placeholder_at(const char *text, size_t i, enum var *var)
{
	if (text[i] != '{')
		return 0;
	size_t j = i + 1;
	while ((text[j] >= 'a' && text[j] <= 'z') || text[j] == '_')
		j++;
	if (j == i + 1 || text[j] != '}')
		return 0;
	size_t n = j - i - 1;
	*var = V_COUNT;
	for (int v = 0; v < V_COUNT; v++)
		if (strlen(var_names[v]) == n && memcmp(var_names[v], text + i + 1, n) == 0)
			*var = (enum var)v;
	return n;
}

bool tmpl_looks_json(const char *text)
{
	while (*text == ' ' || *text == '\t')
		text++;
	enum var v;
	return *text == '[' || (*text == '{' && text[1] != '{' && !placeholder_at(text, 0, &v));
}

void tmpl_free(struct tmpl *t)
{
	if (!t)
		return;
	free(t->src);
	free(t->lit);
	free(t->segs);
	free(t);
}

const char *tmpl_text(const struct tmpl *t)
{
	return t->src;
}

enum tmpl_kind tmpl_kind_of(const struct tmpl *t)
{
	return t->kind;
}

bool tmpl_uses(const struct tmpl *t, const char *var)
{
	for (size_t i = 0; i < t->nsegs; i++)
		if (t->segs[i].var != V_LITERAL && strcmp(var_names[t->segs[i].var], var) == 0)
			return true;
	return false;
}

static int seg_push(struct tmpl *t, enum var var, bool in_string, size_t off, size_t len)
{
	/* Adjacent literal pieces (split by "{{") merge, keeping the array short. */
	if (var == V_LITERAL && t->nsegs && t->segs[t->nsegs - 1].var == V_LITERAL) {
		t->segs[t->nsegs - 1].len += len;
		return 0;
	}
	struct seg *s = realloc(t->segs, (t->nsegs + 1) * sizeof(*s));
	if (!s)
		return -1;
	t->segs = s;
	t->segs[t->nsegs++] = (struct seg){var, in_string, off, len};
	return 0;
}

/* Fills the JSON template with two sets of sample values and parses the results: a literal
 * that only works for some numbers (a digit glued to {value}, "-{value}") fails on one. */
static int check_json(const struct tmpl *t, char *err, size_t errlen)
{
	static const double samples[] = {0, -1.5e300};
	struct buf out = {0};
	int rc = 0;
	for (size_t i = 0; i < sizeof(samples) / sizeof(*samples) && rc == 0; i++) {
		struct tmpl_vars v = {"site", "device", "sensor", "metric", "rule", samples[i]};
		char rerr[128];
		if (tmpl_render(t, &v, &out, rerr, sizeof(rerr)) != TMPL_OK) {
			snprintf(err, errlen, "cannot fill in: %s", rerr);
			rc = -1;
			break;
		}
		json_error_t jerr;
		json_t *j = json_loadb((const char *)out.data, out.len, JSON_DECODE_ANY, &jerr);
		if (!j) {
			snprintf(err, errlen, "not valid JSON once filled in (%s): %s", jerr.text,
			         (const char *)out.data);
			rc = -1;
		}
		json_decref(j);
	}
	buf_free(&out);
	return rc;
}

static int check_topic_literal(const struct tmpl *t, char *err, size_t errlen)
{
	if (!*t->src) {
		snprintf(err, errlen, "a topic must not be empty");
		return -1;
	}
	if (t->src[0] == '$') {
		snprintf(err, errlen, "a topic must not start with '$' (reserved by brokers)");
		return -1;
	}
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct seg *s = &t->segs[i];
		if (s->var == V_VALUE) {
			snprintf(err, errlen, "{value} is not allowed in a topic");
			return -1;
		}
		if (s->var != V_LITERAL)
			continue;
		const char *bad = NULL;
		for (size_t k = 0; k < s->len && !bad; k++)
			if (t->lit[s->off + k] == '+' || t->lit[s->off + k] == '#')
				bad = t->lit + s->off + k;
		if (bad) {
			snprintf(err, errlen,
			         "'%c' is not allowed in a topic (wildcards only subscribe)", *bad);
			return -1;
		}
	}
	return 0;
}

struct tmpl *tmpl_compile(const char *text, enum tmpl_kind kind, char *err, size_t errlen)
{
	struct tmpl *t = calloc(1, sizeof(*t));
	if (!t || !(t->src = strdup(text)) || !(t->lit = malloc(strlen(text) + 1))) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	t->kind = kind;
	if (!utf8_valid(text, strlen(text))) {
		snprintf(err, errlen, "not valid UTF-8");
		goto fail;
	}
	size_t n = 0, lit_start = 0;
	bool in_string = false, escaped = false;
	for (size_t i = 0; text[i];) {
		enum var var;
		size_t name_len = placeholder_at(text, i, &var);
		if (text[i] == '{' && text[i + 1] == '{') {
			t->lit[n++] = '{';
			i += 2;
			continue;
		}
		if (name_len) {
			if (var == V_COUNT) {
				snprintf(
				    err, errlen,
				    "unknown placeholder {%.*s} (known: {site} {device} {sensor} "
				    "{metric} {value} {rule})",
				    (int)name_len, text + i + 1);
				goto fail;
			}
			if (kind == TMPL_JSON && escaped) {
				snprintf(err, errlen, "{%s} follows a backslash", var_names[var]);
				goto fail;
			}
			if (kind == TMPL_JSON && !in_string && var != V_VALUE) {
				snprintf(
				    err, errlen,
				    "{%s} must be inside a JSON string (\"{%s}\"); only {value} "
				    "may stand alone",
				    var_names[var], var_names[var]);
				goto fail;
			}
			if ((n > lit_start &&
			     seg_push(t, V_LITERAL, false, lit_start, n - lit_start)) ||
			    seg_push(t, var, in_string, 0, 0)) {
				snprintf(err, errlen, "out of memory");
				goto fail;
			}
			lit_start = n;
			i += name_len + 2;
			continue;
		}
		char c = text[i++];
		t->lit[n++] = c;
		if (kind != TMPL_JSON)
			continue;
		if (escaped)
			escaped = false;
		else if (in_string && c == '\\')
			escaped = true;
		else if (c == '"')
			in_string = !in_string;
	}
	t->lit[n] = 0;
	if (n > lit_start && seg_push(t, V_LITERAL, false, lit_start, n - lit_start)) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (kind == TMPL_TOPIC && check_topic_literal(t, err, errlen) < 0)
		goto fail;
	if (kind == TMPL_JSON && check_json(t, err, errlen) < 0)
		goto fail;
	return t;
fail:
	tmpl_free(t);
	return NULL;
}

static int put_json_escaped(struct buf *out, const char *s)
{
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		int rc;
		switch (*p) {
		case '"':
			rc = buf_append(out, "\\\"", 2);
			break;
		case '\\':
			rc = buf_append(out, "\\\\", 2);
			break;
		case '\n':
			rc = buf_append(out, "\\n", 2);
			break;
		case '\r':
			rc = buf_append(out, "\\r", 2);
			break;
		case '\t':
			rc = buf_append(out, "\\t", 2);
			break;
		default:
			rc = *p < 0x20 ? buf_printf(out, "\\u%04x", *p) : buf_putc(out, *p);
		}
		if (rc < 0)
			return -1;
	}
	return 0;
}

/* Why a text may not stand in a topic, or NULL when it may. */
static const char *topic_piece_problem(const char *s)
{
	if (!*s)
		return "is empty";
	if (strchr(s, '/'))
		return "contains '/'";
	if (strchr(s, '+'))
		return "contains '+'";
	if (strchr(s, '#'))
		return "contains '#'";
	return NULL;
}

int tmpl_render(const struct tmpl *t, const struct tmpl_vars *v, struct buf *out, char *err,
                size_t errlen)
{
	buf_reset(out);
	for (size_t i = 0; i < t->nsegs; i++) {
		const struct seg *s = &t->segs[i];
		int rc = 0;
		if (s->var == V_LITERAL) {
			rc = buf_append(out, t->lit + s->off, s->len);
		} else if (s->var == V_VALUE) {
			char num[32];
			if (!isfinite(v->value)) {
				snprintf(err, errlen, "value is not a finite number");
				return TMPL_REFUSED;
			}
			rc = buf_append(out, num, fmt_double(v->value, num, sizeof(num)));
		} else {
			const char *const texts[] = {v->site,   v->device, v->sensor,
			                             v->metric, NULL,      v->rule};
			const char *s_val = texts[s->var] ? texts[s->var] : "";
			const char *problem = NULL;
			if (!utf8_valid(s_val, strlen(s_val)))
				problem = "is not valid UTF-8";
			else if (t->kind == TMPL_TOPIC)
				problem = topic_piece_problem(s_val);
			if (problem) {
				char q[96];
				snprintf(err, errlen, "%s \"%s\" %s%s", var_names[s->var],
				         fmt_quote(s_val, q, sizeof(q)), problem,
				         t->kind == TMPL_TOPIC ? ": not allowed in a topic" : "");
				return TMPL_REFUSED;
			}
			if (t->kind == TMPL_JSON)
				rc = put_json_escaped(out, s_val);
			else
				rc = buf_append(out, s_val, strlen(s_val));
		}
		if (rc < 0)
			goto nomem;
	}
	if (buf_terminate(out) < 0)
		goto nomem;
	if (t->kind == TMPL_TOPIC && out->len > TOPIC_MAX) {
		snprintf(err, errlen, "topic of %zu bytes is longer than %d", out->len, TOPIC_MAX);
		return TMPL_REFUSED;
	}
	if (t->kind == TMPL_TOPIC && out->data[0] == '$') {
		char q[96];
		snprintf(err, errlen, "topic \"%s\" starts with '$': not allowed",
		         fmt_quote((const char *)out->data, q, sizeof(q)));
		return TMPL_REFUSED;
	}
	return TMPL_OK;
nomem:
	snprintf(err, errlen, "out of memory");
	return TMPL_NOMEM;
}
