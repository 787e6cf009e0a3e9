#define _GNU_SOURCE
#include "agent_conn.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "proto.h"
#include "vm_proc.h"

#define AGENT_RETRY_MAX_MS 100

double runner_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int ms_until(double limit)
{
	double left = limit - runner_now_ms();
	return left <= 0 ? 0 : (int)left + 1;
}

/* Reads exactly len bytes by limit. Returns 0, or -1 (EOF, error, time,
 * *stop). */
static int read_full_by(int fd, void *buf, size_t len, double limit, volatile sig_atomic_t *stop)
{
	size_t got = 0;
	while (got < len) {
		if (stop && *stop)
			return -1;
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int left = ms_until(limit);
		int r = poll(&p, 1, left < 200 ? left : 200);
		if ((r < 0 && errno == EINTR) || (r == 0 && left > 200))
			continue;
		if (r <= 0)
			return -1;
		ssize_t n = read(fd, (char *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		got += (size_t)n;
	}
	return 0;
}

/* One "CONNECT" attempt: the fd, -1 to try again (no socket yet, nobody
 * listening in the guest yet), or -2 with a reason (the device said
 * something else than OK). */
static int try_connect(const char *sock_path, double limit, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -2;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	char line[64];
	int l = snprintf(line, sizeof(line), "CONNECT %u\n", RUNNER_AGENT_PORT);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || send(fd, line, (size_t)l, MSG_NOSIGNAL) != l) {
		close(fd);
		return -1;
	}
	/* The answer is one short line; read it a byte at a time so that
	 * nothing of the agent's stream is taken with it. */
	for (size_t got = 0; got < sizeof(line) - 1; got++) {
		if (read_full_by(fd, line + got, 1, limit, stop) < 0)
			break; /* closed: refused, the agent is not listening yet */
		if (line[got] != '\n')
			continue;
		line[got] = '\0';
		if (strncmp(line, "OK ", 3) == 0)
			return fd;
		snprintf(err, errlen, "the vsock device answered '%s' to CONNECT", line);
		close(fd);
		return -2;
	}
	close(fd);
	return -1;
}

int agent_connect(const char *sock_path, struct vm_proc *vm, double limit_ms, volatile sig_atomic_t *stop,
		  char *err, size_t errlen)
{
	long wait_ms = 5;
	for (;;) {
		if (stop && *stop) {
			snprintf(err, errlen, "stopped by a signal");
			return AGENT_CONN_FAILED;
		}
		if (!vm_proc_running(vm)) {
			char how[600];
			vm_proc_explain(vm, how, sizeof(how));
			snprintf(err, errlen, "the VM ended before its agent answered (minivmm %s)", how);
			return AGENT_CONN_FAILED;
		}
		if (runner_now_ms() >= limit_ms) {
			snprintf(err, errlen, "the agent did not answer in time");
			return AGENT_CONN_TIMEOUT;
		}
		int fd = try_connect(sock_path, limit_ms, stop, err, errlen);
		if (fd >= 0)
			return fd;
		if (fd == -2)
			return AGENT_CONN_FAILED;
		/* A restored agent answers the first time; a booting guest
		 * refuses until its agent listens, and each refusal costs it a
		 * request and a reset on its vsock queues while it boots: back
		 * off, up to AGENT_RETRY_MAX_MS between tries. */
		nanosleep(&(struct timespec){ .tv_nsec = wait_ms * 1000 * 1000 }, NULL);
		wait_ms = wait_ms * 2 > AGENT_RETRY_MAX_MS ? AGENT_RETRY_MAX_MS : wait_ms * 2;
	}
}

int agent_hello(int fd, double limit_ms, volatile sig_atomic_t *stop, char *err, size_t errlen)
{
	uint8_t msg[RUNNER_FRAME_HDR + 4];
	runner_hdr_encode(msg, RF_HELLO, 4);
	runner_u32_encode(msg + RUNNER_FRAME_HDR, RUNNER_PROTO_VERSION);
	if (send(fd, msg, sizeof(msg), MSG_NOSIGNAL) != (ssize_t)sizeof(msg)) {
		snprintf(err, errlen, "sending HELLO: %s", strerror(errno));
		return -1;
	}
	uint8_t hdr[RUNNER_FRAME_HDR], payload[4];
	struct runner_frame_hdr h;
	uint32_t v = 0;
	if (read_full_by(fd, hdr, sizeof(hdr), limit_ms, stop) < 0) {
		snprintf(err, errlen, "no READY from the agent");
		return -1;
	}
	if (runner_hdr_decode(hdr, &h, err, errlen) < 0)
		return -1;
	if (h.type != RF_READY) {
		snprintf(err, errlen, "the agent answered HELLO with %s", runner_type_name(h.type));
		return -1;
	}
	if (read_full_by(fd, payload, sizeof(payload), limit_ms, stop) < 0 ||
	    runner_u32_decode(payload, h.len, &v, err, errlen) < 0) {
		snprintf(err, errlen, "a broken READY from the agent");
		return -1;
	}
	if (v != RUNNER_PROTO_VERSION) {
		snprintf(err, errlen, "the agent speaks protocol %u, the runner %u", v, RUNNER_PROTO_VERSION);
		return -1;
	}
	return 0;
}
