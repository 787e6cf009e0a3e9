/* PCI host bridge: configuration mechanism 1 (address latch, data port
 * widths and offsets, absent devices, other buses and functions), BAR
 * assignment, and dispatch of the MMIO window to whichever BAR decodes. */
#include <criterion/criterion.h>
#include <string.h>

#include "devices/pci/pci_host.h"

#define WIN_BASE 0xe0000000ull
#define WIN_SIZE 0x1ec00000ull

static struct pci_host host;

struct fake_bar {
	uint64_t last_off;
	unsigned last_size;
	uint64_t last_write;
	int reads, writes;
};

static void fb_read(void *o, uint64_t off, void *data, unsigned size)
{
	struct fake_bar *f = o;
	f->reads++;
	f->last_off = off;
	f->last_size = size;
	uint64_t v = 0x1122334455667788ull + off;
	memcpy(data, &v, size);
}

static void fb_write(void *o, uint64_t off, const void *data, unsigned size)
{
	struct fake_bar *f = o;
	f->writes++;
	f->last_off = off;
	f->last_size = size;
	f->last_write = 0;
	memcpy(&f->last_write, data, size);
}

static const struct io_ops fake_bar_ops = { fb_read, fb_write };

static void setup(void)
{
	pci_host_init(&host, WIN_BASE, WIN_SIZE);
}

static void teardown(void)
{
	pci_host_destroy(&host);
}

TestSuite(pci_host, .init = setup, .fini = teardown);

static void set_address(uint32_t a)
{
	pci_host_pio_ops.write(&host, 0, &a, 4);
}

static uint32_t conf_addr(unsigned bus, unsigned dev, unsigned fn, unsigned reg)
{
	return 0x80000000u | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc);
}

/* A config read as Linux's pci_conf1_read does it: latch, then the data
 * port at 0xcfc + (reg & 3). */
static uint32_t cfg_read(unsigned bus, unsigned dev, unsigned fn, unsigned reg, unsigned size)
{
	set_address(conf_addr(bus, dev, fn, reg));
	uint32_t v = 0;
	pci_host_pio_ops.read(&host, 4 + (reg & 3), &v, size);
	return v;
}

static void cfg_write(unsigned bus, unsigned dev, unsigned fn, unsigned reg, uint32_t v, unsigned size)
{
	set_address(conf_addr(bus, dev, fn, reg));
	pci_host_pio_ops.write(&host, 4 + (reg & 3), &v, size);
}

static void make_dev(struct pci_device *d, struct fake_bar *fb, uint64_t bar_size, bool is64)
{
	const struct pci_device_id id = { 0x1af4, 0x1042, 0x1af4, 0x42, 0x010000, 1 };
	pci_dev_init(d, &id, NULL, NULL);
	cr_assert_eq(pci_dev_add_bar(d, 0, bar_size, is64, false, &fake_bar_ops, fb), 0);
}

Test(pci_host, address_latch_is_dword_only_with_reserved_bits_zero)
{
	/* Linux's pci_check_type1: byte 0x01 to 0xcfb, then the latch must
	 * hold what is written to it. */
	uint8_t one = 1;
	pci_host_pio_ops.write(&host, 3, &one, 1);
	set_address(0x80000000u);
	uint32_t v = 0;
	pci_host_pio_ops.read(&host, 0, &v, 4);
	cr_assert_eq(v, 0x80000000u);
	set_address(0xffffffffu);
	pci_host_pio_ops.read(&host, 0, &v, 4);
	cr_assert_eq(v, 0x80fffffcu, "bits 30:24 and 1:0 are reserved");
	uint16_t w = 0;
	pci_host_pio_ops.read(&host, 0, &w, 2);
	cr_assert_eq(w, 0xffff, "word reads of the latch give all ones");
	pci_host_pio_ops.write(&host, 0, &w, 2);   /* ignored */
	pci_host_pio_ops.read(&host, 0, &v, 4);
	cr_assert_eq(v, 0x80fffffcu);
}

