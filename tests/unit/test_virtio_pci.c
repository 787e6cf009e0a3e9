/* virtio-pci modern transport driven the way a guest drives it: through
 * configuration mechanism 1 and the PCI MMIO window of a pci_host, with a
 * fake device, a fake VM for notifiers and a fake MSI host. Covers the
 * capability walk Linux does, BAR sizing, the common configuration state
 * machine, one notifier batch at DRIVER_OK at the right addresses, MSI-X
 * vectors turned into routes and irqfds, ISR read-to-clear, the PCI_CFG
 * window, BAR moves while running, reset, and hostile accesses. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/pci/pci_host.h"
#include "devices/virtio/pci.h"
#include "fake_msi_host.h"
#include "virtio_transport_fakes.h"

#define WIN_BASE 0xe0000000ull
#define WIN_SIZE 0x1ec00000ull
#define RAM (1u << 20)
#define NQ FAKE_VIRTIO_DEV_QUEUES

static const struct virtio_dev_ops fake_ops = FAKE_VIRTIO_DEV_OPS(VIRTIO_ID_BLOCK);

/* The fake VM as one device host: notifiers and the control thread from
 * the fake transport host, GSIs, routes and irqfds from the fake MSI host
 * (virtio-pci's interrupts are MSI-X only, so every irqfd is an MSI's). */
struct fake_pci_vm {
	struct fake_virtio_host *host;
	struct fake_msi_host *msi;
};

static int pv_set_notifiers(void *c, const struct host_notifier *n, unsigned count, bool assign)
{
	return fake_virtio_host_set_notifiers(((struct fake_pci_vm *)c)->host, n, count, assign);
}
static int pv_run_control(void *c, int (*fn)(void *), void *arg)
{
	return fake_virtio_host_run_control(((struct fake_pci_vm *)c)->host, fn, arg);
}
static int pv_set_irqfd(void *c, int fd, unsigned gsi, bool assign)
{
	return fake_msi_irqfd(((struct fake_pci_vm *)c)->msi, fd, gsi, assign);
}
static int pv_alloc_gsi(void *c)
{
	return fake_msi_alloc(((struct fake_pci_vm *)c)->msi);
}
static void pv_free_gsi(void *c, unsigned gsi)
{
	fake_msi_free(((struct fake_pci_vm *)c)->msi, gsi);
}
static int pv_set_msi_routes(void *c, const unsigned *gsi, const struct msi_msg *msg, unsigned n)
{
	return fake_msi_routes(((struct fake_pci_vm *)c)->msi, gsi, msg, n);
}
static const struct device_host_ops fake_pci_vm_ops = {
	.set_notifiers = pv_set_notifiers, .set_irqfd = pv_set_irqfd,   .alloc_gsi = pv_alloc_gsi,
	.free_gsi = pv_free_gsi,           .set_msi_routes = pv_set_msi_routes, .run_control = pv_run_control,
};

/* ---- the machine ---- */

static struct pci_host bus;
static struct virtio_pci vp;
static struct fake_virtio_dev dev;
static struct fake_virtio_host host;
static struct fake_msi_host msi;
static struct guest_mem mem;
static uint8_t *ram;
static unsigned slot;
static uint64_t bar;   /* where the test put BAR 0 */

static int gsi_of(int fd) { return fake_msi_gsi_of(&msi, fd); }

static void set_address(unsigned reg)
{
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);
	pci_host_pio_ops.write(&bus, 0, &a, 4);
}
static uint32_t cfg_rd(unsigned reg, unsigned size)
{
	set_address(reg);
	uint32_t v = 0;
	pci_host_pio_ops.read(&bus, 4 + (reg & 3), &v, size);
	return v;
}
static void cfg_wr(unsigned reg, uint32_t v, unsigned size)
{
	set_address(reg);
	pci_host_pio_ops.write(&bus, 4 + (reg & 3), &v, size);
}

static uint64_t mmio_rd(uint64_t off, unsigned size)
{
	uint64_t v = 0;
	pci_host_mmio_ops.read(&bus, bar + off - WIN_BASE, &v, size);
	return v;
}
static void mmio_wr(uint64_t off, uint64_t v, unsigned size)
{
	pci_host_mmio_ops.write(&bus, bar + off - WIN_BASE, &v, size);
}

#define C(f) (VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_##f)

static void setup(void)
{
	memset(&dev, 0, sizeof(dev));
	memset(&host, 0, sizeof(host));
	memset(&msi, 0, sizeof(msi));
	msi.next_gsi = 24;
	memset(&mem, 0, sizeof(mem));
	ram = calloc(1, RAM);
	guest_mem_add_region(&mem, 0, RAM, ram);
	pci_host_init(&bus, WIN_BASE, WIN_SIZE);
	static struct fake_pci_vm pv = { &host, &msi };
	cr_assert_eq(virtio_pci_init(&vp, "fake0", &fake_ops, &dev, &mem, &(struct device_host){ &fake_pci_vm_ops, &pv }),
		     0);
	int s = pci_host_add(&bus, &vp.pci);
	cr_assert_eq(s, 1);
	cr_assert_eq(vp.msix.devid, 1 << 3, "MSIs carry the requester ID of bus 0, slot 1, function 0");
	slot = (unsigned)s;
	bar = vp.pci.bars[0].addr;
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);   /* pci_enable_device + set_master */
}

static void teardown(void)
{
	virtio_pci_destroy(&vp);
	cr_assert_eq(msi.n_irqfds, 0, "every irqfd removed");
	cr_assert_eq(msi.frees, NQ + 1, "every GSI given back");
	cr_assert_eq(host.assigned, 0, "every notifier removed");
	pci_host_destroy(&bus);
	free(ram);
}

