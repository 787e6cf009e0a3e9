/* Runs a function on a thread of its own whose seccomp filter makes
 * io_uring_setup fail with a given errno, the way a container's seccomp
 * profile (ENOSYS) or sysctl kernel.io_uring_disabled (EPERM) refuse it: the
 * engine's fallback and errors are then tested on any kernel. The filter is
 * the thread's alone (no TSYNC), so the test's other threads are untouched.
 * fn must not use Criterion's assertions (another thread): it records what
 * it saw, and the caller asserts. */
#ifndef MINIVMM_TESTS_URING_REFUSED_H
#define MINIVMM_TESTS_URING_REFUSED_H

#include <criterion/criterion.h>
#include <pthread.h>
#include <seccomp.h>

struct uring_refused_run {
	int err;
	void (*fn)(void *);
	void *arg;
	int load_rc;
};

static void *uring_refused_thread(void *p)
{
	struct uring_refused_run *r = p;
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	r->load_rc = -1;
	if (!ctx)
		return NULL;
	r->load_rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO((unsigned)r->err), SCMP_SYS(io_uring_setup), 0);
	if (!r->load_rc)
		r->load_rc = seccomp_load(ctx);   /* sets no_new_privs on this thread first */
	seccomp_release(ctx);
	if (!r->load_rc)
		r->fn(r->arg);
	return NULL;
}

static inline void with_io_uring_refused(int err, void (*fn)(void *), void *arg)
{
	struct uring_refused_run r = { .err = err, .fn = fn, .arg = arg };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, uring_refused_thread, &r), 0);
	cr_assert_eq(pthread_join(t, NULL), 0);
	cr_assert_eq(r.load_rc, 0, "seccomp filter for the refusing thread: %d", r.load_rc);
}

#endif
