#define _GNU_SOURCE
#include "devices/vsock/vsock_conn.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/iov.h"

/* Every send: never block the device thread, and a host client that went
 * away is an EPIPE to handle, not a SIGPIPE. */
#define SEND_FLAGS (MSG_DONTWAIT | MSG_NOSIGNAL)

int vsock_conns_init(struct vsock_conns *t)
{
	memset(t, 0, sizeof(*t));
	t->next_gen = 1;
	t->next_local_port = VSOCK_LOCAL_PORT_FIRST;
	t->rx_epoll = epoll_create1(EPOLL_CLOEXEC);
	t->io_epoll = epoll_create1(EPOLL_CLOEXEC);
	if (t->rx_epoll < 0 || t->io_epoll < 0) {
		int e = errno;
		vsock_conns_fini(t);
		errno = e;
		return -1;
	}
	return 0;
}

void vsock_conns_fini(struct vsock_conns *t)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (t->slot[i])
			vsock_conn_free(t, t->slot[i]);
	if (t->rx_epoll >= 0)
		close(t->rx_epoll);
	if (t->io_epoll >= 0)
		close(t->io_epoll);
	t->rx_epoll = t->io_epoll = -1;
}

struct vsock_conn *vsock_conn_new(struct vsock_conns *t, enum vsock_conn_state s)
{
	if (t->n_used >= VSOCK_MAX_CONNS)
		return NULL;
	unsigned i = 0;
	while (t->slot[i])
		i++;   /* n_used < VSOCK_MAX_CONNS: a free slot exists */
	struct vsock_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->state = s;
	c->slot = i;
	c->gen = t->next_gen++;
	if (!t->next_gen)
		t->next_gen = 1;   /* 0 is never a generation: no token is all zeros */
	c->fd = -1;
	t->slot[i] = c;
	t->n_used++;
	return c;
}

void vsock_conn_close_host(struct vsock_conns *t, struct vsock_conn *c)
{
	/* Out of both sets before the close: a socket closed while registered
	 * would stay in them if anything else held it open. */
	if (c->in_rx_set)
		epoll_ctl(t->rx_epoll, EPOLL_CTL_DEL, c->fd, NULL);
	if (c->in_io_set)
		epoll_ctl(t->io_epoll, EPOLL_CTL_DEL, c->fd, NULL);
	c->in_rx_set = c->in_io_set = false;
	c->io_events = 0;
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->buf_head = c->buf_len = 0;
}

void vsock_conn_free(struct vsock_conns *t, struct vsock_conn *c)
{
	vsock_conn_close_host(t, c);
	t->slot[c->slot] = NULL;
	t->n_used--;
	free(c);
}

struct vsock_conn *vsock_conn_find(const struct vsock_conns *t, uint32_t local_port, uint32_t peer_port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		const struct vsock_conn *c = t->slot[i];
		if (c && c->state != VSOCK_CONN_HOST_LINE && c->local_port == local_port && c->peer_port == peer_port)
			return t->slot[i];
	}
	return NULL;
}

static uint64_t token(const struct vsock_conn *c)
{
	return (uint64_t)c->gen << 32 | c->slot;
}

struct vsock_conn *vsock_conn_by_token(const struct vsock_conns *t, uint64_t tok)
{
	uint32_t slot = (uint32_t)tok;
	if (tok == VSOCK_TOKEN_LISTEN || slot >= VSOCK_MAX_CONNS || !t->slot[slot])
		return NULL;
	return t->slot[slot]->gen == (uint32_t)(tok >> 32) ? t->slot[slot] : NULL;
}

static bool local_port_in_use(const struct vsock_conns *t, uint32_t port)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (t->slot[i] && t->slot[i]->state != VSOCK_CONN_HOST_LINE && t->slot[i]->local_port == port)
			return true;
	return false;
}

