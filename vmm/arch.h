/* The small interface generic code uses to reach architecture code. Each
 * arch/<name>/ directory implements it with the same file names. */
#ifndef MINIVMM_ARCH_H
#define MINIVMM_ARCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vm;
struct kvm_irq_routing_entry;
struct vcpu;

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

/* An address range: MMIO, or port I/O where a field says so. */
struct arch_range {
	uint64_t base;
	uint64_t size;
};

/* Where this machine's platform devices sit and which GSIs they raise.
 * vmm/machine.c wires the devices from it; arch code describes them to
 * the guest (ACPI, device tree) from the same numbers. */
struct arch_layout {
	bool platform_pio;             /* UART and guest port on port I/O (x86), else MMIO */
	uint64_t uart_base;            /* 8250: eight 1-byte registers */
	unsigned uart_gsi;
	struct arch_range guest_port;
	bool has_i8042;                /* the PC keyboard controller, for its reset line */
	uint16_t power_ctl_port;       /* ACPI sleep and reset registers; 0: none (arm64 has PSCI) */
	struct arch_range pci_ecam;    /* PCI config space on MMIO; size 0: mechanism 1 on port I/O */
	struct arch_range pci_bars;    /* the MMIO window every BAR is placed in */
	struct {
		uint64_t base, stride;     /* slot i at base + i * stride */
		unsigned count;
		unsigned first_gsi;        /* slot i raises first_gsi + i */
	} virtio_mmio;
};
extern const struct arch_layout arch_layout;

/* KVM_IRQ_LINE's irq field for a GSI of arch_default_irq_routes: the GSI
 * itself on x86; on arm64 the SPI's type and INTID. */
uint32_t arch_irq_line(unsigned gsi);

/* Checks that img is a kernel this architecture boots, before KVM is opened.
 * *is_linux tells whether it is a Linux kernel (as opposed to a bare test
 * guest), which matters on PVM hosts. */
int arch_probe_kernel(const uint8_t *img, size_t len, bool *is_linux, char *err, size_t errlen);

/* What arch_load_kernel is given: no option names or paths, which the
 * caller adds to an error (arch_boot_error.part says which). */
struct arch_boot_in {
	const uint8_t *kernel;
	size_t kernel_len;
	uint64_t initrd_size;          /* 0: no initrd */
	const char *cmdline;
};
/* What a boot error is about. */
enum arch_boot_part { ARCH_BOOT_INTERNAL, ARCH_BOOT_KERNEL, ARCH_BOOT_INITRD, ARCH_BOOT_CMDLINE };
struct arch_boot_error {
	enum arch_boot_part part;
	char msg[256];                 /* one line about that part, without its name */
};
/* Loads the kernel into guest RAM (vm->mem), chooses where the initrd goes
 * (*initrd_gpa; the caller reads it in) and builds the boot structures for
 * vm->n_vcpus and the virtio-mmio devices (boot_params and ACPI, device
 * tree...). Sets vm->boot. Returns -1 with *e filled on failure. */
int arch_load_kernel(struct vm *vm, const struct arch_boot_in *in, uint64_t *initrd_gpa,
		     struct arch_boot_error *e);

/* Per-vCPU state before the first KVM_RUN. */
int arch_vcpu_init(struct vm *vm, struct vcpu *vcpu);
/* The VM was paused and is about to resume: tells the guest's clock so a
 * long pause is not taken for a lockup (x86: KVM_KVMCLOCK_CTRL; a guest
 * without kvmclock is no error). Returns 0, or -1 with errno set. */
int arch_vcpu_resuming(struct vcpu *vcpu);

/* ---- snapshots (vmm/snapshot/): the architecture's part of the state file ----
 * An architecture that cannot snapshot yet says so in every err. */
struct snap_writer;
struct snap_reader;
struct arch_vcpu_state;
struct arch_vm_state;
extern const uint32_t arch_snap_id;   /* SNAP_ARCH_* of vmm/base/snap_format.h */
/* NULL, or why this architecture cannot snapshot at all: snapshot and
 * --restore say it first, before looking at any file. */
extern const char *const arch_snapshot_unsupported;
/* Appends vCPU v's state (the VM paused) as one section; *fingerprint (may
 * be NULL) gets a hash of its CPU model. -1 with err set on failure. */
int arch_vcpu_save(struct vcpu *v, struct snap_writer *w, uint64_t *fingerprint, char *err, size_t errlen);
/* Reads one vCPU section (hostile input: everything bounded); NULL with
 * the reader failed on error. */
struct arch_vcpu_state *arch_vcpu_state_read(struct snap_reader *r);
/* Whether this host's KVM offers every CPU feature the snapshot's guest had. */
int arch_snapshot_check_cpu(struct vm *vm, const struct arch_vcpu_state *s, char *err, size_t errlen);
int arch_vcpu_restore(struct vcpu *v, const struct arch_vcpu_state *s, char *err, size_t errlen);
void arch_vcpu_state_free(struct arch_vcpu_state *s);
/* The same for the VM's own state (interrupt controllers, timers, clock). */
int arch_vm_save(struct vm *vm, struct snap_writer *w, char *err, size_t errlen);
struct arch_vm_state *arch_vm_state_read(struct snap_reader *r);
int arch_vm_restore(struct vm *vm, const struct arch_vm_state *s, char *err, size_t errlen);
void arch_vm_state_free(struct arch_vm_state *s);

#endif
