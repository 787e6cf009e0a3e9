/* How virtio-net hands a queue pair to whatever moves its packets: an
 * in-process worker thread (worker.c) or the kernel's vhost-net (vhost.c).
 * The net device (devices/net/virtio_net.c) owns the tap fds and the control
 * queue; a backend owns only what it creates to serve one pair. */
#ifndef MINIVMM_NET_BACKEND_H
#define MINIVMM_NET_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"
#include "vmm/base/guest_mem.h"
#include "vmm/base/token_bucket.h"

/* Tokens a byte, and a packet, cost in a pair's rate limit buckets: a
 * pair's share of the NIC's limit (rate / pairs) keeps its fraction. */
#define NET_LIMIT_SCALE 1000u

/* One direction of a pair's rate limit (--net bw=, pps=). A frame may go
 * once the packet bucket holds a packet and the byte bucket what the last
 * frames still owe plus this frame's bytes, capped at its burst; it then
 * costs all its bytes, and what the bucket did not hold is owed (a frame
 * larger than the burst passes, and is paid for before the next one). */
struct net_dir_limit {
	struct token_bucket bytes, packets;   /* rate 0: no limit on that count */
};

/* A pair's share of its NIC's rate limits, owned by the device: it outlives
 * the backend's start and stop (a pair restarted, or a device reset, gains
 * no new burst). The worker backend spends it on the pair's thread. */
struct net_pair_limit {
	struct net_dir_limit tx, rx;   /* guest -> tap, tap -> guest */
	int timer_fd;                  /* a CLOCK_MONOTONIC timerfd to sleep on while throttled (-1: poll's timeout) */
};

/* One RX/TX queue pair, as given to a backend's start(). */
struct thread_starter;

struct log_limit;

struct net_pair {
	unsigned index;                 /* pair number: RX is queue 2i, TX 2i+1 */
	char name[16];                  /* "net0-qp2": thread name */
	int tap_fd;                     /* this pair's tap queue, opened with IFF_VNET_HDR (not owned) */
	struct virtio_queue *rx, *tx;   /* from the transport; vq already initialised */
	unsigned rx_index, tx_index;    /* queue numbers, for irq->queue() */
	const struct virtio_irq *irq;
	const struct guest_mem *mem;
	uint64_t features;              /* negotiated with the driver */
	size_t vnet_hdr_len;            /* 12 (VERSION_1 / MRG_RXBUF header) */
	void *backend_state;            /* the backend's, between start and stop */
	const struct thread_starter *threads;   /* who creates the pair's threads (NULL: pthread_create) */
	int vhost_fd;                   /* /dev/vhost-net opened at device creation, or -1 (not owned) */
	/* The device's: a backend calls it (from its own thread) when the tap
	 * queue fails in a way that means the tap is gone (deleted: EBADFD,
	 * POLLERR), err being what it saw. The device logs once and takes the
	 * link down; the backend goes on draining TX (frames dropped) so the
	 * guest is never stuck on a full ring. NULL: the backend logs itself. */
	void (*tap_gone)(struct net_pair *p, int err);
	void *owner;                    /* the device, for tap_gone */
	/* The device's limit on the log lines its guest can cause (NULL: none). */
	struct log_limit *log_limit;
	/* The pair's share of the NIC's rate limits (NULL: none). Only the
	 * worker backend meters: the device never gives one to vhost-net. */
	struct net_pair_limit *limit;
	/* --net tx_irq_delay=: µs a TX interrupt is held back (worker only). */
	unsigned tx_irq_delay_us;
	/* The device's: what the backend's counters came to, added by its
	 * stop() (for the device's exit line). */
	struct net_pair_stats *totals;
};

/* A pair's counters, as its backend keeps them. */
struct net_pair_stats {
	bool available;                  /* false: the backend keeps none (vhost-net: the kernel moves the frames); all 0 */
	uint64_t tx_packets, tx_bytes;   /* frames the tap took (bytes without the header) */
	uint64_t tx_dropped;             /* frames the tap refused, or with a bad header */
	uint64_t tx_bad_header;          /* of those: a virtio-net header not negotiated or out of the frame */
	uint64_t rx_packets, rx_bytes;   /* frames given to the guest (bytes without the header) */
	uint64_t rx_dropped;             /* frames larger than the guest's buffers */
	uint64_t rx_buffers;             /* RX chains used (> rx_packets with MRG_RXBUF) */
	uint64_t wakeups;                /* times the pair's thread woke up to look at its fds */
	uint64_t tx_throttled, rx_throttled;   /* times a direction stopped for its rate limit */
	uint64_t kicks;                  /* the guest's notifies on both queues */
};

/* to += what (available is or-ed). */
static inline void net_pair_stats_add(struct net_pair_stats *to, const struct net_pair_stats *what)
{
	to->available |= what->available;
	to->tx_packets += what->tx_packets;
	to->tx_bytes += what->tx_bytes;
	to->tx_dropped += what->tx_dropped;
	to->tx_bad_header += what->tx_bad_header;
	to->rx_packets += what->rx_packets;
	to->rx_bytes += what->rx_bytes;
	to->rx_dropped += what->rx_dropped;
	to->rx_buffers += what->rx_buffers;
	to->wakeups += what->wakeups;
	to->tx_throttled += what->tx_throttled;
	to->rx_throttled += what->rx_throttled;
	to->kicks += what->kicks;
}

struct net_backend_ops {
	const char *name;               /* "worker", "vhost" */
	/* Starts serving the pair; returns 0, or -1 with a one-line log. */
	int (*start)(struct net_pair *p);
	/* Stops serving; when it returns nothing touches the pair's queues,
	 * and rx->vq / tx->vq hold the ring positions to restart from. */
	void (*stop)(struct net_pair *p);
	/* The counters of a pair it serves, readable from any thread while it
	 * runs (each field is read atomically, the set is not a snapshot).
	 * NULL: the backend keeps none. */
	void (*stats)(const struct net_pair *p, struct net_pair_stats *out);
};

#endif
