#include "devices/virtio/mmio.h"

#include <stdio.h>
#include "vmm/base/snap_format.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"

#define MMIO_MAGIC_VALUE 0x74726976      /* "virt" */
#define MMIO_VENDOR_ID 0x4d564d4d        /* "MMVM" */

static struct virtio_mmio *from_irq(const struct virtio_irq *irq)
{
	return irq->ctx;
}

/* Sets bit in InterruptStatus and raises the line, once: while the bit is
 * still set (not acknowledged), the guest's handler has yet to read the
 * status, or read it with the bit and acknowledges before it looks at the
 * queues, so it sees this interrupt's work too. Another edge would only run
 * it again for nothing, three exits each time (status read, ack, EOI): what
 * a level-triggered line gives for free. Another bit set meanwhile does not
 * count: a handler that read only CONFIG would skip the queues. */
static void raise(struct virtio_mmio *m, unsigned bit)
{
	if (atomic_fetch_or(&m->isr, bit) & bit)
		return;
	eventfd_signal(m->irq_fd);
}

static void irq_queue(const struct virtio_irq *irq, unsigned q)
{
	(void)q;   /* one interrupt line for every queue */
	raise(from_irq(irq), VIRTIO_MMIO_INT_VRING);
}

static void irq_config(const struct virtio_irq *irq)
{
	raise(from_irq(irq), VIRTIO_MMIO_INT_CONFIG);
}

static void irq_needs_reset(const struct virtio_irq *irq)
{
	struct virtio_mmio *m = from_irq(irq);
	virtio_transport_set_needs_reset(&m->t);
	raise(m, VIRTIO_MMIO_INT_CONFIG);
}

static void mmio_notifier_for(struct virtio_transport *t, unsigned q, struct host_notifier *n)
{
	struct virtio_mmio *m = (struct virtio_mmio *)t;   /* t is the first member */
	*n = (struct host_notifier){
		.addr = m->base + VIRTIO_MMIO_QUEUE_NOTIFY,
		.len = 4,
		.pio = false,
		.datamatch = true,
		.data = q,
	};
}

int virtio_mmio_init(struct virtio_mmio *m, const char *name, const struct virtio_dev_ops *ops, void *dev,
		     const struct guest_mem *mem, const struct device_host *host,
		     uint64_t base, unsigned gsi)
{
	m->base = base;
	m->gsi = gsi;
	m->irq_fd = -1;
	atomic_store(&m->isr, 0);
	m->hooks = (struct virtio_transport_hooks){
		.notifier_for = mmio_notifier_for,
		/* no queue_notifier: a queue interrupt must set InterruptStatus first */
		.irq = { irq_queue, irq_config, irq_needs_reset, m },
	};
	if (virtio_transport_init(&m->t, name, ops, dev, mem, host, &m->hooks))
		return -1;
	m->irq_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (m->irq_fd < 0) {
		log_error("%s: eventfd: %s", name, strerror(errno));
		return -1;
	}
	int e = host->ops->set_irqfd(host->ctx, m->irq_fd, gsi, true);
	if (e) {
		log_error("%s: cannot connect the interrupt to GSI %u: %s", name, gsi, device_host_error(e));
		return -1;
	}
	return 0;
}

void virtio_mmio_destroy(struct virtio_mmio *m)
{
	virtio_transport_destroy(&m->t);
	if (m->irq_fd >= 0) {
		m->t.host.ops->set_irqfd(m->t.host.ctx, m->irq_fd, m->gsi, false);
		close(m->irq_fd);
	}
	m->irq_fd = -1;
}

static uint32_t reg_read(struct virtio_mmio *m, uint64_t off)
{
	struct virtio_transport *t = &m->t;
	struct virtio_queue *q;

	switch (off) {
	case VIRTIO_MMIO_MAGIC:
		return MMIO_MAGIC_VALUE;
	case VIRTIO_MMIO_VERSION:
		return 2;
	case VIRTIO_MMIO_DEVICE_ID:
		return t->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID:
		return MMIO_VENDOR_ID;
	case VIRTIO_MMIO_DEVICE_FEATURES:
		return virtio_transport_features_read(t);
	case VIRTIO_MMIO_QUEUE_NUM_MAX:
		q = virtio_transport_selected(t);
		return q ? t->ops->queue_max_size : 0;
	case VIRTIO_MMIO_QUEUE_READY:
		q = virtio_transport_selected(t);
		return q ? q->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS:
		return atomic_load(&m->isr);
	case VIRTIO_MMIO_STATUS:
		return virtio_transport_status_read(t);
	case VIRTIO_MMIO_CONFIG_GENERATION:
		return t->config_generation;
	default:
		return 0;   /* write-only or reserved */
	}
}

