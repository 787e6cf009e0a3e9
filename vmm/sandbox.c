#define _GNU_SOURCE
#include "vmm/sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <linux/vhost.h>
#include <malloc.h>
#include <pwd.h>
#include <seccomp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/capability.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/ioctl.h>   /* TCGETS, TCSETS* */
#include <unistd.h>

#include "vmm/base/log.h"
#include "syscall_names.h"   /* generated: static const char *const syscall_names[] */

/* ---- the allow lists ----
 *
 * Built from what each role calls (docs/sandbox.md says how to check):
 * glibc's own calls (malloc, thread exit, stdio) are in every list. */

enum arg_rule {
	ANY_ARGS,
	NO_EXEC,         /* mmap/mprotect: PROT_EXEC refused (no new code after start) */
	IOCTL_LIST,      /* ioctl: only the role's request numbers */
	THREAD_CLONE,    /* clone: threads only, never a new process */
	TRACER_CLONE,    /* clone: no thread (sanitizer builds: the leak checker's tracer) */
	DGRAM_SOCKET,    /* socket: AF_INET/AF_UNIX datagram (the tap MTU query) */
	NAME_ONLY,       /* prctl: PR_SET_NAME (a new thread names itself) */
	GET_NAME_ONLY,   /* prctl: PR_GET_NAME (the SIGSYS handler names the thread) */
	FILTER_ONLY,     /* seccomp: SECCOMP_SET_MODE_FILTER (a new thread narrows itself) */
	FD_STAT,         /* newfstatat: AT_EMPTY_PATH (glibc's fstat), not a path lookup */
	API_DIR_ONLY,    /* unlinkat: of a file (no AT_REMOVEDIR) in the control socket's or the vsock socket's directory */
	UNIX_STREAM_SOCKET,   /* socket: AF_UNIX non-blocking stream (vsock's connections to host sockets) */
};

struct rule {
	int nr;
	enum arg_rule args;
};

#define R(name) { SCMP_SYS(name), ANY_ARGS }
/* Ends a list. Not "any negative number": a call this architecture does not
 * have (poll, readlink on arm64) is a negative libseccomp pseudo-number
 * (__PNR_*, below -10000), which libseccomp ignores in a rule. */
#define RULES_END (-1)

/* glibc under every thread: malloc, stdio on stderr, futexes, thread exit. */
static const struct rule common_rules[] = {
	R(read), R(write), R(futex), R(exit), R(exit_group), R(rt_sigreturn), R(restart_syscall),
	R(rt_sigprocmask), R(madvise), R(munmap), R(brk), R(clock_gettime), R(clock_nanosleep), R(nanosleep),
	R(gettid), R(getpid), R(sched_yield), R(fstat), { SCMP_SYS(newfstatat), FD_STAT }, R(getrandom),
	{ SCMP_SYS(mmap), NO_EXEC }, { SCMP_SYS(mprotect), NO_EXEC }, { SCMP_SYS(prctl), GET_NAME_ONLY },
#if SANDBOX_SANITIZER_BUILD
	/* The sanitizer runtime's own calls: thread set-up, reports, and the
	 * leak checker at exit, which stops the world from a ptrace()ing clone. */
	R(sigaltstack), R(prctl), R(getrlimit), R(prlimit64), R(sched_getaffinity), R(readlink), R(openat),
	R(close), R(pread64), R(mincore), R(tgkill), R(rt_sigaction), R(dup), R(pipe2), R(wait4),
	{ SCMP_SYS(clone), TRACER_CLONE }, R(mremap), R(ptrace), R(getppid), R(kill), R(waitid), R(getdents64), R(lseek),
#ifdef __NR_open   /* x86_64: the runtime's raw calls use the old forms */
	R(open), R(getdents),
#endif
#endif
	{ RULES_END, ANY_ARGS },
};

/* The main thread after start-up: signals and console input in, stop
 * requests, kicking and joining the other threads, the terminal restored,
 * and freeing what is left once the control thread removed the devices. */
