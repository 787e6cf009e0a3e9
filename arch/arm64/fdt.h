/* The device tree an arm64 guest boots with, built with libfdt. Pure: it
 * takes every address and interrupt from the config (arch/arm64/platform.c
 * fills it from layout.h and the VM), so the unit test builds the same tree
 * on any host and checks it with libfdt and dtc. */
#ifndef MINIVMM_ARM64_FDT_H
#define MINIVMM_ARM64_FDT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Phandles of the interrupt controllers, fixed so tests can name them. */
#define ARM64_FDT_PHANDLE_GIC 1
#define ARM64_FDT_PHANDLE_ITS 2

/* Interrupt specifier cells of the GIC (#interrupt-cells = 3). */
#define ARM64_FDT_GIC_SPI 0
#define ARM64_FDT_GIC_PPI 1
#define ARM64_FDT_IRQ_EDGE_RISING 1
#define ARM64_FDT_IRQ_LEVEL_HIGH 4

struct arm64_fdt_range {
	uint64_t base, size;
};

struct arm64_fdt_mmio_dev {
	uint64_t base, size;
	unsigned spi;            /* edge-triggered: irqfd delivery is a pulse */
};

struct arm64_fdt_config {
	struct arm64_fdt_range ram;
	unsigned n_cpus;
	const uint64_t *mpidr;   /* n_cpus MPIDR_EL1 values, as KVM reports them */
	const char *cmdline;
	uint64_t initrd_gpa, initrd_size;   /* initrd_size 0: none */

	struct arm64_fdt_range gicd, gicr;  /* gicr covers every vCPU's redistributor */
	bool has_its;
	struct arm64_fdt_range its;

	struct arm64_fdt_range uart;        /* ns16550a, 1-byte registers */
	unsigned uart_spi;
	uint32_t uart_clock_hz;
	struct arm64_fdt_range guest_port;  /* minivmm guest port (see README) */

	const struct arm64_fdt_mmio_dev *mmio;
	unsigned n_mmio;

	bool has_pci;                       /* needs has_its: MSI-X is the only PCI interrupt */
	struct arm64_fdt_range pci_ecam;    /* bus 0 .. size / 1 MiB - 1 */
	struct arm64_fdt_range pci_mmio;    /* 32-bit memory window, CPU address = PCI address */
};

/* Writes the tree into buf (bufsize bytes) and packs it. Returns 0, or -1
 * with one line in err (a libfdt error, or a config that cannot be
 * described: no vCPU, PCI without ITS...). */
int arm64_fdt_build(void *buf, size_t bufsize, const struct arm64_fdt_config *c, char *err, size_t errlen);

/* MPIDR_EL1 affinity KVM gives vCPU index i (reset_mpidr(): Aff0 holds 16
 * vCPUs, then Aff1, Aff2), for when KVM cannot be asked. */
uint64_t arm64_mpidr_of_index(unsigned i);

#endif
