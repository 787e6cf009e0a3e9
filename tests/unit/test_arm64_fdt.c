/* The arm64 device tree, checked the way a kernel reads it (libfdt: paths,
 * compatibles, cells, interrupt specifiers, phandles) and by dtc, which
 * refuses a broken blob and warns about a badly formed tree. Runs on any
 * host: the builder is plain C + libfdt. */
#include <criterion/criterion.h>
#include <libfdt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arch/arm64/fdt.h"
#include "arch/arm64/layout.h"

#define BUF_SIZE 0x10000
static uint8_t buf[BUF_SIZE];
static char err[256];
static uint64_t mpidr[300];
static struct arm64_fdt_mmio_dev mmio[2] = {
	{ ARM64_VIRTIO_MMIO_BASE, 0x200, ARM64_VIRTIO_MMIO_FIRST_SPI },
	{ ARM64_VIRTIO_MMIO_BASE + ARM64_VIRTIO_MMIO_STRIDE, 0x200, ARM64_VIRTIO_MMIO_FIRST_SPI + 1 },
};

/* 2 vCPUs, 512 MiB, 2 virtio-mmio devices, the PCI host, an initrd: the
 * tree platform.c builds for such a VM. */
static struct arm64_fdt_config config(unsigned n_cpus)
{
	for (unsigned i = 0; i < n_cpus; i++)
		mpidr[i] = arm64_mpidr_of_index(i);
	return (struct arm64_fdt_config){
		.ram = { ARM64_RAM_BASE, 512ull << 20 },
		.n_cpus = n_cpus,
		.mpidr = mpidr,
		.cmdline = "console=ttyS0 earlycon panic=-1",
		.initrd_gpa = 0x5f000000,
		.initrd_size = 0x123456,
		.gicd = { ARM64_GICD_BASE, ARM64_GICD_SIZE },
		.gicr = { ARM64_GICR_BASE, ARM64_GICR_STRIDE * n_cpus },
		.has_its = true,
		.its = { ARM64_GITS_BASE, ARM64_GITS_SIZE },
		.uart = { ARM64_UART_BASE, ARM64_UART_SIZE },
		.uart_spi = ARM64_UART_SPI,
		.uart_clock_hz = ARM64_UART_CLOCK_HZ,
		.guest_port = { ARM64_GUEST_PORT_BASE, ARM64_GUEST_PORT_SIZE },
		.mmio = mmio,
		.n_mmio = 2,
		.has_pci = true,
		.pci_ecam = { ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE },
		.pci_mmio = { ARM64_PCI_MMIO_BASE, ARM64_PCI_MMIO_SIZE },
	};
}

