/* One vCPU: its KVM fd, its kvm_run page and the thread that runs it. The
 * thread loops in KVM_RUN, hands port and MMIO exits to the VM's buses, and
 * parks when the VM pauses. */
#ifndef MINIVMM_VCPU_H
#define MINIVMM_VCPU_H

#include <pthread.h>
#include <stdbool.h>

struct kvm_run;
struct vm;

struct vcpu {
	struct vm *vm;
	unsigned id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool thread_started;
};

/* KVM_CREATE_VCPU and the kvm_run mapping. Logs and returns -1 on failure;
 * vcpu_destroy is safe afterwards either way. */
int vcpu_create(struct vm *vm, struct vcpu *v, unsigned id);
/* Starts its thread (through the VM's thread creation: its own filter). */
int vcpu_start(struct vcpu *v);
/* Brings it out of KVM_RUN soon (a signal plus immediate_exit). */
void vcpu_kick(struct vcpu *v);
void vcpu_join(struct vcpu *v);
void vcpu_destroy(struct vcpu *v);
/* One-time process setup for kicking vCPUs with a signal. */
int vcpu_signal_setup(void);

#endif
