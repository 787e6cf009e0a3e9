/* virtio-mmio transport, register layout version 2 (virtio 1.x, 4.2.2).
 * QueueNotify writes are caught by a KVM ioeventfd per queue (datamatch on
 * the queue index); interrupts go through one irqfd on the device's GSI,
 * with InterruptStatus kept in step. */
#ifndef MINIVMM_VIRTIO_MMIO_H
#define MINIVMM_VIRTIO_MMIO_H

#include <stdatomic.h>

#include "devices/virtio/transport.h"
#include "vmm/base/io_bus.h"

#define VIRTIO_MMIO_SIZE 0x200

#define VIRTIO_MMIO_MAGIC 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW 0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_MMIO_INT_VRING 1
#define VIRTIO_MMIO_INT_CONFIG 2

struct virtio_mmio {
	struct virtio_transport t;
	struct virtio_transport_hooks hooks;
	uint64_t base;
	unsigned gsi;
	int irq_fd;                 /* eventfd wired to the GSI with an irqfd */
	atomic_uint isr;            /* InterruptStatus */
};

int virtio_mmio_init(struct virtio_mmio *m, const char *name, const struct virtio_dev_ops *ops, void *dev,
		     const struct guest_mem *mem, const struct device_host *host,
		     uint64_t base, unsigned gsi);
void virtio_mmio_destroy(struct virtio_mmio *m);

extern const struct io_ops virtio_mmio_io_ops;

/* Snapshots: InterruptStatus, then the transport's and the device's state
 * (devices/virtio/transport.h). Restore replays the driver's set-up on a
 * transport never used; -1 with a line in err. */
struct snap_writer;
struct snap_reader;
void virtio_mmio_save(struct virtio_mmio *m, struct snap_writer *w);
int virtio_mmio_restore(struct virtio_mmio *m, struct snap_reader *r, char *err, size_t errlen);

#endif
