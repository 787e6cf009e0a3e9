#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/x86/acpi.h"
#include "devices/power_ctl.h"

#define BASE 0xe0000ull
static uint8_t buf[0x4000];

static uint8_t *at(uint64_t gpa)
{
	cr_assert(gpa >= BASE && gpa < BASE + sizeof(buf), "pointer 0x%llx outside", (unsigned long long)gpa);
	return buf + (gpa - BASE);
}

static uint32_t u32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static uint64_t u64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

static const uint8_t *find_table(const char *sig)
{
	const uint8_t *xsdt = at(u64(buf + 24));
	unsigned n = (u32(xsdt + 4) - ACPI_HDR_LEN) / 8;
	for (unsigned i = 0; i < n; i++) {
		const uint8_t *t = at(u64(xsdt + ACPI_HDR_LEN + 8 * i));
		if (!memcmp(t, sig, 4))
			return t;
	}
	return NULL;
}

static const struct acpi_mmio_dev mmio_devs[] = {
	{ 0xd0000000, 0x200, 5 },
	{ 0xd0001000, 0x200, 6 },
};

static void build(unsigned cpus)
{
	struct acpi_config cfg = { .n_cpus = cpus, .power_port = 0x600, .com1_port = 0x3f8, .com1_irq = 4,
				   .ioapic_id = 7, .ioapic_addr = 0xfec00000, .lapic_addr = 0xfee00000,
				   .mmio_devs = mmio_devs, .n_mmio_devs = 2,
				   .pci_mmio_base = 0xe0000000, .pci_mmio_size = 0x1ec00000 };
	memset(buf, 0xaa, sizeof(buf));
	cr_assert_gt(acpi_build_tables(buf, sizeof(buf), BASE, &cfg), 0);
}

Test(x86_acpi, rsdp_and_checksums)
{
	build(2);
	cr_assert_eq(memcmp(buf, "RSD PTR ", 8), 0, "RSDP first, at the base");
	cr_assert_eq(acpi_checksum(buf, 20), 0);
	cr_assert_eq(acpi_checksum(buf, 36), 0);
	cr_assert_eq(buf[15], 2);
	const char *sigs[] = { "FACP", "APIC" };
	for (unsigned i = 0; i < 2; i++) {
		const uint8_t *t = find_table(sigs[i]);
		cr_assert_not_null(t, "%s listed in XSDT", sigs[i]);
		cr_assert_eq(acpi_checksum(t, u32(t + 4)), 0, "%s checksum", sigs[i]);
	}
	const uint8_t *rsdt = at(u32(buf + 16));
	cr_assert_eq(memcmp(rsdt, "RSDT", 4), 0);
	cr_assert_eq(acpi_checksum(rsdt, u32(rsdt + 4)), 0);
}

Test(x86_acpi, fadt_hw_reduced_with_power_registers)
{
	build(1);
	const uint8_t *f = find_table("FACP");
	cr_assert_eq(u32(f + 4), ACPI_FADT_LEN);
	cr_assert_eq(f[8], 6, "FADT revision 6");
	uint32_t flags = u32(f + 112);
	cr_assert(flags & ACPI_FADT_HW_REDUCED);
	cr_assert(flags & ACPI_FADT_RESET_REG_SUP);
	cr_assert_eq(f[244], 1, "sleep control in I/O space");
	cr_assert_eq(u64(f + 248), 0x600 + POWER_CTL_SLEEP_CONTROL);
	cr_assert_eq(u64(f + 260), 0x600 + POWER_CTL_SLEEP_STATUS);
	cr_assert_eq(u64(f + 120), 0x600 + POWER_CTL_RESET);
	cr_assert_eq(f[128], POWER_CTL_RESET_VALUE);

	const uint8_t *dsdt = at(u64(f + 140));
	cr_assert_eq(u32(f + 40), (uint32_t)u64(f + 140), "DSDT and X_DSDT agree");
	cr_assert_eq(memcmp(dsdt, "DSDT", 4), 0);
	cr_assert_eq(acpi_checksum(dsdt, u32(dsdt + 4)), 0);
	/* \_S5 package: first element is the SLP_TYP the power device expects. */
	const uint8_t *aml = dsdt + ACPI_HDR_LEN;
	cr_assert_eq(memcmp(aml, "\x08_S5_\x12", 6), 0);
	cr_assert_eq(aml[6], 7, "PkgLength of the 4-element package");
	cr_assert_eq(aml[8], 0x0a);
	cr_assert_eq(aml[9], POWER_CTL_S5_TYPE);
}

