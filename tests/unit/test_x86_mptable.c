/* The MP table read back as Linux reads it (arch/x86/kernel/mpparse.c):
 * the floating pointer found by scanning, in Linux's order, 16 bytes at a
 * time; the configuration table checked and walked entry by entry. */
#include <criterion/criterion.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "arch/x86/layout.h"
#include "arch/x86/mptable.h"

/* The guest's first MiB. */
static uint8_t low[0x100000];

static uint32_t u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint16_t u16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }

static void build(unsigned cpus)
{
	struct mptable_config cfg = { .n_cpus = cpus, .ioapic_id = 0, .ioapic_addr = 0xfec00000,
				      .lapic_addr = 0xfee00000 };
	memset(low, 0, sizeof(low));
	cr_assert_eq(mptable_write(low + X86_EBDA_START, low + X86_MPTABLE_GPA, X86_MPTABLE_SIZE, X86_MPTABLE_GPA,
				   &cfg), 0);
}

/* Linux's smp_scan_config over one area: the address of a valid floating
 * pointer, or 0; *steps counts the 16-byte steps (each an early_memremap). */
static uint64_t scan(uint64_t base, uint64_t len, unsigned *steps)
{
	for (; len > 0; base += 16, len -= 16) {
		++*steps;
		const uint8_t *p = low + base;
		if (!memcmp(p, "_MP_", 4) && p[8] == 1 && !acpi_checksum(p, 16) && (p[9] == 1 || p[9] == 4))
			return base;
	}
	return 0;
}

/* default_find_smp_config: bottom KiB, top KiB of base memory, BIOS area. */
static uint64_t find(unsigned *steps)
{
	uint64_t a;
	*steps = 0;
	if ((a = scan(0, 0x400, steps)) || (a = scan(639 * 0x400, 0x400, steps)) || (a = scan(0xf0000, 0x10000, steps)))
		return a;
	return 0;
}

struct walked {
	unsigned cpus, bsp, buses, ioapics, irqs, lints, entries;
	uint8_t cpu_ids[256];
	uint8_t pin_of_isa[16];   /* 0xff: none */
	bool nmi_on_lint1, extint_on_lint0;
};

/* smp_check_mpc and smp_read_mpc: the table's checks, then its entries. */
static struct walked walk(const uint8_t *mpc)
{
	struct walked w;
	memset(&w, 0, sizeof(w));
	memset(w.pin_of_isa, 0xff, sizeof(w.pin_of_isa));
	cr_assert_eq(memcmp(mpc, "PCMP", 4), 0);
	uint16_t len = u16(mpc + 4);
	cr_assert_eq(acpi_checksum(mpc, len), 0, "configuration table checksum");
	cr_assert(mpc[6] == 1 || mpc[6] == 4, "spec %u", mpc[6]);
	cr_assert_eq(u32(mpc + 36), 0xfee00000, "local APIC address");
	cr_assert_eq(u16(mpc + 40), 0, "no extended table");
	const uint8_t *p = mpc + 44, *end = mpc + len;
	while (p < end) {
		switch (p[0]) {
		case 0:
			cr_assert_leq(p + 20, end);
			cr_assert(p[3] & 1, "CPU %u enabled", p[1]);
			w.cpu_ids[w.cpus++] = p[1];
			if (p[3] & 2)
				w.bsp++;
			p += 20;
			break;
		case 1:
			cr_assert_eq(memcmp(p + 2, "ISA   ", 6), 0);
			w.buses++;
			p += 8;
			break;
		case 2:
			cr_assert_eq(p[1], 0, "IOAPIC ID, as the MADT's");
			cr_assert(p[3] & 1, "IOAPIC usable");
			cr_assert_eq(u32(p + 4), 0xfec00000);
			w.ioapics++;
			p += 8;
			break;
		case 3:
			cr_assert_eq(p[1], 0, "a vectored interrupt");
			cr_assert_eq(p[4], 0, "from the ISA bus");
			cr_assert_lt(p[5], 16);
			w.pin_of_isa[p[5]] = p[7];
			w.irqs++;
			p += 8;
			break;
		case 4:
			cr_assert_eq(p[6], 0xff, "every CPU");
			if (p[1] == 1 && p[7] == 1)
				w.nmi_on_lint1 = true;
			if (p[1] == 3 && p[7] == 0)
				w.extint_on_lint0 = true;
			w.lints++;
			p += 8;
			break;
		default:
			cr_assert_fail("entry of unknown type %u at offset %td", p[0], p - mpc);
		}
		w.entries++;
	}
	cr_assert_eq(p, end, "the entries end with the table");
	cr_assert_eq(u16(mpc + 34), w.entries, "entry count");
	return w;
}

