/* One RawMessage in, Readings and at most one rejection out: the cleaner's pipeline per message.
 *
 * Cheap checks that need no parsing come first (size, emptiness, nesting depth), so a hostile
 * payload costs one pass over its bytes. Each element of a batch is then cleaned on its own:
 * good readings pass whatever their neighbours hold, and the bad ones are collected into one
 * reason, because a Rejected record is identified by its raw message. */
#include "clean_internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Mapping files are a few rules; anything this large is a mistake (a log file given by error). */
#define MAPPING_FILE_MAX (1u << 20)
/* Readings of the previous message kept for reuse; batches beyond this build new ones. */
#define SPARE_MAX 64

struct cleaner {
	enum cleaner_format format;
	size_t max_payload, max_batch;
	int64_t max_age_ms, max_skew_ms;
	struct limits limits;
	struct mapping *mapping;
	struct cleaner_stats stats;
	json_t *spare[SPARE_MAX];
	size_t nspare;
};

static const char *const reason_codes[CLEANER_REASON_COUNT] = {
    [CLEANER_OK] = "ok",
    [CLEANER_PAYLOAD_TOO_LARGE] = "payload_too_large",
    [CLEANER_PAYLOAD_EMPTY] = "payload_empty",
    [CLEANER_PAYLOAD_TOO_DEEP] = "payload_too_deep",
    [CLEANER_PAYLOAD_NOT_UTF8] = "payload_not_utf8",
    [CLEANER_JSON_MALFORMED] = "json_malformed",
    [CLEANER_BATCH_TOO_LARGE] = "batch_too_large",
    [CLEANER_FORMAT_UNKNOWN] = "format_unknown",
    [CLEANER_TOPIC_UNMAPPED] = "topic_unmapped",
    [CLEANER_ID_MISSING] = "id_missing",
    [CLEANER_ID_INVALID] = "id_invalid",
    [CLEANER_VALUE_MISSING] = "value_missing",
    [CLEANER_VALUE_NOT_NUMBER] = "value_not_number",
    [CLEANER_VALUE_NOT_FINITE] = "value_not_finite",
    [CLEANER_VALUE_ERROR_CODE] = "value_error_code",
    [CLEANER_VALUE_OUT_OF_RANGE] = "value_out_of_range",
    [CLEANER_UNIT_INVALID] = "unit_invalid",
    [CLEANER_TS_INVALID] = "ts_invalid",
    [CLEANER_TS_FUTURE] = "ts_future",
    [CLEANER_TS_TOO_OLD] = "ts_too_old",
    [CLEANER_LOCATION_INVALID] = "location_invalid",
    [CLEANER_RAW_INVALID] = "raw_invalid",
};

const char *cleaner_reason_code(enum cleaner_reason r)
{
	return (unsigned)r < CLEANER_REASON_COUNT ? reason_codes[r] : NULL;
}

int cleaner_new(const struct cleaner_opts *o, struct cleaner **out, char *err, size_t errlen)
{
	char *text = NULL;
	struct cleaner *c = calloc(1, sizeof(*c));
	if (!c || limits_init(&c->limits)) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int f = cleaner_format_parse(o->format ? o->format : "auto");
	if (f < 0) {
		snprintf(err, errlen,
		         "--format '%s': unknown (expected auto, factory, home, power, temperature "
		         "or bare)",
		         o->format);
		goto fail;
	}
	c->format = (enum cleaner_format)f;
	if (o->max_payload <= 0 || o->max_batch <= 0 || o->max_age_ms < 0 || o->max_skew_ms < 0) {
		snprintf(err, errlen,
		         "--max-payload and --max-batch must be positive, --max-age "
		         "and --max-skew not negative");
		goto fail;
	}
	c->max_payload = (size_t)o->max_payload;
	c->max_batch = (size_t)o->max_batch;
	c->max_age_ms = o->max_age_ms;
	c->max_skew_ms = o->max_skew_ms;
	for (size_t i = 0; i < o->ranges.len; i++)
		if (limits_range_add(&c->limits, o->ranges.items[i], err, errlen))
			goto fail;
	for (size_t i = 0; i < o->error_values.len; i++)
		if (limits_error_add(&c->limits, o->error_values.items[i], err, errlen))
			goto fail;
	if (o->mapping && o->mapping_text) {
		snprintf(err, errlen, "a mapping file and inline mapping rules exclude each other");
		goto fail;
	}
	if (o->mapping) {
		errno = 0;
		text = config_read_file(o->mapping, MAPPING_FILE_MAX, false);
		if (!text) {
			snprintf(err, errlen, "%s: %s", o->mapping,
			         errno ? strerror(errno) : "cannot read");
			goto fail;
		}
		if (mapping_parse(o->mapping, text, &c->mapping, err, errlen))
			goto fail;
	} else if (o->mapping_text) {
		if (mapping_parse("<inline>", o->mapping_text, &c->mapping, err, errlen))
			goto fail;
	}
	free(text);
	*out = c;
	return 0;
fail:
	free(text);
	cleaner_free(c);
	return -1;
}

