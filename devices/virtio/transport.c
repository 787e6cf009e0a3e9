#include "devices/virtio/transport.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"

#define TRANSPORT_FEATURES ((1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_F_INDIRECT_DESC) | \
			    (1ull << VIRTIO_F_EVENT_IDX))

int virtio_transport_init(struct virtio_transport *t, const char *name, const struct virtio_dev_ops *ops,
			  void *dev, const struct guest_mem *mem, const struct device_host *host,
			  const struct virtio_transport_hooks *hooks)
{
	memset(t, 0, sizeof(*t));
	pthread_mutex_init(&t->lock, NULL);
	log_limit_init(&t->log_limit, name);
	t->ops = ops;
	t->dev = dev;
	t->name = name;
	t->mem = mem;
	t->host = *host;
	t->hooks = hooks;
	t->n_queues = ops->num_queues(dev);
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		t->queues[i].kick_fd = -1;
		t->queues[i].call_fd = -1;
	}
	if (t->n_queues == 0 || t->n_queues > VIRTIO_MAX_QUEUES) {
		log_error("%s: %u queues (1 to %d supported)", name, t->n_queues, VIRTIO_MAX_QUEUES);
		return -1;
	}
	t->device_features = ops->features(dev) | TRANSPORT_FEATURES;
	for (unsigned i = 0; i < t->n_queues; i++) {
		t->queues[i].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		t->queues[i].call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (t->queues[i].kick_fd < 0 || t->queues[i].call_fd < 0) {
			log_error("%s: eventfd: %s", name, strerror(errno));
			return -1;
		}
		t->queues[i].msix_vector = 0xffff;
	}
	return 0;
}

static int set_notifiers(struct virtio_transport *t, bool assign)
{
	struct host_notifier n[VIRTIO_MAX_QUEUES];
	unsigned count = 0;
	for (unsigned i = 0; i < t->n_queues; i++) {
		if (!t->queues[i].ready)
			continue;
		t->hooks->notifier_for(t, i, &n[count]);
		n[count].fd = t->queues[i].kick_fd;
		count++;
	}
	if (!count)
		return 0;
	return t->host.ops->set_notifiers(t->host.ctx, n, count, assign);
}

/* Stops the device and removes its notifiers; the register state stays. */
static int call_device_activate(void *arg)
{
	struct virtio_transport *t = arg;
	return t->ops->activate(t->dev, t->driver_features, t->queues, t->n_queues, &t->hooks->irq);
}

static int call_device_reset(void *arg)
{
	struct virtio_transport *t = arg;
	t->ops->reset(t->dev);
	return 0;
}

/* The device's activate and reset, where the host runs them (see
 * device_host_ops.run_control). The caller holds t->lock and waits. */
static int on_control_thread(struct virtio_transport *t, int (*fn)(void *))
{
	return device_host_run_control(&t->host, fn, t);
}

static void deactivate(struct virtio_transport *t)
{
	/* A reset that could not run (the VMM shutting down) leaves the device
	 * active: destroy, on the control thread, resets it. */
	if (t->active && on_control_thread(t, call_device_reset) < 0)
		return;
	t->active = false;
	if (t->notifiers_assigned)
		set_notifiers(t, false);
	t->notifiers_assigned = false;
}

static void reset_registers(struct virtio_transport *t)
{
	t->status = 0;
	t->driver_features = 0;
	t->device_features_sel = t->driver_features_sel = 0;
	t->queue_sel = 0;
	for (unsigned i = 0; i < t->n_queues; i++) {
		struct virtio_queue *q = &t->queues[i];
		/* Stale kicks from the previous driver must not reach the next one;
		 * only a ready queue can have been kicked. */
		if (q->ready)
			eventfd_drain(q->kick_fd);
		q->size = 0;
		q->desc = q->avail = q->used = 0;
		q->ready = false;
		q->msix_vector = 0xffff;
		memset(&q->vq, 0, sizeof(q->vq));
	}
}

void virtio_transport_destroy(struct virtio_transport *t)
{
	deactivate(t);
	for (unsigned i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		if (t->queues[i].kick_fd >= 0)
			close(t->queues[i].kick_fd);
		if (t->queues[i].call_fd >= 0)
			close(t->queues[i].call_fd);
		t->queues[i].kick_fd = t->queues[i].call_fd = -1;
	}
	pthread_mutex_destroy(&t->lock);
	log_limit_destroy(&t->log_limit);
}

void virtio_transport_set_needs_reset(struct virtio_transport *t)
{
	atomic_store(&t->broken, true);
}

uint8_t virtio_transport_status_read(struct virtio_transport *t)
{
	uint8_t s = t->status;
	if (atomic_load(&t->broken) && (s & VIRTIO_STATUS_DRIVER_OK))
		s |= VIRTIO_STATUS_NEEDS_RESET;
	return s;
}

/* The device cannot run what the driver set up. DRIVER_OK is set (or being
 * set), so the spec (2.1.2) wants a configuration change notification
 * after DEVICE_NEEDS_RESET, or a driver that waits for one never learns. */
static void needs_reset_at_driver_ok(struct virtio_transport *t)
{
	const struct virtio_irq *irq = &t->hooks->irq;
	t->status |= VIRTIO_STATUS_NEEDS_RESET;
	if (irq->config)
		irq->config(irq);
}