TestSuite(virtio_pci, .init = setup, .fini = teardown);

/* ---- what Linux's probe does ---- */

struct found {
	uint8_t cap[6];      /* offset of the vendor cap of each cfg_type, 0 if none */
	uint8_t msix;
};

static struct found walk_caps(void)
{
	struct found f = { { 0 }, 0 };
	cr_assert(cfg_rd(PCI_STATUS, 2) & PCI_STATUS_CAP_LIST);
	uint8_t pos = (uint8_t)cfg_rd(PCI_CAPABILITY_LIST, 1);
	for (int ttl = 48; ttl-- && pos >= 0x40;) {
		pos &= ~3;
		uint16_t ent = (uint16_t)cfg_rd(pos, 2);
		uint8_t id = ent & 0xff;
		if (id == 0xff)
			break;
		if (id == PCI_CAP_ID_VNDR) {
			uint8_t type = (uint8_t)cfg_rd(pos + VIRTIO_PCI_CAP_CFG_TYPE, 1);
			uint8_t b = (uint8_t)cfg_rd(pos + VIRTIO_PCI_CAP_BAR, 1);
			cr_assert_lt(b, 6);
			if (type < 6 && !f.cap[type])
				f.cap[type] = pos;
		} else if (id == PCI_CAP_ID_MSIX) {
			f.msix = pos;
		}
		pos = (uint8_t)(ent >> 8);
	}
	return f;
}

Test(virtio_pci, identity_and_bar_sizing)
{
	cr_assert_eq(cfg_rd(PCI_VENDOR_ID, 2), 0x1af4);
	cr_assert_eq(cfg_rd(PCI_DEVICE_ID, 2), 0x1040 + VIRTIO_ID_BLOCK);
	cr_assert_eq(cfg_rd(PCI_REVISION_ID, 1), 1);
	cr_assert_eq(cfg_rd(PCI_SUBSYSTEM_VENDOR_ID, 2), 0x1af4);
	cr_assert_geq(cfg_rd(PCI_SUBSYSTEM_ID, 2), 0x40);
	cr_assert_eq(cfg_rd(PCI_CLASS_DEVICE, 2), 0x0100, "storage, as QEMU's virtio-blk");
	cr_assert_eq(cfg_rd(PCI_INTERRUPT_PIN, 1), 0, "no INTx");

	/* __pci_read_base: decoding off, ~0 to both halves, read back, restore */
	cfg_wr(PCI_COMMAND, 0, 2);
	uint32_t lo = cfg_rd(0x10, 4), hi = cfg_rd(0x14, 4);
	cr_assert_eq(lo & 0xf, PCI_BAR_MEM_TYPE_64, "64-bit, non-prefetchable memory");
	cr_assert_eq(((uint64_t)hi << 32 | (lo & ~0xfu)), bar);
	cr_assert_geq(bar, WIN_BASE);
	cfg_wr(0x10, 0xffffffffu, 4);
	cfg_wr(0x14, 0xffffffffu, 4);
	uint64_t mask = (uint64_t)cfg_rd(0x14, 4) << 32 | (cfg_rd(0x10, 4) & ~0xfu);
	cr_assert_eq(~mask + 1, VIRTIO_PCI_BAR_SIZE);
	cfg_wr(0x10, lo, 4);
	cfg_wr(0x14, hi, 4);
	for (unsigned reg = 0x18; reg < 0x28; reg += 4) {
		cfg_wr(reg, 0xffffffffu, 4);
		cr_assert_eq(cfg_rd(reg, 4), 0, "BAR at 0x%x unimplemented", reg);
	}
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(vp.pci.bars[0].addr, bar);
	cr_assert_eq(mmio_rd(C(NUMQ), 2), NQ, "decodes again after sizing");
}

Test(virtio_pci, capability_chain_as_linux_walks_it)
{
	struct found f = walk_caps();
	static const uint32_t want_off[6] = { 0, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_NOTIFY_OFF, VIRTIO_PCI_ISR_OFF,
					      VIRTIO_PCI_DEVICE_OFF, 0 };
	for (unsigned type = 1; type <= 5; type++) {
		cr_assert_neq(f.cap[type], 0, "virtio cap type %u present", type);
		uint8_t pos = f.cap[type];
		cr_assert_eq(cfg_rd(pos + VIRTIO_PCI_CAP_BAR, 1), 0);
		bool longer = type == VIRTIO_PCI_CAP_NOTIFY_CFG || type == VIRTIO_PCI_CAP_PCI_CFG;
		cr_assert_eq(cfg_rd(pos + 2, 1), longer ? 20 : 16, "cap_len");
		if (type == VIRTIO_PCI_CAP_PCI_CFG)
			continue;
		uint32_t off = cfg_rd(pos + VIRTIO_PCI_CAP_OFFSET, 4), len = cfg_rd(pos + VIRTIO_PCI_CAP_LENGTH, 4);
		cr_assert_eq(off, want_off[type]);
		cr_assert_geq(len, 1);
		cr_assert_leq((uint64_t)off + len, VIRTIO_PCI_BAR_SIZE, "inside BAR 0");
	}
	/* vp_modern_map_capability minimums */
	cr_assert_geq(cfg_rd(f.cap[1] + VIRTIO_PCI_CAP_LENGTH, 4), 0x3c, "whole modern common cfg");
	uint8_t n = f.cap[VIRTIO_PCI_CAP_NOTIFY_CFG];
	uint32_t mult = cfg_rd(n + VIRTIO_PCI_NOTIFY_CAP_MULT, 4);
	cr_assert_eq(mult, 4);
	for (unsigned q = 0; q < NQ; q++) {
		mmio_wr(C(Q_SELECT), q, 2);
		uint32_t noff = (uint32_t)mmio_rd(C(Q_NOFF), 2);
		cr_assert_leq(noff * mult + 2, cfg_rd(n + VIRTIO_PCI_CAP_LENGTH, 4), "notify address inside the cap");
	}

	cr_assert_neq(f.msix, 0);
	uint16_t ctrl = (uint16_t)cfg_rd(f.msix + PCI_MSIX_FLAGS, 2);
	cr_assert_eq((ctrl & PCI_MSIX_FLAGS_QSIZE) + 1, NQ + 1, "one vector per queue plus config");
	cr_assert_eq(ctrl & (PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL), 0);
	cr_assert_eq(cfg_rd(f.msix + PCI_MSIX_TABLE, 4), VIRTIO_PCI_MSIX_TABLE_OFF | 0);
	cr_assert_eq(cfg_rd(f.msix + PCI_MSIX_PBA, 4), VIRTIO_PCI_MSIX_PBA_OFF | 0);
	/* only the enable and mask bits of message control are writable */
	cfg_wr(f.msix + PCI_MSIX_FLAGS, 0xffff, 2);
	cr_assert_eq(cfg_rd(f.msix + PCI_MSIX_FLAGS, 2), 0xc000 | NQ);
	cr_assert(msix_enabled(&vp.msix));
	cfg_wr(f.msix, 0xffffffffu, 4);
	cr_assert_eq(cfg_rd(f.msix, 2) & 0xff, PCI_CAP_ID_MSIX, "id and next are read-only");
}