static const struct rule main_rules[] = {
	R(poll), R(ppoll), R(close), R(tgkill), R(rt_sigaction), { SCMP_SYS(unlinkat), API_DIR_ONLY },
	{ SCMP_SYS(ioctl), IOCTL_LIST },
	{ RULES_END, ANY_ARGS },
};

/* The control thread: the parent of every later thread (so its filter is
 * the union of all roles', see compile_role), and where devices are
 * activated, reset and removed (vm_threads_call). */
static const struct rule control_rules[] = {
	R(poll), R(ppoll), R(close), R(eventfd2), R(tgkill), R(set_robust_list), R(rseq), R(sched_getaffinity),
	R(rt_sigaction),   /* glibc sets its cancellation handler at the first pthread_create */
	{ SCMP_SYS(clone), THREAD_CLONE }, { SCMP_SYS(prctl), NAME_ONLY }, { SCMP_SYS(seccomp), FILTER_ONLY },
	{ SCMP_SYS(ioctl), IOCTL_LIST },
	{ RULES_END, ANY_ARGS },
};

/* Device activation and reset, with their tap and vhost-net calls and the
 * tap MTU query's socket, run on the control thread (vm_threads_call): the vCPU
 * keeps KVM_RUN and the interrupt and notifier requests of the registers
 * it traps on. */
static const struct rule vcpu_rules[] = {
	R(close), R(eventfd2), R(poll), R(ppoll),
	{ SCMP_SYS(ioctl), IOCTL_LIST },
	{ RULES_END, ANY_ARGS },
};

/* virtio-blk's workers (devices/virtio/blk.c): the image's reads, writes
 * and syncs, fallocate for discard and write zeroes (punched holes, zeroed
 * ranges), and the queue worker's poll, also its timed sleep when a disk is
 * over its rate limits. */
/* A disk queue's worker (devices/virtio/blk.c): the image's I/O, and with
 * the io_uring engine io_uring_enter on its queue's ring (submit, reap,
 * wait). On any fd: this process has no other ring, and no thread may make
 * one (io_uring_setup and io_uring_register are in no list; the rings are
 * made and restricted before the sandbox, devices/virtio/blk_uring.h). */
static const struct rule blk_rules[] = {
	R(poll), R(ppoll), R(preadv), R(pwritev), R(pread64), R(pwrite64), R(fdatasync), R(fsync), R(fallocate),
	R(io_uring_enter),
	{ RULES_END, ANY_ARGS },
};

/* A net pair's worker (devices/net/worker.c): frames on its tap queue, and
 * with a rate limit the pair's timerfd (made with the device) set and read
 * while throttled. */
static const struct rule net_rules[] = {
	R(poll), R(ppoll), R(readv), R(writev), R(timerfd_settime),
	{ RULES_END, ANY_ARGS },
};

static const struct rule net_ctrl_rules[] = {
	R(poll), R(ppoll), R(close), R(eventfd2),
	{ SCMP_SYS(ioctl), IOCTL_LIST }, { SCMP_SYS(socket), DGRAM_SOCKET },
	{ RULES_END, ANY_ARGS },
};

static const struct rule vhost_fwd_rules[] = {
	R(poll), R(ppoll),
	{ RULES_END, ANY_ARGS },
};

/* The control socket (vmm/api.c): clients accepted on the socket opened
 * before the sandbox, their lines (and a snapshot's two file descriptors)
 * read and answered, closed; pause kicks the vCPUs (tgkill) and resume
 * tells the guest's kvmclock; a snapshot reads the VM's state from KVM and
 * writes the files the client passed (it opens nothing). */
static const struct rule api_rules[] = {
	R(poll), R(ppoll), R(accept4), R(recvmsg), R(sendto), R(close), R(tgkill),
	R(pwrite64), R(ftruncate), R(fdatasync),
	{ SCMP_SYS(ioctl), IOCTL_LIST },
	{ RULES_END, ANY_ARGS },
};

/* virtio-vsock's thread (devices/vsock/): its two epoll sets, host clients
 * accepted on the socket opened before the sandbox, connections made to the
 * host's Unix sockets, their bytes (recvmsg/sendmsg: MSG_NOSIGNAL), the
 * hang-up check (poll), shutdown and close. */
