/* /dev/kvm: opening it, and checking that it can do what we need. */
#ifndef MINIVMM_KVM_H
#define MINIVMM_KVM_H

#include <stdbool.h>

struct kvm_host {
	int fd;
	int vcpu_mmap_size;
	int max_vcpus;
	bool pvm;           /* pagetable-based virtualization: see README */
};

/* Opens /dev/kvm (or $MINIVMM_KVM_DEVICE) and checks the API version and every capability
 * minivmm uses. Logs one line naming what is missing and returns -1. */
int kvm_host_open(struct kvm_host *h);
void kvm_host_close(struct kvm_host *h);

/* True when the host KVM is PVM (module kvm_pvm), which cannot run
 * unmodified Linux guests. */
bool kvm_host_is_pvm(void);

/* KVM_IRQFD on a VM: connects (assign) or disconnects eventfd fd to gsi.
 * Returns 0 or -errno, not logged. */
int kvm_irqfd(int vm_fd, int fd, unsigned gsi, bool assign);

#endif
