/* vmm/sandbox.c: per-role seccomp filters and the privilege drop. Each case
 * that installs a filter or drops privileges does it in a forked child (a
 * filter cannot be removed), and the parent reads the child's status and
 * stderr. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/vhost.h>
#include <sys/capability.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <sys/mman.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/sandbox.h"

struct child_result {
	int status;          /* exit status, or 128 + signal */
	bool signaled;
	char err[1024];      /* what it wrote on stderr */
};

/* Runs body(arg) in a child with mode's filters compiled; the child exits
 * with body's return value. */
static struct child_result in_child_fds(enum seccomp_mode mode, const struct sandbox_fds *fds,
				       int (*body)(struct sandbox *sb, void *arg), void *arg)
{
	int pipefd[2];
	cr_assert_eq(pipe(pipefd), 0);
	pid_t pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		dup2(pipefd[1], STDERR_FILENO);
		close(pipefd[0]);
		struct sandbox sb;
		char err[256];
		if (sandbox_init(&sb, mode, fds, err, sizeof(err))) {
			fprintf(stderr, "init: %s\n", err);
			_exit(90);
		}
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
			_exit(91);
		_exit(body(&sb, arg));
	}
	close(pipefd[1]);
	struct child_result r = { 0 };
	size_t got = 0;
	ssize_t n;
	while ((n = read(pipefd[0], r.err + got, sizeof(r.err) - 1 - got)) > 0)
		got += (size_t)n;
	close(pipefd[0]);
	int st;
	cr_assert_eq(waitpid(pid, &st, 0), pid);
	r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
	r.signaled = WIFSIGNALED(st);
	return r;
}

static struct child_result in_child(enum seccomp_mode mode, int (*body)(struct sandbox *sb, void *arg), void *arg)
{
	return in_child_fds(mode, NULL, body, arg);
}

static void assert_killed_for(const struct child_result *r, const char *role, const char *call)
{
	char want[160];
	cr_assert_not(r->signaled, "killed by a signal, not by the handler: %s", r->err);
	cr_assert_eq(r->status, SANDBOX_VIOLATION_STATUS, "status %d, stderr: %s", r->status, r->err);
	snprintf(want, sizeof(want), "(%s) made a forbidden system call: %s (", role, call);
	cr_assert(strstr(r->err, want), "stderr '%s' lacks '%s'", r->err, want);
	cr_assert(!strchr(strchr(r->err, '\n') + 1, '\n'), "one line only: %s", r->err);
}

Test(sandbox, every_role_compiles_in_both_modes)
{
	for (int m = SECCOMP_ON; m <= SECCOMP_LOG; m++) {
		struct sandbox sb;
		char err[256] = "";
		cr_assert_eq(sandbox_init(&sb, (enum seccomp_mode)m, NULL, err, sizeof(err)), 0, "%s", err);
		for (int r = 0; r < THREAD_ROLE_COUNT; r++)
			cr_assert_gt(sb.filters[r].len, 4, "role %s", thread_role_names[r]);
		/* The control thread's is the union: the largest. */
		for (int r = 0; r < THREAD_ROLE_COUNT; r++)
			if (r != THREAD_ROLE_CONTROL)
				cr_assert_gt(sb.filters[THREAD_ROLE_CONTROL].len, sb.filters[r].len);
		sandbox_destroy(&sb);
	}
	struct sandbox off;
	char err[16];
	cr_assert_eq(sandbox_init(&off, SECCOMP_OFF, NULL, err, sizeof(err)), 0);
	cr_assert_not(off.active);
	cr_assert_eq(sandbox_enter(&off, THREAD_ROLE_BLK), 0, "off: nothing to install");
}

