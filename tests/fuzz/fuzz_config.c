/* libFuzzer target for what a guest can reach by register accesses: PCI
 * configuration mechanism 1 (ports 0xcf8-0xcff), the virtio-pci BAR (common
 * cfg, ISR, device cfg, notify, MSI-X table and PBA, and through config
 * space the PCI_CFG window onto it), and a virtio-mmio register window.
 *
 * The machine, built afresh for every input: a real pci_host with one
 * virtio-pci function in slot 1 and a real virtio-mmio transport, both on
 * io_buses as in the VM (accesses go through io_bus_access, as a vCPU exit
 * does), each over a fake virtio device (2-4 queues, a few bytes of config
 * space, activate/reset recorded and checked), fake host ops (notifier
 * batches, irqfds, MSI routes: recorded and checked, failing on demand) and
 * 64 KiB of fake guest RAM at guest address 0, so that DRIVER_OK with
 * whatever ring addresses the driver wrote goes through virtq_init's checks.
 * Build and run: tests/fuzz/run.sh.
 *
 * Input (little-endian; a short last record is ignored):
 *   0  u8  virtio-pci device: bits 0-1 queues {2,3,4,2}, bits 2-3 config
 *          size {8,6,0,13}, bits 4-5 queue max {256,1024,8,100}, bit 6 one
 *          more device feature
 *   1  u8  virtio-mmio device, the same
 *   2  u16 reserved
 *   4  12-byte records, one guest access (or device action) each:
 *      u8 kind: bits 0-1 surface (0 PCI config ports, 1 PCI BAR window,
 *               2 virtio-mmio window, 3 device side / harness), bit 2 write,
 *               bits 3-4 size 1 << n, bit 5 flag A, bit 6 flag E (edge)
 *      u8 aux: surface 3: which action; otherwise unused
 *      u16 off, u64 value (what a write writes)
 *   Surface 0: flag A: latch CONFIG_ADDRESS = enable | slot (off bits 8-12)
 *     | register (off bits 0-7, dword), then access 0xcfc + (reg & 3);
 *     otherwise port 0xcf8 + (off & 7) as is (flag E: 0xcf0 + (off & 31)).
 *   Surface 1: address = (flag A ? window base : BAR 0 where it is now) + off
 *     (flag E: - 8, to straddle the start).
 *   Surface 2: address = virtio-mmio base + (off & 0x1ff) (flag E: - 8 +
 *     (off & 0x3ff), past both ends).
 *   Surface 3 (flag A: on the virtio-mmio device, else virtio-pci), aux % 8:
 *     0 queue interrupt (queue value % 8), 1 config interrupt, 2 needs-reset,
 *     3 the device serves queue value % 8 (pops, fills, pushes every chain),
 *     4 write 8 bytes of guest RAM at off, 5 failure mask = value & 15 (bit 0
 *     notifier registration, 1 MSI routes, 2 MSI irqfd connect, 3 device
 *     activate), 6 queue_notifier(value % 8), 7 nothing.
 *
 * Checked after every access (besides ASan/UBSan): a read writes exactly
 * `size` bytes of the caller's buffer and a write leaves it alone (guard
 * bytes around it); unmapped reads are all ones; config reads through the
 * latch return what config space holds; read-only config bytes and the
 * write masks never change, BAR 0 stays size-aligned; the fake device is
 * activated only when idle and reset only when active (never twice in a
 * row), with features the device offered plus VERSION_1 and every ready
 * queue's ring checked and inside RAM; the device is active exactly when
 * the transport says so, and while it runs every ready queue is one whose
 * ring was checked at activation; at most one notifier batch per device is
 * registered, only while the device runs, at most one per queue, each at
 * its queue's notify address (virtio-pci: inside BAR 0 where it decodes
 * now), and removed exactly as registered; without injected failures, a
 * running device whose BAR decodes has all its notifiers; status 0 means
 * nothing runs and nothing is registered, and right after a reset the queues,
 * vectors, ISR and pending interrupts are cleared; an MSI irqfd is connected
 * only for a deliverable vector whose route (in the fake KVM) is its current
 * message, never twice, on an allocated GSI (and, without injected
 * failures, always for such a vector that has a user); ISR holds only bits 0-1; the
 * transport bounds device config accesses. At the end both devices are
 * destroyed: every notifier, irqfd and GSI is given back, every eventfd
 * closed.
 *
 * FUZZ_CONFIG_WRITE_SEEDS=dir fuzz_config: writes the seed inputs (full
 * driver initialisations on each transport) to dir and exits.
 * FUZZ_CONFIG_TRACE=1 fuzz_config FILE...: one line per input saying how far
 * the driver got on each device. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci_dev.h"
#include "devices/pci/pci_host.h"
#include "devices/virtio/mmio.h"
#include "devices/virtio/pci.h"
#include "devices/virtio/virtq.h"
#include "vmm/base/guest_mem.h"
#include "vmm/base/io_bus.h"

#define WIN_BASE  0xe0000000ull               /* as arch/x86/layout.h */
#define WIN_SIZE  (0xfec00000ull - WIN_BASE)
#define MMIO_BASE 0xd0000000ull
#define ECAM_BASE 0x3f000000ull                /* as arch/arm64/layout.h: bus 0, 1 MiB */
#define MMIO_GSI  5
#define RAM_SIZE  0x10000u
#define HDR       4
#define REC       12
#define MAX_GSI   128
#define FIRST_GSI 24

#define FAIL_NOTIFIERS 1
#define FAIL_ROUTES    2
#define FAIL_IRQFD     4
#define FAIL_ACTIVATE  8

static int report_fd = 2;
static int cur_op = -1;
static bool trace;   /* FUZZ_CONFIG_TRACE set: one summary line per input */

static void __attribute__((noreturn, format(printf, 1, 2))) check_failed(const char *fmt, ...)
{
	char msg[400];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dprintf(report_fd, "fuzz_config: check failed: %s (op %d)\n", msg, cur_op);
	abort();
}

/* The checks are not part of what the fuzzer should explore (nor should
 * their comparisons feed its value profile), and they run after every
 * access: no coverage instrumentation for them. */
#define NOCOV __attribute__((no_sanitize("coverage")))

