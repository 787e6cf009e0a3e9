#define _GNU_SOURCE
#include "vmm/base/file_util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/base/log.h"

int open_input_file(const char *what, const char *path, uint64_t *size)
{
	/* O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever
	 * before fstat could refuse it; on a regular file it changes nothing. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		log_error("%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) < 0) {
		log_error("%s %s: %s", what, path, strerror(errno));
		close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode)) {
		log_error("%s %s: not a regular file", what, path);
		close(fd);
		return -1;
	}
	if (st.st_size == 0) {
		log_error("%s %s: file is empty", what, path);
		close(fd);
		return -1;
	}
	*size = (uint64_t)st.st_size;
	return fd;
}

int read_full(int fd, void *dst, uint64_t len)
{
	uint8_t *p = dst;
	uint64_t off = 0;
	while (off < len) {
		size_t chunk = len - off > (1u << 30) ? (1u << 30) : (size_t)(len - off);
		ssize_t n = pread(fd, p + off, chunk, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;   /* file shrank under us */
			return -1;
		}
		off += (uint64_t)n;
	}
	return 0;
}

int read_input_file(const char *what, const char *path, uint64_t max, uint8_t **buf, size_t *len)
{
	uint64_t size;
	int fd = open_input_file(what, path, &size);
	if (fd < 0)
		return -1;
	if (size > max) {
		log_error("%s %s: %llu MiB is too large (at most %llu MiB)", what, path,
			  (unsigned long long)(size >> 20), (unsigned long long)(max >> 20));
		close(fd);
		return -1;
	}
	*buf = malloc(size);
	if (!*buf) {
		log_error("%s %s: out of memory", what, path);
		close(fd);
		return -1;
	}
	if (read_full(fd, *buf, size)) {
		log_error("%s %s: read failed: %s", what, path, strerror(errno));
		free(*buf);
		*buf = NULL;
		close(fd);
		return -1;
	}
	close(fd);
	*len = size;
	return 0;
}

bool unix_socket_alive(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return true;
	bool alive = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0 || errno != ECONNREFUSED;
	close(fd);
	return alive;
}

int unix_listener_open(const char *what, const char *path, int backlog, int *dir_fd, char *name, size_t namelen,
		       char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	*dir_fd = -1;
	if (!*path || strlen(path) >= sizeof(sa.sun_path)) {
		snprintf(err, errlen, "%s %s: a socket path is 1 to %zu bytes", what, path, sizeof(sa.sun_path) - 1);
		return -1;
	}
	strcpy(sa.sun_path, path);
	struct stat st;
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode) || unix_socket_alive(&sa)) {
			snprintf(err, errlen, "%s %s: %s", what, path,
				 S_ISSOCK(st.st_mode) ? "another process listens on it" : "exists and is not a socket");
			return -1;
		}
		if (unlink(path) && errno != ENOENT) { /* a stale socket of a VM that is gone */
			snprintf(err, errlen, "%s %s: cannot remove the stale socket: %s", what, path, strerror(errno));
			return -1;
		}
	} else if (errno != ENOENT) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	char dir[sizeof(sa.sun_path)], base[sizeof(sa.sun_path)];
	snprintf(dir, sizeof(dir), "%s", path);
	snprintf(base, sizeof(base), "%s", path);
	snprintf(name, namelen, "%s", basename(base));
	*dir_fd = open(dirname(dir), O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (*dir_fd < 0) {
		snprintf(err, errlen, "%s %s: its directory: %s", what, path, strerror(errno));
		return -1;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		goto fail;
	}
	/* Mode 0600 from the start: no moment when others may connect. Called
	 * while the process has one thread, so the umask change is ours alone. */
	mode_t old = umask(0177);
	int rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	int e = errno;
	umask(old);
	if (!rc && listen(fd, backlog)) {
		e = errno;
		unlink(path);
		rc = -1;
	}
	if (rc) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(e));
		close(fd);
		goto fail;
	}
	return fd;
fail:
	close(*dir_fd);
	*dir_fd = -1;
	return -1;
}