static const struct rule vsock_rules[] = {
	R(poll), R(ppoll), R(epoll_wait), R(epoll_pwait), R(epoll_ctl), R(accept4), R(connect), R(recvmsg),
	R(sendmsg), R(shutdown), R(close), { SCMP_SYS(socket), UNIX_STREAM_SOCKET },
	{ RULES_END, ANY_ARGS },
};

/* virtio-rng's worker (devices/virtio/rng.c): the queue worker's poll and
 * eventfd reads (read is everyone's), and getrandom into the guest's
 * buffers (in the common list too; named here as the one call the role is
 * for). No fd of its own, no file, no socket. */
static const struct rule rng_rules[] = {
	R(poll), R(ppoll), R(getrandom),
	{ RULES_END, ANY_ARGS },
};

/* The ioctl groups; which role gets which is add_ioctls(). */
/* Device registers the vCPU traps on: interrupts, notifiers, MSI routes. */
static const unsigned long kvm_device_ioctls[] = { KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, KVM_IOEVENTFD, KVM_IRQFD,
						   KVM_SET_GSI_ROUTING, KVM_SIGNAL_MSI, 0 };
/* Console input raising the UART's interrupt line. */
static const unsigned long irq_line_ioctls[] = { KVM_IRQ_LINE, KVM_IRQ_LINE_STATUS, 0 };
/* Queue pair start/stop: tap queues, offloads (the MTU for RX buffers: SIOCGIFMTU). */
static const unsigned long tap_queue_ioctls[] = { TUNSETQUEUE, TUNSETOFFLOAD, TUNGETIFF, 0 };
/* vhost-net set-up and tear-down, from whichever thread starts a pair. */
static const unsigned long vhost_ioctls[] = { VHOST_SET_OWNER, VHOST_RESET_OWNER, VHOST_GET_FEATURES,
					      VHOST_SET_FEATURES, VHOST_SET_MEM_TABLE, VHOST_SET_VRING_NUM,
					      VHOST_SET_VRING_BASE, VHOST_GET_VRING_BASE, VHOST_SET_VRING_ADDR,
					      VHOST_SET_VRING_KICK, VHOST_SET_VRING_CALL, VHOST_SET_VRING_ERR,
					      VHOST_NET_SET_BACKEND, 0 };
static const unsigned long terminal_ioctls[] = { TCGETS, TCSETS, TCSETSW, TCSETSF, 0 };
/* Resume after a pause: the guest's kvmclock is told it was stopped (x86). */
#ifdef __x86_64__
static const unsigned long resume_ioctls[] = { KVM_KVMCLOCK_CTRL, 0 };
/* A snapshot: every vCPU's state, and the VM's interrupt controllers and clock. */
static const unsigned long snapshot_vcpu_ioctls[] = { KVM_GET_REGS, KVM_GET_SREGS, KVM_GET_LAPIC, KVM_GET_XCRS,
						      KVM_GET_DEBUGREGS, KVM_GET_VCPU_EVENTS, KVM_GET_MP_STATE,
						      KVM_GET_TSC_KHZ, KVM_GET_MSRS, KVM_GET_XSAVE,
						      KVM_GET_XSAVE2, 0 };
static const unsigned long snapshot_vm_ioctls[] = { KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_GET_CLOCK, 0 };
static const unsigned long snapshot_kvm_ioctls[] = { KVM_GET_MSR_INDEX_LIST, KVM_CHECK_EXTENSION,
						     KVM_GET_SUPPORTED_CPUID, 0 };
#else
static const unsigned long resume_ioctls[] = { 0 };
#endif
#define VHOST_IOCTL_TYPE VHOST_VIRTIO   /* every VHOST_* request: its _IOC type byte */

static const struct rule *const role_rules[THREAD_ROLE_COUNT] = {
	[THREAD_ROLE_MAIN] = main_rules,
	[THREAD_ROLE_VCPU] = vcpu_rules,
	[THREAD_ROLE_BLK] = blk_rules,
	[THREAD_ROLE_NET] = net_rules,
	[THREAD_ROLE_NET_CTRL] = net_ctrl_rules,
	[THREAD_ROLE_VHOST_FWD] = vhost_fwd_rules,
	[THREAD_ROLE_CONTROL] = control_rules,
	[THREAD_ROLE_API] = api_rules,
	[THREAD_ROLE_VSOCK] = vsock_rules,
	[THREAD_ROLE_RNG] = rng_rules,
};

