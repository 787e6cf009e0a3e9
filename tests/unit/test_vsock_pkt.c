/* devices/vsock/vsock_pkt.c: the header's wire format, reading it out of
 * split buffers, every check a guest packet must pass, the headers we send,
 * the credit arithmetic (wrap-around and absurd values) and the host
 * client's CONNECT line. */
#include <criterion/criterion.h>
#include <linux/virtio_vsock.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "devices/vsock/vsock_pkt.h"

#define GUEST_CID 42u

/* A header with every field distinct, each byte telling where it sits. */
static const struct vsock_hdr SAMPLE = {
	.src_cid = 0x0807060504030201ull,
	.dst_cid = 0x100f0e0d0c0b0a09ull,
	.src_port = 0x14131211u,
	.dst_port = 0x18171615u,
	.len = 0x1c1b1a19u,
	.type = 0x1e1du,
	.op = 0x201fu,
	.flags = 0x24232221u,
	.buf_alloc = 0x28272625u,
	.fwd_cnt = 0x2c2b2a29u,
};

static void assert_hdr_eq(const struct vsock_hdr *a, const struct vsock_hdr *b)
{
	cr_assert_eq(a->src_cid, b->src_cid);
	cr_assert_eq(a->dst_cid, b->dst_cid);
	cr_assert_eq(a->src_port, b->src_port);
	cr_assert_eq(a->dst_port, b->dst_port);
	cr_assert_eq(a->len, b->len);
	cr_assert_eq(a->type, b->type);
	cr_assert_eq(a->op, b->op);
	cr_assert_eq(a->flags, b->flags);
	cr_assert_eq(a->buf_alloc, b->buf_alloc);
	cr_assert_eq(a->fwd_cnt, b->fwd_cnt);
}

/* A valid RW packet from the guest with len bytes of payload. */
static struct vsock_hdr rw(uint32_t len)
{
	return (struct vsock_hdr){ .src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID, .src_port = 1000, .dst_port = 52,
				   .len = len, .type = VSOCK_TYPE_STREAM, .op = VSOCK_OP_RW, .buf_alloc = 4096 };
}

Test(vsock_pkt, constants_are_the_kernels)
{
	cr_assert_eq(VSOCK_HDR_SIZE, sizeof(struct virtio_vsock_hdr));
	cr_assert_eq(VSOCK_OP_REQUEST, VIRTIO_VSOCK_OP_REQUEST);
	cr_assert_eq(VSOCK_OP_RESPONSE, VIRTIO_VSOCK_OP_RESPONSE);
	cr_assert_eq(VSOCK_OP_RST, VIRTIO_VSOCK_OP_RST);
	cr_assert_eq(VSOCK_OP_SHUTDOWN, VIRTIO_VSOCK_OP_SHUTDOWN);
	cr_assert_eq(VSOCK_OP_RW, VIRTIO_VSOCK_OP_RW);
	cr_assert_eq(VSOCK_OP_CREDIT_UPDATE, VIRTIO_VSOCK_OP_CREDIT_UPDATE);
	cr_assert_eq(VSOCK_OP_CREDIT_REQUEST, VIRTIO_VSOCK_OP_CREDIT_REQUEST);
	cr_assert_eq(VSOCK_TYPE_STREAM, VIRTIO_VSOCK_TYPE_STREAM);
	cr_assert_eq(VSOCK_SHUTDOWN_RCV, VIRTIO_VSOCK_SHUTDOWN_RCV);
	cr_assert_eq(VSOCK_SHUTDOWN_SEND, VIRTIO_VSOCK_SHUTDOWN_SEND);
}

/* Byte i of the sample is i + 1: the encoding puts each field where the
 * spec (and the kernel's packed struct) has it, little-endian. */
Test(vsock_pkt, encode_is_the_wire_layout)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	vsock_hdr_encode(&SAMPLE, raw);
	for (unsigned i = 0; i < VSOCK_HDR_SIZE; i++)
		cr_assert_eq(raw[i], i + 1, "byte %u is 0x%02x", i, raw[i]);
	cr_assert_eq(offsetof(struct virtio_vsock_hdr, fwd_cnt), 40);
	cr_assert_eq(offsetof(struct virtio_vsock_hdr, op), 30);
}

Test(vsock_pkt, round_trip)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	struct vsock_hdr back;
	vsock_hdr_encode(&SAMPLE, raw);
	vsock_hdr_decode(raw, &back);
	assert_hdr_eq(&back, &SAMPLE);
	/* all ones and all zeros survive too */
	struct vsock_hdr ones, zeros = { 0 };
	memset(&ones, 0xff, sizeof(ones));
	vsock_hdr_encode(&ones, raw);
	for (unsigned i = 0; i < VSOCK_HDR_SIZE; i++)
		cr_assert_eq(raw[i], 0xff);
	vsock_hdr_decode(raw, &back);
	assert_hdr_eq(&back, &ones);
	vsock_hdr_encode(&zeros, raw);
	vsock_hdr_decode(raw, &back);
	assert_hdr_eq(&back, &zeros);
}

