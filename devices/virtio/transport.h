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
#include "vmm/base/log_limit.h"
#include "vmm/base/guest_mem.h"

/* One queue-notify address as KVM_IOEVENTFD needs it. */
struct host_notifier {
	uint64_t addr;
	uint32_t len;          /* access width the guest uses: 2 or 4 */
	bool pio;
	bool datamatch;
	uint64_t data;         /* the queue index, with datamatch */
	int fd;
};

/* What a transport needs from the VM; the VM implements it with KVM, tests
 * with fakes. */
struct virtio_host_ops {
	/* Registers (assign) or removes n notifiers, all or none. Returns 0 or
	 * a negative errno (-1 if none fits), without logging: the transport
	 * says it, rate-limited, naming the device. */
	int (*set_notifiers)(void *host, const struct host_notifier *n, unsigned count, bool assign);
	/* Connects (assign) or disconnects an eventfd to an interrupt line. */
	int (*set_irqfd)(void *host, int fd, unsigned gsi, bool assign);
	/* Optional (NULL: on the calling thread). Runs fn(arg) where device
	 * activation and reset belong, and returns its result (negative when
	 * it could not run): they open tap queues, set up vhost-net and start
	 * threads, which the vCPU that wrote the status must not be allowed
	 * to do (its seccomp filter). minivmm runs them on its control thread. */
	int (*run_control)(void *host, int (*fn)(void *), void *arg);
};

/* host->run_control(ctx, fn, arg), or fn(arg) where the host has none. */
static inline int virtio_host_run_control(const struct virtio_host_ops *host, void *ctx, int (*fn)(void *), void *arg)
{
	return host->run_control ? host->run_control(ctx, fn, arg) : fn(arg);
}

/* What a host op's failure says in a log line: its errno, or -1's "refused". */
static inline const char *virtio_host_error(int e)
{
	return e < -1 ? strerror(-e) : "refused";
}

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
	const struct virtio_host_ops *host;
	void *host_ctx;
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
	atomic_bool broken;                 /* set from device threads without the lock */
	bool notifiers_assigned;
	struct log_limit log_limit;         /* lines the guest can cause: its queues' too */
};

/* Creates the eventfds; returns -1 (logged) on failure. */
int virtio_transport_init(struct virtio_transport *t, const char *name, const struct virtio_dev_ops *ops,
			  void *dev, const struct guest_mem *mem, const struct virtio_host_ops *host,
			  void *host_ctx, const struct virtio_transport_hooks *hooks);
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

#endif
