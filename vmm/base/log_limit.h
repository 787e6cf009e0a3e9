/* Rate limits for the log lines a guest can cause. A guest that breaks its
 * rings, or sends a bad command, in a loop must not turn minivmm's log into
 * a flood: each device lets through the first LOG_LIMIT_BURST such lines of
 * every LOG_LIMIT_WINDOW_S seconds, counts the rest, and says how many it
 * held back ("net0: 4812 more warnings like these in the last 10 s") with
 * the next line that gets through, or when the device goes away.
 * MINIVMM_GUEST_WARNINGS=all in the environment lifts the limit (debugging a
 * driver; the hostile-guest tests count every warning). */
#ifndef MINIVMM_LOG_LIMIT_H
#define MINIVMM_LOG_LIMIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/base/log.h"

#define LOG_LIMIT_BURST 5u
#define LOG_LIMIT_WINDOW_S 10u

struct log_limit {
	const char *who;          /* the device's name, as its lines start */
	pthread_mutex_t lock;     /* lines come from vCPUs and device threads */
	uint64_t window_start_ns;
	unsigned passed;          /* in this window */
	uint64_t held;            /* in this window, not logged */
	bool unlimited;           /* MINIVMM_GUEST_WARNINGS=all */
};

void log_limit_init(struct log_limit *l, const char *who);
/* Reports what is held back; the limiter is unusable after it. */
void log_limit_destroy(struct log_limit *l);
/* True if a line may be logged now; logs the count of the lines held back
 * in the window that ended, if any. A NULL limiter lets every line through
 * (unit tests that make a queue without a device). */
bool log_limit_pass(struct log_limit *l);
/* The same at a given time (tests). */
bool log_limit_pass_at(struct log_limit *l, uint64_t now_ns);

#define log_warn_limited(lim, fmt, ...)                  \
	do {                                             \
		if (log_limit_pass(lim))                 \
			log_warn(fmt, ##__VA_ARGS__);    \
	} while (0)
#define log_error_limited(lim, fmt, ...)                 \
	do {                                             \
		if (log_limit_pass(lim))                 \
			log_error(fmt, ##__VA_ARGS__);   \
	} while (0)

#endif
