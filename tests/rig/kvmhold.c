/* kvmhold: holds one KVM VM with one vCPU open in the rig's L1 for as long
 * as L1 runs, and does nothing else.
 *
 * Why: KVM turns static keys on when the first VM (preempt notifiers, in
 * __schedule) or the first vCPU with a local APIC (the APIC's disabled keys)
 * appears, and off when the last goes. Each switch rewrites L1's kernel text
 * with int3 and cross-CPU calls (text_poke_bp), and on the emulated CPU that
 * has wedged L1: a CPU looping in exc_int3 at __schedule while the other
 * waits in smp_call_function_many_cond for it (caught on L1's console during
 * function_runner, which makes and ends VMs all the time). With one VM and
 * one vCPU always there, later VMs only move the keys' counts, and the text
 * is never rewritten after L1 starts. */
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <sys/ioctl.h>
#include <unistd.h>

int main(void)
{
	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0) {
		fprintf(stderr, "kvmhold: /dev/kvm: %s\n", strerror(errno));
		return 1;
	}
	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0) {
		fprintf(stderr, "kvmhold: KVM_CREATE_VM: %s\n", strerror(errno));
		return 1;
	}
#ifdef __x86_64__
	/* An in-kernel local APIC for the vCPU, as minivmm's have. */
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		fprintf(stderr, "kvmhold: KVM_CREATE_IRQCHIP: %s\n", strerror(errno));
#endif
	if (ioctl(vm, KVM_CREATE_VCPU, 0) < 0) {
		fprintf(stderr, "kvmhold: KVM_CREATE_VCPU: %s\n", strerror(errno));
		return 1;
	}
	for (;;)
		pause();
}
