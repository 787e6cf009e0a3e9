/* One home for a device thread: a queue worker owns a device's queue
 * threads, their stop eventfd and the poll loop, and calls the device back
 * to do the work (Cloud Hypervisor's EpollHelper is the model). One worker
 * may run several threads (one per queue, say) that share its stop eventfd,
 * so that stop() ends them all at once.
 *
 * A thread's loop: while its queues work, serve(); then sleep in poll() on
 * the stop eventfd, the queues' kick eventfds and the device's own fds
 * ("watch"), for serve()'s timeout at most; on waking, if stop was asked,
 * call the device's stop() and return; else drain the kicks that fired,
 * then woken() with the watched fds' revents, and round again. When serve()
 * says the queues broke, or a kick eventfd is unusable (POLLERR/POLLNVAL),
 * the thread marks the device DEVICE_NEEDS_RESET through its irq and from
 * then on only waits for stop (and still calls stop() then).
 *
 * System calls, which the thread role's seccomp list (vmm/sandbox.c) must
 * allow: poll() and read() on the worker's threads; eventfd2 in create(),
 * write(), read() and the join in stop(), close() in destroy(), on the
 * caller's thread.
 *
 * Owner: the device creates one, starts and stops its threads (as often as
 * it is activated and reset) and destroys it; the stop eventfd and the
 * threads are the worker's. Not thread-safe: start, stop and destroy from one
 * thread at a time. */
#ifndef MINIVMM_QUEUE_WORKER_H
#define MINIVMM_QUEUE_WORKER_H

#include <poll.h>
#include <stdbool.h>

#include "devices/virtio/virtio.h"
#include "vmm/base/thread_start.h"

#define QUEUE_WORKER_MAX_KICKS 2   /* a net pair's RX and TX */
#define QUEUE_WORKER_MAX_WATCH 4   /* a vhost pair's call and error eventfds */

/* What serve() leaves for the next sleep. */
struct queue_worker_sleep {
	int timeout_ms;           /* -1 on entry: until something happens; 0: work is left, do not sleep */
	int timeout_us;           /* -1 on entry; >= 0: sleep at most this many µs (the shorter of the two counts) */
	struct pollfd *watch;     /* the device's own fds [n_watch]: serve may change fd (-1: skip) and events */
};

struct queue_worker_ops {
	/* On the worker's thread, before the first sleep and after every
	 * wake-up, while the queues work: does the device's work (bounded: a
	 * guest can keep a ring full for ever) and sets up the next sleep.
	 * Returns 0, or -1 when a queue is broken. NULL: nothing to serve. */
	int (*serve)(void *ctx, struct queue_worker_sleep *next);
	/* Optional, after every wake-up (or timeout) but a stop while the
	 * queues work, once the kicks are drained: the watched fds' revents. */
	void (*woken)(void *ctx, const struct pollfd *watch);
	/* Optional, on the worker's thread just before it ends (it saw stop,
	 * or poll failed), whether or not the queues still work: a device with
	 * requests in flight (blk's io_uring engine) finishes them and returns
	 * them to the guest, so a pause or reset finds the rings final and the
	 * next thread inherits nothing. Bounded (it may wait, for I/O that
	 * always completes). On a broken queue nothing can be pushed: virtq
	 * refuses, the device need not check. */
	void (*stop)(void *ctx);
};

struct queue_worker_params {
	const char *name;                       /* in log lines: "blk0 q1", "net0-qp0" */
	const char *thread_name;                /* at most 15 characters */
	enum thread_role role;                  /* decides the thread's seccomp allow list */
	const struct thread_starter *threads;   /* who creates the thread; NULL: pthread_create */
	int kick_fds[QUEUE_WORKER_MAX_KICKS];   /* the queues' kick eventfds, drained by the worker */
	unsigned n_kicks;
	struct pollfd watch[QUEUE_WORKER_MAX_WATCH];   /* the device's fds and their events; fd -1: none */
	unsigned n_watch;
	const struct virtio_irq *irq;           /* needs_reset() when the queues break; NULL: not a virtio queue */
	struct log_limit *log_limit;            /* the device's, for the lines a guest can cause (NULL: none) */
	const struct queue_worker_ops *ops;
	void *ctx;                              /* the device's, given to every op */
};

struct queue_worker;

/* A worker with no thread running, room for max_threads (>= 1) and its
 * stop eventfd; NULL with errno on failure. */
struct queue_worker *queue_worker_create(unsigned max_threads);

/* Starts one more thread, serving what p describes. Returns 0, or an errno
 * value (nothing started; EBUSY: max_threads run already). */
int queue_worker_start(struct queue_worker *qw, const struct queue_worker_params *p);

/* Threads running (started and not yet stopped). */
unsigned queue_worker_running(const struct queue_worker *qw);

/* Kicks thread slot i took (the kick eventfds' counts: one a guest
 * notify, or a device's self-kick), over all its starts. */
uint64_t queue_worker_kicks(struct queue_worker *qw, unsigned i);

/* Asks every thread to stop and joins them; the worker can then start
 * threads again. Serving stops at a thread's next wake-up: a device whose
 * serve() runs long checks a flag of its own. */
void queue_worker_stop(struct queue_worker *qw);

/* For a serve() that has to wait (a rate limit): sleeps on the worker's
 * thread up to ms, or until stop is asked. Returns true when it was. */
bool queue_worker_wait_stop(struct queue_worker *qw, int ms);

/* Stops the threads, closes the stop eventfd. NULL is accepted. */
void queue_worker_destroy(struct queue_worker *qw);

#endif
