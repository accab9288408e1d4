/* Broker connections of the batch path (see conn.h). */
#include "conn.h"

#include "lifecycle.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

void conn_init(struct conn *c)
{
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

void conn_close(struct conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void conn_free(struct conn *c)
{
	conn_close(c);
	wbuf_free(&c->in);
}

/* Waits until fd is ready for events or the deadline passes. Returns 0, or -1 (err). */
static int wait_fd(struct conn *c, short events, int64_t deadline, const char *what, char *err,
		   size_t errlen)
{
	for (;;) {
		int64_t left = deadline - now_mono_ms();
		if (left <= 0) {
			snprintf(err, errlen, "%s %s: timed out", c->name, what);
			return -1;
		}
		struct pollfd p = {.fd = c->fd, .events = events};
		int n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n < 0 && errno != EINTR) {
			snprintf(err, errlen, "%s %s: poll: %s", c->name, what, strerror(errno));
			return -1;
		}
	}
}

int conn_open(struct conn *c, const char *host, int port, int timeout_ms, char *err,
	      size_t errlen)
{
	conn_close(c);
	snprintf(c->name, sizeof(c->name), "%s:%d", host, port);
	char service[16];
	snprintf(service, sizeof(service), "%d", port);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
	int rc = getaddrinfo(host, service, &hints, &res);
	if (rc) {
		snprintf(err, errlen, "%s: %s", c->name, gai_strerror(rc));
		return -1;
	}
	int64_t deadline = now_mono_ms() + timeout_ms;
	snprintf(err, errlen, "%s: no address", c->name);
	for (struct addrinfo *a = res; a; a = a->ai_next) {
		int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				a->ai_protocol);
		if (fd < 0) {
			snprintf(err, errlen, "%s: socket: %s", c->name, strerror(errno));
			continue;
		}
		c->fd = fd;
		if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
			snprintf(err, errlen, "%s: connect: %s", c->name, strerror(errno));
			conn_close(c);
			continue;
		}
		int soerr = 0;
		socklen_t sl = sizeof(soerr);
		if (wait_fd(c, POLLOUT, deadline, "connect", err, errlen) < 0 ||
		    getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			if (soerr)
				snprintf(err, errlen, "%s: connect: %s", c->name, strerror(soerr));
			conn_close(c);
			continue;
		}
		/* Requests are written whole; waiting for more would only delay them. */
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		break;
	}
	freeaddrinfo(res);
	return c->fd >= 0 ? 0 : -1;
}

int conn_send(struct conn *c, const struct wbuf *b, int32_t corr, int timeout_ms, char *err,
	      size_t errlen)
{
	if (c->fd < 0) {
		snprintf(err, errlen, "%s: not connected", c->name);
		return -1;
	}
	int64_t deadline = now_mono_ms() + timeout_ms;
	size_t done = 0;
	while (done < b->len) {
		ssize_t n = send(c->fd, b->p + done, b->len - done, MSG_NOSIGNAL);
		if (n > 0) {
			done += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c, POLLOUT, deadline, "send", err, errlen) < 0)
				goto fail;
			continue;
		}
		snprintf(err, errlen, "%s: send: %s", c->name, n < 0 ? strerror(errno) : "closed");
		goto fail;
	}
	c->corr = corr;
	return 0;
fail:
	conn_close(c);
	return -1;
}

/* Reads exactly n bytes into p. Returns 0 or -1 (err). */
static int read_full(struct conn *c, uint8_t *p, size_t n, int64_t deadline, char *err,
		     size_t errlen)
{
	size_t done = 0;
	while (done < n) {
		ssize_t r = recv(c->fd, p + done, n - done, 0);
		if (r > 0) {
			done += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (wait_fd(c, POLLIN, deadline, "receive", err, errlen) < 0)
				return -1;
			continue;
		}
		snprintf(err, errlen, "%s: receive: %s", c->name,
			 r < 0 ? strerror(errno) : "connection closed by the broker");
		return -1;
	}
	return 0;
}

int conn_recv(struct conn *c, const uint8_t **body, size_t *len, size_t max, int timeout_ms,
	      char *err, size_t errlen)
{
	if (c->fd < 0) {
		snprintf(err, errlen, "%s: not connected", c->name);
		return -1;
	}
	int64_t deadline = now_mono_ms() + timeout_ms;
	uint8_t head[8];
	if (read_full(c, head, 4, deadline, err, errlen) < 0)
		goto fail;
	uint32_t size = (uint32_t)head[0] << 24 | (uint32_t)head[1] << 16 |
			(uint32_t)head[2] << 8 | head[3];
	if (size < 4 || size > max) {
		snprintf(err, errlen, "%s: response of %u bytes (limit %zu)", c->name, size, max);
		goto fail;
	}
	wbuf_reset(&c->in);
	uint8_t *p = wbuf_room(&c->in, size);
	if (!p) {
		snprintf(err, errlen, "%s: out of memory for a response of %u bytes", c->name,
			 size);
		goto fail;
	}
	if (read_full(c, p, size, deadline, err, errlen) < 0)
		goto fail;
	c->in.len = size;
	int32_t corr = (int32_t)((uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
				 (uint32_t)p[2] << 8 | p[3]);
	if (corr != c->corr) {
		snprintf(err, errlen, "%s: response to request %d, expected %d", c->name,
			 (int)corr, (int)c->corr);
		goto fail;
	}
	*body = p + 4;
	*len = size - 4;
	return 0;
fail:
	conn_close(c);
	return -1;
}
