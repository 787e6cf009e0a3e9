/* Userspace virtio-net datapath (devices/net/virtio_net.c + the worker backend)
 * over a real multiqueue tap, with an in-process synthetic guest driver and
 * no VM: what the device costs per frame, and how it scales with pairs.
 *
 * Runs in a network namespace of its own (unshare(CLONE_NEWNET): root), on a
 * tap it creates there ("bnet0", brought up, IPv6 off, no address).
 *  - Fake guest memory and rings (the driver: tests/bench/bench_driver.h); the
 *    driver negotiates what Linux does (VERSION_1, EVENT_IDX, MRG_RXBUF, MQ,
 *    CTRL_VQ...), enables the pairs with VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET on
 *    the control queue, and runs one thread per pair (a guest vCPU): it
 *    waits for the pair's interrupts (the call eventfds the device signals
 *    through irq->queue()), reaps used buffers, gives them back and kicks
 *    when EVENT_IDX says so.
 *  - TX: the driver keeps each TX ring full of frames (one descriptor:
 *    12-byte header + frame). Counted: frames the device completed; checked
 *    against the tap's receive counter in /proc/net/dev (the kernel's count
 *    of frames it got from the tap fds).
 *  - RX: one host thread injects frames into the tap through an AF_PACKET
 *    socket (PACKET_QDISC_BYPASS, sendmmsg of 64), 256 UDP flows so the tap
 *    spreads them over its queues; the driver keeps 2 KiB mergeable buffers
 *    posted. Counted: frames the guest got, per pair; also what was
 *    injected and what the tap dropped because a queue's ring was full. The
 *    injector needs a CPU of its own: on a 2-core host RX figures are bounded
 *    by it.
 * Each line: pairs, direction, frame size, Mpps and Gbit/s (Ethernet frame
 * bytes, no header/FCS) in total and per pair, the CPU the whole process
 * used (user+sys, in cores: driver, injector and the kernel's tap work
 * included), the CPU the whole host was busy (in cores: above "cores" means
 * others were running too), CPU microseconds of this process per frame
 * (the figure that does not depend on how busy the host is), the same for
 * the device's worker threads alone ("dev us/fr": the driver threads and the
 * injector left out, so RX compares with TX; the kernel's work in their
 * reads and writes of the tap counts, the injector's sending does not), and
 * frames per worker wakeup (batching).
 *
 * Usage: bench_net_datapath [SECONDS_PER_RUN (default 2)]   (12 runs) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "devices/net/worker.h"
#include "devices/net/virtio_net.h"
#include "vmm/base/guest_mem.h"
#include "tests/bench/bench_driver.h"
#include "tests/unit/udp_frame.h"

#define TAP       "bnet0"
#define DEV_THREADS "net0-qp"   /* the worker threads' names: net<index>-qp<pair> */
#define QSIZE     256u
#define MAXP      4u
#define NQ        (2 * MAXP + 1)
#define HDR       12u
#define RX_BUF    2048u
#define RAM_SIZE  (64ull << 20)
#define F(b)      (1ull << (b))

/* Layout: queue q's rings at RING(q) (desc, avail +0x1000, used +0x2000),
 * its buffers at BUF(q), QSIZE x 2 KiB. */
#define RING(q) (0x100000ull + 0x10000ull * (q))
#define BUF(q)  (0x1000000ull + 0x100000ull * (q))

static uint8_t *ram;
static struct guest_mem mem;
static struct virtio_queue queues[NQ];
static atomic_bool running;

static void *gpa(uint64_t a)
{
	return bench_gpa(&mem, a);
}

/* ---- the transport side: interrupts are the call eventfds ---- */

static void irq_queue(const struct virtio_irq *irq, unsigned q)
{
	uint64_t one = 1;
	if (q < NQ && write(queues[q].call_fd, &one, sizeof(one)) < 0) {
		/* counter full: pending anyway */
	}
}
static void irq_config(const struct virtio_irq *irq) {}
static atomic_uint needs_reset;
static void irq_needs_reset(const struct virtio_irq *irq) { atomic_fetch_add(&needs_reset, 1); }
static const struct virtio_irq irq = { .queue = irq_queue, .config = irq_config, .needs_reset = irq_needs_reset };

/* ---- the synthetic driver ---- */

struct pair_drv {
	unsigned index;
	struct dq rx, tx;
	bool tx_mode;
	pthread_t thread;
	_Atomic uint64_t rx_frames, rx_bytes, tx_frames, tx_bytes;
	uint32_t tx_len;             /* frame length for TX */
};
static struct pair_drv drv[MAXP];

