/* arm64 machine: RAM layout, vGICv3 + ITS, where the platform devices sit
 * (8250 UART, guest port, PCI ECAM and BAR window, all MMIO), and the kernel
 * loader glue (Image, initrd placement, device tree). Power-off and reboot
 * are PSCI calls KVM turns into KVM_EXIT_SYSTEM_EVENT. */
#include <linux/kvm.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arm64/boot.h"
#include "arch/arm64/cpu.h"
#include "arch/arm64/fdt.h"
#include "arch/arm64/gic.h"
#include "arch/arm64/layout.h"
#include "devices/virtio/mmio.h"
#include "vmm/arch.h"
#include "vmm/base/log.h"
#include "vmm/vm.h"

/* vm->arch on arm64. */
struct arm64_vm {
	struct arm64_gic gic;
	uint64_t *mpidr;          /* per vCPU, for the device tree */
};

const struct kvm_cap_need arch_required_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP (an in-kernel vGIC)" },
	{ KVM_CAP_ARM_PSCI_0_2, "KVM_CAP_ARM_PSCI_0_2" },
	{ KVM_CAP_ONE_REG, "KVM_CAP_ONE_REG" },
	{ KVM_CAP_DEVICE_CTRL, "KVM_CAP_DEVICE_CTRL" },
	{ 0, NULL },
};

int arch_ram_layout(uint64_t mem_bytes, struct arch_ram_region *out, unsigned max)
{
	if (max < 1 || mem_bytes < (16ull << 20) || mem_bytes > ARM64_IPA_LIMIT - ARM64_RAM_BASE)
		return -1;
	out[0] = (struct arch_ram_region){ ARM64_RAM_BASE, mem_bytes };
	return 1;
}

int arch_vm_init(struct vm *vm)
{
	struct arm64_vm *a = calloc(1, sizeof(*a));
	if (!a) {
		log_error("out of memory");
		return -1;
	}
	a->gic.fd = a->gic.its_fd = -1;
	vm->arch = a;
	return 0;
}

/* The GIC SPIs as GSIs 0..NR_SPIS-1, which is also what KVM installs at
 * vGIC init (kvm_vgic_setup_default_irq_routing). irqfds of virtio-mmio
 * devices use them; MSI GSIs come after. */
unsigned arch_default_irq_routes(struct kvm_irq_routing_entry *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned spi = 0; spi < ARM64_GIC_NR_SPIS && n < max; spi++, n++)
		out[n] = (struct kvm_irq_routing_entry){
			.gsi = spi,
			.type = KVM_IRQ_ROUTING_IRQCHIP,
			.u.irqchip = { .irqchip = 0, .pin = spi },
		};
	return n;
}

int arch_vm_late_init(struct vm *vm)
{
	struct arm64_vm *a = vm->arch;
	a->mpidr = calloc(vm->n_vcpus, sizeof(*a->mpidr));
	if (!a->mpidr) {
		log_error("out of memory");
		return -1;
	}
	if (arm64_vcpus_init(vm, a->mpidr) || arm64_gic_create(&a->gic, vm->fd, vm->n_vcpus))
		return -1;
	vm->pci_msi = arm64_gic_has_its(&a->gic);
	/* After the ITS exists: that is when KVM starts asking MSIs for a
	 * device ID (KVM_CAP_MSI_DEVID), which msi_routes checks. */
	struct kvm_irq_routing_entry defaults[ARM64_GIC_NR_SPIS];
	unsigned n = arch_default_irq_routes(defaults, ARM64_GIC_NR_SPIS);
	return msi_routes_init(&vm->devices.msi_routes, vm->fd, defaults, n);
}

void arch_vm_destroy(struct vm *vm)
{
	struct arm64_vm *a = vm->arch;
	if (!a)
		return;
	arm64_gic_destroy(&a->gic);
	free(a->mpidr);
	free(a);
	vm->arch = NULL;
}

/* Everything on MMIO (layout.h has the map); PCI config by ECAM. */
const struct arch_layout arch_layout = {
	.platform_pio = false,
	.uart_base = ARM64_UART_BASE,
	.uart_gsi = ARM64_UART_SPI,             /* GSI n = SPI n (arch_default_irq_routes) */
	/* The guest port takes its whole page (offsets 0 and 1 mean something,
	 * as on the x86 ports). */
	.guest_port = { ARM64_GUEST_PORT_BASE, ARM64_GUEST_PORT_SIZE },
	.has_i8042 = false,
	.power_ctl_port = 0,                    /* power-off and reboot are PSCI calls */
	.pci_ecam = { ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE },
	.pci_bars = { ARM64_PCI_MMIO_BASE, ARM64_PCI_MMIO_SIZE },
	.virtio_mmio = {
		.base = ARM64_VIRTIO_MMIO_BASE,
		.stride = ARM64_VIRTIO_MMIO_STRIDE,
		.count = ARM64_VIRTIO_MMIO_MAX,
		.first_gsi = ARM64_VIRTIO_MMIO_FIRST_SPI,
	},
};

