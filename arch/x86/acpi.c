#include "arch/x86/acpi.h"

#include <stdio.h>
#include <string.h>

#include "arch/x86/aml.h"
#include "devices/power_ctl.h"

#define RSDP_LEN 36
#define ACPI_IO_SPACE 1

uint8_t acpi_checksum(const void *p, size_t len)
{
	const uint8_t *b = p;
	uint8_t sum = 0;
	for (size_t i = 0; i < len; i++)
		sum += b[i];
	return sum;
}

static void put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static void put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static void put64(uint8_t *p, uint64_t v) { memcpy(p, &v, 8); }

/* Table writer: tables are placed one after another, 16-byte aligned. */
struct acpi_writer {
	uint8_t *buf;
	size_t len, used;
	uint64_t base;
};

static uint8_t *acpi_alloc(struct acpi_writer *w, size_t len, uint64_t *gpa)
{
	size_t off = (w->used + 15) & ~(size_t)15;
	if (off > w->len || len > w->len - off)
		return NULL;
	w->used = off + len;
	*gpa = w->base + off;
	memset(w->buf + off, 0, len);
	return w->buf + off;
}

static void acpi_header(uint8_t *t, const char sig[4], uint32_t len, uint8_t rev)
{
	memcpy(t, sig, 4);
	put32(t + 4, len);
	t[8] = rev;
	memcpy(t + 10, "MINVMM", 6);        /* OEM ID */
	memcpy(t + 16, "MINIVMM ", 8);      /* OEM table ID */
	put32(t + 24, 1);                   /* OEM revision */
	memcpy(t + 28, "MVMM", 4);          /* creator ID */
	put32(t + 32, 1);
}

static void acpi_finish(uint8_t *t, uint32_t len)
{
	t[9] = 0;
	t[9] = (uint8_t)(0 - acpi_checksum(t, len));
}

/* Generic Address Structure for a byte-wide I/O port. */
static void gas_io(uint8_t *g, uint16_t port)
{
	g[0] = ACPI_IO_SPACE;
	g[1] = 8;     /* bit width */
	g[2] = 0;     /* bit offset */
	g[3] = 1;     /* byte access */
	put64(g + 4, port);
}

/* DSDT body:
 *   Name (_S5, Package (4) { 5, 0, 0, 0 })   SLP_TYP for poweroff
 *   Scope (\_SB) {
 *     Device (COM1) { _HID PNP0501, _UID 1, _CRS { IO 0x3f8/8, IRQ 4 } }
 *   }
 * COM1 must be described: with hardware-reduced ACPI Linux sets up no ISA
 * IRQs by itself, so the UART gets its interrupt only through this _CRS. */
