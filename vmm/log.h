/* One-line diagnostics. Every message names the thing at fault. */
#ifndef MINIVMM_LOG_H
#define MINIVMM_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#define log_error(fmt, ...) fprintf(stderr, "minivmm: error: " fmt "\n", ##__VA_ARGS__)
#define log_warn(fmt, ...)  fprintf(stderr, "minivmm: warning: " fmt "\n", ##__VA_ARGS__)
#define log_info(fmt, ...)  fprintf(stderr, "minivmm: " fmt "\n", ##__VA_ARGS__)

/* For pure parsers that report instead of logging: writes a one-line
 * message into err and returns -1, so a check reads "return err_set(...)". */
__attribute__((format(printf, 3, 4)))
static inline int err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* CLOCK_MONOTONIC in nanoseconds: VMM start and boot-marker times. */
static inline uint64_t monotonic_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