Test(x86_mptable, found_at_the_second_place_linux_looks)
{
	build(2);
	unsigned steps;
	cr_assert_eq(find(&steps), X86_EBDA_START);
	/* 64 steps through the bottom KiB, found at the first of the next:
	 * not the 4,100 of a full scan */
	cr_assert_eq(steps, 65);
	const uint8_t *fp = low + X86_EBDA_START;
	cr_assert_eq(u32(fp + 4), X86_MPTABLE_GPA, "points to the configuration table");
	cr_assert_eq(fp[11], 0, "a configuration table, not a default configuration");
}

Test(x86_mptable, describes_the_machine_the_madt_does)
{
	build(4);
	struct walked w = walk(low + X86_MPTABLE_GPA);
	cr_assert_eq(w.cpus, 4);
	cr_assert_eq(w.bsp, 1, "one bootstrap CPU");
	for (unsigned i = 0; i < 4; i++)
		cr_assert_eq(w.cpu_ids[i], i, "CPU %u: APIC ID %u", i, w.cpu_ids[i]);
	cr_assert_eq(w.buses, 1);
	cr_assert_eq(w.ioapics, 1);
	cr_assert_eq(w.pin_of_isa[0], 2, "the PIT on pin 2, as the MADT's override");
	cr_assert_eq(w.pin_of_isa[2], 0xff, "no cascade");
	for (unsigned irq = 1; irq < 16; irq++)
		if (irq != 2)
			cr_assert_eq(w.pin_of_isa[irq], irq, "ISA IRQ %u on pin %u", irq, w.pin_of_isa[irq]);
	cr_assert(w.nmi_on_lint1 && w.extint_on_lint0);
	cr_assert_eq(w.lints, 2);
}

Test(x86_mptable, most_cpus_fit_and_bad_input_is_refused)
{
	build(MPTABLE_MAX_CPUS);
	struct walked w = walk(low + X86_MPTABLE_GPA);
	cr_assert_eq(w.cpus, MPTABLE_MAX_CPUS);
	cr_assert_eq(w.cpu_ids[254], 254);
	cr_assert_leq(mptable_config_size(MPTABLE_MAX_CPUS), X86_MPTABLE_SIZE);

	struct mptable_config cfg = { .n_cpus = 1, .ioapic_addr = 0xfec00000, .lapic_addr = 0xfee00000 };
	uint8_t fp[16], small[64];
	cr_assert_eq(mptable_write(fp, small, sizeof(small), 0xf0000, &cfg), -1, "too small a buffer");
	cr_assert_eq(mptable_write(fp, low, mptable_config_size(1), 0x100000000ull, &cfg), -1, "above 4 GiB");
	cfg.n_cpus = 0;
	cr_assert_eq(mptable_write(fp, low, sizeof(low), 0xf0000, &cfg), -1, "no CPU");
	cfg.n_cpus = MPTABLE_MAX_CPUS + 1;
	cr_assert_eq(mptable_write(fp, low, sizeof(low), 0xf0000, &cfg), -1, "256 CPUs");
	cfg.n_cpus = 1;
	cr_assert_eq(mptable_write(fp, low, mptable_config_size(1), 0xf0000, &cfg), 0, "exactly its size");
}
