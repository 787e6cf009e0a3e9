/* Signalling and clearing an eventfd (a counter, not a semaphore), written
 * once: every wake-up, stop request, kick and interrupt of the VMM is one.
 * Plain write() and read() underneath, the calls every thread's seccomp
 * allow list has (vmm/sandbox.c). */
#ifndef MINIVMM_EVENTFD_UTIL_H
#define MINIVMM_EVENTFD_UTIL_H

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

/* Adds 1 to the counter. Returns 0, or an errno value. A full counter
 * (EAGAIN) is success: whoever waits on the fd has a wake-up pending. */
static inline int eventfd_signal(int fd)
{
	uint64_t one = 1;
	if (write(fd, &one, sizeof(one)) == sizeof(one) || errno == EAGAIN)
		return 0;
	return errno;
}

/* Reads the counter, which clears it (one read is enough: a non-semaphore
 * eventfd hands out its whole count at once), into *count (0 when not set).
 * Returns 1 when it was set, 0 when it was not (EAGAIN on a non-blocking
 * fd, or a signal came first), or -errno. */
static inline int eventfd_take(int fd, uint64_t *count)
{
	if (read(fd, count, sizeof(*count)) == sizeof(*count))
		return 1;
	*count = 0;
	return errno == EAGAIN || errno == EINTR ? 0 : -errno;
}

/* eventfd_take() for a caller that needs no count. */
static inline int eventfd_drain(int fd)
{
	uint64_t count;
	return eventfd_take(fd, &count);
}

#endif
