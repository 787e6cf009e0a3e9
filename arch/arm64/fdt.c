#include "arch/arm64/fdt.h"

#include <libfdt.h>
#include <stdio.h>
#include <string.h>

#include "arch/arm64/layout.h"
#include "vmm/base/log.h"

/* The sequential-write API with the first error kept: every call after a
 * failure is skipped, and arm64_fdt_build reports that one. */
struct fdt_writer {
	void *fdt;
	int rc;
	char what[64];       /* the node or property being written when it failed */
};

static void check(struct fdt_writer *w, int rc, const char *what)
{
	if (w->rc == 0 && rc < 0) {
		w->rc = rc;
		snprintf(w->what, sizeof(w->what), "%s", what);
	}
}

static void begin(struct fdt_writer *w, const char *name)
{
	if (!w->rc)
		check(w, fdt_begin_node(w->fdt, name), name);
}

static void end(struct fdt_writer *w)
{
	if (!w->rc)
		check(w, fdt_end_node(w->fdt), "end node");
}

static void prop(struct fdt_writer *w, const char *name, const void *val, int len)
{
	if (!w->rc)
		check(w, fdt_property(w->fdt, name, val, len), name);
}

static void prop_str(struct fdt_writer *w, const char *name, const char *s)
{
	prop(w, name, s, (int)strlen(s) + 1);
}

static void prop_u32(struct fdt_writer *w, const char *name, uint32_t v)
{
	if (!w->rc)
		check(w, fdt_property_u32(w->fdt, name, v), name);
}

static void prop_u64(struct fdt_writer *w, const char *name, uint64_t v)
{
	if (!w->rc)
		check(w, fdt_property_u64(w->fdt, name, v), name);
}

static void prop_empty(struct fdt_writer *w, const char *name)
{
	prop(w, name, NULL, 0);
}

/* n 32-bit cells, big endian. */
static void prop_cells(struct fdt_writer *w, const char *name, const uint32_t *cells, unsigned n)
{
	fdt32_t be[16];
	for (unsigned i = 0; i < n && i < ARRAY_SIZE(be); i++)
		be[i] = cpu_to_fdt32(cells[i]);
	prop(w, name, be, (int)(n * sizeof(be[0])));
}

/* reg of 2-cell address, 2-cell size pairs (the root's and the GIC's). */
static void prop_reg(struct fdt_writer *w, const struct arm64_fdt_range *r, unsigned n)
{
	uint32_t cells[16];
	for (unsigned i = 0; i < n && i < 4; i++) {
		cells[4 * i + 0] = (uint32_t)(r[i].base >> 32);
		cells[4 * i + 1] = (uint32_t)r[i].base;
		cells[4 * i + 2] = (uint32_t)(r[i].size >> 32);
		cells[4 * i + 3] = (uint32_t)r[i].size;
	}
	prop_cells(w, "reg", cells, 4 * n);
}

static void prop_irq(struct fdt_writer *w, uint32_t type, uint32_t num, uint32_t flags)
{
	uint32_t cells[3] = { type, num, flags };
	prop_cells(w, "interrupts", cells, 3);
}

/* "name@base" with the unit address in lower-case hex, no leading zeros. */
static void begin_at(struct fdt_writer *w, const char *name, uint64_t base)
{
	char node[64];
	snprintf(node, sizeof(node), "%s@%llx", name, (unsigned long long)base);
	begin(w, node);
}

static void cpus_node(struct fdt_writer *w, const struct arm64_fdt_config *c)
{
	begin(w, "cpus");
	prop_u32(w, "#address-cells", 1);
	prop_u32(w, "#size-cells", 0);
	for (unsigned i = 0; i < c->n_cpus; i++) {
		/* With one address cell, reg holds Aff2..Aff0 (booting a CPU
		 * through PSCI uses the same value as its target). */
		uint32_t reg = (uint32_t)(c->mpidr[i] & 0xffffff);
		begin_at(w, "cpu", reg);
		prop_str(w, "device_type", "cpu");
		prop_str(w, "compatible", "arm,arm-v8");
		prop_str(w, "enable-method", "psci");
		prop_u32(w, "reg", reg);
		end(w);
	}
	end(w);
}

