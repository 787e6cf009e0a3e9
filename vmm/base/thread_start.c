#define _GNU_SOURCE /* pthread_setname_np */
#include "vmm/base/thread_start.h"

#include <signal.h>

const char *const thread_role_names[THREAD_ROLE_COUNT] = {
	[THREAD_ROLE_MAIN] = "main",
	[THREAD_ROLE_VCPU] = "vcpu",
	[THREAD_ROLE_BLK] = "blk worker",
	[THREAD_ROLE_NET] = "net worker",
	[THREAD_ROLE_NET_CTRL] = "net ctrl",
	[THREAD_ROLE_VHOST_FWD] = "vhost watcher",
	[THREAD_ROLE_CONTROL] = "control",
	[THREAD_ROLE_API] = "api",
	[THREAD_ROLE_VSOCK] = "vsock",
	[THREAD_ROLE_RNG] = "rng worker",
};

int thread_start_plain(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg)
{
	/* Device threads take no signals: SIGINT/SIGTERM are the main thread's
	 * (signalfd) and the kick signal is for vCPUs; a new thread inherits
	 * the creator's mask, so block everything around the create. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int e = pthread_create(thread, NULL, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (!e && name)
		pthread_setname_np(*thread, name);
	return e;
}

int thread_start(const struct thread_starter *ts, pthread_t *thread, enum thread_role role, const char *name,
		 void *(*fn)(void *), void *arg)
{
	if (ts && ts->start)
		return ts->start(ts, thread, role, name, fn, arg);
	return thread_start_plain(thread, name, fn, arg);
}