/* However the guest cuts its header across descriptors. */
Test(vsock_pkt, header_split_across_iovecs)
{
	uint8_t raw[VSOCK_HDR_SIZE + 8];
	vsock_hdr_encode(&SAMPLE, raw);
	memset(raw + VSOCK_HDR_SIZE, 0xaa, 8);   /* payload after it */
	/* every split into two, and one byte per iovec */
	for (unsigned cut = 0; cut <= VSOCK_HDR_SIZE; cut++) {
		struct iovec iov[2] = { { raw, cut }, { raw + cut, sizeof(raw) - cut } };
		struct vsock_hdr h;
		memset(&h, 0, sizeof(h));
		cr_assert(vsock_hdr_from_iov(iov, 2, &h), "cut at %u", cut);
		assert_hdr_eq(&h, &SAMPLE);
	}
	struct iovec bytes[VSOCK_HDR_SIZE + 1];
	bytes[0] = (struct iovec){ raw, 0 };   /* an empty one first */
	for (unsigned i = 0; i < VSOCK_HDR_SIZE; i++)
		bytes[i + 1] = (struct iovec){ raw + i, 1 };
	struct vsock_hdr h;
	cr_assert(vsock_hdr_from_iov(bytes, VSOCK_HDR_SIZE + 1, &h));
	assert_hdr_eq(&h, &SAMPLE);
}

Test(vsock_pkt, header_shorter_than_44_bytes)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	vsock_hdr_encode(&SAMPLE, raw);
	struct vsock_hdr h = { .op = 77 };
	struct iovec short_iov[2] = { { raw, 20 }, { raw + 20, 23 } };
	cr_assert_not(vsock_hdr_from_iov(short_iov, 2, &h));
	cr_assert_eq(h.op, 77, "left untouched");
	cr_assert_not(vsock_hdr_from_iov(NULL, 0, &h));
}

Test(vsock_pkt, valid_packets)
{
	struct vsock_hdr h = rw(100);
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 100), VSOCK_PKT_OK);
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 200), VSOCK_PKT_OK, "bytes after the payload are ignored");
	h = rw(VSOCK_MAX_PAYLOAD);
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, VSOCK_MAX_PAYLOAD), VSOCK_PKT_OK, "64 KiB exactly");
	for (uint16_t op = VSOCK_OP_REQUEST; op <= VSOCK_OP_CREDIT_REQUEST; op++) {
		h = rw(0);
		h.op = op;
		cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 0), VSOCK_PKT_OK, "op %u", op);
	}
}

Test(vsock_pkt, every_rule)
{
	struct vsock_hdr h = rw(10);
	h.src_cid = GUEST_CID + 1;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 10), VSOCK_PKT_BAD_SRC_CID);
	h.src_cid = VSOCK_HOST_CID;   /* pretending to be the host */
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 10), VSOCK_PKT_BAD_SRC_CID);
	h.src_cid = GUEST_CID | 1ull << 32;   /* the high half counts */
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 10), VSOCK_PKT_BAD_SRC_CID);

	h = rw(10);
	h.dst_cid = GUEST_CID;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 10), VSOCK_PKT_BAD_DST_CID);
	h.dst_cid = 1;   /* local: not ours */
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 10), VSOCK_PKT_BAD_DST_CID);
	h.dst_cid = VSOCK_HOST_CID | 1ull << 40;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 10), VSOCK_PKT_BAD_DST_CID);

	h = rw(10);
	h.type = 2;   /* SEQPACKET: not offered */
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 10), VSOCK_PKT_BAD_TYPE);
	h.type = 0;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 10), VSOCK_PKT_BAD_TYPE);

	h = rw(0);
	h.op = VSOCK_OP_INVALID;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 0), VSOCK_PKT_BAD_OP);
	h.op = 8;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 0), VSOCK_PKT_BAD_OP);
	h.op = 0xffff;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 0), VSOCK_PKT_BAD_OP);

	h = rw(VSOCK_MAX_PAYLOAD + 1);
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 1ull << 32), VSOCK_PKT_TOO_LONG, "even with the bytes there");
	h = rw(UINT32_MAX);
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 1ull << 33), VSOCK_PKT_TOO_LONG);

	h = rw(100);
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 99), VSOCK_PKT_TRUNCATED);
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 0), VSOCK_PKT_TRUNCATED);

	h = rw(1);
	h.op = VSOCK_OP_REQUEST;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 1), VSOCK_PKT_PAYLOAD_NOT_RW);
	h.op = VSOCK_OP_CREDIT_UPDATE;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 1), VSOCK_PKT_PAYLOAD_NOT_RW);

	/* The first problem wins: cids before anything else. */
	h = rw(VSOCK_MAX_PAYLOAD + 1);
	h.type = 9;
	h.src_cid = 7;
	cr_assert_eq(vsock_pkt_check(&h, GUEST_CID, 0), VSOCK_PKT_BAD_SRC_CID);
	for (int v = VSOCK_PKT_OK; v <= VSOCK_PKT_PAYLOAD_NOT_RW; v++)
		cr_assert_str_neq(vsock_pkt_verdict_str((enum vsock_pkt_verdict)v), "?");
}

