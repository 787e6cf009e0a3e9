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

#endif