#define CHECK(cond)                                                                    \
	do {                                                                           \
		if (!(cond))                                                           \
			check_failed("%s (%s:%d)", #cond, __FILE__, __LINE__);         \
	} while (0)

/* ---- fake guest RAM ---- */

static uint8_t ram[RAM_SIZE] __attribute__((aligned(4096)));
static struct guest_mem mem;

static NOCOV bool in_ram(const void *p, size_t len)
{
	uintptr_t a = (uintptr_t)p, r = (uintptr_t)ram;
	return a >= r && a - r <= RAM_SIZE && len <= RAM_SIZE - (a - r);
}

/* ---- fake virtio device ---- */

struct fake_dev {
	const char *name;
	struct virtio_transport *t;
	struct virtio_dev_ops ops;
	unsigned nq;
	uint32_t cfg_size;
	uint64_t features;
	uint8_t config[16];
	bool active;
	unsigned activations, resets, n_ready;
	uint64_t negotiated;
	struct virtio_queue *queues;
	const struct virtio_irq *irq;
};

static unsigned fail_mask;
static bool failures_injected;

static uint64_t fd_features(void *d) { return ((struct fake_dev *)d)->features; }
static unsigned fd_queues(void *d) { return ((struct fake_dev *)d)->nq; }
static uint32_t fd_config_size(void *d) { return ((struct fake_dev *)d)->cfg_size; }

static void fd_config_read(void *d, uint32_t off, void *data, uint32_t len)
{
	struct fake_dev *f = d;
	CHECK(off <= f->cfg_size && len <= f->cfg_size - off);
	memcpy(data, f->config + off, len);
}

static void fd_config_write(void *d, uint32_t off, const void *data, uint32_t len)
{
	struct fake_dev *f = d;
	CHECK(off <= f->cfg_size && len <= f->cfg_size - off);
	memcpy(f->config + off, data, len);
}

static int fd_activate(void *d, uint64_t features, struct virtio_queue *q, unsigned n, const struct virtio_irq *irq)
{
	struct fake_dev *f = d;
	CHECK(!f->active);   /* never activated twice without a reset in between */
	CHECK(n == f->nq && q == f->t->queues);
	CHECK((features & ~f->t->device_features) == 0);
	CHECK(features & (1ull << VIRTIO_F_VERSION_1));
	CHECK(irq && irq->queue && irq->config && irq->needs_reset);
	unsigned ready = 0;
	for (unsigned i = 0; i < n; i++) {
		CHECK(q[i].kick_fd >= 0 && q[i].call_fd >= 0);
		if (!q[i].ready)
			continue;
		ready++;
		const struct virtq *vq = &q[i].vq;
		CHECK(!vq->broken && vq->size == q[i].size && vq->size && !(vq->size & (vq->size - 1)));
		CHECK(vq->desc_gpa == q[i].desc && vq->avail_gpa == q[i].avail && vq->used_gpa == q[i].used);
		CHECK(in_ram(vq->desc, VIRTQ_DESC_BYTES(vq->size)));
		CHECK(in_ram(vq->avail, VIRTQ_AVAIL_BYTES(vq->size)));
		CHECK(in_ram(vq->used, VIRTQ_USED_BYTES(vq->size)));
		CHECK(vq->event_idx == !!(features & (1ull << VIRTIO_F_EVENT_IDX)));
	}
	if (fail_mask & FAIL_ACTIVATE)
		return -1;
	f->active = true;
	f->activations++;
	f->n_ready = ready;
	f->negotiated = features;
	f->queues = q;
	f->irq = irq;
	return 0;
}

static void fd_reset(void *d)
{
	struct fake_dev *f = d;
	CHECK(f->active);    /* reset only what runs */
	f->active = false;
	f->resets++;
	f->irq = NULL;
	f->queues = NULL;
}

static void fake_dev_init(struct fake_dev *f, const char *name, uint8_t params)
{
	static const unsigned nqs[4] = { 2, 3, 4, 2 };
	static const uint32_t cfg_sizes[4] = { 8, 6, 0, 13 };
	static const uint16_t qmax[4] = { 256, 1024, 8, 100 };
	memset(f, 0, sizeof(*f));
	f->name = name;
	f->nq = nqs[params & 3];
	f->cfg_size = cfg_sizes[(params >> 2) & 3];
	f->features = (1ull << 5) | ((params & 0x40) ? 1ull : 0);
	for (unsigned i = 0; i < sizeof(f->config); i++)
		f->config[i] = (uint8_t)(0x10 + i);
	f->ops = (struct virtio_dev_ops){
		.name = "fake", .device_id = VIRTIO_ID_BLOCK, .features = fd_features, .num_queues = fd_queues,
		.queue_max_size = qmax[(params >> 4) & 3], .config_size = fd_config_size,
		.config_read = fd_config_read, .config_write = fd_config_write, .activate = fd_activate,
		.reset = fd_reset,
	};
}

/* ---- fake VM: ioeventfds (and the virtio-mmio irqfd) ---- */

struct fake_msi;

struct fake_host {
	bool is_pci;
	struct fake_msi *msi;      /* is_pci: GSIs, routes and irqfds of MSI-X */
	struct fake_dev *dev;
	struct virtio_pci *vp;     /* is_pci */
	struct host_notifier live[VIRTIO_MAX_QUEUES];
	unsigned n_live, batches;
	int irqfd_fd, irqfd_gsi;   /* virtio-mmio's one irqfd */
};

static NOCOV void check_notifier(struct fake_host *h, const struct host_notifier *n, uint64_t pci_base)
{
	struct virtio_transport *t = h->dev->t;
	CHECK(n->datamatch && !n->pio && n->data < h->dev->nq);
	CHECK(n->fd == t->queues[n->data].kick_fd);
	if (h->is_pci) {
		CHECK(n->len == 2);
		CHECK(n->addr == pci_base + VIRTIO_PCI_NOTIFY_OFF + VIRTIO_PCI_NOTIFY_MULT * n->data);
	} else {
		CHECK(n->len == 4 && n->addr == MMIO_BASE + VIRTIO_MMIO_QUEUE_NOTIFY);
	}
}

static int fh_set_notifiers(void *ctx, const struct host_notifier *n, unsigned count, bool assign)
{
	struct fake_host *h = ctx;
	CHECK(count >= 1 && count <= h->dev->nq);
	if (!assign) {
		CHECK(count == h->n_live);   /* removed exactly as registered */
		for (unsigned i = 0; i < count; i++)
			CHECK(n[i].addr == h->live[i].addr && n[i].len == h->live[i].len && n[i].fd == h->live[i].fd &&
			      n[i].data == h->live[i].data && n[i].datamatch == h->live[i].datamatch);
		h->n_live = 0;
		h->batches++;
		return 0;
	}
	CHECK(h->n_live == 0);   /* one batch at a time */
	uint64_t base = 0;
	if (h->is_pci)
		CHECK(pci_dev_bar_decoded(&h->vp->pci, VIRTIO_PCI_BAR, &base));   /* only where BAR 0 decodes */
	for (unsigned i = 0; i < count; i++) {
		check_notifier(h, &n[i], base);
		CHECK(h->dev->t->queues[n[i].data].ready);
		for (unsigned j = 0; j < i; j++)
			CHECK(n[j].data != n[i].data);   /* one per queue */
	}
	if (fail_mask & FAIL_NOTIFIERS)
		return -1;
	memcpy(h->live, n, count * sizeof(*n));
	h->n_live = count;
	h->batches++;
	return 0;
}

static int fm_irqfd(void *c, int fd, unsigned gsi, bool assign);

static int fh_set_irqfd(void *ctx, int fd, unsigned gsi, bool assign)
{
	struct fake_host *h = ctx;
	if (h->is_pci)   /* virtio-pci's interrupts are MSI-X vectors' */
		return fm_irqfd(h->msi, fd, gsi, assign);
	if (assign) {
		CHECK(h->irqfd_fd < 0);
		h->irqfd_fd = fd;
		h->irqfd_gsi = (int)gsi;
	} else {
		CHECK(h->irqfd_fd == fd && h->irqfd_gsi == (int)gsi);
		h->irqfd_fd = h->irqfd_gsi = -1;
	}
	return 0;
}


/* ---- fake VM: MSI routes and irqfds ---- */

struct fake_msi {
	unsigned next_gsi, allocs, frees, commits;
	bool allocated[MAX_GSI], routed[MAX_GSI];
	struct msi_msg msg[MAX_GSI];
	struct { int fd; unsigned gsi; } irqfds[2 * VIRTIO_MAX_QUEUES];
	unsigned n_irqfds;
};

static int fm_alloc(void *c)
{
	struct fake_msi *f = c;
	if (f->next_gsi >= MAX_GSI)
		return -1;
	f->allocated[f->next_gsi] = true;
	f->allocs++;
	return (int)f->next_gsi++;
}

static void fm_free(void *c, unsigned gsi)
{
	struct fake_msi *f = c;
	CHECK(gsi < MAX_GSI && f->allocated[gsi]);
	for (unsigned i = 0; i < f->n_irqfds; i++)
		CHECK(f->irqfds[i].gsi != gsi);   /* irqfds removed first */
	f->allocated[gsi] = false;
	f->frees++;
}

static int fm_routes(void *c, const unsigned *gsi, const struct msi_msg *msg, unsigned n)
{
	struct fake_msi *f = c;
	CHECK(n >= 1 && n <= f->allocs);
	for (unsigned i = 0; i < n; i++) {
		CHECK(gsi[i] < MAX_GSI && f->allocated[gsi[i]]);
		for (unsigned j = 0; j < i; j++)
			CHECK(gsi[j] != gsi[i]);
	}
	if (fail_mask & FAIL_ROUTES)
		return -1;
	f->commits++;
	for (unsigned i = 0; i < n; i++) {
		f->routed[gsi[i]] = true;
		f->msg[gsi[i]] = msg[i];
	}
	return 0;
}

static int fm_irqfd(void *c, int fd, unsigned gsi, bool assign)
{
	struct fake_msi *f = c;
	CHECK(fd >= 0 && gsi < MAX_GSI && f->allocated[gsi]);
	for (unsigned i = 0; i < f->n_irqfds; i++) {
		if (f->irqfds[i].fd != fd)
			continue;
		CHECK(!assign);                   /* never connected twice */
		CHECK(f->irqfds[i].gsi == gsi);   /* removed from where it is */
		f->irqfds[i] = f->irqfds[--f->n_irqfds];
		return 0;
	}
	CHECK(assign);                            /* removing what is not there */
	CHECK(f->routed[gsi]);                    /* a GSI without a route delivers nothing */
	if (fail_mask & FAIL_IRQFD)
		return -1;
	CHECK(f->n_irqfds < sizeof(f->irqfds) / sizeof(f->irqfds[0]));
	f->irqfds[f->n_irqfds].fd = fd;
	f->irqfds[f->n_irqfds].gsi = gsi;
	f->n_irqfds++;
	return 0;
}

static int fh_alloc_gsi(void *ctx)
{
	return fm_alloc(((struct fake_host *)ctx)->msi);
}

static void fh_free_gsi(void *ctx, unsigned gsi)
{
	fm_free(((struct fake_host *)ctx)->msi, gsi);
}

static int fh_set_msi_routes(void *ctx, const unsigned *gsi, const struct msi_msg *msg, unsigned n)
{
	return fm_routes(((struct fake_host *)ctx)->msi, gsi, msg, n);
}

static const struct device_host_ops fake_host_ops = {
	.set_notifiers = fh_set_notifiers,
	.set_irqfd = fh_set_irqfd,
	.alloc_gsi = fh_alloc_gsi,
	.free_gsi = fh_free_gsi,
	.set_msi_routes = fh_set_msi_routes,
};

/* ---- the machine ---- */

static struct pci_host host;
static struct virtio_pci vp;
static struct virtio_mmio vm;
static struct fake_dev pdev, mdev;
static struct fake_host phost, mhost;
static struct fake_msi msi;
static struct io_bus pio_bus, mmio_bus;
static struct virtq_chain chain;
static unsigned served;   /* chains, for the trace */

/* Config space as built: read-only bytes must stay so. */
static uint8_t dev_cfg0[PCI_CFG_SIZE], dev_wmask0[PCI_CFG_SIZE];
static uint8_t br_cfg0[PCI_CFG_SIZE], br_wmask0[PCI_CFG_SIZE];

static uint32_t get_le(const uint8_t *p, unsigned size)
{
	uint32_t v = 0;
	for (unsigned i = 0; i < size; i++)
		v |= (uint32_t)p[i] << (8 * i);
	return v;
}

static NOCOV bool fd_pending(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static NOCOV bool fd_closed(int fd)
{
	return fcntl(fd, F_GETFD) == -1 && errno == EBADF;
}

static void NOCOV check_config_space(const struct pci_device *d, const uint8_t *cfg0, const uint8_t *wmask0)
{
	CHECK(memcmp(d->wmask, wmask0, PCI_CFG_SIZE) == 0);
	uint64_t diff = 0;
	for (unsigned i = 0; i < PCI_CFG_SIZE; i += 8) {
		uint64_t a, b, w;
		memcpy(&a, d->cfg + i, 8);
		memcpy(&b, cfg0 + i, 8);
		memcpy(&w, wmask0 + i, 8);
		diff |= (a ^ b) & ~w;
	}
	if (!diff)
		return;
	for (unsigned i = 0; i < PCI_CFG_SIZE; i++)
		if (!wmask0[i] && d->cfg[i] != cfg0[i])
			check_failed("read-only config byte 0x%x of slot %d changed: 0x%02x -> 0x%02x", i, d->slot,
				     cfg0[i], d->cfg[i]);
}

static NOCOV void check_transport(struct virtio_transport *t, struct fake_dev *f, struct fake_host *h)
{
	CHECK(f->active == t->active);
	CHECK(h->n_live <= f->nq);
	if (!t->active)
		CHECK(h->n_live == 0);
	if (t->status == 0)
		CHECK(!t->active && h->n_live == 0);
	if (t->status & VIRTIO_STATUS_FEATURES_OK)
		CHECK((t->driver_features & ~t->device_features) == 0 &&
		      (t->driver_features & (1ull << VIRTIO_F_VERSION_1)));
	for (unsigned i = 0; i < f->nq; i++) {
		const struct virtio_queue *q = &t->queues[i];
		CHECK(q->size <= f->ops.queue_max_size);
		CHECK(q->kick_fd >= 0 && q->call_fd >= 0);
		/* A running device's queues are the ones it was given, rings as checked. */
		if (t->active && q->ready)
			CHECK(q->vq.size == q->size && q->vq.desc_gpa == q->desc && q->vq.avail_gpa == q->avail &&
			      q->vq.used_gpa == q->used && q->vq.desc != NULL);
	}
	for (unsigned i = 0; i < h->n_live; i++)
		CHECK(t->queues[h->live[i].data].ready);
}

static NOCOV bool deliverable(const struct msix *m, unsigned v)
{
	return m->enabled && !m->function_masked && !(m->vectors[v].entry[3] & MSIX_ENTRY_CTRL_MASKBIT);
}

static NOCOV void check_msix(void)
{
	const struct msix *m = &vp.msix;
	unsigned attached = 0;
	CHECK(m->n_vectors == pdev.nq + 1 && m->n_users == pdev.nq + 1);
	for (unsigned u = 0; u < m->n_users; u++) {
		const struct msix_user *us = &m->users[u];
		CHECK(us->vector == MSIX_NO_VECTOR || us->vector < m->n_vectors);
		CHECK(us->fd == (u < pdev.nq ? vp.t.queues[u].call_fd : vp.config_fd));
		/* what the virtio registers read back is what MSI-X uses */
		CHECK(us->vector == (u < pdev.nq ? vp.t.queues[u].msix_vector : vp.msix_config));
		if (us->attached_gsi < 0) {
			if (!failures_injected && us->vector < m->n_vectors)
				CHECK(!deliverable(m, us->vector));
			continue;
		}
		attached++;
		CHECK(us->vector < m->n_vectors && deliverable(m, us->vector));
		const struct msix_vector *v = &m->vectors[us->vector];
		CHECK(us->attached_gsi == (int)v->gsi && v->routed);
		CHECK(v->routed_msg.addr == (v->entry[0] | (uint64_t)v->entry[1] << 32) &&
		      v->routed_msg.data == v->entry[2]);
		CHECK(msi.routed[v->gsi] && msi.msg[v->gsi].addr == v->routed_msg.addr &&
		      msi.msg[v->gsi].data == v->routed_msg.data);
		bool found = false;
		for (unsigned i = 0; i < msi.n_irqfds; i++)
			found |= msi.irqfds[i].fd == us->fd && msi.irqfds[i].gsi == v->gsi;
		CHECK(found);
	}
	CHECK(attached == msi.n_irqfds);
	if (!m->enabled || m->function_masked)
		CHECK(msi.n_irqfds == 0);
	CHECK(m->enabled == msix_enabled(&vp.msix));
}

static NOCOV void check_pci_notifiers(void)
{
	uint64_t base = 0;
	bool decoded = pci_dev_bar_decoded(&vp.pci, VIRTIO_PCI_BAR, &base);
	if (phost.n_live) {
		/* registered only where BAR 0 decodes now */
		CHECK(decoded && vp.notifiers_live && vp.live_base == base);
		for (unsigned i = 0; i < phost.n_live; i++)
			check_notifier(&phost, &phost.live[i], base);
	}
	CHECK(vp.notifiers_live == (phost.n_live > 0));
	CHECK(vp.n_notifiers <= pdev.nq);
	if (!failures_injected && vp.t.active && decoded)
		CHECK(phost.n_live == pdev.n_ready);
}

static NOCOV void check_all(void)
{
	CHECK((host.config_address & ~0x80fffffcu) == 0);
	check_config_space(&host.bridge, br_cfg0, br_wmask0);
	check_config_space(&vp.pci, dev_cfg0, dev_wmask0);
	const struct pci_bar *b = &vp.pci.bars[VIRTIO_PCI_BAR];
	CHECK(b->size == VIRTIO_PCI_BAR_SIZE && b->addr % VIRTIO_PCI_BAR_SIZE == 0);
	CHECK(b->addr == ((get_le(vp.pci.cfg + 0x10, 4) & ~0xfull) | (uint64_t)get_le(vp.pci.cfg + 0x14, 4) << 32));

	check_transport(&vp.t, &pdev, &phost);
	check_transport(&vm.t, &mdev, &mhost);
	check_pci_notifiers();
	check_msix();
	CHECK((atomic_load(&vp.isr) & ~3u) == 0);
	CHECK((atomic_load(&vm.isr) & ~3u) == 0);
	CHECK(mhost.irqfd_fd == vm.irq_fd && mhost.irqfd_gsi == MMIO_GSI);
}

/* Right after a reset (status went to 0). */
static NOCOV void check_after_reset(bool pci)
{
	struct virtio_transport *t = pci ? &vp.t : &vm.t;
	struct fake_dev *f = pci ? &pdev : &mdev;
	CHECK(!t->active && !f->active && (pci ? phost.n_live : mhost.n_live) == 0);
	CHECK(t->driver_features == 0 && t->queue_sel == 0 && !atomic_load(&t->broken));
	for (unsigned i = 0; i < f->nq; i++) {
		const struct virtio_queue *q = &t->queues[i];
		CHECK(!q->ready && q->desc == 0 && q->avail == 0 && q->used == 0);
		CHECK(q->size == (pci ? f->ops.queue_max_size : 0));
		if (pci)
			CHECK(q->msix_vector == MSIX_NO_VECTOR && !fd_pending(q->call_fd));
	}
	if (pci) {
		CHECK(vp.msix_config == MSIX_NO_VECTOR && !fd_pending(vp.config_fd));
		CHECK(msi.n_irqfds == 0 && atomic_load(&vp.isr) == 0 && !vp.notifiers_live);
	} else {
		CHECK(atomic_load(&vm.isr) == 0);   /* spec 4.2.2.1: InterruptStatus cleared at reset */
	}
}

static void build(const uint8_t *data, size_t size)
{
	memset(ram, 0, sizeof(ram));
	memset(&mem, 0, sizeof(mem));
	CHECK(guest_mem_add_region(&mem, 0, RAM_SIZE, ram) == 0);
	fail_mask = 0;
	failures_injected = false;
	served = 0;

	fake_dev_init(&pdev, "pci", size > 0 ? data[0] : 0);
	fake_dev_init(&mdev, "mmio", size > 1 ? data[1] : 0);
	pdev.t = &vp.t;
	mdev.t = &vm.t;
	phost = (struct fake_host){ .is_pci = true, .msi = &msi, .dev = &pdev, .vp = &vp, .irqfd_fd = -1, .irqfd_gsi = -1 };
	mhost = (struct fake_host){ .is_pci = false, .dev = &mdev, .irqfd_fd = -1, .irqfd_gsi = -1 };
	memset(&msi, 0, sizeof(msi));
	msi.next_gsi = FIRST_GSI;

	pci_host_init(&host, WIN_BASE, WIN_SIZE);
	CHECK(virtio_pci_init(&vp, "fuzz-pci", &pdev.ops, &pdev, &mem, &(struct device_host){ &fake_host_ops, &phost }) == 0);
	CHECK(pci_host_add(&host, &vp.pci) == 1);
	CHECK(virtio_mmio_init(&vm, "fuzz-mmio", &mdev.ops, &mdev, &mem, &(struct device_host){ &fake_host_ops, &mhost }, MMIO_BASE,
			       MMIO_GSI) == 0);

	memset(&pio_bus, 0, sizeof(pio_bus));
	memset(&mmio_bus, 0, sizeof(mmio_bus));
	CHECK(io_bus_register(&pio_bus, PCI_HOST_PIO_BASE, PCI_HOST_PIO_LEN, &pci_host_pio_ops, &host, "pci") == 0);
	CHECK(io_bus_register(&mmio_bus, WIN_BASE, WIN_SIZE, &pci_host_mmio_ops, &host, "pci-bars") == 0);
	CHECK(io_bus_register(&mmio_bus, MMIO_BASE, VIRTIO_MMIO_SIZE, &virtio_mmio_io_ops, &vm, "mmio") == 0);
	CHECK(io_bus_register(&mmio_bus, ECAM_BASE, 1 << 20, &pci_host_ecam_ops, &host, "ecam") == 0);

	memcpy(dev_cfg0, vp.pci.cfg, PCI_CFG_SIZE);
	memcpy(dev_wmask0, vp.pci.wmask, PCI_CFG_SIZE);
	memcpy(br_cfg0, host.bridge.cfg, PCI_CFG_SIZE);
	memcpy(br_wmask0, host.bridge.wmask, PCI_CFG_SIZE);
}

static void teardown(void)
{
	int fds[2 * 2 * VIRTIO_MAX_QUEUES + 2];
	unsigned n = 0;
	for (unsigned i = 0; i < pdev.nq; i++) {
		fds[n++] = vp.t.queues[i].kick_fd;
		fds[n++] = vp.t.queues[i].call_fd;
	}
	for (unsigned i = 0; i < mdev.nq; i++) {
		fds[n++] = vm.t.queues[i].kick_fd;
		fds[n++] = vm.t.queues[i].call_fd;
	}
	fds[n++] = vp.config_fd;
	fds[n++] = vm.irq_fd;

	if (trace)
		dprintf(report_fd,
			"fuzz_config: %d ops; pci: status 0x%x, %u activations, %u resets, %u notifier batches, "
			"%u route commits, BAR 0 at 0x%llx; mmio: status 0x%x, %u activations, %u resets, "
			"%u notifier batches; %u chains served\n",
			cur_op, vp.t.status, pdev.activations, pdev.resets, phost.batches, msi.commits,
			(unsigned long long)vp.pci.bars[0].addr, vm.t.status, mdev.activations, mdev.resets,
			mhost.batches, served);
	fail_mask = 0;
	virtio_pci_destroy(&vp);
	virtio_mmio_destroy(&vm);
	pci_host_destroy(&host);
	CHECK(!pdev.active && !mdev.active);
	CHECK(phost.n_live == 0 && mhost.n_live == 0);
	CHECK(msi.n_irqfds == 0 && msi.frees == msi.allocs && msi.allocs == pdev.nq + 1);
	CHECK(mhost.irqfd_fd == -1);
	for (unsigned i = 0; i < n; i++)
		CHECK(fd_closed(fds[i]));
}

/* ---- one access ---- */

/* Through the bus as a vCPU exit goes. Returns the value read. */
static uint64_t guest_access(struct io_bus *bus, uint64_t addr, bool write, unsigned size, uint64_t value)
{
	uint8_t buf[32], saved[32];
	uint8_t guard = (uint8_t)(0xa5 ^ cur_op);
	memset(buf, guard, sizeof(buf));
	uint8_t *p = buf + 8;
	if (write)
		memcpy(p, &value, size);
	memcpy(saved, buf, sizeof(buf));
	bool hit = io_bus_access(bus, addr, p, size, write);
	if (write) {
		CHECK(memcmp(buf, saved, sizeof(buf)) == 0);   /* the data written is not touched */
		return 0;
	}
	for (unsigned i = 0; i < sizeof(buf); i++)
		if ((i < 8 || i >= 8 + size) && buf[i] != guard)
			check_failed("a %u-byte read at 0x%llx wrote byte %d of its buffer", size,
				     (unsigned long long)addr, (int)i - 8);
	if (!hit)
		for (unsigned i = 0; i < size; i++)
			CHECK(p[i] == 0xff);   /* unmapped reads are all ones */
	uint64_t v = 0;
	memcpy(&v, p, size);
	return v;
}

/* ECAM (arm64): the same config space as mechanism 1, reached by address. */
static void ecam_op(uint16_t off, bool write, unsigned size, uint64_t value)
{
	unsigned slot = (off >> 11) & 31, reg = off & 0x7ff;
	uint64_t v = guest_access(&mmio_bus, ECAM_BASE + ((uint64_t)slot << 15) + reg, write, size, value);
	if (write || (reg & 3) + size > 4)
		return;
	const struct pci_device *d = slot == 0 ? &host.bridge : slot == 1 ? &vp.pci : NULL;
	uint32_t want = !d			? (uint32_t)(0xffffffffull >> (32 - 8 * size))
			: reg < PCI_CFG_SIZE ? get_le(d->cfg + reg, size)
					     : 0;   /* extended space of a present device */
	if (v != want)
		check_failed("ECAM read slot %u reg 0x%x size %u gave 0x%llx, config space holds 0x%x", slot, reg, size,
			     (unsigned long long)v, want);
}

static void pci_cfg_op(uint8_t kind, uint16_t off, bool write, unsigned size, uint64_t value)
{
	if (kind & 0x80) {
		ecam_op(off, write, size, value);
		return;
	}
	if (!(kind & 0x20)) {
		uint64_t port = (kind & 0x40) ? 0xcf0 + (off & 31u) : PCI_HOST_PIO_BASE + (off & 7u);
		guest_access(&pio_bus, port, write, size, value);
		return;
	}
	unsigned slot = (off >> 8) & 31, reg = off & 0xff;
	uint32_t a = 0x80000000u | slot << 11 | (reg & 0xfc);
	guest_access(&pio_bus, PCI_HOST_PIO_BASE, true, 4, a);
	uint64_t v = guest_access(&pio_bus, PCI_HOST_PIO_BASE + 4 + (reg & 3), write, size, value);
	if (write || (reg & 3) + size > 4)
		return;
	/* what config space holds now (the read hook may just have refreshed it) */
	const struct pci_device *d = slot == 0 ? &host.bridge : slot == 1 ? &vp.pci : NULL;
	uint32_t want = d ? get_le(d->cfg + reg, size) : (uint32_t)(0xffffffffull >> (32 - 8 * size));
	if (v != want)
		check_failed("config read slot %u reg 0x%x size %u gave 0x%llx, config space holds 0x%x", slot, reg,
			     size, (unsigned long long)v, want);
}

/* What a device thread does with a queue: serve every chain, interrupt. */
static void serve(struct fake_dev *f, unsigned qi)
{
	if (!f->active || qi >= f->nq || !f->queues[qi].ready)
		return;
	struct virtq *q = &f->queues[qi].vq;
	if (q->broken)
		return;
	int r = 0;
	for (unsigned pops = 0; pops < 2u * q->size + 2 && (r = virtq_pop_chain(q, &chain)) > 0; pops++) {
		CHECK(chain.head < q->size && chain.n_out + chain.n_in <= VIRTQ_MAX_IOV);
		uint64_t in = 0;
		for (unsigned i = 0; i < chain.n_out + chain.n_in; i++) {
			CHECK(in_ram(chain.iov[i].iov_base, chain.iov[i].iov_len));
			if (i >= chain.n_out) {
				memset(chain.iov[i].iov_base, 0x5a, chain.iov[i].iov_len);
				in += chain.iov[i].iov_len;
			}
		}
		CHECK(in == chain.in_len);
		CHECK(virtq_push_used(q, chain.head, (uint32_t)chain.in_len) == 0);
		served++;
	}
	CHECK(r >= 0 || q->broken);
	if (q->broken)
		f->irq->needs_reset(f->irq);
	else if (virtq_should_notify(q))
		f->irq->queue(f->irq, qi);
}

static void device_op(uint8_t kind, uint8_t aux, uint16_t off, uint64_t value)
{
	bool on_mmio = kind & 0x20;
	struct fake_dev *f = on_mmio ? &mdev : &pdev;
	unsigned q = (unsigned)(value % 8);
	switch (aux % 8) {
	case 0:
		if (f->active)
			f->irq->queue(f->irq, q);
		break;
	case 1:
		if (f->active)
			f->irq->config(f->irq);
		break;
	case 2:
		if (f->active)
			f->irq->needs_reset(f->irq);
		break;
	case 3:
		serve(f, q);
		break;
	case 4:
		for (unsigned i = 0; i < 8 && off + i < RAM_SIZE; i++)
			ram[off + i] = (uint8_t)(value >> (8 * i));
		break;
	case 5:
		fail_mask = value & 15;
		failures_injected |= fail_mask != 0;
		break;
	case 6:
		if (f->active && f->irq->queue_notifier) {
			int fd = f->irq->queue_notifier(f->irq, q);
			if (q < f->nq && msix_enabled(&vp.msix))
				CHECK(fd == f->queues[q].call_fd);
			else
				CHECK(fd == -1);
		}
		break;
	default:
		break;
	}
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cur_op = -1;
	build(data, size);
	check_all();
	for (size_t pos = HDR; pos + REC <= size; pos += REC) {
		const uint8_t *r = data + pos;
		cur_op = (int)((pos - HDR) / REC);
		uint8_t kind = r[0], aux = r[1];
		uint16_t off = (uint16_t)(r[2] | r[3] << 8);
		uint64_t value = 0;
		for (unsigned i = 0; i < 8; i++)
			value |= (uint64_t)r[4 + i] << (8 * i);
		bool write = kind & 4;
		unsigned sz = 1u << ((kind >> 3) & 3);
		uint8_t pst = vp.t.status, mst = vm.t.status;

		switch (kind & 3) {
		case 0:
			pci_cfg_op(kind, off, write, sz, value);
			break;
		case 1: {
			uint64_t base = (kind & 0x20) ? WIN_BASE : vp.pci.bars[VIRTIO_PCI_BAR].addr;
			guest_access(&mmio_bus, base + off - ((kind & 0x40) ? 8 : 0), write, sz, value);
			break;
		}
		case 2: {
			uint64_t addr = (kind & 0x40) ? MMIO_BASE - 8 + (off & 0x3ffu) : MMIO_BASE + (off & 0x1ffu);
			guest_access(&mmio_bus, addr, write, sz, value);
			break;
		}
		default:
			device_op(kind, aux, off, value);
			break;
		}
		check_all();
		if (pst && !vp.t.status)
			check_after_reset(true);
		if (mst && !vm.t.status)
			check_after_reset(false);
	}
	cur_op = size >= HDR ? (int)((size - HDR) / REC) : 0;
	teardown();
	return 0;
}

/* ---- seeds ---- */

struct seed {
	uint8_t b[8192];
	size_t n;
};

static void rec(struct seed *s, uint8_t kind, uint8_t aux, uint16_t off, uint64_t value)
{
	if (s->n + REC > sizeof(s->b))
		return;
	uint8_t *r = s->b + s->n;
	r[0] = kind;
	r[1] = aux;
	r[2] = (uint8_t)off;
	r[3] = (uint8_t)(off >> 8);
	for (unsigned i = 0; i < 8; i++)
		r[4 + i] = (uint8_t)(value >> (8 * i));
	s->n += REC;
}

static uint8_t size_bits(unsigned size)
{
	return (uint8_t)((size == 1 ? 0 : size == 2 ? 1 : size == 4 ? 2 : 3) << 3);
}

/* config mechanism 1, latched: slot 1 */
static void cfg_rd(struct seed *s, unsigned reg, unsigned size) { rec(s, 0x20 | size_bits(size), 0, (uint16_t)(1u << 8 | reg), 0); }
static void cfg_wr(struct seed *s, unsigned reg, uint64_t v, unsigned size)
{
	rec(s, 0x20 | 4 | size_bits(size), 0, (uint16_t)(1u << 8 | reg), v);
}
/* BAR 0, wherever it is */
static void bar_rd(struct seed *s, unsigned off, unsigned size) { rec(s, 1 | size_bits(size), 0, (uint16_t)off, 0); }
static void bar_wr(struct seed *s, unsigned off, uint64_t v, unsigned size)
{
	rec(s, 1 | 4 | size_bits(size), 0, (uint16_t)off, v);
}
static void mm_rd(struct seed *s, unsigned off) { rec(s, 2 | size_bits(4), 0, (uint16_t)off, 0); }
static void mm_wr(struct seed *s, unsigned off, uint32_t v) { rec(s, 2 | 4 | size_bits(4), 0, (uint16_t)off, v); }
static void dev_op(struct seed *s, bool mmio, unsigned what, uint16_t off, uint64_t v)
{
	rec(s, (uint8_t)(3 | (mmio ? 0x20 : 0)), (uint8_t)what, off, v);
}

#define CMN(f) (VIRTIO_PCI_COMMON_OFF + VIRTIO_PCI_COMMON_##f)
#define ACK_DRV (VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER)
#define ALL_OK (ACK_DRV | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK)

/* Queue q's rings in guest RAM, size 16: desc, avail, used. */
static uint64_t ring(unsigned q, unsigned part, bool mmio)
{
	return (mmio ? 0x8000u : 0x1000u) + 0x1000u * q + 0x200u * part;
}

/* One chain in queue q: a readable and a writable buffer; avail->idx = 1. */
static void put_chain(struct seed *s, unsigned q, bool mmio)
{
	uint64_t d = ring(q, 0, mmio), a = ring(q, 1, mmio), buf = ring(q, 3, mmio);
	dev_op(s, false, 4, (uint16_t)d, buf);                                     /* desc 0: addr */
	dev_op(s, false, 4, (uint16_t)(d + 8), 64 | (uint64_t)VIRTQ_DESC_F_NEXT << 32 | 1ull << 48);
	dev_op(s, false, 4, (uint16_t)(d + 16), buf + 64);                         /* desc 1 */
	dev_op(s, false, 4, (uint16_t)(d + 24), 64 | (uint64_t)VIRTQ_DESC_F_WRITE << 32);
	dev_op(s, false, 4, (uint16_t)a, 1ull << 16);                              /* avail: idx 1, ring[0] = 0 */
}

static void pci_linux_probe(struct seed *s, unsigned nq)
{
	cfg_rd(s, PCI_VENDOR_ID, 4);
	cfg_rd(s, PCI_CLASS_PROG, 4);
	cfg_rd(s, PCI_HEADER_TYPE, 1);
	/* BAR sizing with decoding off */
	cfg_wr(s, PCI_COMMAND, 0, 2);
	cfg_rd(s, 0x10, 4);
	cfg_wr(s, 0x10, 0xffffffff, 4);
	cfg_rd(s, 0x10, 4);
	cfg_wr(s, 0x10, WIN_BASE | PCI_BAR_MEM_TYPE_64, 4);
	cfg_wr(s, 0x14, 0xffffffff, 4);
	cfg_rd(s, 0x14, 4);
	cfg_wr(s, 0x14, 0, 4);
	cfg_wr(s, PCI_COMMAND, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER, 2);
	/* capability walk */
	cfg_rd(s, PCI_STATUS, 2);
	cfg_rd(s, PCI_CAPABILITY_LIST, 1);
	for (unsigned pos = 0x40; pos < 0xa0; pos += 0x10) {
		cfg_rd(s, pos, 2);
		cfg_rd(s, pos + 3, 1);
		cfg_rd(s, pos + 8, 4);
	}
	/* MSI-X: the cap follows five virtio caps (16, 20, 16, 16, 20 bytes) */
	unsigned msix = 0x40 + 16 + 20 + 16 + 16 + 20;
	msix = (msix + 3) & ~3u;
	cfg_rd(s, msix + PCI_MSIX_FLAGS, 2);
	cfg_wr(s, msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE | PCI_MSIX_FLAGS_MASKALL, 2);
	for (unsigned v = 0; v < nq + 1; v++) {
		unsigned e = VIRTIO_PCI_MSIX_TABLE_OFF + v * MSIX_ENTRY_SIZE;
		bar_wr(s, e + MSIX_ENTRY_ADDR_LO, 0xfee00000u, 4);
		bar_wr(s, e + MSIX_ENTRY_ADDR_HI, 0, 4);
		bar_wr(s, e + MSIX_ENTRY_DATA, 0x4020 + v, 4);
		bar_wr(s, e + MSIX_ENTRY_CTRL, 0, 4);
	}
	cfg_wr(s, msix + PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, 2);
}

static void pci_driver_init(struct seed *s, unsigned nq, bool with_chain)
{
	bar_wr(s, CMN(STATUS), 0, 1);
	bar_rd(s, CMN(STATUS), 1);
	bar_wr(s, CMN(STATUS), VIRTIO_STATUS_ACKNOWLEDGE, 1);
	bar_wr(s, CMN(STATUS), ACK_DRV, 1);
	bar_wr(s, CMN(DFSELECT), 0, 4);
	bar_rd(s, CMN(DF), 4);
	bar_wr(s, CMN(DFSELECT), 1, 4);
	bar_rd(s, CMN(DF), 4);
	bar_wr(s, CMN(GFSELECT), 0, 4);
	bar_wr(s, CMN(GF), (1u << 5) | (1u << VIRTIO_F_EVENT_IDX) | (1u << VIRTIO_F_INDIRECT_DESC), 4);
	bar_wr(s, CMN(GFSELECT), 1, 4);
	bar_wr(s, CMN(GF), 1, 4);
	bar_wr(s, CMN(STATUS), ACK_DRV | VIRTIO_STATUS_FEATURES_OK, 1);
	bar_rd(s, CMN(STATUS), 1);
	bar_wr(s, CMN(MSIX), 0, 2);
	bar_rd(s, CMN(MSIX), 2);
	bar_rd(s, CMN(NUMQ), 2);
	bar_rd(s, VIRTIO_PCI_DEVICE_OFF, 4);
	for (unsigned q = 0; q < nq; q++) {
		bar_wr(s, CMN(Q_SELECT), q, 2);
		bar_rd(s, CMN(Q_SIZE), 2);
		bar_wr(s, CMN(Q_SIZE), 16, 2);
		bar_wr(s, CMN(Q_MSIX), q + 1, 2);
		bar_rd(s, CMN(Q_MSIX), 2);
		bar_wr(s, CMN(Q_DESCLO), (uint32_t)ring(q, 0, false), 4);
		bar_wr(s, CMN(Q_DESCHI), 0, 4);
		bar_wr(s, CMN(Q_AVAILLO), (uint32_t)ring(q, 1, false), 4);
		bar_wr(s, CMN(Q_AVAILHI), 0, 4);
		bar_wr(s, CMN(Q_USEDLO), (uint32_t)ring(q, 2, false), 4);
		bar_wr(s, CMN(Q_USEDHI), 0, 4);
		bar_rd(s, CMN(Q_NOFF), 2);
		bar_wr(s, CMN(Q_ENABLE), 1, 2);
	}
	if (with_chain)
		put_chain(s, 0, false);
	bar_wr(s, CMN(STATUS), ALL_OK, 1);
	bar_rd(s, CMN(STATUS), 1);
	bar_wr(s, VIRTIO_PCI_NOTIFY_OFF, 0, 2);   /* notify queue 0 */
	dev_op(s, false, 3, 0, 0);                /* the device serves queue 0 */
	dev_op(s, false, 1, 0, 0);                /* config interrupt */
	bar_rd(s, VIRTIO_PCI_ISR_OFF, 1);
	bar_rd(s, VIRTIO_PCI_MSIX_PBA_OFF, 8);
	dev_op(s, false, 6, 0, 1);
}

static void mmio_driver_init(struct seed *s, unsigned nq, bool with_chain)
{
	mm_rd(s, VIRTIO_MMIO_MAGIC);
	mm_rd(s, VIRTIO_MMIO_VERSION);
	mm_rd(s, VIRTIO_MMIO_DEVICE_ID);
	mm_wr(s, VIRTIO_MMIO_STATUS, 0);
	mm_wr(s, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	mm_wr(s, VIRTIO_MMIO_STATUS, ACK_DRV);
	mm_wr(s, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	mm_rd(s, VIRTIO_MMIO_DEVICE_FEATURES);
	mm_wr(s, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	mm_rd(s, VIRTIO_MMIO_DEVICE_FEATURES);
	mm_wr(s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	mm_wr(s, VIRTIO_MMIO_DRIVER_FEATURES, (1u << 5) | (1u << VIRTIO_F_EVENT_IDX));
	mm_wr(s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mm_wr(s, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	mm_wr(s, VIRTIO_MMIO_STATUS, ACK_DRV | VIRTIO_STATUS_FEATURES_OK);
	mm_rd(s, VIRTIO_MMIO_STATUS);
	rec(s, 2 | size_bits(1), 0, VIRTIO_MMIO_CONFIG + 1, 0);   /* a config byte */
	for (unsigned q = 0; q < nq; q++) {
		mm_wr(s, VIRTIO_MMIO_QUEUE_SEL, q);
		mm_rd(s, VIRTIO_MMIO_QUEUE_READY);
		mm_rd(s, VIRTIO_MMIO_QUEUE_NUM_MAX);
		mm_wr(s, VIRTIO_MMIO_QUEUE_NUM, 16);
		mm_wr(s, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)ring(q, 0, true));
		mm_wr(s, VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
		mm_wr(s, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)ring(q, 1, true));
		mm_wr(s, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
		mm_wr(s, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)ring(q, 2, true));
		mm_wr(s, VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
		mm_wr(s, VIRTIO_MMIO_QUEUE_READY, 1);
	}
	if (with_chain)
		put_chain(s, 0, true);
	mm_wr(s, VIRTIO_MMIO_STATUS, ALL_OK);
	mm_wr(s, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	dev_op(s, true, 3, 0, 0);
	mm_rd(s, VIRTIO_MMIO_INTERRUPT_STATUS);
	mm_wr(s, VIRTIO_MMIO_INTERRUPT_ACK, 1);
	dev_op(s, true, 1, 0, 0);
	mm_rd(s, VIRTIO_MMIO_INTERRUPT_STATUS);
	mm_rd(s, VIRTIO_MMIO_CONFIG_GENERATION);
}

static void header(struct seed *s, uint8_t p, uint8_t m)
{
	s->n = 0;
	s->b[0] = p;
	s->b[1] = m;
	s->b[2] = s->b[3] = 0;
	s->n = HDR;
}

static int write_seed(const char *dir, const char *name, const struct seed *s)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "wb");
	if (!f || fwrite(s->b, 1, s->n, f) != s->n || fclose(f)) {
		dprintf(report_fd, "fuzz_config: cannot write %s\n", path);
		return -1;
	}
	return 0;
}

static int write_seeds(const char *dir)
{
	static struct seed s;
	int rc = 0;
	mkdir(dir, 0777);

	/* virtio-pci, as Linux brings it up; then reset */
	header(&s, 0x00, 0x00);
	pci_linux_probe(&s, 2);
	pci_driver_init(&s, 2, true);
	bar_wr(&s, CMN(STATUS), 0, 1);
	rc |= write_seed(dir, "pci-init", &s);

	/* virtio-mmio, as Linux brings it up; then reset */
	header(&s, 0x00, 0x00);
	mmio_driver_init(&s, 2, true);
	mm_wr(&s, VIRTIO_MMIO_STATUS, 0);
	rc |= write_seed(dir, "mmio-init", &s);

	/* both, 4 and 3 queues, odd config sizes; then the BAR moves while
	 * the device runs, decoding goes off and on, and everything resets */
	header(&s, 0x06, 0x15);
	pci_linux_probe(&s, 4);
	pci_driver_init(&s, 4, false);
	mmio_driver_init(&s, 3, false);
	cfg_wr(&s, PCI_COMMAND, 0, 2);
	cfg_wr(&s, 0x10, (WIN_BASE + 0x400000) | PCI_BAR_MEM_TYPE_64, 4);
	cfg_wr(&s, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	bar_wr(&s, VIRTIO_PCI_NOTIFY_OFF + 4, 1, 2);
	cfg_wr(&s, 0x10, 0xffffffff, 4);   /* careless sizing with decoding on */
	cfg_wr(&s, 0x10, WIN_BASE | PCI_BAR_MEM_TYPE_64, 4);
	bar_wr(&s, VIRTIO_PCI_MSIX_TABLE_OFF + MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL, 1, 4);   /* mask vector 1 */
	dev_op(&s, false, 0, 0, 0);
	bar_rd(&s, VIRTIO_PCI_MSIX_PBA_OFF, 8);
	bar_wr(&s, VIRTIO_PCI_MSIX_TABLE_OFF + MSIX_ENTRY_SIZE + MSIX_ENTRY_CTRL, 0, 4);
	bar_wr(&s, CMN(STATUS), 0, 1);
	mm_wr(&s, VIRTIO_MMIO_STATUS, 0);
	rc |= write_seed(dir, "both-bar-move", &s);

	/* virtio-pci driven through the PCI_CFG window with decoding off */
	header(&s, 0x00, 0x00);
	unsigned cap = 0x40 + 16 + 20 + 16 + 16;   /* PCI_CFG: the fifth cap */
	cfg_wr(&s, PCI_COMMAND, 0, 2);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_BAR, 0, 1);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_LENGTH, 1, 4);
	static const uint8_t steps[] = { 0, VIRTIO_STATUS_ACKNOWLEDGE, ACK_DRV };
	for (unsigned i = 0; i < sizeof(steps); i++) {
		cfg_wr(&s, cap + VIRTIO_PCI_CAP_OFFSET, CMN(STATUS), 4);
		cfg_wr(&s, cap + VIRTIO_PCI_CFG_CAP_DATA, steps[i], 1);
	}
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_LENGTH, 4, 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_OFFSET, CMN(GFSELECT), 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CFG_CAP_DATA, 1, 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_OFFSET, CMN(GF), 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CFG_CAP_DATA, 1, 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_LENGTH, 1, 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_OFFSET, CMN(STATUS), 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CFG_CAP_DATA, ACK_DRV | VIRTIO_STATUS_FEATURES_OK, 1);
	cfg_rd(&s, cap + VIRTIO_PCI_CFG_CAP_DATA, 1);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_LENGTH, 4, 4);
	static const struct { unsigned off; uint32_t v; } qregs[] = {
		{ CMN(Q_DESCLO), 0x1000 }, { CMN(Q_AVAILLO), 0x1200 }, { CMN(Q_USEDLO), 0x1400 },
	};
	for (unsigned i = 0; i < 3; i++) {
		cfg_wr(&s, cap + VIRTIO_PCI_CAP_OFFSET, qregs[i].off, 4);
		cfg_wr(&s, cap + VIRTIO_PCI_CFG_CAP_DATA, qregs[i].v, 4);
	}
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_LENGTH, 2, 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_OFFSET, CMN(Q_SIZE), 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CFG_CAP_DATA, 16, 2);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_OFFSET, CMN(Q_ENABLE), 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CFG_CAP_DATA, 1, 2);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_LENGTH, 1, 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CAP_OFFSET, CMN(STATUS), 4);
	cfg_wr(&s, cap + VIRTIO_PCI_CFG_CAP_DATA, ALL_OK, 1);
	cfg_wr(&s, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	bar_rd(&s, CMN(STATUS), 1);
	rc |= write_seed(dir, "pci-cfg-window", &s);

	/* host failures: notifier registration, routes, irqfds, activate */
	header(&s, 0x00, 0x00);
	pci_linux_probe(&s, 2);
	dev_op(&s, false, 5, 0, FAIL_ROUTES | FAIL_IRQFD);
	pci_driver_init(&s, 2, false);
	dev_op(&s, false, 5, 0, FAIL_NOTIFIERS);
	mmio_driver_init(&s, 2, false);
	dev_op(&s, false, 5, 0, 0);
	cfg_wr(&s, PCI_COMMAND, 0, 2);
	cfg_wr(&s, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	bar_wr(&s, CMN(STATUS), 0, 1);
	dev_op(&s, false, 5, 0, FAIL_ACTIVATE);
	pci_driver_init(&s, 2, false);
	rc |= write_seed(dir, "failures", &s);

	/* Found by this target, kept as seeds so every run replays them.
	 * 1: a driver clears DRIVER_OK on a running device, enables another
	 * queue, sets DRIVER_OK again: the device was activated twice and ran
	 * a queue whose ring was never checked. */
	header(&s, 0x00, 0x00);
	cfg_wr(&s, PCI_COMMAND, PCI_COMMAND_MEMORY, 2);
	bar_wr(&s, CMN(GFSELECT), 1, 4);
	bar_wr(&s, CMN(GF), 1, 4);
	bar_wr(&s, CMN(STATUS), ACK_DRV | VIRTIO_STATUS_FEATURES_OK, 1);
	bar_wr(&s, CMN(Q_SIZE), 16, 2);
	bar_wr(&s, CMN(Q_DESCLO), 0x1000, 8);
	bar_wr(&s, CMN(Q_AVAILLO), 0x1200, 8);
	bar_wr(&s, CMN(Q_USEDLO), 0x1400, 8);
	bar_wr(&s, CMN(Q_ENABLE), 1, 2);
	bar_wr(&s, CMN(STATUS), ALL_OK, 1);
	bar_wr(&s, CMN(STATUS), ACK_DRV | VIRTIO_STATUS_FEATURES_OK, 1);
	bar_wr(&s, CMN(Q_SELECT), 1, 2);
	bar_wr(&s, CMN(Q_ENABLE), 1, 2);
	bar_wr(&s, CMN(STATUS), ALL_OK, 1);
	rc |= write_seed(dir, "regress-status-bits-cleared", &s);

	/* 2: a virtio-mmio Status write of 0x40000 resets the device (the
	 * register is 8 bits wide) but left InterruptStatus set. */
	header(&s, 0x00, 0x00);
	mm_wr(&s, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	mm_wr(&s, VIRTIO_MMIO_DRIVER_FEATURES, 1);
	mm_wr(&s, VIRTIO_MMIO_STATUS, ALL_OK);
	dev_op(&s, true, 1, 0, 0);
	mm_wr(&s, VIRTIO_MMIO_STATUS, 0x40000);
	rc |= write_seed(dir, "regress-mmio-reset-isr", &s);
	return rc ? -1 : 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc, (void)argv;
	/* run.sh passes -close_fd_mask=2 to silence the product's warnings:
	 * keep our own stderr for check failures. */
	int fd = dup(2);
	if (fd >= 0)
		report_fd = fd;
	trace = getenv("FUZZ_CONFIG_TRACE") != NULL;
	const char *dir = getenv("FUZZ_CONFIG_WRITE_SEEDS");
	if (dir)
		exit(write_seeds(dir) ? 1 : 0);
	return 0;
}