/* ---- building a filter ---- */

#define SANDBOX_OWN_VCPU_FILTERS 64

/* What a filter is built for: the role's ioctls by request number alone
 * (fds NULL), or each on its own fds; vcpu: the vCPU whose fd KVM_RUN
 * takes, -1 for all of them (the main thread's union). */
struct build {
	const struct sandbox_fds *fds;
	int vcpu;
};

static int allow_ioctl(scmp_filter_ctx ctx, int fd, unsigned long req)
{
	if (fd < 0)   /* any fd */
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 1, SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)req));
	return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2, SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)fd),
				SCMP_A1_32(SCMP_CMP_EQ, (uint32_t)req));
}

/* One group of requests on the fds it belongs to, or, when the filter is
 * built without fds (tests), on any fd. */
static int allow_group(scmp_filter_ctx ctx, const struct build *b, const int *fds, unsigned n,
		       const unsigned long *reqs)
{
	static const int any = -1;
	if (!b->fds) {
		fds = &any;
		n = 1;
	}
	int rc = 0;
	for (unsigned f = 0; f < n && !rc; f++)
		for (unsigned i = 0; reqs[i] && !rc; i++)
			rc = allow_ioctl(ctx, fds[f], reqs[i]);
	return rc;
}

/* A role's ioctls, each on its own fds (any fd without them). Taps and
 * vhost-net: pairs are started by the control thread (activation) or the net
 * control thread (VQ_PAIRS_SET). With fds, the vhost requests go by type,
 * not one by one: each only reaches this process's own vhost instance, and
 * 13 rules per fd would make large filters. */
static int add_ioctls(scmp_filter_ctx ctx, enum thread_role role, const struct build *b)
{
	const struct sandbox_fds *f = b->fds;
	const int in = STDIN_FILENO;
	int vm_fd = f ? f->vm_fd : -1;
	unsigned n_vm = !f || vm_fd >= 0;
	int rc = 0;
	switch (role) {
	case THREAD_ROLE_VCPU: {
		static const unsigned long run[] = { KVM_RUN, 0 };
		if (f && b->vcpu >= 0 && (unsigned)b->vcpu < f->n_vcpus)
			rc = allow_group(ctx, b, &f->vcpu_fds[b->vcpu], 1, run);
		else
			rc = allow_group(ctx, b, f ? f->vcpu_fds : NULL, f ? f->n_vcpus : 0, run);
		return rc ? rc : allow_group(ctx, b, &vm_fd, n_vm, kvm_device_ioctls);
	}
	case THREAD_ROLE_MAIN:
		rc = allow_group(ctx, b, &in, 1, terminal_ioctls);
		return rc ? rc : allow_group(ctx, b, &vm_fd, n_vm, irq_line_ioctls);
	case THREAD_ROLE_API:
		if (!resume_ioctls[0])
			return 0;
		rc = allow_group(ctx, b, f ? f->vcpu_fds : NULL, f ? f->n_vcpus : 0, resume_ioctls);
#ifdef __x86_64__
		/* By request number on any fd: 11 rules, not 11 per vCPU (255 vCPUs
		 * would overflow the filter). They are KVM's read-only vCPU getters
		 * (type 0xAE, which no other fd here answers to: the VM fd and
		 * /dev/kvm refuse them, taps and vhost have their own types). */
		for (unsigned i = 0; !rc && snapshot_vcpu_ioctls[i]; i++)
			rc = allow_ioctl(ctx, -1, snapshot_vcpu_ioctls[i]);
		if (!rc)
			rc = allow_group(ctx, b, &vm_fd, n_vm, snapshot_vm_ioctls);
		if (!rc && (!f || f->kvm_fd >= 0)) {
			int kvm_fd = f ? f->kvm_fd : -1;
			rc = allow_group(ctx, b, &kvm_fd, 1, snapshot_kvm_ioctls);
		}
#endif
		return rc;
	case THREAD_ROLE_CONTROL:
		rc = allow_group(ctx, b, &vm_fd, n_vm, kvm_device_ioctls);
		break;
	case THREAD_ROLE_NET_CTRL:
		break;
	default:
		return 0;
	}
	/* control and net ctrl: pair start and stop */
	if (!rc && (!f || f->n_taps)) {
		rc = allow_group(ctx, b, f ? f->tap_fds : NULL, f ? f->n_taps : 0, tap_queue_ioctls);
		if (!rc)   /* the MTU, on a datagram socket of the moment */
			rc = allow_ioctl(ctx, -1, SIOCGIFMTU);
	}
	if (!f)
		return rc ? rc : allow_group(ctx, b, NULL, 0, vhost_ioctls);
	for (unsigned i = 0; !rc && i < f->n_vhost; i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(ioctl), 2,
				      SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)f->vhost_fds[i]),
				      SCMP_A1_32(SCMP_CMP_MASKED_EQ, 0xff00u, (uint32_t)VHOST_IOCTL_TYPE << 8));
	return rc;
}

