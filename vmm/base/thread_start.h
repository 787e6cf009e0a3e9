/* How device code starts its threads without knowing who really creates
 * them. minivmm's VM creates every thread on its control thread, so that
 * each new thread starts from that thread's seccomp filter and narrows it to
 * its role (vmm/sandbox.h): seccomp filters stack and can only narrow, so a
 * thread created by a vCPU would be stuck inside the vCPU's list. Unit tests
 * pass no starter and get a plain pthread_create. */
#ifndef MINIVMM_THREAD_START_H
#define MINIVMM_THREAD_START_H

#include <pthread.h>

/* What a thread does, which decides its seccomp allow list. */
enum thread_role {
	THREAD_ROLE_MAIN,        /* after start-up: the event loop (signals, console) and the end of teardown */
	THREAD_ROLE_VCPU,        /* KVM_RUN and the device registers it traps on */
	THREAD_ROLE_BLK,         /* virtio-blk queue worker: file I/O on the image */
	THREAD_ROLE_NET,         /* virtio-net queue pair worker: tap I/O */
	THREAD_ROLE_NET_CTRL,    /* virtio-net control queue: starts/stops pairs, vhost set-up */
	THREAD_ROLE_VHOST_FWD,   /* vhost-net pair watcher: error eventfds, interrupt forwarding (mmio) */
	THREAD_ROLE_CONTROL,     /* creates every thread, activates, resets and removes devices */
	THREAD_ROLE_API,         /* the control socket (--api-sock): its clients, pause and resume */
	THREAD_ROLE_VSOCK,       /* virtio-vsock: its queues, host clients, connections to host sockets */
	THREAD_ROLE_RNG,         /* virtio-rng worker: getrandom into its buffers */
	THREAD_ROLE_COUNT
};

extern const char *const thread_role_names[THREAD_ROLE_COUNT];

struct thread_starter {
	/* Starts fn(arg) on a new thread named name (at most 15 chars) that
	 * takes no signals; returns 0 or an errno value. */
	int (*start)(const struct thread_starter *ts, pthread_t *thread, enum thread_role role, const char *name,
		     void *(*fn)(void *), void *arg);
	void *ctx;
};

/* ts->start, or when ts is NULL the same with a plain pthread_create. */
int thread_start(const struct thread_starter *ts, pthread_t *thread, enum thread_role role, const char *name,
		 void *(*fn)(void *), void *arg);
/* The plain version: all signals blocked in the new thread, named. */
int thread_start_plain(pthread_t *thread, const char *name, void *(*fn)(void *), void *arg);

#endif
