#include "devices/virtio/pci.h"

#include <stdio.h>
#include <stdlib.h>

#include "vmm/base/snap_format.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (unsigned i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* size bytes (1, 2 or 4), little-endian. */
static uint32_t get_le_n(const uint8_t *p, unsigned size)
{
	uint32_t v = 0;
	for (unsigned i = size; i-- > 0;)
		v = v << 8 | p[i];
	return v;
}

static uint32_t get32(const uint8_t *p)
{
	return p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- interrupts ---- */

static void irq_queue(const struct virtio_irq *irq, unsigned q)
{
	struct virtio_pci *vp = irq->ctx;
	if (q >= vp->t.n_queues)
		return;
	if (!msix_enabled(&vp->msix))
		atomic_fetch_or(&vp->isr, VIRTIO_PCI_ISR_QUEUE);
	eventfd_signal(vp->t.queues[q].call_fd);
}

static void irq_config(const struct virtio_irq *irq)
{
	struct virtio_pci *vp = irq->ctx;
	atomic_fetch_or(&vp->isr, VIRTIO_PCI_ISR_CONFIG);
	eventfd_signal(vp->config_fd);
}

static void irq_needs_reset(const struct virtio_irq *irq)
{
	struct virtio_pci *vp = irq->ctx;
	virtio_transport_set_needs_reset(&vp->t);
	irq_config(irq);
}

/* With MSI-X on, the call eventfd is all a queue interrupt is (an irqfd on
 * its vector's GSI); with it off, irq_queue must also set the ISR. */
static int irq_queue_notifier(const struct virtio_irq *irq, unsigned q)
{
	struct virtio_pci *vp = irq->ctx;
	if (q >= vp->t.n_queues || !msix_enabled(&vp->msix))
		return -1;
	return vp->t.queues[q].call_fd;
}

/* ---- queue notifiers, kept at BAR 0's current address ---- */

static void pci_notifier_for(struct virtio_transport *t, unsigned q, struct host_notifier *n)
{
	(void)t;
	*n = (struct host_notifier){
		.addr = VIRTIO_PCI_NOTIFY_OFF + (uint64_t)q * VIRTIO_PCI_NOTIFY_MULT,   /* BAR-relative */
		.len = 2,
		.pio = false,
		.datamatch = true,
		.data = q,
	};
}

static int notifiers_apply(struct virtio_pci *vp, uint64_t base, bool assign)
{
	struct host_notifier n[VIRTIO_MAX_QUEUES];
	for (unsigned i = 0; i < vp->n_notifiers; i++) {
		n[i] = vp->notifiers[i];
		n[i].addr += base;
	}
	return vp->host.ops->set_notifiers(vp->host.ctx, n, vp->n_notifiers, assign);
}

/* Registers the wanted notifiers where BAR 0 decodes now, and only there.
 * t.lock held (or no other thread, at destroy). */
static int notifiers_sync(struct virtio_pci *vp)
{
	uint64_t base = 0;
	bool decoded = pci_dev_bar_decoded(&vp->pci, VIRTIO_PCI_BAR, &base);
	bool want = vp->notifiers_wanted && decoded && vp->n_notifiers;
	if (vp->notifiers_live && (!want || base != vp->live_base)) {
		notifiers_apply(vp, vp->live_base, false);
		vp->notifiers_live = false;
	}
	if (want && !vp->notifiers_live) {
		int e = notifiers_apply(vp, base, true);
		if (e)
			return e;
		vp->notifiers_live = true;
		vp->live_base = base;
	}
	return 0;
}

/* The common transport's host ops go through here: it hands us the batch,
 * we decide the address. */
static int wrap_set_notifiers(void *ctx, const struct host_notifier *n, unsigned count, bool assign)
{
	struct virtio_pci *vp = ctx;
	if (vp->notifiers_wanted) {
		vp->notifiers_wanted = false;
		notifiers_sync(vp);
	}
	if (!assign)
		return 0;
	if (count > VIRTIO_MAX_QUEUES)
		return -1;
	memcpy(vp->notifiers, n, count * sizeof(*n));
	vp->n_notifiers = count;
	vp->notifiers_wanted = true;
	int e = notifiers_sync(vp);
	if (e) {
		vp->notifiers_wanted = false;
		return e;
	}
	return 0;
}

static int wrap_set_irqfd(void *ctx, int fd, unsigned gsi, bool assign)
{
	struct virtio_pci *vp = ctx;
	return vp->host.ops->set_irqfd(vp->host.ctx, fd, gsi, assign);
}

static int wrap_run_control(void *ctx, int (*fn)(void *), void *arg)
{
	struct virtio_pci *vp = ctx;
	return device_host_run_control(&vp->host, fn, arg);
}

/* MSI-X talks to the VM directly (vp->host); the common transport needs
 * only these. */
static const struct device_host_ops wrap_host_ops = {
	.set_notifiers = wrap_set_notifiers,
	.set_irqfd = wrap_set_irqfd,
	.run_control = wrap_run_control,
};

/* ---- common configuration ---- */

/* Width of the field starting at off, 0 when none does. */
static unsigned common_field_width(uint64_t off)
{
	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
	case VIRTIO_PCI_COMMON_DF:
	case VIRTIO_PCI_COMMON_GFSELECT:
	case VIRTIO_PCI_COMMON_GF:
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		return 4;
	case VIRTIO_PCI_COMMON_MSIX:
	case VIRTIO_PCI_COMMON_NUMQ:
	case VIRTIO_PCI_COMMON_Q_SELECT:
	case VIRTIO_PCI_COMMON_Q_SIZE:
	case VIRTIO_PCI_COMMON_Q_MSIX:
	case VIRTIO_PCI_COMMON_Q_ENABLE:
	case VIRTIO_PCI_COMMON_Q_NOFF:
	case VIRTIO_PCI_COMMON_Q_NDATA:
	case VIRTIO_PCI_COMMON_Q_RESET:
		return 2;
	case VIRTIO_PCI_COMMON_STATUS:
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		return 1;
	default:
		return 0;
	}
}

