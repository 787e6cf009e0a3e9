/* libFuzzer target for virtio-net's control queue (devices/net/virtio_net.c):
 * RX mode, MAC table, MAC address and VQ_PAIRS_SET commands, split across
 * descriptors however the guest likes, on hostile rings in 16 KiB of fake
 * guest RAM. A 4-pair device over a fake backend (pair start/stop counted)
 * and fake tap fds; virtio_net.c is included, not linked, to reach ctrl_drain()
 * without the control thread (and with no pause between pair changes).
 * Build and run: tests/fuzz/run.sh.
 *
 * Checked after each drain: the pairs that run are exactly 0..active-1,
 * active within 1..usable pairs (1 without MQ), started only on queues the
 * driver set up; the MAC table counts and the acks are what the spec
 * allows (OK or ERR); a drain serves at most its budget; a broken queue
 * stays broken. ASan: nothing written outside guest RAM or the device.
 *
 * Input (little-endian):
 *   0  u8  bit 0 MQ, 1 CTRL_RX, 2 CTRL_MAC_ADDR, 3 EVENT_IDX, 4 INDIRECT_DESC
 *   1  u8  control queue size 2^(n % 9)
 *   2  u8  which pair queues are ready (bit i: queue i of 0..7)
 *   3  u8  drains (1 + n % 4)
 *   4  RAM image (16 KiB; the control queue's rings at 0x0/0x400/0x800)
 * FUZZ_NET_CTRL_WRITE_SEEDS=DIR writes seed inputs there and exits. */
#define PAIRS_CHANGE_NS 0ull
#include "devices/net/virtio_net.c"
#include "fuzz_check.h"
#include "fuzz_ram.h"

#include <sys/socket.h>

#define HDR 4
#define RAM_SIZE 0x4000u
#define C_DESC 0x0u
#define C_AVAIL 0x400u
#define C_USED 0x800u
#define PAIRS 4u

static uint8_t *ram;
static struct virtio_net *net;
static bool running[PAIRS];
static unsigned starts, stops;

static int fake_start(struct net_pair *p)
{
	CHECK(p->index < PAIRS && !running[p->index]);
	CHECK(p->rx && p->tx && p->rx->ready && p->tx->ready);
	running[p->index] = true;
	starts++;
	return 0;
}

static void fake_stop(struct net_pair *p)
{
	CHECK(p->index < PAIRS && running[p->index]);
	running[p->index] = false;
	stops++;
}

static const struct net_backend_ops fake_backend = { .name = "fake", .start = fake_start, .stop = fake_stop };

static void irq_queue(const struct virtio_irq *irq, unsigned q)
{
	(void)irq;
	CHECK((int)q == net->ctrl_index);   /* only the control queue is served here */
}

static void irq_other(const struct virtio_irq *irq)
{
	(void)irq;
}

static const struct virtio_irq fuzz_irq = { irq_queue, irq_other, irq_other, NULL, NULL };