Test(pci_host, host_bridge_in_slot_0)
{
	cr_assert_eq(cfg_read(0, 0, 0, 0x00, 2), PCI_HOST_VENDOR);
	cr_assert_eq(cfg_read(0, 0, 0, 0x02, 2), PCI_HOST_DEVICE);
	cr_assert_eq(cfg_read(0, 0, 0, 0x00, 4), PCI_HOST_VENDOR | PCI_HOST_DEVICE << 16);
	/* what Linux's pci_sanity_check looks for: class 0x0600 (word at 0x0a) */
	cr_assert_eq(cfg_read(0, 0, 0, 0x0a, 2), 0x0600);
	cr_assert_eq(cfg_read(0, 0, 0, 0x0b, 1), 0x06);
	cr_assert_eq(cfg_read(0, 0, 0, 0x0e, 1), 0, "header type 0, single function");
	cr_assert_eq(cfg_read(0, 0, 0, 0x10, 4), 0, "no BARs");
}

Test(pci_host, absent_slots_other_buses_functions_and_disabled_read_all_ones)
{
	cr_assert_eq(cfg_read(0, 5, 0, 0, 4), 0xffffffffu, "empty slot");
	cr_assert_eq(cfg_read(0, 5, 0, 0, 2), 0xffff);
	cr_assert_eq(cfg_read(0, 31, 0, 0, 1), 0xff);
	cr_assert_eq(cfg_read(1, 0, 0, 0, 4), 0xffffffffu, "bus 1");
	cr_assert_eq(cfg_read(255, 0, 0, 0, 4), 0xffffffffu, "bus 255");
	cr_assert_eq(cfg_read(0, 0, 1, 0, 4), 0xffffffffu, "function 1");
	cr_assert_eq(cfg_read(0, 0, 7, 0, 2), 0xffff, "function 7");
	set_address(0x00000000u);   /* enable bit clear */
	uint32_t v = 0;
	pci_host_pio_ops.read(&host, 4, &v, 4);
	cr_assert_eq(v, 0xffffffffu);
	/* writes to nothing are ignored, and do not reach slot 0 */
	cfg_write(1, 0, 0, 0x3c, 0x55, 1);
	cr_assert_eq(cfg_read(0, 0, 0, 0x3c, 1), 0);
}

