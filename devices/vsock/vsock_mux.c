#define _GNU_SOURCE
#include "devices/vsock/vsock_mux.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/virtio/iov.h"
#include "devices/vsock/vsock_pkt.h"
#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"

#define VSOCK_EVENT_SIZE 4u    /* le32 id */
/* Work per wake-up at most, so that a guest that keeps its rings full
 * cannot keep the thread from its other queues or from a stop. */
#define VSOCK_TX_BUDGET 256u
#define VSOCK_EVENTS 64          /* epoll events taken per wait */
#define VSOCK_ACCEPT_BUDGET 16u
/* Unasked CREDIT_UPDATE once this much was forwarded since the last header. */
#define VSOCK_CREDIT_THRESHOLD (VSOCK_CONN_BUF_SIZE / 4)
#define MS(n) ((uint64_t)(n) * 1000000ull)
#define VSOCK_LINE_TIMEOUT MS(5000)      /* host client's CONNECT line */
#define VSOCK_REQUEST_TIMEOUT MS(5000)   /* guest's answer to a host client's REQUEST */
#define VSOCK_CLOSE_TIMEOUT MS(2000)     /* guest's RST after both ways shut (Firecracker's) */
#define VSOCK_ACCEPT_RETRY MS(1000)      /* accept failing (out of fds): try again after */

static void count(atomic_uint_fast64_t *c, uint64_t n)
{
	atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* ---- packets to the guest ---- */

/* Pops an RX chain that can take a header into rx_chain: 1, 0 when there
 * is none now, -1 when the queue broke. Unusable chains go back empty. */
static int rx_pop(struct vsock_mux *m)
{
	struct virtq *vq = &m->q[VSOCK_RXQ]->vq;
	struct virtq_chain *c = &m->rx_chain;
	for (unsigned tries = 0; tries < vq->size; tries++) {
		int r = virtq_pop_chain(vq, c);
		if (r == 0)
			m->rx_starved = true;
		if (r <= 0)
			return r;
		if (!c->n_out && c->in_len >= VSOCK_HDR_SIZE)
			return 1;
		count(&m->n_errors, 1);
		log_warn_limited(m->log_limit, "%s: RX chain (head %u) %s; given back unused", m->name, c->head,
				 c->n_out ? "has a device-readable buffer" : "is shorter than the 44-byte header");
		if (virtq_push_used(vq, c->head, 0) < 0)
			return -1;
	}
	m->more = true;   /* a ring full of bad chains: the rest next round */
	return 0;
}

/* Writes h into the popped RX chain (its payload is there already) and
 * hands the chain to the guest. */
static int rx_push(struct vsock_mux *m, const struct vsock_hdr *h)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	const struct virtq_chain *c = &m->rx_chain;
	vsock_hdr_encode(h, raw);
	iov_from_buf(c->iov, c->n_in, 0, raw, sizeof(raw));   /* in_len >= 44: rx_pop checked */
	if (virtq_push_used(&m->q[VSOCK_RXQ]->vq, c->head, VSOCK_HDR_SIZE + h->len) < 0)
		return -1;
	count(&m->n_rx_packets, 1);
	count(&m->n_rx_bytes, h->len);
	if (h->op == VSOCK_OP_RST)
		count(&m->n_resets, 1);
	return 0;
}

/* A packet without payload for connection c (NULL: of no connection, an
 * RST). 1 sent, 0 no RX buffer, -1 the queue broke. */
static int rx_send_ctrl(struct vsock_mux *m, struct vsock_conn *c, uint32_t local_port, uint32_t peer_port,
			uint16_t op, uint32_t flags)
{
	int r = rx_pop(m);
	if (r <= 0)
		return r;
	struct vsock_hdr h;
	vsock_hdr_to_guest(&h, m->guest_cid, local_port, peer_port, op, flags, 0, c ? VSOCK_CONN_BUF_SIZE : 0,
			   c ? c->fwd_cnt : 0);
	if (rx_push(m, &h) < 0)
		return -1;
	if (c)
		c->fwd_told = c->fwd_cnt;
	return 1;
}

static void owe(struct vsock_mux *m, struct vsock_conn *c, unsigned what)
{
	c->pending |= what;
	m->maybe_pending = true;
}

