/* virtio-pci modern transport (virtio 1.x, spec 4.1), non-transitional,
 * built on the common transport (transport.h) like mmio.c.
 *
 * PCI identity: vendor 0x1af4, device 0x1040 + virtio device ID, revision 1,
 * subsystem 0x1af4:(0x40 + device ID), class 0x010000 for blk and 0x020000
 * for net (as QEMU), 0xff0000 otherwise. Interrupt pin 0: no INTx.
 *
 * BAR 0, one 64-bit memory BAR of 32 KiB, holds every structure:
 *   0x0000 common configuration     0x3000 notify: queue q at 0x3000 + 4 q
 *   0x1000 ISR status (read clears) 0x4000 MSI-X table (n_queues + 1 vectors)
 *   0x2000 device configuration     0x5000 MSI-X PBA
 * Capabilities: COMMON_CFG, NOTIFY_CFG (notify_off_multiplier 4,
 * queue_notify_off = queue index), ISR_CFG, DEVICE_CFG (when the device has
 * config space), PCI_CFG (the config-space window onto BAR 0 the spec
 * requires), MSI-X.
 *
 * Notifies: at DRIVER_OK the common transport asks for every ready queue's
 * notifier in one batch: a 2-byte KVM ioeventfd at the queue's notify
 * address with datamatch on the queue index (what Linux writes). The
 * address depends on where BAR 0 is, so this transport keeps the batch and
 * registers it only while BAR 0 decodes (memory space enabled, BAR inside
 * the PCI window); when the guest moves BAR 0 or switches decoding while
 * the device runs, the batch is removed from the old address and
 * registered at the new one (one batch each way). A notify the ioeventfds
 * do not catch arrives as an MMIO exit and reaches the same kick eventfd.
 *
 * Interrupts: MSI-X only (Linux always enables MSI-X when the capability
 * exists). Each queue's call eventfd and a config eventfd are MSI-X users
 * (msix.h): irqfds on the GSI of the vector the driver picked in
 * queue_msix_vector / msix_config, so vhost and device threads interrupt
 * the guest without a VMM hop. A config change also sets ISR bit 1, and with
 * MSI-X disabled a queue interrupt sets ISR bit 0 (a driver running without
 * MSI-X can only poll the ISR: there is no INTx line).
 *
 * Locking: the PCI host lock (config space, BAR dispatch) -> the transport
 * lock (registers) -> the MSI-X lock. Device threads take none of them. */
#ifndef MINIVMM_VIRTIO_PCI_H
#define MINIVMM_VIRTIO_PCI_H

#include <stdatomic.h>
#include <stdbool.h>

#include "devices/pci/msix.h"
#include "devices/pci/pci_dev.h"
#include "devices/virtio/transport.h"

#define VIRTIO_PCI_VENDOR 0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040
#define VIRTIO_PCI_SUBSYS_BASE 0x40

/* Vendor capability types (spec 4.1.4). */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG 5
/* Offsets inside a virtio vendor capability. */
#define VIRTIO_PCI_CAP_CFG_TYPE 3
#define VIRTIO_PCI_CAP_BAR 4
#define VIRTIO_PCI_CAP_OFFSET 8
#define VIRTIO_PCI_CAP_LENGTH 12
#define VIRTIO_PCI_NOTIFY_CAP_MULT 16
#define VIRTIO_PCI_CFG_CAP_DATA 16

/* BAR 0 layout. */
#define VIRTIO_PCI_BAR 0
#define VIRTIO_PCI_BAR_SIZE 0x8000
#define VIRTIO_PCI_REGION_SIZE 0x1000
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_ISR_OFF 0x1000
#define VIRTIO_PCI_DEVICE_OFF 0x2000
#define VIRTIO_PCI_NOTIFY_OFF 0x3000
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x4000
#define VIRTIO_PCI_MSIX_PBA_OFF 0x5000
#define VIRTIO_PCI_NOTIFY_MULT 4

/* Common configuration fields (struct virtio_pci_common_cfg). */
#define VIRTIO_PCI_COMMON_DFSELECT 0x00
#define VIRTIO_PCI_COMMON_DF 0x04
#define VIRTIO_PCI_COMMON_GFSELECT 0x08
#define VIRTIO_PCI_COMMON_GF 0x0c
#define VIRTIO_PCI_COMMON_MSIX 0x10
#define VIRTIO_PCI_COMMON_NUMQ 0x12
#define VIRTIO_PCI_COMMON_STATUS 0x14
#define VIRTIO_PCI_COMMON_CFGGENERATION 0x15
#define VIRTIO_PCI_COMMON_Q_SELECT 0x16
#define VIRTIO_PCI_COMMON_Q_SIZE 0x18
#define VIRTIO_PCI_COMMON_Q_MSIX 0x1a
#define VIRTIO_PCI_COMMON_Q_ENABLE 0x1c
#define VIRTIO_PCI_COMMON_Q_NOFF 0x1e
#define VIRTIO_PCI_COMMON_Q_DESCLO 0x20
#define VIRTIO_PCI_COMMON_Q_DESCHI 0x24
#define VIRTIO_PCI_COMMON_Q_AVAILLO 0x28
#define VIRTIO_PCI_COMMON_Q_AVAILHI 0x2c
#define VIRTIO_PCI_COMMON_Q_USEDLO 0x30
#define VIRTIO_PCI_COMMON_Q_USEDHI 0x34
#define VIRTIO_PCI_COMMON_Q_NDATA 0x38
#define VIRTIO_PCI_COMMON_Q_RESET 0x3a

#define VIRTIO_PCI_ISR_QUEUE 1
#define VIRTIO_PCI_ISR_CONFIG 2

struct virtio_pci {
	struct virtio_transport t;          /* first: the hooks cast back */
	struct virtio_transport_hooks hooks;
	struct device_host host;            /* the VM: notifiers, GSIs, routes, irqfds */
	struct pci_device pci;
	struct msix msix;
	bool msix_initialized;
	uint8_t cfg_cap;                    /* offset of the PCI_CFG capability */
	int config_fd;                      /* config-change interrupts (an MSI-X user) */
	atomic_uint isr;
	uint16_t msix_config;               /* config vector, as the register reads */

	/* Queue notifiers the transport asked for (addresses relative to BAR 0),
	 * and where they are registered. Under t.lock. */
	struct host_notifier notifiers[VIRTIO_MAX_QUEUES];
	unsigned n_notifiers;
	bool notifiers_wanted;
	bool notifiers_live;
	uint64_t live_base;
};

/* Sets up the transport, the PCI function and MSI-X (one GSI per vector).
 * Then add it to the bus with pci_host_add(host, &vp->pci), before the
 * vCPUs start. Returns -1 (logged) on failure; virtio_pci_destroy is safe
 * afterwards either way. */
int virtio_pci_init(struct virtio_pci *vp, const char *name, const struct virtio_dev_ops *ops, void *dev,
		    const struct guest_mem *mem, const struct device_host *host);
/* Stops the device, removes notifiers, irqfds and routes, closes the fds.
 * Call with the vCPUs stopped. */
void virtio_pci_destroy(struct virtio_pci *vp);

/* Snapshots: the config registers the driver writes (command, BARs,
 * interrupt line, MSI-X control), the MSI-X table, the config vector and
 * ISR, then the transport's and the device's state. Restore replays them
 * on a function never used, after it was added to the PCI host; -1 with a
 * line in err. */
struct snap_writer;
struct snap_reader;
void virtio_pci_save(struct virtio_pci *vp, struct snap_writer *w);
int virtio_pci_restore(struct virtio_pci *vp, struct snap_reader *r, char *err, size_t errlen);

#endif
