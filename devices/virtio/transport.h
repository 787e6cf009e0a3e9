/* State and rules shared by the virtio transports (mmio.c, pci.c): device
 * status, feature negotiation, queue configuration, and the host notifier
 * lifecycle. The transports only map their register layouts onto these
 * calls.
 *
 * Host notifiers: each queue has a kick eventfd (guest notify -> device) and
 * a call eventfd (device -> guest interrupt), created with the transport.
 * At DRIVER_OK every ready queue's kick eventfd is registered with KVM as an
 * ioeventfd on the queue's notify address, all of the device's queues in one
 * batch; at reset they are removed in one batch. Before that a notify
 * arrives as a vCPU exit and is forwarded to the same eventfd, and every
 * queue is kicked once after activation, so no notify is lost at the switch. */
#ifndef MINIVMM_VIRTIO_TRANSPORT_H
#define MINIVMM_VIRTIO_TRANSPORT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "devices/virtio/virtio.h"
#include "vmm/base/device_host.h"
#include "vmm/base/guest_mem.h"
#include "vmm/base/log_limit.h"

struct virtio_transport;

/* Per-transport hooks the common code calls. */
struct virtio_transport_hooks {
	/* Fills the notify address of queue q. */
	void (*notifier_for)(struct virtio_transport *t, unsigned q, struct host_notifier *out);
	/* Interrupts: the transport's own (ISR + GSI for mmio, MSI-X for pci). */
	struct virtio_irq irq;
};

struct virtio_transport {
	pthread_mutex_t lock;               /* register accesses from any vCPU */
	const struct virtio_dev_ops *ops;
	void *dev;
	const char *name;                   /* "blk0" */
	const struct guest_mem *mem;
	struct device_host host;            /* the VM: notifiers, irqfds, control thread */
	const struct virtio_transport_hooks *hooks;

	uint64_t device_features;           /* device's plus the transport's */
	uint64_t driver_features;
	uint32_t device_features_sel, driver_features_sel;
	uint8_t status;
	uint32_t config_generation;
	uint32_t queue_sel;
	unsigned n_queues;
	struct virtio_queue queues[VIRTIO_MAX_QUEUES];
	bool active;                        /* device activated, notifiers assigned */
	bool paused;                        /* active, its threads stopped (virtio_transport_pause) */
	/* At restore: the ring positions activate() gives each queue instead of 0. */
	bool restoring;
	uint16_t restore_avail[VIRTIO_MAX_QUEUES], restore_used[VIRTIO_MAX_QUEUES];
	atomic_bool broken;                 /* set from device threads without the lock */
	bool notifiers_assigned;
	struct log_limit log_limit;         /* lines the guest can cause: its queues' too */
};

/* Creates the eventfds; returns -1 (logged) on failure. */
int virtio_transport_init(struct virtio_transport *t, const char *name, const struct virtio_dev_ops *ops,
			  void *dev, const struct guest_mem *mem, const struct device_host *host,
			  const struct virtio_transport_hooks *hooks);
void virtio_transport_destroy(struct virtio_transport *t);

/* Register-level operations; call with t->lock held. */
uint32_t virtio_transport_features_read(struct virtio_transport *t);
void virtio_transport_features_write(struct virtio_transport *t, uint32_t value);
void virtio_transport_status_write(struct virtio_transport *t, uint8_t status);
struct virtio_queue *virtio_transport_selected(struct virtio_transport *t);   /* NULL if out of range */
/* Queue configuration may change only while the queue is not ready. */
bool virtio_transport_queue_writable(struct virtio_transport *t);
void virtio_transport_notify(struct virtio_transport *t, uint32_t queue);     /* notify via a vCPU exit */
void virtio_transport_config_read(struct virtio_transport *t, uint32_t off, void *data, uint32_t len);
void virtio_transport_config_write(struct virtio_transport *t, uint32_t off, const void *data, uint32_t len);
/* Marks the device broken (DEVICE_NEEDS_RESET). Lock-free: device threads
 * call it, and the vCPU holding the lock may be waiting for them in reset().
 * The caller raises the config interrupt. */
void virtio_transport_set_needs_reset(struct virtio_transport *t);
uint8_t virtio_transport_status_read(struct virtio_transport *t);

/* Pause and resume the device's threads (virtio_dev_ops.pause/resume), for
 * a VM pause or a snapshot; nothing happens on a device not activated.
 * Resume kicks and interrupts every ready queue once: a notification that
 * fell into the pause is not lost. Take t->lock themselves. */
void virtio_transport_pause(struct virtio_transport *t);
void virtio_transport_resume(struct virtio_transport *t);

/* ---- snapshots ---- */
struct snap_writer;
struct snap_reader;

struct virtio_queue_state {
	uint16_t size;
	bool ready;
	uint16_t msix_vector;
	uint64_t desc, avail, used;
	uint16_t last_avail_idx, used_idx;
};

/* What a driver set up, as the registers hold it, and where the rings are. */
struct virtio_transport_state {
	uint64_t device_features, driver_features;
	uint8_t status;
	bool broken;
	uint32_t config_generation;
	uint32_t n_queues;
	struct virtio_queue_state queues[VIRTIO_MAX_QUEUES];
};

/* Appends the state, then the device's (ops->save). The device is paused
 * or was never activated: the ring positions are final. Call with t->lock. */
void virtio_transport_save(struct virtio_transport *t, struct snap_writer *w);
/* Reads what virtio_transport_save wrote, up to the device's section.
 * Pure: bounded, no allocation. Returns 0 or -1 (r failed). */
int virtio_transport_state_read(struct snap_reader *r, struct virtio_transport_state *s);
/* Restores a transport never used (status 0) the way its driver set it
 * up: device state (ops->load from r), features, queue set-up, then the
 * status, which activates the device with the saved ring positions. The
 * transport's own registers (a queue's MSI-X vector is written by
 * set_vector, NULL for none) are set between queues and status. Call with
 * t->lock. Returns 0, or -1 with a line in err. */
int virtio_transport_restore(struct virtio_transport *t, const struct virtio_transport_state *s,
			     struct snap_reader *dev_state, void (*set_vector)(void *ctx, unsigned q, uint16_t v),
			     void *ctx, char *err, size_t errlen);

#endif
