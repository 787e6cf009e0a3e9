/* virtio-vsock device model (virtio 1.2 section 5.10), host side as
 * Firecracker does it: the guest's AF_VSOCK stream sockets meet Unix
 * sockets on the host.
 *
 * - Host to guest: a host program connects to uds_path and writes
 *   "CONNECT <port>\n"; the device asks the guest (OP_REQUEST from host
 *   port >= 2^30 that it picks), and on the guest's OP_RESPONSE writes
 *   "OK <host port>\n" back; from then on the stream is joined. The guest
 *   refusing (OP_RST) closes the host client; so does a bad line (at once)
 *   or no line within 5 s.
 * - Guest to host: the guest connecting to host port P (cid 2) makes the
 *   device connect to the Unix socket "<uds_path>_<P>": OP_RESPONSE when
 *   that works, OP_RST when it does not.
 * - Data flows with the spec's credit-based flow control both ways: the
 *   guest never gets more than the room it advertised (host bytes are read
 *   straight into its RX buffers), and each connection takes at most 64 KiB
 *   of guest bytes that the host client is slow to read; a guest that sends
 *   beyond the credit it was given has that connection reset.
 *
 * Limits, whatever the guest does: 256 connections (the next are refused),
 * 64 KiB of buffer per connection, replies owed to the guest kept as a few
 * flags per connection plus 64 RSTs for packets of no connection (past
 * those, TX waits until the guest's RX queue takes them). The lines a guest
 * can cause go through the device's log limiter.
 *
 * Queues: 0 rx, 1 tx, 2 event. Config space: le64 guest_cid. No
 * device-specific feature (SEQPACKET is not offered).
 *
 * Threads and ownership: activate() starts one thread, "vsock<index>" (role
 * THREAD_ROLE_VSOCK), that serves the three queues, the listening socket and
 * every connection's socket; reset() stops it and closes every connection;
 * pause() stops it and keeps them. The device owns the listening socket
 * (made by virtio_vsock_create, before the sandbox, removed by destroy),
 * every connection's socket, its two epoll fds and the thread; the
 * transport owns the queues, their eventfds and the interrupt handle.
 *
 * Snapshots: the guest cid is saved; load refuses another. Connections are
 * not saved: after a load, the first activation sends the guest a
 * TRANSPORT_RESET event, and the guest closes its connections (its
 * listeners stay). */
#ifndef MINIVMM_VIRTIO_VSOCK_H
#define MINIVMM_VIRTIO_VSOCK_H

#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"

struct thread_starter;

struct virtio_vsock_params {
	uint64_t guest_cid;          /* >= 3, < 0xffffffff */
	/* The host side's Unix socket: created (a stale socket file there is
	 * removed first; anything else there is an error), mode 0600,
	 * listening. At most 96 bytes, so that "<uds_path>_<port>" fits. */
	const char *uds_path;
	unsigned index;              /* names the thread "vsock<index>" and the log lines */
	const struct thread_starter *threads;   /* NULL: pthread_create */
};

struct virtio_vsock;

/* Opens the listening socket. Returns NULL with one line in err naming the
 * path and the reason. */
struct virtio_vsock *virtio_vsock_create(const struct virtio_vsock_params *p, char *err, size_t errlen);

/* Stops the thread, closes every fd, removes the listening socket's file.
 * NULL is accepted. The removal is an unlinkat() in the socket's directory,
 * opened at create (see virtio_vsock_dir_fd). */
void virtio_vsock_destroy(struct virtio_vsock *v);

/* Since the device was created (relaxed counters, each one exact):
 * connections: connections that got established (either way);
 * rx_*: packets put in the guest's RX queue, and their payload bytes;
 * tx_*: packets taken from the guest's TX queue, and the payload bytes
 * forwarded to host clients; resets: RSTs sent to the guest; errors:
 * malformed or refused guest packets (credit overruns included). */
struct virtio_vsock_stats {
	uint64_t connections, rx_packets, tx_packets, rx_bytes, tx_bytes, resets, errors;
};
void virtio_vsock_stats(const struct virtio_vsock *v, struct virtio_vsock_stats *out);

/* The directory of uds_path, open (O_PATH) from create to destroy: destroy
 * removes the socket file through it, so that a sandbox that lets the
 * destroying thread unlinkat() in this directory only is enough. */
int virtio_vsock_dir_fd(const struct virtio_vsock *v);

/* The dev pointer of every op is the struct virtio_vsock. */
extern const struct virtio_dev_ops virtio_vsock_ops;

#endif