/* Wrong cids are nobody's to answer; an RST never gets an RST. */
Test(vsock_pkt, which_verdicts_get_an_rst)
{
	struct vsock_hdr h = rw(0);
	cr_assert(vsock_pkt_wants_rst(VSOCK_PKT_BAD_TYPE, &h));
	cr_assert(vsock_pkt_wants_rst(VSOCK_PKT_TOO_LONG, &h));
	cr_assert(vsock_pkt_wants_rst(VSOCK_PKT_OK, &h));
	cr_assert_not(vsock_pkt_wants_rst(VSOCK_PKT_BAD_SRC_CID, &h));
	cr_assert_not(vsock_pkt_wants_rst(VSOCK_PKT_BAD_DST_CID, &h));
	h.op = VSOCK_OP_RST;
	cr_assert_not(vsock_pkt_wants_rst(VSOCK_PKT_OK, &h));
	cr_assert_not(vsock_pkt_wants_rst(VSOCK_PKT_BAD_TYPE, &h));
}

Test(vsock_pkt, headers_to_the_guest)
{
	struct vsock_hdr h;
	vsock_hdr_to_guest(&h, GUEST_CID, 1u << 30, 5000, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_BOTH, 0, 65536, 1234);
	struct vsock_hdr want = { .src_cid = 2, .dst_cid = GUEST_CID, .src_port = 1u << 30, .dst_port = 5000,
				  .type = 1, .op = 4, .flags = 3, .buf_alloc = 65536, .fwd_cnt = 1234 };
	assert_hdr_eq(&h, &want);
	/* what we send passes the checks with cids swapped (the guest's view) */
	vsock_hdr_to_guest(&h, GUEST_CID, 52, 1000, VSOCK_OP_RW, 0, 4096, 65536, 0);
	struct vsock_hdr mirrored = h;
	mirrored.src_cid = h.dst_cid;
	mirrored.dst_cid = h.src_cid;
	cr_assert_eq(vsock_pkt_check(&mirrored, GUEST_CID, 4096), VSOCK_PKT_OK);
}

/* ---- credit ---- */

Test(vsock_pkt, peer_free_plain)
{
	cr_assert_eq(vsock_peer_free(4096, 0, 0, UINT32_MAX), 4096);
	cr_assert_eq(vsock_peer_free(4096, 0, 1000, UINT32_MAX), 3096);
	cr_assert_eq(vsock_peer_free(4096, 1000, 1000, UINT32_MAX), 4096, "all forwarded");
	cr_assert_eq(vsock_peer_free(4096, 0, 4096, UINT32_MAX), 0, "full");
	cr_assert_eq(vsock_peer_free(0, 0, 0, UINT32_MAX), 0, "no buffer at all");
}

Test(vsock_pkt, peer_free_wraps)
{
	/* tx_cnt went past 2^32, fwd_cnt not yet: 0x20 bytes in flight */
	cr_assert_eq(vsock_peer_free(4096, 0xfffffff0u, 0x10u, UINT32_MAX), 4096 - 0x20);
	cr_assert_eq(vsock_peer_free(4096, 0xfffff000u, 0u, UINT32_MAX), 0, "exactly 4096 in flight");
	cr_assert_eq(vsock_peer_free(65536, UINT32_MAX, UINT32_MAX, UINT32_MAX), 65536);
}

