/* The in-process virtio-net backend: one thread per queue pair, named like
 * the pair ("net0-qp2"), moving frames between the pair's two virtqueues and
 * its tap queue fd.
 *
 * The thread, a queue worker's (devices/virtio/queue_worker.h), polls {stop
 * eventfd, TX kick eventfd, RX kick eventfd, tap fd}.
 *  - TX: pop a chain, writev() its device-readable buffers to the tap as
 *    they are (the guest's 12-byte virtio_net_hdr_v1 is what the tap expects,
 *    TUNSETVNETHDRSZ 12), push it used with length 0. A chain with a
 *    device-writable buffer or fewer than 12 readable bytes is malformed:
 *    the pair stops and the device needs a reset (QEMU does the same for a
 *    short header). A frame the tap refuses (runt, bad GSO header, ...) is
 *    dropped and counted. EAGAIN: the chain is given back and the thread
 *    waits for the tap to be writable.
 *  - RX: readv() from the tap straight into guest buffers. With MRG_RXBUF
 *    the worker pops chains until they can hold the largest frame the tap
 *    may deliver (64 KiB with guest TSO, the tap's MTU + 18 otherwise),
 *    reads into all of them at once, pushes the ones the frame filled and
 *    writes their count into num_buffers; the rest are given back
 *    (virtq_unpop) before the thread sleeps. Without MRG_RXBUF one chain must
 *    hold the whole frame. A frame longer than the buffers is dropped and
 *    counted (the read gets one more iovec, a byte of the worker's: the tap
 *    truncates silently, so a frame reaching that byte did not fit). No RX
 *    buffers: the tap
 *    is not polled until the RX kick. Without GUEST_CSUM the header's flags
 *    are cleared (the tap may set DATA_VALID).
 *  - Interrupts: irq->queue() after a batch, when virtq_should_notify() says
 *    so (EVENT_IDX and NO_INTERRUPT handled there).
 *  - The tap going away (EBADFD/EIO, or POLLERR/POLLHUP on its fd): one log
 *    line, the pair stops serving, the VMM runs on.
 *  - Rate limits (net_pair.limit, the pair's share of the NIC's): before a
 *    TX frame is written, and before a read from the tap, the direction's
 *    buckets must allow it; when they do not, the TX chain goes back to the
 *    ring, the RX chains too and the tap is not read (it queues, then
 *    drops, as a link would), and that direction is left alone until its
 *    tokens are there: the thread sleeps on the pair's timerfd meanwhile,
 *    polling neither that ring nor the tap for it. Nothing taken from the
 *    guest is dropped or reordered.
 * No allocation per frame: the scratch space is allocated at start(). */
#ifndef MINIVMM_NET_WORKER_H
#define MINIVMM_NET_WORKER_H

#include "devices/net/backend.h"

extern const struct net_backend_ops net_worker_backend;

#endif
