/* The Intel MultiProcessor Specification (1.4) table: a floating pointer
 * structure where Linux looks for one, and the configuration table it
 * points to (CPUs, the ISA bus, the IOAPIC and its ISA interrupts, LINT0
 * and LINT1), the same machine the MADT describes.
 *
 * Linux uses ACPI's MADT when it has one, but it looks for this table
 * first (find_smp_config, early in setup_arch) and, finding none, scans the
 * whole BIOS area 16 bytes at a time, mapping and unmapping each step: 4,100
 * early_memremap/invlpg pairs, which under nested shadow paging took 3 s of
 * every boot. Found at its second place (the top KiB of base memory), the
 * scan takes 65 steps. It also gives a guest booted with acpi=off its
 * CPUs. */
#ifndef MINIVMM_X86_MPTABLE_H
#define MINIVMM_X86_MPTABLE_H

#include <stddef.h>
#include <stdint.h>

#define MPTABLE_MAX_CPUS 255   /* 8-bit APIC IDs */

struct mptable_config {
	unsigned n_cpus;          /* APIC IDs 0 .. n_cpus-1, 0 the bootstrap CPU */
	uint8_t ioapic_id;        /* as in the MADT */
	uint32_t ioapic_addr;
	uint32_t lapic_addr;
};

/* Bytes the configuration table takes for n_cpus. */
size_t mptable_config_size(unsigned n_cpus);

/* Writes the 16-byte floating pointer into fp (which the guest sees at any
 * 16-byte aligned address) pointing to config_gpa, and the configuration
 * table into cfg_buf (cfg_len bytes; the guest sees it at config_gpa).
 * Returns 0, or -1 when n_cpus is 0 or over MPTABLE_MAX_CPUS, config_gpa is
 * above 4 GiB, or the table does not fit in cfg_len. */
int mptable_write(uint8_t fp[16], uint8_t *cfg_buf, size_t cfg_len, uint64_t config_gpa,
		  const struct mptable_config *cfg);

#endif
