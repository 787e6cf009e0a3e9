#define _GNU_SOURCE
#include "vmm/api.h"

#include <errno.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <libgen.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmm/base/eventfd_util.h"
#include "vmm/base/file_util.h"
#include "vmm/base/log.h"
#include "vmm/base/thread_start.h"

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void api_init(struct api_server *s)
{
	memset(s, 0, sizeof(*s));
	s->listen_fd = s->dir_fd = s->stop_efd = -1;
	s->idle_ms = API_IDLE_MS;
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		s->clients[i].fd = -1;
}

int api_open(struct api_server *s, const char *path)
{
	char err[512];
	snprintf(s->path, sizeof(s->path), "%s", path);
	s->listen_fd = unix_listener_open("--api-sock", path, API_MAX_CLIENTS, &s->dir_fd, s->name, sizeof(s->name),
					  err, sizeof(err));
	if (s->listen_fd < 0) {
		log_error("%s", err);
		return -1;
	}
	s->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->stop_efd < 0) {
		log_error("--api-sock %s: %s", path, strerror(errno));
		return -1;
	}
	/* json-c seeds its hash from getrandom or /dev/urandom the first time
	 * an object gets a key: now, before the sandbox forbids opening it. */
	json_object_put(json_object_new_object());
	struct json_object *warm = json_object_new_object();
	json_object_object_add(warm, "k", NULL);
	json_object_put(warm);
	return 0;
}

static void drop_fds(struct api_client *c)
{
	for (unsigned i = 0; i < c->n_fds; i++)
		close(c->fds[i]);
	c->n_fds = 0;
}

static void client_close(struct api_client *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	c->len = 0;
	drop_fds(c);
}

/* Sends one whole line or closes the client: one that does not read its
 * replies does not get to hold the thread. */
static void client_send(struct api_client *c, char *line)
{
	size_t n = line ? strlen(line) : 0;
	if (!line || send(c->fd, line, n, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)n)
		client_close(c);
	free(line);
}

static void client_error_close(struct api_client *c, const char *msg)
{
	client_send(c, api_proto_error(msg));
	client_close(c);
}

/* Serves every whole line in the client's buffer. */
static void client_lines(struct api_server *s, struct api_client *c)
{
	char *nl;
	while (c->fd >= 0 && (nl = memchr(c->buf, '\n', c->len))) {
		size_t n = (size_t)(nl - c->buf);
		client_send(c, api_proto_handle(s->ops, s->ctx, c->buf, n, c->fds, c->n_fds));
		drop_fds(c);   /* they came with this request */
		c->len -= n + 1;
		memmove(c->buf, nl + 1, c->len);
	}
	if (c->fd >= 0 && c->len == sizeof(c->buf)) {
		char msg[80];
		snprintf(msg, sizeof(msg), "request line longer than %d bytes: closed", API_LINE_MAX);
		client_error_close(c, msg);
	}
}

static void client_read(struct api_server *s, struct api_client *c)
{
	struct iovec iov = { c->buf + c->len, sizeof(c->buf) - c->len };
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * API_MAX_FDS * 2)];
	} control;
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = sizeof(control.buf) };
	ssize_t n = recvmsg(c->fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* Every fd that came is ours to close: kept for the request, up to
	 * API_MAX_FDS, the rest closed now. */
	for (struct cmsghdr *cm = n >= 0 ? CMSG_FIRSTHDR(&msg) : NULL; cm; cm = CMSG_NXTHDR(&msg, cm)) {
		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int fd;
			memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (c->n_fds < API_MAX_FDS)
				c->fds[c->n_fds++] = fd;
			else
				close(fd);
		}
	}
	if (n <= 0) {
		client_close(c);   /* gone, or an error: nothing to answer to */
		return;
	}
	c->len += (size_t)n;
	c->last_ns = now_ns();
	client_lines(s, c);
}

