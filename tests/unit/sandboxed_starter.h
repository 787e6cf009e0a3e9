/* A thread starter for device tests that puts each new thread under one
 * role's seccomp filter before it runs, as minivmm's VM does: a call missing
 * from the role's allow list then ends the test process with status 159.
 * Header-only, one per test file (it has the file's sandbox). */
#ifndef MINIVMM_TEST_SANDBOXED_STARTER_H
#define MINIVMM_TEST_SANDBOXED_STARTER_H

#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/prctl.h>

#include "vmm/base/thread_start.h"
#include "vmm/sandbox.h"

static struct sandbox sandbox;
static atomic_uint sandboxed_threads; /* threads that entered the filter */
static enum thread_role sandboxed_role;

struct sandboxed_trampoline {
	void *(*fn)(void *);
	void *arg;
};

static void *sandboxed_enter_then_run(void *p)
{
	struct sandboxed_trampoline t = *(struct sandboxed_trampoline *)p;
	free(p);
	if (sandbox_enter(&sandbox, sandboxed_role))
		return NULL;
	atomic_fetch_add(&sandboxed_threads, 1);
	return t.fn(t.arg);
}

static int sandboxed_start(const struct thread_starter *ts, pthread_t *thread, enum thread_role role,
			   const char *name, void *(*fn)(void *), void *arg)
{
	(void)ts;
	cr_assert_eq(role, sandboxed_role);
	struct sandboxed_trampoline *t = malloc(sizeof(*t));
	cr_assert_not_null(t);
	*t = (struct sandboxed_trampoline){ fn, arg };
	return thread_start_plain(thread, name, sandboxed_enter_then_run, t);
}

/* Builds the filters (seccomp on) and returns a starter whose threads all
 * enter role's; sandbox_destroy(&sandbox) at the end. */
static const struct thread_starter *sandboxed_starter(enum thread_role role)
{
	static const struct thread_starter starter = { .start = sandboxed_start };
	char err[256] = "";
	sandboxed_role = role;
	cr_assert_eq(sandbox_init(&sandbox, SECCOMP_ON, NULL, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	return &starter;
}

#endif