/* ---- driver sequence ---- */

static const uint8_t ALL_OK = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK |
			      VIRTIO_STATUS_DRIVER_OK;

static void negotiate(uint32_t lo, uint32_t hi)
{
	mmio_wr(C(STATUS), 0, 1);
	cr_assert_eq(mmio_rd(C(STATUS), 1), 0, "reset reads back 0 at once");
	mmio_wr(C(STATUS), VIRTIO_STATUS_ACKNOWLEDGE, 1);
	mmio_wr(C(STATUS), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER, 1);
	mmio_wr(C(GFSELECT), 0, 4);
	mmio_wr(C(GF), lo, 4);
	mmio_wr(C(GFSELECT), 1, 4);
	mmio_wr(C(GF), hi, 4);
	mmio_wr(C(STATUS), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK, 1);
}

static uint8_t msix_cap(void)
{
	return walk_caps().msix;
}

/* pci_alloc_irq_vectors + request_irq for every vector: enable with the
 * function masked, program the entries, unmask them, clear the mask. */
static void enable_msix(void)
{
	uint8_t cap = msix_cap();
	cfg_wr(cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	for (unsigned v = 0; v < NQ + 1; v++) {
		uint64_t e = VIRTIO_PCI_MSIX_TABLE_OFF + v * MSIX_ENTRY_SIZE;
		mmio_wr(e + MSIX_ENTRY_ADDR_LO, 0xfee00000u, 4);
		mmio_wr(e + MSIX_ENTRY_ADDR_HI, 0, 4);
		mmio_wr(e + MSIX_ENTRY_DATA, 0x4020 + v, 4);
		mmio_wr(e + MSIX_ENTRY_CTRL, 0, 4);
	}
	cfg_wr(cap + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
}

static void setup_queue(unsigned q, uint64_t base, uint16_t vector)
{
	mmio_wr(C(Q_SELECT), q, 2);
	cr_assert_eq(mmio_rd(C(Q_SIZE), 2), 256, "queue_size reads the maximum");
	cr_assert_eq(mmio_rd(C(Q_ENABLE), 2), 0);
	mmio_wr(C(Q_SIZE), 16, 2);
	mmio_wr(C(Q_MSIX), vector, 2);
	cr_assert_eq(mmio_rd(C(Q_MSIX), 2), vector);
	/* vp_iowrite64_twopart: low then high */
	mmio_wr(C(Q_DESCLO), (uint32_t)base, 4);
	mmio_wr(C(Q_DESCHI), (uint32_t)(base >> 32), 4);
	mmio_wr(C(Q_AVAILLO), (uint32_t)base + 0x1000, 4);
	mmio_wr(C(Q_AVAILHI), 0, 4);
	mmio_wr(C(Q_USEDLO), (uint32_t)base + 0x2000, 4);
	mmio_wr(C(Q_USEDHI), 0, 4);
	cr_assert_eq(mmio_rd(C(Q_NOFF), 2), q);
	mmio_wr(C(Q_ENABLE), 1, 2);
	cr_assert_eq(mmio_rd(C(Q_ENABLE), 2), 1);
}

static void bring_up(void)
{
	negotiate((1u << 5) | (1u << VIRTIO_F_EVENT_IDX), 1);
	enable_msix();
	mmio_wr(C(MSIX), 0, 2);
	cr_assert_eq(mmio_rd(C(MSIX), 2), 0, "config vector accepted");
	setup_queue(0, 0x10000, 1);
	setup_queue(1, 0x20000, 2);
	mmio_wr(C(STATUS), ALL_OK, 1);
}

Test(virtio_pci, feature_negotiation)
{
	mmio_wr(C(DFSELECT), 0, 4);
	uint32_t lo = (uint32_t)mmio_rd(C(DF), 4);
	cr_assert(lo & (1u << 5));
	cr_assert(lo & (1u << VIRTIO_F_EVENT_IDX));
	cr_assert(lo & (1u << VIRTIO_F_INDIRECT_DESC));
	mmio_wr(C(DFSELECT), 1, 4);
	cr_assert_eq(mmio_rd(C(DF), 4), 1, "VERSION_1");
	mmio_wr(C(DFSELECT), 2, 4);
	cr_assert_eq(mmio_rd(C(DF), 4), 0);
	cr_assert_eq(mmio_rd(C(DFSELECT), 4), 2);

	negotiate(1u << 5, 0);
	cr_assert_eq(mmio_rd(C(STATUS), 1) & VIRTIO_STATUS_FEATURES_OK, 0, "no VERSION_1");
	negotiate(1u << 6, 1);
	cr_assert_eq(mmio_rd(C(STATUS), 1) & VIRTIO_STATUS_FEATURES_OK, 0, "bit 6 not offered");
	negotiate(1u << 5, 1);
	cr_assert(mmio_rd(C(STATUS), 1) & VIRTIO_STATUS_FEATURES_OK);
	mmio_wr(C(GFSELECT), 0, 4);
	cr_assert_eq(mmio_rd(C(GF), 4), 1u << 5, "driver features read back");
	mmio_wr(C(GF), 0, 4);
	cr_assert_eq(vp.t.driver_features, (1ull << 5) | (1ull << 32), "frozen after FEATURES_OK");
	cr_assert_eq(mmio_rd(C(NUMQ), 2), NQ);
	cr_assert_eq(mmio_rd(C(CFGGENERATION), 1), 0);
}

Test(virtio_pci, driver_ok_one_notifier_batch_at_the_notify_addresses)
{
	bring_up();
	cr_assert_eq(mmio_rd(C(STATUS), 1), ALL_OK);
	cr_assert_eq(dev.activations, 1);
	cr_assert_eq(dev.n_active, 2);
	cr_assert(dev.features & (1ull << VIRTIO_F_EVENT_IDX));
	cr_assert_eq(host.batches, 1, "one batch for the device");
	cr_assert_eq(host.assigned, 2, "one notifier per queue");
	for (unsigned q = 0; q < NQ; q++) {
		const struct host_notifier *n = &host.last[q];
		cr_assert_eq(n->addr, bar + VIRTIO_PCI_NOTIFY_OFF + 4 * q);
		cr_assert_eq(n->len, 2, "Linux's iowrite16");
		cr_assert_not(n->pio);
		cr_assert(n->datamatch);
		cr_assert_eq(n->data, q);
		cr_assert_eq(n->fd, vp.t.queues[q].kick_fd);
	}
	/* queue configuration is frozen once enabled */
	mmio_wr(C(Q_SELECT), 0, 2);
	mmio_wr(C(Q_DESCLO), 0x50000, 4);
	cr_assert_eq(vp.t.queues[0].desc, 0x10000);
	mmio_wr(C(Q_SIZE), 32, 2);
	cr_assert_eq(mmio_rd(C(Q_SIZE), 2), 16);
}

Test(virtio_pci, notify_through_the_exit_path)
{
	negotiate(0, 1);
	setup_queue(0, 0x10000, MSIX_NO_VECTOR);
	uint64_t v;
	mmio_wr(VIRTIO_PCI_NOTIFY_OFF, 0, 2);   /* before DRIVER_OK: the device is not running */
	cr_assert_eq(read(vp.t.queues[0].kick_fd, &v, 8), -1);
	mmio_wr(C(STATUS), ALL_OK, 1);
	cr_assert_eq(read(vp.t.queues[0].kick_fd, &v, 8), 8, "post-activation kick");
	mmio_wr(VIRTIO_PCI_NOTIFY_OFF, 0, 2);
	cr_assert_eq(read(vp.t.queues[0].kick_fd, &v, 8), 8, "exit-path notify forwarded");
	mmio_wr(VIRTIO_PCI_NOTIFY_OFF + 4, 1, 4);   /* 32-bit notify of queue 1: also forwarded */
	cr_assert_eq(read(vp.t.queues[1].kick_fd, &v, 8), 8);
	mmio_wr(VIRTIO_PCI_NOTIFY_OFF + 2, 0, 2);   /* between queue slots */
	mmio_wr(VIRTIO_PCI_NOTIFY_OFF + 4 * 500, 0, 2);   /* no such queue */
	mmio_wr(VIRTIO_PCI_NOTIFY_OFF, 0, 1);   /* byte write */
	cr_assert_eq(read(vp.t.queues[0].kick_fd, &v, 8), -1);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_NOTIFY_OFF, 2), 0, "notify reads 0");
}

