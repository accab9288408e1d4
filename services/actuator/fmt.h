/* Text the actuator writes: numbers in payloads, and hostile identifiers in error messages. */
#ifndef IOTPIPE_ACTUATOR_FMT_H
#define IOTPIPE_ACTUATOR_FMT_H

#include <stdbool.h>
#include <stddef.h>

/* Writes a short, printable rendition of s into out for an error message: at most about 48
 * characters, control bytes and invalid UTF-8 as \xNN, '"' and '\' escaped, "..." when
 * truncated. Hostile identifiers must never reach a log line raw. Returns out. */
const char *fmt_quote(const char *s, char *out, size_t outlen);

/* Formats a finite double with the fewest significant digits (15, 16 or 17) that read back as
 * the same double: 21.3 -> "21.3", 20 -> "20", 0.1 + 0.2 -> "0.30000000000000004". The result is
 * also a valid JSON number. out must hold at least 32 bytes. Returns the length. */
size_t fmt_double(double v, char *out, size_t outlen);

#endif
