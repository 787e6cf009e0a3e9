#define _GNU_SOURCE
#include "vmm/vm_threads.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <unistd.h>

#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"
#include "vmm/sandbox.h"

/* A thread to create, or (call set) a function to run, on the serving
 * thread (vm_threads.server) for another thread, which waits. */
struct spawn_request {
	int (*call)(void *arg);
	enum thread_role role;
	const char *name;
	void *(*fn)(void *);
	void *arg;
	pthread_t *thread;
	int err;
	bool done;
	struct spawn_request *next;
};

struct role_thread {
	struct vm_threads *t;
	enum thread_role role;
	unsigned vcpu;   /* with THREAD_ROLE_VCPU: its index, for its own filter */
	char name[16];
	void *(*fn)(void *);
	void *arg;
};

/* First thing on every thread: its name, then its filter, then its work. */
static void *role_thread_main(void *p)
{
	struct role_thread rt = *(struct role_thread *)p;
	free(p);
	if (rt.name[0])
		prctl(PR_SET_NAME, rt.name, 0, 0, 0);
	if (rt.t->hooks->enter_role(rt.t->ctx, rt.role, rt.vcpu)) {
		rt.t->hooks->failed(rt.t->ctx);
		return NULL;
	}
	return rt.fn(rt.arg);
}

static int spawn(struct vm_threads *t, pthread_t *thread, enum thread_role role, unsigned vcpu, const char *name,
		 void *(*fn)(void *), void *arg)
{
	struct role_thread *rt = malloc(sizeof(*rt));
	if (!rt)
		return ENOMEM;
	*rt = (struct role_thread){ .t = t, .role = role, .vcpu = vcpu, .fn = fn, .arg = arg };
	if (name)
		snprintf(rt->name, sizeof(rt->name), "%s", name);
	/* The thread names itself (role_thread_main): naming it from here
	 * would open /proc/self/task/N/comm, which the filters forbid. */
	int e = role == THREAD_ROLE_VCPU ? pthread_create(thread, NULL, role_thread_main, rt)
					 : thread_start_plain(thread, NULL, role_thread_main, rt);
	if (e)
		free(rt);
	return e;
}

int vm_threads_create(struct vm_threads *t, pthread_t *thread, enum thread_role role, const char *name,
		      void *(*fn)(void *), void *arg)
{
	return spawn(t, thread, role, 0, name, fn, arg);
}

int vm_threads_create_vcpu(struct vm_threads *t, pthread_t *thread, unsigned index, const char *name,
			   void *(*fn)(void *), void *arg)
{
	return spawn(t, thread, THREAD_ROLE_VCPU, index, name, fn, arg);
}

/* Queues req for the serving thread and waits until it is done. Returns
 * req->err: what the call returned, or the thread creation's errno value
 * (-ESHUTDOWN, ESHUTDOWN once no longer served, as finish_pending says). */
static int ask_server(struct vm_threads *t, struct spawn_request *req)
{
	pthread_mutex_lock(&t->lock);
	if (t->closed) {
		pthread_mutex_unlock(&t->lock);
		return req->err = req->call ? -ESHUTDOWN : ESHUTDOWN;
	}
	req->next = t->pending;
	t->pending = req;
	pthread_mutex_unlock(&t->lock);
	int e = eventfd_signal(t->efd);
	if (e)
		log_warn("thread request eventfd: %s", strerror(e));
	pthread_mutex_lock(&t->lock);
	while (!req->done)
		pthread_cond_wait(&t->cond, &t->lock);
	pthread_mutex_unlock(&t->lock);
	return req->err;
}

static int start_for_device(const struct thread_starter *ts, pthread_t *thread, enum thread_role role,
			    const char *name, void *(*fn)(void *), void *arg)
{
	struct vm_threads *t = ts->ctx;
	if (pthread_equal(pthread_self(), t->server))
		return vm_threads_create(t, thread, role, name, fn, arg);

	struct spawn_request req = { .role = role, .name = name, .fn = fn, .arg = arg, .thread = thread };
	return ask_server(t, &req);
}