Test(sandbox, control_allows_what_every_role_allows)
{
	const int calls[] = { SCMP_SYS(pwritev), SCMP_SYS(fdatasync), SCMP_SYS(readv), SCMP_SYS(writev),
			      SCMP_SYS(poll), SCMP_SYS(eventfd2) };
	for (unsigned i = 0; i < sizeof(calls) / sizeof(calls[0]); i++)
		cr_assert(sandbox_role_allows(THREAD_ROLE_CONTROL, calls[i]), "syscall %d", calls[i]);
	/* Issue 13: "the main thread's filter is the union of every role": after
	 * start-up it is the event loop's alone. */
	const int not_main[] = { SCMP_SYS(pwritev), SCMP_SYS(fdatasync), SCMP_SYS(eventfd2), SCMP_SYS(clone),
				 SCMP_SYS(socket), SCMP_SYS(seccomp), SCMP_SYS(preadv) };
	for (unsigned i = 0; i < sizeof(not_main) / sizeof(not_main[0]); i++)
		cr_assert_not(sandbox_role_allows(THREAD_ROLE_MAIN, not_main[i]), "syscall %d", not_main[i]);
	cr_assert(sandbox_role_allows(THREAD_ROLE_BLK, SCMP_SYS(pwritev)));
	cr_assert(sandbox_role_allows(THREAD_ROLE_BLK, SCMP_SYS(fallocate)), "discard and write zeroes");
	/* io_uring: the blk workers enter their rings (made before the sandbox);
	 * no role makes or registers one, and only blk (and the control thread,
	 * the union every thread starts from) enters one. */
	cr_assert(sandbox_role_allows(THREAD_ROLE_BLK, SCMP_SYS(io_uring_enter)));
	for (int r = 0; r < THREAD_ROLE_COUNT; r++) {
		cr_assert_not(sandbox_role_allows((enum thread_role)r, SCMP_SYS(io_uring_setup)), "role %d", r);
		cr_assert_not(sandbox_role_allows((enum thread_role)r, SCMP_SYS(io_uring_register)), "role %d", r);
		if (r != THREAD_ROLE_BLK && r != THREAD_ROLE_CONTROL)
			cr_assert_not(sandbox_role_allows((enum thread_role)r, SCMP_SYS(io_uring_enter)), "role %d", r);
	}
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_NET, SCMP_SYS(fallocate)));
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_NET, SCMP_SYS(pwritev)), "net workers never touch files");
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_VCPU, SCMP_SYS(fdatasync)));
#if !SANDBOX_SANITIZER_BUILD   /* the sanitizer runtime opens /proc files itself */
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_BLK, SCMP_SYS(openat)));
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_CONTROL, SCMP_SYS(openat)), "nothing opens files after set-up");
#endif
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_BLK, SCMP_SYS(socket)));
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_CONTROL, SCMP_SYS(execve)));
	cr_assert(sandbox_role_allows(THREAD_ROLE_VSOCK, SCMP_SYS(accept4)));
	cr_assert(sandbox_role_allows(THREAD_ROLE_CONTROL, SCMP_SYS(epoll_ctl)), "the union has vsock's");
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_VSOCK, SCMP_SYS(socket)), "by its arguments only");
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_VSOCK, SCMP_SYS(bind)));
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_NET, SCMP_SYS(accept4)));
	cr_assert(sandbox_role_allows(THREAD_ROLE_NET, SCMP_SYS(timerfd_settime)), "a rate-limited pair's timer");
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_NET, SCMP_SYS(timerfd_create)), "made with the device");
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_NET_CTRL, SCMP_SYS(timerfd_create)));
	cr_assert(sandbox_role_allows(THREAD_ROLE_RNG, SCMP_SYS(getrandom)));
	cr_assert(sandbox_role_allows(THREAD_ROLE_RNG, SCMP_SYS(poll)));
#if !SANDBOX_SANITIZER_BUILD   /* the sanitizer runtime's own calls are in every list there */
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_RNG, SCMP_SYS(openat)), "no /dev/urandom: getrandom only");
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_RNG, SCMP_SYS(close)));
#endif
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_RNG, SCMP_SYS(preadv)));
	cr_assert_not(sandbox_role_allows(THREAD_ROLE_RNG, SCMP_SYS(socket)));
	cr_assert_str_eq(thread_role_names[THREAD_ROLE_RNG], "rng worker");
}

/* The vsock thread: its sockets' calls, and new sockets of one kind only
 * (non-blocking AF_UNIX streams, to connect to the host's listeners). */
