/* libFuzzer target for virtio-vsock's packet parser (devices/vsock/
 * vsock_pkt.c): a guest's TX packet cut across up to 8 buffers however the
 * input says, read back and checked against the rules; the headers the
 * device builds; the credit arithmetic on the header's (hostile) counters;
 * the host client's CONNECT line. Build and run: tests/fuzz/run.sh.
 *
 * Checked: the header read from the cut buffers is the one decoded from
 * the bytes in one piece, and encodes back to them; a packet accepted
 * breaks no rule and a refused one breaks the rule named (and none before
 * it); an RST is never owed for a wrong cid or for an RST; a header built for
 * the guest passes the checks seen from the guest's side; the free credit
 * never exceeds the peer's buffer or our limit and matches a 64-bit
 * reference; a CONNECT line accepted is well formed, and every port's
 * canonical line is accepted. ASan/UBSan catch the rest.
 *
 * Input (little-endian):
 *   0  u8   cuts (n % 8): the packet goes in n + 1 buffers
 *   1  u8[7] where each cut falls (as a share of the packet's length)
 *   8  u64  the guest's cid
 *   16 u32  a credit limit
 *   20 the packet (header, payload); also read as a CONNECT line
 * FUZZ_VSOCK_PKT_WRITE_SEEDS=DIR writes seed inputs there and exits. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "devices/vsock/vsock_pkt.h"
#include "fuzz_check.h"

#define HDR 20

static uint64_t get_le(const uint8_t *p, unsigned n)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static bool hdr_eq(const struct vsock_hdr *a, const struct vsock_hdr *b)
{
	return a->src_cid == b->src_cid && a->dst_cid == b->dst_cid && a->src_port == b->src_port &&
	       a->dst_port == b->dst_port && a->len == b->len && a->type == b->type && a->op == b->op &&
	       a->flags == b->flags && a->buf_alloc == b->buf_alloc && a->fwd_cnt == b->fwd_cnt;
}

static void check_verdict(const struct vsock_hdr *h, uint64_t cid, uint64_t payload)
{
	enum vsock_pkt_verdict v = vsock_pkt_check(h, cid, payload);
	/* Each rule, in the order they are checked. */
	bool broken[] = {
		[VSOCK_PKT_BAD_SRC_CID] = h->src_cid != cid,
		[VSOCK_PKT_BAD_DST_CID] = h->dst_cid != VSOCK_HOST_CID,
		[VSOCK_PKT_BAD_TYPE] = h->type != VSOCK_TYPE_STREAM,
		[VSOCK_PKT_BAD_OP] = h->op < VSOCK_OP_REQUEST || h->op > VSOCK_OP_CREDIT_REQUEST,
		[VSOCK_PKT_TOO_LONG] = h->len > VSOCK_MAX_PAYLOAD,
		[VSOCK_PKT_TRUNCATED] = h->len > payload,
		[VSOCK_PKT_PAYLOAD_NOT_RW] = h->len && h->op != VSOCK_OP_RW,
	};
	for (int r = VSOCK_PKT_BAD_SRC_CID; r <= VSOCK_PKT_PAYLOAD_NOT_RW; r++) {
		if (r < (int)v || v == VSOCK_PKT_OK)
			CHECK(!broken[r]);
	}
	if (v != VSOCK_PKT_OK)
		CHECK(broken[v]);
	CHECK(strcmp(vsock_pkt_verdict_str(v), "?") != 0);
	bool rst = vsock_pkt_wants_rst(v, h);
	if (v == VSOCK_PKT_BAD_SRC_CID || v == VSOCK_PKT_BAD_DST_CID || h->op == VSOCK_OP_RST)
		CHECK(!rst);
	else
		CHECK(rst);
}

static void check_credit(const struct vsock_hdr *h, uint32_t limit)
{
	/* The header's counters as a peer's buffer, its forwarded count and
	 * what we sent: whatever a guest announces. */
	uint32_t buf = h->buf_alloc, fwd = h->fwd_cnt, sent = h->len ^ h->flags;
	uint32_t f = vsock_peer_free(buf, fwd, sent, limit);
	uint32_t in_flight = (uint32_t)(sent - fwd);
	uint64_t want = in_flight > buf ? 0 : (uint64_t)buf - in_flight;
	if (want > limit)
		want = limit;
	CHECK(f == want && f <= buf && f <= limit);
	bool ok = vsock_credit_allows(buf, fwd, sent, h->src_port);
	CHECK(ok == (in_flight <= buf && (uint64_t)in_flight + h->src_port <= buf));
	bool due = vsock_credit_update_due(sent, fwd, h->dst_port);
	CHECK(due == ((uint32_t)(sent - fwd) >= h->dst_port && sent != fwd));
}

