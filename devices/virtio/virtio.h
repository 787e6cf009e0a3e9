/* The seam between virtio devices and virtio transports (mmio.c, pci.c).
 *
 * A device fills one const struct virtio_dev_ops and never learns which
 * transport it sits on. The transport owns the register state (status,
 * feature negotiation, queue setup), the host notifiers (one kick eventfd per
 * queue, registered as a KVM ioeventfd) and the interrupts (one call eventfd
 * per queue, registered as a KVM irqfd); it hands the device its queues and
 * an interrupt handle when the driver sets DRIVER_OK, and calls reset() when
 * the driver resets the device. */
#ifndef MINIVMM_VIRTIO_H
#define MINIVMM_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "devices/virtio/virtq.h"

struct snap_writer;
struct snap_reader;

#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG 4
#define VIRTIO_ID_VSOCK 19

/* Device status bits (spec 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

/* Transport-level feature bits. */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_MAX_QUEUES 64

/* One queue as the driver configured it, and what the device runs on. */
struct virtio_queue {
	uint16_t size;                 /* driver's choice, <= the device's max */
	uint64_t desc, avail, used;    /* guest-physical addresses */
	bool ready;                    /* QueueReady / queue_enable */
	uint16_t msix_vector;          /* virtio-pci only */
	int kick_fd;                   /* eventfd the guest's notify signals (transport-owned) */
	int call_fd;                   /* eventfd that interrupts the guest (transport-owned) */
	struct virtq vq;               /* set up by the transport at activation */
};

/* Interrupts towards the guest, owned by the transport and valid from
 * activate() until reset() returns. Callable from any thread. */
struct virtio_irq {
	void (*queue)(const struct virtio_irq *irq, unsigned q);   /* used buffers in queue q */
	void (*config)(const struct virtio_irq *irq);              /* config space changed */
	void (*needs_reset)(const struct virtio_irq *irq);         /* device is broken: DEVICE_NEEDS_RESET */
	void *ctx;
	/* Optional (NULL: none). An eventfd whose signal interrupts the guest
	 * exactly as queue(irq, q) would, for a kernel datapath (vhost) to
	 * signal itself; -1 when the transport has none right now (e.g. it must
	 * update a status register first): the caller then forwards to queue(). */
	int (*queue_notifier)(const struct virtio_irq *irq, unsigned q);
};

/* A device's config_read from its little-endian config image: the bytes
 * [offset, offset + len) of cfg, zeros past its end (the transport checked the
 * range already; a wrong one still reads zeros, never beyond cfg). */
static inline void virtio_config_copy(void *data, uint32_t offset, uint32_t len, const void *cfg, uint32_t cfg_size)
{
	memset(data, 0, len);
	if (offset < cfg_size)
		memcpy(data, (const uint8_t *)cfg + offset, len < cfg_size - offset ? len : cfg_size - offset);
}

struct virtio_dev_ops {
	const char *name;                /* "blk", "net" */
	uint32_t device_id;              /* VIRTIO_ID_* */
	/* Device-specific feature bits; the transport adds VERSION_1,
	 * INDIRECT_DESC and EVENT_IDX. */
	uint64_t (*features)(void *dev);
	unsigned (*num_queues)(void *dev);
	uint16_t queue_max_size;
	uint32_t (*config_size)(void *dev);
	/* Config space accesses, already bounds-checked against config_size. */
	void (*config_read)(void *dev, uint32_t offset, void *data, uint32_t len);
	void (*config_write)(void *dev, uint32_t offset, const void *data, uint32_t len);
	/* DRIVER_OK: start serving. queues[i].vq is initialised for every ready
	 * queue; kick_fd/call_fd are valid. Returns 0, or -1 (the transport then
	 * sets DEVICE_NEEDS_RESET). */
	int (*activate)(void *dev, uint64_t features, struct virtio_queue *queues, unsigned n_queues,
			const struct virtio_irq *irq);
	/* Stop serving: when it returns no device thread touches the queues. */
	void (*reset)(void *dev);
	/* Between activate and reset: pause stops every device thread and
	 * keeps everything else (features, queues, pairs), so that the ring
	 * positions in queues[i].vq are final when it returns (no descriptor in
	 * flight); resume starts them again. Returns 0, or -1 (logged: the
	 * transport then sets DEVICE_NEEDS_RESET). */
	void (*pause)(void *dev);
	int (*resume)(void *dev);
	/* Snapshots: the device's own state and configuration (not its queues,
	 * which the transport saves). load runs on a device not yet activated,
	 * before the transport replays the driver's set-up; it refuses a state
	 * that does not fit this device (another disk size, other pairs...).
	 * Returns 0, or -1 with the reader failed and the reason in it. */
	void (*save)(void *dev, struct snap_writer *w);
	int (*load)(void *dev, struct snap_reader *r);
};

#endif