static void orphan_rst(struct vsock_mux *m, uint32_t local_port, uint32_t peer_port)
{
	if (m->n_orphans == VSOCK_MAX_ORPHAN_RST)
		return;   /* tx_process keeps room for one per packet */
	m->orphans[(m->orphan_head + m->n_orphans) % VSOCK_MAX_ORPHAN_RST] =
		(struct vsock_orphan_rst){ .local_port = local_port, .peer_port = peer_port };
	m->n_orphans++;
}

/* ---- connection state ---- */

/* The host side goes; the guest is owed an RST, which frees the slot. */
static void conn_reset(struct vsock_mux *m, struct vsock_conn *c)
{
	vsock_conn_close_host(&m->conns, c);
	c->state = VSOCK_CONN_RESET;
	c->pending = 0;
	c->deadline_ns = 0;
	owe(m, c, VSOCK_PEND_RST);
}

/* Epoll registrations after a change; a refusal resets the connection. */
static void conn_update(struct vsock_mux *m, struct vsock_conn *c)
{
	if (vsock_conn_sync(&m->conns, c) < 0) {
		log_warn_limited(m->log_limit, "%s: host port %u: epoll: %s; connection reset", m->name, c->local_port,
				 strerror(errno));
		conn_reset(m, c);
	}
}

static void protocol_error(struct vsock_mux *m, struct vsock_conn *c, const char *why)
{
	count(&m->n_errors, 1);
	log_warn_limited(m->log_limit, "%s: guest port %u to host port %u: %s; connection reset", m->name,
			 c->peer_port, c->local_port, why);
	conn_reset(m, c);
}

/* Both ways shut: the guest is told, and has VSOCK_CLOSE_TIMEOUT to answer
 * with its RST. Nothing passes any more: the host client is closed. */
static void conn_closing(struct vsock_mux *m, struct vsock_conn *c)
{
	vsock_conn_close_host(&m->conns, c);
	c->shutdown_flags = VSOCK_SHUTDOWN_BOTH;
	owe(m, c, VSOCK_PEND_SHUTDOWN);
	c->state = VSOCK_CONN_CLOSING;
	c->deadline_ns = monotonic_ns() + VSOCK_CLOSE_TIMEOUT;
}

/* After any shutdown or flush: whether the connection is done. */
static void check_finished(struct vsock_mux *m, struct vsock_conn *c)
{
	if (c->state != VSOCK_CONN_ESTABLISHED)
		return;
	if (c->guest_no_rcv && c->guest_no_send) {
		/* The guest closed: its bytes go out first, then the RST that
		 * completes its close (spec 5.10.6.6). */
		if (!c->buf_len) {
			conn_reset(m, c);
		} else {
			c->state = VSOCK_CONN_CLOSING;
			c->deadline_ns = monotonic_ns() + VSOCK_CLOSE_TIMEOUT;
		}
	} else if (c->host_eof && c->guest_no_send && !c->buf_len) {
		conn_closing(m, c);
	}
}

/* The host client sends no more (its EOF). */
static void host_eof(struct vsock_mux *m, struct vsock_conn *c)
{
	if (vsock_conn_host_hung_up(c)) {   /* gone both ways: nothing of the guest's can reach it */
		conn_closing(m, c);
		return;
	}
	c->host_eof = true;
	c->shutdown_flags |= VSOCK_SHUTDOWN_SEND;
	owe(m, c, VSOCK_PEND_SHUTDOWN);
	check_finished(m, c);
}

static void after_flush(struct vsock_mux *m, struct vsock_conn *c)
{
	if (!c->buf_len && c->guest_no_send && !c->host_wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->host_wr_shut = true;
	}
	if (c->state == VSOCK_CONN_CLOSING && !c->buf_len) {
		conn_reset(m, c);   /* the guest's close, drained */
		return;
	}
	if (c->state == VSOCK_CONN_ESTABLISHED && vsock_credit_update_due(c->fwd_cnt, c->fwd_told, VSOCK_CREDIT_THRESHOLD))
		owe(m, c, VSOCK_PEND_CREDIT);
	check_finished(m, c);
}

/* ---- packets from the guest ---- */

