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
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>   /* before linux/vm_sockets.h: older uapi copies of it (Debian 12's
			     linux-libc-dev-arm64-cross, 6.1.4) need struct sockaddr, sa_family_t */
#include <unistd.h>
#include <linux/vm_sockets.h>

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

/* Copies in -> sock and sock -> out until sock's EOF; shuts sock's write side at in's EOF
 * once all of in is out. Never blocks in a write to sock: it writes only what sock takes now
 * (POLLOUT, MSG_DONTWAIT) and reads sock whenever it is readable. Against an echo peer a
 * blocking write deadlocks once the bytes in flight fill every buffer out and back: the peer
 * waits for us to read, we wait for it to take our write. */
static int shuttle(int in, int sock, int out)
{
	static char ibuf[65536], obuf[65536];
	size_t pend = 0, off = 0;   /* ibuf[off, off + pend): read from in, not yet sent */
	int in_eof = 0, shut = 0;
	for (;;) {
		if (in_eof && !pend && !shut) {
			shutdown(sock, SHUT_WR);
			shut = 1;
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
				return die("read vsock");
			if (n == 0)
				return 0;
			if (n > 0 && write_all(out, obuf, (size_t)n))
				return die("write stdout");
		}
		if (pend && (p[1].revents & POLLOUT)) {
			ssize_t n = send(sock, ibuf + off, pend, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno != EAGAIN && errno != EINTR)
				return die("write to vsock");
			if (n > 0) {
				off += (size_t)n;
				pend -= (size_t)n;
			}
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