Test(virtio_pci, msix_vectors_become_routes_and_irqfds)
{
	bring_up();
	cr_assert_eq(msi.n_irqfds, 3, "two queues and config");
	int g_cfg = gsi_of(vp.config_fd), g_q0 = gsi_of(vp.t.queues[0].call_fd), g_q1 = gsi_of(vp.t.queues[1].call_fd);
	cr_assert_eq(g_cfg, (int)vp.msix.vectors[0].gsi);
	cr_assert_eq(g_q0, (int)vp.msix.vectors[1].gsi);
	cr_assert_eq(g_q1, (int)vp.msix.vectors[2].gsi);
	cr_assert(msi.routed[g_q1]);
	cr_assert_eq(msi.msg[g_q1].addr, 0xfee00000u);
	cr_assert_eq(msi.msg[g_q1].data, 0x4022);

	/* the device interrupts through the queue's call eventfd = the irqfd */
	dev.irq->queue(dev.irq, 1);
	uint64_t v;
	cr_assert_eq(read(vp.t.queues[1].call_fd, &v, 8), 8);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF, 1), 0, "no ISR bit for queues with MSI-X on");
	dev.irq->queue(dev.irq, 99);   /* out of range: ignored */

	/* masking vector 2 detaches queue 1; a signal shows in the PBA */
	uint64_t e2 = VIRTIO_PCI_MSIX_TABLE_OFF + 2 * MSIX_ENTRY_SIZE;
	mmio_wr(e2 + MSIX_ENTRY_CTRL, 1, 4);
	cr_assert_eq(gsi_of(vp.t.queues[1].call_fd), -1);
	dev.irq->queue(dev.irq, 1);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_MSIX_PBA_OFF, 8), 1u << 2);
	mmio_wr(e2 + MSIX_ENTRY_CTRL, 0, 4);
	cr_assert_eq(gsi_of(vp.t.queues[1].call_fd), g_q1, "reattached: KVM delivers the pending one");
	cr_assert_eq(mmio_rd(e2 + MSIX_ENTRY_DATA, 4), 0x4022, "table reads back");

	/* both queues on one vector */
	mmio_wr(C(Q_SELECT), 1, 2);
	mmio_wr(C(Q_MSIX), 1, 2);
	cr_assert_eq(gsi_of(vp.t.queues[1].call_fd), g_q0);
	cr_assert_eq(gsi_of(vp.t.queues[0].call_fd), g_q0);
	/* a vector beyond the table reads back as NO_VECTOR */
	mmio_wr(C(Q_MSIX), 3, 2);
	cr_assert_eq(mmio_rd(C(Q_MSIX), 2), MSIX_NO_VECTOR);
	cr_assert_eq(gsi_of(vp.t.queues[1].call_fd), -1);
	mmio_wr(C(MSIX), 0x1234, 2);
	cr_assert_eq(mmio_rd(C(MSIX), 2), MSIX_NO_VECTOR);
}