static void guest_connect(struct vsock_mux *m, const struct vsock_hdr *h)
{
	if (m->conns.n_used >= VSOCK_MAX_CONNS) {
		log_warn_limited(m->log_limit, "%s: guest connection to host port %u refused: %u connections open, the most",
				 m->name, h->dst_port, VSOCK_MAX_CONNS);
		orphan_rst(m, h->dst_port, h->src_port);
		return;
	}
	int fd = vsock_host_connect(m->uds_path, h->dst_port);
	if (fd < 0) {
		/* Nobody listening there is the guest's connect failing, not news. */
		if (fd != -ECONNREFUSED && fd != -ENOENT)
			log_warn_limited(m->log_limit, "%s: guest connection to host port %u: %s_%u: %s", m->name,
					 h->dst_port, m->uds_path, h->dst_port, strerror(-fd));
		orphan_rst(m, h->dst_port, h->src_port);
		return;
	}
	struct vsock_conn *c = vsock_conn_new(&m->conns, VSOCK_CONN_ESTABLISHED);
	if (!c) {
		close(fd);
		orphan_rst(m, h->dst_port, h->src_port);
		return;
	}
	c->fd = fd;
	c->local_port = h->dst_port;
	c->peer_port = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	owe(m, c, VSOCK_PEND_RESPONSE);
	count(&m->n_connections, 1);
	conn_update(m, c);
}

static void guest_data(struct vsock_mux *m, struct vsock_conn *c, const struct vsock_hdr *h,
		       const struct virtq_chain *ch)
{
	if (c->guest_no_send) {
		protocol_error(m, c, "data after its SHUTDOWN SEND");
		return;
	}
	if (!vsock_credit_allows(VSOCK_CONN_BUF_SIZE, c->fwd_told, c->rx_cnt, h->len)) {
		protocol_error(m, c, "data beyond the credit it was given");
		return;
	}
	if (!h->len)
		return;
	unsigned n = iov_slice(ch->iov, ch->n_out, VSOCK_HDR_SIZE, h->len, m->slice);
	if (vsock_conn_write(c, m->slice, n, h->len) < 0) {
		conn_reset(m, c);   /* the host client takes no more: the guest learns it by the RST */
		return;
	}
	count(&m->n_tx_bytes, h->len);
	if (vsock_credit_update_due(c->fwd_cnt, c->fwd_told, VSOCK_CREDIT_THRESHOLD))
		owe(m, c, VSOCK_PEND_CREDIT);
}

static void guest_shutdown(struct vsock_mux *m, struct vsock_conn *c, uint32_t flags)
{
	if ((flags & VSOCK_SHUTDOWN_RCV) && !c->guest_no_rcv) {
		c->guest_no_rcv = true;
		shutdown(c->fd, SHUT_RD);
	}
	if ((flags & VSOCK_SHUTDOWN_SEND) && !c->guest_no_send) {
		c->guest_no_send = true;
		after_flush(m, c);   /* SHUT_WR now when nothing is buffered */
		return;
	}
	check_finished(m, c);
}

/* The guest's answer to a host client's CONNECT. */
static void host_request_answer(struct vsock_mux *m, struct vsock_conn *c, const struct vsock_hdr *h)
{
	if (h->op == VSOCK_OP_RST) {
		vsock_conn_free(&m->conns, c);   /* nobody listens on that guest port */
		return;
	}
	if (h->op != VSOCK_OP_RESPONSE || (c->pending & VSOCK_PEND_REQUEST)) {
		protocol_error(m, c, "not an answer to the connection request");
		return;
	}
	if (vsock_conn_send_ok(c) < 0) {
		conn_reset(m, c);   /* the host client went meanwhile */
		return;
	}
	c->state = VSOCK_CONN_ESTABLISHED;
	c->deadline_ns = 0;
	count(&m->n_connections, 1);
	conn_update(m, c);
}

