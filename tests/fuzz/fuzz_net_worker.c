/* libFuzzer target for the virtio-net worker's frame handling
 * (devices/net/worker.c): its TX path (guest chains -> tap frames, with the
 * virtio-net header checks) and its RX path (tap frames -> the guest's
 * chains, mergeable or not, num_buffers, the flags it clears), on hostile
 * rings and buffers in 16 KiB of fake guest RAM, with a socketpair as the
 * tap. worker.c is included, not linked, to reach tx_process() and
 * rx_process() without a thread. Build and run: tests/fuzz/run.sh.
 *
 * Checked: every frame the tap gets is one TX chain's readable bytes (at
 * least the header, and no bad header: net_tx_hdr_invalid() says yes); TX
 * counts add up (taken + dropped = chains used); RX delivers no more frames
 * than were sent, and counts add up; a broken ring stays broken; the work
 * per call stays within the budget. ASan: nothing written outside guest RAM
 * or the worker.
 *
 * Input (little-endian):
 *   0  u8  bit 0 MRG_RXBUF, 1 GUEST_CSUM, 2 CSUM, 3 HOST_TSO4, 4 HOST_TSO6,
 *          5 EVENT_IDX, 6 INDIRECT_DESC, 7 small RX target (a 1500-byte MTU)
 *   1  u8  RX queue size 2^(n % 9), 2 u8 TX queue size 2^(n % 9)
 *   3  u8  frames for RX (n % 8), lengths u16 each after the header
 *   4  RAM image (16 KiB; rings: RX at 0x0/0x400/0x800, TX at 0x1000/0x1400/0x1800)
 * FUZZ_NET_WORKER_WRITE_SEEDS=DIR writes seed inputs there and exits. */
#include "devices/net/worker.c"
#include "fuzz_check.h"
#include "fuzz_ram.h"

#include <sys/socket.h>

#define HDR 4
#define RAM_SIZE 0x4000u
#define RX_DESC 0x0u
#define RX_AVAIL 0x400u
#define RX_USED 0x800u
#define TX_DESC 0x1000u
#define TX_AVAIL 0x1400u
#define TX_USED 0x1800u
#define MAX_FRAMES 8

static uint8_t *ram;   /* exactly RAM_SIZE, on the heap: ASan sees a write past it */
static int tap[2] = { -1, -1 };   /* [0] the worker's, [1] the host side */

static void irq_queue(const struct virtio_irq *irq, unsigned q)
{
	(void)irq;
	CHECK(q == 0 || q == 1);
}

static void irq_other(const struct virtio_irq *irq)
{
	(void)irq;
}

static const struct virtio_irq fuzz_irq = { irq_queue, irq_other, irq_other, NULL, NULL };

