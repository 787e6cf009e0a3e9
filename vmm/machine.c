#include "vmm/machine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/arch.h"
#include "vmm/base/file_util.h"
#include "vmm/base/log.h"
#include "vmm/vm.h"

#define UART_REGS 8   /* the 8250's register block; the rest of an MMIO page reads as unmapped */

static void uart_set_irq(void *ctx, int level)
{
	struct vm *vm = ctx;
	if (vm_set_irq_line(vm, arch_layout.uart_gsi, level) < 0)
		log_warn("KVM_IRQ_LINE (UART, GSI %u): %s", arch_layout.uart_gsi, strerror(errno));
}

static void uart_output(void *ctx, const uint8_t *buf, size_t len)
{
	struct vm *vm = ctx;
	console_output(&vm->console, buf, len);
}

static const struct serial_8250_ops uart_ops = {
	.output = uart_output,
	.set_irq = uart_set_irq,
};

static int register_pc_devices(struct vm *vm, const struct arch_layout *l)
{
	if (l->has_i8042 &&
	    (io_bus_register(&vm->pio_bus, I8042_DATA_PORT, 1, &i8042_data_io_ops, &vm->i8042, "i8042") ||
	     io_bus_register(&vm->pio_bus, I8042_CMD_PORT, 1, &i8042_cmd_io_ops, &vm->i8042, "i8042")))
		return -1;
	if (l->power_ctl_port &&
	    io_bus_register(&vm->pio_bus, l->power_ctl_port, POWER_CTL_LEN, &power_ctl_io_ops, &vm->power, "power"))
		return -1;
	return 0;
}

static int register_pci_host(struct vm *vm, const struct arch_layout *l)
{
	pci_host_init(&vm->devices.pci, l->pci_bars.base, l->pci_bars.size);
	int config = l->pci_ecam.size
		? io_bus_register(&vm->mmio_bus, l->pci_ecam.base, l->pci_ecam.size, &pci_host_ecam_ops, &vm->devices.pci,
				  "pci-ecam")
		: io_bus_register(&vm->pio_bus, PCI_HOST_PIO_BASE, PCI_HOST_PIO_LEN, &pci_host_pio_ops, &vm->devices.pci,
				  "pci-config");
	if (config)
		return -1;
	return io_bus_register(&vm->mmio_bus, l->pci_bars.base, l->pci_bars.size, &pci_host_mmio_ops, &vm->devices.pci,
			       "pci-bars");
}

int machine_platform_init(struct vm *vm)
{
	const struct arch_layout *l = &arch_layout;
	serial_8250_init(&vm->uart, &uart_ops, vm);
	vm->i8042.stop = vm->stop_sink;
	vm->power.stop = vm->stop_sink;
	vm->debug.stop = vm->stop_sink;
	vm->debug.start_ns = vm->start_ns;
	const char *markers = getenv("MINIVMM_BOOT_MARKERS");
	vm->debug.log_markers = markers && *markers == '1';

	struct io_bus *bus = l->platform_pio ? &vm->pio_bus : &vm->mmio_bus;
	if (io_bus_register(bus, l->uart_base, UART_REGS, &serial_8250_io_ops, &vm->uart, "uart") ||
	    io_bus_register(bus, l->guest_port.base, l->guest_port.size, &debug_port_io_ops, &vm->debug,
			    "guest-port") ||
	    register_pc_devices(vm, l) || register_pci_host(vm, l)) {
		log_error("internal: platform device ranges overlap");
		return -1;
	}
	return 0;
}

int machine_virtio_mmio_slot(unsigned index, uint64_t *base, unsigned *gsi)
{
	if (index >= arch_layout.virtio_mmio.count)
		return -1;
	*base = arch_layout.virtio_mmio.base + index * arch_layout.virtio_mmio.stride;
	*gsi = arch_layout.virtio_mmio.first_gsi + index;
	return 0;
}

/* Prefixes an arch boot error with the option its part came from. */
static void log_boot_error(const struct arch_boot_error *e, const struct vmm_options *opts)
{
	switch (e->part) {
	case ARCH_BOOT_KERNEL:
		log_error("--kernel %s: %s", opts->kernel, e->msg);
		break;
	case ARCH_BOOT_INITRD:
		log_error("--initrd %s: %s", opts->initrd, e->msg);
		break;
	case ARCH_BOOT_CMDLINE:
		log_error("--cmdline: %s", e->msg);
		break;
	case ARCH_BOOT_INTERNAL:
	default:
		log_error("%s", e->msg);
		break;
	}
}

int machine_load_kernel(struct vm *vm, const struct vmm_options *opts, const struct boot_files *files)
{
	struct arch_boot_in in = {
		.kernel = files->kernel,
		.kernel_len = files->kernel_len,
		.initrd_size = files->initrd_fd >= 0 ? files->initrd_size : 0,
		.cmdline = opts->cmdline,
	};
	struct arch_boot_error e = { ARCH_BOOT_INTERNAL, "" };
	uint64_t initrd_gpa = 0;
	if (arch_load_kernel(vm, &in, &initrd_gpa, &e)) {
		log_boot_error(&e, opts);
		return -1;
	}
	if (in.initrd_size) {
		void *dst = guest_mem_ptr(&vm->mem, initrd_gpa, in.initrd_size);
		if (!dst || read_full(files->initrd_fd, dst, in.initrd_size)) {
			e.part = ARCH_BOOT_INITRD;
			snprintf(e.msg, sizeof(e.msg), "read failed: %s", dst ? strerror(errno) : "outside guest memory");
			log_boot_error(&e, opts);
			return -1;
		}
	}
	return 0;
}