static void setup_once(void)
{
	if (net)
		return;
	ram = malloc(RAM_SIZE);
	struct net_tap t;
	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "fuzz0");
	for (unsigned i = 0; i < PAIRS; i++) {
		int sv[2];
		CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == 0);
		t.fds[i] = sv[0];
	}
	t.n_fds = PAIRS;
	struct virtio_net_params p = { .tap = "fuzz0", .queue_pairs = PAIRS, .backend = VIRTIO_NET_BACKEND_WORKER };
	char err[256];
	net = virtio_net_create_on_tap(&p, &t, err, sizeof(err));
	CHECK(ram && net);
	net->backend = &fake_backend;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	uint8_t h[HDR] = { 0 };
	memcpy(h, data, size < HDR ? size : HDR);
	struct guest_mem mem;
	fuzz_ram_load(&mem, ram, RAM_SIZE, data, size, HDR);

	static struct virtio_queue queues[2 * PAIRS + 1];
	memset(queues, 0, sizeof(queues));
	for (unsigned i = 0; i < 2 * PAIRS; i++) {
		queues[i].ready = i < 2 || (h[2] & (1u << i));   /* pair 0 always: activation needs it */
		queues[i].kick_fd = queues[i].call_fd = -1;
		queues[i].vq.mem = &mem;
	}
	struct virtio_queue *cq = &queues[2 * PAIRS];
	cq->ready = true;
	cq->kick_fd = cq->call_fd = -1;
	if (virtq_init(&cq->vq, &mem, (uint16_t)(1u << (h[1] % 9)), C_DESC, C_AVAIL, C_USED, h[0] & 8, h[0] & 16))
		return 0;

	uint64_t features = (1ull << VIRTIO_F_VERSION_1) | F(VIRTIO_NET_F_CTRL_VQ);
	if (h[0] & 1)
		features |= F(VIRTIO_NET_F_MQ);
	if (h[0] & 2)
		features |= F(VIRTIO_NET_F_CTRL_RX);
	if (h[0] & 4)
		features |= F(VIRTIO_NET_F_CTRL_MAC_ADDR);
	/* What net_activate() does, without the control thread. */
	bool mq = features & F(VIRTIO_NET_F_MQ);
	net->features = features;
	net->irq = &fuzz_irq;
	net->queues = queues;
	net->n_queues = 2 * PAIRS + 1;
	net->usable_pairs = mq ? PAIRS : 1;
	net->ctrl_index = mq ? (int)(2 * PAIRS) : 2;
	if (!mq) {   /* the control queue is queue 2 without MQ */
		queues[2] = *cq;
		cq = &queues[2];
	}
	for (unsigned i = 0; i < PAIRS; i++)
		net->qps[i].attached = true;   /* the fake tap has no queues to attach */
	net->active = true;
	net->pairs_change_tat = 0;
	atomic_store(&net->active_pairs, 0);
	CHECK(set_pairs(net, 1) == 0);

	bool was_broken = false;
	unsigned drains = 1 + h[3] % 4;
	for (unsigned d = 0; d < drains; d++) {
		uint16_t before = cq->vq.used_idx;
		int r = ctrl_drain(net);
		CHECK(r == 0 || r == -1);
		CHECK(!was_broken || cq->vq.broken);   /* broken until a reset */
		was_broken = cq->vq.broken;
		CHECK((uint16_t)(cq->vq.used_idx - before) <= CTRL_DRAIN_BUDGET);
		unsigned active = atomic_load(&net->active_pairs);
		CHECK(active >= 1 && active <= net->usable_pairs);
		for (unsigned i = 0; i < PAIRS; i++)
			CHECK(running[i] == (i < active));
		CHECK(net->filter.n_uni <= (RAM_SIZE / 6) && net->filter.n_multi <= (RAM_SIZE / 6));
		if (r < 0)
			break;
	}
	/* What net_reset() does for the pairs; the device is ready for the next input. */
	for (unsigned i = PAIRS; i-- > 0;)
		pair_stop(net, i);
	atomic_store(&net->active_pairs, 0);
	net->active = false;
	CHECK(starts == stops);
	return 0;
}

/* Seeds: VQ_PAIRS_SET 4, RX PROMISC on, a MAC table of 1 + 1, MAC_ADDR_SET,
 * each header / data / ack in its own descriptor. */
static void put16(uint8_t *b, uint16_t v) { b[0] = (uint8_t)v; b[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *b, uint32_t v) { put16(b, (uint16_t)v); put16(b + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *b, uint64_t v) { put32(b, (uint32_t)v); put32(b + 4, (uint32_t)(v >> 32)); }

static void write_seed(const char *dir, const char *name, uint8_t cls, uint8_t cmd, const uint8_t *d, uint32_t len)
{
	static uint8_t in[HDR + RAM_SIZE];
	memset(in, 0, sizeof(in));
	in[0] = 1 | 2 | 4;
	in[1] = 4;
	in[2] = 0xff;
	in[3] = 1;
	uint8_t *r = in + HDR;
	uint8_t *desc = r + C_DESC;
	/* header at 0x1000, data at 0x1100, ack at 0x1200 */
	put64(desc, 0x1000); put32(desc + 8, 2); put16(desc + 12, VIRTQ_DESC_F_NEXT); put16(desc + 14, 1);
	put64(desc + 16, 0x1100); put32(desc + 24, len); put16(desc + 28, VIRTQ_DESC_F_NEXT); put16(desc + 30, 2);
	put64(desc + 32, 0x1200); put32(desc + 40, 1); put16(desc + 44, VIRTQ_DESC_F_WRITE);
	r[0x1000] = cls;
	r[0x1001] = cmd;
	memcpy(r + 0x1100, d, len);
	put16(r + C_AVAIL + 2, 1);
	fuzz_write_seed(dir, name, in, sizeof(in));
}

__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_NET_CTRL_WRITE_SEEDS");
	if (!dir)
		return;
	static const uint8_t four[2] = { 4, 0 }, on[1] = { 1 }, mac[6] = { 0x52, 0x54, 0, 1, 2, 3 };
	static const uint8_t table[4 + 6 + 4 + 6] = { 1, 0, 0, 0, 0x52, 0x54, 0, 9, 9, 9, 1, 0, 0, 0, 1, 0, 0x5e, 0, 0, 1 };
	write_seed(dir, "pairs-set-4", VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, four, 2);
	write_seed(dir, "promisc-on", VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, on, 1);
	write_seed(dir, "mac-table", VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_TABLE_SET, table, sizeof(table));
	write_seed(dir, "mac-addr", VIRTIO_NET_CTRL_MAC, VIRTIO_NET_CTRL_MAC_ADDR_SET, mac, 6);
	exit(0);
}
