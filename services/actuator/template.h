/* Command templates: MQTT topics and payloads with placeholders filled from a reading.
 *
 * Placeholders: {site} {device} {sensor} {metric} {value} {rule}. A '{' that does not start one
 * of these is literal text, and "{{" writes a single '{' (only needed to write a literal
 * "{site}"); an unknown "{name}" made of lower-case letters and '_' is an error, to catch typos.
 *
 * Kinds:
 *   topic  every substituted text must be a whole, safe topic piece: not empty, no '+', '#' or
 *          '/', valid UTF-8; the finished topic must not start with '$' nor exceed 65535 bytes.
 *          {value} is not allowed (a number like 1e+20 contains '+').
 *   json   the template is JSON; placeholders inside a JSON string are JSON-escaped; outside a
 *          string only {value} may appear (as a number). Checked at compile time by parsing the
 *          template filled with sample values.
 *   text   substituted verbatim (valid UTF-8 required, as payloads are also audit records).
 * {value} is written with the fewest of 15, 16 or 17 significant digits that read back as the
 * same double (fmt_double), so "21.3" stays "21.3". */
#ifndef IOTPIPE_ACTUATOR_TEMPLATE_H
#define IOTPIPE_ACTUATOR_TEMPLATE_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>

enum tmpl_kind { TMPL_TOPIC, TMPL_JSON, TMPL_TEXT };

enum tmpl_status {
	TMPL_OK = 0,
	TMPL_REFUSED = -1, /* a substituted value is not allowed here: count it, publish nothing */
	TMPL_NOMEM = -2,
};

/* What placeholders are replaced with. Strings are borrowed and NUL-terminated. */
struct tmpl_vars {
	const char *site, *device, *sensor, *metric, *rule;
	double value;
};

struct tmpl;

/* True when a payload template should be treated as JSON: its first non-blank character is '['
 * or a '{' that does not open a placeholder. */
bool tmpl_looks_json(const char *text);

/* Compiles text. Returns NULL with the reason in err ("unknown placeholder {sitee}", ...).
 * The template copies what it needs; free with tmpl_free (accepts NULL). */
struct tmpl *tmpl_compile(const char *text, enum tmpl_kind kind, char *err, size_t errlen);
void tmpl_free(struct tmpl *t);

/* The source text and kind the template was compiled from. */
const char *tmpl_text(const struct tmpl *t);
enum tmpl_kind tmpl_kind_of(const struct tmpl *t);
/* True when the template uses placeholder var ("site", "value", ...). */
bool tmpl_uses(const struct tmpl *t, const char *var);

/* Renders into out (reset first, NUL-terminated, the NUL not counted in out->len).
 * Returns TMPL_OK, TMPL_REFUSED with the reason in err (naming the field and quoting the value
 * safely), or TMPL_NOMEM. Allocates only when out must grow. */
int tmpl_render(const struct tmpl *t, const struct tmpl_vars *v, struct buf *out, char *err,
                size_t errlen);

#endif