/* Each field with its natural width; the 64-bit queue addresses also as one
 * 8-byte access. */
static bool common_access_ok(uint64_t off, unsigned size)
{
	unsigned w = common_field_width(off);
	if (w && size == w)
		return true;
	return size == 8 && (off == VIRTIO_PCI_COMMON_Q_DESCLO || off == VIRTIO_PCI_COMMON_Q_AVAILLO ||
			     off == VIRTIO_PCI_COMMON_Q_USEDLO);
}

static uint64_t common_read(struct virtio_pci *vp, uint64_t off)
{
	struct virtio_transport *t = &vp->t;
	struct virtio_queue *q = virtio_transport_selected(t);

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		return t->device_features_sel;
	case VIRTIO_PCI_COMMON_DF:
		return virtio_transport_features_read(t);
	case VIRTIO_PCI_COMMON_GFSELECT:
		return t->driver_features_sel;
	case VIRTIO_PCI_COMMON_GF:
		return t->driver_features_sel < 2 ? (uint32_t)(t->driver_features >> (32 * t->driver_features_sel)) : 0;
	case VIRTIO_PCI_COMMON_MSIX:
		return vp->msix_config;
	case VIRTIO_PCI_COMMON_NUMQ:
		return t->n_queues;
	case VIRTIO_PCI_COMMON_STATUS:
		return virtio_transport_status_read(t);
	case VIRTIO_PCI_COMMON_CFGGENERATION:
		return (uint8_t)t->config_generation;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		return t->queue_sel;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		return q ? q->size : 0;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		return q ? q->msix_vector : MSIX_NO_VECTOR;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		return q ? q->ready : 0;
	case VIRTIO_PCI_COMMON_Q_NOFF:
		return q ? t->queue_sel : 0;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
		return q ? q->desc : 0;
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		return q ? q->desc >> 32 : 0;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
		return q ? q->avail : 0;
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		return q ? q->avail >> 32 : 0;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
		return q ? q->used : 0;
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		return q ? q->used >> 32 : 0;
	default:
		return 0;   /* queue_notify_data, queue_reset: features we do not offer */
	}
}

