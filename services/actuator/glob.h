/* Shell-style patterns for matching identifiers (site, device, sensor) in rules.
 *
 * '*' matches any run of characters (also none), '?' exactly one character (a whole UTF-8
 * sequence), '\' makes the next character literal; everything else matches itself, byte for
 * byte and case-sensitively. No character classes: identifiers are short and a rule that needs
 * alternatives is clearer as two rules. */
#ifndef IOTPIPE_ACTUATOR_GLOB_H
#define IOTPIPE_ACTUATOR_GLOB_H

#include <stdbool.h>
#include <stddef.h>

/* Returns 0 when pattern is well formed, else -1 with the reason (a trailing '\'). */
int glob_check(const char *pattern, char *err, size_t errlen);

/* True when s matches the whole pattern. Runs in O(len(pattern) * len(s)) at worst: only the
 * last '*' is ever backtracked to, so hostile strings cannot make it exponential. */
bool glob_match(const char *pattern, const char *s);

/* True when the pattern has no '*' or '?' (it matches one string only). */
bool glob_is_literal(const char *pattern);

#endif
