// SPDX-License-Identifier: MIT
/*
 * udscat: the host's end of the vsock tests, on Unix sockets (L1 has no socat).
 *
 *   udscat [-n BYTES] PATH [PORT]
 *                          connect to PATH; with PORT first say "CONNECT PORT\n" and
 *                          wait for the "OK ...\n" line (printed on stderr), as a host
 *                          program talks to minivmm's --vsock socket. Then stdin goes out,
 *                          what comes back goes to stdout (reading never waits for a
 *                          write: see shuttle()); at stdin's EOF the write side is shut
 *                          down (with -n, only once BYTES came back: an echo peer then
 *                          never sees a half-closed stream), and it ends at the peer's
 *                          EOF.
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

/*
 * Copies in -> sock and sock -> out until sock's EOF, and never blocks in a write to sock:
 * it writes only what sock takes now (POLLOUT, MSG_DONTWAIT) and reads sock whenever it is
 * readable. Against an echo peer a blocking write is a deadlock once the bytes in flight fill
 * every buffer on the way out and back (through minivmm's vsock in the rig, a little over
 * 0.5 MiB: the two Unix sockets' buffers, the guest's 256 KiB, the device's 64 KiB): the
 * echo waits for us to read, we wait for it to take our write. stdin is read again only once
 * its last chunk is all out.
 */
static int shuttle(int in, int sock, int out, unsigned long long hold_until)
{
	static char ibuf[65536], obuf[65536];
	size_t pend = 0, off = 0;   /* ibuf[off, off + pend): read from stdin, not yet sent */
	unsigned long long got = 0;
	bool in_eof = false, shut = false;
	for (;;) {
		if (in_eof && !pend && !shut && got >= hold_until) {
			shutdown(sock, SHUT_WR);
			shut = true;
		}
		struct pollfd p[2] = {
			{ .fd = in_eof || pend ? -1 : in, .events = POLLIN },
			{ .fd = sock, .events = (short)(POLLIN | (pend ? POLLOUT : 0)) },
		};
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return die("poll");
		}
		if (p[0].revents) {
			ssize_t n = read(in, ibuf, sizeof(ibuf));
			if (n < 0 && errno != EINTR)
				return die("read stdin");
			in_eof = n == 0;
			pend = n > 0 ? (size_t)n : 0;
			off = 0;
		}
		if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n = recv(sock, obuf, sizeof(obuf), MSG_DONTWAIT);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return die("read the socket");
			if (n == 0)
				return 0;
			if (n > 0) {
				if (write_all(out, obuf, (size_t)n))
					return die("write stdout");
				got += (unsigned long long)n;
			}
		}
		if (pend && (p[1].revents & POLLOUT)) {
			ssize_t n = send(sock, ibuf + off, pend, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return die("write to the socket");
			if (n > 0) {
				off += (size_t)n;
				pend -= (size_t)n;
			}
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