static void gic_node(struct fdt_writer *w, const struct arm64_fdt_config *c)
{
	begin_at(w, "intc", c->gicd.base);
	prop_str(w, "compatible", "arm,gic-v3");
	prop_empty(w, "interrupt-controller");
	prop_u32(w, "#interrupt-cells", 3);
	struct arm64_fdt_range regs[2] = { c->gicd, c->gicr };
	prop_reg(w, regs, 2);
	prop_irq(w, ARM64_FDT_GIC_PPI, ARM64_PPI_GIC_MAINT, ARM64_FDT_IRQ_LEVEL_HIGH);
	/* The ITS is a child: same address space as the root. */
	prop_u32(w, "#address-cells", 2);
	prop_u32(w, "#size-cells", 2);
	prop_empty(w, "ranges");
	prop_u32(w, "phandle", ARM64_FDT_PHANDLE_GIC);
	if (c->has_its) {
		begin_at(w, "msi-controller", c->its.base);
		prop_str(w, "compatible", "arm,gic-v3-its");
		prop_empty(w, "msi-controller");
		prop_u32(w, "#msi-cells", 1);
		prop_reg(w, &c->its, 1);
		prop_u32(w, "phandle", ARM64_FDT_PHANDLE_ITS);
		end(w);
	}
	end(w);
}

static void pci_node(struct fdt_writer *w, const struct arm64_fdt_config *c)
{
	begin_at(w, "pcie", c->pci_ecam.base);
	prop_str(w, "compatible", "pci-host-ecam-generic");
	prop_str(w, "device_type", "pci");
	prop_u32(w, "#address-cells", 3);
	prop_u32(w, "#size-cells", 2);
	uint32_t buses[2] = { 0, (uint32_t)(c->pci_ecam.size >> 20) - 1 };
	prop_cells(w, "bus-range", buses, 2);
	prop_u32(w, "linux,pci-domain", 0);
	prop_reg(w, &c->pci_ecam, 1);
	/* One memory window, identity-mapped: PCI address = CPU address.
	 * Space code 0x02 is 32-bit memory, 0x03 64-bit. */
	uint64_t b = c->pci_mmio.base, s = c->pci_mmio.size;
	uint32_t space = b + s <= (1ull << 32) ? 0x02000000u : 0x03000000u;
	uint32_t ranges[7] = { space, (uint32_t)(b >> 32), (uint32_t)b, (uint32_t)(b >> 32), (uint32_t)b,
			       (uint32_t)(s >> 32), (uint32_t)s };
	prop_cells(w, "ranges", ranges, 7);
	/* MSIs carry the requester ID (bus << 8 | devfn) as the ITS device ID,
	 * unchanged: that is what minivmm puts in each MSI route. */
	uint32_t msi_map[4] = { 0, ARM64_FDT_PHANDLE_ITS, 0, 0x10000 };
	prop_cells(w, "msi-map", msi_map, 4);
	prop_empty(w, "dma-coherent");
	end(w);
}