static void build(const struct arm64_fdt_config *c)
{
	memset(buf, 0xa5, sizeof(buf));
	cr_assert_eq(arm64_fdt_build(buf, sizeof(buf), c, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(fdt_check_header(buf), 0);
	cr_assert_leq(fdt_totalsize(buf), sizeof(buf));
}

static int node(const char *path)
{
	int off = fdt_path_offset(buf, path);
	cr_assert_geq(off, 0, "node %s: %s", path, fdt_strerror(off));
	return off;
}

/* Property as n big-endian cells, which must be exactly its length. */
static const fdt32_t *cells(int off, const char *name, int n)
{
	int len = -1;
	const fdt32_t *p = fdt_getprop(buf, off, name, &len);
	cr_assert_not_null(p, "property %s missing", name);
	cr_assert_eq(len, n * 4, "%s has %d bytes, expected %d cells", name, len, n);
	return p;
}

static uint32_t cell(const fdt32_t *p, int i)
{
	return fdt32_to_cpu(p[i]);
}

static uint64_t cell64(const fdt32_t *p, int i)
{
	return (uint64_t)cell(p, i) << 32 | cell(p, i + 1);
}

static const char *str(int off, const char *name)
{
	const char *s = fdt_getprop(buf, off, name, NULL);
	cr_assert_not_null(s, "property %s missing", name);
	return s;
}

static bool has(int off, const char *name)
{
	return fdt_getprop(buf, off, name, NULL) != NULL;
}

static void compatible(int off, const char *compat)
{
	cr_assert_eq(fdt_node_check_compatible(buf, off, compat), 0, "node %s is not compatible with %s",
		     fdt_get_name(buf, off, NULL), compat);
}

/* The GIC phandle an interrupts property of node off resolves to,
 * following interrupt-parent up the tree as the kernel does. */
static int interrupt_parent(int off)
{
	for (int n = off; n >= 0; n = fdt_parent_offset(buf, n)) {
		int len;
		const fdt32_t *p = fdt_getprop(buf, n, "interrupt-parent", &len);
		if (p) {
			cr_assert_eq(len, 4);
			int ic = fdt_node_offset_by_phandle(buf, fdt32_to_cpu(*p));
			cr_assert_geq(ic, 0, "interrupt-parent phandle does not resolve");
			return ic;
		}
		if (n == 0)
			break;
	}
	cr_assert_fail("no interrupt-parent above %s", fdt_get_name(buf, off, NULL));
	return -1;
}

static void one_irq(const char *path, uint32_t type, uint32_t num, uint32_t flags)
{
	int off = node(path);
	int gic = interrupt_parent(off);
	cr_assert_eq(gic, node("/intc@8000000"), "%s: interrupts go to the GIC", path);
	cr_assert_eq(cell(cells(gic, "#interrupt-cells", 1), 0), 3);
	const fdt32_t *p = cells(off, "interrupts", 3);
	cr_assert_eq(cell(p, 0), type, "%s: SPI/PPI cell", path);
	cr_assert_eq(cell(p, 1), num, "%s: interrupt number", path);
	cr_assert_eq(cell(p, 2), flags, "%s: trigger", path);
}

static void reg(const char *path, uint64_t base, uint64_t size)
{
	const fdt32_t *p = cells(node(path), "reg", 4);
	cr_assert_eq(cell64(p, 0), base, "%s: reg base", path);
	cr_assert_eq(cell64(p, 2), size, "%s: reg size", path);
}

Test(arm64_fdt, root_chosen_memory)
{
	struct arm64_fdt_config c = config(2);
	build(&c);
	cr_assert_eq(cell(cells(0, "#address-cells", 1), 0), 2);
	cr_assert_eq(cell(cells(0, "#size-cells", 1), 0), 2);
	compatible(0, "linux,dummy-virt");

	int chosen = node("/chosen");
	cr_assert_str_eq(str(chosen, "bootargs"), "console=ttyS0 earlycon panic=-1");
	cr_assert_str_eq(str(chosen, "stdout-path"), "/serial@9000000");
	cr_assert_eq(cell64(cells(chosen, "linux,initrd-start", 2), 0), 0x5f000000);
	cr_assert_eq(cell64(cells(chosen, "linux,initrd-end", 2), 0), 0x5f000000 + 0x123456);
	cr_assert_geq(fdt_path_offset(buf, str(chosen, "stdout-path")), 0, "stdout-path names a node");
	cr_assert_str_eq(str(node("/aliases"), "serial0"), "/serial@9000000");

	int mem = node("/memory@40000000");
	cr_assert_str_eq(str(mem, "device_type"), "memory");
	reg("/memory@40000000", 0x40000000, 512ull << 20);
}

Test(arm64_fdt, no_initrd_no_initrd_properties)
{
	struct arm64_fdt_config c = config(1);
	c.initrd_size = 0;
	build(&c);
	int chosen = node("/chosen");
	cr_assert_not(has(chosen, "linux,initrd-start"));
	cr_assert_not(has(chosen, "linux,initrd-end"));
}

Test(arm64_fdt, cpus_psci_timer)
{
	struct arm64_fdt_config c = config(2);
	build(&c);
	int cpus = node("/cpus");
	cr_assert_eq(cell(cells(cpus, "#address-cells", 1), 0), 1);
	cr_assert_eq(cell(cells(cpus, "#size-cells", 1), 0), 0);
	int n = 0, off;
	fdt_for_each_subnode(off, buf, cpus) {
		cr_assert_str_eq(str(off, "device_type"), "cpu");
		cr_assert_str_eq(str(off, "enable-method"), "psci");
		compatible(off, "arm,arm-v8");
		cr_assert_eq(cell(cells(off, "reg", 1), 0), (uint32_t)mpidr[n]);
		n++;
	}
	cr_assert_eq(n, 2);
	node("/cpus/cpu@0");
	node("/cpus/cpu@1");

	int psci = node("/psci");
	compatible(psci, "arm,psci-0.2");
	cr_assert_str_eq(str(psci, "method"), "hvc");

	int timer = node("/timer");
	compatible(timer, "arm,armv8-timer");
	cr_assert_eq(interrupt_parent(timer), node("/intc@8000000"));
	const fdt32_t *t = cells(timer, "interrupts", 12);
	const uint32_t ppis[4] = { 13, 14, 11, 10 };   /* secure phys, phys, virt, hyp */
	for (int i = 0; i < 4; i++) {
		cr_assert_eq(cell(t, 3 * i), ARM64_FDT_GIC_PPI);
		cr_assert_eq(cell(t, 3 * i + 1), ppis[i]);
		cr_assert_eq(cell(t, 3 * i + 2), ARM64_FDT_IRQ_LEVEL_HIGH);
	}
}

/* MPIDR affinity beyond Aff0 shows in the unit address and reg. */
Test(arm64_fdt, many_cpus_use_their_mpidr)
{
	cr_assert_eq(arm64_mpidr_of_index(15), 0xf);
	cr_assert_eq(arm64_mpidr_of_index(16), 0x100);
	cr_assert_eq(arm64_mpidr_of_index(255), 0xf0f);
	struct arm64_fdt_config c = config(256);
	build(&c);
	cr_assert_eq(cell(cells(node("/cpus/cpu@100"), "reg", 1), 0), 0x100);
	cr_assert_eq(cell(cells(node("/cpus/cpu@f0f"), "reg", 1), 0), 0xf0f);
	const fdt32_t *r = cells(node("/intc@8000000"), "reg", 8);
	cr_assert_eq(cell64(r, 6), 256 * ARM64_GICR_STRIDE, "one redistributor per vCPU");
}

Test(arm64_fdt, gic_and_its)
{
	struct arm64_fdt_config c = config(2);
	build(&c);
	int gic = node("/intc@8000000");
	compatible(gic, "arm,gic-v3");
	cr_assert(has(gic, "interrupt-controller"));
	cr_assert_eq(fdt_get_phandle(buf, gic), ARM64_FDT_PHANDLE_GIC);
	cr_assert_eq(fdt_node_offset_by_phandle(buf, cell(cells(0, "interrupt-parent", 1), 0)), gic,
		     "the root's interrupt-parent is the GIC");
	const fdt32_t *r = cells(gic, "reg", 8);
	cr_assert_eq(cell64(r, 0), ARM64_GICD_BASE);
	cr_assert_eq(cell64(r, 2), ARM64_GICD_SIZE);
	cr_assert_eq(cell64(r, 4), ARM64_GICR_BASE);
	cr_assert_eq(cell64(r, 6), 2 * ARM64_GICR_STRIDE);
	one_irq("/intc@8000000", ARM64_FDT_GIC_PPI, 9, ARM64_FDT_IRQ_LEVEL_HIGH);

	int its = node("/intc@8000000/msi-controller@8080000");
	compatible(its, "arm,gic-v3-its");
	cr_assert(has(its, "msi-controller"));
	cr_assert_eq(cell(cells(its, "#msi-cells", 1), 0), 1);
	cr_assert_eq(fdt_get_phandle(buf, its), ARM64_FDT_PHANDLE_ITS);
	reg("/intc@8000000/msi-controller@8080000", ARM64_GITS_BASE, ARM64_GITS_SIZE);
	/* The ITS reg is in the root's address space: the GIC's ranges is
	 * empty (identity) and its cells match the root's. */
	cr_assert(has(gic, "ranges"));
	cr_assert_eq(cell(cells(gic, "#address-cells", 1), 0), 2);
	cr_assert_eq(cell(cells(gic, "#size-cells", 1), 0), 2);
	int len;
	fdt_getprop(buf, gic, "ranges", &len);
	cr_assert_eq(len, 0);
}

Test(arm64_fdt, uart_guest_port_virtio_mmio)
{
	struct arm64_fdt_config c = config(2);
	build(&c);
	int uart = node("/serial@9000000");
	compatible(uart, "ns16550a");
	reg("/serial@9000000", ARM64_UART_BASE, ARM64_UART_SIZE);
	one_irq("/serial@9000000", ARM64_FDT_GIC_SPI, ARM64_UART_SPI, ARM64_FDT_IRQ_LEVEL_HIGH);
	cr_assert_eq(cell(cells(uart, "clock-frequency", 1), 0), ARM64_UART_CLOCK_HZ);
	cr_assert_eq(cell(cells(uart, "reg-shift", 1), 0), 0);
	cr_assert_eq(cell(cells(uart, "reg-io-width", 1), 0), 1);

	compatible(node("/guest-port@9010000"), "minivmm,guest-port");
	reg("/guest-port@9010000", ARM64_GUEST_PORT_BASE, ARM64_GUEST_PORT_SIZE);

	compatible(node("/virtio@a000000"), "virtio,mmio");
	compatible(node("/virtio@a000200"), "virtio,mmio");
	reg("/virtio@a000000", 0x0a000000, 0x200);
	reg("/virtio@a000200", 0x0a000200, 0x200);
	one_irq("/virtio@a000000", ARM64_FDT_GIC_SPI, 16, ARM64_FDT_IRQ_EDGE_RISING);
	one_irq("/virtio@a000200", ARM64_FDT_GIC_SPI, 17, ARM64_FDT_IRQ_EDGE_RISING);
	cr_assert(has(node("/virtio@a000000"), "dma-coherent"));
	cr_assert_lt(fdt_path_offset(buf, "/virtio@a000400"), 0, "only the devices that exist");
}

Test(arm64_fdt, pci_host_ecam)
{
	struct arm64_fdt_config c = config(2);
	build(&c);
	int pci = node("/pcie@3f000000");
	compatible(pci, "pci-host-ecam-generic");
	cr_assert_str_eq(str(pci, "device_type"), "pci");
	cr_assert_eq(cell(cells(pci, "#address-cells", 1), 0), 3);
	cr_assert_eq(cell(cells(pci, "#size-cells", 1), 0), 2);
	reg("/pcie@3f000000", ARM64_PCI_ECAM_BASE, ARM64_PCI_ECAM_SIZE);
	const fdt32_t *b = cells(pci, "bus-range", 2);
	cr_assert_eq(cell(b, 0), 0);
	cr_assert_eq(cell(b, 1), 0, "1 MiB of ECAM is bus 0 only");
	/* ranges: <space pci.hi pci.lo cpu.hi cpu.lo size.hi size.lo> */
	const fdt32_t *r = cells(pci, "ranges", 7);
	cr_assert_eq(cell(r, 0), 0x02000000u, "32-bit memory space");
	cr_assert_eq(cell64(r, 1), ARM64_PCI_MMIO_BASE, "PCI address");
	cr_assert_eq(cell64(r, 3), ARM64_PCI_MMIO_BASE, "CPU address: identity");
	cr_assert_eq(cell64(r, 5), ARM64_PCI_MMIO_SIZE);
	cr_assert_leq(ARM64_PCI_MMIO_BASE + ARM64_PCI_MMIO_SIZE, ARM64_PCI_ECAM_BASE, "window below ECAM");
	/* msi-map: requester ID 0.. -> ITS device ID 0.., 64K of them */
	const fdt32_t *m = cells(pci, "msi-map", 4);
	cr_assert_eq(cell(m, 0), 0);
	int its = fdt_node_offset_by_phandle(buf, cell(m, 1));
	cr_assert_eq(its, node("/intc@8000000/msi-controller@8080000"), "msi-map names the ITS");
	cr_assert(has(its, "msi-controller"));
	cr_assert_eq(cell(m, 2), 0);
	cr_assert_eq(cell(m, 3), 0x10000);
	cr_assert(has(pci, "dma-coherent"));
}

/* Without an ITS: no ITS node and no PCI host (virtio-pci has no
 * interrupt without MSIs); asking for PCI anyway is refused. */
Test(arm64_fdt, without_its)
{
	struct arm64_fdt_config c = config(2);
	c.has_its = false;
	c.has_pci = false;
	build(&c);
	cr_assert_lt(fdt_path_offset(buf, "/intc@8000000/msi-controller@8080000"), 0);
	cr_assert_lt(fdt_path_offset(buf, "/pcie@3f000000"), 0);
	cr_assert_lt(fdt_node_offset_by_phandle(buf, ARM64_FDT_PHANDLE_ITS), 0);
	c.has_pci = true;
	cr_assert_eq(arm64_fdt_build(buf, sizeof(buf), &c, err, sizeof(err)), -1);
	cr_assert(strstr(err, "ITS"), "%s", err);
}

Test(arm64_fdt, errors_are_one_line)
{
	struct arm64_fdt_config c = config(2);
	cr_assert_eq(arm64_fdt_build(buf, 256, &c, err, sizeof(err)), -1, "256 bytes cannot hold the tree");
	cr_assert(strstr(err, "FDT_ERR_NOSPACE"), "%s", err);
	cr_assert_null(strchr(err, '\n'));
	c.n_cpus = 0;
	cr_assert_eq(arm64_fdt_build(buf, sizeof(buf), &c, err, sizeof(err)), -1);
	cr_assert(strstr(err, "vCPU"), "%s", err);
}

/* dtc decompiles the blob (it refuses a broken one, as the corrupted copy
 * shows) with no warning: node names match their reg, phandles resolve,
 * interrupt specifiers have the parent's cell count, PCI bridge rules... */
static int run_dtc(const void *blob, size_t len, char *out, size_t outlen, int *warnings)
{
	char dir[] = "/tmp/arm64-fdt-XXXXXX";
	cr_assert_not_null(mkdtemp(dir));
	char path[128], cmd[512];
	snprintf(path, sizeof(path), "%s/guest.dtb", dir);
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	cr_assert_eq(fwrite(blob, 1, len, f), len);
	fclose(f);
	snprintf(cmd, sizeof(cmd), "cd %s && dtc -I dtb -O dts -o guest.dts guest.dtb 2>dtc.err; echo rc=$?; cat dtc.err guest.dts 2>/dev/null",
		 dir);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	size_t n = fread(out, 1, outlen - 1, p);
	out[n] = 0;
	pclose(p);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	(void)!system(cmd);
	*warnings = 0;
	for (const char *s = out; (s = strstr(s, "Warning")) != NULL; s++)
		(*warnings)++;
	return strncmp(out, "rc=0", 4) == 0 ? 0 : -1;
}

Test(arm64_fdt, dtc_accepts_it_without_warnings)
{
	if (system("command -v dtc >/dev/null 2>&1") != 0)
		cr_skip_test("dtc (device-tree-compiler) not installed: tree not cross-checked");
	static char out[1 << 16];
	int warnings;
	struct arm64_fdt_config c = config(2);
	build(&c);
	cr_assert_eq(run_dtc(buf, fdt_totalsize(buf), out, sizeof(out), &warnings), 0, "dtc failed:\n%s", out);
	cr_assert_eq(warnings, 0, "dtc warnings:\n%s", out);
	/* What dtc read back is our tree. */
	cr_assert(strstr(out, "compatible = \"pci-host-ecam-generic\";"), "%s", out);
	cr_assert(strstr(out, "msi-map = <0x00 0x02 0x00 0x10000>;"), "%s", out);
	cr_assert(strstr(out, "interrupts = <0x00 0x10 0x01>;"), "virtio-mmio SPI 16, edge:\n%s", out);

	/* The same without ITS/PCI, and with many vCPUs. */
	c.has_its = c.has_pci = false;
	build(&c);
	cr_assert_eq(run_dtc(buf, fdt_totalsize(buf), out, sizeof(out), &warnings), 0, "dtc failed:\n%s", out);
	cr_assert_eq(warnings, 0, "dtc warnings:\n%s", out);
	c = config(64);
	build(&c);
	cr_assert_eq(run_dtc(buf, fdt_totalsize(buf), out, sizeof(out), &warnings), 0, "dtc failed:\n%s", out);
	cr_assert_eq(warnings, 0, "dtc warnings:\n%s", out);

	/* A tree dtc does warn about is counted, or "no warnings" proves nothing. */
	static uint8_t bad[4096];
	cr_assert_eq(fdt_create_empty_tree(bad, sizeof(bad)), 0);
	cr_assert_geq(fdt_add_subnode(bad, 0, "foo@1"), 0);   /* unit address without reg */
	cr_assert_eq(run_dtc(bad, fdt_totalsize(bad), out, sizeof(out), &warnings), 0, "dtc failed:\n%s", out);
	cr_assert_eq(warnings, 1, "dtc output:\n%s", out);

	/* A corrupted blob: dtc must refuse it, or the checks above prove nothing. */
	c = config(2);
	build(&c);
	((fdt32_t *)buf)[2] = cpu_to_fdt32(0x7fffff00);   /* off_dt_struct far out of the blob */
	cr_assert_eq(run_dtc(buf, fdt_totalsize(buf), out, sizeof(out), &warnings), -1, "dtc took a corrupt blob:\n%s",
		     out);
}