static void conn_packet(struct vsock_mux *m, struct vsock_conn *c, const struct vsock_hdr *h,
			const struct virtq_chain *ch)
{
	/* Every packet says how much room the guest has (spec 5.10.6.3). */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (c->state) {
	case VSOCK_CONN_HOST_LINE:   /* has no ports: never found */
		return;
	case VSOCK_CONN_HOST_REQUEST:
		host_request_answer(m, c, h);
		return;
	case VSOCK_CONN_CLOSING:
	case VSOCK_CONN_RESET:
		/* What crossed our SHUTDOWN or RST is dropped; the guest's RST ends
		 * it; a REQUEST on the same ports is a new connection: the old one
		 * is gone on the guest's side too. */
		if (h->op == VSOCK_OP_RST || h->op == VSOCK_OP_REQUEST)
			vsock_conn_free(&m->conns, c);
		if (h->op == VSOCK_OP_REQUEST)
			guest_connect(m, h);
		return;
	case VSOCK_CONN_ESTABLISHED:
		break;
	}
	switch (h->op) {
	case VSOCK_OP_RW:
		guest_data(m, c, h, ch);
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		break;   /* taken above */
	case VSOCK_OP_CREDIT_REQUEST:
		owe(m, c, VSOCK_PEND_CREDIT);
		break;
	case VSOCK_OP_SHUTDOWN:
		guest_shutdown(m, c, h->flags);
		break;
	case VSOCK_OP_RST:
		vsock_conn_free(&m->conns, c);
		return;
	default:   /* REQUEST, RESPONSE */
		protocol_error(m, c, "connection request on an open connection");
		return;
	}
	conn_update(m, c);   /* the guest's credit may have opened or closed */
}

static void tx_packet(struct vsock_mux *m, const struct virtq_chain *ch)
{
	struct vsock_hdr h;
	count(&m->n_tx_packets, 1);
	if (!vsock_hdr_from_iov(ch->iov, ch->n_out, &h)) {
		count(&m->n_errors, 1);
		log_warn_limited(m->log_limit, "%s: TX chain (head %u) has %" PRIu64 " readable bytes, fewer than the "
				 "44-byte header; dropped", m->name, ch->head, ch->out_len);
		return;
	}
	enum vsock_pkt_verdict verdict = vsock_pkt_check(&h, m->guest_cid, ch->out_len - VSOCK_HDR_SIZE);
	/* A packet that is not the guest's to the host belongs to no connection. */
	bool addressed = verdict != VSOCK_PKT_BAD_SRC_CID && verdict != VSOCK_PKT_BAD_DST_CID;
	struct vsock_conn *c = addressed ? vsock_conn_find(&m->conns, h.dst_port, h.src_port) : NULL;
	if (verdict != VSOCK_PKT_OK) {
		count(&m->n_errors, 1);
		log_warn_limited(m->log_limit, "%s: TX packet (head %u, op %u, port %u to %u) refused: %s", m->name,
				 ch->head, h.op, h.src_port, h.dst_port, vsock_pkt_verdict_str(verdict));
		if (c && h.op == VSOCK_OP_RST)
			vsock_conn_free(&m->conns, c);   /* a close, however badly said */
		else if (c)
			conn_reset(m, c);
		else if (vsock_pkt_wants_rst(verdict, &h))
			orphan_rst(m, h.dst_port, h.src_port);
		return;
	}
	if (c)
		conn_packet(m, c, &h, ch);
	else if (h.op == VSOCK_OP_REQUEST)
		guest_connect(m, &h);
	else if (h.op != VSOCK_OP_RST)
		orphan_rst(m, h.dst_port, h.src_port);   /* never an RST for an RST */
}

static int tx_process(struct vsock_mux *m)
{
	struct virtq *vq = &m->q[VSOCK_TXQ]->vq;
	m->tx_waits = false;
	for (unsigned n = 0; n < VSOCK_TX_BUDGET; n++) {
		if (atomic_load_explicit(&m->stopping, memory_order_relaxed))
			return 0;
		/* A packet may need an RST of no connection: room for it first. */
		if (m->n_orphans == VSOCK_MAX_ORPHAN_RST) {
			m->tx_waits = true;
			return 0;
		}
		int r = virtq_pop_chain(vq, &m->tx_chain);
		if (r <= 0)
			return r;
		tx_packet(m, &m->tx_chain);
		if (virtq_push_used(vq, m->tx_chain.head, 0) < 0)
			return -1;
	}
	m->more = true;
	return 0;
}

/* ---- owed packets, host events, host data ---- */