Test(virtio_pci, isr_read_clears_and_config_interrupt)
{
	bring_up();
	dev.irq->config(dev.irq);
	uint64_t v;
	cr_assert_eq(read(vp.config_fd, &v, 8), 8, "config eventfd signalled (irqfd on the config vector)");
	cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF + 1, 1), 0, "other ISR bytes");
	cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF, 1), 0, "read clears");
	mmio_wr(VIRTIO_PCI_ISR_OFF, 0xff, 1);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF, 1), 0, "read-only");

	/* without MSI-X a queue interrupt sets ISR bit 0 */
	cfg_wr(msix_cap() + PCI_MSIX_FLAGS, 0, 2);
	cr_assert_eq(msi.n_irqfds, 0);
	dev.irq->queue(dev.irq, 0);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF, 4), VIRTIO_PCI_ISR_QUEUE);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF, 4), 0);

	dev.irq->needs_reset(dev.irq);
	cr_assert(mmio_rd(C(STATUS), 1) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG);
}

/* What vhost-net signals itself: the call eventfd while MSI-X is on (an
 * irqfd on the vector), none while off (the ISR bit must be set first). */
Test(virtio_pci, queue_notifier_is_the_call_eventfd_with_msix)
{
	bring_up();
	cr_assert_not_null(dev.irq->queue_notifier);
	cr_assert_eq(dev.irq->queue_notifier(dev.irq, 0), vp.t.queues[0].call_fd);
	cr_assert_eq(dev.irq->queue_notifier(dev.irq, 1), vp.t.queues[1].call_fd);
	cr_assert_eq(dev.irq->queue_notifier(dev.irq, NQ), -1, "out of range");
	cfg_wr(msix_cap() + PCI_MSIX_FLAGS, 0, 2);
	cr_assert_eq(dev.irq->queue_notifier(dev.irq, 0), -1, "MSI-X off");
}

Test(virtio_pci, device_config_region)
{
	dev.config[0] = 0x11;
	dev.config[7] = 0x77;
	cr_assert_eq(mmio_rd(VIRTIO_PCI_DEVICE_OFF + 7, 1), 0x77);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_DEVICE_OFF, 8), 0x7700000000000011ull);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_DEVICE_OFF + 6, 4), 0, "past the end of config reads 0");
	mmio_wr(VIRTIO_PCI_DEVICE_OFF + 2, 0xabcd, 2);
	cr_assert_eq(dev.config[2], 0xcd);
	mmio_wr(VIRTIO_PCI_DEVICE_OFF + 7, 0xabcd, 2);
	cr_assert_eq(dev.config[7], 0x77, "past the end: ignored");
	cr_assert_eq(mmio_rd(VIRTIO_PCI_DEVICE_OFF + 0xff0, 4), 0);
}

Test(virtio_pci, reset_removes_notifiers_vectors_and_restores_sizes)
{
	bring_up();
	mmio_wr(C(STATUS), 0, 1);
	cr_assert_eq(dev.resets, 1);
	cr_assert_eq(host.assigned, 0, "notifiers removed");
	cr_assert_eq(host.batches, 2, "in one batch");
	cr_assert_eq(mmio_rd(C(STATUS), 1), 0);
	cr_assert_eq(mmio_rd(C(MSIX), 2), MSIX_NO_VECTOR);
	cr_assert_eq(msi.n_irqfds, 0, "no vector in use after reset");
	for (unsigned q = 0; q < NQ; q++) {
		mmio_wr(C(Q_SELECT), q, 2);
		cr_assert_eq(mmio_rd(C(Q_SIZE), 2), 256);
		cr_assert_eq(mmio_rd(C(Q_ENABLE), 2), 0);
		cr_assert_eq(mmio_rd(C(Q_MSIX), 2), MSIX_NO_VECTOR);
		cr_assert_eq(mmio_rd(C(Q_DESCLO), 4), 0);
	}
	cr_assert(msix_enabled(&vp.msix), "MSI-X is PCI state: a virtio reset keeps it");
	/* and it comes up again, the MSI-X table as the last driver left it */
	negotiate(0, 1);
	setup_queue(0, 0x10000, 1);
	setup_queue(1, 0x20000, 2);
	cr_assert_eq(msi.n_irqfds, 2, "config vector was reset with the device");
	mmio_wr(C(MSIX), 0, 2);
	cr_assert_eq(msi.n_irqfds, 3);
	mmio_wr(C(STATUS), ALL_OK, 1);
	cr_assert_eq(dev.activations, 2);
	cr_assert_eq(host.assigned, 2);
}

