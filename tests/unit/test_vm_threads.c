/* vmm/vm_threads.c: device threads asked for on another thread are created
 * by the main thread's loop; once the loop is closed, asking fails at once
 * instead of waiting forever. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>

#include "vmm/vm_threads.h"

static struct vm_threads *threads;
static _Atomic int roles_entered[THREAD_ROLE_COUNT];

static int fake_enter_role(void *ctx, enum thread_role role, unsigned vcpu)
{
	(void)ctx;
	(void)vcpu;
	roles_entered[role]++;
	return 0;
}

static void fake_failed(void *ctx)
{
	(void)ctx;
}

static void fake_teardown(void *ctx)
{
	(void)ctx;
}

static const struct vm_threads_hooks fake_hooks = { fake_enter_role, fake_failed, fake_teardown };

static void setup(void)
{
	threads = calloc(1, sizeof(*threads));
	cr_assert_not_null(threads);
	cr_assert_eq(vm_threads_init(threads, &fake_hooks, NULL), 0);
}

static void teardown(void)
{
	vm_threads_destroy(threads);
	free(threads);
}

struct seen {
	char name[16];
	pthread_t creator_self;
	int sigusr1_blocked;
};

static void *record(void *arg)
{
	struct seen *s = arg;
	prctl(PR_GET_NAME, s->name, 0, 0, 0);
	sigset_t cur;
	pthread_sigmask(SIG_SETMASK, NULL, &cur);
	s->sigusr1_blocked = sigismember(&cur, SIGUSR1);
	return NULL;
}

struct asker {
	struct seen seen;
	pthread_t made;
	int err;
	bool done;
};

/* Plays a vCPU: asks for a device thread and joins it. */
static void *ask(void *arg)
{
	struct asker *a = arg;
	const struct thread_starter *ts = &threads->starter;
	a->err = thread_start(ts, &a->made, THREAD_ROLE_BLK, "blk0-q3", record, &a->seen);
	if (!a->err)
		pthread_join(a->made, NULL);
	__atomic_store_n(&a->done, true, __ATOMIC_SEQ_CST);
	return NULL;
}

TestSuite(vm_threads, .init = setup, .fini = teardown);

Test(vm_threads, another_thread_gets_its_thread_from_the_main_loop)
{
	struct asker a = { 0 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, ask, &a), 0);
	/* The asker waits until the main thread serves: nothing is created
	 * behind its back. */
	struct pollfd p = { .fd = threads->efd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 5000), 1, "the request wakes the main loop");
	cr_assert_not(__atomic_load_n(&a.done, __ATOMIC_SEQ_CST));
	vm_threads_serve(threads);
	pthread_join(t, NULL);
	cr_assert_eq(a.err, 0);
	cr_assert_str_eq(a.seen.name, "blk0-q3", "the thread names itself");
	cr_assert_eq(a.seen.sigusr1_blocked, 1, "device threads take no signals");
	cr_assert_eq(roles_entered[THREAD_ROLE_BLK], 1, "the thread entered its role's filter first");
}

Test(vm_threads, after_the_loop_closed_asking_fails_at_once)
{
	vm_threads_close(threads);
	struct asker a = { 0 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, ask, &a), 0);
	pthread_join(t, NULL);
	cr_assert_eq(a.err, ESHUTDOWN);
}

Test(vm_threads, a_pending_request_is_failed_when_the_loop_closes)
{
	struct asker a = { 0 };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, ask, &a), 0);
	struct pollfd p = { .fd = threads->efd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 5000), 1);
	vm_threads_close(threads);   /* as vm_run does before stopping the vCPUs */
	pthread_join(t, NULL);
	cr_assert_eq(a.err, ESHUTDOWN);
}

Test(vm_threads, the_main_thread_creates_directly)
{
	struct seen s = { 0 };
	pthread_t t;
	cr_assert_eq(thread_start(&threads->starter, &t, THREAD_ROLE_NET, "net0-qp1", record, &s), 0);
	pthread_join(t, NULL);
	cr_assert_str_eq(s.name, "net0-qp1");
	cr_assert_eq(roles_entered[THREAD_ROLE_NET], 1);
}