void cleaner_free(struct cleaner *c)
{
	if (!c)
		return;
	limits_free(&c->limits);
	mapping_free(c->mapping);
	while (c->nspare)
		json_decref(c->spare[--c->nspare]);
	free(c);
}

const struct cleaner_stats *cleaner_stats(const struct cleaner *c)
{
	return &c->stats;
}

int cleaner_result_init(struct cleaner_result *res)
{
	memset(res, 0, sizeof(*res));
	res->readings = json_array();
	return res->readings ? 0 : -1;
}

void cleaner_result_free(struct cleaner_result *res)
{
	if (!res)
		return;
	json_decref(res->readings);
	res->readings = NULL;
}

/* Collects rejections of one message into res: the first decides the code; a batch lists its
 * bad elements by index until the reason is full, then counts the rest. */
struct rejections {
	struct cleaner_result *res;
	size_t len, omitted;
};

static void reject(struct cleaner *c, struct rejections *rj, long index, const struct verdict *v)
{
	struct cleaner_result *res = rj->res;
	c->stats.rejected[v->code]++;
	if (res->rejected++ == 0)
		res->code = v->code;
	/* Room kept for "; N more (R of N elements rejected)". */
	size_t room = sizeof(res->reason) - 64;
	char entry[VERDICT_MAX + 32];
	int n = index < 0 ? snprintf(entry, sizeof(entry), "%s", v->text)
	                  : snprintf(entry, sizeof(entry), "%s[%ld] %s", rj->len ? "; " : "", index,
	                             v->text);
	if (n < 0 || rj->len + (size_t)n >= room) {
		rj->omitted++;
		return;
	}
	memcpy(res->reason + rj->len, entry, (size_t)n + 1);
	rj->len += (size_t)n;
}

static void reject_whole(struct cleaner *c, struct cleaner_result *res, enum cleaner_reason code,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void reject_whole(struct cleaner *c, struct cleaner_result *res, enum cleaner_reason code,
                         const char *fmt, ...)
{
	va_list ap;
	res->elements = 1;
	res->rejected = 1;
	res->code = code;
	va_start(ap, fmt);
	vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
	c->stats.rejected[code]++;
}

/* One pass before parsing: bracket nesting outside strings (jansson recurses once per level,
 * with no limit of its own) and raw NUL bytes (never valid JSON, and jansson's buffer reader
 * stops at them, parsing a prefix). Returns 0, 1 = too deep, 2 = NUL at *pos. */
static int payload_scan(const char *s, size_t len, int max, size_t *pos)
{
	int depth = 0;
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (ch == 0) {
			*pos = i;
			return 2;
		}
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
		} else if (ch == '"') {
			in_str = true;
		} else if (ch == '[' || ch == '{') {
			if (++depth > max)
				return 1;
		} else if ((ch == ']' || ch == '}') && depth > 0) {
			/* Never below zero: stray closers must not buy extra depth later. */
			depth--;
		}
	}
	return 0;
}