static int add_rule(scmp_filter_ctx ctx, const struct rule *r, enum thread_role role, const struct build *b)
{
	int rc = 0;
	switch (r->args) {
	case ANY_ARGS:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 0);
	case NO_EXEC:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 1, SCMP_A2(SCMP_CMP_MASKED_EQ, PROT_EXEC, 0));
	case IOCTL_LIST:
		return add_ioctls(ctx, role, b);
	case FD_STAT:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 1,
					SCMP_A3(SCMP_CMP_MASKED_EQ, AT_EMPTY_PATH, AT_EMPTY_PATH));
	case THREAD_CLONE:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 1,
					SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	case TRACER_CLONE:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 1, SCMP_A0(SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
	case DGRAM_SOCKET:
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 2, SCMP_A0(SCMP_CMP_EQ, AF_INET),
				      SCMP_A1(SCMP_CMP_EQ, SOCK_DGRAM | SOCK_CLOEXEC));
		return rc ? rc : seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 2, SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
						  SCMP_A1(SCMP_CMP_EQ, SOCK_DGRAM | SOCK_CLOEXEC));
	case NAME_ONLY:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 1, SCMP_A0(SCMP_CMP_EQ, PR_SET_NAME));
	case GET_NAME_ONLY:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 1, SCMP_A0(SCMP_CMP_EQ, PR_GET_NAME));
	case API_DIR_ONLY: {
		if (!b->fds)
			return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 1, SCMP_A2(SCMP_CMP_EQ, 0));
		/* The sockets minivmm made and removes at the end: the control
		 * socket's and the vsock device's, each in its own directory. */
		const int *dirs[] = { b->fds->api_dir_fd, b->fds->vsock_dir_fd };
		for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
			if (!dirs[i])
				continue;
			int e = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 2, SCMP_A0_32(SCMP_CMP_EQ, (uint32_t)*dirs[i]),
						 SCMP_A2(SCMP_CMP_EQ, 0));
			if (e)
				return e;
		}
		return 0;
	}
	case FILTER_ONLY:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 1, SCMP_A0(SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER));
	case UNIX_STREAM_SOCKET:
		return seccomp_rule_add(ctx, SCMP_ACT_ALLOW, r->nr, 2, SCMP_A0(SCMP_CMP_EQ, AF_UNIX),
					SCMP_A1(SCMP_CMP_EQ, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC));
	}
	return -EINVAL;
}

static int add_list(scmp_filter_ctx ctx, const struct rule *rules, enum thread_role role, const struct build *b)
{
	for (const struct rule *r = rules; r->nr != RULES_END; r++) {
		int rc = add_rule(ctx, r, role, b);
		if (rc)
			return rc;
	}
	return 0;
}

/* Compiles role's filter into out (malloc'ed program). The control
 * thread's list is the union of every role's: it is the parent of all
 * threads (the main thread installs it first, then its own narrow one). */
