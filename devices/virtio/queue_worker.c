#define _GNU_SOURCE /* ppoll */
#include "devices/virtio/queue_worker.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"

/* One thread of the worker. */
struct queue_thread {
	pthread_t thread;
	int stop_fd;                  /* the worker's */
	char name[32];
	struct queue_worker_params p; /* what start() was given; p.name points to name */
	_Atomic uint64_t kicks;       /* kicks taken, since create (all starts of this slot) */
};

struct queue_worker {
	int stop_fd;                  /* eventfd: set by stop(), cleared after the joins */
	unsigned max_threads;
	unsigned n_running;           /* threads[0..n_running) run and must be joined */
	struct queue_thread threads[];
};

struct queue_worker *queue_worker_create(unsigned max_threads)
{
	if (max_threads < 1) {
		errno = EINVAL;
		return NULL;
	}
	struct queue_worker *qw = calloc(1, sizeof(*qw) + max_threads * sizeof(qw->threads[0]));
	if (!qw)
		return NULL;
	qw->max_threads = max_threads;
	qw->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (qw->stop_fd < 0) {
		int e = errno;
		free(qw);
		errno = e;
		return NULL;
	}
	return qw;
}

/* The queues broke (whoever found it logged why): the device needs a reset. */
static void mark_broken(struct queue_thread *t)
{
	if (t->p.irq)
		t->p.irq->needs_reset(t->p.irq);
}

/* Clears the kicks that fired. Returns false when one is unusable. */
static bool take_kicks(struct queue_thread *t, const struct pollfd *kicks)
{
	for (unsigned i = 0; i < t->p.n_kicks; i++) {
		if (kicks[i].revents & (POLLERR | POLLNVAL)) {
			log_warn_limited(t->p.log_limit, "%s: kick eventfd %d unusable; queue stopped, device needs reset",
					 t->name, kicks[i].fd);
			return false;
		}
		if (!(kicks[i].revents & POLLIN))
			continue;
		uint64_t n;
		int r = eventfd_take(kicks[i].fd, &n);
		if (r > 0)
			atomic_fetch_add_explicit(&t->kicks, n, memory_order_relaxed);
		else if (r < 0)
			log_warn("%s: kick eventfd: %s", t->name, strerror(-r));
	}
	return true;
}

/* poll() for next's timeout: ppoll() when a µs one is set. NULL: none. */
static int sleep_poll(struct pollfd *fds, nfds_t n, const struct queue_worker_sleep *next)
{
	if (!next || next->timeout_us < 0)
		return poll(fds, n, next ? next->timeout_ms : -1);
	int64_t us = next->timeout_us;
	if (next->timeout_ms >= 0 && (int64_t)next->timeout_ms * 1000 < us)
		us = (int64_t)next->timeout_ms * 1000;
	struct timespec ts = { .tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000 };
	return ppoll(fds, n, &ts, NULL);
}

static void *worker_main(void *arg)
{
	struct queue_thread *t = arg;
	const struct queue_worker_params *p = &t->p;
	/* Stop first, then the kicks, then the device's fds: poll()ing only the
	 * first entry once the queues broke. */
	struct pollfd fds[1 + QUEUE_WORKER_MAX_KICKS + QUEUE_WORKER_MAX_WATCH];
	struct pollfd *kicks = &fds[1], *watch = &fds[1 + p->n_kicks];
	nfds_t n_fds = 1 + p->n_kicks + p->n_watch;
	bool serving = true;   /* false once the queues broke: only wait for stop */

	fds[0] = (struct pollfd){ .fd = t->stop_fd, .events = POLLIN };
	for (unsigned i = 0; i < p->n_kicks; i++)
		kicks[i] = (struct pollfd){ .fd = p->kick_fds[i], .events = POLLIN };
	memcpy(watch, p->watch, p->n_watch * sizeof(*watch));

	for (;;) {
		/* Serve before sleeping: buffers may be there before the first
		 * kick, and a kick that came in while serving keeps its eventfd
		 * readable, so none is lost. */
		struct queue_worker_sleep next = { .timeout_ms = -1, .timeout_us = -1, .watch = watch };
		if (serving && p->ops->serve && p->ops->serve(p->ctx, &next) < 0) {
			serving = false;
			mark_broken(t);
		}
		if (sleep_poll(fds, serving ? n_fds : 1, serving ? &next : NULL) < 0) {
			if (errno == EINTR)
				continue;
			log_warn("%s: poll: %s; thread stopped", t->name, strerror(errno));
			if (p->ops->stop)
				p->ops->stop(p->ctx);   /* what is in flight is not left behind */
			return NULL;
		}
		if (fds[0].revents) {   /* stop() */
			if (p->ops->stop)
				p->ops->stop(p->ctx);
			return NULL;
		}
		if (!serving)
			continue;
		if (!take_kicks(t, kicks)) {
			serving = false;
			mark_broken(t);
			continue;
		}
		if (p->ops->woken)
			p->ops->woken(p->ctx, watch);
	}
}

int queue_worker_start(struct queue_worker *qw, const struct queue_worker_params *p)
{
	if (qw->n_running == qw->max_threads)
		return EBUSY;
	if (p->n_kicks > QUEUE_WORKER_MAX_KICKS || p->n_watch > QUEUE_WORKER_MAX_WATCH)
		return EINVAL;
	struct queue_thread *t = &qw->threads[qw->n_running];
	t->p = *p;
	t->stop_fd = qw->stop_fd;
	snprintf(t->name, sizeof(t->name), "%s", p->name ? p->name : "queue worker");
	t->p.name = t->name;
	int e = thread_start(p->threads, &t->thread, p->role, p->thread_name, worker_main, t);
	if (e)
		return e;
	qw->n_running++;
	return 0;
}

uint64_t queue_worker_kicks(struct queue_worker *qw, unsigned i)
{
	return qw && i < qw->max_threads ? atomic_load_explicit(&qw->threads[i].kicks, memory_order_relaxed) : 0;
}

unsigned queue_worker_running(const struct queue_worker *qw)
{
	return qw->n_running;
}

void queue_worker_stop(struct queue_worker *qw)
{
	if (!qw->n_running)
		return;
	/* Cannot fail: the counter is 0 here (cleared below each time). One
	 * signal wakes them all: it stays set until every thread is joined. */
	int e = eventfd_signal(qw->stop_fd);
	if (e)
		log_warn("%s: stop eventfd: %s", qw->threads[0].name, strerror(e));
	for (unsigned i = 0; i < qw->n_running; i++)
		pthread_join(qw->threads[i].thread, NULL);
	qw->n_running = 0;
	e = eventfd_drain(qw->stop_fd);
	if (e < 0)
		log_warn("%s: stop eventfd: %s", qw->threads[0].name, strerror(-e));
}

bool queue_worker_wait_stop(struct queue_worker *qw, int ms)
{
	struct pollfd stop = { .fd = qw->stop_fd, .events = POLLIN };
	return poll(&stop, 1, ms) > 0;
}

void queue_worker_destroy(struct queue_worker *qw)
{
	if (!qw)
		return;
	queue_worker_stop(qw);
	close(qw->stop_fd);
	free(qw);
}
