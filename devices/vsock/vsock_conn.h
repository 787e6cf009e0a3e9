/* virtio-vsock's connections, host side (devices/vsock/vsock.c speaks the
 * protocol to the guest): a fixed table of them, each connection's Unix
 * socket and the buffer of guest bytes its host client has not read yet,
 * the two epoll sets the device thread waits on, and the host port
 * allocator. Used by the device thread only (and by the control thread while
 * that thread is stopped).
 *
 * Epoll, not the queue worker's own poll list: that list holds 4 fds and a
 * device has up to 256 connections. The thread polls two epoll fds through
 * it instead:
 *  - rx set: connections whose host client's bytes may go to the guest now
 *    (established, the guest has room for them). The device stops polling
 *    this set while the guest's RX queue has no buffers, so that a readable
 *    socket does not wake it for nothing; a connection leaves the set when
 *    the guest's credit runs out.
 *  - io set: the listening socket, host clients still writing their CONNECT
 *    line, connections with guest bytes waiting for room in the socket
 *    (EPOLLOUT), and connections whose host client stopped sending (only
 *    their hang-up is watched).
 * Both are level-triggered. An event carries its connection's slot and a
 * generation number, so an event for a connection freed earlier in the same
 * batch finds the slot empty or reused and is ignored. */
#ifndef MINIVMM_VSOCK_CONN_H
#define MINIVMM_VSOCK_CONN_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "devices/vsock/vsock_pkt.h"

#define VSOCK_MAX_CONNS 256u
/* The buf_alloc we advertise for every connection: the most guest bytes a
 * connection may have that its host client has not read yet. */
#define VSOCK_CONN_BUF_SIZE (64u * 1024)
/* Host ports of the connections host clients open: from here up (below it
 * are the ports a guest connects to), as Firecracker does. */
#define VSOCK_LOCAL_PORT_FIRST (1u << 30)
/* The epoll token of the listening socket. */
#define VSOCK_TOKEN_LISTEN UINT64_MAX

enum vsock_conn_state {
	VSOCK_CONN_HOST_LINE,      /* host client accepted; its CONNECT line not read yet */
	VSOCK_CONN_HOST_REQUEST,   /* REQUEST owed or sent to the guest; waiting for its RESPONSE */
	VSOCK_CONN_ESTABLISHED,
	VSOCK_CONN_CLOSING,        /* both ways shut: waiting for the guest's RST, or for the buffer to drain */
	VSOCK_CONN_RESET,          /* host side closed; the RST owed to the guest frees the slot */
};

/* Packets owed to the guest (sent when its RX queue has buffers). */
#define VSOCK_PEND_REQUEST  1u
#define VSOCK_PEND_RESPONSE 2u
#define VSOCK_PEND_SHUTDOWN 4u   /* with shutdown_flags */
#define VSOCK_PEND_CREDIT   8u   /* CREDIT_UPDATE */
#define VSOCK_PEND_RST      16u

struct vsock_conn {
	enum vsock_conn_state state;
	unsigned slot;
	uint32_t gen;                 /* of this use of the slot */
	int fd;                       /* the host client's socket; -1 once closed */
	uint32_t local_port;          /* the host's end of the connection */
	uint32_t peer_port;           /* the guest's */

	/* Flow control (spec 5.10.6.3), u32 counters that wrap. */
	uint32_t peer_buf_alloc, peer_fwd_cnt;   /* the guest's, from its last packet */
	uint32_t tx_cnt;              /* payload bytes sent to the guest */
	uint32_t rx_cnt;              /* payload bytes received from the guest */
	uint32_t fwd_cnt;             /* of those, written to the host socket */
	uint32_t fwd_told;            /* fwd_cnt in the last header the guest got */

	/* Guest bytes the host socket did not take yet: a ring of
	 * VSOCK_CONN_BUF_SIZE, allocated when first needed, freed on close. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;

	unsigned pending;             /* VSOCK_PEND_* */
	uint32_t shutdown_flags;      /* of the SHUTDOWN owed */
	bool host_eof;                /* the host client sends no more (its EOF was read) */
	bool guest_no_rcv, guest_no_send;   /* the guest's SHUTDOWN flags so far */
	bool host_wr_shut;            /* shutdown(SHUT_WR) done on the host socket */
	uint64_t deadline_ns;         /* when a waiting state gives up (monotonic); 0: none */

