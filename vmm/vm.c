#include "vmm/vm.h"

#include "devices/vsock/vsock.h"
#include "vmm/snapshot.h"

#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "vmm/arch.h"
#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"
#include "vmm/vcpu.h"
#include "vmm/machine.h"
#include "vmm/vm_api.h"

static void stop_sink_cb(void *ctx, enum vm_stop_reason reason, int status)
{
	vm_request_stop(ctx, reason, status);
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason reason, int status)
{
	pthread_mutex_lock(&vm->lock);
	if (vm->stop_reason == STOP_NONE) {
		vm->stop_reason = reason;
		vm->stop_status = status;
		eventfd_signal(vm->stop_efd);   /* one write per VM: cannot fail */
	}
	pthread_mutex_unlock(&vm->lock);
}

int vm_set_irq_line(struct vm *vm, unsigned gsi, int level)
{
	struct kvm_irq_level irq = { .irq = arch_irq_line(gsi), .level = level };
	return ioctl(vm->fd, KVM_IRQ_LINE, &irq);
}

/* Guest RAM starts on a 2 MiB boundary of our address space, as the guest
 * physical addresses it backs do: only then can the host back it with huge
 * pages that KVM maps as huge pages in the guest's nested page tables (KVM
 * needs the GPA and the host address congruent modulo 2 MiB). MADV_HUGEPAGE
 * asks for them where THP is "madvise"; MADV_DONTDUMP keeps the guest's
 * memory out of a core dump of ours. Returns MAP_FAILED on error. */
#define GUEST_RAM_ALIGN (2ull << 20)
static void *map_guest_ram(uint64_t size)
{
	uint64_t len = size + GUEST_RAM_ALIGN;
	uint8_t *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return MAP_FAILED;
	uint8_t *start = (uint8_t *)(((uintptr_t)p + GUEST_RAM_ALIGN - 1) & ~(uintptr_t)(GUEST_RAM_ALIGN - 1));
	if (start > p)
		munmap(p, (size_t)(start - p));
	if (p + len > start + size)
		munmap(start + size, (size_t)(p + len - (start + size)));
	madvise(start, size, MADV_HUGEPAGE);   /* fails harmlessly without THP */
	madvise(start, size, MADV_DONTDUMP);
	return start;
}

