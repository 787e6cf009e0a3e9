/* Hardware-reduced ACPI tables: RSDP, XSDT/RSDT, FADT (sleep control and
 * reset registers), DSDT (\_S5 so Linux can power off) and MADT (CPUs,
 * IOAPIC). Built into a host buffer that is then copied to X86_ACPI_GPA. */
#ifndef MINIVMM_X86_ACPI_H
#define MINIVMM_X86_ACPI_H

#include <stddef.h>
#include <stdint.h>

/* A virtio-mmio device announced in the DSDT (LNRO0005, as Linux's
 * virtio_mmio driver matches it). */
struct acpi_mmio_dev {
	uint64_t base;
	uint32_t size;
	uint32_t gsi;
};

struct acpi_config {
	unsigned n_cpus;
	uint16_t power_port;      /* sleep control at +0, status at +1, reset at +2 */
	uint16_t com1_port;
	uint8_t com1_irq;
	uint8_t ioapic_id;        /* what the IOAPIC's ID register holds */
	uint32_t ioapic_addr;
	uint32_t lapic_addr;
	const struct acpi_mmio_dev *mmio_devs;
	unsigned n_mmio_devs;
	/* PCI host bridge PCI0 (bus 0, config mechanism 1) with this memory
	 * window for BARs; no PCI0 when pci_mmio_size is 0. */
	uint32_t pci_mmio_base, pci_mmio_size;
};

/* Returns the number of bytes used in buf (tables at base_gpa onwards; the
 * RSDP is the first thing at base_gpa), or 0 when buf is too small. */
size_t acpi_build_tables(uint8_t *buf, size_t buflen, uint64_t base_gpa, const struct acpi_config *cfg);

/* Byte sum helper: a valid table sums to zero. */
uint8_t acpi_checksum(const void *p, size_t len);

#define ACPI_HDR_LEN 36
#define ACPI_FADT_LEN 276
#define ACPI_FADT_HW_REDUCED (1u << 20)
#define ACPI_FADT_RESET_REG_SUP (1u << 10)

#endif
