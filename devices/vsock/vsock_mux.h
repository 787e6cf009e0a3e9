/* virtio-vsock's protocol engine (Firecracker calls its own the muxer):
 * what the device thread does on each wake-up. It takes the guest's
 * packets off the TX queue and hands them to their connections (or opens
 * one, or answers with an RST), accepts host clients and reads their
 * CONNECT lines, puts host bytes and the packets owed to the guest on the
 * RX queue, sends the TRANSPORT_RESET event, and ends what waited too long.
 * devices/vsock/vsock.c is the virtio device around it: it owns the thread
 * (a queue worker) and calls vsock_mux_serve and vsock_mux_woken from it.
 *
 * Threads: everything here runs on the device thread, or on the control
 * thread while that thread is stopped (attach, detach, fini). The counters
 * are atomics, read from anywhere. */
#ifndef MINIVMM_VSOCK_MUX_H
#define MINIVMM_VSOCK_MUX_H

#include <poll.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/virtio/queue_worker.h"
#include "devices/virtio/virtio.h"
#include "devices/vsock/vsock_conn.h"

enum { VSOCK_RXQ, VSOCK_TXQ, VSOCK_EVQ, VSOCK_QUEUES };

/* RSTs owed for packets of no connection, kept while the guest's RX queue
 * is full. Past this many, TX waits (vhost-vsock does the same). */
#define VSOCK_MAX_ORPHAN_RST 64u

/* The watched fds of the device thread's queue worker (set by serve). */
enum { VSOCK_WATCH_IO, VSOCK_WATCH_RX, VSOCK_WATCH_EVENT_KICK, VSOCK_WATCHES };

struct log_limit;

struct vsock_orphan_rst {
	uint32_t local_port, peer_port;
};

struct vsock_mux {
	const char *name;                /* the device's, "vsock0" */
	uint64_t guest_cid;
	const char *uds_path;            /* the device's; host listeners are "<uds_path>_<port>" */
	int listen_fd;                   /* the device's */
	struct log_limit *log_limit;     /* the device's: the lines the guest can cause */
	struct vsock_conns conns;        /* ours: connections and both epoll sets */
	atomic_bool stopping;            /* the device stops the thread: end the batch */

	atomic_uint_fast64_t n_connections, n_rx_packets, n_tx_packets, n_rx_bytes, n_tx_bytes, n_resets, n_errors;

	/* From attach to detach (set while the thread is stopped). */
	const struct virtio_irq *irq;
	struct virtio_queue *q[VSOCK_QUEUES];   /* NULL: not set up by the driver */

	/* The thread's state. */
	bool listen_watched;             /* in the io set (not while accept fails) */
	uint64_t accept_retry_ns;
	bool event_pending;              /* TRANSPORT_RESET owed */
	bool io_ready, rx_ready;         /* the epoll sets were readable */
	bool rx_starved;                 /* the RX queue had no buffer: wait for its kick */
	bool tx_waits;                   /* TX stopped for room for orphan RSTs */
	bool maybe_pending;              /* a connection may owe the guest a packet */
	bool more;                       /* a budget ran out: come back without sleeping */
	unsigned orphan_head, n_orphans;
	struct vsock_orphan_rst orphans[VSOCK_MAX_ORPHAN_RST];
	struct virtq_chain tx_chain, rx_chain;   /* 16 KiB each: not on the thread's stack */
	struct iovec slice[VIRTQ_MAX_IOV];       /* a payload's part of a chain */
};

/* The engine of a device, its epoll sets made and listen_fd watched.
 * Returns 0, or -1 with errno. */
int vsock_mux_init(struct vsock_mux *m, const char *name, uint64_t guest_cid, const char *uds_path, int listen_fd,
		   struct log_limit *log_limit);
/* Closes every connection and the epoll sets (not listen_fd). */
void vsock_mux_fini(struct vsock_mux *m);

/* Activation: the driver's queues (q[i] NULL when not set up) and the
 * interrupt handle; transport_reset: send the guest a TRANSPORT_RESET. */
void vsock_mux_attach(struct vsock_mux *m, struct virtio_queue *const q[VSOCK_QUEUES], const struct virtio_irq *irq,
		      bool transport_reset);
/* Before the thread starts (at activation and resume). */
void vsock_mux_prepare(struct vsock_mux *m);
/* Reset: every connection closed (host clients too), nothing owed, the
 * queues forgotten. The listening socket stays watched. */
void vsock_mux_detach(struct vsock_mux *m);

/* The queue worker's callbacks (ctx: the struct vsock_mux), watching
 * VSOCK_WATCHES fds. */
int vsock_mux_serve(void *ctx, struct queue_worker_sleep *next);
void vsock_mux_woken(void *ctx, const struct pollfd *watch);

#endif
