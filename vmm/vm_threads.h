/* Thread creation for the VM: once the VM runs, every thread is created by
 * the control thread and narrows its seccomp filter to its role before it
 * runs (vmm/sandbox.h). Threads asked for, and device activation and reset
 * asked for, on another thread (a vCPU that sees DRIVER_OK, a net control
 * queue) are done by the control thread on its behalf, the way Cloud
 * Hypervisor activates devices on its VMM thread. */
#ifndef MINIVMM_VM_THREADS_H
#define MINIVMM_VM_THREADS_H

#include <pthread.h>
#include <stdbool.h>

#include "vmm/base/thread_start.h"

struct spawn_request;

/* What thread creation needs from its owner (the VM), so this module knows
 * nothing else of it. */
struct vm_threads_hooks {
	/* On each new thread, before its work: its seccomp filter (vcpu: the
	 * vCPU index, with THREAD_ROLE_VCPU). Non-zero: the thread ends. */
	int (*enter_role)(void *ctx, enum thread_role role, unsigned vcpu);
	/* A thread could not enter its role, or the control thread failed. */
	void (*failed)(void *ctx);
	/* On the control thread as it ends: what only it may do (device removal). */
	void (*teardown)(void *ctx);
};

struct vm_threads {
	struct thread_starter starter;   /* handed to devices */
	pthread_t server;                /* the thread that serves requests: main, then control */
	pthread_t control;
	bool control_started;
	bool teardown;                   /* under lock: the control thread removes the devices and ends */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct spawn_request *pending;   /* under lock */
	bool closed;                     /* under lock: requests are no longer served */
	int efd;                         /* wakes the serving thread */
	const struct vm_threads_hooks *hooks;
	void *ctx;
};

/* hooks and ctx: what threads do at their start and at teardown. */
int vm_threads_init(struct vm_threads *t, const struct vm_threads_hooks *hooks, void *ctx);
void vm_threads_destroy(struct vm_threads *t);
/* On the serving thread: creates fn(arg) as a thread of role. vCPUs keep the
 * creator's signal mask (they take the kick signal); others block all. */
int vm_threads_create(struct vm_threads *t, pthread_t *thread, enum thread_role role, const char *name,
		      void *(*fn)(void *), void *arg);
/* The same for vCPU index: its thread takes that vCPU's own filter. */
int vm_threads_create_vcpu(struct vm_threads *t, pthread_t *thread, unsigned index, const char *name,
			   void *(*fn)(void *), void *arg);
/* Runs fn(arg) on the serving thread (the control thread once the VM runs)
 * and returns what it returns: at once on that thread, else the caller
 * waits for it (-ESHUTDOWN once it no longer serves). Device activation and
 * reset go through here, so that vCPU threads never need the tap and vhost
 * calls they make. */
int vm_threads_call(struct vm_threads *t, int (*fn)(void *), void *arg);
/* Starts the control thread (on the main thread, which has installed the
 * control role's filter, the union of all: the new thread inherits it).
 * From then on it serves thread creation and vm_threads_call. */
int vm_threads_start_control(struct vm_threads *t);
/* After vm_threads_close and with the vCPUs joined: the control thread
 * removes the devices (their resets make tap and vhost calls the main
 * thread's filter does not allow) and ends; joins it. */
void vm_threads_stop_control(struct vm_threads *t);
/* Serving thread: create and run what other threads asked for. */
void vm_threads_serve(struct vm_threads *t);
/* The VM is stopping: fail pending and later requests from other threads. */
void vm_threads_close(struct vm_threads *t);

#endif