/* Sends c's most urgent owed packet: 1 sent, 2 sent and c freed, 0 no RX
 * buffer, -1 the queue broke. */
static int send_owed(struct vsock_mux *m, struct vsock_conn *c)
{
	static const struct { unsigned bit; uint16_t op; } order[] = {
		{ VSOCK_PEND_RST, VSOCK_OP_RST },
		{ VSOCK_PEND_REQUEST, VSOCK_OP_REQUEST },
		{ VSOCK_PEND_RESPONSE, VSOCK_OP_RESPONSE },
		{ VSOCK_PEND_SHUTDOWN, VSOCK_OP_SHUTDOWN },
		{ VSOCK_PEND_CREDIT, VSOCK_OP_CREDIT_UPDATE },
	};
	unsigned i = 0;
	while (!(c->pending & order[i].bit))
		i++;   /* pending != 0: one of them is set */
	bool rst = order[i].bit == VSOCK_PEND_RST;
	int r = rx_send_ctrl(m, rst ? NULL : c, c->local_port, c->peer_port, order[i].op,
			     order[i].bit == VSOCK_PEND_SHUTDOWN ? c->shutdown_flags : 0);
	if (r <= 0)
		return r;
	c->pending &= ~order[i].bit;
	if (rst) {
		vsock_conn_free(&m->conns, c);
		return 2;
	}
	if (order[i].bit == VSOCK_PEND_RESPONSE)
		conn_update(m, c);   /* its data may flow now */
	return 1;
}

/* 1 all sent, 0 no RX buffer, -1 the queue broke. */
static int send_pending(struct vsock_mux *m)
{
	while (m->n_orphans) {
		const struct vsock_orphan_rst *o = &m->orphans[m->orphan_head];
		int r = rx_send_ctrl(m, NULL, o->local_port, o->peer_port, VSOCK_OP_RST, 0);
		if (r <= 0)
			return r;
		m->orphan_head = (m->orphan_head + 1) % VSOCK_MAX_ORPHAN_RST;
		m->n_orphans--;
	}
	if (!m->maybe_pending)
		return 1;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		/* At most 5 bits each: bounded. */
		while (m->conns.slot[i] && m->conns.slot[i]->pending) {
			int r = send_owed(m, m->conns.slot[i]);
			if (r <= 0)
				return r;
		}
	}
	m->maybe_pending = false;
	return 1;
}

static void pause_listen(struct vsock_mux *m)
{
	epoll_ctl(m->conns.io_epoll, EPOLL_CTL_DEL, m->listen_fd, NULL);
	m->listen_watched = false;
	m->accept_retry_ns = monotonic_ns() + VSOCK_ACCEPT_RETRY;
}

static void watch_listen(struct vsock_mux *m)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = VSOCK_TOKEN_LISTEN };
	m->listen_watched = epoll_ctl(m->conns.io_epoll, EPOLL_CTL_ADD, m->listen_fd, &ev) == 0;
	m->accept_retry_ns = m->listen_watched ? 0 : monotonic_ns() + VSOCK_ACCEPT_RETRY;
}

static void accept_clients(struct vsock_mux *m)
{
	for (unsigned i = 0; i < VSOCK_ACCEPT_BUDGET; i++) {
		int fd = accept4(m->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0 && (errno == EINTR || errno == ECONNABORTED))
			continue;
		if (fd < 0 && errno == EAGAIN)
			return;
		if (fd < 0) {
			/* Out of fds or memory: the socket stays readable, so stop
			 * watching it for a while rather than spin. */
			log_warn_limited(m->log_limit, "%s: accept on %s: %s; retrying in 1 s", m->name, m->uds_path,
					 strerror(errno));
			pause_listen(m);
			return;
		}
		struct vsock_conn *c = vsock_conn_new(&m->conns, VSOCK_CONN_HOST_LINE);
		if (!c) {
			close(fd);
			log_warn_limited(m->log_limit, "%s: host client on %s refused: %u connections open, the most",
					 m->name, m->uds_path, VSOCK_MAX_CONNS);
			continue;
		}
		c->fd = fd;
		c->deadline_ns = monotonic_ns() + VSOCK_LINE_TIMEOUT;
		if (vsock_conn_sync(&m->conns, c) < 0)
			vsock_conn_free(&m->conns, c);
	}
	m->more = true;
}

