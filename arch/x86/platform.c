/* x86 machine: RAM layout, in-kernel irqchip and PIT, where the platform
 * devices sit, and the kernel loader glue (boot_params, ACPI tables, page
 * tables). */
#include <errno.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>

#include "arch/x86/acpi.h"
#include "arch/x86/mptable.h"
#include "arch/x86/boot.h"
#include "arch/x86/layout.h"
#include "devices/virtio/mmio.h"
#include "vmm/arch.h"
#include "vmm/base/log.h"
#include "vmm/vm.h"

const struct kvm_cap_need arch_required_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_SET_IDENTITY_MAP_ADDR, "KVM_CAP_SET_IDENTITY_MAP_ADDR" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
	{ KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE" },
	{ 0, NULL },
};

int arch_ram_layout(uint64_t mem_bytes, struct arch_ram_region *out, unsigned max)
{
	if (max < 2 || mem_bytes < (16ull << 20))
		return -1;
	if (mem_bytes <= X86_LOWMEM_END) {
		out[0] = (struct arch_ram_region){ 0, mem_bytes };
		return 1;
	}
	/* RAM beyond 3 GiB continues above the MMIO hole at 4 GiB. */
	out[0] = (struct arch_ram_region){ 0, X86_LOWMEM_END };
	out[1] = (struct arch_ram_region){ X86_HIGHMEM_START, mem_bytes - X86_LOWMEM_END };
	return 2;
}

int arch_vm_init(struct vm *vm)
{
	if (ioctl(vm->fd, KVM_SET_TSS_ADDR, (unsigned long)X86_TSS_GPA) < 0) {
		log_error("KVM_SET_TSS_ADDR: %s", strerror(errno));
		return -1;
	}
	uint64_t idmap = X86_IDENTITY_MAP_GPA;
	if (ioctl(vm->fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap) < 0) {
		log_error("KVM_SET_IDENTITY_MAP_ADDR: %s", strerror(errno));
		return -1;
	}
	if (ioctl(vm->fd, KVM_CREATE_IRQCHIP, 0) < 0) {
		log_error("KVM_CREATE_IRQCHIP: %s", strerror(errno));
		return -1;
	}
	/* From here on only msi_routes writes the GSI routing table. */
	struct kvm_irq_routing_entry defaults[X86_N_DEFAULT_ROUTES];
	unsigned n = arch_default_irq_routes(defaults, X86_N_DEFAULT_ROUTES);
	if (msi_routes_init(&vm->devices.msi_routes, vm->fd, defaults, n))
		return -1;
	vm->pci_msi = true;   /* MSIs go straight to the local APICs */
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };
	if (ioctl(vm->fd, KVM_CREATE_PIT2, &pit) < 0) {
		log_error("KVM_CREATE_PIT2: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int arch_vm_late_init(struct vm *vm)
{
	return 0;   /* the irqchip came before the vCPUs, as x86 KVM requires */
}

void arch_vm_destroy(struct vm *vm)
{
	/* nothing: every x86 platform object is a field of struct vm */
}

/* KVM_CREATE_IRQCHIP's defaults (arch/x86/kvm/irq_comm.c default_routing):
 * GSI i -> IOAPIC pin i for 0-23, GSI i -> PIC pin i % 8 for 0-15. */
unsigned arch_default_irq_routes(struct kvm_irq_routing_entry *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned pin = 0; pin < X86_IOAPIC_PINS && n < max; pin++, n++)
		out[n] = (struct kvm_irq_routing_entry){
			.gsi = pin,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = KVM_IRQCHIP_IOAPIC, .pin = pin },
		};
	for (unsigned pin = 0; pin < X86_PIC_PINS && n < max; pin++, n++)
		out[n] = (struct kvm_irq_routing_entry){
			.gsi = pin,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = pin < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
				       .pin = pin % 8 },
		};
	return n;
}

/* COM1 and the guest port on port I/O, the virtio-mmio windows and the PCI
 * BAR window in the MMIO hole below 4 GiB. */
const struct arch_layout arch_layout = {
	.platform_pio = true,
	.uart_base = X86_COM1_PORT,
	.uart_gsi = X86_COM1_IRQ,
	.guest_port = { DEBUG_PORT_BASE, DEBUG_PORT_LEN },
	.has_i8042 = true,
	.power_ctl_port = X86_POWER_CTL_PORT,
	.pci_ecam = { 0, 0 },   /* config mechanism 1 */
	.pci_bars = { X86_PCI_MMIO_BASE, X86_PCI_MMIO_SIZE },
	.virtio_mmio = {
		.base = X86_VIRTIO_MMIO_BASE,
		.stride = X86_VIRTIO_MMIO_STRIDE,
		.count = X86_VIRTIO_MMIO_MAX,
		.first_gsi = X86_VIRTIO_MMIO_FIRST_GSI,
	},
};