static int vsock_socket_calls(struct sandbox *sb, void *arg)
{
	int ep = epoll_create1(EPOLL_CLOEXEC), pair[2], lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };   /* abstract: nothing on disk */
	static const char name[] = "\0minivmm-vsock-sandbox-test";
	memcpy(sa.sun_path, name, sizeof(name));
	if (ep < 0 || lfd < 0 || socketpair(AF_UNIX, SOCK_STREAM, 0, pair) ||
	    bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(lfd, 4))
		return 92;
	if (sandbox_enter(sb, THREAD_ROLE_VSOCK))
		return 93;
	struct epoll_event ev = { .events = EPOLLIN };
	char c = 'x';
	struct iovec iov = { &c, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) ||
	    epoll_wait(ep, &ev, 1, 1000) != 1)
		return 94;
	int a = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (a < 0 || sendmsg(pair[0], &m, MSG_NOSIGNAL) != 1 || recvmsg(pair[1], &m, MSG_DONTWAIT) != 1 ||
	    shutdown(a, SHUT_WR) || close(a) || close(fd))
		return 95;
	/* forbidden: the process ends here */
	socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	return 0;
}

Test(sandbox, vsock_thread_makes_unix_stream_sockets_only)
{
	struct child_result r = in_child(SECCOMP_ON, vsock_socket_calls, NULL);
	assert_killed_for(&r, "vsock", "socket");
}

/* The rng worker: getrandom and the queue worker's poll; no file I/O, not
 * even on an fd it was handed (/dev/urandom is not how it gets bytes). */
static int rng_reads_a_file(struct sandbox *sb, void *arg)
{
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0 || sandbox_enter(sb, THREAD_ROLE_RNG))
		return 92;
	char b[64];
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (getrandom(b, sizeof(b), 0) != sizeof(b) || poll(&p, 1, 0) < 0)
		return 93;
	struct iovec iov = { b, sizeof(b) };
	preadv(fd, &iov, 1, 0);   /* forbidden: the process ends here */
	return 0;
}

Test(sandbox, rng_worker_gets_bytes_from_getrandom_only)
{
	struct child_result r = in_child(SECCOMP_ON, rng_reads_a_file, NULL);
	assert_killed_for(&r, "rng worker", "preadv");
}

/* A block worker: file I/O yes, opening a file no. */
static int blk_opens_a_file(struct sandbox *sb, void *arg)
{
	int fd = open("/dev/null", O_RDWR);
	if (sandbox_enter(sb, THREAD_ROLE_BLK))
		return 92;
	char b[4];
	if (pread(fd, b, sizeof(b), 0) != 0 || pwrite(fd, b, sizeof(b), 0) != sizeof(b) || (fdatasync(fd) != 0 && errno != EINVAL))
		return 93;
	/* discard and write zeroes: allowed (/dev/null has no blocks to punch) */
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096) == 0 || errno == EPERM)
		return 94;
	socket(AF_INET6, SOCK_STREAM, 0);   /* forbidden: the process ends here */
	return 0;
}

Test(sandbox, blk_worker_is_stopped_at_socket_and_named)
{
	struct child_result r = in_child(SECCOMP_ON, blk_opens_a_file, NULL);
	assert_killed_for(&r, "blk worker", "socket");
}

/* With --seccomp log the same call goes through. */
Test(sandbox, log_mode_lets_the_call_through)
{
	struct child_result r = in_child(SECCOMP_LOG, blk_opens_a_file, NULL);
	cr_assert_eq(r.status, 0, "status %d, stderr %s", r.status, r.err);
	cr_assert_str_empty(r.err);
}

/* ioctl is filtered by request number: a vCPU may KVM_RUN but not TUNSETIFF. */
static int vcpu_ioctls(struct sandbox *sb, void *arg)
{
	int fd = open("/dev/null", O_RDWR);
	if (sandbox_enter(sb, THREAD_ROLE_VCPU))
		return 92;
	if (ioctl(fd, KVM_RUN, 0) == 0 || errno != ENOTTY)   /* allowed: the driver says ENOTTY */
		return 93;
	ioctl(fd, TUNSETIFF, NULL);
	return 0;
}