static void host_line(struct vsock_mux *m, struct vsock_conn *c)
{
	uint32_t port;
	int r = vsock_conn_read_line(c, &port);
	if (r == 0)
		return;
	if (r < 0) {
		if (c->line_len)
			log_warn_limited(m->log_limit, "%s: host client on %s closed: not a \"CONNECT <port>\\n\" line",
					 m->name, m->uds_path);
		vsock_conn_free(&m->conns, c);
		return;
	}
	c->peer_port = port;
	c->local_port = vsock_conn_alloc_port(&m->conns);
	c->state = VSOCK_CONN_HOST_REQUEST;
	c->deadline_ns = monotonic_ns() + VSOCK_REQUEST_TIMEOUT;
	owe(m, c, VSOCK_PEND_REQUEST);
	conn_update(m, c);
}

static void conn_io_event(struct vsock_mux *m, struct vsock_conn *c, uint32_t events)
{
	if (c->state == VSOCK_CONN_HOST_LINE) {
		host_line(m, c);
		return;
	}
	if (c->buf_len) {
		if (vsock_conn_flush(c) < 0)
			conn_reset(m, c);   /* the host client takes no more */
		else
			after_flush(m, c);
	} else if ((events & (EPOLLHUP | EPOLLERR)) && c->state == VSOCK_CONN_ESTABLISHED) {
		conn_closing(m, c);   /* done sending before, now gone both ways */
	}
	conn_update(m, c);
}

static void io_events(struct vsock_mux *m)
{
	struct epoll_event ev[VSOCK_EVENTS];
	int n = epoll_wait(m->conns.io_epoll, ev, VSOCK_EVENTS, 0);
	if (n == VSOCK_EVENTS)
		m->more = true;
	for (int i = 0; i < n; i++) {
		if (ev[i].data.u64 == VSOCK_TOKEN_LISTEN) {
			accept_clients(m);
			continue;
		}
		struct vsock_conn *c = vsock_conn_by_token(&m->conns, ev[i].data.u64);
		if (c && c->in_io_set)   /* not one freed or changed earlier in this batch */
			conn_io_event(m, c, ev[i].events);
	}
}

/* One packet of c's host client's bytes to the guest: 1 done (whatever
 * happened), 0 no RX buffer, -1 the queue broke. */
static int rx_data_one(struct vsock_mux *m, struct vsock_conn *c)
{
	uint32_t room = vsock_conn_guest_room(c);
	if (!room) {
		conn_update(m, c);   /* out of the rx set until the guest's credit opens */
		return 1;
	}
	int r = rx_pop(m);
	if (r <= 0)
		return r;
	const struct virtq_chain *ch = &m->rx_chain;
	if (ch->in_len - VSOCK_HDR_SIZE < room)
		room = (uint32_t)(ch->in_len - VSOCK_HDR_SIZE);
	struct vsock_hdr h;
	if (!room) {
		/* A buffer with room for a header only: it carries our credit, so
		 * it is used rather than stalling the queue. */
		vsock_hdr_to_guest(&h, m->guest_cid, c->local_port, c->peer_port, VSOCK_OP_CREDIT_UPDATE, 0, 0,
				   VSOCK_CONN_BUF_SIZE, c->fwd_cnt);
		if (rx_push(m, &h) < 0)
			return -1;
		c->fwd_told = c->fwd_cnt;
		return 1;
	}
	unsigned n = iov_slice(ch->iov, ch->n_in, VSOCK_HDR_SIZE, room, m->slice);
	long got = vsock_conn_read(c, m->slice, n);
	if (got <= 0) {
		virtq_unpop(&m->q[VSOCK_RXQ]->vq);
		if (got == 0)
			host_eof(m, c);
		else if (got != -EAGAIN)
			conn_reset(m, c);   /* ECONNRESET: the host client went with bytes unread */
		conn_update(m, c);
		return 1;
	}
	vsock_hdr_to_guest(&h, m->guest_cid, c->local_port, c->peer_port, VSOCK_OP_RW, 0, (uint32_t)got,
			   VSOCK_CONN_BUF_SIZE, c->fwd_cnt);
	if (rx_push(m, &h) < 0)
		return -1;
	c->tx_cnt += (uint32_t)got;
	c->fwd_told = c->fwd_cnt;
	conn_update(m, c);   /* out of the rx set when the guest's credit is used up */
	return 1;
}