Test(virtio_pci, bar_moved_while_running_moves_the_notifiers)
{
	bring_up();
	cr_assert_eq(host.batches, 1);
	/* decoding off: notifiers go */
	cfg_wr(PCI_COMMAND, 0, 2);
	cr_assert_eq(host.assigned, 0);
	cr_assert_eq(host.batches, 2);
	/* the BAR moves while off: nothing registered */
	uint64_t moved = WIN_BASE + 0x400000;
	cfg_wr(0x10, (uint32_t)moved | PCI_BAR_MEM_TYPE_64, 4);
	cfg_wr(0x14, 0, 4);
	cr_assert_eq(host.batches, 2);
	/* decoding on: one batch at the new address */
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(host.batches, 3);
	cr_assert_eq(host.assigned, 2);
	cr_assert_eq(host.last[1].addr, moved + VIRTIO_PCI_NOTIFY_OFF + 4);
	bar = moved;
	cr_assert_eq(mmio_rd(C(STATUS), 1), ALL_OK, "registers at the new address");

	/* sizing with decoding on (a careless guest): the BAR leaves the window
	 * and comes back; the notifiers follow */
	cfg_wr(0x10, 0xffffffffu, 4);
	cr_assert_eq(host.assigned, 0, "0xffff8000 overlaps the IOAPIC: not decoded");
	cfg_wr(0x10, (uint32_t)moved, 4);
	cr_assert_eq(host.assigned, 2);
	cr_assert_eq(host.last[0].addr, moved + VIRTIO_PCI_NOTIFY_OFF);
	cr_assert_eq(dev.resets, 0, "the device kept running");
}