/* A 64-bit queue address written as its low half, high half, or whole. */
static void set_addr(uint64_t *a, uint64_t v, bool high, unsigned size)
{
	if (size == 8)
		*a = v;
	else if (high)
		*a = (*a & 0xffffffffull) | (v << 32);
	else
		*a = (*a & ~0xffffffffull) | (uint32_t)v;
}

static void after_reset(struct virtio_pci *vp)
{
	struct virtio_transport *t = &vp->t;
	for (unsigned i = 0; i < t->n_queues; i++) {
		t->queues[i].size = t->ops->queue_max_size;   /* queue_size reads the maximum after reset */
		t->queues[i].msix_vector = msix_set_user_vector(&vp->msix, i, MSIX_NO_VECTOR);
		/* the device is stopped: nothing of the old driver may fire later */
		eventfd_drain(t->queues[i].call_fd);
	}
	vp->msix_config = msix_set_user_vector(&vp->msix, t->n_queues, MSIX_NO_VECTOR);
	eventfd_drain(vp->config_fd);
	atomic_store(&vp->isr, 0);
}

static void common_write(struct virtio_pci *vp, uint64_t off, uint64_t v, unsigned size)
{
	struct virtio_transport *t = &vp->t;
	struct virtio_queue *sel = virtio_transport_selected(t);
	struct virtio_queue *q = virtio_transport_queue_writable(t) ? sel : NULL;

	switch (off) {
	case VIRTIO_PCI_COMMON_DFSELECT:
		t->device_features_sel = (uint32_t)v;
		break;
	case VIRTIO_PCI_COMMON_GFSELECT:
		t->driver_features_sel = (uint32_t)v;
		break;
	case VIRTIO_PCI_COMMON_GF:
		virtio_transport_features_write(t, (uint32_t)v);
		break;
	case VIRTIO_PCI_COMMON_MSIX:
		vp->msix_config = msix_set_user_vector(&vp->msix, t->n_queues, (uint16_t)v);
		break;
	case VIRTIO_PCI_COMMON_STATUS:
		virtio_transport_status_write(t, (uint8_t)v);
		if ((uint8_t)v == 0)
			after_reset(vp);
		break;
	case VIRTIO_PCI_COMMON_Q_SELECT:
		t->queue_sel = (uint16_t)v;
		break;
	case VIRTIO_PCI_COMMON_Q_SIZE:
		if (q)
			q->size = v <= t->ops->queue_max_size ? (uint16_t)v : 0;
		break;
	case VIRTIO_PCI_COMMON_Q_MSIX:
		if (sel)
			sel->msix_vector = msix_set_user_vector(&vp->msix, t->queue_sel, (uint16_t)v);
		break;
	case VIRTIO_PCI_COMMON_Q_ENABLE:
		if (q && v == 1)
			q->ready = true;
		break;
	case VIRTIO_PCI_COMMON_Q_DESCLO:
	case VIRTIO_PCI_COMMON_Q_DESCHI:
		if (q)
			set_addr(&q->desc, v, off == VIRTIO_PCI_COMMON_Q_DESCHI, size);
		break;
	case VIRTIO_PCI_COMMON_Q_AVAILLO:
	case VIRTIO_PCI_COMMON_Q_AVAILHI:
		if (q)
			set_addr(&q->avail, v, off == VIRTIO_PCI_COMMON_Q_AVAILHI, size);
		break;
	case VIRTIO_PCI_COMMON_Q_USEDLO:
	case VIRTIO_PCI_COMMON_Q_USEDHI:
		if (q)
			set_addr(&q->used, v, off == VIRTIO_PCI_COMMON_Q_USEDHI, size);
		break;
	default:
		break;   /* read-only or reserved: ignored */
	}
}

/* ---- BAR 0 ---- */

static bool in_region(uint64_t off, uint64_t start)
{
	return off >= start && off - start < VIRTIO_PCI_REGION_SIZE;
}