Test(sandbox, vcpu_ioctl_outside_its_list_is_stopped)
{
	struct child_result r = in_child(SECCOMP_ON, vcpu_ioctls, NULL);
	assert_killed_for(&r, "vcpu", "ioctl");
}

/* No role may map new code. */
static int net_maps_exec(struct sandbox *sb, void *arg)
{
	if (sandbox_enter(sb, THREAD_ROLE_NET))
		return 92;
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return 93;
	mprotect(p, 4096, PROT_READ | PROT_EXEC);
	return 0;
}

Test(sandbox, executable_mappings_are_refused)
{
	struct child_result r = in_child(SECCOMP_ON, net_maps_exec, NULL);
	assert_killed_for(&r, "net worker", "mprotect");
}

/* The main thread creates threads; a thread made from it narrows itself;
 * a vCPU cannot create threads at all (it asks the main thread). */
static void *narrow_then_write(void *arg)
{
	struct sandbox *sb = arg;
	if (sandbox_enter(sb, THREAD_ROLE_NET))
		return (void *)1;
	char c = 'x';
	return (void *)(intptr_t)(write(STDERR_FILENO, &c, 0) != 0);
}

static void *spawn_from_vcpu(void *arg)
{
	struct sandbox *sb = arg;
	if (sandbox_enter(sb, THREAD_ROLE_VCPU))
		return (void *)1;
	pthread_t t;
	int rc = pthread_create(&t, NULL, narrow_then_write, sb);   /* clone: forbidden */
	return (void *)(intptr_t)(100 + rc);   /* not reached, unless no clone was tried */
}

static int threads_by_role(struct sandbox *sb, void *arg)
{
	if (sandbox_enter(sb, THREAD_ROLE_CONTROL))
		return 92;
	pthread_t t;
	void *ret = (void *)7;
	if (pthread_create(&t, NULL, narrow_then_write, sb) || pthread_join(t, &ret) || ret)
		return 93;
	if (pthread_create(&t, NULL, spawn_from_vcpu, sb))
		return 94;
	pthread_join(t, &ret);
	return (int)(intptr_t)ret;
}

/* glibc blocks every signal around clone, so the kernel cannot deliver the
 * SIGSYS to our handler: it kills the process with it, without a line. */
Test(sandbox, only_the_control_thread_creates_threads)
{
	struct child_result r = in_child(SECCOMP_ON, threads_by_role, NULL);
	cr_assert(r.signaled && r.status == 128 + SIGSYS, "status %d (signaled %d), stderr: %s", r.status, r.signaled,
		  r.err);
}

/* ---- privileges ---- */

