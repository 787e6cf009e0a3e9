#include "arch/arm64/cpu.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stddef.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/arm64/fdt.h"
#include "vmm/arch.h"
#include "vmm/base/log.h"
#include "vmm/vcpu.h"
#include "vmm/vm.h"

#define CORE_REG(name) (KVM_REG_ARM64 | KVM_REG_SIZE_U64 | KVM_REG_ARM_CORE | KVM_REG_ARM_CORE_REG(name))
#define MPIDR_EL1 ARM64_SYS_REG(3, 0, 0, 0, 5)
#define MPIDR_AFFINITY_MASK 0xff00ffffffull   /* Aff3, Aff2, Aff1, Aff0 */

static int set_reg(struct vcpu *v, uint64_t id, uint64_t val, const char *name)
{
	struct kvm_one_reg r = { .id = id, .addr = (uint64_t)(uintptr_t)&val };
	if (ioctl(v->fd, KVM_SET_ONE_REG, &r) < 0) {
		log_error("vcpu%u: KVM_SET_ONE_REG %s: %s", v->id, name, strerror(errno));
		return -1;
	}
	return 0;
}

int arm64_vcpus_init(struct vm *vm, uint64_t *mpidr)
{
	struct kvm_vcpu_init target;
	memset(&target, 0, sizeof(target));
	if (ioctl(vm->fd, KVM_ARM_PREFERRED_TARGET, &target) < 0) {
		log_error("KVM_ARM_PREFERRED_TARGET: %s", strerror(errno));
		return -1;
	}
	for (unsigned i = 0; i < vm->n_vcpus; i++) {
		struct vcpu *v = &vm->vcpus[i];
		struct kvm_vcpu_init init = target;
		/* PSCI 0.2+ in KVM: CPU_ON, SYSTEM_OFF and SYSTEM_RESET (the last
		 * two come to us as KVM_EXIT_SYSTEM_EVENT). Every CPU but the
		 * boot one starts off and waits for CPU_ON. */
		init.features[0] |= 1u << KVM_ARM_VCPU_PSCI_0_2;
		if (i > 0)
			init.features[0] |= 1u << KVM_ARM_VCPU_POWER_OFF;
		if (ioctl(v->fd, KVM_ARM_VCPU_INIT, &init) < 0) {
			log_error("vcpu%u: KVM_ARM_VCPU_INIT (target %u): %s", i, target.target, strerror(errno));
			return -1;
		}
		uint64_t val = 0;
		struct kvm_one_reg r = { .id = MPIDR_EL1, .addr = (uint64_t)(uintptr_t)&val };
		if (ioctl(v->fd, KVM_GET_ONE_REG, &r) < 0) {
			/* What KVM's reset_mpidr() sets; the device tree must match it. */
			log_warn("vcpu%u: reading MPIDR_EL1: %s; assuming KVM's default", i, strerror(errno));
			val = arm64_mpidr_of_index(i);
		}
		mpidr[i] = val & MPIDR_AFFINITY_MASK;
	}
	return 0;
}

/* Boot protocol: x0 = device tree address, x1-x3 = 0, EL1h with every
 * exception masked, MMU and caches off (KVM's reset state), pc = Image
 * load address. Secondaries get their state from PSCI CPU_ON. */
int arch_vcpu_init(struct vm *vm, struct vcpu *v)
{
	if (v->id != 0)
		return 0;
	uint64_t pstate = PSR_MODE_EL1h | PSR_A_BIT | PSR_F_BIT | PSR_I_BIT | PSR_D_BIT;
	if (set_reg(v, CORE_REG(regs.pstate), pstate, "pstate") ||
	    set_reg(v, CORE_REG(regs.regs[0]), vm->boot.params, "x0") ||
	    set_reg(v, CORE_REG(regs.regs[1]), 0, "x1") ||
	    set_reg(v, CORE_REG(regs.regs[2]), 0, "x2") ||
	    set_reg(v, CORE_REG(regs.regs[3]), 0, "x3") ||
	    set_reg(v, CORE_REG(regs.pc), vm->boot.entry, "pc"))
		return -1;
	return 0;
}

int arch_vcpu_resuming(struct vcpu *v)
{
	(void)v;   /* the arm64 guest's clock needs no word of a pause */
	return 0;
}