Test(vsock_pkt, peer_free_absurd_values)
{
	/* 4 GiB of buffer announced: no more than our limit per round */
	cr_assert_eq(vsock_peer_free(UINT32_MAX, 0, 0, 65536), 65536);
	cr_assert_eq(vsock_peer_free(UINT32_MAX, 0, 0, UINT32_MAX), UINT32_MAX);
	/* fwd_cnt ahead of what we sent: it claims to have forwarded bytes it
	 * never got; in flight wraps to ~4 GiB, over its buffer: nothing */
	cr_assert_eq(vsock_peer_free(4096, 100, 50, 65536), 0);
	/* buf_alloc shrunk under what is in flight: nothing, not a wrap */
	cr_assert_eq(vsock_peer_free(100, 0, 4000, 65536), 0);
	cr_assert_eq(vsock_peer_free(100, 0, 100, 65536), 0);
	/* the limit clamps a plain value too */
	cr_assert_eq(vsock_peer_free(4096, 0, 0, 1000), 1000);
	cr_assert_eq(vsock_peer_free(4096, 0, 0, 0), 0);
}

Test(vsock_pkt, credit_allows)
{
	const uint32_t buf = 65536;
	cr_assert(vsock_credit_allows(buf, 0, 0, buf), "the whole buffer");
	cr_assert_not(vsock_credit_allows(buf, 0, 0, buf + 1));
	cr_assert(vsock_credit_allows(buf, 0, 1000, buf - 1000));
	cr_assert_not(vsock_credit_allows(buf, 0, 1000, buf - 999));
	cr_assert(vsock_credit_allows(buf, 5000, 5000, buf), "what we told forwarded is room again");
	cr_assert(vsock_credit_allows(buf, 0, 0, 0));
	/* wrap-around: rx_cnt past 2^32 */
	cr_assert(vsock_credit_allows(buf, 0xffffff00u, 0x100u, buf - 0x200));
	cr_assert_not(vsock_credit_allows(buf, 0xffffff00u, 0x100u, buf - 0x1ff));
	/* len near 2^32 must not wrap the sum into "allowed" */
	cr_assert_not(vsock_credit_allows(buf, 0, 1, UINT32_MAX));
	cr_assert_not(vsock_credit_allows(UINT32_MAX, 0, 1, UINT32_MAX));
	/* counters already past the buffer (cannot be: we reset first) refuse even 0 */
	cr_assert_not(vsock_credit_allows(buf, 0, buf + 1, 0));
}

Test(vsock_pkt, credit_update_due)
{
	cr_assert_not(vsock_credit_update_due(0, 0, 16384));
	cr_assert_not(vsock_credit_update_due(16383, 0, 16384));
	cr_assert(vsock_credit_update_due(16384, 0, 16384));
	cr_assert(vsock_credit_update_due(0x100u, 0xffffff00u + 0x100u - 16384u, 16384), "wraps");
	cr_assert_not(vsock_credit_update_due(5, 5, 0), "nothing new is never due");
	cr_assert(vsock_credit_update_due(6, 5, 0));
}

/* ---- the CONNECT line ---- */

static int parse(const char *s, uint32_t *port)
{
	return vsock_parse_connect_line(s, strlen(s), port);
}

Test(vsock_pkt, connect_line)
{
	uint32_t port = 0;
	cr_assert_eq(parse("CONNECT 52\n", &port), 0);
	cr_assert_eq(port, 52);
	cr_assert_eq(parse("CONNECT 0\n", &port), 0);
	cr_assert_eq(port, 0);
	cr_assert_eq(parse("CONNECT 4294967295\n", &port), 0);
	cr_assert_eq(port, UINT32_MAX);
	cr_assert_eq(parse("CONNECT 0000000001\n", &port), 0, "10 digits with zeros");
	cr_assert_eq(port, 1);
}

Test(vsock_pkt, connect_line_refused)
{
	static const char *const bad[] = {
		"CONNECT 4294967296\n",   /* over u32 */
		"CONNECT 99999999999\n",  /* 11 digits */
		"CONNECT\n", "CONNECT \n", "CONNECT 52", "CONNECT 52\r\n", "CONNECT  52\n", "CONNECT -1\n",
		"CONNECT +1\n", "CONNECT 5 2\n", "connect 52\n", "CONNECTX52\n", "OK 52\n", "\n", "",
		"CONNECT 0x10\n", "CONNECT 52\n\n", "CONNECT 00000000000000000000052\n",
	};
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t port = 7;
		cr_assert_eq(parse(bad[i], &port), -1, "'%s' accepted", bad[i]);
		cr_assert_eq(port, 7);
	}
	/* a NUL inside is not a digit */
	uint32_t port;
	cr_assert_eq(vsock_parse_connect_line("CONNECT 5\0002\n", 12, &port), -1);
	/* longer than the line limit, whatever it holds */
	char longer[VSOCK_CONNECT_LINE_MAX + 2];
	memset(longer, '0', sizeof(longer));
	memcpy(longer, "CONNECT ", 8);
	longer[sizeof(longer) - 1] = '\n';
	cr_assert_eq(vsock_parse_connect_line(longer, sizeof(longer), &port), -1);
}
