/* Reading the files named on the command line, with errors that name them. */
#ifndef MINIVMM_FILE_UTIL_H
#define MINIVMM_FILE_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Opens a regular, non-empty file for reading. what is the option name used
 * in messages ("--kernel"). Returns the fd or -1 after logging. */
int open_input_file(const char *what, const char *path, uint64_t *size);
/* Reads a whole file of at most max bytes into a malloc'd buffer. */
int read_input_file(const char *what, const char *path, uint64_t max, uint8_t **buf, size_t *len);
/* Reads exactly len bytes from fd at offset 0 into dst. */
int read_full(int fd, void *dst, uint64_t len);

#endif