static void accept_clients(struct api_server *s)
{
	for (;;) {
		int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;   /* EAGAIN: all taken; anything else: the client's problem */
		struct api_client *c = NULL;
		for (unsigned i = 0; i < API_MAX_CLIENTS && !c; i++)
			if (s->clients[i].fd < 0)
				c = &s->clients[i];
		if (!c) {
			struct api_client extra = { .fd = fd };
			char msg[80];
			snprintf(msg, sizeof(msg), "too many clients (at most %d at once): closed", API_MAX_CLIENTS);
			client_error_close(&extra, msg);
			continue;
		}
		c->fd = fd;
		c->len = 0;
		c->n_fds = 0;
		c->last_ns = now_ns();
	}
}

/* Closes the clients silent for idle_ms; returns the ms until the next
 * one would be (-1: no clients). */
static int expire_idle(struct api_server *s)
{
	uint64_t now = now_ns(), idle = (uint64_t)s->idle_ms * 1000000ull, next = UINT64_MAX;
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++) {
		struct api_client *c = &s->clients[i];
		if (c->fd < 0)
			continue;
		if (now - c->last_ns >= idle) {
			char msg[80];
			snprintf(msg, sizeof(msg), "idle for %u ms: closed", s->idle_ms);
			client_error_close(c, msg);
		} else if (c->last_ns + idle - now < next) {
			next = c->last_ns + idle - now;
		}
	}
	return next == UINT64_MAX ? -1 : (int)(next / 1000000ull) + 1;
}

static void *api_main(void *arg)
{
	struct api_server *s = arg;
	for (;;) {
		int timeout = expire_idle(s);
		struct pollfd fds[2 + API_MAX_CLIENTS] = {
			{ .fd = s->stop_efd, .events = POLLIN },
			{ .fd = s->listen_fd, .events = POLLIN },
		};
		for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
			fds[2 + i] = (struct pollfd){ .fd = s->clients[i].fd, .events = POLLIN };
		if (poll(fds, 2 + API_MAX_CLIENTS, timeout) < 0) {
			if (errno == EINTR)
				continue;
			log_error("--api-sock %s: poll: %s", s->path, strerror(errno));
			break;
		}
		if (fds[0].revents)
			break;
		if (fds[1].revents & POLLIN)
			accept_clients(s);
		for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
			if (fds[2 + i].fd >= 0 && fds[2 + i].fd == s->clients[i].fd && fds[2 + i].revents)
				client_read(s, &s->clients[i]);
	}
	for (unsigned i = 0; i < API_MAX_CLIENTS; i++)
		client_close(&s->clients[i]);
	return NULL;
}

int api_start(struct api_server *s, const struct thread_starter *ts, const struct api_ops *ops, void *ctx)
{
	if (s->listen_fd < 0)
		return 0;
	s->ops = ops;
	s->ctx = ctx;
	int e = thread_start(ts, &s->thread, THREAD_ROLE_API, "api", api_main, s);
	if (e) {
		log_error("--api-sock %s: cannot start its thread: %s", s->path, strerror(e < 0 ? -e : e));
		return -1;
	}
	s->started = true;
	return 0;
}

void api_stop(struct api_server *s)
{
	if (!s->started)
		return;
	int e = eventfd_signal(s->stop_efd);
	if (e)
		log_warn("--api-sock %s: stop eventfd: %s", s->path, strerror(e));
	pthread_join(s->thread, NULL);
	s->started = false;
}

void api_close(struct api_server *s)
{
	api_stop(s);
	if (s->listen_fd >= 0) {
		close(s->listen_fd);
		/* From the directory opened before the sandbox: the path may
		 * not resolve any more (--chroot). Under --user the directory
		 * must be writable by that user. */
		if (unlinkat(s->dir_fd, s->name, 0) && errno != ENOENT)
			log_warn("--api-sock %s: cannot remove it: %s", s->path, strerror(errno));
	}
	if (s->dir_fd >= 0)
		close(s->dir_fd);
	if (s->stop_efd >= 0)
		close(s->stop_efd);
	s->listen_fd = s->dir_fd = s->stop_efd = -1;
}
