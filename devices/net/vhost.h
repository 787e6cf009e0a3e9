/* vhost-net backend: the host kernel moves one virtio-net queue pair's
 * packets between the guest's rings and the pair's tap queue, with no VMM
 * thread on the datapath.
 *
 * Per pair, at start(), on the pair's vhost fd: opened by the device when it
 * is created, before the sandbox (net_vhost_open() in virtio_net.c; start()
 * opens /dev/vhost-net itself only for a pair without one); its vq 0 is the
 * pair's RX, vq 1 its TX:
 *   VHOST_SET_OWNER
 *   VHOST_GET_FEATURES, VHOST_SET_FEATURES       see net_vhost_features()
 *   VHOST_SET_MEM_TABLE                          every guest RAM region (net_vhost_mem_table())
 *   for vq 0 (RX), then vq 1 (TX):
 *     VHOST_SET_VRING_NUM                        the queue's size
 *     VHOST_SET_VRING_BASE                       vq.last_avail_idx (where the last user stopped)
 *     VHOST_SET_VRING_ADDR                       host addresses of desc/avail/used (net_vhost_vring_addr())
 *     VHOST_SET_VRING_KICK                       the queue's kick eventfd: the KVM ioeventfd
 *     VHOST_SET_VRING_CALL                       an eventfd that interrupts the guest (below)
 *   VHOST_NET_SET_BACKEND vq 0, then vq 1        the pair's tap fd
 *
 * Interrupts. When the transport's irq->queue_notifier() gives an eventfd
 * (virtio-pci with MSI-X: the queue's call eventfd, an irqfd on its MSI-X
 * vector's GSI), vhost signals it and KVM injects the interrupt directly.
 * Otherwise (virtio-mmio, which must set InterruptStatus first; virtio-pci
 * with MSI-X off, which sets the ISR) the backend gives vhost eventfds of its
 * own and runs one small thread per pair, named like the pair, that turns
 * each signal into irq->queue(). vhost does its own interrupt suppression
 * (EVENT_IDX, NO_INTERRUPT) either way.
 *
 * stop(): VHOST_NET_SET_BACKEND with fd -1 for vq 0 and vq 1 (when it
 * returns vhost has flushed its work and no longer touches the rings),
 * VHOST_GET_VRING_BASE into vq.last_avail_idx, vq.used_idx re-read from
 * used->idx in guest memory, the pair's watcher thread stopped after a last
 * forward, every fd of its own closed (the device's vhost fd stays open and
 * is handed back with VHOST_RESET_OWNER). The pair can then be started again by
 * either backend (device reset, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET).
 *
 * Errors: one line naming the pair and the ioctl, -1 from start(), nothing
 * left open; the device may fall back to the worker backend. A malformed
 * ring that vhost meets: vhost stops that vq and signals its error eventfd
 * (VHOST_SET_VRING_ERR); the pair's watcher thread logs one line and marks
 * the device DEVICE_NEEDS_RESET, as a worker does. */
#ifndef MINIVMM_NET_VHOST_H
#define MINIVMM_NET_VHOST_H

#include <linux/vhost.h>
#include <stdbool.h>
#include <stdint.h>

#include "devices/net/backend.h"
#include "devices/virtio/virtq.h"
#include "vmm/base/guest_mem.h"

#define NET_VHOST_DEV "/dev/vhost-net"

extern const struct net_backend_ops net_vhost_backend;

/* Whether /dev/vhost-net opens (read-write) here: what --net vhost=auto asks. */
bool net_vhost_available(void);
/* Opens /dev/vhost-net (through the test hook below); -1 with errno. A
 * device opens one per queue pair at creation, before the sandbox. */
int net_vhost_open(void);

/* ---- the pieces of start(), exposed for tests ---- */

/* Feature bits vhost-net is told about: the negotiated ones that change how
 * the rings or the RX header are handled (VERSION_1, MRG_RXBUF, EVENT_IDX,
 * INDIRECT_DESC, NOTIFY_ON_EMPTY) and that vhost offers. Never
 * VHOST_NET_F_VIRTIO_NET_HDR (the tap adds and strips the header itself,
 * IFF_VNET_HDR), which shares bit 27 with ANY_LAYOUT. Offloads, MQ, CTRL_VQ,
 * MAC... are the tap's and the device's, not vhost's.
 * *missing gets the negotiated bits vhost would have to honour and cannot:
 * wanted bits it does not offer, and ring layouts or platform features it
 * has no support for here (RING_PACKED, IN_ORDER, ACCESS_PLATFORM,
 * NOTIFICATION_DATA, HASH_REPORT). Non-zero means: do not use vhost. */
uint64_t net_vhost_features(uint64_t negotiated, uint64_t offered, uint64_t *missing);

/* The RX header vhost (without VHOST_NET_F_VIRTIO_NET_HDR) expects the tap
 * to produce for these features: 12 with VERSION_1 or MRG_RXBUF, else 10. */
size_t net_vhost_hdr_len(uint64_t features);

/* A VHOST_SET_MEM_TABLE argument with one entry per guest RAM region
 * (malloc'd; free() it), or NULL (nothing logged) when mem has no region or
 * a region that is empty, wraps around, or has no mapping. */
struct vhost_memory *net_vhost_mem_table(const struct guest_mem *mem);

/* The VHOST_SET_VRING_ADDR argument for vq: the host addresses of its three
 * rings, each translated through guest_mem_ptr() over its whole length for
 * vq->size entries and checked for its alignment (desc 16, avail 2, used 4).
 * Returns -1 (nothing logged) when the size is not a power of 2 in
 * 1..32768 or any ring is not wholly inside guest RAM. */
int net_vhost_vring_addr(const struct guest_mem *mem, const struct virtq *vq, unsigned index,
			 struct vhost_vring_addr *out);

/* How the backend reaches the kernel. Tests replace it to run start() and
 * stop() without /dev/vhost-net (a fake that records the sequence, or an
 * open() that fails); NULL restores the real one. Not thread-safe: set it
 * before starting any pair. */
struct net_vhost_sys {
	int (*open)(const char *path, int flags);
	int (*ioctl)(int fd, unsigned long request, void *arg);
};
void net_vhost_set_sys(const struct net_vhost_sys *sys);

#endif