Test(virtio_pci, driver_ok_with_decoding_off_registers_later)
{
	negotiate(0, 1);
	setup_queue(0, 0x10000, MSIX_NO_VECTOR);
	/* DRIVER_OK through the PCI_CFG window with memory decoding off */
	cfg_wr(PCI_COMMAND, 0, 2);
	uint8_t cap = walk_caps().cap[VIRTIO_PCI_CAP_PCI_CFG];
	cfg_wr(cap + VIRTIO_PCI_CAP_BAR, 0, 1);
	cfg_wr(cap + VIRTIO_PCI_CAP_OFFSET, C(STATUS), 4);
	cfg_wr(cap + VIRTIO_PCI_CAP_LENGTH, 1, 4);
	cfg_wr(cap + VIRTIO_PCI_CFG_CAP_DATA, ALL_OK, 1);
	cr_assert_eq(dev.activations, 1);
	cr_assert_eq(host.assigned, 0, "BAR not decoded: nothing to register yet");
	cr_assert_eq(cfg_rd(cap + VIRTIO_PCI_CFG_CAP_DATA, 1), ALL_OK, "status read through the window");
	cfg_wr(PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	cr_assert_eq(host.assigned, 1);
	cr_assert_eq(host.last[0].addr, bar + VIRTIO_PCI_NOTIFY_OFF);
}

Test(virtio_pci, pci_cfg_window_checks_its_fields)
{
	uint8_t cap = walk_caps().cap[VIRTIO_PCI_CAP_PCI_CFG];
	cfg_wr(cap + VIRTIO_PCI_CAP_BAR, 0, 1);
	cfg_wr(cap + VIRTIO_PCI_CAP_OFFSET, C(NUMQ), 4);
	cfg_wr(cap + VIRTIO_PCI_CAP_LENGTH, 2, 4);
	cr_assert_eq(cfg_rd(cap + VIRTIO_PCI_CFG_CAP_DATA, 4) & 0xffff, NQ);
	cr_assert_eq(cfg_rd(cap + VIRTIO_PCI_CAP_OFFSET, 4), C(NUMQ), "fields read back");
	/* bad BAR, length, alignment, offset: no access */
	cfg_wr(cap + VIRTIO_PCI_CFG_CAP_DATA, 0, 4);
	cfg_wr(cap + VIRTIO_PCI_CAP_BAR, 3, 1);
	cr_assert_eq(cfg_rd(cap + VIRTIO_PCI_CFG_CAP_DATA, 4), 0);
	cfg_wr(cap + VIRTIO_PCI_CAP_BAR, 0, 1);
	cfg_wr(cap + VIRTIO_PCI_CAP_LENGTH, 3, 4);
	cr_assert_eq(cfg_rd(cap + VIRTIO_PCI_CFG_CAP_DATA, 4), 0);
	cfg_wr(cap + VIRTIO_PCI_CAP_LENGTH, 4, 4);
	cfg_wr(cap + VIRTIO_PCI_CAP_OFFSET, 0x13, 4);
	cr_assert_eq(cfg_rd(cap + VIRTIO_PCI_CFG_CAP_DATA, 4), 0);
	cfg_wr(cap + VIRTIO_PCI_CAP_OFFSET, 0xfffffffcu, 4);
	cr_assert_eq(cfg_rd(cap + VIRTIO_PCI_CFG_CAP_DATA, 4), 0);
	cfg_wr(cap + VIRTIO_PCI_CAP_OFFSET, VIRTIO_PCI_BAR_SIZE - 4, 4);
	cr_assert_eq(cfg_rd(cap + VIRTIO_PCI_CFG_CAP_DATA, 4), 0, "unused BAR space");
	/* the type and the window's own header stay read-only */
	cfg_wr(cap + VIRTIO_PCI_CAP_CFG_TYPE, 1, 1);
	cr_assert_eq(cfg_rd(cap + VIRTIO_PCI_CAP_CFG_TYPE, 1), VIRTIO_PCI_CAP_PCI_CFG);
}

Test(virtio_pci, hostile_accesses_never_crash)
{
	/* common cfg: wrong widths, unaligned, reserved */
	cr_assert_eq(mmio_rd(C(NUMQ), 4), 0, "32-bit read of a 16-bit field");
	cr_assert_eq(mmio_rd(C(NUMQ) + 1, 1), 0);
	cr_assert_eq(mmio_rd(C(DF), 2), 0);
	cr_assert_eq(mmio_rd(C(DF) + 1, 4), 0);
	cr_assert_eq(mmio_rd(C(STATUS), 2), 0);
	cr_assert_eq(mmio_rd(0x3c, 4), 0);
	cr_assert_eq(mmio_rd(0xffc, 4), 0);
	cr_assert_eq(mmio_rd(0xffe, 8), 0, "straddles common and ISR");
	mmio_wr(C(STATUS), VIRTIO_STATUS_ACKNOWLEDGE, 4);   /* wrong width: ignored */
	cr_assert_eq(mmio_rd(C(STATUS), 1), 0);
	mmio_wr(C(Q_DESCLO) + 2, 0x12345678, 4);
	mmio_wr(C(Q_RESET), 1, 2);
	mmio_wr(C(NUMQ), 77, 2);
	cr_assert_eq(mmio_rd(C(NUMQ), 2), NQ);
	mmio_wr(C(CFGGENERATION), 9, 1);
	cr_assert_eq(mmio_rd(C(CFGGENERATION), 1), 0);

	/* a giant queue_select */
	mmio_wr(C(Q_SELECT), 0xffff, 2);
	cr_assert_eq(mmio_rd(C(Q_SELECT), 2), 0xffff);
	cr_assert_eq(mmio_rd(C(Q_SIZE), 2), 0, "no such queue");
	cr_assert_eq(mmio_rd(C(Q_NOFF), 2), 0);
	cr_assert_eq(mmio_rd(C(Q_MSIX), 2), MSIX_NO_VECTOR);
	cr_assert_eq(mmio_rd(C(Q_DESCHI), 4), 0);
	mmio_wr(C(Q_SIZE), 16, 2);
	mmio_wr(C(Q_ENABLE), 1, 2);
	mmio_wr(C(Q_MSIX), 0, 2);
	mmio_wr(C(Q_DESCLO), 0x1000, 8);
	mmio_wr(C(Q_SELECT), NQ, 2);
	cr_assert_eq(mmio_rd(C(Q_SIZE), 2), 0, "first queue past the end");

	/* a queue_size above the maximum, then DRIVER_OK: NEEDS_RESET, no crash */
	negotiate(0, 1);
	mmio_wr(C(Q_SELECT), 0, 2);
	mmio_wr(C(Q_SIZE), 4096, 2);
	mmio_wr(C(Q_DESCLO), 0x10000, 8);   /* as one qword */
	cr_assert_eq(vp.t.queues[0].desc, 0x10000);
	mmio_wr(C(Q_ENABLE), 1, 2);
	mmio_wr(C(STATUS), ALL_OK, 1);
	cr_assert(mmio_rd(C(STATUS), 1) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(dev.activations, 0);
	cr_assert_eq(host.assigned, 0);

	/* BAR: unused space, odd widths everywhere */
	cr_assert_eq(mmio_rd(0x6000, 4), 0);
	cr_assert_eq(mmio_rd(0x7ff8, 8), 0);
	mmio_wr(0x7ffc, 0xffffffff, 4);
	mmio_wr(VIRTIO_PCI_MSIX_PBA_OFF, ~0ull, 8);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_MSIX_PBA_OFF, 8), 0, "PBA is read-only");
	cr_assert_eq(mmio_rd(VIRTIO_PCI_MSIX_TABLE_OFF + 1, 2), 0);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_MSIX_TABLE_OFF + 3 * MSIX_ENTRY_SIZE, 4), 0, "past the table");
	mmio_wr(VIRTIO_PCI_MSIX_TABLE_OFF + 0xff8, ~0ull, 8);
	for (uint64_t off = 0; off < VIRTIO_PCI_BAR_SIZE; off += 0x7f) {
		mmio_rd(off, 1);
		mmio_rd(off, 2);
		mmio_rd(off, 8);
	}
	/* past the BAR: nothing decodes there */
	cr_assert_eq(mmio_rd(VIRTIO_PCI_BAR_SIZE, 4), 0xffffffffu);
	mmio_wr(C(STATUS), 0, 1);
	cr_assert_eq(mmio_rd(C(STATUS), 1), 0);
}

/* Spec 2.1.2: with DRIVER_OK set, DEVICE_NEEDS_RESET comes with a
 * configuration change notification, also when the queue setup itself is
 * what the device refuses at DRIVER_OK (found by tests/e2e/hostile_guest). */
