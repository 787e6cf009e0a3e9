/* PCI configuration space of one function: BAR sizing (32- and 64-bit),
 * read-only and writable bits, command register, capability list as Linux
 * walks it, device hooks. */
#include <criterion/criterion.h>
#include <string.h>

#include "devices/pci/pci_dev.h"

static struct pci_device d;
static const struct pci_device_id id = { 0x1af4, 0x1041, 0x1af4, 0x41, 0x020000, 1 };

static uint32_t rd(unsigned off, unsigned size) { return pci_dev_config_read(&d, off, size); }
static void wr(unsigned off, uint32_t v, unsigned size) { pci_dev_config_write(&d, off, v, size); }

/* Linux's __pci_read_base for one BAR: save, write ~0, read, restore. */
static uint64_t size_bar(unsigned n, uint32_t *flags)
{
	unsigned reg = PCI_BASE_ADDRESS_0 + 4 * n;
	uint32_t lo = rd(reg, 4);
	*flags = lo & 0xf;
	wr(reg, 0xffffffffu, 4);
	uint32_t szlo = rd(reg, 4);
	wr(reg, lo, 4);
	uint64_t mask = szlo & ~0xfu;
	if (!mask && !(lo & PCI_BAR_MEM_TYPE_64))
		return 0;
	if (lo & PCI_BAR_MEM_TYPE_64) {
		uint32_t hi = rd(reg + 4, 4);
		wr(reg + 4, 0xffffffffu, 4);
		uint32_t szhi = rd(reg + 4, 4);
		wr(reg + 4, hi, 4);
		mask |= (uint64_t)szhi << 32;
	} else {
		mask |= 0xffffffff00000000ull;
	}
	return ~mask + 1;
}

static void setup(void)
{
	pci_dev_init(&d, &id, NULL, NULL);
	d.window_base = 0xe0000000ull;
	d.window_size = 0x1ec00000ull;
}

TestSuite(pci_dev, .init = setup);

Test(pci_dev, identity_is_read_only)
{
	wr(PCI_VENDOR_ID, 0x12345678, 4);
	cr_assert_eq(rd(PCI_VENDOR_ID, 4), 0x10411af4u);
	wr(PCI_REVISION_ID, 0xffffffffu, 4);
	cr_assert_eq(rd(PCI_REVISION_ID, 4), 0x02000001u);
	wr(PCI_SUBSYSTEM_VENDOR_ID, 0, 4);
	cr_assert_eq(rd(PCI_SUBSYSTEM_VENDOR_ID, 4), 0x00411af4u);
	cr_assert_eq(rd(PCI_INTERRUPT_PIN, 1), 0, "no INTx");
	wr(PCI_INTERRUPT_PIN, 1, 1);
	cr_assert_eq(rd(PCI_INTERRUPT_PIN, 1), 0);
	cr_assert_eq(rd(PCI_ROM_ADDRESS, 4), 0);
	wr(PCI_ROM_ADDRESS, 0xffffffffu, 4);
	cr_assert_eq(rd(PCI_ROM_ADDRESS, 4), 0, "no expansion ROM: sizing reads 0");
	cr_assert_eq(rd(0xfc, 4), 0);
	cr_assert_eq(rd(0xfe, 4), 0xffffffffu, "past the end of config space");
}

Test(pci_dev, command_and_status)
{
	wr(PCI_COMMAND, 0xffff, 2);
	cr_assert_eq(rd(PCI_COMMAND, 2), PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_PARITY |
						 PCI_COMMAND_SERR | PCI_COMMAND_INTX_DISABLE,
		     "I/O space stays off: no I/O BARs");
	cr_assert_eq(rd(PCI_STATUS, 2), 0, "no capabilities yet");
	wr(PCI_STATUS, 0xffff, 2);
	cr_assert_eq(rd(PCI_STATUS, 2), 0);
}

Test(pci_dev, bar_sizing_32bit)
{
	cr_assert_eq(pci_dev_add_bar(&d, 2, 0x1000, false, false, NULL, NULL), 0);
	pci_dev_set_bar_addr(&d, 2, 0xe0001000ull);
	cr_assert_eq(rd(0x18, 4), 0xe0001000u);
	uint32_t flags;
	cr_assert_eq(size_bar(2, &flags), 0x1000);
	cr_assert_eq(flags, 0);
	cr_assert_eq(rd(0x18, 4), 0xe0001000u, "restored");
	cr_assert_eq(d.bars[2].addr, 0xe0001000ull);
	/* unimplemented BARs size to 0 */
	cr_assert_eq(size_bar(0, &flags), 0);
	cr_assert_eq(size_bar(5, &flags), 0);
	/* low flag bits are read-only */
	wr(0x18, 0xe0002007u, 4);
	cr_assert_eq(rd(0x18, 4), 0xe0002000u);
}