static void setup_once(void)
{
	if (tap[0] >= 0)
		return;
	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, tap) == 0);
	int big = 1 << 20;
	setsockopt(tap[0], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	setsockopt(tap[1], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
	ram = malloc(RAM_SIZE);
	CHECK(ram);
}

/* Frames the worker sent: each has its header, and one the device lets go. */
static void drain_host_side(unsigned *frames, uint64_t features)
{
	static uint8_t buf[MAX_GSO_FRAME + 64];
	for (;;) {
		ssize_t n = recv(tap[1], buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0)
			return;
		CHECK((size_t)n >= NET_TAP_VNET_HDR_LEN);
		if (!frames)
			continue;
		struct virtio_net_hdr hdr;
		memcpy(&hdr, buf, sizeof(hdr));
		CHECK(!net_tx_hdr_invalid(&hdr, features, (uint64_t)n - NET_TAP_VNET_HDR_LEN));
		(*frames)++;
	}
}

static bool queue_init(struct virtio_queue *q, struct guest_mem *mem, uint16_t size, uint64_t desc,
		       uint64_t avail, uint64_t used, bool event_idx, bool indirect)
{
	memset(q, 0, sizeof(*q));
	q->ready = true;
	q->kick_fd = q->call_fd = -1;
	return virtq_init(&q->vq, mem, size, desc, avail, used, event_idx, indirect) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	drain_host_side(NULL, 0);
	uint8_t h[HDR] = { 0 };
	memcpy(h, data, size < HDR ? size : HDR);
	size_t at = size < HDR ? size : HDR;
	unsigned n_frames = h[3] % MAX_FRAMES;
	uint16_t lens[MAX_FRAMES] = { 0 };
	for (unsigned i = 0; i < n_frames; i++, at += 2)
		lens[i] = at + 1 < size ? (uint16_t)(data[at] | data[at + 1] << 8) : 60;
	struct guest_mem mem;
	fuzz_ram_load(&mem, ram, RAM_SIZE, data, size, at);
	bool event_idx = h[0] & 0x20, indirect = h[0] & 0x40;
	struct virtio_queue rxq, txq;
	if (!queue_init(&rxq, &mem, (uint16_t)(1u << (h[1] % 9)), RX_DESC, RX_AVAIL, RX_USED, event_idx, indirect) ||
	    !queue_init(&txq, &mem, (uint16_t)(1u << (h[2] % 9)), TX_DESC, TX_AVAIL, TX_USED, event_idx, indirect))
		return 0;

	uint64_t features = 1ull << VIRTIO_F_VERSION_1;
	static const int bits[] = { VIRTIO_NET_F_MRG_RXBUF, VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_CSUM,
				    VIRTIO_NET_F_HOST_TSO4, VIRTIO_NET_F_HOST_TSO6 };
	for (unsigned i = 0; i < 5; i++)
		if (h[0] & (1u << i))
			features |= 1ull << bits[i];
	struct net_pair p = {
		.name = "fuzz-qp0", .tap_fd = tap[0], .rx = &rxq, .tx = &txq, .rx_index = 0, .tx_index = 1,
		.irq = &fuzz_irq, .mem = &mem, .features = features, .vnet_hdr_len = NET_TAP_VNET_HDR_LEN,
		.vhost_fd = -1,
	};
	static struct worker w;
	memset(&w, 0, sizeof(w));
	w.p = &p;
	w.hdr_len = NET_TAP_VNET_HDR_LEN;
	w.mrg = features & (1ull << VIRTIO_NET_F_MRG_RXBUF);
	w.clear_flags = !(features & (1ull << VIRTIO_NET_F_GUEST_CSUM));
	w.rx_target = w.hdr_len + ((h[0] & 0x80) ? 1500u + ETH_VLAN_HLEN : MAX_GSO_FRAME);

	/* TX: what the guest queued goes to the tap, one frame per chain. */
	uint16_t tx_start = txq.vq.used_idx;
	int r = tx_process(&w);
	CHECK(r == PAIR_OK || r == PAIR_MORE || r == PAIR_BROKEN);
	unsigned frames_out = 0;
	drain_host_side(&frames_out, features);
	uint16_t tx_used = (uint16_t)(txq.vq.used_idx - tx_start);
	CHECK(tx_used <= BUDGET);
	CHECK(w.tx_packets + w.tx_dropped == tx_used);
	CHECK(frames_out == w.tx_packets);
	CHECK(w.tx_bad_header <= w.tx_dropped);

	/* RX: frames from the tap into the guest's chains. */
	static uint8_t frame[MAX_GSO_FRAME + NET_TAP_VNET_HDR_LEN];
	unsigned sent = 0;
	for (unsigned i = 0; i < n_frames; i++) {
		size_t len = lens[i];   /* < sizeof(frame) */
		if (len < NET_TAP_VNET_HDR_LEN)
			len = NET_TAP_VNET_HDR_LEN;
		memset(frame, (int)(0x40 + i), len);
		memset(frame, 0, NET_TAP_VNET_HDR_LEN);
		frame[0] = VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID;
		if (send(tap[1], frame, len, MSG_DONTWAIT) == (ssize_t)len)
			sent++;
	}
	bool rx_broken_before = rxq.vq.broken;
	uint16_t rx_start = rxq.vq.used_idx;
	r = rx_process(&w);
	CHECK(r == PAIR_OK || r == PAIR_MORE || r == PAIR_BROKEN);
	CHECK(!rx_broken_before || rxq.vq.broken);
	CHECK(w.rx_packets + w.rx_dropped <= sent);
	CHECK(w.rx_buffers == (uint16_t)(rxq.vq.used_idx - rx_start));
	CHECK(w.rx_packets <= w.rx_buffers);
	CHECK(w.n_held == 0 && w.n_iov == 0 && w.cap == 0);   /* rx_release gave every chain back */
	drain_host_side(NULL, 0);
	/* Frames the guest's buffers did not take stay in the socket: drop them. */
	static uint8_t sink[MAX_GSO_FRAME + 64];
	while (recv(tap[0], sink, sizeof(sink), MSG_DONTWAIT) >= 0)
		;
	return 0;
}

/* Seeds: one TX frame (plain, then with a checksum offload header) and two
 * RX chains of 2 KiB, mergeable and not. */
static void put16(uint8_t *b, uint16_t v) { b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *b, uint32_t v) { put16(b, (uint16_t)v); put16(b + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *b, uint64_t v) { put32(b, (uint32_t)v); put32(b + 4, (uint32_t)(v >> 32)); }

static void desc(uint8_t *r, uint64_t table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = r + table + 16 * i;
	put64(d, addr);
	put32(d + 8, len);
	put16(d + 12, flags);
	put16(d + 14, next);
}

static void write_seed(const char *dir, const char *name, uint8_t flags, bool csum_hdr)
{
	static uint8_t in[HDR + 2 * MAX_FRAMES + RAM_SIZE];
	memset(in, 0, sizeof(in));
	in[0] = flags;
	in[1] = 4;   /* 16 entries */
	in[2] = 4;
	in[3] = 2;   /* two RX frames */
	put16(in + HDR, 1000);
	put16(in + HDR + 2, 3000);
	uint8_t *r = in + HDR + 4;
	/* TX: header + 100-byte frame in one descriptor at 0x2000 */
	desc(r, TX_DESC, 0, 0x2000, 12 + 100, 0, 0);
	if (csum_hdr) {
		r[0x2000] = VIRTIO_NET_HDR_F_NEEDS_CSUM;
		put16(r + 0x2000 + 6, 34);   /* csum_start */
		put16(r + 0x2000 + 8, 6);    /* csum_offset */
	}
	put16(r + TX_AVAIL + 2, 1);
	/* RX: two writable 2 KiB chains at 0x2800 and 0x3000 */
	desc(r, RX_DESC, 0, 0x2800, 0x800, VIRTQ_DESC_F_WRITE, 0);
	desc(r, RX_DESC, 1, 0x3000, 0x800, VIRTQ_DESC_F_WRITE, 0);
	put16(r + RX_AVAIL + 2, 2);
	put16(r + RX_AVAIL + 4, 0);
	put16(r + RX_AVAIL + 6, 1);
	fuzz_write_seed(dir, name, in, sizeof(in) - (2 * MAX_FRAMES - 4));   /* two frame lengths, not eight */
}

__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_NET_WORKER_WRITE_SEEDS");
	if (!dir)
		return;
	write_seed(dir, "plain", 0x80, false);
	write_seed(dir, "mergeable-csum", 0x01 | 0x02 | 0x04 | 0x80, true);
	write_seed(dir, "big-target-event-idx", 0x01 | 0x04 | 0x08 | 0x20, true);
	exit(0);
}