static void bar_read(void *opaque, uint64_t off, void *data, unsigned size)
{
	struct virtio_pci *vp = opaque;
	struct virtio_transport *t = &vp->t;
	memset(data, 0, size);
	if (in_region(off, VIRTIO_PCI_MSIX_TABLE_OFF)) {
		msix_table_read(&vp->msix, off - VIRTIO_PCI_MSIX_TABLE_OFF, data, size);
		return;
	}
	if (in_region(off, VIRTIO_PCI_MSIX_PBA_OFF)) {
		msix_pba_read(&vp->msix, off - VIRTIO_PCI_MSIX_PBA_OFF, data, size);
		return;
	}
	pthread_mutex_lock(&t->lock);
	if (in_region(off, VIRTIO_PCI_COMMON_OFF)) {
		if (common_access_ok(off, size)) {
			uint64_t v = common_read(vp, off);
			memcpy(data, &v, size);
		}
	} else if (off == VIRTIO_PCI_ISR_OFF) {
		*(uint8_t *)data = (uint8_t)atomic_exchange(&vp->isr, 0);   /* read clears */
	} else if (in_region(off, VIRTIO_PCI_DEVICE_OFF)) {
		virtio_transport_config_read(t, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF), data, size);
	}
	/* the rest of the ISR region, notify, and unused space read 0 */
	pthread_mutex_unlock(&t->lock);
}

static void bar_write(void *opaque, uint64_t off, const void *data, unsigned size)
{
	struct virtio_pci *vp = opaque;
	struct virtio_transport *t = &vp->t;
	if (in_region(off, VIRTIO_PCI_MSIX_TABLE_OFF)) {
		msix_table_write(&vp->msix, off - VIRTIO_PCI_MSIX_TABLE_OFF, data, size);
		return;
	}
	uint64_t v = 0;
	memcpy(&v, data, size < sizeof(v) ? size : sizeof(v));
	pthread_mutex_lock(&t->lock);
	if (in_region(off, VIRTIO_PCI_COMMON_OFF)) {
		if (common_access_ok(off, size))
			common_write(vp, off, v, size);
	} else if (in_region(off, VIRTIO_PCI_DEVICE_OFF)) {
		virtio_transport_config_write(t, (uint32_t)(off - VIRTIO_PCI_DEVICE_OFF), data, size);
	} else if (in_region(off, VIRTIO_PCI_NOTIFY_OFF)) {
		/* A notify the ioeventfds did not take (before DRIVER_OK, another
		 * width, BAR moved): the address names the queue. */
		uint64_t rel = off - VIRTIO_PCI_NOTIFY_OFF;
		if (rel % VIRTIO_PCI_NOTIFY_MULT == 0 && (size == 2 || size == 4))
			virtio_transport_notify(t, (uint32_t)(rel / VIRTIO_PCI_NOTIFY_MULT));
	}
	/* ISR, PBA and unused space are read-only */
	pthread_mutex_unlock(&t->lock);
}

static const struct io_ops bar_ops = { .read = bar_read, .write = bar_write };

/* ---- PCI config space hooks (host lock held) ---- */

/* VIRTIO_PCI_CAP_PCI_CFG: an access to pci_cfg_data is an access of
 * cap.length bytes at cap.offset of BAR cap.bar. */
static void cfg_window(struct virtio_pci *vp, bool write)
{
	uint8_t *c = vp->pci.cfg + vp->cfg_cap;
	uint32_t off = get32(c + VIRTIO_PCI_CAP_OFFSET), len = get32(c + VIRTIO_PCI_CAP_LENGTH);
	if (c[VIRTIO_PCI_CAP_BAR] != VIRTIO_PCI_BAR || (len != 1 && len != 2 && len != 4) || off % len ||
	    off >= VIRTIO_PCI_BAR_SIZE)
		return;
	if (write)
		bar_write(vp, off, c + VIRTIO_PCI_CFG_CAP_DATA, len);
	else
		bar_read(vp, off, c + VIRTIO_PCI_CFG_CAP_DATA, len);
}

