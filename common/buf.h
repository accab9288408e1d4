/* A growable byte buffer. The zero value ({0}) is an empty buffer; buf_free() releases it. */
#ifndef IOTPIPE_BUF_H
#define IOTPIPE_BUF_H

#include <stddef.h>
#include <stdint.h>

struct buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};

/* Each returns 0, or -1 when memory runs out (the buffer is then unchanged). */
int buf_reserve(struct buf *b, size_t extra);
int buf_append(struct buf *b, const void *data, size_t len);
int buf_putc(struct buf *b, uint8_t c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Makes data a NUL-terminated string without counting the NUL in len. */
int buf_terminate(struct buf *b);
void buf_reset(struct buf *b);
void buf_free(struct buf *b);

#endif