uint32_t arch_irq_line(unsigned gsi)
{
	return gsi;   /* KVM_IRQ_LINE takes the GSI on x86 */
}

int arch_probe_kernel(const uint8_t *img, size_t len, bool *is_linux, char *err, size_t errlen)
{
	struct x86_kernel k;
	if (x86_probe_kernel(img, len, &k, err, errlen))
		return -1;
	/* Linux's vmlinux enters at 16 MiB or above; test guests sit lower. */
	*is_linux = k.kind == X86_KERNEL_BZIMAGE || k.elf_entry >= 0x1000000;
	return 0;
}

int arch_load_kernel(struct vm *vm, const struct arch_boot_in *in, uint64_t *initrd_gpa,
		     struct arch_boot_error *e)
{
	struct x86_kernel k;
	uint64_t entry, kernel_end;
	char *err = e->msg;
	size_t errlen = sizeof(e->msg);

	e->part = ARCH_BOOT_KERNEL;
	if (x86_probe_kernel(in->kernel, in->kernel_len, &k, err, errlen) ||
	    x86_load_kernel(&vm->mem, &k, &entry, &kernel_end, err, errlen))
		return -1;
	e->part = ARCH_BOOT_CMDLINE;
	if (x86_check_cmdline(&k, in->cmdline, err, errlen))
		return -1;

	struct x86_boot_config cfg = { .cmdline = in->cmdline };
	if (in->initrd_size) {
		e->part = ARCH_BOOT_INITRD;
		if (x86_place_initrd(&vm->mem, &k, kernel_end, in->initrd_size, &cfg.initrd_gpa, err, errlen))
			return -1;
		cfg.initrd_size = in->initrd_size;
	}

	e->part = ARCH_BOOT_INTERNAL;
	struct acpi_mmio_dev mmio[VM_MAX_VIRTIO];
	for (unsigned i = 0; i < vm->devices.n_mmio; i++)
		mmio[i] = (struct acpi_mmio_dev){ vm->devices.mmio[i]->base, VIRTIO_MMIO_SIZE, vm->devices.mmio[i]->gsi };
	uint8_t *acpi = guest_mem_ptr(&vm->mem, X86_ACPI_GPA, X86_ACPI_SIZE);
	struct acpi_config acfg = {
		.n_cpus = vm->n_vcpus,
		.power_port = X86_POWER_CTL_PORT,
		.com1_port = X86_COM1_PORT,
		.com1_irq = X86_COM1_IRQ,
		.ioapic_id = 0,   /* KVM's IOAPIC resets to ID 0 */
		.mmio_devs = mmio,
		.n_mmio_devs = vm->devices.n_mmio,
		.pci_mmio_base = (uint32_t)X86_PCI_MMIO_BASE,
		.pci_mmio_size = (uint32_t)X86_PCI_MMIO_SIZE,
		.ioapic_addr = (uint32_t)X86_IOAPIC_GPA,
		.lapic_addr = (uint32_t)X86_LAPIC_GPA,
	};
	if (!acpi || !acpi_build_tables(acpi, X86_ACPI_SIZE, X86_ACPI_GPA, &acfg))
		return err_set(err, errlen, "internal: ACPI tables do not fit");
	cfg.rsdp_gpa = X86_ACPI_GPA;   /* the RSDP is the first table written */
	/* The MP floating pointer in the top KiB of base memory, the second
	 * place Linux looks (arch/x86/mptable.h says why it matters). */
	struct mptable_config mcfg = { .n_cpus = vm->n_vcpus, .ioapic_id = acfg.ioapic_id,
				       .ioapic_addr = acfg.ioapic_addr, .lapic_addr = acfg.lapic_addr };
	uint8_t *mp_fp = guest_mem_ptr(&vm->mem, X86_EBDA_START, 16);
	uint8_t *mp_cfg = guest_mem_ptr(&vm->mem, X86_MPTABLE_GPA, X86_MPTABLE_SIZE);
	if (!mp_fp || !mp_cfg || mptable_write(mp_fp, mp_cfg, X86_MPTABLE_SIZE, X86_MPTABLE_GPA, &mcfg))
		return err_set(err, errlen, "internal: the MP table does not fit");

	if (x86_write_boot_params(&vm->mem, &k, &cfg, err, errlen))
		return -1;
	if (x86_write_boot_page_tables(&vm->mem) || x86_write_reset_vector(&vm->mem))
		return err_set(err, errlen, "internal: boot page tables do not fit in guest memory");
	vm->boot.entry = entry;
	vm->boot.params = X86_ZERO_PAGE_GPA;
	*initrd_gpa = cfg.initrd_gpa;
	return 0;
}
