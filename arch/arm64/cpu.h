/* arm64 vCPU setup: KVM_ARM_VCPU_INIT with PSCI 0.2 (secondaries start
 * powered off and wait for the guest's PSCI CPU_ON, handled inside KVM),
 * and the boot CPU's registers per the arm64 boot protocol. */
#ifndef MINIVMM_ARM64_CPU_H
#define MINIVMM_ARM64_CPU_H

#include <stdint.h>

struct vm;

/* KVM_ARM_PREFERRED_TARGET, then KVM_ARM_VCPU_INIT of every vCPU; stores
 * each vCPU's MPIDR_EL1 (for the device tree) in mpidr[]. Must run before
 * the vGIC is created. Logs and returns -1 on failure. */
int arm64_vcpus_init(struct vm *vm, uint64_t *mpidr);

#endif