static void check_line(const uint8_t *p, size_t n, uint32_t some_port)
{
	uint32_t port = 0;
	if (n > VSOCK_CONNECT_LINE_MAX + 8)
		n = VSOCK_CONNECT_LINE_MAX + 8;
	if (vsock_parse_connect_line((const char *)p, n, &port) == 0) {
		CHECK(n <= VSOCK_CONNECT_LINE_MAX && n >= 10 && memcmp(p, "CONNECT ", 8) == 0 && p[n - 1] == '\n');
		uint64_t v = 0;
		for (size_t i = 8; i < n - 1; i++) {
			CHECK(p[i] >= '0' && p[i] <= '9');
			v = v * 10 + (p[i] - '0');
		}
		CHECK(v == port);
	}
	char line[VSOCK_CONNECT_LINE_MAX];
	int len = snprintf(line, sizeof(line), "CONNECT %u\n", some_port);
	CHECK(vsock_parse_connect_line(line, (size_t)len, &port) == 0 && port == some_port);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t h[HDR] = { 0 };
	memcpy(h, data, size < HDR ? size : HDR);
	const uint8_t *pkt = size > HDR ? data + HDR : h;
	size_t len = size > HDR ? size - HDR : 0;
	uint64_t cid = get_le(h + 8, 8);
	uint32_t limit = (uint32_t)get_le(h + 16, 4);

	/* The packet in cuts + 1 buffers, in order, possibly empty ones. */
	unsigned cuts = h[0] % 8;
	size_t at[9];
	at[0] = 0;
	for (unsigned i = 1; i <= cuts; i++) {
		size_t c = len * h[i] / 255;
		at[i] = c < at[i - 1] ? at[i - 1] : c;
	}
	at[cuts + 1] = len;
	struct iovec iov[8];
	for (unsigned i = 0; i <= cuts; i++)
		iov[i] = (struct iovec){ .iov_base = (void *)(pkt + at[i]), .iov_len = at[i + 1] - at[i] };

	struct vsock_hdr got;
	bool ok = vsock_hdr_from_iov(iov, cuts + 1, &got);
	CHECK(ok == (len >= VSOCK_HDR_SIZE));
	if (ok) {
		struct vsock_hdr one;
		vsock_hdr_decode(pkt, &one);
		CHECK(hdr_eq(&one, &got));
		uint8_t back[VSOCK_HDR_SIZE];
		vsock_hdr_encode(&got, back);
		CHECK(memcmp(back, pkt, VSOCK_HDR_SIZE) == 0);
		check_verdict(&got, cid, len - VSOCK_HDR_SIZE);
		check_credit(&got, limit);

		/* What the device would send for it, seen from the guest. */
		struct vsock_hdr reply;
		uint16_t op = (uint16_t)(1 + got.op % 7);
		uint32_t plen = op == VSOCK_OP_RW ? got.len % (VSOCK_MAX_PAYLOAD + 1) : 0;
		vsock_hdr_to_guest(&reply, cid, got.dst_port, got.src_port, op, got.flags, plen, got.buf_alloc,
				   got.fwd_cnt);
		CHECK(reply.src_cid == VSOCK_HOST_CID && reply.dst_cid == cid && reply.type == VSOCK_TYPE_STREAM);
		reply.src_cid = cid;
		reply.dst_cid = VSOCK_HOST_CID;
		CHECK(vsock_pkt_check(&reply, cid, plen) == VSOCK_PKT_OK);
	}
	check_line(pkt, len, (uint32_t)cid);
	return 0;
}

/* ---- seeds ---- */

static void seed(const char *dir, const char *name, uint8_t cuts, const struct vsock_hdr *hd, const void *payload,
		 uint32_t plen, uint32_t limit)
{
	static uint8_t in[HDR + VSOCK_HDR_SIZE + 4096];
	memset(in, 0, sizeof(in));
	in[0] = cuts;
	for (unsigned i = 1; i < 8; i++)
		in[i] = (uint8_t)(i * 30);
	for (unsigned i = 0; i < 8; i++)
		in[8 + i] = (uint8_t)(3ull >> (8 * i));   /* guest cid 3 */
	for (unsigned i = 0; i < 4; i++)
		in[16 + i] = (uint8_t)(limit >> (8 * i));
	vsock_hdr_encode(hd, in + HDR);
	if (plen)
		memcpy(in + HDR + VSOCK_HDR_SIZE, payload, plen);
	fuzz_write_seed(dir, name, in, HDR + VSOCK_HDR_SIZE + plen);
}

__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_VSOCK_PKT_WRITE_SEEDS");
	if (!dir)
		return;
	struct vsock_hdr req = { .src_cid = 3, .dst_cid = 2, .src_port = 5000, .dst_port = 52, .type = 1,
				 .op = VSOCK_OP_REQUEST, .buf_alloc = 262144 };
	seed(dir, "request", 0, &req, NULL, 0, 65536);
	struct vsock_hdr rw = req;
	rw.op = VSOCK_OP_RW;
	rw.len = 11;
	rw.fwd_cnt = 0xfffffff0u;
	seed(dir, "rw-split", 4, &rw, "hello world", 11, 65536);
	struct vsock_hdr shut = req;
	shut.op = VSOCK_OP_SHUTDOWN;
	shut.flags = 3;
	seed(dir, "shutdown", 7, &shut, NULL, 0, 4096);
	/* A CONNECT line where the packet goes. */
	static uint8_t line[HDR + 11] = { 0 };
	memcpy(line + HDR, "CONNECT 52\n", 11);
	fuzz_write_seed(dir, "connect-line", line, sizeof(line));
	exit(0);
}
