/*
 * vsockcat: the guest's end of the vsock tests (busybox has no AF_VSOCK).
 *
 *   vsockcat -l PORT [N]   listen on vsock PORT; serve N connections (default 1) one after
 *                          the other, echoing each back until its EOF (exit 1 at the end
 *                          if one broke)
 *   vsockcat CID PORT      connect to CID:PORT; stdin goes out, what comes back goes to
 *                          stdout; at stdin's EOF the write side is shut down, and it
 *                          ends at the peer's EOF
 *
 * Exit status 0, or 1 with a line on stderr naming what failed (a refused connection is
 * "connect: Connection reset by peer" or "...refused", as the kernel reports it).
 * Installed as /usr/bin/vsockcat by guest-images/build.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/vm_sockets.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int die(const char *what)
{
	fprintf(stderr, "vsockcat: %s: %s\n", what, strerror(errno));
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

/* Copies in -> sock and sock -> out until sock's EOF; shuts sock's write side at in's EOF. */
static int shuttle(int in, int sock, int out)
{
	static char buf[65536];
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
				shutdown(sock, SHUT_WR);
				p[0].fd = -1;
			} else if (write_all(sock, buf, (size_t)n)) {
				return die("write to vsock");
			}
		}
		if (p[1].revents) {
			ssize_t n = read(sock, buf, sizeof(buf));
			if (n < 0)
				return die("read vsock");
			if (n == 0)
				return 0;
			if (write_all(out, buf, (size_t)n))
				return die("write stdout");
		}
	}
}

static int echo(int c)
{
	static char buf[65536];
	for (;;) {
		ssize_t n = read(c, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return die("read vsock");
		if (n == 0)
			break;
		if (write_all(c, buf, (size_t)n))
			return die("write vsock");
	}
	shutdown(c, SHUT_WR);
	return 0;
}

int main(int argc, char **argv)
{
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);
	if (s < 0)
		return die("socket(AF_VSOCK)");
	if (argc >= 3 && !strcmp(argv[1], "-l")) {
		struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY,
					 .svm_port = (unsigned)atoi(argv[2]) };
		int n = argc > 3 ? atoi(argv[3]) : 1;
		if (bind(s, (struct sockaddr *)&a, sizeof(a)) || listen(s, 8))
			return die("bind/listen");
		int failed = 0;
		for (int i = 0; i < n; i++) {
			int c = accept(s, NULL, NULL);
			if (c < 0)
				return die("accept");
			failed |= echo(c);   /* a broken connection does not end the server */
			close(c);
		}
		return failed;
	}
	if (argc == 3) {
		struct sockaddr_vm a = { .svm_family = AF_VSOCK, .svm_cid = (unsigned)atoi(argv[1]),
					 .svm_port = (unsigned)atoi(argv[2]) };
		if (connect(s, (struct sockaddr *)&a, sizeof(a)))
			return die("connect");
		return shuttle(0, s, 1);
	}
	fprintf(stderr, "usage: vsockcat -l PORT [N] | vsockcat CID PORT\n");
	return 2;
}
