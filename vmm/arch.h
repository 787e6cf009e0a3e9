/* The small interface generic code uses to reach architecture code. Each
 * arch/<name>/ directory implements it with the same file names. */
#ifndef MINIVMM_ARCH_H
#define MINIVMM_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct boot_files;
struct kvm_irq_routing_entry;
struct vcpu;
struct vmm_options;

/* Guest RAM layout for mem_bytes of RAM: fills at most max regions of
 * (gpa, size) and returns how many, or -1 when it cannot be laid out. */
struct arch_ram_region {
	uint64_t gpa;
	uint64_t size;
};
int arch_ram_layout(uint64_t mem_bytes, struct arch_ram_region *out, unsigned max);

/* KVM capabilities this architecture needs, zero-terminated, with names. */
struct kvm_cap_need {
	int cap;
	const char *name;
};
extern const struct kvm_cap_need arch_required_caps[];

/* After KVM_CREATE_VM and memory, before any vCPU: interrupt controller,
 * timers, etc. May keep arch state in vm->arch. Sets vm->pci_msi when PCI
 * devices can have MSIs here (or arch_vm_late_init does). */
int arch_vm_init(struct vm *vm);
/* After every vCPU is created, before devices are attached: what needs the
 * vCPUs to exist (arm64: KVM_ARM_VCPU_INIT, then the vGICv3, its ITS and
 * the GSI routing table). */
int arch_vm_late_init(struct vm *vm);
/* Closes and frees what the arch hooks made (vm->arch); safe on a VM that
 * was only half built. Called before the VM fd is closed. */
void arch_vm_destroy(struct vm *vm);
/* The GSI routes the in-kernel irqchip has by default, which every routing
 * table minivmm writes keeps (vmm/msi_routes.h). Fills at most max entries
 * of out and returns how many. */
unsigned arch_default_irq_routes(struct kvm_irq_routing_entry *out, unsigned max);
/* Platform devices (console UART, reset/power controls) on the I/O buses. */
int arch_platform_init(struct vm *vm);
/* Checks that img is a kernel this architecture boots, before KVM is opened.
 * *is_linux tells whether it is a Linux kernel (as opposed to a bare test
 * guest), which matters on PVM hosts. */
int arch_probe_kernel(const uint8_t *img, size_t len, bool *is_linux, char *err, size_t errlen);
/* Loads kernel + initrd and builds the boot structures (boot_params, ACPI,
 * device tree...). Sets vm->boot.entry and friends. */
int arch_load_kernel(struct vm *vm, const struct vmm_options *opts, const struct boot_files *files);
/* Where the index-th virtio-mmio device sits: MMIO base and GSI. Returns -1
 * when there is no room for another one. */
int arch_virtio_mmio_slot(unsigned index, uint64_t *base, unsigned *gsi);
/* Per-vCPU state before the first KVM_RUN. */
int arch_vcpu_init(struct vm *vm, struct vcpu *vcpu);

#endif