uint32_t vsock_conn_alloc_port(struct vsock_conns *t)
{
	/* At most VSOCK_MAX_CONNS ports are in use: one of this many is free. */
	uint32_t p = VSOCK_LOCAL_PORT_FIRST;
	for (unsigned tries = 0; tries <= VSOCK_MAX_CONNS; tries++) {
		p = t->next_local_port;
		t->next_local_port = p == UINT32_MAX ? VSOCK_LOCAL_PORT_FIRST : p + 1;
		if (!local_port_in_use(t, p))
			break;
	}
	return p;
}

uint32_t vsock_conn_guest_room(const struct vsock_conn *c)
{
	return vsock_peer_free(c->peer_buf_alloc, c->peer_fwd_cnt, c->tx_cnt, VSOCK_MAX_PAYLOAD);
}

static bool wants_rx(const struct vsock_conn *c)
{
	/* No data before the RESPONSE that opens the connection for the guest. */
	return c->state == VSOCK_CONN_ESTABLISHED && c->fd >= 0 && !c->host_eof && !c->guest_no_rcv &&
	       !(c->pending & VSOCK_PEND_RESPONSE) && vsock_conn_guest_room(c) > 0;
}

/* Whether c belongs in the io set, and for which events. */
static bool wants_io(const struct vsock_conn *c, uint32_t *events)
{
	*events = 0;
	if (c->fd < 0)
		return false;
	if (c->state == VSOCK_CONN_HOST_LINE) {
		*events = EPOLLIN;
		return true;
	}
	if (c->buf_len) {
		*events = EPOLLOUT;
		return true;
	}
	/* Done sending: only its hang-up (EPOLLHUP is always reported) is
	 * news. Not before its EOF was read: a client that closes with bytes
	 * the guest has no room for yet would report it for ever. */
	return c->state == VSOCK_CONN_ESTABLISHED && c->host_eof;
}

int vsock_conn_sync(struct vsock_conns *t, struct vsock_conn *c)
{
	bool rx = wants_rx(c);
	if (rx != c->in_rx_set) {
		struct epoll_event ev = { .events = EPOLLIN, .data.u64 = token(c) };
		if (epoll_ctl(t->rx_epoll, rx ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, c->fd, &ev) < 0)
			return -1;
		c->in_rx_set = rx;
	}
	uint32_t events;
	bool io = wants_io(c, &events);
	if (io != c->in_io_set || (io && events != c->io_events)) {
		struct epoll_event ev = { .events = events, .data.u64 = token(c) };
		int op = !io ? EPOLL_CTL_DEL : c->in_io_set ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
		if (epoll_ctl(t->io_epoll, op, c->fd, &ev) < 0)
			return -1;
		c->in_io_set = io;
		c->io_events = events;
	}
	return 0;
}

/* ---- host socket I/O ---- */