static int setup_memory(struct vm *vm, uint64_t mem_mib)
{
	const struct vm_restore *rs = vm->restore;
	uint64_t bytes = mem_mib << 20;
	long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
	if (pages > 0 && psize > 0 && bytes > (uint64_t)pages * (uint64_t)psize) {
		log_error("--mem %llu: more than this host's %llu MiB of RAM",
			  (unsigned long long)mem_mib,
			  (unsigned long long)((uint64_t)pages * (uint64_t)psize >> 20));
		return -1;
	}

	struct arch_ram_region regions[GUEST_MEM_MAX_REGIONS];
	int n = arch_ram_layout(bytes, regions, GUEST_MEM_MAX_REGIONS);
	if (n <= 0) {
		log_error("--mem %llu: cannot lay out guest memory", (unsigned long long)mem_mib);
		return -1;
	}
	if (rs && (unsigned)n != rs->snap->n_regions) {
		log_error("--restore: the snapshot's memory layout (%u regions) is not this build's (%d)",
			  rs->snap->n_regions, n);
		return -1;
	}
	for (int i = 0; i < n; i++) {
		if (rs && (regions[i].gpa != rs->snap->regions[i].gpa || regions[i].size != rs->snap->regions[i].size)) {
			log_error("--restore: the snapshot's memory region %d is not this build's", i);
			return -1;
		}
		void *hva = rs ? snapshot_map_region(rs->mem_fd, &rs->snap->regions[i], rs->copy)
			       : map_guest_ram(regions[i].size);
		if (hva == MAP_FAILED) {
			log_error("--mem %llu: cannot map %llu MiB of guest RAM: %s",
				  (unsigned long long)mem_mib,
				  (unsigned long long)(regions[i].size >> 20), strerror(errno));
			return -1;
		}
		if (guest_mem_add_region(&vm->mem, regions[i].gpa, regions[i].size, hva)) {
			munmap(hva, regions[i].size);
			log_error("internal: overlapping guest memory regions");
			return -1;
		}
		struct kvm_userspace_memory_region slot = {
			.slot = (uint32_t)i,
			.guest_phys_addr = regions[i].gpa,
			.memory_size = regions[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)hva,
		};
		if (ioctl(vm->fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0) {
			log_error("KVM_SET_USER_MEMORY_REGION (%llu MiB at 0x%llx): %s",
				  (unsigned long long)(regions[i].size >> 20),
				  (unsigned long long)regions[i].gpa, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* How the VM's threads start (their seccomp role) and end. */
static int thread_enter_role(void *ctx, enum thread_role role, unsigned vcpu)
{
	struct vm *vm = ctx;
	return role == THREAD_ROLE_VCPU ? sandbox_enter_vcpu(&vm->sandbox, vcpu) : sandbox_enter(&vm->sandbox, role);
}

static void thread_failed(void *ctx)
{
	vm_request_stop(ctx, STOP_ERROR, 1);
}

static void thread_teardown(void *ctx)
{
	vm_remove_devices(ctx);
}

static const struct vm_threads_hooks vm_thread_hooks = {
	.enter_role = thread_enter_role,
	.failed = thread_failed,
	.teardown = thread_teardown,
};

int vm_create(struct vm *vm, const struct vmm_options *opts, const struct vm_restore *restore)
{
	memset(vm, 0, sizeof(*vm));
	vm->restore = restore;
	vm->fd = -1;
	vm->kvm.fd = -1;
	vm->stop_efd = -1;
	api_init(&vm->api);
	vm->start_ns = monotonic_ns();
	pthread_mutex_init(&vm->lock, NULL);
	pthread_cond_init(&vm->cond, NULL);
	vm->stop_sink = (struct stop_sink){ stop_sink_cb, vm };
	vm->threads.efd = -1;
	if (vm_threads_init(&vm->threads, &vm_thread_hooks, vm))
		return -1;

	if (console_open(&vm->console, opts))
		return -1;
	if (opts->api_sock && api_open(&vm->api, opts->api_sock))
		return -1;
	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0) {
		log_error("eventfd: %s", strerror(errno));
		return -1;
	}
	if (kvm_host_open(&vm->kvm))
		return -1;
	unsigned max = vm->kvm.max_vcpus < 254 ? (unsigned)vm->kvm.max_vcpus : 254;
	if (opts->cpus > max) {
		log_error("--cpus %u: this host's KVM allows at most %u vCPUs", opts->cpus, max);
		return -1;
	}
	vm->fd = ioctl(vm->kvm.fd, KVM_CREATE_VM, 0);
	if (vm->fd < 0) {
		log_error("KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	vm->debug.exit_allowed = opts->guest_exit;
	if (setup_memory(vm, opts->mem_mib) || arch_vm_init(vm) || machine_platform_init(vm))
		return -1;

	vm->vcpus = calloc(opts->cpus, sizeof(*vm->vcpus));
	if (!vm->vcpus) {
		log_error("out of memory");
		return -1;
	}
	for (unsigned i = 0; i < opts->cpus; i++) {
		vm->vcpus[i].fd = -1;
		vm->vcpus[i].vm = vm;
	}
	vm->n_vcpus = opts->cpus;
	for (unsigned i = 0; i < opts->cpus; i++)
		if (vcpu_create(vm, &vm->vcpus[i], i))
			return -1;
	return arch_vm_late_init(vm);
}

int vm_load(struct vm *vm, const struct vmm_options *opts, const struct boot_files *files)
{
	if (machine_load_kernel(vm, opts, files))
		return -1;
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		if (arch_vcpu_init(vm, &vm->vcpus[i]))
			return -1;
	return 0;
}

static void stop_all_vcpus(struct vm *vm)
{
	atomic_store(&vm->stopping, true);
	pthread_mutex_lock(&vm->lock);
	pthread_cond_broadcast(&vm->cond);   /* release paused vCPUs */
	pthread_mutex_unlock(&vm->lock);
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		vcpu_kick(&vm->vcpus[i]);
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		vcpu_join(&vm->vcpus[i]);
}

void vm_pause(struct vm *vm)
{
	unsigned running = 0;
	atomic_store(&vm->pause_requested, true);
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		if (vm->vcpus[i].thread_started) {
			running++;
			vcpu_kick(&vm->vcpus[i]);
		}
	}
	pthread_mutex_lock(&vm->lock);
	while (vm->n_paused < running && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->cond, &vm->lock);
	pthread_mutex_unlock(&vm->lock);
}

void vm_resume(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	atomic_store(&vm->pause_requested, false);
	pthread_cond_broadcast(&vm->cond);
	pthread_mutex_unlock(&vm->lock);
}

/* Feeds queued console input to the UART; returns true if some is left. */
static bool flush_console_input(struct vm *vm)
{
	struct console *c = &vm->console;
	if (!c->pending_len)
		return false;
	size_t n = serial_8250_receive(&vm->uart, c->pending, c->pending_len);
	memmove(c->pending, c->pending + n, c->pending_len - n);
	c->pending_len -= n;
	return c->pending_len > 0;
}

static void read_console_input(struct vm *vm)
{
	struct console *c = &vm->console;
	/* Leave room for an escape that expands to two bytes. */
	size_t room = sizeof(c->pending) - c->pending_len;
	if (room < 2)
		return;
	uint8_t buf[sizeof(c->pending)];
	ssize_t n = read(c->in_fd, buf, room / 2);
	if (n == 0 || (n < 0 && errno != EINTR && errno != EAGAIN)) {
		c->in_fd = -1;    /* stdin closed: the guest keeps running */
		return;
	}
	if (n > 0 && console_filter_input(c, buf, (size_t)n))
		vm_request_stop(vm, STOP_USER_QUIT, 0);
}

static int exit_status_for(struct vm *vm)
{
	switch (vm->stop_reason) {
	case STOP_POWEROFF:
		log_info("guest powered off");
		return 0;
	case STOP_REBOOT:
		log_info("guest requested a reboot: VM stopped (minivmm does not restart guests)");
		return 0;
	case STOP_GUEST_STATUS:
		if (vm->stop_status)
			log_info("guest exited with status %d", vm->stop_status);
		return vm->stop_status;
	case STOP_SIGNAL:
		log_info("stopped by signal %d (%s)", vm->stop_status, strsignal(vm->stop_status));
		return 128 + vm->stop_status;
	case STOP_USER_QUIT:
		log_info("stopped from the console (Ctrl-A x)");
		return 0;
	case STOP_API:
		log_info("stopped through the control socket");
		return 0;
	case STOP_ERROR:
	case STOP_NONE:
	default:
		return 1;
	}
}

/* On the control thread: the vCPUs and the api thread are its children. */
static int start_threads(void *arg)
{
	struct vm *vm = arg;
	if (vm->restore && snapshot_restore_devices(vm, vm->restore->snap))
		return -1;
	vm_devices_log_choices(&vm->devices);   /* start-up's errors are behind */
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		if (vcpu_start(&vm->vcpus[i]))
			return -1;
	return api_start(&vm->api, &vm->threads.starter, &vm_api_ops, vm);
}

int vm_run(struct vm *vm)
{
	sigset_t sigs;
	sigemptyset(&sigs);
	sigaddset(&sigs, SIGINT);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGHUP);
	/* Blocked here, before threads start, so every thread inherits the mask
	 * and the signals arrive only through the signalfd. */
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	int sfd = signalfd(-1, &sigs, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		log_error("signalfd: %s", strerror(errno));
		return 1;
	}
	if (vcpu_signal_setup()) {
		log_error("sigaction: %s", strerror(errno));
		close(sfd);
		return 1;
	}
	sigset_t kick;
	sigemptyset(&kick);
	sigaddset(&kick, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &kick, NULL);   /* only vCPU threads take kicks */

	/* The control role's filter (the union of all roles) before any other
	 * thread exists; the control thread inherits it and creates every
	 * later thread, each narrowing it to its role. Then the main thread
	 * narrows its own to the event loop's calls. */
	if (sandbox_enter(&vm->sandbox, THREAD_ROLE_CONTROL) || vm_threads_start_control(&vm->threads)) {
		close(sfd);
		return 1;
	}
	if (vm_threads_call(&vm->threads, start_threads, vm) || sandbox_enter(&vm->sandbox, THREAD_ROLE_MAIN))
		vm_request_stop(vm, STOP_ERROR, 1);

	for (;;) {
		pthread_mutex_lock(&vm->lock);
		bool stop = vm->stop_reason != STOP_NONE;
		pthread_mutex_unlock(&vm->lock);
		if (stop)
			break;

		bool backlog = flush_console_input(vm);
		struct pollfd fds[3] = {
			{ .fd = sfd, .events = POLLIN },
			{ .fd = vm->stop_efd, .events = POLLIN },
			{ .fd = backlog ? -1 : vm->console.in_fd, .events = POLLIN },
		};
		/* With input waiting for UART room, look again soon. */
		int r = poll(fds, 3, backlog ? 10 : -1);
		if (r < 0 && errno != EINTR) {
			log_error("poll: %s", strerror(errno));
			vm_request_stop(vm, STOP_ERROR, 1);
			continue;
		}
		if (fds[0].revents & POLLIN) {
			struct signalfd_siginfo si;
			if (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo == SIGHUP)
					vm->console.in_fd = -1;   /* terminal gone; keep the guest */
				else
					vm_request_stop(vm, STOP_SIGNAL, (int)si.ssi_signo);
			}
		}
		if (fds[2].revents & (POLLIN | POLLHUP | POLLERR))
			read_console_input(vm);
	}

	vm_threads_close(&vm->threads);   /* a vCPU waiting for a device thread must not hold up the stop */
	stop_all_vcpus(vm);   /* which also ends a pause the api thread waits in */
	api_stop(&vm->api);   /* it reads device counters: before the devices go */
	vm_threads_stop_control(&vm->threads);   /* which removes the devices */
	close(sfd);
	/* Teardown from here: a second Ctrl-C or a SIGTERM ends the process
	 * the default way rather than waiting in a signalfd nobody reads. */
	pthread_sigmask(SIG_UNBLOCK, &sigs, NULL);
	console_close(&vm->console);   /* restore the terminal before we print */
	return exit_status_for(vm);
}

void vm_destroy(struct vm *vm)
{
	stop_all_vcpus(vm);
	api_close(&vm->api);
	vm_remove_devices(vm);
	vm_devices_destroy(&vm->devices);
	for (unsigned i = 0; i < vm->n_vcpus; i++)
		vcpu_destroy(&vm->vcpus[i]);
	free(vm->vcpus);
	vm->vcpus = NULL;
	vm->n_vcpus = 0;
	for (unsigned i = 0; i < vm->mem.n_regions; i++)
		munmap(vm->mem.regions[i].hva, vm->mem.regions[i].size);
	vm->mem.n_regions = 0;
	arch_vm_destroy(vm);
	if (vm->fd >= 0)
		close(vm->fd);
	vm->fd = -1;
	kvm_host_close(&vm->kvm);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	vm->stop_efd = -1;
	console_close(&vm->console);
	serial_8250_destroy(&vm->uart);
	vm_threads_destroy(&vm->threads);
	sandbox_destroy(&vm->sandbox);
	pthread_cond_destroy(&vm->cond);
	pthread_mutex_destroy(&vm->lock);
}

int vm_sandbox(struct vm *vm, const struct vmm_options *opts, const struct sandbox_ids *ids)
{
	char err[256];
	/* Every fd an ioctl may take is open by now: each request is allowed
	 * on its own fds only. */
	int vcpu_fds[256], taps[MAX_NETS * MAX_NET_QUEUE_PAIRS], vhost[MAX_NETS * MAX_NET_QUEUE_PAIRS];
	_Static_assert(ARRAY_SIZE(vcpu_fds) > 255, "--cpus goes to 255");
	struct sandbox_fds fds = { .kvm_fd = vm->kvm.fd, .vm_fd = vm->fd, .vcpu_fds = vcpu_fds, .n_vcpus = vm->n_vcpus,
				   .tap_fds = taps, .vhost_fds = vhost,
				   .api_dir_fd = vm->api.dir_fd >= 0 ? &vm->api.dir_fd : NULL };
	int vsock_dir = vm->devices.vsock ? virtio_vsock_dir_fd(vm->devices.vsock) : -1;
	if (vsock_dir >= 0)
		fds.vsock_dir_fd = &vsock_dir;
	for (unsigned i = 0; i < vm->n_vcpus && i < ARRAY_SIZE(vcpu_fds); i++)
		vcpu_fds[i] = vm->vcpus[i].fd;
	vm_devices_net_fds(&vm->devices, taps, ARRAY_SIZE(taps), &fds.n_taps, vhost, ARRAY_SIZE(vhost), &fds.n_vhost);
	if (sandbox_init(&vm->sandbox, opts->seccomp, &fds, err, sizeof(err)) ||
	    sandbox_drop_privileges(ids->chroot_dir, ids->has_uid, ids->uid, ids->has_gid, ids->gid, err, sizeof(err))) {
		log_error("%s", err);
		return -1;
	}
	return 0;
}
