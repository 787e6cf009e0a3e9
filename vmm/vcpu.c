#define _GNU_SOURCE
#include <errno.h>
#include <linux/kvm.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmm/arch.h"
#include "vmm/base/log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

/* vCPUs are pulled out of KVM_RUN with this signal plus run->immediate_exit,
 * which closes the race between checking our flags and entering the guest. */
#define VCPU_KICK_SIGNAL SIGUSR1

static void kick_handler(int sig)
{
	(void)sig;
}

int vcpu_signal_setup(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = kick_handler;   /* no SA_RESTART: KVM_RUN must return EINTR */
	sigemptyset(&sa.sa_mask);
	return sigaction(VCPU_KICK_SIGNAL, &sa, NULL);
}

int vcpu_create(struct vm *vm, struct vcpu *v, unsigned id)
{
	memset(v, 0, sizeof(*v));
	v->vm = vm;
	v->id = id;
	v->fd = ioctl(vm->fd, KVM_CREATE_VCPU, id);
	if (v->fd < 0) {
		log_error("vcpu%u: KVM_CREATE_VCPU: %s", id, strerror(errno));
		return -1;
	}
	v->run = mmap(NULL, (size_t)vm->kvm.vcpu_mmap_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		log_error("vcpu%u: mapping kvm_run: %s", id, strerror(errno));
		return -1;
	}
	return 0;
}

static int handle_internal_error(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	log_error("vcpu%u: KVM internal error (suberror %u)%s", v->id, run->internal.suberror,
		  v->vm->kvm.pvm ? "; host KVM is PVM (kvm_pvm), which cannot run unmodified Linux "
				   "guests: see README, 'Hosts without hardware virtualization'" : "");
	return -1;
}

/* Handles one exit. Returns 0 to keep running, -1 to leave the run loop. */
static int handle_exit(struct vcpu *v)
{
	struct vm *vm = v->vm;
	struct kvm_run *run = v->run;

	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *p = (uint8_t *)run + run->io.data_offset;
		bool out = run->io.direction == KVM_EXIT_IO_OUT;
		for (uint32_t i = 0; i < run->io.count; i++, p += run->io.size)
			io_bus_access(&vm->pio_bus, run->io.port, p, run->io.size, out);
		return 0;
	}
	case KVM_EXIT_MMIO:
		io_bus_access(&vm->mmio_bus, run->mmio.phys_addr, run->mmio.data, run->mmio.len,
			      run->mmio.is_write);
		return 0;
	case KVM_EXIT_INTR:
		return 0;
	case KVM_EXIT_SHUTDOWN:
		log_info("vcpu%u: guest triple fault", v->id);
		vm_request_stop(vm, STOP_REBOOT, 0);
		return -1;
	case KVM_EXIT_SYSTEM_EVENT:
		switch (run->system_event.type) {
		case KVM_SYSTEM_EVENT_SHUTDOWN:
			vm_request_stop(vm, STOP_POWEROFF, 0);
			break;
		case KVM_SYSTEM_EVENT_RESET:
			vm_request_stop(vm, STOP_REBOOT, 0);
			break;
		default:
			log_error("vcpu%u: guest system event %u (crash)", v->id, run->system_event.type);
			vm_request_stop(vm, STOP_ERROR, 1);
		}
		return -1;
	case KVM_EXIT_HLT:
		log_error("vcpu%u: guest halted with no interrupt controller to wake it", v->id);
		vm_request_stop(vm, STOP_ERROR, 1);
		return -1;
	case KVM_EXIT_FAIL_ENTRY:
		log_error("vcpu%u: KVM could not enter the guest (hardware reason 0x%llx)", v->id,
			  (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		vm_request_stop(vm, STOP_ERROR, 1);
		return -1;
	case KVM_EXIT_INTERNAL_ERROR:
		handle_internal_error(v);
		vm_request_stop(vm, STOP_ERROR, 1);
		return -1;
	default:
		log_error("vcpu%u: unexpected KVM exit reason %u", v->id, run->exit_reason);
		vm_request_stop(vm, STOP_ERROR, 1);
		return -1;
	}
}

/* Holds the vCPU while a pause is requested. Called only after a kick. */
static void wait_while_paused(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	vm->n_paused++;
	pthread_cond_broadcast(&vm->cond);
	while (atomic_load(&vm->pause_requested) && !atomic_load(&vm->stopping))
		pthread_cond_wait(&vm->cond, &vm->lock);
	vm->n_paused--;
	pthread_mutex_unlock(&vm->lock);
}

/* Before a paused vCPU's state is read (a snapshot): the exit just handled
 * may be an I/O or MMIO access that KVM completes only in the next KVM_RUN
 * (advancing RIP, storing what was read). Saved before that, a restored
 * guest would do the access again. KVM_RUN with immediate_exit set
 * completes it and returns EINTR without running the guest. A string I/O
 * instruction may exit again to finish: bounded, each exit handled. */
static int complete_pending_exit(struct vcpu *v)
{
	for (int i = 0; i < 64; i++) {
		__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
		int r = ioctl(v->fd, KVM_RUN, 0);
		if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
			__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
			return 0;
		}
		if (r < 0) {
			log_error("vcpu%u: KVM_RUN: %s", v->id, strerror(errno));
			vm_request_stop(v->vm, STOP_ERROR, 1);
			return -1;
		}
		if (handle_exit(v) < 0)
			return -1;
	}
	log_error("vcpu%u: still exiting to complete an access after 64 tries, before a pause", v->id);
	return 0;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct vm *vm = v->vm;
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	for (;;) {
		if (atomic_load(&vm->stopping))
			break;
		if (atomic_load(&vm->pause_requested)) {
			if (complete_pending_exit(v) < 0)
				break;
			wait_while_paused(vm);
			continue;
		}
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				__atomic_store_n(&v->run->immediate_exit, 0, __ATOMIC_SEQ_CST);
				continue;
			}
			log_error("vcpu%u: KVM_RUN: %s", v->id, strerror(errno));
			vm_request_stop(vm, STOP_ERROR, 1);
			break;
		}
		if (handle_exit(v) < 0)
			break;
	}
	return NULL;
}

int vcpu_start(struct vcpu *v)
{
	char name[16];
	snprintf(name, sizeof(name), "vcpu%u", v->id);
	int e = vm_threads_create_vcpu(&v->vm->threads, &v->thread, v->id, name, vcpu_thread, v);
	if (e) {
		log_error("vcpu%u: cannot start thread: %s", v->id, strerror(e));
		return -1;
	}
	v->thread_started = true;
	return 0;
}

void vcpu_kick(struct vcpu *v)
{
	if (!v->thread_started)
		return;
	__atomic_store_n(&v->run->immediate_exit, 1, __ATOMIC_SEQ_CST);
	pthread_kill(v->thread, VCPU_KICK_SIGNAL);
}

void vcpu_join(struct vcpu *v)
{
	if (v->thread_started)
		pthread_join(v->thread, NULL);
	v->thread_started = false;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, (size_t)v->vm->kvm.vcpu_mmap_size);
	v->run = NULL;
	if (v->fd >= 0)
		close(v->fd);
	v->fd = -1;
}
