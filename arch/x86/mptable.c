#include "arch/x86/mptable.h"

#include <string.h>

#include "arch/x86/acpi.h"   /* acpi_checksum: the same byte sum */

#define MP_SPEC_REV 4        /* 1.4 */
#define LAPIC_VERSION 0x14   /* an integrated local APIC */
#define IOAPIC_VERSION 0x11  /* what KVM's IOAPIC reports */
#define ISA_BUS 0
#define ISA_IRQS 16

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_INTSRC, MP_LINTSRC };
enum { MP_IRQ_INT = 0, MP_IRQ_NMI = 1, MP_IRQ_EXTINT = 3 };

struct mpf {
	char signature[4];   /* "_MP_" */
	uint32_t physptr;    /* the configuration table */
	uint8_t length;      /* in 16-byte units: 1 */
	uint8_t spec;
	uint8_t checksum;
	uint8_t feature1;    /* 0: a configuration table, not a default one */
	uint8_t feature2;    /* bit 7 (IMCR) clear: virtual wire mode */
	uint8_t feature3[3];
} __attribute__((packed));

struct mpc_header {
	char signature[4];   /* "PCMP" */
	uint16_t length;     /* header and entries */
	uint8_t spec;
	uint8_t checksum;
	char oem[8];
	char product[12];
	uint32_t oem_ptr;
	uint16_t oem_size;
	uint16_t count;      /* entries */
	uint32_t lapic;
	uint16_t ext_length;
	uint8_t ext_checksum;
	uint8_t reserved;
} __attribute__((packed));

struct mpc_cpu {
	uint8_t type, apic_id, apic_version, flags;   /* flags: 1 enabled, 2 bootstrap */
	uint32_t signature, features;
	uint32_t reserved[2];
} __attribute__((packed));

struct mpc_bus {
	uint8_t type, bus_id;
	char bus_type[6];
} __attribute__((packed));

struct mpc_ioapic {
	uint8_t type, apic_id, apic_version, flags;   /* flags: 1 usable */
	uint32_t addr;
} __attribute__((packed));

/* An I/O interrupt (to an IOAPIC pin) or a local one (to a LINT pin). */
struct mpc_irq {
	uint8_t type, irq_type;
	uint16_t flags;      /* 0: polarity and trigger as the bus has them */
	uint8_t src_bus, src_irq, dst_apic, dst_pin;
} __attribute__((packed));

_Static_assert(sizeof(struct mpf) == 16, "MP floating pointer");
_Static_assert(sizeof(struct mpc_header) == 44, "MP configuration table header");
_Static_assert(sizeof(struct mpc_cpu) == 20, "MP processor entry");
_Static_assert(sizeof(struct mpc_bus) == 8 && sizeof(struct mpc_ioapic) == 8 && sizeof(struct mpc_irq) == 8,
	       "MP 8-byte entries");

/* ISA IRQs with an IOAPIC pin: all but 2 (the cascade); 0, the PIT, is on
 * pin 2 (as the MADT's override says). */
#define N_IO_IRQS (ISA_IRQS - 1)
#define N_LOCAL_IRQS 2

size_t mptable_config_size(unsigned n_cpus)
{
	return sizeof(struct mpc_header) + n_cpus * sizeof(struct mpc_cpu) + sizeof(struct mpc_bus) +
	       sizeof(struct mpc_ioapic) + (N_IO_IRQS + N_LOCAL_IRQS) * sizeof(struct mpc_irq);
}

int mptable_write(uint8_t fp[16], uint8_t *cfg_buf, size_t cfg_len, uint64_t config_gpa,
		  const struct mptable_config *cfg)
{
	size_t size = mptable_config_size(cfg->n_cpus);
	if (!cfg->n_cpus || cfg->n_cpus > MPTABLE_MAX_CPUS || config_gpa > UINT32_MAX || size > cfg_len)
		return -1;
	memset(cfg_buf, 0, size);
	uint8_t *p = cfg_buf + sizeof(struct mpc_header);
	unsigned count = 0;

	for (unsigned i = 0; i < cfg->n_cpus; i++, count++, p += sizeof(struct mpc_cpu)) {
		struct mpc_cpu c = {
			.type = MP_PROCESSOR, .apic_id = (uint8_t)i, .apic_version = LAPIC_VERSION,
			.flags = (uint8_t)(1 | (i == 0 ? 2 : 0)),
			.signature = 0x600,              /* family 6 */
			.features = (1u << 0) | (1u << 9),   /* FPU, APIC */
		};
		memcpy(p, &c, sizeof(c));
	}
	struct mpc_bus bus = { .type = MP_BUS, .bus_id = ISA_BUS };
	memcpy(bus.bus_type, "ISA   ", 6);
	memcpy(p, &bus, sizeof(bus));
	p += sizeof(bus);
	count++;
	struct mpc_ioapic io = { .type = MP_IOAPIC, .apic_id = cfg->ioapic_id, .apic_version = IOAPIC_VERSION,
				 .flags = 1, .addr = cfg->ioapic_addr };
	memcpy(p, &io, sizeof(io));
	p += sizeof(io);
	count++;
	for (unsigned irq = 0; irq < ISA_IRQS; irq++) {
		if (irq == 2)
			continue;
		struct mpc_irq e = { .type = MP_INTSRC, .irq_type = MP_IRQ_INT, .src_bus = ISA_BUS,
				     .src_irq = (uint8_t)irq, .dst_apic = cfg->ioapic_id,
				     .dst_pin = (uint8_t)(irq == 0 ? 2 : irq) };
		memcpy(p, &e, sizeof(e));
		p += sizeof(e);
		count++;
	}
	/* LINT0 takes the PIC's ExtINT, LINT1 is NMI, on every CPU (0xff). */
	const struct mpc_irq local[N_LOCAL_IRQS] = {
		{ .type = MP_LINTSRC, .irq_type = MP_IRQ_EXTINT, .src_bus = ISA_BUS, .dst_apic = 0xff, .dst_pin = 0 },
		{ .type = MP_LINTSRC, .irq_type = MP_IRQ_NMI, .src_bus = ISA_BUS, .dst_apic = 0xff, .dst_pin = 1 },
	};
	memcpy(p, local, sizeof(local));
	count += N_LOCAL_IRQS;

	struct mpc_header h = { .length = (uint16_t)size, .spec = MP_SPEC_REV, .count = (uint16_t)count,
				.lapic = cfg->lapic_addr };
	memcpy(h.signature, "PCMP", 4);
	memcpy(h.oem, "MINIVMM ", 8);
	memcpy(h.product, "MINIVMM     ", 12);
	memcpy(cfg_buf, &h, sizeof(h));
	cfg_buf[offsetof(struct mpc_header, checksum)] = (uint8_t)-acpi_checksum(cfg_buf, size);

	struct mpf f = { .physptr = (uint32_t)config_gpa, .length = 1, .spec = MP_SPEC_REV };
	memcpy(f.signature, "_MP_", 4);
	memcpy(fp, &f, sizeof(f));
	fp[offsetof(struct mpf, checksum)] = (uint8_t)-acpi_checksum(fp, sizeof(f));
	return 0;
}