static bool blank(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* jansson quotes the offending bytes in its messages; keep reasons printable ASCII. */
static void ascii_copy(char *dst, size_t n, const char *src)
{
	size_t i = 0;
	for (; src[i] && i + 1 < n; i++)
		dst[i] = src[i] >= 0x20 && src[i] < 0x7F ? src[i] : '?';
	dst[i] = 0;
}

/* A NaN or Infinity token outside strings: not JSON, but what a broken sensor writes for a
 * value, so it deserves that reason rather than "malformed". Returns the token or NULL. */
static const char *nonfinite_token(const char *s, size_t len, size_t *tlen)
{
	bool in_str = false;
	for (size_t i = 0; i < len; i++) {
		char ch = s[i];
		if (in_str) {
			if (ch == '\\')
				i++;
			else if (ch == '"')
				in_str = false;
			continue;
		}
		if (ch == '"') {
			in_str = true;
			continue;
		}
		size_t j = i;
		while (j < len && ((s[j] >= 'a' && s[j] <= 'z') || (s[j] >= 'A' && s[j] <= 'Z')))
			j++;
		double d;
		if (j > i && text_number_parse(s + i, j - i, &d) == 1) {
			*tlen = j - i;
			return s + i;
		}
		if (j > i)
			i = j - 1;
	}
	return NULL;
}

/* Why jansson refused the payload, as a rejection. */
static void parse_failure(struct cleaner *c, struct cleaner_result *res, const char *payload,
                          size_t len, const json_error_t *jerr)
{
	double d;
	char text[sizeof(jerr->text)], snip[64];
	const char *p = payload;
	size_t n = len;
	while (n && (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n'))
		p++, n--;
	while (n && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r' || p[n - 1] == '\n'))
		n--;
	if (text_number_parse(p, n, &d) == 1) {
		/* A bare NaN, -Infinity or 1e999. */
		reject_whole(c, res, CLEANER_VALUE_NOT_FINITE, "value: not a finite number: %s",
		             text_snippet(p, n, snip, sizeof(snip)));
		return;
	}
	if (json_error_code(jerr) == json_error_invalid_utf8) {
		reject_whole(c, res, CLEANER_PAYLOAD_NOT_UTF8,
		             "payload: invalid UTF-8 near byte %d", jerr->position);
		return;
	}
	size_t tlen;
	const char *tok = nonfinite_token(payload, len, &tlen);
	if (tok) {
		reject_whole(c, res, CLEANER_VALUE_NOT_FINITE,
		             "value: not a finite number: %s at byte %zu (not valid JSON)",
		             text_snippet(tok, tlen, snip, sizeof(snip)), (size_t)(tok - payload));
		return;
	}
	ascii_copy(text, sizeof(text), jerr->text);
	reject_whole(c, res, CLEANER_JSON_MALFORMED, "payload: invalid JSON: %s (byte %d)", text,
	             jerr->position);
}

struct message {
	const struct topic *topic;
	const struct mapping_rule *rule;
	struct validate_ctx vctx;
};

static int element_clean(struct cleaner *c, const struct message *m, const json_t *elem, long index,
                         struct rejections *rj)
{
	struct cand cand;
	struct clean k;
	struct verdict v;
	cand_reset(&cand);
	int rc;
	enum cleaner_format f = c->format;
	if (m->rule) {
		f = mapping_rule_format(m->rule);
		rc = f == CLEANER_FORMAT_AUTO ? mapping_extract(m->rule, elem, m->topic, &cand, &v)
		                              : format_extract(f, elem, m->topic, &cand, &v);
	} else {
		if (f == CLEANER_FORMAT_AUTO)
			f = format_detect(elem);
		rc = format_extract(f, elem, m->topic, &cand, &v);
	}
	if (rc == 0)
		rc = cand_validate(&m->vctx, &cand, &k, &v);
	if (rc) {
		reject(c, rj, index, &v);
		return 0;
	}
	json_t *r =
	    reading_build(&cand, &k, m->vctx.received_at, c->nspare ? c->spare[--c->nspare] : NULL);
	if (!r || json_array_append_new(rj->res->readings, r))
		return -1;
	c->stats.readings++;
	return 0;
}

/* Keeps the previous message's Readings that only the result holds, for reading_build to fill
 * again, and empties the result. */
static void readings_recycle(struct cleaner *c, struct cleaner_result *res)
{
	size_t i;
	json_t *r;
	json_array_foreach(res->readings, i, r)
	{
		if (c->nspare == SPARE_MAX)
			break;
		if (r->refcount == 1)
			c->spare[c->nspare++] = json_incref(r);
	}
	json_array_clear(res->readings);
}

int cleaner_process(struct cleaner *c, const json_t *raw, int64_t now_ms,
                    struct cleaner_result *res)
{
	readings_recycle(c, res);
	res->code = CLEANER_OK;
	res->reason[0] = 0;
	res->elements = 0;
	res->rejected = 0;
	c->stats.messages++;

	const json_t *jtopic = json_object_get(raw, "topic");
	const json_t *jpayload = json_object_get(raw, "payload");
	const json_t *jrecv = json_object_get(raw, "received_at");
	if (!json_is_string(jtopic) || !json_is_string(jpayload) || !json_is_integer(jrecv)) {
		reject_whole(c, res, CLEANER_RAW_INVALID,
		             "raw: expected topic and payload strings and received_at");
		return 0;
	}
	const char *payload = json_string_value(jpayload);
	size_t len = json_string_length(jpayload);
	if (len > c->max_payload) {
		reject_whole(c, res, CLEANER_PAYLOAD_TOO_LARGE,
		             "payload: %zu bytes, over max-payload %zu", len, c->max_payload);
		return 0;
	}
	if (blank(payload, len)) {
		reject_whole(c, res, CLEANER_PAYLOAD_EMPTY, "payload: empty");
		return 0;
	}
	size_t nul;
	switch (payload_scan(payload, len, CLEANER_MAX_DEPTH, &nul)) {
	case 1:
		reject_whole(c, res, CLEANER_PAYLOAD_TOO_DEEP, "payload: nested deeper than %d",
		             CLEANER_MAX_DEPTH);
		return 0;
	case 2:
		reject_whole(c, res, CLEANER_JSON_MALFORMED, "payload: NUL byte at %zu", nul);
		return 0;
	}

	/* The fast parser takes valid payloads; jansson judges the rest, with its reasons. */
	json_error_t jerr;
	json_t *root = payload_parse(payload, len);
	if (!root)
		root = json_loadb(payload, len,
		                  JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
	if (!root) {
		parse_failure(c, res, payload, len, &jerr);
		return 0;
	}

	struct topic topic;
	topic_split(&topic, json_string_value(jtopic), json_string_length(jtopic));
	struct message m = {
	    .topic = &topic,
	    .rule = mapping_match(c->mapping, &topic),
	    .vctx = {.limits = &c->limits,
	             .now_ms = now_ms,
	             .received_at = json_integer_value(jrecv),
	             .max_age_ms = c->max_age_ms,
	             .max_skew_ms = c->max_skew_ms},
	};
	struct rejections rj = {.res = res};
	int rc = 0;
	if (json_is_array(root)) {
		size_t n = json_array_size(root);
		if (n == 0) {
			reject_whole(c, res, CLEANER_PAYLOAD_EMPTY, "payload: empty array");
		} else if (n > c->max_batch) {
			reject_whole(c, res, CLEANER_BATCH_TOO_LARGE,
			             "payload: %zu elements, over max-batch %zu", n, c->max_batch);
		} else {
			res->elements = n;
			for (size_t i = 0; i < n && !rc; i++)
				rc = element_clean(c, &m, json_array_get(root, i), (long)i, &rj);
			if (res->rejected) {
				size_t l = rj.len;
				if (rj.omitted)
					l += (size_t)snprintf(res->reason + l,
					                      sizeof(res->reason) - l, "; %zu more",
					                      rj.omitted);
				snprintf(res->reason + l, sizeof(res->reason) - l,
				         " (%zu of %zu elements rejected)", res->rejected, n);
			}
		}
	} else {
		res->elements = 1;
		rc = element_clean(c, &m, root, -1, &rj);
	}
	json_decref(root);
	return rc;
}
