/* A plaintext TCP connection to one Kafka broker for the relay's batch path: one request at a
 * time, every wait bounded by a deadline, responses read whole into a buffer the connection
 * keeps (and reuses) so a steady stream of fetches allocates nothing. */
#ifndef MIRROR_RELAY_CONN_H
#define MIRROR_RELAY_CONN_H

#include "kwire.h"

#include <stddef.h>
#include <stdint.h>

struct conn {
	int fd; /* -1 while closed */
	int32_t corr; /* correlation id of the request in flight */
	char name[300]; /* "host:port", for messages */
	struct wbuf in; /* the last response */
};

void conn_init(struct conn *c);
/* Connects (closing any previous connection). Returns 0 or -1 with the reason. */
int conn_open(struct conn *c, const char *host, int port, int timeout_ms, char *err,
	      size_t errlen);
void conn_close(struct conn *c);
/* conn_close and frees the buffer. */
void conn_free(struct conn *c);
/* Sends a whole request (kwire_request_begin/end in b) with the correlation id corr. Returns 0,
 * or -1 with the reason (the connection is then closed). */
int conn_send(struct conn *c, const struct wbuf *b, int32_t corr, int timeout_ms, char *err,
	      size_t errlen);
/* Reads the response to the request in flight: *body and *len are what follows the correlation
 * id, valid until the next call. A response larger than max bytes, a wrong correlation id, a
 * closed connection or the timeout: -1 with the reason, and the connection is closed. */
int conn_recv(struct conn *c, const uint8_t **body, size_t *len, size_t max, int timeout_ms,
	      char *err, size_t errlen);

#endif