static bool touches_cfg_data(struct virtio_pci *vp, unsigned off, unsigned size)
{
	unsigned start = vp->cfg_cap + VIRTIO_PCI_CFG_CAP_DATA;
	return vp->cfg_cap && off < start + 4 && start < off + size;
}

static void pci_config_read(struct pci_device *d, unsigned off, unsigned size)
{
	struct virtio_pci *vp = d->ctx;
	if (touches_cfg_data(vp, off, size))
		cfg_window(vp, false);
}

static void pci_config_write(struct pci_device *d, unsigned off, unsigned size)
{
	struct virtio_pci *vp = d->ctx;
	if (touches_cfg_data(vp, off, size))
		cfg_window(vp, true);
}

static void pci_decode_changed(struct pci_device *d)
{
	struct virtio_pci *vp = d->ctx;
	pthread_mutex_lock(&vp->t.lock);
	int e = notifiers_sync(vp);
	if (e)
		log_warn_limited(&vp->t.log_limit,
				 "%s: cannot register queue notifiers at BAR 0 = 0x%llx: %s; notifies take the exit path",
				 vp->t.name, (unsigned long long)vp->pci.bars[VIRTIO_PCI_BAR].addr,
				 device_host_error(e));
	pthread_mutex_unlock(&vp->t.lock);
}

static const struct pci_device_ops vp_pci_ops = {
	.config_read = pci_config_read,
	.config_write = pci_config_write,
	.decode_changed = pci_decode_changed,
};

/* ---- setup ---- */

static uint8_t add_virtio_cap(struct pci_device *d, uint8_t type, uint32_t off, uint32_t len,
			      const uint8_t *extra, uint8_t extra_len)
{
	uint8_t cap[24] = { PCI_CAP_ID_VNDR, 0, (uint8_t)(16 + extra_len), type, VIRTIO_PCI_BAR };
	put32(cap + VIRTIO_PCI_CAP_OFFSET, off);
	put32(cap + VIRTIO_PCI_CAP_LENGTH, len);
	if (extra_len)
		memcpy(cap + 16, extra, extra_len);
	return pci_dev_add_cap(d, cap, (uint8_t)(16 + extra_len));
}

static uint32_t class_for(uint32_t device_id)
{
	switch (device_id) {
	case VIRTIO_ID_BLOCK:
		return 0x010000;   /* mass storage, SCSI: what QEMU and Linux expect */
	case VIRTIO_ID_NET:
		return 0x020000;   /* network, Ethernet */
	default:
		return 0xff0000;
	}
}