Test(pci_dev, bar_sizing_64bit_and_prefetch)
{
	cr_assert_eq(pci_dev_add_bar(&d, 0, 0x8000, true, false, NULL, NULL), 0);
	cr_assert_eq(pci_dev_add_bar(&d, 2, 1ull << 33, true, true, NULL, NULL), 0);
	pci_dev_set_bar_addr(&d, 0, 0xe0008000ull);
	pci_dev_set_bar_addr(&d, 2, 0x400000000ull);
	uint32_t flags;
	cr_assert_eq(size_bar(0, &flags), 0x8000);
	cr_assert_eq(flags, PCI_BAR_MEM_TYPE_64);
	cr_assert_eq(size_bar(2, &flags), 1ull << 33, "a BAR above 4 GiB in size");
	cr_assert_eq(flags, PCI_BAR_MEM_TYPE_64 | PCI_BAR_MEM_PREFETCH);
	cr_assert_eq(d.bars[0].addr, 0xe0008000ull);
	cr_assert_eq(d.bars[2].addr, 0x400000000ull);
	/* a 64-bit BAR moved above 4 GiB through both halves */
	wr(0x10, 0x10000000u, 4);
	wr(0x14, 0x2, 4);
	cr_assert_eq(d.bars[0].addr, 0x210000000ull);
}

Test(pci_dev, bar_declarations_checked)
{
	cr_assert_eq(pci_dev_add_bar(&d, 6, 0x1000, false, false, NULL, NULL), -1);
	cr_assert_eq(pci_dev_add_bar(&d, 5, 0x1000, true, false, NULL, NULL), -1, "64-bit needs two slots");
	cr_assert_eq(pci_dev_add_bar(&d, 0, 0x1800, false, false, NULL, NULL), -1, "not a power of two");
	cr_assert_eq(pci_dev_add_bar(&d, 0, 8, false, false, NULL, NULL), -1, "too small");
	cr_assert_eq(pci_dev_add_bar(&d, 0, 1ull << 32, false, false, NULL, NULL), -1, "too big for 32 bits");
	cr_assert_eq(pci_dev_add_bar(&d, 0, 0x1000, true, false, NULL, NULL), 0);
	cr_assert_eq(pci_dev_add_bar(&d, 1, 0x1000, false, false, NULL, NULL), -1, "upper half of BAR 0");
	cr_assert_eq(pci_dev_add_bar(&d, 0, 0x1000, false, false, NULL, NULL), -1, "taken");
}

Test(pci_dev, decode_needs_memory_enable_and_the_window)
{
	pci_dev_add_bar(&d, 0, 0x1000, false, false, NULL, NULL);
	pci_dev_set_bar_addr(&d, 0, 0xe0000000ull);
	uint64_t a = 0;
	cr_assert_not(pci_dev_bar_decoded(&d, 0, &a));
	wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	cr_assert(pci_dev_bar_decoded(&d, 0, &a));
	cr_assert_eq(a, 0xe0000000ull);
	wr(0x10, 0xfebff000u, 4);
	cr_assert(pci_dev_bar_decoded(&d, 0, &a), "last page of the window");
	wr(0x10, 0xfec00000u, 4);
	cr_assert_not(pci_dev_bar_decoded(&d, 0, &a), "IOAPIC page: outside");
	wr(0x10, 0xfffff000u, 4);   /* sizing value */
	cr_assert_not(pci_dev_bar_decoded(&d, 0, &a));
	wr(0x10, 0x1000u, 4);
	cr_assert_not(pci_dev_bar_decoded(&d, 0, &a), "in RAM");
	cr_assert_not(pci_dev_bar_decoded(&d, 3, &a), "no such BAR");
}

/* Linux's pci_find_capability / pci_find_next_capability, with its loop
 * bound (48 hops). Returns the offsets of every capability with id. */
static unsigned walk(uint8_t want, uint8_t *out, unsigned max)
{
	unsigned n = 0;
	if (!(rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST))
		return 0;
	uint8_t pos = (uint8_t)rd(PCI_CAPABILITY_LIST, 1);
	for (int ttl = 48; ttl-- && pos >= 0x40;) {
		pos &= ~3;
		uint16_t ent = (uint16_t)rd(pos, 2);
		if ((ent & 0xff) == 0xff)
			break;
		if ((ent & 0xff) == want && n < max)
			out[n++] = pos;
		pos = (uint8_t)(ent >> 8);
	}
	return n;
}

