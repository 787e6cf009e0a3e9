/* The queue worker (devices/virtio/queue_worker.c) with a stand-in device:
 * serve() on its thread, a kick waking it, and the stop() op: called once
 * per thread, on that thread, when it stops, whether its queues work or
 * broke. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "devices/virtio/queue_worker.h"
#include "vmm/base/eventfd_util.h"

struct fake_dev {
	atomic_uint serves, stops;
	atomic_bool stopped_on_own_thread;
	atomic_bool break_queue;          /* serve() returns -1 */
	pthread_t thread;                 /* the worker's, seen by serve() */
	atomic_bool have_thread;
	atomic_uint serves_at_stop;
};

static int fake_serve(void *ctx, struct queue_worker_sleep *next)
{
	struct fake_dev *d = ctx;
	if (!atomic_exchange(&d->have_thread, true))
		d->thread = pthread_self();
	atomic_fetch_add(&d->serves, 1);
	return atomic_load(&d->break_queue) ? -1 : 0;
}

static void fake_stop(void *ctx)
{
	struct fake_dev *d = ctx;
	atomic_store(&d->stopped_on_own_thread, atomic_load(&d->have_thread) && pthread_equal(d->thread, pthread_self()));
	atomic_store(&d->serves_at_stop, atomic_load(&d->serves));
	atomic_fetch_add(&d->stops, 1);
}

static const struct queue_worker_ops fake_ops = { .serve = fake_serve, .stop = fake_stop };
static const struct queue_worker_ops no_stop_ops = { .serve = fake_serve };

static void wait_for(atomic_uint *v, unsigned want)
{
	for (int i = 0; i < 2000 && atomic_load(v) < want; i++)
		usleep(1000);
	cr_assert_geq(atomic_load(v), want);
}

static void start(struct queue_worker *qw, struct fake_dev *d, int kick, const struct queue_worker_ops *ops)
{
	struct queue_worker_params p = {
		.name = "fake q0",
		.thread_name = "fake-q0",
		.kick_fds = { kick },
		.n_kicks = 1,
		.ops = ops,
		.ctx = d,
	};
	cr_assert_eq(queue_worker_start(qw, &p), 0);
}

Test(queue_worker, stop_op_runs_once_on_the_worker_thread)
{
	struct queue_worker *qw = queue_worker_create(2);
	cr_assert_not_null(qw);
	int kick[2] = { eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK) };
	static struct fake_dev d[2];
	start(qw, &d[0], kick[0], &fake_ops);
	start(qw, &d[1], kick[1], &fake_ops);
	wait_for(&d[0].serves, 1);
	wait_for(&d[1].serves, 1);
	eventfd_signal(kick[0]);
	wait_for(&d[0].serves, 2);
	cr_assert_eq(atomic_load(&d[0].stops), 0, "stop before stop was asked");
	queue_worker_stop(qw);
	for (int i = 0; i < 2; i++) {
		cr_assert_eq(atomic_load(&d[i].stops), 1, "thread %d", i);
		cr_assert(atomic_load(&d[i].stopped_on_own_thread), "thread %d: stop() on another thread", i);
		cr_assert_eq(atomic_load(&d[i].serves_at_stop), atomic_load(&d[i].serves), "served after stop()");
	}
	/* started again: once more each */
	atomic_store(&d[0].have_thread, false);
	start(qw, &d[0], kick[0], &fake_ops);
	wait_for(&d[0].serves, 3);
	queue_worker_destroy(qw);
	cr_assert_eq(atomic_load(&d[0].stops), 2);
	cr_assert_eq(atomic_load(&d[1].stops), 1);
	close(kick[0]);
	close(kick[1]);
}

Test(queue_worker, stop_op_runs_after_the_queues_broke_too)
{
	struct queue_worker *qw = queue_worker_create(1);
	int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	static struct fake_dev d;
	atomic_store(&d.break_queue, true);
	start(qw, &d, kick, &fake_ops);
	wait_for(&d.serves, 1);
	eventfd_signal(kick);   /* ignored: the queues broke */
	usleep(10000);
	cr_assert_eq(atomic_load(&d.serves), 1);
	cr_assert_eq(atomic_load(&d.stops), 0);
	queue_worker_stop(qw);
	cr_assert_eq(atomic_load(&d.stops), 1);
	cr_assert(atomic_load(&d.stopped_on_own_thread));
	queue_worker_destroy(qw);
	close(kick);
}

Test(queue_worker, stop_op_is_optional)
{
	struct queue_worker *qw = queue_worker_create(1);
	int kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	static struct fake_dev d;
	start(qw, &d, kick, &no_stop_ops);
	wait_for(&d.serves, 1);
	queue_worker_stop(qw);
	cr_assert_eq(atomic_load(&d.stops), 0);
	queue_worker_destroy(qw);
	close(kick);
}

/* The kick counts the exit lines report come from eventfd_take(): the whole
 * count at once, then nothing; a bad fd says so. */
Test(queue_worker, eventfd_take_hands_out_the_whole_count)
{
	int fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert_geq(fd, 0);
	for (int i = 0; i < 3; i++)
		cr_assert_eq(eventfd_signal(fd), 0);
	uint64_t n = 99;
	cr_assert_eq(eventfd_take(fd, &n), 1);
	cr_assert_eq(n, 3);
	cr_assert_eq(eventfd_take(fd, &n), 0);
	cr_assert_eq(n, 0);
	cr_assert_eq(eventfd_signal(fd), 0);
	cr_assert_eq(eventfd_drain(fd), 1);
	cr_assert_eq(eventfd_drain(fd), 0);
	close(fd);
	cr_assert_eq(eventfd_take(fd, &n), -EBADF);
	cr_assert_eq(n, 0);
}