Test(sandbox, user_and_group_names_and_numbers)
{
	uid_t uid;
	gid_t gid;
	bool hu, hg;
	char err[128];
	cr_assert_eq(sandbox_resolve_ids("root", NULL, 0, &uid, &gid, &hu, &hg, err, sizeof(err)), 0);
	cr_assert(hu && hg && uid == 0 && gid == 0, "root's own group comes with it");
	cr_assert_eq(sandbox_resolve_ids("4321", "1234", 0, &uid, &gid, &hu, &hg, err, sizeof(err)), 0);
	cr_assert(uid == 4321 && gid == 1234);
	/* Issue 13, item 7: a bare uid brought the same number as its gid (15 = kmem, 27 = sudo). */
	cr_assert_eq(sandbox_resolve_ids("4321", NULL, 0, &uid, &gid, &hu, &hg, err, sizeof(err)), 0);
	cr_assert(hg && gid == SANDBOX_NOBODY, "a bare uid gets nogroup, not the same number: gid %u", (unsigned)gid);
	cr_assert_eq(sandbox_resolve_ids("27", NULL, 0, &uid, &gid, &hu, &hg, err, sizeof(err)), 0);
	cr_assert(uid == 27 && gid == SANDBOX_NOBODY);
	/* Issue 13, item 7: root without --user stayed uid 0 with its capabilities dropped. */
	cr_assert_eq(sandbox_resolve_ids(NULL, NULL, 0, &uid, &gid, &hu, &hg, err, sizeof(err)), 0);
	cr_assert(hu && hg && uid == SANDBOX_NOBODY && gid == SANDBOX_NOBODY, "root becomes nobody by default");
	cr_assert_eq(sandbox_resolve_ids(NULL, "4000", 0, &uid, &gid, &hu, &hg, err, sizeof(err)), 0);
	cr_assert(hu && hg && uid == SANDBOX_NOBODY && gid == 4000);
	cr_assert_eq(sandbox_resolve_ids(NULL, NULL, 1000, &uid, &gid, &hu, &hg, err, sizeof(err)), 0);
	cr_assert(!hu && !hg, "an unprivileged user keeps its ids");
	cr_assert_eq(sandbox_resolve_ids("no-such-user-minivmm", NULL, 0, &uid, &gid, &hu, &hg, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "--user no-such-user-minivmm: no such user");
	cr_assert_eq(sandbox_resolve_ids(NULL, "12x", 0, &uid, &gid, &hu, &hg, err, sizeof(err)), -1);
	cr_assert_str_eq(err, "--group 12x: no such group");
}

static int drop_all(struct sandbox *sb, void *arg)
{
	const char *dir = arg;
	char err[256];
	if (sandbox_drop_privileges(dir, true, 65534, true, 65534, err, sizeof(err))) {
		fprintf(stderr, "%s\n", err);
		return 92;
	}
	if (getuid() != 65534 || geteuid() != 65534 || getgid() != 65534)
		return 93;
	cap_t c = cap_get_proc();
	cap_t none = cap_init();
	int same = cap_compare(c, none) == 0;
	cap_free(c);
	cap_free(none);
	if (!same)
		return 94;
	for (int cap = 0; cap <= CAP_LAST_CAP; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) == 1)
			return 95;
	if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
		return 96;
	if (access("/marker", F_OK) != 0 || access("/etc/passwd", F_OK) == 0)
		return 97;   /* the new root is the directory, the host's is gone */
	return 0;
}

Test(sandbox, privileges_dropped_and_root_changed)
{
	if (geteuid() != 0)
		cr_skip_test("needs root to switch users and chroot (running as uid %u)", (unsigned)geteuid());
	char dir[] = "/tmp/minivmm-chroot-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	chmod(dir, 0755);   /* the unprivileged user must be able to look inside its new root */
	char marker[64];
	snprintf(marker, sizeof(marker), "%s/marker", dir);
	close(open(marker, O_CREAT | O_WRONLY, 0644));
	struct child_result r = in_child(SECCOMP_OFF, drop_all, dir);
	unlink(marker);
	rmdir(dir);
	cr_assert_eq(r.status, 0, "status %d, stderr %s", r.status, r.err);
}

static int chroot_missing(struct sandbox *sb, void *arg)
{
	char err[256];
	if (sandbox_drop_privileges("/nonexistent-minivmm", false, 0, false, 0, err, sizeof(err)) == 0)
		return 92;
	fprintf(stderr, "%s\n", err);
	return 0;
}

Test(sandbox, chroot_to_a_missing_directory_is_one_clear_error)
{
	if (geteuid() != 0)
		cr_skip_test("needs root for chroot (running as uid %u)", (unsigned)geteuid());
	struct child_result r = in_child(SECCOMP_OFF, chroot_missing, NULL);
	cr_assert_eq(r.status, 0);
	cr_assert_str_eq(r.err, "--chroot /nonexistent-minivmm: No such file or directory\n");
}

/* ---- ioctls on their own fds only (issue 13: "ioctl is filtered by
 * request number only": KVM_SET_GSI_ROUTING on stdin from a vCPU thread
 * reached the kernel) ---- */

/* Stand-ins for the VM's fds: eventfds, on which every ioctl fails with
 * ENOTTY, so "allowed" shows as a return, "refused" as the SIGSYS exit. */
struct fd_case {
	struct sandbox_fds fds;
	int vcpu_fds[2], taps[1], vhost[1], vm, foreign;
	enum thread_role role;
	int vcpu;                 /* with THREAD_ROLE_VCPU */
	int fd;                   /* the call: ioctl(fd, req) */
	unsigned long req;
};