int vsock_host_connect(const char *uds_path, uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int n = snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", uds_path, port);
	if (n < 0 || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;   /* virtio_vsock_create keeps uds_path short enough */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	/* A Unix stream connect completes at once or fails (EAGAIN: backlog full). */
	if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

static ssize_t recv_iov(int fd, const struct iovec *iov, unsigned n, int flags)
{
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
	ssize_t r;
	do
		r = recvmsg(fd, &m, flags | MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	return r;
}

static ssize_t send_iov(int fd, const struct iovec *iov, unsigned n)
{
	struct msghdr m = { .msg_iov = (struct iovec *)iov, .msg_iovlen = n };
	ssize_t r;
	do
		r = sendmsg(fd, &m, SEND_FLAGS);
	while (r < 0 && errno == EINTR);
	return r;
}

int vsock_conn_read_line(struct vsock_conn *c, uint32_t *port)
{
	char peek[VSOCK_CONNECT_LINE_MAX];
	size_t room = VSOCK_CONNECT_LINE_MAX - c->line_len;
	if (!room)
		return -1;
	/* Peek, then take exactly up to the newline: bytes after it belong
	 * to the stream the guest gets once the connection is up. */
	struct iovec iov = { .iov_base = peek, .iov_len = room };
	ssize_t n = recv_iov(c->fd, &iov, 1, MSG_PEEK);
	if (n < 0)
		return errno == EAGAIN ? 0 : -1;
	if (n == 0)
		return -1;   /* gone before its line */
	char *nl = memchr(peek, '\n', (size_t)n);
	size_t take = nl ? (size_t)(nl - peek) + 1 : (size_t)n;
	iov = (struct iovec){ .iov_base = c->line + c->line_len, .iov_len = take };
	if (recv_iov(c->fd, &iov, 1, 0) != (ssize_t)take)
		return -1;
	c->line_len += (unsigned)take;
	if (nl)
		return vsock_parse_connect_line(c->line, c->line_len, port) == 0 ? 1 : -1;
	return c->line_len < VSOCK_CONNECT_LINE_MAX ? 0 : -1;
}

int vsock_conn_send_ok(const struct vsock_conn *c)
{
	char line[24];
	int n = snprintf(line, sizeof(line), "OK %u\n", c->local_port);
	struct iovec iov = { .iov_base = line, .iov_len = (size_t)n };
	/* Nothing was written to this socket before: its buffer has room. */
	ssize_t w = send_iov(c->fd, &iov, 1);
	if (w < 0)
		return -errno;
	return w == n ? 0 : -EAGAIN;
}

int vsock_conn_write(struct vsock_conn *c, const struct iovec *iov, unsigned n, uint32_t len)
{
	uint32_t done = 0;
	if (!c->buf_len && len) {
		ssize_t w = send_iov(c->fd, iov, n);
		if (w < 0 && errno != EAGAIN)
			return -errno;
		if (w > 0)
			done = (uint32_t)w;
	}
	c->rx_cnt += len;
	c->fwd_cnt += done;
	uint32_t rest = len - done;
	if (!rest)
		return 0;
	if (rest > VSOCK_CONN_BUF_SIZE - c->buf_len)
		return -ENOBUFS;   /* the credit check makes this impossible */
	if (!c->buf && !(c->buf = malloc(VSOCK_CONN_BUF_SIZE)))
		return -ENOMEM;
	/* Into the ring after what it holds, in at most two pieces. */
	uint32_t tail = (c->buf_head + c->buf_len) % VSOCK_CONN_BUF_SIZE;
	uint32_t first = VSOCK_CONN_BUF_SIZE - tail < rest ? VSOCK_CONN_BUF_SIZE - tail : rest;
	iov_to_buf(iov, n, done, c->buf + tail, first);
	iov_to_buf(iov, n, (uint64_t)done + first, c->buf, rest - first);
	c->buf_len += rest;
	return 0;
}

int vsock_conn_flush(struct vsock_conn *c)
{
	while (c->buf_len) {
		uint32_t first = VSOCK_CONN_BUF_SIZE - c->buf_head;
		if (first > c->buf_len)
			first = c->buf_len;
		struct iovec iov[2] = {
			{ .iov_base = c->buf + c->buf_head, .iov_len = first },
			{ .iov_base = c->buf, .iov_len = c->buf_len - first },
		};
		ssize_t w = send_iov(c->fd, iov, iov[1].iov_len ? 2 : 1);
		if (w < 0)
			return errno == EAGAIN ? 0 : -errno;
		c->buf_head = (c->buf_head + (uint32_t)w) % VSOCK_CONN_BUF_SIZE;
		c->buf_len -= (uint32_t)w;
		c->fwd_cnt += (uint32_t)w;
	}
	/* An idle connection holds no buffer. */
	free(c->buf);
	c->buf = NULL;
	c->buf_head = 0;
	return 0;
}

long vsock_conn_read(const struct vsock_conn *c, const struct iovec *iov, unsigned n)
{
	ssize_t r = recv_iov(c->fd, iov, n, 0);
	return r < 0 ? -errno : (long)r;
}

bool vsock_conn_host_hung_up(const struct vsock_conn *c)
{
	struct pollfd p = { .fd = c->fd, .events = 0 };
	return c->fd < 0 || (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR)));
}