Test(pci_dev, capability_list_builder)
{
	uint8_t vcap[16] = { PCI_CAP_ID_VNDR, 0xee, 16, 1 };
	uint8_t off1 = pci_dev_add_cap(&d, vcap, sizeof(vcap));
	vcap[3] = 2;
	uint8_t off2 = pci_dev_add_cap(&d, vcap, 14);   /* odd length: next one realigned */
	uint8_t mcap[4] = { 0x05, 0, 0, 0 };
	uint8_t off3 = pci_dev_add_cap(&d, mcap, sizeof(mcap));
	cr_assert_eq(off1, 0x40);
	cr_assert_eq(off2, 0x50);
	cr_assert_eq(off3, 0x60, "dword aligned");
	cr_assert(rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	cr_assert_eq(rd(PCI_CAPABILITY_LIST, 1), 0x40);
	uint8_t found[8];
	cr_assert_eq(walk(PCI_CAP_ID_VNDR, found, 8), 2);
	cr_assert_eq(found[0], 0x40);
	cr_assert_eq(found[1], 0x50);
	cr_assert_eq(rd(found[1] + 3, 1), 2, "body copied");
	cr_assert_eq(walk(0x05, found, 8), 1);
	cr_assert_eq(rd(0x61, 1), 0, "last capability ends the list");
	/* capabilities are read-only unless made writable */
	wr(0x43, 0x77, 1);
	cr_assert_eq(rd(0x43, 1), 1);
	pci_dev_set_wmask(&d, 0x4c, 4, 0xff);
	wr(0x4c, 0xdeadbeef, 4);
	cr_assert_eq(rd(0x4c, 4), 0xdeadbeefu);
	wr(0x41, 0, 1);
	cr_assert_eq(rd(0x41, 1), 0x50, "next pointers are read-only");
}

Test(pci_dev, capability_space_runs_out)
{
	uint8_t cap[64] = { PCI_CAP_ID_VNDR };
	unsigned n = 0;
	while (pci_dev_add_cap(&d, cap, sizeof(cap)))
		n++;
	cr_assert_eq(n, 3, "0x40, 0x80, 0xc0");
	uint8_t small[4] = { PCI_CAP_ID_VNDR };
	cr_assert_eq(pci_dev_add_cap(&d, small, sizeof(small)), 0, "full");
	cr_assert_eq(pci_dev_add_cap(&d, small, 1), 0, "too short");
	uint8_t found[8];
	cr_assert_eq(walk(PCI_CAP_ID_VNDR, found, 8), 3);
}

static int writes_seen, decode_changes;
static unsigned last_off, last_size;

static void hook_read(struct pci_device *dev, unsigned off, unsigned size)
{
	if (off <= 0x48 && off + size > 0x48)
		dev->cfg[0x48] = 0x99;   /* a computed byte */
}
static void hook_write(struct pci_device *dev, unsigned off, unsigned size)
{
	(void)dev;
	writes_seen++;
	last_off = off;
	last_size = size;
}
static void hook_decode(struct pci_device *dev)
{
	(void)dev;
	decode_changes++;
}
static const struct pci_device_ops hooks = { hook_read, hook_write, hook_decode };

Test(pci_dev, hooks_see_reads_writes_and_decode_changes)
{
	pci_dev_init(&d, &id, &hooks, NULL);
	pci_dev_add_bar(&d, 0, 0x4000, true, false, NULL, NULL);
	uint8_t cap[12] = { PCI_CAP_ID_VNDR };
	pci_dev_add_cap(&d, cap, sizeof(cap));
	cr_assert_eq(rd(0x48, 1), 0x99);
	cr_assert_eq(rd(0x44, 4), 0, "not touching the computed byte");
	writes_seen = decode_changes = 0;
	wr(PCI_INTERRUPT_LINE, 5, 1);
	cr_assert_eq(writes_seen, 1);
	cr_assert_eq(last_off, PCI_INTERRUPT_LINE);
	cr_assert_eq(decode_changes, 0);
	wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(decode_changes, 1);
	wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	cr_assert_eq(decode_changes, 1, "bus master is not decoding");
	wr(0x10, 0xe0004000u, 4);
	cr_assert_eq(decode_changes, 2);
	wr(0x10, 0xe0004000u, 4);
	cr_assert_eq(decode_changes, 2, "same address: no change");
	wr(0x14, 0, 4);
	cr_assert_eq(decode_changes, 2);
	wr(0x18, 0xffffffffu, 4);   /* unimplemented BAR */
	cr_assert_eq(decode_changes, 2);
}