static void fd_case_init(struct fd_case *c)
{
	memset(c, 0, sizeof(*c));
	int *all[] = { &c->vcpu_fds[0], &c->vcpu_fds[1], &c->taps[0], &c->vhost[0], &c->vm, &c->foreign };
	for (unsigned i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		*all[i] = eventfd(0, EFD_CLOEXEC);
		cr_assert_geq(*all[i], 0);
	}
	c->fds = (struct sandbox_fds){ .vm_fd = c->vm, .vcpu_fds = c->vcpu_fds, .n_vcpus = 2, .tap_fds = c->taps,
				       .n_taps = 1, .vhost_fds = c->vhost, .n_vhost = 1 };
}

static int fd_case_body(struct sandbox *sb, void *arg)
{
	struct fd_case *c = arg;
	if (sandbox_enter(sb, THREAD_ROLE_CONTROL))
		return 92;
	int rc = c->role == THREAD_ROLE_VCPU ? sandbox_enter_vcpu(sb, (unsigned)c->vcpu) : sandbox_enter(sb, c->role);
	if (rc)
		return 93;
	errno = 0;
	if (ioctl(c->fd, c->req, 0) == 0 || errno == 0)
		return 94;   /* an eventfd takes no ioctl: the call must fail */
	return 0;        /* allowed by the filter, refused by the fd */
}

static struct child_result fd_case_run(struct fd_case *c, enum thread_role role, int vcpu, int fd, unsigned long req)
{
	c->role = role;
	c->vcpu = vcpu;
	c->fd = fd;
	c->req = req;
	return in_child_fds(SECCOMP_ON, &c->fds, fd_case_body, c);
}

Test(sandbox, ioctls_only_on_their_own_fds)
{
	struct fd_case c;
	fd_case_init(&c);
	struct child_result r;
	/* allowed where they belong */
	r = fd_case_run(&c, THREAD_ROLE_VCPU, 0, c.vcpu_fds[0], KVM_RUN);
	cr_assert_eq(r.status, 0, "KVM_RUN on the vCPU's own fd: %d %s", r.status, r.err);
	r = fd_case_run(&c, THREAD_ROLE_VCPU, 1, c.vm, KVM_IRQFD);
	cr_assert_eq(r.status, 0, "KVM_IRQFD on the VM fd: %d %s", r.status, r.err);
	r = fd_case_run(&c, THREAD_ROLE_NET_CTRL, 0, c.taps[0], TUNSETQUEUE);
	cr_assert_eq(r.status, 0, "TUNSETQUEUE on a tap: %d %s", r.status, r.err);
	r = fd_case_run(&c, THREAD_ROLE_NET_CTRL, 0, c.vhost[0], VHOST_SET_VRING_KICK);
	cr_assert_eq(r.status, 0, "a vhost request on a vhost fd: %d %s", r.status, r.err);
	/* refused anywhere else */
	r = fd_case_run(&c, THREAD_ROLE_VCPU, 0, c.vcpu_fds[1], KVM_RUN);
	assert_killed_for(&r, "vcpu", "ioctl");   /* another vCPU's fd */
	r = fd_case_run(&c, THREAD_ROLE_VCPU, 0, STDIN_FILENO, KVM_SET_GSI_ROUTING);
	assert_killed_for(&r, "vcpu", "ioctl");   /* the case: a VM request on stdin */
	r = fd_case_run(&c, THREAD_ROLE_VCPU, 0, c.foreign, TUNSETQUEUE);
	assert_killed_for(&r, "vcpu", "ioctl");   /* a tap request on a foreign fd */
	r = fd_case_run(&c, THREAD_ROLE_NET_CTRL, 0, c.taps[0], VHOST_SET_OWNER);
	assert_killed_for(&r, "net ctrl", "ioctl");   /* a vhost request on a tap */
	/* Issue 13: "vCPU threads hold the tap and vhost ioctls": activation
	 * runs on the main thread now, and a vCPU is refused them on their own fds. */
	r = fd_case_run(&c, THREAD_ROLE_VCPU, 0, c.taps[0], TUNSETQUEUE);
	assert_killed_for(&r, "vcpu", "ioctl");
	r = fd_case_run(&c, THREAD_ROLE_VCPU, 0, c.vhost[0], VHOST_SET_OWNER);
	assert_killed_for(&r, "vcpu", "ioctl");
	r = fd_case_run(&c, THREAD_ROLE_NET_CTRL, 0, c.vm, KVM_IRQFD);
	assert_killed_for(&r, "net ctrl", "ioctl");
	r = fd_case_run(&c, THREAD_ROLE_MAIN, 0, c.vhost[0], TUNSETIFF);
	assert_killed_for(&r, "main", "ioctl");   /* not a request of ours, on any fd */
	r = fd_case_run(&c, THREAD_ROLE_MAIN, 0, c.foreign, TCGETS);
	assert_killed_for(&r, "main", "ioctl");   /* the terminal's requests: on stdin only */
	/* Console input on the main thread raises the UART's line (found by
	 * serial_interactive when main's filter was first narrowed). */
	r = fd_case_run(&c, THREAD_ROLE_MAIN, 0, c.vm, KVM_IRQ_LINE);
	cr_assert_eq(r.status, 0, "KVM_IRQ_LINE on the VM fd from main: %d %s", r.status, r.err);
	r = fd_case_run(&c, THREAD_ROLE_MAIN, 0, c.vm, KVM_IRQFD);
	assert_killed_for(&r, "main", "ioctl");
}

