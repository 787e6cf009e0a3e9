/* One-line diagnostics. Every message names the thing at fault. */
#ifndef MINIVMM_LOG_H
#define MINIVMM_LOG_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define log_error(fmt, ...) log_line("minivmm: error: " fmt, ##__VA_ARGS__)
#define log_warn(fmt, ...)  log_line("minivmm: warning: " fmt, ##__VA_ARGS__)
#define log_info(fmt, ...)  log_line("minivmm: " fmt, ##__VA_ARGS__)

/* A message holds names a user or guest chose (file paths, tap names): a
 * newline or escape sequence in one must not make two lines out of one
 * message or drive the terminal. Control characters become '?'. */
static inline void log_sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

/* Formats one message and writes it as one line with one write, so lines
 * from several threads do not interleave. A message too long for the
 * buffer (a culprit path of thousands of characters) loses its middle, not
 * its end: the end says what is wrong. */
__attribute__((format(printf, 1, 2)))
static inline void log_line(const char *fmt, ...)
{
	enum { HEAD = 1000, TAIL = 2000 };
	char buf[HEAD + 3 + TAIL + 2];
	char *full = buf;
	va_list ap, ap2;
	va_start(ap, fmt);
	va_copy(ap2, ap);
	int n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(buf) && (full = malloc((size_t)n + 1)) != NULL)
		vsnprintf(full, (size_t)n + 1, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	if (full && full != buf) {
		memcpy(buf, full, HEAD);
		memcpy(buf + HEAD, "...", 3);
		memcpy(buf + HEAD + 3, full + n - TAIL, TAIL + 1);
		free(full);
	}
	log_sanitize(buf);
	size_t len = strlen(buf);
	buf[len] = '\n';
	fwrite(buf, 1, len + 1, stderr);
}

/* For pure parsers that report instead of logging: writes a one-line
 * message into err and returns -1, so a check reads "return err_set(...)". */
__attribute__((format(printf, 3, 4)))
static inline int err_set(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	if (errlen)
		log_sanitize(err);
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
