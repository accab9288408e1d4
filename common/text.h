/* Text helpers used wherever bytes from outside become strings: UTF-8 validation and base64,
 * and the error message of a decoder. */
#ifndef IOTPIPE_TEXT_H
#define IOTPIPE_TEXT_H

#include "buf.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True when s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, <= U+10FFFF). */
bool utf8_valid(const void *s, size_t len);

/* Standard base64 with padding. Encode appends to out; returns 0 or -1 (out of memory). */
int base64_encode(const void *data, size_t len, struct buf *out);
/* Decodes standard base64 (padding optional, no whitespace). Returns 0 or -1 on bad input. */
int base64_decode(const char *s, size_t len, struct buf *out);

/* Writes a formatted message to err (errlen bytes) for decoders that report why input was
 * refused; err may be NULL or errlen 0, when the caller only wants the verdict. */
void errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