static int rx_data(struct vsock_mux *m)
{
	struct epoll_event ev[VSOCK_EVENTS];
	int n = epoll_wait(m->conns.rx_epoll, ev, VSOCK_EVENTS, 0);
	if (n == VSOCK_EVENTS)
		m->more = true;
	for (int i = 0; i < n; i++) {
		struct vsock_conn *c = vsock_conn_by_token(&m->conns, ev[i].data.u64);
		if (!c || !c->in_rx_set)
			continue;
		int r = rx_data_one(m, c);
		if (r <= 0)
			return r;
	}
	return 1;
}

/* Ends what waited too long. Returns ms to the next deadline, -1: none. */
static int timeouts(struct vsock_mux *m)
{
	uint64_t now = monotonic_ns(), next = UINT64_MAX;
	if (m->accept_retry_ns && now >= m->accept_retry_ns) {
		watch_listen(m);
		m->io_ready = true;
	}
	if (m->accept_retry_ns)
		next = m->accept_retry_ns;
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = m->conns.slot[i];
		if (!c || !c->deadline_ns)
			continue;
		if (now < c->deadline_ns) {
			next = c->deadline_ns < next ? c->deadline_ns : next;
			continue;
		}
		if (c->state == VSOCK_CONN_HOST_LINE) {
			log_warn_limited(m->log_limit, "%s: host client on %s sent no CONNECT line in 5 s; closed", m->name,
					 m->uds_path);
			vsock_conn_free(&m->conns, c);
			continue;
		}
		if (c->state == VSOCK_CONN_HOST_REQUEST)
			log_warn_limited(m->log_limit, "%s: the guest did not answer a connection to its port %u in 5 s; "
					 "host client closed", m->name, c->peer_port);
		conn_reset(m, c);   /* an RST tells the guest to forget it */
		m->more = true;     /* to send it */
	}
	return next == UINT64_MAX ? -1 : (int)((next - now + MS(1) - 1) / MS(1));
}

/* ---- the thread ---- */

static int send_event(struct vsock_mux *m)
{
	if (!m->q[VSOCK_EVQ]) {
		m->event_pending = false;   /* no event queue: nobody to tell */
		return 0;
	}
	struct virtq *vq = &m->q[VSOCK_EVQ]->vq;
	struct virtq_chain *c = &m->rx_chain;
	for (unsigned tries = 0; tries < vq->size; tries++) {
		int r = virtq_pop_chain(vq, c);
		if (r <= 0)
			return r;
		uint32_t len = 0;
		if (!c->n_out && c->in_len >= VSOCK_EVENT_SIZE) {
			uint8_t id[VSOCK_EVENT_SIZE] = { 0 };   /* le32 VIRTIO_VSOCK_EVENT_TRANSPORT_RESET */
			iov_from_buf(c->iov, c->n_in, 0, id, sizeof(id));
			len = VSOCK_EVENT_SIZE;
		} else {
			count(&m->n_errors, 1);
			log_warn_limited(m->log_limit, "%s: event chain (head %u) cannot take a 4-byte event; given back "
					 "unused", m->name, c->head);
		}
		if (virtq_push_used(vq, c->head, len) < 0)
			return -1;
		if (len) {
			m->event_pending = false;
			return 0;
		}
	}
	m->more = true;
	return 0;
}

static void notify(struct vsock_mux *m)
{
	for (unsigned q = 0; q < VSOCK_QUEUES; q++)
		if (m->q[q] && virtq_should_notify(&m->q[q]->vq))
			m->irq->queue(m->irq, q);
}

/* One round of work, in this order: the event owed, the guest's packets,
 * the host side's events, the packets owed to the guest, host bytes for the
 * guest, then what is owed since; then timeouts and interrupts. */