static void activate(struct virtio_transport *t)
{
	bool event_idx = t->driver_features & (1ull << VIRTIO_F_EVENT_IDX);
	bool indirect = t->driver_features & (1ull << VIRTIO_F_INDIRECT_DESC);

	for (unsigned i = 0; i < t->n_queues; i++) {
		struct virtio_queue *q = &t->queues[i];
		if (!q->ready)
			continue;
		if (virtq_init(&q->vq, t->mem, q->size, q->desc, q->avail, q->used, event_idx, indirect)) {
			char why[160];
			virtq_check_layout(t->mem, q->size, q->desc, q->avail, q->used, why, sizeof(why));
			log_warn_limited(&t->log_limit, "%s: queue %u: %s; device needs reset", t->name, i, why);
			needs_reset_at_driver_ok(t);
			return;
		}
		q->vq.log_limit = &t->log_limit;
	}
	int e = set_notifiers(t, true);
	if (e) {
		log_warn_limited(&t->log_limit, "%s: cannot register queue notifiers: %s; device needs reset", t->name,
				 device_host_error(e));
		needs_reset_at_driver_ok(t);
		return;
	}
	t->notifiers_assigned = true;
	if (on_control_thread(t, call_device_activate)) {
		set_notifiers(t, false);
		t->notifiers_assigned = false;
		needs_reset_at_driver_ok(t);
		return;
	}
	t->active = true;
	/* A notify written before the ioeventfds existed went through the exit
	 * path while the device was not running: kick every queue once. */
	for (unsigned i = 0; i < t->n_queues; i++)
		if (t->queues[i].ready)
			eventfd_signal(t->queues[i].kick_fd);
}

uint32_t virtio_transport_features_read(struct virtio_transport *t)
{
	if (t->device_features_sel > 1)
		return 0;
	return (uint32_t)(t->device_features >> (32 * t->device_features_sel));
}

void virtio_transport_features_write(struct virtio_transport *t, uint32_t value)
{
	/* Features are fixed once FEATURES_OK is set. */
	if (t->status & VIRTIO_STATUS_FEATURES_OK || t->driver_features_sel > 1)
		return;
	unsigned shift = 32 * t->driver_features_sel;
	t->driver_features = (t->driver_features & ~(0xffffffffull << shift)) | ((uint64_t)value << shift);
}

void virtio_transport_status_write(struct virtio_transport *t, uint8_t status)
{
	if (status == 0) {
		deactivate(t);
		reset_registers(t);
		atomic_store(&t->broken, false);
		return;
	}
	uint8_t old = t->status;
	/* The driver never clears a bit (spec 2.1.2): only a reset does. A
	 * driver that tries must not get a second activation of the running
	 * device (DRIVER_OK again), new features, or queues enabled behind the
	 * device's back (queue setup reopens without DRIVER_OK): bits stay set. */
	status |= old;
	/* FEATURES_OK only for a subset of what we offer, with VERSION_1. */
	if ((status & VIRTIO_STATUS_FEATURES_OK) && !(old & VIRTIO_STATUS_FEATURES_OK)) {
		if ((t->driver_features & ~t->device_features) ||
		    !(t->driver_features & (1ull << VIRTIO_F_VERSION_1)))
			status &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	}
	/* The device keeps NEEDS_RESET until reset; the driver cannot clear it. */
	t->status = (uint8_t)(status | (old & VIRTIO_STATUS_NEEDS_RESET));
	if ((status & VIRTIO_STATUS_DRIVER_OK) && !(old & VIRTIO_STATUS_DRIVER_OK)) {
		if (!(t->status & VIRTIO_STATUS_FEATURES_OK)) {
			log_warn_limited(&t->log_limit, "%s: driver set DRIVER_OK without FEATURES_OK; device needs reset",
					 t->name);
			needs_reset_at_driver_ok(t);
			return;
		}
		activate(t);
	}
	if (status & VIRTIO_STATUS_FAILED)
		deactivate(t);
}

struct virtio_queue *virtio_transport_selected(struct virtio_transport *t)
{
	return t->queue_sel < t->n_queues ? &t->queues[t->queue_sel] : NULL;
}

bool virtio_transport_queue_writable(struct virtio_transport *t)
{
	struct virtio_queue *q = virtio_transport_selected(t);
	return q && !q->ready && !(t->status & VIRTIO_STATUS_DRIVER_OK);
}

void virtio_transport_notify(struct virtio_transport *t, uint32_t queue)
{
	if (queue >= t->n_queues || !t->active)
		return;
	eventfd_signal(t->queues[queue].kick_fd);
}

void virtio_transport_config_read(struct virtio_transport *t, uint32_t off, void *data, uint32_t len)
{
	uint32_t size = t->ops->config_size(t->dev);
	memset(data, 0, len);
	if (off <= size && len <= size - off)
		t->ops->config_read(t->dev, off, data, len);
}

void virtio_transport_config_write(struct virtio_transport *t, uint32_t off, const void *data, uint32_t len)
{
	uint32_t size = t->ops->config_size(t->dev);
	if (off <= size && len <= size - off && t->ops->config_write)
		t->ops->config_write(t->dev, off, data, len);
}
