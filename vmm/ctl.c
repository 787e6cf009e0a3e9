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

#include <fcntl.h>
#include <sys/stat.h>

#include "vmm/api_proto.h"
#include "vmm/snapshot.h"
#include "vmm/base/log.h"

#define CTL_TIMEOUT_MS 30000   /* a pause waits for every vCPU: seconds at worst */
#define CTL_SNAPSHOT_TIMEOUT_MS 600000   /* writing GiBs of guest memory */

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

/* The whole line in one message, the fds riding on its first byte. */
static int send_with_fds(int fd, const char *buf, const int *fds, unsigned n)
{
	union {
		struct cmsghdr align;
		char buf[CMSG_SPACE(sizeof(int) * 2)];
	} control;
	struct iovec iov = { (void *)buf, strlen(buf) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buf,
			      .msg_controllen = CMSG_SPACE(sizeof(int) * n) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
	memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	ssize_t sent;
	do
		sent = sendmsg(fd, &msg, MSG_NOSIGNAL);
	while (sent < 0 && errno == EINTR);
	if (sent < 0)
		return -1;
	return send_all(fd, buf + sent, iov.iov_len - (size_t)sent);
}

/* Reads up to the first newline into buf (NUL-terminated, newline kept).
 * Returns its length, or -1 with *why set. */
static ssize_t read_line(int fd, char *buf, size_t cap, int timeout_ms, const char **why)
{
	size_t len = 0;
	while (len + 1 < cap) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r == 0) {
			*why = "no reply in time";
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

/* The snapshot's two files, made new beside the old ones (state.new,
 * memory.new) and renamed over them only once written: a VM restored from
 * the old memory file maps it, and must never see it truncated. */
struct snap_files {
	int dir_fd, fds[2];
	const char *dir;
};
static const char *const snap_names[2] = { SNAP_STATE_FILE, SNAP_MEMORY_FILE };
static const char *const snap_new_names[2] = { SNAP_STATE_FILE ".new", SNAP_MEMORY_FILE ".new" };

static int snap_files_open(struct snap_files *f, const char *dir)
{
	f->dir = dir;
	f->fds[0] = f->fds[1] = -1;
	if (mkdir(dir, 0700) && errno != EEXIST) {
		log_error("%s: cannot make the snapshot directory: %s", dir, strerror(errno));
		return -1;
	}
	f->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (f->dir_fd < 0) {
		log_error("%s: %s", dir, strerror(errno));
		return -1;
	}
	for (int i = 0; i < 2; i++) {
		unlinkat(f->dir_fd, snap_new_names[i], 0);   /* a failed snapshot's */
		f->fds[i] = openat(f->dir_fd, snap_new_names[i], O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (f->fds[i] < 0) {
			log_error("%s/%s: %s", dir, snap_new_names[i], strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* ok: the files take the old ones' names; else they go. Closes all. */
static int snap_files_close(struct snap_files *f, bool ok)
{
	int rc = 0;
	for (int i = 0; i < 2; i++) {
		if (f->fds[i] >= 0)
			close(f->fds[i]);
		/* memory first: a state file never names memory that is not there */
		int k = 1 - i;
		if (f->dir_fd < 0)
			continue;
		if (ok && renameat(f->dir_fd, snap_new_names[k], f->dir_fd, snap_names[k])) {
			log_error("%s/%s: %s", f->dir, snap_names[k], strerror(errno));
			rc = -1;
		} else if (!ok) {
			unlinkat(f->dir_fd, snap_new_names[k], 0);
		}
	}
	if (f->dir_fd >= 0)
		close(f->dir_fd);
	return rc;
}

int ctl_main(int argc, char **argv)
{
	bool raw = argc == 5 && !strcmp(argv[3], "--raw");
	bool snapshot = argc == 5 && !strcmp(argv[3], "snapshot");
	if (argc != 4 && !raw && !snapshot) {
		log_error("usage: minivmm ctl SOCKET pause|resume|info|stats|stop|snapshot DIR");
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
	struct snap_files files = { .dir_fd = -1, .fds = { -1, -1 } };
	if (snapshot && snap_files_open(&files, argv[4])) {
		snap_files_close(&files, false);
		close(fd);
		free(line);
		return 1;
	}
	int rc = snapshot ? send_with_fds(fd, line, files.fds, 2) : send_all(fd, line, strlen(line));
	free(line);
	if (rc) {
		log_error("%s: cannot send: %s", path, strerror(errno));
		snap_files_close(&files, false);
		close(fd);
		return 1;
	}
	/* A reply is at most a few KiB (stats of 16 devices with 16 pairs each
	 * is the largest). */
	static char reply[1 << 20];
	const char *why = NULL;
	ssize_t n = read_line(fd, reply, sizeof(reply), snapshot ? CTL_SNAPSHOT_TIMEOUT_MS : CTL_TIMEOUT_MS, &why);
	close(fd);
	char msg[512];
	bool failed = n < 0 || api_proto_reply_error(reply, (size_t)n, msg, sizeof(msg));
	if (snapshot && snap_files_close(&files, !failed))
		return 1;
	if (n < 0) {
		log_error("%s: %s", path, why);
		return 1;
	}
	fputs(reply, stdout);
	fflush(stdout);
	if (failed) {
		log_sanitize(msg);
		log_error("%s: %s", path, msg);
		return 1;
	}
	return 0;
}