Test(pci_host, data_port_byte_word_dword_offsets)
{
	struct pci_device d;
	struct fake_bar fb = { 0 };
	make_dev(&d, &fb, 0x1000, false);
	int slot = pci_host_add(&host, &d);
	cr_assert_eq(slot, 1);
	unsigned s = (unsigned)slot;
	cr_assert_eq(cfg_read(0, s, 0, 0x00, 4), 0x10421af4u);
	cr_assert_eq(cfg_read(0, s, 0, 0x00, 1), 0xf4);
	cr_assert_eq(cfg_read(0, s, 0, 0x01, 1), 0x1a);
	cr_assert_eq(cfg_read(0, s, 0, 0x02, 1), 0x42);
	cr_assert_eq(cfg_read(0, s, 0, 0x03, 1), 0x10);
	cr_assert_eq(cfg_read(0, s, 0, 0x02, 2), 0x1042);
	cr_assert_eq(cfg_read(0, s, 0, 0x08, 1), 1, "revision");
	cr_assert_eq(cfg_read(0, s, 0, 0x08, 4), 0x01000001u, "class 0x010000, revision 1");
	cr_assert_eq(cfg_read(0, s, 0, 0x2c, 4), 0x00421af4u, "subsystem");
	/* byte and word writes land at the right offset */
	cfg_write(0, s, 0, 0x3c, 0xab, 1);
	cr_assert_eq(cfg_read(0, s, 0, 0x3c, 4) & 0xffff, 0x00ab, "interrupt line written, pin 0");
	cfg_write(0, s, 0, 0x04, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(cfg_read(0, s, 0, 0x04, 2), PCI_COMMAND_MEMORY);
	/* an access crossing the data dword is refused */
	uint32_t v = 0;
	set_address(conf_addr(0, s, 0, 0));
	pci_host_pio_ops.read(&host, 6, &v, 4);
	cr_assert_eq(v, 0xffffffffu);
	pci_host_pio_ops.read(&host, 7, &v, 2);
	cr_assert_eq(v & 0xffff, 0xffff);
	v = 0x12345678;
	pci_host_pio_ops.write(&host, 7, &v, 2);
	cr_assert_eq(cfg_read(0, s, 0, 0x00, 4), 0x10421af4u, "nothing written");
	/* a straddling access from the latch into the data port */
	pci_host_pio_ops.read(&host, 3, &v, 2);
	cr_assert_eq(v & 0xffff, 0xffff);
}

Test(pci_host, bars_assigned_naturally_aligned_in_the_window)
{
	struct pci_device a, b, c;
	struct fake_bar fa = { 0 }, fbb = { 0 }, fc = { 0 };
	make_dev(&a, &fa, 0x1000, false);
	make_dev(&b, &fbb, 0x8000, true);
	make_dev(&c, &fc, 0x1000, false);
	cr_assert_eq(pci_host_add(&host, &a), 1);
	cr_assert_eq(pci_host_add(&host, &b), 2);
	cr_assert_eq(pci_host_add(&host, &c), 3);
	cr_assert_eq(a.bars[0].addr, WIN_BASE);
	cr_assert_eq(b.bars[0].addr, WIN_BASE + 0x8000, "aligned to its size");
	cr_assert_eq(c.bars[0].addr, WIN_BASE + 0x10000);
	cr_assert_eq(cfg_read(0, 2, 0, 0x10, 4), (uint32_t)(WIN_BASE + 0x8000) | PCI_BAR_MEM_TYPE_64);
	cr_assert_eq(cfg_read(0, 2, 0, 0x14, 4), 0);
}

Test(pci_host, window_and_bus_full)
{
	struct pci_host small;
	pci_host_init(&small, WIN_BASE, 0x2000);
	struct pci_device a, b;
	struct fake_bar fa = { 0 }, fbb = { 0 };
	make_dev(&a, &fa, 0x2000, false);
	make_dev(&b, &fbb, 0x1000, false);
	cr_assert_eq(pci_host_add(&small, &a), 1);
	cr_assert_eq(pci_host_add(&small, &b), -1, "window full");
	pci_host_destroy(&small);

	static struct pci_device many[32];
	static struct fake_bar fm[32];
	for (unsigned i = 0; i < 31; i++) {
		make_dev(&many[i], &fm[i], 0x1000, false);
		cr_assert_eq(pci_host_add(&host, &many[i]), (int)i + 1);
	}
	make_dev(&many[31], &fm[31], 0x1000, false);
	cr_assert_eq(pci_host_add(&host, &many[31]), -1, "slots 1-31 taken");
}

static uint32_t mmio_read32(uint64_t gpa)
{
	uint32_t v = 0;
	pci_host_mmio_ops.read(&host, gpa - WIN_BASE, &v, 4);
	return v;
}

static void mmio_write32(uint64_t gpa, uint32_t v)
{
	pci_host_mmio_ops.write(&host, gpa - WIN_BASE, &v, 4);
}

Test(pci_host, window_dispatch_follows_memory_enable_and_bar_moves)
{
	struct pci_device d;
	struct fake_bar fb = { 0 };
	make_dev(&d, &fb, 0x4000, true);
	unsigned s = (unsigned)pci_host_add(&host, &d);
	uint64_t bar = d.bars[0].addr;

	cr_assert_eq(mmio_read32(bar + 0x10), 0xffffffffu, "memory space disabled: nothing decodes");
	cr_assert_eq(fb.reads, 0);
	cfg_write(0, s, 0, 0x04, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(mmio_read32(bar + 0x10), 0x55667798u);
	cr_assert_eq(fb.last_off, 0x10);
	mmio_write32(bar + 0x3ffc, 0xcafe);
	cr_assert_eq(fb.writes, 1);
	cr_assert_eq(fb.last_off, 0x3ffc);
	cr_assert_eq(fb.last_write, 0xcafe);
	/* straddling the end of the BAR: refused */
	uint64_t q = 0;
	pci_host_mmio_ops.read(&host, bar + 0x3ffc - WIN_BASE, &q, 8);
	cr_assert_eq(q, ~0ull);
	cr_assert_eq(mmio_read32(bar + 0x4000), 0xffffffffu, "past the BAR");

	/* the guest moves the BAR (decoding off, as Linux does, then on) */
	uint64_t moved = WIN_BASE + 0x100000;
	cfg_write(0, s, 0, 0x04, 0, 2);
	cfg_write(0, s, 0, 0x10, (uint32_t)moved, 4);
	cfg_write(0, s, 0, 0x14, 0, 4);
	cfg_write(0, s, 0, 0x04, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(d.bars[0].addr, moved);
	int reads = fb.reads;
	cr_assert_eq(mmio_read32(bar + 0x10), 0xffffffffu, "old address is dead");
	cr_assert_eq(fb.reads, reads);
	mmio_read32(moved + 0x20);
	cr_assert_eq(fb.reads, reads + 1);
	cr_assert_eq(fb.last_off, 0x20);

	/* moved outside the window (above 4 GiB): unreachable, not decoded */
	cfg_write(0, s, 0, 0x14, 1, 4);
	uint64_t a;
	cr_assert_not(pci_dev_bar_decoded(&d, 0, &a));
	cr_assert_eq(mmio_read32(moved + 0x20), 0xffffffffu);
}

/* ECAM (arm64): the same config space at bus << 20 | dev << 15 | fn << 12 |
 * reg on the MMIO bus. */
static uint32_t ecam_read(unsigned bus, unsigned dev, unsigned fn, unsigned reg, unsigned size)
{
	uint32_t v = 0;
	pci_host_ecam_ops.read(&host, (uint64_t)bus << 20 | dev << 15 | fn << 12 | reg, &v, size);
	return v;
}

static void ecam_write(unsigned dev, unsigned reg, uint32_t v, unsigned size)
{
	pci_host_ecam_ops.write(&host, (uint64_t)dev << 15 | reg, &v, size);
}

Test(pci_host, ecam_config_space)
{
	struct pci_device d;
	struct fake_bar fb = { 0 };
	make_dev(&d, &fb, 0x1000, false);
	cr_assert_eq(pci_host_add(&host, &d), 1);
	cr_assert_eq(ecam_read(0, 0, 0, 0x00, 4), PCI_HOST_DEVICE << 16 | PCI_HOST_VENDOR, "host bridge in slot 0");
	cr_assert_eq(ecam_read(0, 1, 0, 0x00, 4), 0x10421af4u);
	cr_assert_eq(ecam_read(0, 1, 0, 0x01, 1), 0x1a);
	cr_assert_eq(ecam_read(0, 1, 0, 0x02, 2), 0x1042);
	cr_assert_eq(ecam_read(0, 1, 0, 0x08, 4), 0x01000001u);
	/* absent slot, other function, other bus: all ones */
	cr_assert_eq(ecam_read(0, 2, 0, 0x00, 4), 0xffffffffu);
	cr_assert_eq(ecam_read(0, 1, 1, 0x00, 4), 0xffffffffu);
	cr_assert_eq(ecam_read(1, 1, 0, 0x00, 4), 0xffffffffu);
	cr_assert_eq(ecam_read(0, 1, 0, 0x00, 2) , 0x1af4);
	/* extended config space of a present device reads 0 (ends any walk) */
	cr_assert_eq(ecam_read(0, 1, 0, 0x100, 4), 0);
	cr_assert_eq(ecam_read(0, 1, 0, 0xffc, 4), 0);
	/* an access crossing a dword, or 8 bytes wide, is refused */
	cr_assert_eq(ecam_read(0, 1, 0, 0x03, 2) & 0xffff, 0xffff);
	uint64_t wide = 0;
	pci_host_ecam_ops.read(&host, 1 << 15, &wide, 8);
	cr_assert_eq(wide, ~0ull);
	ecam_write(1, 0x03, 0xffff, 2);
	cr_assert_eq(ecam_read(0, 1, 0, 0x00, 4), 0x10421af4u, "nothing written");

	/* Linux without firmware (pci-host-ecam-generic, no probe-only) sizes
	 * and reassigns every BAR itself, through ECAM: the window follows. */
	ecam_write(1, PCI_COMMAND, 0, 2);
	ecam_write(1, PCI_BASE_ADDRESS_0, 0xffffffffu, 4);
	cr_assert_eq(ecam_read(0, 1, 0, PCI_BASE_ADDRESS_0, 4), 0xfffff000u, "4 KiB BAR");
	ecam_write(1, PCI_BASE_ADDRESS_0, (uint32_t)WIN_BASE + 0x5000, 4);
	ecam_write(1, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	uint32_t v = 0;
	pci_host_mmio_ops.read(&host, 0x5010, &v, 4);
	cr_assert_eq(fb.reads, 1);
	cr_assert_eq(fb.last_off, 0x10, "the BAR decodes where Linux put it");
	/* registers 256-4095 ignore writes */
	ecam_write(1, 0x100, 0x12345678, 4);
	cr_assert_eq(ecam_read(0, 1, 0, 0x100, 4), 0);
}
