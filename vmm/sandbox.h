/* The sandbox: what the running VMM can still do once the guest runs.
 *
 *   1. sandbox_drop_privileges(), once, while the process has one thread and
 *      after every file and device is open: optional chroot, optional
 *      --group/--user switch, every capability dropped (effective,
 *      permitted, inheritable, ambient, bounding set), no_new_privs.
 *   2. sandbox_enter(role) on each thread before it touches guest data:
 *      installs that role's seccomp filter. Filters stack and only narrow,
 *      so the main thread (the parent of every later thread, see
 *      vmm/base/thread_start.h) allows the union of all roles plus its own.
 *
 * A violation with --seccomp on: the thread gets SIGSYS, its handler prints
 * one line naming the thread, its role and the system call, and the whole
 * process exits with status 159 (128 + SIGSYS). With --seccomp log the call
 * is allowed and the kernel logs it (dmesg: "audit: type=1326 ... syscall=N";
 * `scmp_sys_resolver N` names it). */
#ifndef MINIVMM_SANDBOX_H
#define MINIVMM_SANDBOX_H

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "vmm/base/thread_start.h"
#include "vmm/options.h"

#define SANDBOX_VIOLATION_STATUS 159   /* 128 + SIGSYS */

/* 1 in an AddressSanitizer build, with gcc (__SANITIZE_ADDRESS__) or clang
 * (__has_feature): its runtime makes calls of its own the filters allow. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SANDBOX_SANITIZER_BUILD 1
#endif
#endif
#ifndef SANDBOX_SANITIZER_BUILD
#define SANDBOX_SANITIZER_BUILD 0
#endif

struct sandbox {
	bool active;                                    /* filters compiled: threads install them */
	enum seccomp_mode mode;
	struct sock_fprog filters[THREAD_ROLE_COUNT];   /* compiled once; .filter is ours */
	struct sock_fprog *vcpu_filters;                /* [n_vcpu_filters]: each vCPU's own (with fds) */
	unsigned n_vcpu_filters;
};

/* The fds each ioctl belongs to, all open before the filters are built: an
 * ioctl is then allowed only on its own fds (KVM_RUN on the calling vCPU's,
 * the VM's requests on the VM fd, tap requests on the taps, vhost requests
 * on the vhost-net fds, the terminal's on stdin). */
struct sandbox_fds {
	int kvm_fd;              /* /dev/kvm (a snapshot asks it for the MSR list), or -1 */
	int vm_fd;
	const int *vcpu_fds;   /* [n_vcpus], by vCPU index */
	unsigned n_vcpus;
	const int *tap_fds;
	unsigned n_taps;
	const int *vhost_fds;
	unsigned n_vhost;
	const int *api_dir_fd;   /* the control socket's directory (its file is removed at the end), or NULL */
	const int *vsock_dir_fd; /* the vsock socket's directory (the same), or NULL */
};

/* Compiles the per-role filters (nothing is installed yet) and sets up the
 * SIGSYS handler. With mode SECCOMP_OFF it only records the mode. fds NULL:
 * ioctls are allowed by request number only, on any fd (tests). */
int sandbox_init(struct sandbox *sb, enum seccomp_mode mode, const struct sandbox_fds *fds, char *err,
		 size_t errlen);
void sandbox_destroy(struct sandbox *sb);

/* Installs role's filter on the calling thread (no-op when off). The thread
 * must have no_new_privs set (sandbox_drop_privileges sets it, and threads
 * inherit it). */
int sandbox_enter(const struct sandbox *sb, enum thread_role role);
/* Names role in this thread's violation messages, for a thread that keeps
 * the filter it inherited (the control thread). */
void sandbox_note_role(enum thread_role role);
/* The same for vCPU index's thread: its own filter when sandbox_init had fds. */
int sandbox_enter_vcpu(const struct sandbox *sb, unsigned index);

/* The unprivileged ids minivmm runs as once devices are open, when started
 * as root without --user, and the group of a numeric --user with no passwd
 * entry (Debian's nobody and nogroup). */
#define SANDBOX_NOBODY 65534u

/* The ids --user/--group name: a name or a number. euid: who runs minivmm;
 * root without --user gets SANDBOX_NOBODY. Returns -1 with err set. */
int sandbox_resolve_ids(const char *user, const char *group, uid_t euid, uid_t *uid, gid_t *gid, bool *has_uid,
			bool *has_gid, char *err, size_t errlen);

/* What --user/--group/--chroot resolved to, checked before anything opens. */
struct sandbox_ids {
	bool has_uid, has_gid;
	uid_t uid;
	gid_t gid;
	const char *chroot_dir;
};

/* Step 1 above. chroot_dir may be NULL; has_uid/has_gid false keep the ids. */
int sandbox_drop_privileges(const char *chroot_dir, bool has_uid, uid_t uid, bool has_gid, gid_t gid, char *err,
			    size_t errlen);

/* For tests: whether role's list allows syscall nr with no argument check. */
bool sandbox_role_allows(enum thread_role role, int nr);

#endif