Test(x86_acpi, madt_lists_every_cpu_and_the_ioapic)
{
	build(4);
	const uint8_t *t = find_table("APIC");
	uint32_t len = u32(t + 4);
	cr_assert_eq(u32(t + 36), 0xfee00000);
	unsigned cpus = 0, ioapics = 0;
	for (uint32_t off = 44; off < len; off += t[off + 1]) {
		cr_assert_gt(t[off + 1], 0, "entry length");
		if (t[off] == 0) {
			cr_assert_eq(t[off + 3], cpus, "APIC IDs in order");
			cr_assert_eq(u32(t + off + 4) & 1, 1, "enabled");
			cpus++;
		} else if (t[off] == 1) {
			cr_assert_eq(t[off + 2], 7, "the IOAPIC ID given");
			cr_assert_eq(u32(t + off + 4), 0xfec00000);
			ioapics++;
		}
	}
	cr_assert_eq(cpus, 4);
	cr_assert_eq(ioapics, 1);
}

Test(x86_acpi, buffer_too_small)
{
	struct acpi_config cfg = { .n_cpus = 2, .power_port = 0x600, .com1_port = 0x3f8, .com1_irq = 4,
				   .ioapic_addr = 0xfec00000, .lapic_addr = 0xfee00000 };
	cr_assert_eq(acpi_build_tables(buf, 100, BASE, &cfg), 0);
	cr_assert_eq(acpi_build_tables(buf, 400, BASE, &cfg), 0);
}

/* The DSDT must be valid AML: disassemble it with ACPICA's iasl when it is
 * installed (it is, through .ci/install-deps.sh) and look for our objects. */
Test(x86_acpi, dsdt_disassembles_with_iasl)
{
	if (system("command -v iasl >/dev/null 2>&1") != 0)
		cr_skip_test("iasl (acpica-tools) not installed: AML not cross-checked");
	build(2);
	const uint8_t *f = find_table("FACP");
	const uint8_t *dsdt = at(u64(f + 140));
	char dir[] = "/tmp/minivmm-aml-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char path[128], cmd[512];
	snprintf(path, sizeof(path), "%s/dsdt.dat", dir);
	FILE *fp = fopen(path, "wb");
	fwrite(dsdt, 1, u32(dsdt + 4), fp);
	fclose(fp);
	snprintf(cmd, sizeof(cmd), "cd %s && iasl -d dsdt.dat >iasl.log 2>&1 && cat dsdt.dsl", dir);
	FILE *p = popen(cmd, "r");
	char out[8192] = "";
	size_t n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = 0;
	int rc = pclose(p);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
	cr_assert_eq(rc, 0, "iasl failed to disassemble the DSDT");
	cr_assert(strstr(out, "Name (_S5, Package (0x04)"), "%s", out);
	cr_assert(strstr(out, "Device (COM1)"), "%s", out);
	cr_assert(strstr(out, "EisaId (\"PNP0501\")"), "%s", out);
	cr_assert(strstr(out, "0x03F8,"), "%s", out);
	cr_assert(strstr(out, "IRQNoFlags ()\n                    {4}"), "%s", out);
	cr_assert(strstr(out, "Device (VR01)"), "%s", out);
	cr_assert(strstr(out, "Device (PCI0)"), "%s", out);
	cr_assert(strstr(out, "EisaId (\"PNP0A03\")"), "%s", out);
	cr_assert(strstr(out, "\"LNRO0005\""), "%s", out);
	cr_assert(strstr(out, "0xD0001000,         // Address Base"), "%s", out);
	cr_assert(strstr(out, "Interrupt (ResourceConsumer, Edge, ActiveHigh, Exclusive, ,, )\n                {\n                    0x00000006,"), "%s", out);
}
