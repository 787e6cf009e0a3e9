/* x86 vCPU setup: CPUID topology, boot MSRs, and 64-bit entry state. */
#ifndef MINIVMM_X86_CPU_H
#define MINIVMM_X86_CPU_H

#include <linux/kvm.h>

/* Rewrites the topology-related CPUID leaves for one vCPU of an n_cpus
 * machine: one package, n_cpus cores, one thread per core, APIC ID = index.
 * Pure, for tests. */
void x86_cpuid_set_topology(struct kvm_cpuid_entry2 *e, unsigned n, unsigned apic_id, unsigned n_cpus,
			    int tsc_deadline);

struct vm;
/* The CPUID vCPU id of vm gets: what KVM supports, with our topology. Fills
 * at most max entries; returns how many, or -1 (logged). */
int x86_vcpu_cpuid(struct vm *vm, unsigned id, struct kvm_cpuid_entry2 *out, unsigned max);

/* Bits needed to number n_cpus cores (the x2APIC ID shift). */
unsigned x86_core_id_bits(unsigned n_cpus);

#endif