/* Descriptor i of each ring owns buffer i (2 KiB) for the whole run. */
static void setup_pair(struct pair_drv *p, bool tx_mode, uint32_t tx_len)
{
	p->tx_mode = tx_mode;
	p->tx_len = tx_len;
	atomic_store(&p->rx_frames, 0);
	atomic_store(&p->rx_bytes, 0);
	atomic_store(&p->tx_frames, 0);
	atomic_store(&p->tx_bytes, 0);
	unsigned rq = 2 * p->index, tq = 2 * p->index + 1;
	dq_init(&p->rx, &mem, &queues[rq], QSIZE, RING(rq));
	dq_init(&p->tx, &mem, &queues[tq], QSIZE, RING(tq));
	for (unsigned i = 0; i < QSIZE; i++) {
		p->rx.desc[i] = (struct virtq_desc){ htole64(BUF(rq) + i * RX_BUF), htole32(RX_BUF),
						     htole16(VIRTQ_DESC_F_WRITE), 0 };
		dq_add(&p->rx, (uint16_t)i);
		uint64_t b = BUF(tq) + i * RX_BUF;
		memset(gpa(b), 0, HDR);
		make_udp_frame(gpa(b + HDR), tx_len, (uint16_t)(1000 + p->index * 1000 + i), 0x5a);
		p->tx.desc[i] = (struct virtq_desc){ htole64(b), htole32(HDR + tx_len), 0, 0 };
	}
	/* RX buffers are published now (before the device starts); TX frames
	 * when the run starts. */
	__atomic_store_n(&p->rx.avail->idx, htole16(p->rx.avail_idx), __ATOMIC_RELEASE);
}

static void *pair_main(void *arg)
{
	struct pair_drv *p = arg;
	struct pollfd fds[2] = {
		{ .fd = p->rx.queue->call_fd, .events = POLLIN },
		{ .fd = p->tx.queue->call_fd, .events = POLLIN },
	};
	if (p->tx_mode) {
		uint16_t old = p->tx.avail_idx;
		for (unsigned i = 0; i < QSIZE; i++)
			dq_add(&p->tx, (uint16_t)i);
		dq_publish(&p->tx, old);
	}
	unsigned rest = 0;   /* buffers still to come of the current RX frame */
	while (atomic_load_explicit(&running, memory_order_relaxed)) {
		struct virtq_used_elem e;
		bool work = false;
		/* RX: count frames (num_buffers tells how many entries one takes) */
		uint16_t old = p->rx.avail_idx;
		unsigned frames = 0;
		uint64_t bytes = 0;
		while (dq_used(&p->rx, &e)) {
			if (e.id >= QSIZE)
				continue;
			if (!rest) {
				struct virtio_net_hdr_v1 h;
				memcpy(&h, gpa(BUF(2 * p->index) + e.id * RX_BUF), sizeof(h));
				rest = le16toh(h.num_buffers);
				frames++;
				bytes += e.len - HDR;
			} else {
				bytes += e.len;
			}
			rest--;
			dq_add(&p->rx, (uint16_t)e.id);
			work = true;
		}
		dq_publish(&p->rx, old);
		if (frames) {
			atomic_fetch_add_explicit(&p->rx_frames, frames, memory_order_relaxed);
			atomic_fetch_add_explicit(&p->rx_bytes, bytes, memory_order_relaxed);
		}
		/* TX: give every completed frame back at once */
		old = p->tx.avail_idx;
		frames = 0;
		while (dq_used(&p->tx, &e)) {
			if (e.id >= QSIZE)
				continue;
			dq_add(&p->tx, (uint16_t)e.id);
			frames++;
			work = true;
		}
		dq_publish(&p->tx, old);
		if (frames) {
			atomic_fetch_add_explicit(&p->tx_frames, frames, memory_order_relaxed);
			atomic_fetch_add_explicit(&p->tx_bytes, (uint64_t)frames * p->tx_len, memory_order_relaxed);
		}
		if (work)
			continue;
		bool rx_more = dq_arm(&p->rx), tx_more = dq_arm(&p->tx);   /* both armed, whatever the first says */
		if (rx_more || tx_more)
			continue;
		if (poll(fds, 2, 10) > 0) {
			uint64_t v;
			for (int i = 0; i < 2; i++)
				if ((fds[i].revents & POLLIN) && read(fds[i].fd, &v, sizeof(v)) < 0) {
				}
		}
	}
	return NULL;
}

