/* virtio-vsock packets (virtio 1.2 section 5.10.6), without I/O: the 44-byte
 * little-endian header, read out of a TX chain however the guest cut it,
 * the checks a guest's packet must pass, the headers the device sends, the
 * credit arithmetic of the spec's flow control (5.10.6.3), and the one line
 * a host client writes to open a connection to the guest ("CONNECT <port>\n",
 * Firecracker's protocol).
 *
 * The guest is hostile: every field comes from it, and nothing here trusts
 * one (lengths are checked against what the chain holds, counters are u32
 * and wrap as the spec says). */
#ifndef MINIVMM_VSOCK_PKT_H
#define MINIVMM_VSOCK_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define VSOCK_HDR_SIZE 44u
#define VSOCK_HOST_CID 2u
/* The largest payload a guest packet may carry (Linux sends at most 64 KiB
 * per packet; its RX buffers are 4 KiB): a longer one is refused. */
#define VSOCK_MAX_PAYLOAD (64u * 1024)

/* Values of the fields, as in <linux/virtio_vsock.h> (spec 5.10.6). */
#define VSOCK_TYPE_STREAM 1u
enum vsock_op {
	VSOCK_OP_INVALID = 0,
	VSOCK_OP_REQUEST = 1,
	VSOCK_OP_RESPONSE = 2,
	VSOCK_OP_RST = 3,
	VSOCK_OP_SHUTDOWN = 4,
	VSOCK_OP_RW = 5,
	VSOCK_OP_CREDIT_UPDATE = 6,
	VSOCK_OP_CREDIT_REQUEST = 7,
};
#define VSOCK_SHUTDOWN_RCV 1u    /* the sender will receive no more */
#define VSOCK_SHUTDOWN_SEND 2u   /* the sender will send no more */
#define VSOCK_SHUTDOWN_BOTH (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

/* The header in host byte order. */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;          /* payload bytes after the header */
	uint16_t type, op;
	uint32_t flags;
	uint32_t buf_alloc;    /* the sender's receive buffer for this connection */
	uint32_t fwd_cnt;      /* bytes the sender has taken out of it, in all */
};

/* Wire format <-> host order. */
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_SIZE]);
void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_SIZE], struct vsock_hdr *h);

/* The header at the start of the buffers iov[0..n) (a TX chain's readable
 * part; split across them in any way). Returns false, *h untouched, when
 * they hold fewer than VSOCK_HDR_SIZE bytes. */
bool vsock_hdr_from_iov(const struct iovec *iov, unsigned n, struct vsock_hdr *h);

/* What is wrong with a packet from the guest, first problem first. */
enum vsock_pkt_verdict {
	VSOCK_PKT_OK,
	VSOCK_PKT_BAD_SRC_CID,     /* not the guest's own cid */
	VSOCK_PKT_BAD_DST_CID,     /* not the host */
	VSOCK_PKT_BAD_TYPE,        /* not STREAM (SEQPACKET is not offered) */
	VSOCK_PKT_BAD_OP,          /* unknown op (INVALID included) */
	VSOCK_PKT_TOO_LONG,        /* len over VSOCK_MAX_PAYLOAD */
	VSOCK_PKT_TRUNCATED,       /* len over the bytes the chain holds after the header */
	VSOCK_PKT_PAYLOAD_NOT_RW,  /* payload on a packet other than RW */
};

/* Checks h, from a chain holding payload_bytes after the header, against
 * the rules above. The cids are looked at first: a packet that is not the
 * guest's to the host is dropped, never answered. */
enum vsock_pkt_verdict vsock_pkt_check(const struct vsock_hdr *h, uint64_t guest_cid, uint64_t payload_bytes);

/* "bad type 2" style words for a log line (static strings). */
const char *vsock_pkt_verdict_str(enum vsock_pkt_verdict v);

/* Whether a packet with this verdict may be answered with an RST: not when
 * its cids are wrong (nobody to answer), nor when it is an RST itself
 * (never answer an RST with one). */
bool vsock_pkt_wants_rst(enum vsock_pkt_verdict v, const struct vsock_hdr *h);

/* A header from the host (cid 2, port local_port) to the guest (guest_cid,
 * peer_port), STREAM, with our flow control fields. */
void vsock_hdr_to_guest(struct vsock_hdr *h, uint64_t guest_cid, uint32_t local_port, uint32_t peer_port,
			uint16_t op, uint32_t flags, uint32_t len, uint32_t buf_alloc, uint32_t fwd_cnt);

/* ---- credit (spec 5.10.6.3) ----
 *
 * Each side tells the other its buf_alloc and fwd_cnt in every header; the
 * sender may have at most buf_alloc bytes that the receiver has not
 * forwarded: tx_cnt - fwd_cnt <= buf_alloc, counted in u32 that wrap. */

/* What we may still send to a peer that advertised peer_buf_alloc and
 * peer_fwd_cnt, when we sent tx_cnt bytes in all: peer_buf_alloc - (tx_cnt -
 * peer_fwd_cnt) with u32 wrapping, 0 when the peer says more is in flight
 * than its buffer holds (a peer_fwd_cnt ahead of tx_cnt is that too), and at
 * most limit: a guest announcing 4 GiB of buffer moves no more per round
 * than we chose. */
uint32_t vsock_peer_free(uint32_t peer_buf_alloc, uint32_t peer_fwd_cnt, uint32_t tx_cnt, uint32_t limit);

/* Whether the peer may send len more bytes when it sent rx_cnt in all and
 * the last header we gave it said buf_alloc and fwd_told (what an honest
 * peer counts with: it cannot know of bytes forwarded since). */
bool vsock_credit_allows(uint32_t buf_alloc, uint32_t fwd_told, uint32_t rx_cnt, uint32_t len);

/* Whether to send the peer a CREDIT_UPDATE unasked: once fwd_cnt is
 * threshold bytes or more past what we last told it. A peer that stopped
 * for lack of credit then always learns of room it can use: until this is
 * due, what it was told leaves it buf_alloc - threshold - (bytes still
 * buffered) of room. */
bool vsock_credit_update_due(uint32_t fwd_cnt, uint32_t fwd_told, uint32_t threshold);

/* ---- the host client's line ---- */

#define VSOCK_CONNECT_LINE_MAX 32u   /* "CONNECT 4294967295\n" is 19 */

/* line[0..len) is exactly "CONNECT <decimal u32>\n" (no sign, no spaces
 * but the one, 1 to 10 digits, the value <= UINT32_MAX, len <=
 * VSOCK_CONNECT_LINE_MAX). Returns 0 with *port, or -1. */
int vsock_parse_connect_line(const char *line, size_t len, uint32_t *port);

#endif