int virtio_pci_init(struct virtio_pci *vp, const char *name, const struct virtio_dev_ops *ops, void *dev,
		    const struct guest_mem *mem, const struct device_host *host)
{
	memset(vp, 0, sizeof(*vp));
	vp->config_fd = -1;
	vp->host = *host;
	vp->msix_config = MSIX_NO_VECTOR;
	/* The common transport reaches the VM through us: notifiers follow BAR 0. */
	const struct device_host transport_host = { &wrap_host_ops, vp };
	vp->hooks = (struct virtio_transport_hooks){
		.notifier_for = pci_notifier_for,
		.irq = { irq_queue, irq_config, irq_needs_reset, vp, irq_queue_notifier },
	};
	if (virtio_transport_init(&vp->t, name, ops, dev, mem, &transport_host, &vp->hooks))
		return -1;
	unsigned nq = vp->t.n_queues;
	if (VIRTIO_PCI_NOTIFY_MULT * nq > VIRTIO_PCI_REGION_SIZE ||
	    (nq + 1) * MSIX_ENTRY_SIZE > VIRTIO_PCI_REGION_SIZE) {
		log_error("%s: %u queues do not fit the BAR layout", name, nq);
		return -1;
	}
	for (unsigned i = 0; i < nq; i++)
		vp->t.queues[i].size = ops->queue_max_size;
	vp->config_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vp->config_fd < 0) {
		log_error("%s: eventfd: %s", name, strerror(errno));
		return -1;
	}

	const struct pci_device_id id = {
		.vendor = VIRTIO_PCI_VENDOR,
		.device = (uint16_t)(VIRTIO_PCI_DEVICE_BASE + ops->device_id),
		.subsys_vendor = VIRTIO_PCI_VENDOR,
		.subsys_id = (uint16_t)(VIRTIO_PCI_SUBSYS_BASE + ops->device_id),
		.class_code = class_for(ops->device_id),
		.revision = 1,
	};
	struct pci_device *d = &vp->pci;
	pci_dev_init(d, &id, &vp_pci_ops, vp);
	if (pci_dev_add_bar(d, VIRTIO_PCI_BAR, VIRTIO_PCI_BAR_SIZE, true, false, &bar_ops, vp)) {
		log_error("internal: %s: BAR 0", name);
		return -1;
	}

	uint8_t mult[4];
	put32(mult, VIRTIO_PCI_NOTIFY_MULT);
	uint8_t cfg_data[4] = { 0 };
	bool ok = add_virtio_cap(d, VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF, VIRTIO_PCI_REGION_SIZE,
				 NULL, 0) &&
		  add_virtio_cap(d, VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF, VIRTIO_PCI_REGION_SIZE,
				 mult, sizeof(mult)) &&
		  add_virtio_cap(d, VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, VIRTIO_PCI_REGION_SIZE, NULL, 0);
	if (ok && ops->config_size(dev))
		ok = add_virtio_cap(d, VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, VIRTIO_PCI_REGION_SIZE,
				    NULL, 0);
	if (ok) {
		vp->cfg_cap = add_virtio_cap(d, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, cfg_data, sizeof(cfg_data));
		ok = vp->cfg_cap != 0;
		/* bar, offset, length and data are the driver's to write */
		pci_dev_set_wmask(d, vp->cfg_cap + VIRTIO_PCI_CAP_BAR, 1, 0xff);
		pci_dev_set_wmask(d, vp->cfg_cap + VIRTIO_PCI_CAP_OFFSET, 12, 0xff);
	}

	if (!ok) {
		log_error("internal: %s: PCI capabilities do not fit", name);
		return -1;
	}
	vp->msix_initialized = true;
	if (msix_init(&vp->msix, name, nq + 1, nq + 1, &vp->host))
		return -1;
	if (!pci_dev_add_msix_cap(d, &vp->msix, nq + 1, VIRTIO_PCI_BAR, VIRTIO_PCI_MSIX_TABLE_OFF,
				  VIRTIO_PCI_MSIX_PBA_OFF)) {
		log_error("internal: %s: MSI-X capability does not fit", name);
		return -1;
	}
	/* users 0..nq-1: the queues' call eventfds; user nq: config changes */
	for (unsigned i = 0; i < nq; i++)
		msix_set_user_fd(&vp->msix, i, vp->t.queues[i].call_fd);
	msix_set_user_fd(&vp->msix, nq, vp->config_fd);
	return 0;
}

void virtio_pci_destroy(struct virtio_pci *vp)
{
	/* irqfds first: they are removed by fd, which must still be open */
	if (vp->msix_initialized)
		msix_destroy(&vp->msix);
	vp->msix_initialized = false;
	virtio_transport_destroy(&vp->t);
	if (vp->config_fd >= 0)
		close(vp->config_fd);
	vp->config_fd = -1;
}

/* ---- snapshots ---- */

/* Config space the driver writes, replayed at restore in this order (BARs
 * before the command register that turns decoding on). */
static const struct { uint8_t off, size; } saved_cfg[] = {
	{ PCI_BASE_ADDRESS_0, 4 }, { PCI_BASE_ADDRESS_0 + 4, 4 }, { PCI_BASE_ADDRESS_0 + 8, 4 },
	{ PCI_BASE_ADDRESS_0 + 12, 4 }, { PCI_BASE_ADDRESS_0 + 16, 4 }, { PCI_BASE_ADDRESS_0 + 20, 4 },
	{ PCI_INTERRUPT_LINE, 1 }, { PCI_COMMAND, 2 },
};
#define N_SAVED_CFG (sizeof(saved_cfg) / sizeof(saved_cfg[0]))