static int compile_role(enum thread_role role, enum seccomp_mode mode, const struct build *b, struct sock_fprog *out,
			char *err, size_t errlen)
{
	scmp_filter_ctx ctx = seccomp_init(mode == SECCOMP_LOG ? SCMP_ACT_LOG : SCMP_ACT_TRAP);
	if (!ctx)
		return err_set(err, errlen, "seccomp: cannot create a filter");
	/* glibc's pthread_create tries clone3 first, whose flags sit behind a
	 * pointer no filter can read: ENOSYS makes it fall back to clone. */
	int rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	if (!rc)
		rc = add_list(ctx, common_rules, role, b);
	if (!rc && role == THREAD_ROLE_CONTROL) {
		for (int r = 0; r < THREAD_ROLE_COUNT && !rc; r++)
			rc = add_list(ctx, role_rules[r], (enum thread_role)r, b);
	} else if (!rc) {
		rc = add_list(ctx, role_rules[role], role, b);
	}
	/* Export the BPF once, so that each thread installs it without
	 * libseccomp (which allocates and is not meant for concurrent use). */
	int fd = -1;
	if (!rc) {
		fd = memfd_create("minivmm-seccomp", MFD_CLOEXEC);
		rc = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	}
	seccomp_release(ctx);
	if (rc) {
		if (fd >= 0)
			close(fd);
		return err_set(err, errlen, "seccomp: cannot build the %s filter: %s", thread_role_names[role],
			       strerror(-rc));
	}
	off_t len = lseek(fd, 0, SEEK_END);
	struct sock_filter *prog = len > 0 ? malloc((size_t)len) : NULL;
	if (!prog || pread(fd, prog, (size_t)len, 0) != len) {
		free(prog);
		close(fd);
		return err_set(err, errlen, "seccomp: cannot read back the %s filter", thread_role_names[role]);
	}
	close(fd);
	out->len = (unsigned short)((size_t)len / sizeof(*prog));
	out->filter = prog;
	return 0;
}

/* ---- violations ---- */

/* Which role the current thread took, for the violation message. */
static __thread enum thread_role current_role = THREAD_ROLE_MAIN;

static size_t append(char *buf, size_t at, size_t cap, const char *s)
{
	while (*s && at + 1 < cap)
		buf[at++] = *s++;
	return at;
}

/* Async-signal-safe: no stdio, no allocation; then the process exits. */
static void sigsys_handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	char buf[200], num[16], tname[17] = "?";
	int nr = si->si_syscall;
	const char *name = nr >= 0 && (size_t)nr < ARRAY_SIZE(syscall_names) && syscall_names[nr]
				   ? syscall_names[nr] : "unknown";
	int n = nr < 0 ? -nr : nr, i = (int)sizeof(num) - 1;
	num[i] = 0;
	do
		num[--i] = (char)('0' + n % 10);
	while ((n /= 10) && i > 1);
	if (nr < 0)
		num[--i] = '-';
	/* The thread's name, from the kernel's copy (prctl is allowed). */
	if (syscall(SYS_prctl, PR_GET_NAME, tname) != 0)
		strcpy(tname, "?");
	size_t at = append(buf, 0, sizeof(buf), "minivmm: error: seccomp: thread ");
	at = append(buf, at, sizeof(buf), tname);
	at = append(buf, at, sizeof(buf), " (");
	at = append(buf, at, sizeof(buf), thread_role_names[current_role]);
	at = append(buf, at, sizeof(buf), ") made a forbidden system call: ");
	at = append(buf, at, sizeof(buf), name);
	at = append(buf, at, sizeof(buf), " (");
	at = append(buf, at, sizeof(buf), num + i);
	at = append(buf, at, sizeof(buf), "); stopping\n");
	ssize_t w = write(STDERR_FILENO, buf, at);
	(void)w;
	syscall(SYS_exit_group, SANDBOX_VIOLATION_STATUS);
}

/* ---- public ---- */