static void set_low(uint64_t *v, uint32_t lo) { *v = (*v & ~0xffffffffull) | lo; }
static void set_high(uint64_t *v, uint32_t hi) { *v = (*v & 0xffffffffull) | ((uint64_t)hi << 32); }

static void reg_write(struct virtio_mmio *m, uint64_t off, uint32_t v)
{
	struct virtio_transport *t = &m->t;
	struct virtio_queue *q = virtio_transport_queue_writable(t) ? virtio_transport_selected(t) : NULL;

	switch (off) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		t->device_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		virtio_transport_features_write(t, v);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		t->driver_features_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		t->queue_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_NUM:
		if (q)
			q->size = v <= t->ops->queue_max_size ? (uint16_t)v : 0;
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		if (q && v == 1)
			q->ready = true;
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		virtio_transport_notify(t, v);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		atomic_fetch_and(&m->isr, ~v);
		break;
	case VIRTIO_MMIO_STATUS:
		virtio_transport_status_write(t, (uint8_t)v);
		if ((uint8_t)v == 0)   /* a reset, whatever the reserved bits say */
			atomic_store(&m->isr, 0);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
		if (q)
			set_low(&q->desc, v);
		break;
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		if (q)
			set_high(&q->desc, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
		if (q)
			set_low(&q->avail, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		if (q)
			set_high(&q->avail, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
		if (q)
			set_low(&q->used, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		if (q)
			set_high(&q->used, v);
		break;
	default:
		break;   /* read-only or reserved: ignored */
	}
}

static void mmio_read(void *dev, uint64_t off, void *data, unsigned size)
{
	struct virtio_mmio *m = dev;
	pthread_mutex_lock(&m->t.lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		virtio_transport_config_read(&m->t, (uint32_t)(off - VIRTIO_MMIO_CONFIG), data, size);
	} else if (size == 4 && !(off & 3)) {
		uint32_t v = reg_read(m, off);
		memcpy(data, &v, 4);
	} else {
		memset(data, 0, size);   /* registers are 32-bit only */
	}
	pthread_mutex_unlock(&m->t.lock);
}

static void mmio_write(void *dev, uint64_t off, const void *data, unsigned size)
{
	struct virtio_mmio *m = dev;
	pthread_mutex_lock(&m->t.lock);
	if (off >= VIRTIO_MMIO_CONFIG) {
		virtio_transport_config_write(&m->t, (uint32_t)(off - VIRTIO_MMIO_CONFIG), data, size);
	} else if (size == 4 && !(off & 3)) {
		uint32_t v;
		memcpy(&v, data, 4);
		reg_write(m, off, v);
	}
	pthread_mutex_unlock(&m->t.lock);
}

const struct io_ops virtio_mmio_io_ops = { .read = mmio_read, .write = mmio_write };

void virtio_mmio_save(struct virtio_mmio *m, struct snap_writer *w)
{
	pthread_mutex_lock(&m->t.lock);
	snap_put_u32(w, atomic_load(&m->isr));
	virtio_transport_save(&m->t, w);
	pthread_mutex_unlock(&m->t.lock);
}

int virtio_mmio_restore(struct virtio_mmio *m, struct snap_reader *r, char *err, size_t errlen)
{
	struct virtio_transport_state st;
	uint32_t isr = snap_get_u32(r);
	if (virtio_transport_state_read(r, &st)) {
		snprintf(err, errlen, "%s", r->err);
		return -1;
	}
	pthread_mutex_lock(&m->t.lock);
	int rc = virtio_transport_restore(&m->t, &st, r, NULL, NULL, err, errlen);
	if (!rc)
		atomic_fetch_or(&m->isr, isr & (VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG));
	pthread_mutex_unlock(&m->t.lock);
	/* raise() signals only when a bit goes from clear to set: a status
	 * restored with bits set gets its line raised here (spurious at worst:
	 * the handler reads the status and finds it was served). */
	if (!rc && atomic_load(&m->isr))
		eventfd_signal(m->irq_fd);
	return rc;
}