int arm64_fdt_build(void *buf, size_t bufsize, const struct arm64_fdt_config *c, char *err, size_t errlen)
{
	if (!c->n_cpus || !c->mpidr)
		return err_set(err, errlen, "internal: device tree without vCPUs");
	if (c->has_pci && !c->has_its)
		return err_set(err, errlen, "internal: a PCI host needs the ITS for its MSIs");
	if (c->has_pci && (c->pci_ecam.size < (1u << 20) || c->pci_ecam.size > (256u << 20)))
		return err_set(err, errlen, "internal: ECAM window of 0x%llx bytes", (unsigned long long)c->pci_ecam.size);
	if (bufsize > INT32_MAX)
		bufsize = INT32_MAX;

	struct fdt_writer w = { .fdt = buf };
	check(&w, fdt_create(buf, (int)bufsize), "fdt_create");
	if (!w.rc)
		check(&w, fdt_finish_reservemap(buf), "reserve map");
	begin(&w, "");
	prop(&w, "compatible", "minivmm,virt\0linux,dummy-virt", sizeof("minivmm,virt\0linux,dummy-virt"));
	prop_str(&w, "model", "minivmm");
	prop_u32(&w, "#address-cells", 2);
	prop_u32(&w, "#size-cells", 2);
	prop_u32(&w, "interrupt-parent", ARM64_FDT_PHANDLE_GIC);

	char uart_path[64];
	snprintf(uart_path, sizeof(uart_path), "/serial@%llx", (unsigned long long)c->uart.base);
	begin(&w, "chosen");
	prop_str(&w, "bootargs", c->cmdline ? c->cmdline : "");
	prop_str(&w, "stdout-path", uart_path);
	if (c->initrd_size) {
		prop_u64(&w, "linux,initrd-start", c->initrd_gpa);
		prop_u64(&w, "linux,initrd-end", c->initrd_gpa + c->initrd_size);
	}
	end(&w);
	begin(&w, "aliases");
	prop_str(&w, "serial0", uart_path);
	end(&w);

	begin_at(&w, "memory", c->ram.base);
	prop_str(&w, "device_type", "memory");
	prop_reg(&w, &c->ram, 1);
	end(&w);

	cpus_node(&w, c);

	begin(&w, "psci");
	prop_str(&w, "compatible", "arm,psci-0.2");
	prop_str(&w, "method", "hvc");
	end(&w);

	begin(&w, "timer");
	prop_str(&w, "compatible", "arm,armv8-timer");
	uint32_t timer[12] = {
		ARM64_FDT_GIC_PPI, ARM64_PPI_TIMER_SEC_PHYS, ARM64_FDT_IRQ_LEVEL_HIGH,
		ARM64_FDT_GIC_PPI, ARM64_PPI_TIMER_PHYS, ARM64_FDT_IRQ_LEVEL_HIGH,
		ARM64_FDT_GIC_PPI, ARM64_PPI_TIMER_VIRT, ARM64_FDT_IRQ_LEVEL_HIGH,
		ARM64_FDT_GIC_PPI, ARM64_PPI_TIMER_HYP, ARM64_FDT_IRQ_LEVEL_HIGH,
	};
	prop_cells(&w, "interrupts", timer, 12);
	prop_empty(&w, "always-on");
	end(&w);

	gic_node(&w, c);

	begin_at(&w, "serial", c->uart.base);
	prop_str(&w, "compatible", "ns16550a");
	prop_reg(&w, &c->uart, 1);
	prop_irq(&w, ARM64_FDT_GIC_SPI, c->uart_spi, ARM64_FDT_IRQ_LEVEL_HIGH);
	prop_u32(&w, "clock-frequency", c->uart_clock_hz);
	prop_u32(&w, "reg-shift", 0);
	prop_u32(&w, "reg-io-width", 1);
	end(&w);

	if (c->guest_port.size) {
		begin_at(&w, "guest-port", c->guest_port.base);
		prop_str(&w, "compatible", "minivmm,guest-port");
		prop_reg(&w, &c->guest_port, 1);
		end(&w);
	}

	for (unsigned i = 0; i < c->n_mmio; i++) {
		const struct arm64_fdt_mmio_dev *d = &c->mmio[i];
		begin_at(&w, "virtio", d->base);
		prop_str(&w, "compatible", "virtio,mmio");
		struct arm64_fdt_range r = { d->base, d->size };
		prop_reg(&w, &r, 1);
		prop_irq(&w, ARM64_FDT_GIC_SPI, d->spi, ARM64_FDT_IRQ_EDGE_RISING);
		prop_empty(&w, "dma-coherent");
		end(&w);
	}

	if (c->has_pci)
		pci_node(&w, c);

	end(&w);   /* root */
	if (!w.rc)
		check(&w, fdt_finish(buf), "fdt_finish");
	if (w.rc)
		return err_set(err, errlen, "device tree (%s): %s", w.what, fdt_strerror(w.rc));
	return 0;
}

uint64_t arm64_mpidr_of_index(unsigned i)
{
	return (uint64_t)(i & 0xf) | (uint64_t)((i >> 4) & 0xff) << 8 | (uint64_t)((i >> 12) & 0xff) << 16;
}
