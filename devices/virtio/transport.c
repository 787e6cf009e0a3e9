#include "devices/virtio/transport.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"
#include "vmm/base/snap_format.h"

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
		if (t->restoring) {
			/* Where the device was at the snapshot: used->idx in guest
			 * memory says the same (no descriptor was in flight). */
			q->vq.last_avail_idx = q->vq.avail_idx_shadow = t->restore_avail[i];
			q->vq.used_idx = t->restore_used[i];
		}
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

/* ---- pause and resume ---- */

static int call_device_pause(void *arg)
{
	struct virtio_transport *t = arg;
	t->ops->pause(t->dev);
	return 0;
}

static int call_device_resume(void *arg)
{
	struct virtio_transport *t = arg;
	return t->ops->resume(t->dev);
}

void virtio_transport_pause(struct virtio_transport *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->active && !t->paused && on_control_thread(t, call_device_pause) == 0)
		t->paused = true;
	pthread_mutex_unlock(&t->lock);
}

void virtio_transport_resume(struct virtio_transport *t)
{
	pthread_mutex_lock(&t->lock);
	if (t->active && t->paused) {
		t->paused = false;
		if (on_control_thread(t, call_device_resume)) {
			log_warn_limited(&t->log_limit, "%s: cannot resume the device; device needs reset", t->name);
			virtio_transport_set_needs_reset(t);
			if (t->hooks->irq.config)
				t->hooks->irq.config(&t->hooks->irq);
		} else {
			for (unsigned i = 0; i < t->n_queues; i++) {
				if (!t->queues[i].ready)
					continue;
				eventfd_signal(t->queues[i].kick_fd);
				t->hooks->irq.queue(&t->hooks->irq, i);
			}
		}
	}
	pthread_mutex_unlock(&t->lock);
}

/* ---- snapshots ---- */

#define TAG_TRANSPORT SNAP_TAG('V', 'T', 'R', 'N')
#define TAG_DEVICE SNAP_TAG('V', 'D', 'E', 'V')

void virtio_transport_save(struct virtio_transport *t, struct snap_writer *w)
{
	size_t at = snap_begin(w, TAG_TRANSPORT);
	snap_put_u64(w, t->device_features);
	snap_put_u64(w, t->driver_features);
	snap_put_u8(w, t->status);
	snap_put_u8(w, atomic_load(&t->broken));
	snap_put_u32(w, t->config_generation);
	snap_put_u32(w, t->n_queues);
	for (unsigned i = 0; i < t->n_queues; i++) {
		const struct virtio_queue *q = &t->queues[i];
		snap_put_u16(w, q->size);
		snap_put_u8(w, q->ready);
		snap_put_u16(w, q->msix_vector);
		snap_put_u64(w, q->desc);
		snap_put_u64(w, q->avail);
		snap_put_u64(w, q->used);
		bool live = t->active && q->ready;
		snap_put_u16(w, live ? q->vq.last_avail_idx : 0);
		snap_put_u16(w, live ? q->vq.used_idx : 0);
	}
	snap_end(w, at);
	at = snap_begin(w, TAG_DEVICE);
	if (t->ops->save)
		t->ops->save(t->dev, w);
	snap_end(w, at);
}

int virtio_transport_state_read(struct snap_reader *parent, struct virtio_transport_state *s)
{
	struct snap_reader r;
	memset(s, 0, sizeof(*s));
	if (snap_section(parent, TAG_TRANSPORT, "virtio transport", &r))
		return -1;
	s->device_features = snap_get_u64(&r);
	s->driver_features = snap_get_u64(&r);
	s->status = snap_get_u8(&r);
	s->broken = snap_get_u8(&r) != 0;
	s->config_generation = snap_get_u32(&r);
	s->n_queues = snap_get_bounded(&r, VIRTIO_MAX_QUEUES, "queue count");
	for (unsigned i = 0; i < s->n_queues && !snap_failed(&r); i++) {
		struct virtio_queue_state *q = &s->queues[i];
		q->size = snap_get_u16(&r);
		q->ready = snap_get_u8(&r) != 0;
		q->msix_vector = snap_get_u16(&r);
		q->desc = snap_get_u64(&r);
		q->avail = snap_get_u64(&r);
		q->used = snap_get_u64(&r);
		q->last_avail_idx = snap_get_u16(&r);
		q->used_idx = snap_get_u16(&r);
	}
	if (snap_section_done(&r))
		return -1;
	return 0;
}

int virtio_transport_restore(struct virtio_transport *t, const struct virtio_transport_state *s,
			     struct snap_reader *parent, void (*set_vector)(void *ctx, unsigned q, uint16_t v),
			     void *ctx, char *err, size_t errlen)
{
	struct snap_reader dev;
	if (snap_section(parent, TAG_DEVICE, "device state", &dev) ||
	    (t->ops->load && t->ops->load(t->dev, &dev)) || snap_section_done(&dev)) {
		snprintf(err, errlen, "%s", dev.errlen ? dev.err : "device state");
		return -1;
	}
	if (t->status) {
		snprintf(err, errlen, "internal: restoring a transport in use");
		return -1;
	}
	if (s->device_features != t->device_features || s->n_queues != t->n_queues) {
		snprintf(err, errlen, "the snapshot's device offered features 0x%llx and %u queues, this one 0x%llx "
			 "and %u (another device or minivmm)", (unsigned long long)s->device_features, s->n_queues,
			 (unsigned long long)t->device_features, t->n_queues);
		return -1;
	}
	if (s->driver_features & ~t->device_features) {
		snprintf(err, errlen, "the driver's features 0x%llx are not all the device's",
			 (unsigned long long)s->driver_features);
		return -1;
	}
	t->driver_features = s->driver_features;
	t->config_generation = s->config_generation;
	for (unsigned i = 0; i < t->n_queues; i++) {
		const struct virtio_queue_state *qs = &s->queues[i];
		struct virtio_queue *q = &t->queues[i];
		if (qs->size > t->ops->queue_max_size) {
			snprintf(err, errlen, "queue %u: size %u over the device's %u", i, qs->size, t->ops->queue_max_size);
			return -1;
		}
		q->size = qs->size;
		q->desc = qs->desc;
		q->avail = qs->avail;
		q->used = qs->used;
		q->ready = qs->ready;
		if (set_vector)
			set_vector(ctx, i, qs->msix_vector);
		t->restore_avail[i] = qs->last_avail_idx;
		t->restore_used[i] = qs->used_idx;
	}
	/* The driver's own order: everything but DRIVER_OK, then DRIVER_OK. */
	uint8_t status = s->status & (uint8_t)~VIRTIO_STATUS_NEEDS_RESET;
	t->restoring = true;
	virtio_transport_status_write(t, status & (uint8_t)~VIRTIO_STATUS_DRIVER_OK);
	if (status & VIRTIO_STATUS_DRIVER_OK)
		virtio_transport_status_write(t, status);
	t->restoring = false;
	if ((status & VIRTIO_STATUS_FEATURES_OK) && !(t->status & VIRTIO_STATUS_FEATURES_OK)) {
		snprintf(err, errlen, "the driver's features 0x%llx were refused", (unsigned long long)s->driver_features);
		return -1;
	}
	if (s->broken || (s->status & VIRTIO_STATUS_NEEDS_RESET))
		virtio_transport_set_needs_reset(t);   /* the guest's driver resets it, as it would have */
	/* An interrupt on its way at the snapshot is not lost: one per queue. */
	for (unsigned i = 0; t->active && i < t->n_queues; i++)
		if (t->queues[i].ready)
			t->hooks->irq.queue(&t->hooks->irq, i);
	return 0;
}