	char line[VSOCK_CONNECT_LINE_MAX];   /* the CONNECT line read so far */
	unsigned line_len;

	/* What epoll has, as registered. */
	bool in_rx_set, in_io_set;
	uint32_t io_events;
};

struct vsock_conns {
	struct vsock_conn *slot[VSOCK_MAX_CONNS];
	unsigned n_used;
	uint32_t next_gen;
	uint32_t next_local_port;
	int rx_epoll, io_epoll;       /* owned: made by init, closed by fini */
};

/* Empty table and its two epoll fds. Returns 0, or -1 with errno. */
int vsock_conns_init(struct vsock_conns *t);
/* Frees every connection (closing their sockets) and the epoll fds. */
void vsock_conns_fini(struct vsock_conns *t);

/* A new connection in state s, or NULL (table full, or no memory). fd -1,
 * counters zero. */
struct vsock_conn *vsock_conn_new(struct vsock_conns *t, enum vsock_conn_state s);
/* Closes its socket (if open) and frees it; the slot is free again. */
void vsock_conn_free(struct vsock_conns *t, struct vsock_conn *c);
/* Closes the host side only: socket and buffer. The slot stays. */
void vsock_conn_close_host(struct vsock_conns *t, struct vsock_conn *c);

/* The connection a guest packet is for (our port, the guest's port); host
 * clients still writing their line have no ports yet and are never found. */
struct vsock_conn *vsock_conn_find(const struct vsock_conns *t, uint32_t local_port, uint32_t peer_port);
/* The connection an epoll event is for, or NULL when it is gone. */
struct vsock_conn *vsock_conn_by_token(const struct vsock_conns *t, uint64_t token);

/* A host port for a new host-initiated connection: counting up from the
 * last one (2^30 after UINT32_MAX), skipping the ones in use. */
uint32_t vsock_conn_alloc_port(struct vsock_conns *t);

/* What the guest may be sent from c's host client now: its credit, at most
 * VSOCK_MAX_PAYLOAD. */
uint32_t vsock_conn_guest_room(const struct vsock_conn *c);

/* Puts c's epoll registrations in line with its state. Returns 0, or -1
 * (epoll refused: the caller resets the connection). */
int vsock_conn_sync(struct vsock_conns *t, struct vsock_conn *c);

/* ---- host socket I/O (non-blocking; -errno on failure) ---- */

/* A socket connected to "<uds_path>_<port>", or -errno (ECONNREFUSED,
 * ENOENT: nobody listens there; EAGAIN: its backlog is full). */
int vsock_host_connect(const char *uds_path, uint32_t port);

/* Reads c's CONNECT line: 1 with *port when it is complete, 0 when more is
 * to come, -1 when it is bad or the client went (close it). Reads no byte
 * past the line's end: what follows is the stream. */
int vsock_conn_read_line(struct vsock_conn *c, uint32_t *port);

/* Writes "OK <local_port>\n" to the host client. 0 or -errno. */
int vsock_conn_send_ok(const struct vsock_conn *c);

/* Guest bytes iov[0..n) (len in all) for the host client: written at once
 * when nothing is buffered, the rest buffered. The caller checked the
 * guest's credit, so it fits. Updates rx_cnt and fwd_cnt. 0 or -errno (the
 * host client cannot take them any more). */
int vsock_conn_write(struct vsock_conn *c, const struct iovec *iov, unsigned n, uint32_t len);

/* Writes what is buffered, as much as the socket takes; frees the buffer
 * once empty. 0 or -errno. */
int vsock_conn_flush(struct vsock_conn *c);

/* Reads host client bytes into iov[0..n): bytes read, 0 at its EOF,
 * -EAGAIN when there are none now, other -errno. */
long vsock_conn_read(const struct vsock_conn *c, const struct iovec *iov, unsigned n);

/* Whether the host client is gone both ways (POLLHUP), not just done
 * sending. */
bool vsock_conn_host_hung_up(const struct vsock_conn *c);

#endif
