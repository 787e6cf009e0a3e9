#define _GNU_SOURCE
#include "vmm/ctl.h"

#include <errno.h>
#include <json-c/json.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/api_proto.h"
#include "vmm/base/log.h"

#define CTL_TIMEOUT_MS 30000   /* a pause waits for every vCPU: seconds at worst */

static int send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Reads up to the first newline into buf (NUL-terminated, newline kept).
 * Returns its length, or -1 with *why set. */
static ssize_t read_line(int fd, char *buf, size_t cap, const char **why)
{
	size_t len = 0;
	while (len + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, CTL_TIMEOUT_MS);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			*why = "no reply in 30 s";
			return -1;
		}
		ssize_t n = r < 0 ? -1 : recv(fd, buf + len, cap - 1 - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			*why = strerror(errno);
			return -1;
		}
		if (n == 0) {
			*why = "the VM closed the connection without a reply";
			return -1;
		}
		len += (size_t)n;
		buf[len] = 0;
		char *nl = memchr(buf, '\n', len);
		if (nl) {
			nl[1] = 0;
			return nl + 1 - buf;
		}
	}
	*why = "reply line too long";
	return -1;
}

int ctl_main(int argc, char **argv)
{
	bool raw = argc == 5 && !strcmp(argv[3], "--raw");
	if (argc != 4 && !raw) {
		log_error("usage: minivmm ctl SOCKET pause|resume|info|stats|stop");
		return 1;
	}
	const char *path = argv[2];
	char *line = NULL;
	if (raw) {
		if (asprintf(&line, "%s\n", argv[4]) < 0)
			line = NULL;
	} else {
		struct json_object *o = json_object_new_object();
		if (o && !json_object_object_add(o, "cmd", json_object_new_string(argv[3])) &&
		    asprintf(&line, "%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN)) < 0)
			line = NULL;
		json_object_put(o);
	}
	if (!line) {
		log_error("out of memory");
		return 1;
	}

	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(sa.sun_path)) {
		log_error("%s: a socket path is at most %zu bytes", path, sizeof(sa.sun_path) - 1);
		free(line);
		return 1;
	}
	strcpy(sa.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
		log_error("%s: cannot connect: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(line);
		return 1;
	}
	int rc = send_all(fd, line, strlen(line));
	free(line);
	if (rc) {
		log_error("%s: cannot send: %s", path, strerror(errno));
		close(fd);
		return 1;
	}
	/* A reply is at most a few KiB (stats of 16 devices with 16 pairs each
	 * is the largest). */
	static char reply[1 << 20];
	const char *why = NULL;
	ssize_t n = read_line(fd, reply, sizeof(reply), &why);
	close(fd);
	if (n < 0) {
		log_error("%s: %s", path, why);
		return 1;
	}
	fputs(reply, stdout);
	fflush(stdout);
	char msg[512];
	if (api_proto_reply_error(reply, (size_t)n, msg, sizeof(msg))) {
		log_sanitize(msg);
		log_error("%s: %s", path, msg);
		return 1;
	}
	return 0;
}
