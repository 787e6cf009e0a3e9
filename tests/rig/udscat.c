// SPDX-License-Identifier: MIT
/*
 * udscat: the host's end of the vsock tests, on Unix sockets (L1 has no socat).
 *
 *   udscat [-n BYTES] PATH [PORT]
 *                          connect to PATH; with PORT first say "CONNECT PORT\n" and
 *                          wait for the "OK ...\n" line (printed on stderr), as a host
 *                          program talks to minivmm's --vsock socket. Then stdin goes out,
 *                          what comes back goes to stdout; at stdin's EOF the write side
 *                          is shut down (with -n, only once BYTES came back: an echo
 *                          peer then never sees a half-closed stream), and it ends at
 *                          the peer's EOF.
 *   udscat -l PATH [N]     listen on PATH (created); serve N connections (default 1)
 *                          one after the other, echoing each back until its EOF.
 *
 * Exit status 0; 1 with a line on stderr (refused, no OK line, I/O error); 2 usage.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int die(const char *what)
{
	fprintf(stderr, "udscat: %s: %s\n", what, errno ? strerror(errno) : "failed");
	return 1;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

static int addr_of(const char *path, struct sockaddr_un *a)
{
	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(a->sun_path)) {
		fprintf(stderr, "udscat: %s: path too long\n", path);
		return -1;
	}
	strcpy(a->sun_path, path);
	return 0;
}

static int shuttle(int in, int sock, int out, unsigned long long hold_until)
{
	static char buf[65536];
	unsigned long long got = 0;
	bool in_eof = false;
	struct pollfd p[2] = { { .fd = in, .events = POLLIN }, { .fd = sock, .events = POLLIN } };
	for (;;) {
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return die("poll");
		}
		if (p[0].revents) {
			ssize_t n = read(in, buf, sizeof(buf));
			if (n < 0)
				return die("read stdin");
			if (n == 0) {
				in_eof = true;
				if (got >= hold_until)
					shutdown(sock, SHUT_WR);
				p[0].fd = -1;
			} else if (write_all(sock, buf, (size_t)n)) {
				return die("write to the socket");
			}
		}
		if (p[1].revents) {
			ssize_t n = read(sock, buf, sizeof(buf));
			if (n < 0)
				return die("read the socket");
			if (n == 0)
				return 0;
			if (write_all(out, buf, (size_t)n))
				return die("write stdout");
			got += (unsigned long long)n;
			if (in_eof && got >= hold_until && got - (unsigned long long)n < hold_until)
				shutdown(sock, SHUT_WR);
		}
	}
}

/* Reads the reply line byte by byte: what follows it is the stream's. */
static int expect_ok(int s)
{
	char line[64];
	size_t n = 0;
	while (n < sizeof(line) - 1) {
		ssize_t r = read(s, line + n, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			line[n] = '\0';
			fprintf(stderr, "udscat: no OK line (got \"%s\" then %s)\n", line, r ? strerror(errno) : "EOF");
			return -1;
		}
		if (line[n++] == '\n')
			break;
	}
	line[n] = '\0';
	if (strncmp(line, "OK ", 3)) {
		fprintf(stderr, "udscat: expected \"OK <port>\", got \"%s\"\n", line);
		return -1;
	}
	fprintf(stderr, "udscat: %s", line);
	return 0;
}

int main(int argc, char **argv)
{
	struct sockaddr_un a;
	unsigned long long hold_until = 0;
	if (argc >= 3 && !strcmp(argv[1], "-n")) {
		hold_until = strtoull(argv[2], NULL, 10);
		argv += 2;
		argc -= 2;
	}
	int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return die("socket");
	if (argc >= 3 && !strcmp(argv[1], "-l")) {
		int n = argc > 3 ? atoi(argv[3]) : 1;
		if (addr_of(argv[2], &a))
			return 2;
		unlink(argv[2]);
		if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 8))
			return die(argv[2]);
		for (int i = 0; i < n; i++) {
			int c = accept(s, NULL, NULL);
			if (c < 0)
				return die("accept");
			static char buf[65536];
			ssize_t r;
			while ((r = read(c, buf, sizeof(buf))) > 0)
				if (write_all(c, buf, (size_t)r))
					break;
			shutdown(c, SHUT_WR);
			close(c);
		}
		return 0;
	}
	if (argc < 2 || argc > 3) {
		fprintf(stderr, "usage: udscat [-n BYTES] PATH [PORT] | udscat -l PATH [N]\n");
		return 2;
	}
	if (addr_of(argv[1], &a))
		return 2;
	if (connect(s, (struct sockaddr *)&a, sizeof(a)))
		return die(argv[1]);
	if (argc == 3) {
		char req[32];
		int len = snprintf(req, sizeof(req), "CONNECT %s\n", argv[2]);
		if (write_all(s, req, (size_t)len) || expect_ok(s))
			return 1;
	}
	return shuttle(0, s, 1, hold_until);
}