/* KVM_IRQ_LINE on arm64 names an SPI by type and INTID, not by GSI; GSI n
 * is SPI n, INTID 32 + n. */
uint32_t arch_irq_line(unsigned gsi)
{
	return (KVM_ARM_IRQ_TYPE_SPI << KVM_ARM_IRQ_TYPE_SHIFT) | (32 + gsi);
}

int arch_probe_kernel(const uint8_t *img, size_t len, bool *is_linux, char *err, size_t errlen)
{
	struct arm64_image k;
	if (arm64_parse_image(img, len, &k, err, errlen))
		return -1;
	*is_linux = true;
	return 0;
}

static int build_fdt(struct vm *vm, const char *cmdline, const struct arm64_boot_plan *plan,
		     uint64_t initrd_size, char *err, size_t errlen)
{
	struct arm64_vm *a = vm->arch;
	struct arm64_fdt_mmio_dev mmio[VM_MAX_VIRTIO];
	for (unsigned i = 0; i < vm->devices.n_mmio; i++)
		mmio[i] = (struct arm64_fdt_mmio_dev){ vm->devices.mmio[i]->base, VIRTIO_MMIO_SIZE, vm->devices.mmio[i]->gsi };
	bool its = arm64_gic_has_its(&a->gic);
	struct arm64_fdt_config c = {
		.ram = { vm->mem.regions[0].gpa, vm->mem.regions[0].size },
		.n_cpus = vm->n_vcpus,
		.mpidr = a->mpidr,
		.cmdline = cmdline,
		.initrd_gpa = plan->initrd_gpa,
		.initrd_size = initrd_size,
		.gicd = { ARM64_GICD_BASE, ARM64_GICD_SIZE },
		.gicr = { ARM64_GICR_BASE, ARM64_GICR_STRIDE * vm->n_vcpus },
		.has_its = its,
		.its = { ARM64_GITS_BASE, ARM64_GITS_SIZE },
		.uart = { ARM64_UART_BASE, ARM64_UART_SIZE },
		.uart_spi = ARM64_UART_SPI,
		.uart_clock_hz = ARM64_UART_CLOCK_HZ,
		.guest_port = { ARM64_GUEST_PORT_BASE, ARM64_GUEST_PORT_SIZE },
		.mmio = mmio,
		.n_mmio = vm->devices.n_mmio,
		.has_pci = its,
		.pci_ecam = { ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE },
		.pci_mmio = { ARM64_PCI_MMIO_BASE, ARM64_PCI_MMIO_SIZE },
	};
	void *dst = guest_mem_ptr(&vm->mem, plan->fdt_gpa, ARM64_FDT_MAX_SIZE);
	if (!dst)
		return err_set(err, errlen, "internal: device tree outside guest memory");
	return arm64_fdt_build(dst, ARM64_FDT_MAX_SIZE, &c, err, errlen);
}

int arch_load_kernel(struct vm *vm, const struct arch_boot_in *in, uint64_t *initrd_gpa,
		     struct arch_boot_error *e)
{
	struct arm64_image k;
	struct arm64_boot_plan plan;
	const struct guest_region *ram = &vm->mem.regions[0];
	char *err = e->msg;
	size_t errlen = sizeof(e->msg);

	/* The plan places the initrd too; a failure to fit it is reported
	 * against the kernel, whose size decides as much as the initrd's. */
	e->part = ARCH_BOOT_KERNEL;
	if (arm64_parse_image(in->kernel, in->kernel_len, &k, err, errlen) ||
	    arm64_plan_boot(&k, ram->gpa, ram->size, in->initrd_size, &plan, err, errlen))
		return -1;
	e->part = ARCH_BOOT_INTERNAL;
	if (guest_mem_write(&vm->mem, plan.kernel_gpa, in->kernel, k.file_size))
		return err_set(err, errlen, "internal: kernel outside guest memory");
	if (build_fdt(vm, in->cmdline, &plan, in->initrd_size, err, errlen))
		return -1;
	vm->boot.entry = plan.kernel_gpa;
	vm->boot.params = plan.fdt_gpa;
	*initrd_gpa = plan.initrd_gpa;
	return 0;
}