static size_t build_dsdt_body(uint8_t *buf, size_t cap, const struct acpi_config *cfg)
{
	struct aml a;
	aml_init(&a, buf, cap);

	aml_name(&a, "_S5_");
	size_t pkg = aml_package_open(&a, 4);
	aml_integer(&a, POWER_CTL_S5_TYPE);
	aml_integer(&a, 0);
	aml_integer(&a, 0);
	aml_integer(&a, 0);
	aml_close(&a, pkg);

	size_t sb = aml_scope_open(&a, "\\_SB_");
	size_t com1 = aml_device_open(&a, "COM1");
	aml_name(&a, "_HID");
	aml_eisaid(&a, "PNP0501");
	aml_name(&a, "_UID");
	aml_integer(&a, 1);
	aml_name(&a, "_CRS");
	struct aml_res r = { .len = 0 };
	aml_res_io(&r, cfg->com1_port, 8);
	aml_res_irq(&r, cfg->com1_irq);
	aml_resource_template(&a, &r);
	aml_close(&a, com1);

	/* virtio-mmio devices: Device (VRnn) { _HID "LNRO0005", _UID n, _CRS { Memory32Fixed, Interrupt } } */
	for (unsigned i = 0; i < cfg->n_mmio_devs; i++) {
		char name[5];
		snprintf(name, sizeof(name), "VR%02X", i & 0xff);
		size_t d = aml_device_open(&a, name);
		aml_name(&a, "_HID");
		aml_string(&a, "LNRO0005");
		aml_name(&a, "_UID");
		aml_integer(&a, i);
		aml_name(&a, "_CRS");
		struct aml_res rr = { .len = 0 };
		aml_res_mem32(&rr, (uint32_t)cfg->mmio_devs[i].base, cfg->mmio_devs[i].size);
		aml_res_ext_irq(&rr, cfg->mmio_devs[i].gsi, false);
		aml_resource_template(&a, &rr);
		aml_close(&a, d);
	}
	/* PCI0: the PCI host bridge. With ACPI on, x86 Linux enumerates PCI only
	 * through a PNP0A03/PNP0A08 device (pci_acpi_init makes pci_subsys_init
	 * skip the legacy bus-0 scan), and takes its BAR windows from _CRS.
	 * No _PRT: the devices have no INTx, only MSI-X. */
	if (cfg->pci_mmio_size) {
		size_t pci = aml_device_open(&a, "PCI0");
		aml_name(&a, "_HID");
		aml_eisaid(&a, "PNP0A03");
		aml_name(&a, "_UID");
		aml_integer(&a, 0);
		aml_name(&a, "_SEG");
		aml_integer(&a, 0);
		aml_name(&a, "_BBN");
		aml_integer(&a, 0);
		aml_name(&a, "_CRS");
		struct aml_res pr = { .len = 0 };
		aml_res_word_bus(&pr, 0, 0);
		aml_res_io(&pr, 0xcf8, 8);
		aml_res_dword_mem(&pr, cfg->pci_mmio_base, cfg->pci_mmio_base + cfg->pci_mmio_size - 1);
		aml_resource_template(&a, &pr);
		aml_close(&a, pci);
	}
	aml_close(&a, sb);
	return a.overflow ? 0 : a.len;
}