static int serve_round(struct vsock_mux *m)
{
	if (m->rx_starved && virtq_has_buffers(&m->q[VSOCK_RXQ]->vq)) {
		m->rx_starved = false;
		m->rx_ready = true;
	}
	if (m->event_pending && send_event(m) < 0)
		return -1;
	if (tx_process(m) < 0)
		return -1;
	if (m->io_ready) {
		m->io_ready = false;
		io_events(m);
	}
	if (!m->rx_starved && send_pending(m) < 0)
		return -1;
	if (m->rx_ready && !m->rx_starved) {
		m->rx_ready = false;
		if (rx_data(m) < 0)
			return -1;
	}
	/* What the host side owes since (an EOF's SHUTDOWN, a reset). */
	if (!m->rx_starved && send_pending(m) < 0)
		return -1;
	if (m->tx_waits && m->n_orphans < VSOCK_MAX_ORPHAN_RST)
		m->more = true;   /* TX stopped for room that is there now */
	return 0;
}

int vsock_mux_serve(void *ctx, struct queue_worker_sleep *next)
{
	struct vsock_mux *m = ctx;
	m->more = false;
	int r = serve_round(m);
	int wait_ms = r < 0 ? -1 : timeouts(m);
	notify(m);   /* what was pushed before a queue broke too */
	if (r < 0)
		return -1;   /* virtq logged why; the worker sets NEEDS_RESET */
	next->timeout_ms = m->more ? 0 : wait_ms;
	next->watch[VSOCK_WATCH_IO] = (struct pollfd){ .fd = m->conns.io_epoll, .events = POLLIN };
	/* Host bytes wait in their sockets while the guest gives no RX buffer. */
	next->watch[VSOCK_WATCH_RX] = (struct pollfd){ .fd = m->rx_starved ? -1 : m->conns.rx_epoll, .events = POLLIN };
	/* The event queue's kick only while an event waits for its buffer. */
	struct virtio_queue *evq = m->event_pending ? m->q[VSOCK_EVQ] : NULL;
	next->watch[VSOCK_WATCH_EVENT_KICK] = (struct pollfd){ .fd = evq ? evq->kick_fd : -1, .events = POLLIN };
	return 0;
}

void vsock_mux_woken(void *ctx, const struct pollfd *watch)
{
	struct vsock_mux *m = ctx;
	m->io_ready |= watch[VSOCK_WATCH_IO].revents != 0;
	m->rx_ready |= watch[VSOCK_WATCH_RX].revents != 0;
	if (watch[VSOCK_WATCH_EVENT_KICK].revents)
		eventfd_drain(watch[VSOCK_WATCH_EVENT_KICK].fd);   /* not one of the worker's kicks: ours to clear */
}

/* ---- set-up ---- */

int vsock_mux_init(struct vsock_mux *m, const char *name, uint64_t guest_cid, const char *uds_path, int listen_fd,
		   struct log_limit *log_limit)
{
	m->name = name;
	m->guest_cid = guest_cid;
	m->uds_path = uds_path;
	m->listen_fd = listen_fd;
	m->log_limit = log_limit;
	if (vsock_conns_init(&m->conns))
		return -1;
	watch_listen(m);
	if (!m->listen_watched) {
		int e = errno;
		vsock_conns_fini(&m->conns);
		errno = e;
		return -1;
	}
	return 0;
}

void vsock_mux_fini(struct vsock_mux *m)
{
	vsock_conns_fini(&m->conns);
}

void vsock_mux_attach(struct vsock_mux *m, struct virtio_queue *const q[VSOCK_QUEUES], const struct virtio_irq *irq,
		      bool transport_reset)
{
	memcpy(m->q, q, sizeof(m->q));
	m->irq = irq;
	m->event_pending = transport_reset;
}

void vsock_mux_prepare(struct vsock_mux *m)
{
	m->io_ready = m->rx_ready = true;   /* look at everything once */
	m->rx_starved = false;
	atomic_store(&m->stopping, false);
	if (!m->listen_watched)
		watch_listen(m);
}

void vsock_mux_detach(struct vsock_mux *m)
{
	for (unsigned i = 0; i < VSOCK_MAX_CONNS; i++)
		if (m->conns.slot[i])
			vsock_conn_free(&m->conns, m->conns.slot[i]);
	m->n_orphans = m->orphan_head = 0;
	m->maybe_pending = m->event_pending = false;
	memset(m->q, 0, sizeof(m->q));
	m->irq = NULL;
}