int sandbox_init(struct sandbox *sb, enum seccomp_mode mode, const struct sandbox_fds *fds, char *err,
		 size_t errlen)
{
	memset(sb, 0, sizeof(*sb));
	sb->mode = mode;
	if (mode == SECCOMP_OFF)
		return 0;
	sb->active = true;
	/* glibc's malloc, the first time a thread needs a new arena, reads
	 * /sys/devices/system/cpu/online to size the arena limit: an openat no
	 * role may make (seen: a 4-vCPU guest's device threads). Setting the
	 * limit now, glibc's default of 8 per CPU, means it never asks. */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	mallopt(M_ARENA_MAX, (int)(8 * (cpus > 0 && cpus < 4096 ? cpus : 1)));
	const struct build all = { .fds = fds, .vcpu = -1 };
	for (int r = 0; r < THREAD_ROLE_COUNT; r++) {
		if (compile_role((enum thread_role)r, mode, &all, &sb->filters[r], err, errlen)) {
			sandbox_destroy(sb);
			return -1;
		}
	}
	/* Each vCPU's own: KVM_RUN on its fd only. A filter takes a few ms to
	 * build with many NICs: past SANDBOX_OWN_VCPU_FILTERS vCPUs they share
	 * one (KVM_RUN on any of the VM's vCPU fds), so a big VM starts fast. */
	if (fds && fds->n_vcpus && fds->n_vcpus <= SANDBOX_OWN_VCPU_FILTERS) {
		sb->vcpu_filters = calloc(fds->n_vcpus, sizeof(*sb->vcpu_filters));
		if (!sb->vcpu_filters) {
			sandbox_destroy(sb);
			return err_set(err, errlen, "seccomp: out of memory");
		}
		sb->n_vcpu_filters = fds->n_vcpus;
		for (unsigned i = 0; i < fds->n_vcpus; i++) {
			const struct build one = { .fds = fds, .vcpu = (int)i };
			if (compile_role(THREAD_ROLE_VCPU, mode, &one, &sb->vcpu_filters[i], err, errlen)) {
				sandbox_destroy(sb);
				return -1;
			}
		}
	}
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigsys_handler;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL)) {
		sandbox_destroy(sb);
		return err_set(err, errlen, "seccomp: sigaction(SIGSYS): %s", strerror(errno));
	}
	return 0;
}

void sandbox_destroy(struct sandbox *sb)
{
	sb->active = false;
	for (int r = 0; r < THREAD_ROLE_COUNT; r++) {
		free(sb->filters[r].filter);
		sb->filters[r].filter = NULL;
	}
	for (unsigned i = 0; i < sb->n_vcpu_filters; i++)
		free(sb->vcpu_filters[i].filter);
	free(sb->vcpu_filters);
	sb->vcpu_filters = NULL;
	sb->n_vcpu_filters = 0;
}

static int enter(const struct sandbox *sb, enum thread_role role, const struct sock_fprog *prog)
{
	if (!sb->active)
		return 0;
	/* SIGSYS must reach the handler even in threads that block all. */
	sigset_t sys;
	sigemptyset(&sys);
	sigaddset(&sys, SIGSYS);
	pthread_sigmask(SIG_UNBLOCK, &sys, NULL);
	current_role = role;
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, prog)) {
		log_error("seccomp: cannot install the %s filter: %s", thread_role_names[role], strerror(errno));
		return -1;
	}
	return 0;
}

void sandbox_note_role(enum thread_role role)
{
	current_role = role;
}

int sandbox_enter(const struct sandbox *sb, enum thread_role role)
{
	return enter(sb, role, &sb->filters[role]);
}

int sandbox_enter_vcpu(const struct sandbox *sb, unsigned index)
{
	if (index < sb->n_vcpu_filters)
		return enter(sb, THREAD_ROLE_VCPU, &sb->vcpu_filters[index]);
	return enter(sb, THREAD_ROLE_VCPU, &sb->filters[THREAD_ROLE_VCPU]);
}

bool sandbox_role_allows(enum thread_role role, int nr)
{
	const struct rule *lists[] = { common_rules, role_rules[role] };
	for (unsigned l = 0; l < ARRAY_SIZE(lists); l++)
		for (const struct rule *r = lists[l]; r->nr != RULES_END; r++)
			if (r->nr == nr && r->args == ANY_ARGS)
				return true;
	if (role == THREAD_ROLE_CONTROL)
		for (int o = 0; o < THREAD_ROLE_COUNT; o++)
			if (o != THREAD_ROLE_CONTROL && sandbox_role_allows((enum thread_role)o, nr))
				return true;
	return false;
}