/* ---- control queue ---- */

/* The control queue was set up (ready) before activation; this sends the
 * command on it and waits for the answer. */
static int send_pairs_set(struct dq *d, unsigned ctrl_q, uint16_t n)
{
	uint8_t *cmd = gpa(BUF(ctrl_q));
	cmd[0] = VIRTIO_NET_CTRL_MQ;
	cmd[1] = VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET;
	uint16_t le = htole16(n);
	memcpy(cmd + 2, &le, 2);
	uint8_t *ack = gpa(BUF(ctrl_q) + 64);
	*ack = 0xff;
	d->desc[0] = (struct virtq_desc){ htole64(BUF(ctrl_q)), htole32(4), htole16(VIRTQ_DESC_F_NEXT), htole16(1) };
	d->desc[1] = (struct virtq_desc){ htole64(BUF(ctrl_q) + 64), htole32(1), htole16(VIRTQ_DESC_F_WRITE), 0 };
	dq_add(d, 0);
	__atomic_store_n(&d->avail->idx, htole16(d->avail_idx), __ATOMIC_RELEASE);
	uint64_t one = 1;
	if (write(queues[ctrl_q].kick_fd, &one, sizeof(one)) < 0)
		return -1;
	struct virtq_used_elem e;
	double deadline = now_s() + 5;
	while (!dq_used(d, &e)) {
		if (now_s() > deadline)
			return -1;
		usleep(100);
	}
	return *ack == VIRTIO_NET_OK ? 0 : -1;
}

/* ---- the host side of the tap ---- */

static int if_up(const char *name)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	if (ioctl(s, SIOCGIFFLAGS, &ifr) < 0)
		return -1;
	ifr.ifr_flags |= IFF_UP;
	if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
		return -1;
	if (ioctl(s, SIOCGIFINDEX, &ifr) < 0)
		return -1;
	close(s);
	return ifr.ifr_ifindex;
}

struct if_counters {
	uint64_t rx_packets, rx_dropped, tx_packets, tx_dropped;
};

/* The tap's counters from /proc/net/dev (this namespace's). */
static struct if_counters if_counters(const char *name)
{
	struct if_counters c = { 0 };
	FILE *f = fopen("/proc/net/dev", "re");
	char line[512];
	while (f && fgets(line, sizeof(line), f)) {
		char *colon = strchr(line, ':');
		if (!colon)
			continue;
		*colon = 0;
		char *n = line;
		while (*n == ' ')
			n++;
		if (strcmp(n, name))
			continue;
		unsigned long long v[16];
		if (sscanf(colon + 1, "%llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1],
			   &v[2], &v[3], &v[4], &v[5], &v[6], &v[7], &v[8], &v[9], &v[10], &v[11]) == 12) {
			c.rx_packets = v[1];
			c.rx_dropped = v[3];
			c.tx_packets = v[9];
			c.tx_dropped = v[11];
		}
	}
	if (f)
		fclose(f);
	return c;
}

struct injector {
	int fd;
	uint32_t len;
	pthread_t thread;
	_Atomic uint64_t sent;
};

static void *inject_main(void *arg)
{
	struct injector *in = arg;
	enum { FLOWS = 256, BATCH = 64 };
	static uint8_t frames[FLOWS][1514];
	for (unsigned i = 0; i < FLOWS; i++)
		make_udp_frame(frames[i], in->len, (uint16_t)(20000 + i * 13), 0x5a);
	struct mmsghdr msgs[BATCH];
	struct iovec iov[BATCH];
	unsigned next = 0;
	while (atomic_load_explicit(&running, memory_order_relaxed)) {
		for (unsigned i = 0; i < BATCH; i++) {
			iov[i] = (struct iovec){ frames[next], in->len };
			next = (next + 1) % FLOWS;
			memset(&msgs[i], 0, sizeof(msgs[i]));
			msgs[i].msg_hdr.msg_iov = &iov[i];
			msgs[i].msg_hdr.msg_iovlen = 1;
		}
		int n = sendmmsg(in->fd, msgs, BATCH, 0);
		if (n > 0)
			atomic_fetch_add_explicit(&in->sent, (uint64_t)n, memory_order_relaxed);
		else if (n < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINTR)
			break;
	}
	return NULL;
}

/* ---- one run ---- */

