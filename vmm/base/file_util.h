/* Reading the files named on the command line, with errors that name them;
 * the Unix socket files minivmm makes. */
#ifndef MINIVMM_FILE_UTIL_H
#define MINIVMM_FILE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr_un;

/* Opens a regular, non-empty file for reading. what is the option name used
 * in messages ("--kernel"). Returns the fd or -1 after logging. */
int open_input_file(const char *what, const char *path, uint64_t *size);
/* Reads a whole file of at most max bytes into a malloc'd buffer. */
int read_input_file(const char *what, const char *path, uint64_t max, uint8_t **buf, size_t *len);
/* Reads exactly len bytes from fd at offset 0 into dst. */
int read_full(int fd, void *dst, uint64_t len);
/* Whether a Unix socket file has a listener (another live process's), so
 * that one that is stale may be removed. True when it cannot tell. */
bool unix_socket_alive(const struct sockaddr_un *sa);
/* Listens on a Unix socket at path (the control socket, the vsock device's):
 * a stale socket of a VM that is gone is replaced, a live one or any other
 * file refused; the socket is 0600 from the start. Its directory is opened
 * O_PATH into *dir_fd and its last component copied to name, so that it can
 * be removed at exit from inside a chroot or sandbox. what starts the error
 * ("--api-sock"). Returns the nonblocking listening fd, or -1 with a
 * one-line reason in err and nothing left open or bound. */
int unix_listener_open(const char *what, const char *path, int backlog, int *dir_fd, char *name, size_t namelen,
		       char *err, size_t errlen);

#endif