int vm_threads_call(struct vm_threads *t, int (*fn)(void *), void *arg)
{
	if (!t->starter.start || pthread_equal(pthread_self(), t->server))
		return fn(arg);
	struct spawn_request req = { .call = fn, .arg = arg };
	return ask_server(t, &req);
}

int vm_threads_init(struct vm_threads *t, const struct vm_threads_hooks *hooks, void *ctx)
{
	t->hooks = hooks;
	t->ctx = ctx;
	t->server = pthread_self();
	t->starter = (struct thread_starter){ start_for_device, t };
	pthread_mutex_init(&t->lock, NULL);
	pthread_cond_init(&t->cond, NULL);
	t->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (t->efd < 0) {
		log_error("eventfd: %s", strerror(errno));
		return -1;
	}
	return 0;
}

static void finish_pending(struct vm_threads *t, bool create)
{
	pthread_mutex_lock(&t->lock);
	struct spawn_request *r = t->pending;
	t->pending = NULL;
	pthread_mutex_unlock(&t->lock);
	/* Served without the lock: a call may itself ask for threads, which on
	 * this thread are created directly. */
	while (r) {
		struct spawn_request *next = r->next;
		if (!create)
			r->err = r->call ? -ESHUTDOWN : ESHUTDOWN;
		else if (r->call)
			r->err = r->call(r->arg);
		else
			r->err = vm_threads_create(t, r->thread, r->role, r->name, r->fn, r->arg);
		pthread_mutex_lock(&t->lock);
		r->done = true;
		pthread_cond_broadcast(&t->cond);
		pthread_mutex_unlock(&t->lock);
		r = next;
	}
}

void vm_threads_serve(struct vm_threads *t)
{
	int e = eventfd_drain(t->efd);
	if (e < 0)
		log_warn("thread request eventfd: %s", strerror(-e));
	finish_pending(t, true);
}

static void *control_main(void *arg)
{
	struct vm_threads *t = arg;
	prctl(PR_SET_NAME, "control", 0, 0, 0);
	sandbox_note_role(THREAD_ROLE_CONTROL);   /* its filter: the one it inherited */
	for (;;) {
		struct pollfd pfd = { .fd = t->efd, .events = POLLIN };
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR) {
			log_error("control thread: poll: %s", strerror(errno));
			t->hooks->failed(t->ctx);
			break;
		}
		vm_threads_serve(t);
		pthread_mutex_lock(&t->lock);
		bool done = t->teardown;
		pthread_mutex_unlock(&t->lock);
		if (done)
			break;
	}
	t->hooks->teardown(t->ctx);
	return NULL;
}

int vm_threads_start_control(struct vm_threads *t)
{
	/* Named by itself: naming it from here opens /proc/self/task/N/comm. */
	int e = thread_start_plain(&t->control, NULL, control_main, t);
	if (e) {
		log_error("cannot start the control thread: %s", strerror(e));
		return -1;
	}
	pthread_mutex_lock(&t->lock);
	t->control_started = true;
	t->server = t->control;   /* requests go to it from now on */
	pthread_mutex_unlock(&t->lock);
	return 0;
}

void vm_threads_stop_control(struct vm_threads *t)
{
	if (!t->control_started)
		return;
	pthread_mutex_lock(&t->lock);
	t->teardown = true;
	pthread_mutex_unlock(&t->lock);
	int e = eventfd_signal(t->efd);
	if (e)
		log_warn("thread request eventfd: %s", strerror(e));
	pthread_join(t->control, NULL);
	t->control_started = false;
}

void vm_threads_close(struct vm_threads *t)
{
	pthread_mutex_lock(&t->lock);
	t->closed = true;
	pthread_mutex_unlock(&t->lock);
	finish_pending(t, false);
}

void vm_threads_destroy(struct vm_threads *t)
{
	if (!t->starter.start)
		return;   /* never initialised */
	vm_threads_close(t);
	vm_threads_stop_control(t);
	if (t->efd >= 0)
		close(t->efd);
	t->efd = -1;
	pthread_cond_destroy(&t->cond);
	pthread_mutex_destroy(&t->lock);
	t->starter.start = NULL;
}