size_t acpi_build_tables(uint8_t *buf, size_t buflen, uint64_t base_gpa, const struct acpi_config *cfg)
{
	struct acpi_writer w = { buf, buflen, 0, base_gpa };
	uint64_t rsdp_gpa, dsdt_gpa, fadt_gpa, madt_gpa, xsdt_gpa, rsdt_gpa;

	uint8_t *rsdp = acpi_alloc(&w, RSDP_LEN, &rsdp_gpa);
	if (!rsdp)
		return 0;

	uint8_t body[8192];
	size_t body_len = build_dsdt_body(body, sizeof(body), cfg);
	if (!body_len)
		return 0;
	uint32_t dsdt_len = (uint32_t)(ACPI_HDR_LEN + body_len);
	uint8_t *dsdt = acpi_alloc(&w, dsdt_len, &dsdt_gpa);
	if (!dsdt)
		return 0;
	acpi_header(dsdt, "DSDT", dsdt_len, 2);
	memcpy(dsdt + ACPI_HDR_LEN, body, body_len);
	acpi_finish(dsdt, dsdt_len);

	uint8_t *fadt = acpi_alloc(&w, ACPI_FADT_LEN, &fadt_gpa);
	if (!fadt)
		return 0;
	acpi_header(fadt, "FACP", ACPI_FADT_LEN, 6);
	put32(fadt + 40, (uint32_t)dsdt_gpa);
	/* IAPC_BOOT_ARCH: no VGA, no CMOS RTC, and (by omission) no 8042 to probe. */
	put16(fadt + 109, (1u << 2) | (1u << 5));
	put32(fadt + 112, ACPI_FADT_HW_REDUCED | ACPI_FADT_RESET_REG_SUP);
	gas_io(fadt + 116, cfg->power_port + POWER_CTL_RESET);
	fadt[128] = POWER_CTL_RESET_VALUE;
	fadt[131] = 0;                                   /* FADT minor version */
	put64(fadt + 140, dsdt_gpa);                     /* X_DSDT */
	gas_io(fadt + 244, cfg->power_port + POWER_CTL_SLEEP_CONTROL);
	gas_io(fadt + 256, cfg->power_port + POWER_CTL_SLEEP_STATUS);
	memcpy(fadt + 268, "MINIVMM\0", 8);              /* hypervisor vendor identity */
	acpi_finish(fadt, ACPI_FADT_LEN);

	uint32_t madt_len = ACPI_HDR_LEN + 8 + cfg->n_cpus * 8 + 12 + 10 + 6;
	uint8_t *madt = acpi_alloc(&w, madt_len, &madt_gpa);
	if (!madt)
		return 0;
	acpi_header(madt, "APIC", madt_len, 4);
	put32(madt + 36, cfg->lapic_addr);
	put32(madt + 40, 0);                             /* no dual 8259 */
	uint8_t *e = madt + 44;
	for (unsigned i = 0; i < cfg->n_cpus; i++, e += 8) {
		e[0] = 0;                                /* processor local APIC */
		e[1] = 8;
		e[2] = (uint8_t)i;                       /* ACPI processor UID */
		e[3] = (uint8_t)i;                       /* APIC ID */
		put32(e + 4, 1);                         /* enabled */
	}
	e[0] = 1;                                        /* I/O APIC */
	e[1] = 12;
	e[2] = cfg->ioapic_id;
	put32(e + 4, cfg->ioapic_addr);
	put32(e + 8, 0);                                 /* GSI base */
	e += 12;
	e[0] = 2;                                        /* ISA IRQ 0 (PIT) is GSI 2 */
	e[1] = 10;
	e[2] = 0;
	e[3] = 0;
	put32(e + 4, 2);
	put16(e + 8, 0);
	e += 10;
	e[0] = 4;                                        /* LINT1 is NMI on every CPU */
	e[1] = 6;
	e[2] = 0xff;
	put16(e + 3, 0);
	e[5] = 1;
	acpi_finish(madt, madt_len);

	uint64_t tables[] = { fadt_gpa, madt_gpa };
	const unsigned n_tables = sizeof(tables) / sizeof(tables[0]);
	uint32_t xsdt_len = ACPI_HDR_LEN + 8 * n_tables;
	uint8_t *xsdt = acpi_alloc(&w, xsdt_len, &xsdt_gpa);
	if (!xsdt)
		return 0;
	acpi_header(xsdt, "XSDT", xsdt_len, 1);
	for (unsigned i = 0; i < n_tables; i++)
		put64(xsdt + ACPI_HDR_LEN + 8 * i, tables[i]);
	acpi_finish(xsdt, xsdt_len);

	uint32_t rsdt_len = ACPI_HDR_LEN + 4 * n_tables;
	uint8_t *rsdt = acpi_alloc(&w, rsdt_len, &rsdt_gpa);
	if (!rsdt)
		return 0;
	acpi_header(rsdt, "RSDT", rsdt_len, 1);
	for (unsigned i = 0; i < n_tables; i++)
		put32(rsdt + ACPI_HDR_LEN + 4 * i, (uint32_t)tables[i]);
	acpi_finish(rsdt, rsdt_len);

	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, "MINVMM", 6);
	rsdp[15] = 2;                                    /* ACPI 2.0+ */
	put32(rsdp + 16, (uint32_t)rsdt_gpa);
	put32(rsdp + 20, RSDP_LEN);
	put64(rsdp + 24, xsdt_gpa);
	rsdp[8] = (uint8_t)(0 - acpi_checksum(rsdp, 20));
	rsdp[32] = (uint8_t)(0 - acpi_checksum(rsdp, RSDP_LEN));

	(void)rsdp_gpa;
	return w.used;
}