void virtio_pci_save(struct virtio_pci *vp, struct snap_writer *w)
{
	for (unsigned i = 0; i < N_SAVED_CFG; i++)
		snap_put_u32(w, (uint32_t)get_le_n(vp->pci.cfg + saved_cfg[i].off, saved_cfg[i].size));
	snap_put_u16(w, (uint16_t)get_le_n(vp->pci.cfg + vp->pci.msix_cap + PCI_MSIX_FLAGS, 2));
	pthread_mutex_lock(&vp->msix.lock);
	snap_put_u32(w, vp->msix.n_vectors);
	for (unsigned i = 0; i < vp->msix.n_vectors; i++)
		for (unsigned k = 0; k < 4; k++)
			snap_put_u32(w, vp->msix.vectors[i].entry[k]);
	pthread_mutex_unlock(&vp->msix.lock);
	pthread_mutex_lock(&vp->t.lock);
	snap_put_u16(w, vp->msix_config);
	snap_put_u32(w, atomic_load(&vp->isr));
	virtio_transport_save(&vp->t, w);
	pthread_mutex_unlock(&vp->t.lock);
}

static void restore_vector(void *ctx, unsigned q, uint16_t v)
{
	struct virtio_pci *vp = ctx;
	vp->t.queues[q].msix_vector = msix_set_user_vector(&vp->msix, q, v);
}

int virtio_pci_restore(struct virtio_pci *vp, struct snap_reader *r, char *err, size_t errlen)
{
	uint32_t cfg[N_SAVED_CFG];
	for (unsigned i = 0; i < N_SAVED_CFG; i++)
		cfg[i] = snap_get_u32(r);
	uint16_t msix_control = snap_get_u16(r);
	uint32_t n_vectors = snap_get_u32(r);
	if (!snap_failed(r) && n_vectors != vp->msix.n_vectors)
		snap_fail(r, "%u MSI-X vectors, this device has %u", n_vectors, vp->msix.n_vectors);
	uint32_t (*table)[4] = snap_failed(r) ? NULL : calloc(n_vectors ? n_vectors : 1, sizeof(*table));
	if (!snap_failed(r) && !table)
		snap_fail(r, "out of memory");
	for (unsigned i = 0; table && i < n_vectors; i++)
		for (unsigned k = 0; k < 4; k++)
			table[i][k] = snap_get_u32(r);
	uint16_t msix_config = snap_get_u16(r);
	uint32_t isr = snap_get_u32(r);
	struct virtio_transport_state st;
	if (snap_failed(r) || virtio_transport_state_read(r, &st)) {
		snprintf(err, errlen, "%s", r->err);
		free(table);
		return -1;
	}
	/* As a driver would: BARs and decoding, the MSI-X table with the
	 * control bits last, MSI-X on; then the transport. */
	for (unsigned i = 0; i < N_SAVED_CFG; i++)
		pci_dev_config_write(&vp->pci, saved_cfg[i].off, cfg[i], saved_cfg[i].size);
	for (unsigned i = 0; i < n_vectors; i++)
		for (unsigned k = 0; k < 4; k++)
			msix_table_write(&vp->msix, i * MSIX_ENTRY_SIZE + k * 4, &table[i][k], 4);
	free(table);
	pci_dev_config_write(&vp->pci, vp->pci.msix_cap + PCI_MSIX_FLAGS, msix_control, 2);
	pthread_mutex_lock(&vp->t.lock);
	vp->msix_config = msix_set_user_vector(&vp->msix, vp->t.n_queues, msix_config);
	int rc = virtio_transport_restore(&vp->t, &st, r, restore_vector, vp, err, errlen);
	if (!rc)
		atomic_fetch_or(&vp->isr, isr & (VIRTIO_PCI_ISR_QUEUE | VIRTIO_PCI_ISR_CONFIG));
	pthread_mutex_unlock(&vp->t.lock);
	return rc;
}