struct result {
	double pps[MAXP], bps[MAXP];
	double total_pps, total_bps, cores, host_cores;
	double dev_cores;            /* the device's worker threads ("net0-qp<i>") only */
	double injected_pps, tap_dropped_pps, tap_seen_pps;
	uint64_t worker_drops;
	double frames_per_wakeup;
};

static int run(unsigned pairs, bool tx, uint32_t len, double secs, struct result *r)
{
	char err[256];
	struct virtio_net_params p = { .tap = TAP, .queue_pairs = MAXP, .backend = VIRTIO_NET_BACKEND_WORKER };
	memcpy(p.mac, (uint8_t[6]){ 0x52, 0x54, 0, 0, 0, 1 }, 6);
	struct virtio_net *net = virtio_net_create(&p, err, sizeof(err));
	if (!net) {
		fprintf(stderr, "%s\n", err);
		return -1;
	}
	int ifindex = if_up(TAP);
	if (ifindex < 0) {
		fprintf(stderr, "cannot bring %s up: %s\n", TAP, strerror(errno));
		virtio_net_destroy(net);
		return -1;
	}
	for (unsigned i = 0; i < MAXP; i++) {
		drv[i].index = i;
		setup_pair(&drv[i], tx, len);
	}
	struct dq ctrl;
	dq_init(&ctrl, &mem, &queues[NQ - 1], QSIZE, RING(NQ - 1));
	uint64_t features = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_EVENT_IDX) | F(VIRTIO_NET_F_MRG_RXBUF) |
			    F(VIRTIO_NET_F_MQ) | F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_MAC) | F(VIRTIO_NET_F_STATUS) |
			    F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_HOST_TSO4);
	if (virtio_net_ops.activate(net, features, queues, NQ, &irq) ||
	    send_pairs_set(&ctrl, NQ - 1, (uint16_t)pairs)) {
		fprintf(stderr, "activation or VQ_PAIRS_SET failed\n");
		virtio_net_destroy(net);
		return -1;
	}

	struct injector in = { .fd = -1, .len = len };
	atomic_store(&running, true);
	for (unsigned i = 0; i < pairs; i++)
		pthread_create(&drv[i].thread, NULL, pair_main, &drv[i]);
	if (!tx) {
		in.fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
		int one = 1;
		setsockopt(in.fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one));
		struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_IP),
					   .sll_ifindex = ifindex };
		if (in.fd < 0 || bind(in.fd, (struct sockaddr *)&sll, sizeof(sll)) < 0) {
			fprintf(stderr, "AF_PACKET: %s\n", strerror(errno));
			return -1;
		}
		pthread_create(&in.thread, NULL, inject_main, &in);
	}

	usleep(300000);   /* warm up */
	uint64_t f0[MAXP], b0[MAXP], d0 = 0, w0 = 0, w1 = 0;
	for (unsigned i = 0; i < pairs; i++) {
		f0[i] = tx ? atomic_load(&drv[i].tx_frames) : atomic_load(&drv[i].rx_frames);
		b0[i] = tx ? atomic_load(&drv[i].tx_bytes) : atomic_load(&drv[i].rx_bytes);
		struct net_pair_stats s;
		virtio_net_pair_stats(net, i, &s);
		d0 += s.rx_dropped + s.tx_dropped;
		w0 += s.wakeups;
	}
	struct if_counters c0 = if_counters(TAP);
	uint64_t inj0 = atomic_load(&in.sent);
	struct bench_window win;
	bench_window_sleep(&win, DEV_THREADS, secs);
	struct if_counters c1 = if_counters(TAP);
	uint64_t inj1 = atomic_load(&in.sent);
	double dt = win.t1 - win.t0;
	r->total_pps = r->total_bps = 0;
	r->worker_drops = 0;
	for (unsigned i = 0; i < pairs; i++) {
		uint64_t f1 = tx ? atomic_load(&drv[i].tx_frames) : atomic_load(&drv[i].rx_frames);
		uint64_t b1 = tx ? atomic_load(&drv[i].tx_bytes) : atomic_load(&drv[i].rx_bytes);
		r->pps[i] = (double)(f1 - f0[i]) / dt;
		r->bps[i] = (double)(b1 - b0[i]) * 8 / dt;
		r->total_pps += r->pps[i];
		r->total_bps += r->bps[i];
		struct net_pair_stats s;
		virtio_net_pair_stats(net, i, &s);
		r->worker_drops += s.rx_dropped + s.tx_dropped;
		w1 += s.wakeups;
	}
	r->frames_per_wakeup = w1 > w0 ? r->total_pps * dt / (double)(w1 - w0) : 0;
	r->worker_drops -= d0;
	bench_window_cores(&win, &r->cores, &r->host_cores, &r->dev_cores);
	r->injected_pps = (double)(inj1 - inj0) / dt;
	r->tap_seen_pps = (double)(c1.rx_packets - c0.rx_packets) / dt;
	r->tap_dropped_pps = (double)((c1.tx_dropped - c0.tx_dropped) + (c1.rx_dropped - c0.rx_dropped)) / dt;

	atomic_store(&running, false);
	if (!tx) {
		pthread_join(in.thread, NULL);
		close(in.fd);
	}
	for (unsigned i = 0; i < pairs; i++)
		pthread_join(drv[i].thread, NULL);
	virtio_net_destroy(net);   /* resets: joins the workers, closes the tap (it goes away) */
	return 0;
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	if (secs <= 0 || secs > 30) {
		fprintf(stderr, "usage: %s [SECONDS_PER_RUN (0-30, default 2)]\n", argv[0]);
		return 2;
	}
	if (geteuid() != 0 || access(NET_TAP_DEV, R_OK | W_OK) != 0) {
		printf("SKIP: needs root and %s (a tap in a private network namespace)\n", NET_TAP_DEV);
		return 77;
	}
	if (unshare(CLONE_NEWNET) != 0) {
		printf("SKIP: unshare(CLONE_NEWNET): %s\n", strerror(errno));
		return 77;
	}
	int fd = open("/proc/sys/net/ipv6/conf/default/disable_ipv6", O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		if (write(fd, "1", 1) < 0) {
		}
		close(fd);
	}
	ram = aligned_alloc(4096, RAM_SIZE);
	if (!ram || guest_mem_add_region(&mem, 0, RAM_SIZE, ram)) {
		fprintf(stderr, "no memory\n");
		return 1;
	}
	memset(ram, 0, RAM_SIZE);
	for (unsigned q = 0; q < NQ; q++) {
		queues[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		queues[q].call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("virtio-net userspace datapath (worker backend) over a multiqueue tap, %.1f s per run, %ld CPUs\n",
	       secs, cpus);
	printf("synthetic guest: one driver thread per pair, queue size %u, EVENT_IDX, 2 KiB mergeable RX buffers\n",
	       QSIZE);
	printf("%-5s %-3s %5s %8s %8s %6s %6s %7s %9s  %-32s %5s  %s\n", "pairs", "dir", "frame", "Mpps", "Gbit/s",
	       "cores", "host", "us/fr", "dev us/fr", "Mpps per pair", "fr/wk", "check");
	static const uint32_t sizes[2] = { 60, 1514 };
	for (int dir = 0; dir < 2; dir++)
		for (int s = 0; s < 2; s++)
			for (unsigned pairs = 1; pairs <= MAXP; pairs *= 2) {
				struct result r;
				bool tx = dir == 0;
				if (run(pairs, tx, sizes[s], secs, &r))
					return 1;
				char per[64] = "", check[160];
				for (unsigned i = 0; i < pairs; i++) {
					char one[16];
					snprintf(one, sizeof(one), "%s%.3f", i ? " " : "", r.pps[i] / 1e6);
					strncat(per, one, sizeof(per) - strlen(per) - 1);
				}
				if (tx)
					snprintf(check, sizeof(check), "%5.1f  tap got %.3f Mpps, dropped %.0f/s",
						 r.frames_per_wakeup, r.tap_seen_pps / 1e6, r.tap_dropped_pps);
				else
					snprintf(check, sizeof(check),
						 "%5.1f  tap took %.3f Mpps, refused %.3f Mpps (queue full), too big %llu",
						 r.frames_per_wakeup, r.injected_pps / 1e6, r.tap_dropped_pps / 1e6,
						 (unsigned long long)r.worker_drops);
				printf("%-5u %-3s %5u %8.3f %8.3f %6.2f %6.2f %7.2f %9.2f  %-32s %s\n", pairs,
				       tx ? "TX" : "RX", sizes[s], r.total_pps / 1e6, r.total_bps / 1e9, r.cores,
				       r.host_cores, r.total_pps > 0 ? r.cores / r.total_pps * 1e6 : 0,
				       r.total_pps > 0 ? r.dev_cores / r.total_pps * 1e6 : 0, per, check);
				fflush(stdout);
			}
	if (atomic_load(&needs_reset))
		printf("WARNING: the device asked for a reset %u times\n", atomic_load(&needs_reset));
	return 0;
}
