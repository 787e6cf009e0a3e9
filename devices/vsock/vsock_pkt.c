#include "devices/vsock/vsock_pkt.h"

#include <string.h>

#include "devices/virtio/iov.h"

/* Byte offsets in the wire header (spec 5.10.6, struct virtio_vsock_hdr). */
enum {
	OFF_SRC_CID = 0,
	OFF_DST_CID = 8,
	OFF_SRC_PORT = 16,
	OFF_DST_PORT = 20,
	OFF_LEN = 24,
	OFF_TYPE = 28,
	OFF_OP = 30,
	OFF_FLAGS = 32,
	OFF_BUF_ALLOC = 36,
	OFF_FWD_CNT = 40,
};

/* Byte by byte: the wire is little-endian whatever the host, and the
 * buffer has no alignment. */
static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_SIZE])
{
	put_le(out + OFF_SRC_CID, h->src_cid, 8);
	put_le(out + OFF_DST_CID, h->dst_cid, 8);
	put_le(out + OFF_SRC_PORT, h->src_port, 4);
	put_le(out + OFF_DST_PORT, h->dst_port, 4);
	put_le(out + OFF_LEN, h->len, 4);
	put_le(out + OFF_TYPE, h->type, 2);
	put_le(out + OFF_OP, h->op, 2);
	put_le(out + OFF_FLAGS, h->flags, 4);
	put_le(out + OFF_BUF_ALLOC, h->buf_alloc, 4);
	put_le(out + OFF_FWD_CNT, h->fwd_cnt, 4);
}

void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_SIZE], struct vsock_hdr *h)
{
	h->src_cid = get_le(in + OFF_SRC_CID, 8);
	h->dst_cid = get_le(in + OFF_DST_CID, 8);
	h->src_port = (uint32_t)get_le(in + OFF_SRC_PORT, 4);
	h->dst_port = (uint32_t)get_le(in + OFF_DST_PORT, 4);
	h->len = (uint32_t)get_le(in + OFF_LEN, 4);
	h->type = (uint16_t)get_le(in + OFF_TYPE, 2);
	h->op = (uint16_t)get_le(in + OFF_OP, 2);
	h->flags = (uint32_t)get_le(in + OFF_FLAGS, 4);
	h->buf_alloc = (uint32_t)get_le(in + OFF_BUF_ALLOC, 4);
	h->fwd_cnt = (uint32_t)get_le(in + OFF_FWD_CNT, 4);
}

bool vsock_hdr_from_iov(const struct iovec *iov, unsigned n, struct vsock_hdr *h)
{
	/* Copied once into a local: the guest may change its buffers while we
	 * look, and must not make two reads of a field disagree. */
	uint8_t raw[VSOCK_HDR_SIZE];
	if (!iov_to_buf(iov, n, 0, raw, sizeof(raw)))
		return false;
	vsock_hdr_decode(raw, h);
	return true;
}

enum vsock_pkt_verdict vsock_pkt_check(const struct vsock_hdr *h, uint64_t guest_cid, uint64_t payload_bytes)
{
	if (h->src_cid != guest_cid)
		return VSOCK_PKT_BAD_SRC_CID;
	if (h->dst_cid != VSOCK_HOST_CID)
		return VSOCK_PKT_BAD_DST_CID;
	if (h->type != VSOCK_TYPE_STREAM)
		return VSOCK_PKT_BAD_TYPE;
	if (h->op < VSOCK_OP_REQUEST || h->op > VSOCK_OP_CREDIT_REQUEST)
		return VSOCK_PKT_BAD_OP;
	if (h->len > VSOCK_MAX_PAYLOAD)
		return VSOCK_PKT_TOO_LONG;
	if (h->len > payload_bytes)
		return VSOCK_PKT_TRUNCATED;
	if (h->len && h->op != VSOCK_OP_RW)
		return VSOCK_PKT_PAYLOAD_NOT_RW;
	return VSOCK_PKT_OK;
}

const char *vsock_pkt_verdict_str(enum vsock_pkt_verdict v)
{
	switch (v) {
	case VSOCK_PKT_OK:
		return "valid";
	case VSOCK_PKT_BAD_SRC_CID:
		return "source cid is not the guest's";
	case VSOCK_PKT_BAD_DST_CID:
		return "destination cid is not the host (2)";
	case VSOCK_PKT_BAD_TYPE:
		return "type is not STREAM (1)";
	case VSOCK_PKT_BAD_OP:
		return "unknown op";
	case VSOCK_PKT_TOO_LONG:
		return "payload over 64 KiB";
	case VSOCK_PKT_TRUNCATED:
		return "payload longer than its buffers";
	case VSOCK_PKT_PAYLOAD_NOT_RW:
		return "payload on a packet other than RW";
	}
	return "?";
}

bool vsock_pkt_wants_rst(enum vsock_pkt_verdict v, const struct vsock_hdr *h)
{
	return v != VSOCK_PKT_BAD_SRC_CID && v != VSOCK_PKT_BAD_DST_CID && h->op != VSOCK_OP_RST;
}

void vsock_hdr_to_guest(struct vsock_hdr *h, uint64_t guest_cid, uint32_t local_port, uint32_t peer_port,
			uint16_t op, uint32_t flags, uint32_t len, uint32_t buf_alloc, uint32_t fwd_cnt)
{
	*h = (struct vsock_hdr){
		.src_cid = VSOCK_HOST_CID,
		.dst_cid = guest_cid,
		.src_port = local_port,
		.dst_port = peer_port,
		.len = len,
		.type = VSOCK_TYPE_STREAM,
		.op = op,
		.flags = flags,
		.buf_alloc = buf_alloc,
		.fwd_cnt = fwd_cnt,
	};
}

uint32_t vsock_peer_free(uint32_t peer_buf_alloc, uint32_t peer_fwd_cnt, uint32_t tx_cnt, uint32_t limit)
{
	uint32_t in_flight = tx_cnt - peer_fwd_cnt;   /* wraps as the spec's counters do */
	if (in_flight > peer_buf_alloc)
		return 0;
	uint32_t free_bytes = peer_buf_alloc - in_flight;
	return free_bytes < limit ? free_bytes : limit;
}

bool vsock_credit_allows(uint32_t buf_alloc, uint32_t fwd_told, uint32_t rx_cnt, uint32_t len)
{
	uint32_t in_flight = rx_cnt - fwd_told;
	/* In 64 bits: in_flight + len must not wrap into "allowed". */
	return in_flight <= buf_alloc && (uint64_t)in_flight + len <= buf_alloc;
}

bool vsock_credit_update_due(uint32_t fwd_cnt, uint32_t fwd_told, uint32_t threshold)
{
	return fwd_cnt - fwd_told >= threshold && fwd_cnt != fwd_told;
}

int vsock_parse_connect_line(const char *line, size_t len, uint32_t *port)
{
	static const char prefix[] = "CONNECT ";
	const size_t plen = sizeof(prefix) - 1;
	if (len > VSOCK_CONNECT_LINE_MAX || len < plen + 2 || memcmp(line, prefix, plen) || line[len - 1] != '\n')
		return -1;
	size_t digits = len - plen - 1;
	if (digits > 10)
		return -1;
	uint64_t v = 0;
	for (size_t i = plen; i < len - 1; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(line[i] - '0');
	}
	if (v > UINT32_MAX)
		return -1;
	*port = (uint32_t)v;
	return 0;
}
