/* submit: a client for serve, so that a shell script or a person needs no
 * socat: job lines from stdin go to the server, result lines come back on
 * stdout; it ends when the server has answered every job. */
#define _GNU_SOURCE
#include "submit.h"

#include "frame_io.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int submit_run(const char *socket_path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(socket_path) >= sizeof(sa.sun_path)) {
		fprintf(stderr, "minivmm-runner: --socket %s: too long for a Unix socket\n", socket_path);
		return 125;
	}
	strcpy(sa.sun_path, socket_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "minivmm-runner: --socket %s: %s\n", socket_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 125;
	}
	/* The server reads a client's lines to its EOF, then answers the
	 * jobs still running and closes: so stdin's EOF becomes a half
	 * close, and the server's close ends this. */
	static char buf[65536];
	bool in_open = true;
	int rc = 0;
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = in_open ? 0 : -1, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			rc = 125;
			break;
		}
		if (p[1].revents) {
			ssize_t n = read(0, buf, sizeof(buf));
			if (n <= 0) {
				in_open = false;
				shutdown(fd, SHUT_WR);
			} else if (write_all(fd, buf, (size_t)n) < 0) {
				fprintf(stderr, "minivmm-runner: sending to %s: %s\n", socket_path, strerror(errno));
				rc = 125;
				break;
			}
		}
		if (p[0].revents) {
			ssize_t n = read(fd, buf, sizeof(buf));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			if (write_all(1, buf, (size_t)n) < 0) {
				rc = 125;
				break;
			}
		}
	}
	close(fd);
	return rc;
}