static int stat_path_body(struct sandbox *sb, void *arg)
{
	(void)arg;
	if (sandbox_enter(sb, THREAD_ROLE_CONTROL) || sandbox_enter(sb, THREAD_ROLE_BLK))
		return 92;
	struct stat st;
	if (fstat(STDERR_FILENO, &st))   /* glibc: newfstatat(fd, "", st, AT_EMPTY_PATH) */
		return 93;
	stat("/etc/passwd", &st);        /* a path lookup: refused */
	return 0;
}

/* Issue 13: "newfstatat accepts any path (a blk worker could stat /etc/shadow)". */
Test(sandbox, stat_by_path_refused)
{
	struct child_result r = in_child(SECCOMP_ON, stat_path_body, NULL);
	assert_killed_for(&r, "blk worker", "newfstatat");
}

/* The largest device set the options allow compiles into filters the kernel takes. */
Test(sandbox, largest_fd_sets_compile)
{
	static int vcpus[255], taps[MAX_NETS * MAX_NET_QUEUE_PAIRS], vhost[MAX_NETS * MAX_NET_QUEUE_PAIRS];
	for (int i = 0; i < 255; i++)
		vcpus[i] = 1000 + i;
	for (int i = 0; i < MAX_NETS * MAX_NET_QUEUE_PAIRS; i++) {
		taps[i] = 2000 + i;
		vhost[i] = 3000 + i;
	}
	struct fd_case c;
	fd_case_init(&c);
	c.fds = (struct sandbox_fds){ .vm_fd = c.vm, .vcpu_fds = vcpus, .n_vcpus = 255, .tap_fds = taps,
				      .n_taps = MAX_NETS * MAX_NET_QUEUE_PAIRS, .vhost_fds = vhost,
				      .n_vhost = MAX_NETS * MAX_NET_QUEUE_PAIRS };
	/* the main thread's union and vCPU 254's (shared past 64 vCPUs), installed for real */
	struct child_result r = fd_case_run(&c, THREAD_ROLE_VCPU, 254, c.vm, KVM_IRQFD);
	cr_assert_eq(r.status, 0, "%d %s", r.status, r.err);
	r = fd_case_run(&c, THREAD_ROLE_VCPU, 254, vcpus[3], KVM_RUN);
	cr_assert_eq(r.status, 0, "shared: KVM_RUN on another vCPU's fd passes the filter: %d %s", r.status, r.err);
	r = fd_case_run(&c, THREAD_ROLE_VCPU, 254, c.foreign, KVM_RUN);
	assert_killed_for(&r, "vcpu", "ioctl");
}
