/* What the virtio transport tests (virtio-mmio, virtio-pci) put on either
 * side of the transport: a device below it and the VM's notifier side above
 * it, both recording what the transport did to them. */
#ifndef MINIVMM_TESTS_VIRTIO_TRANSPORT_FAKES_H
#define MINIVMM_TESTS_VIRTIO_TRANSPORT_FAKES_H

#include <criterion/criterion.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "devices/virtio/transport.h"

/* ---- the device: 2 queues, feature bit 5, 8 bytes of config space the
 * driver can read and write; counts activations (with their features,
 * ready queues and interrupt handle) and resets ---- */

#define FAKE_VIRTIO_DEV_QUEUES 2

struct fake_virtio_dev {
	int activations, resets;
	uint64_t features;
	unsigned n_active;   /* ready queues at the last activation */
	uint8_t config[8];
	const struct virtio_irq *irq;
};

static inline uint64_t fake_virtio_dev_features(void *d)
{
	(void)d;
	return 1ull << 5;
}

static inline unsigned fake_virtio_dev_queues(void *d)
{
	(void)d;
	return FAKE_VIRTIO_DEV_QUEUES;
}

static inline uint32_t fake_virtio_dev_config_size(void *d)
{
	(void)d;
	return 8;
}

static inline void fake_virtio_dev_config_read(void *d, uint32_t off, void *data, uint32_t len)
{
	memcpy(data, ((struct fake_virtio_dev *)d)->config + off, len);
}

static inline void fake_virtio_dev_config_write(void *d, uint32_t off, const void *data, uint32_t len)
{
	memcpy(((struct fake_virtio_dev *)d)->config + off, data, len);
}

static inline int fake_virtio_dev_activate(void *d, uint64_t features, struct virtio_queue *q, unsigned n,
					   const struct virtio_irq *irq)
{
	struct fake_virtio_dev *f = d;
	f->activations++;
	f->features = features;
	f->irq = irq;
	f->n_active = 0;
	for (unsigned i = 0; i < n; i++)
		f->n_active += q[i].ready;
	return 0;
}

static inline void fake_virtio_dev_reset(void *d)
{
	((struct fake_virtio_dev *)d)->resets++;
}

/* The ops table, as an initializer: each test picks the device id its
 * transport shows (`static const struct virtio_dev_ops ops = FAKE_VIRTIO_DEV_OPS(42);`). */
#define FAKE_VIRTIO_DEV_OPS(id)                                                                              \
	{                                                                                                    \
		.name = "fake", .device_id = (id), .features = fake_virtio_dev_features,                     \
		.num_queues = fake_virtio_dev_queues, .queue_max_size = 256,                                 \
		.config_size = fake_virtio_dev_config_size, .config_read = fake_virtio_dev_config_read,      \
		.config_write = fake_virtio_dev_config_write, .activate = fake_virtio_dev_activate,          \
		.reset = fake_virtio_dev_reset,                                                              \
	}

/* ---- the VM: notifiers (ioeventfds) registered in batches, checked as
 * KVM would see them, and the irqfd the transport wires ---- */

struct fake_virtio_host {
	int batches;                     /* set_notifiers() calls that succeeded */
	int assigned;                    /* notifiers registered now */
	struct host_notifier last[8];    /* the last batch registered */
	unsigned last_count;
	int fail_assign;                 /* registering fails */
	int irqfd_gsi;                   /* where set_irqfd() connected the irqfd; -1: nowhere */
	int control_calls;               /* run_control() calls */
	int control_refuse;              /* run_control() does not run fn, returns this (if nonzero) */
};

static inline int fake_virtio_host_set_notifiers(void *h, const struct host_notifier *n, unsigned count, bool assign)
{
	struct fake_virtio_host *f = h;
	if (assign && f->fail_assign)
		return -1;
	f->batches++;
	if (assign) {
		cr_assert_eq(f->assigned, 0, "a second set while one is registered");
		cr_assert_leq(count, sizeof(f->last) / sizeof(f->last[0]), "test bug: more notifiers than recorded");
		f->assigned += (int)count;
		memcpy(f->last, n, count * sizeof(*n));
		f->last_count = count;
	} else {
		cr_assert_eq(f->assigned, (int)count, "removing what was registered");
		for (unsigned i = 0; i < count; i++)
			cr_assert_eq(n[i].addr, f->last[i].addr, "removed at the address it was registered at");
		f->assigned -= (int)count;
	}
	return 0;
}

/* Where the VMM runs device activation and reset (its control thread):
 * counted, and refused on demand as a VMM shutting down does. */
static inline int fake_virtio_host_run_control(void *h, int (*fn)(void *), void *arg)
{
	struct fake_virtio_host *f = h;
	f->control_calls++;
	return f->control_refuse ? f->control_refuse : fn(arg);
}

static inline int fake_virtio_host_set_irqfd(void *h, int fd, unsigned gsi, bool assign)
{
	(void)fd;
	((struct fake_virtio_host *)h)->irqfd_gsi = assign ? (int)gsi : -1;
	return 0;
}

/* The fake VM as a transport's device host (ctx: a struct fake_virtio_host). */
static const struct device_host_ops fake_virtio_host_ops = {
	.set_notifiers = fake_virtio_host_set_notifiers,
	.set_irqfd = fake_virtio_host_set_irqfd,
	.run_control = fake_virtio_host_run_control,
};

#endif