/* ---- privileges ---- */

static int parse_id(const char *s, unsigned long *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (!*s || *end || errno || v >= (unsigned long)UINT32_MAX)
		return -1;
	*out = v;
	return 0;
}

int sandbox_resolve_ids(const char *user, const char *group, uid_t euid, uid_t *uid, gid_t *gid, bool *has_uid,
			bool *has_gid, char *err, size_t errlen)
{
	unsigned long v;
	*has_uid = *has_gid = false;
	if (!user && euid == 0) {
		/* Capabilities alone leave root owning root's files: with
		 * --seccomp off or a filter bypass the guest's attacker would
		 * still write them. --user root insists. */
		*uid = SANDBOX_NOBODY;
		*has_uid = true;
		if (!group) {
			*gid = SANDBOX_NOBODY;
			*has_gid = true;
		}
	} else if (user) {
		struct passwd *pw = getpwnam(user);
		if (pw) {
			*uid = pw->pw_uid;
			if (!group) {   /* the user's own group, as login would */
				*gid = pw->pw_gid;
				*has_gid = true;
			}
		} else if (parse_id(user, &v) == 0) {
			*uid = (uid_t)v;
			if (!group) {   /* never root's group, nor the same number (15 is kmem, 27 sudo) */
				*gid = SANDBOX_NOBODY;
				*has_gid = true;
			}
		} else {
			return err_set(err, errlen, "--user %s: no such user", user);
		}
		*has_uid = true;
	}
	if (group) {
		struct group *gr = getgrnam(group);
		if (gr)
			*gid = gr->gr_gid;
		else if (parse_id(group, &v) == 0)
			*gid = (gid_t)v;
		else
			return err_set(err, errlen, "--group %s: no such group", group);
		*has_gid = true;
	}
	return 0;
}

int sandbox_drop_privileges(const char *chroot_dir, bool has_uid, uid_t uid, bool has_gid, gid_t gid, char *err,
			    size_t errlen)
{
	if (chroot_dir && (chroot(chroot_dir) || chdir("/")))
		return err_set(err, errlen, "--chroot %s: %s", chroot_dir, strerror(errno));
	/* The bounding set first: it needs CAP_SETPCAP, which we drop below.
	 * Without it (an unprivileged run) there is nothing to drop there that
	 * could ever be gained back under no_new_privs. */
	bool can_setpcap = prctl(PR_CAPBSET_READ, CAP_SETPCAP, 0, 0, 0) == 1;
	cap_t self = cap_get_proc();
	cap_flag_value_t eff = CAP_CLEAR;
	if (self)
		cap_get_flag(self, CAP_SETPCAP, CAP_EFFECTIVE, &eff);
	cap_free(self);
	if (can_setpcap && eff == CAP_SET) {
		for (int c = 0; c <= CAP_LAST_CAP; c++)
			if (prctl(PR_CAPBSET_DROP, c, 0, 0, 0) && errno != EINVAL)
				return err_set(err, errlen, "sandbox: dropping capability %d from the bounding set: %s", c,
					       strerror(errno));
	}
	if (has_gid) {
		/* Root's supplementary groups must not outlive the switch. */
		if (setgroups(0, NULL))
			return err_set(err, errlen, "--group: setgroups: %s", strerror(errno));
		if (setresgid(gid, gid, gid))
			return err_set(err, errlen, "--group %u: %s", (unsigned)gid, strerror(errno));
	}
	if (has_uid && setresuid(uid, uid, uid))
		return err_set(err, errlen, "--user %u: %s", (unsigned)uid, strerror(errno));
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	cap_t none = cap_init();   /* every flag of every capability clear */
	int rc = none ? cap_set_proc(none) : -1;
	cap_free(none);
	if (rc)
		return err_set(err, errlen, "sandbox: cannot drop capabilities: %s", strerror(errno));
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0))
		return err_set(err, errlen, "sandbox: PR_SET_NO_NEW_PRIVS: %s", strerror(errno));
	return 0;
}