Test(virtio_pci, bad_queue_setup_at_driver_ok_sends_a_config_interrupt)
{
	static const struct {
		uint16_t size;
		uint64_t desc;
	} bad[] = { { 0, 0x10000 }, { 3, 0x10000 }, { 16, 0x7ff000000000ull }, { 16, 0x10008 } };
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		mmio_wr(C(STATUS), 0, 1);
		uint64_t junk;
		while (read(vp.config_fd, &junk, 8) == 8)
			;
		negotiate(0, 1);
		mmio_wr(C(Q_SELECT), 0, 2);
		mmio_wr(C(Q_SIZE), bad[i].size, 2);
		mmio_wr(C(Q_DESCLO), bad[i].desc, 8);
		mmio_wr(C(Q_AVAILLO), 0x11000, 8);
		mmio_wr(C(Q_USEDLO), 0x12000, 8);
		mmio_wr(C(Q_ENABLE), 1, 2);
		mmio_wr(C(STATUS), ALL_OK, 1);
		cr_assert(mmio_rd(C(STATUS), 1) & VIRTIO_STATUS_NEEDS_RESET, "case %u", i);
		cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG, "case %u: ISR config bit", i);
		cr_assert_eq(read(vp.config_fd, &junk, 8), 8, "case %u: config eventfd signalled", i);
		cr_assert_eq(dev.activations, 0);
	}
	/* DRIVER_OK without FEATURES_OK too */
	mmio_wr(C(STATUS), 0, 1);
	mmio_wr(C(STATUS), VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_DRIVER_OK, 1);
	cr_assert(mmio_rd(C(STATUS), 1) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(mmio_rd(VIRTIO_PCI_ISR_OFF, 1), VIRTIO_PCI_ISR_CONFIG);
	/* and a reset brings the device back */
	mmio_wr(C(STATUS), 0, 1);
	negotiate(0, 1);
	setup_queue(0, 0x10000, MSIX_NO_VECTOR);
	mmio_wr(C(STATUS), ALL_OK, 1);
	cr_assert_eq(mmio_rd(C(STATUS), 1), ALL_OK);
	cr_assert_eq(dev.activations, 1);
}

Test(virtio_pci, failed_notifier_registration_sets_needs_reset)
{
	host.fail_assign = 1;
	negotiate(0, 1);
	setup_queue(0, 0x10000, MSIX_NO_VECTOR);
	mmio_wr(C(STATUS), ALL_OK, 1);
	cr_assert(mmio_rd(C(STATUS), 1) & VIRTIO_STATUS_NEEDS_RESET);
	cr_assert_eq(dev.activations, 0);
	host.fail_assign = 0;
}

Test(virtio_pci_ids, net_identity)
{
	struct virtio_dev_ops ops = fake_ops;
	ops.device_id = VIRTIO_ID_NET;
	struct fake_virtio_host h = { 0 };
	struct fake_msi_host m2 = { .next_gsi = 24 };
	struct virtio_pci p;
	struct guest_mem gm = { 0 };
	struct fake_pci_vm pv = { &h, &m2 };
	cr_assert_eq(virtio_pci_init(&p, "net0", &ops, &dev, &gm, &(struct device_host){ &fake_pci_vm_ops, &pv }), 0);
	cr_assert_eq(pci_dev_config_read(&p.pci, PCI_DEVICE_ID, 2), 0x1041);
	cr_assert_eq(pci_dev_config_read(&p.pci, PCI_CLASS_DEVICE, 2), 0x0200);
	virtio_pci_destroy(&p);
	cr_assert_eq(m2.frees, NQ + 1);
}

/* ---- several vCPUs at once: one toggles decoding (host write lock, then
 * the transport lock to move notifiers), one drives the registers (host
 * read lock, then the transport lock, then MSI-X), one is a device thread
 * raising interrupts. Must neither deadlock nor trip the sanitizers. ---- */

#include <pthread.h>
#include <stdatomic.h>

static atomic_bool stop_threads;

static void *toggler(void *arg)
{
	(void)arg;
	uint32_t a = 0x80000000u | 1u << 11 | PCI_COMMAND;
	for (int i = 0; !atomic_load(&stop_threads) && i < 20000; i++) {
		uint16_t cmd = (i & 1) ? PCI_COMMAND_MEMORY : 0;
		pci_host_pio_ops.write(&bus, 0, &a, 4);
		pci_host_pio_ops.write(&bus, 4, &cmd, 2);
	}
	uint16_t on = PCI_COMMAND_MEMORY;
	pci_host_pio_ops.write(&bus, 0, &a, 4);
	pci_host_pio_ops.write(&bus, 4, &on, 2);
	return NULL;
}

static void *driver(void *arg)
{
	(void)arg;
	for (int i = 0; !atomic_load(&stop_threads) && i < 20000; i++) {
		uint64_t v = (uint64_t)i % NQ;
		pci_host_mmio_ops.write(&bus, bar + C(Q_SELECT) - WIN_BASE, &v, 2);
		v = (uint64_t)(i % 3);
		pci_host_mmio_ops.write(&bus, bar + C(Q_MSIX) - WIN_BASE, &v, 2);
		pci_host_mmio_ops.read(&bus, bar + C(STATUS) - WIN_BASE, &v, 1);
		pci_host_mmio_ops.read(&bus, bar + VIRTIO_PCI_MSIX_PBA_OFF - WIN_BASE, &v, 8);
		v = (uint64_t)(i & 1);
		pci_host_mmio_ops.write(&bus, bar + VIRTIO_PCI_MSIX_TABLE_OFF + MSIX_ENTRY_CTRL - WIN_BASE, &v, 4);
	}
	return NULL;
}

static void *device(void *arg)
{
	(void)arg;
	for (int i = 0; !atomic_load(&stop_threads) && i < 20000; i++) {
		dev.irq->queue(dev.irq, (unsigned)i % NQ);
		if (i % 100 == 0)
			dev.irq->config(dev.irq);
	}
	return NULL;
}

Test(virtio_pci, concurrent_vcpus_and_device_threads)
{
	bring_up();
	pthread_t t[3];
	atomic_store(&stop_threads, false);
	pthread_create(&t[0], NULL, toggler, NULL);
	pthread_create(&t[1], NULL, driver, NULL);
	pthread_create(&t[2], NULL, device, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	cr_assert_eq(dev.resets, 0);
	cr_assert_eq(host.assigned, 2, "decoding on at the end: notifiers registered");
	cr_assert_eq(host.last[0].addr, bar + VIRTIO_PCI_NOTIFY_OFF);
	mmio_wr(C(STATUS), 0, 1);
	cr_assert_eq(host.assigned, 0);
}
