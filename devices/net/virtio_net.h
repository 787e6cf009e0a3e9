/* virtio-net device model (virtio 1.x, spec section 5.1) on a tap interface,
 * with N receive/transmit queue pairs and a control queue.
 *
 * Offered features: CSUM, GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, HOST_TSO4,
 * HOST_TSO6, MRG_RXBUF, MAC, STATUS, CTRL_VQ, CTRL_RX, CTRL_MAC_ADDR, and MQ
 * when N > 1 (the transport adds VERSION_1, INDIRECT_DESC, EVENT_IDX).
 * Config space: mac, status (LINK_UP), max_virtqueue_pairs.
 * Queues: RX of pair i is queue 2i, TX 2i+1, the control queue is 2N (2
 * when the driver did not take MQ).
 *
 * Threads: a backend (devices/net/backend.h) serves each enabled pair: the
 * in-process worker (one thread per pair, "net0-qp2") or vhost-net (the host
 * kernel). The control queue has a thread of its own ("net0-ctrl"): it
 * answers RX-mode and MAC commands (stored, always OK: the tap does no
 * filtering) and VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, which starts and stops
 * pairs so that exactly the first n run, and attaches/detaches their tap
 * queues so the kernel steers frames only to them. At DRIVER_OK only pair 0
 * runs (spec 5.1.6.5.5); anything else on the control queue answers
 * VIRTIO_NET_ERR, and a command without a device-writable ack byte breaks
 * the device (DEVICE_NEEDS_RESET). No thread of the device ever runs on a
 * vCPU.
 *
 * Rate limits (bytes and packets per second, each direction on its own):
 * each pair the driver can use meters an even share of the rate and of the
 * burst (100 ms of the rate) with buckets of its own, no lock between the
 * pairs, so their sum never passes the NIC's limit; one flow, which the tap
 * steers to one pair, gets that pair's share. The buckets outlive pair
 * changes and resets (made again, full, only when the count of usable pairs
 * changes); each pair has a timerfd, made with the device, to sleep on.
 *
 * The device owns the tap fds (one per pair, devices/net/tap.h) and the
 * queue worker of its control thread (devices/virtio/queue_worker.h); the
 * transport owns the queues, their eventfds and the interrupt handle. */
#ifndef MINIVMM_VIRTIO_NET_H
#define MINIVMM_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/net/backend.h"
#include "devices/net/tap.h"
#include "devices/virtio/virtio.h"

#define VIRTIO_NET_MAX_PAIRS ((VIRTIO_MAX_QUEUES - 1) / 2 < NET_TAP_MAX_QUEUES ? (VIRTIO_MAX_QUEUES - 1) / 2 \
										 : NET_TAP_MAX_QUEUES)
#define VIRTIO_NET_MAC_TABLE_MAX 64

enum virtio_net_backend_choice {
	VIRTIO_NET_BACKEND_AUTO,     /* vhost-net when /dev/vhost-net opens, else worker threads */
	VIRTIO_NET_BACKEND_VHOST,    /* vhost-net or an error */
	VIRTIO_NET_BACKEND_WORKER,
};

struct virtio_net_params {
	const char *tap;             /* interface name */
	unsigned queue_pairs;        /* 1..VIRTIO_NET_MAX_PAIRS */
	enum virtio_net_backend_choice backend;
	uint8_t mac[6];
	/* Rate limits, each direction on its own (guest -> tap, tap -> guest);
	 * 0: none. Either one takes the worker backend: vhost-net (the kernel's)
	 * cannot meter, so VHOST is an error and AUTO picks the worker. */
	uint64_t bytes_per_sec;      /* frame bytes, without the virtio-net header */
	uint64_t packets_per_sec;
	unsigned tx_irq_delay_us;    /* worker backend: µs a TX interrupt is held back; 0: none */
	unsigned index;              /* which NIC of the VM: "net<index>" in thread names and logs */
	const struct thread_starter *threads;   /* who creates device threads; NULL: pthread_create */
};

struct virtio_net;

/* Opens the tap (devices/net/tap.h) and picks the backend; with AUTO it
 * logs one line saying which. Returns NULL with one line in err naming the
 * tap and the reason. */
struct virtio_net *virtio_net_create(const struct virtio_net_params *p, char *err, size_t errlen);

/* The same on a tap already open (tests: any fds that carry one frame per
 * read/write with the 12-byte header first). Takes the fds over, also on
 * failure. tap->n_fds must be p->queue_pairs. */
struct virtio_net *virtio_net_create_on_tap(const struct virtio_net_params *p, struct net_tap *tap, char *err,
					    size_t errlen);

/* Stops everything if active, closes the tap. NULL is accepted. */
void virtio_net_destroy(struct virtio_net *net);
/* The device's tap queue fds and /dev/vhost-net fds (-1 where none), for
 * the sandbox: ioctls are allowed on these only. Returns the count of each
 * written, at most max. */
unsigned virtio_net_tap_fds(const struct virtio_net *net, int *out, unsigned max);
unsigned virtio_net_vhost_fds(const struct virtio_net *net, int *out, unsigned max);

/* A locally administered unicast MAC for NIC `index` of a VM:
 * 52:54:00:xx:yy:<index>, xx:yy derived from salt (minivmm passes its pid)
 * so that two VMs on one host do not share it. */
void virtio_net_default_mac(unsigned index, unsigned long salt, uint8_t mac[6]);

/* The dev pointer of every op is the struct virtio_net. */
extern const struct virtio_dev_ops virtio_net_ops;

/* ---- introspection (tests, benchmarks) ---- */

/* The backend pairs start on (before activation: tests may replace it). */
const struct net_backend_ops *virtio_net_backend(const struct virtio_net *net);
void virtio_net_set_backend(struct virtio_net *net, const struct net_backend_ops *ops);

/* Pairs running now (0 before activation). */
unsigned virtio_net_active_pairs(const struct virtio_net *net);

/* Pair i as handed to its backend (valid while it runs), or NULL. */
const struct net_pair *virtio_net_pair(const struct virtio_net *net, unsigned i);

/* Pair i's counters, as its backend keeps them (net_pair_stats.available
 * false and all 0 when it keeps none or the pair does not run). */
void virtio_net_pair_stats(const struct virtio_net *net, unsigned i, struct net_pair_stats *out);

/* What the driver asked of the receive filter (stored, not enforced). */
struct virtio_net_rx_filter {
	bool promisc, allmulti;
	unsigned n_uni, n_multi;             /* as the driver sent them */
	uint8_t uni[VIRTIO_NET_MAC_TABLE_MAX][6], multi[VIRTIO_NET_MAC_TABLE_MAX][6];   /* the first ones */
};
void virtio_net_rx_filter(struct virtio_net *net, struct virtio_net_rx_filter *out);
void virtio_net_mac(struct virtio_net *net, uint8_t mac[6]);

#endif
