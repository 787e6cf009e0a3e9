/* vhost-net backend. /dev/vhost-net does not exist on every machine (not on
 * the project's PVM hosts, only inside the nested rig's L1), so most tests
 * run the backend against a fake kernel (net_vhost_set_sys) that records
 * every ioctl: the exact start/stop sequence and its arguments, failure at
 * each step (one log line naming the ioctl and the pair, nothing leaked, the
 * ring positions read back when vhost had started), interrupt forwarding for
 * transports without a queue notifier, and the pieces (memory table, feature
 * mask, ring address translation with hostile addresses). The last test runs
 * the real thing on a real tap and skips, saying why, where it cannot. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <dirent.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <net/if.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "devices/net/vhost.h"
#include "devices/net/worker.h"
#include "captured_log.h"
#include "virtq_driver.h"

#define FBIT(n) (1ull << (n))
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define RAM0_SIZE 0x200000ull             /* 2 MiB at 0 */
#define RAM1_GPA  0x100000000ull          /* 1 MiB at 4 GiB */
#define RAM1_SIZE 0x100000ull
#define QSIZE 256
#define RX_RING 0x10000ull                /* desc, +0x1000 avail, +0x2000 used */
#define TX_RING 0x20000ull
#define RX_BUF  0x100000ull               /* RX buffers, 2 KiB each */
#define TX_BUF  0x180000ull
#define RX_QUEUE 2                        /* pair 1: transport queues 2 and 3 */
#define TX_QUEUE 3

static const uint64_t FEATURES_V1 = FBIT(VIRTIO_F_VERSION_1) | FBIT(VIRTIO_NET_F_MRG_RXBUF) |
				    FBIT(VIRTIO_RING_F_EVENT_IDX) | FBIT(VIRTIO_RING_F_INDIRECT_DESC);
/* What vhost-net in Linux 6.1 offers (VHOST_NET_FEATURES). */
static const uint64_t VHOST_OFFERS = FBIT(VIRTIO_F_NOTIFY_ON_EMPTY) | FBIT(VIRTIO_RING_F_INDIRECT_DESC) |
				     FBIT(VIRTIO_RING_F_EVENT_IDX) | FBIT(VHOST_F_LOG_ALL) | FBIT(VIRTIO_F_ANY_LAYOUT) |
				     FBIT(VIRTIO_F_VERSION_1) | FBIT(VHOST_NET_F_VIRTIO_NET_HDR) |
				     FBIT(VIRTIO_NET_F_MRG_RXBUF) | FBIT(VIRTIO_F_ACCESS_PLATFORM) |
				     FBIT(VIRTIO_F_RING_RESET);

/* ---- fake guest, transport and interrupts ---- */

static uint8_t *ram0, *ram1;
static struct guest_mem mem;
static struct virtio_queue rxq, txq;         /* the transport's side */
static struct virtq_driver rx_drv, tx_drv;   /* the guest's side */
static struct net_pair pair;
/* Two interrupt handles, both counting into irq_log (set up by setup()). */
static struct recording_irq irq_log;
static struct virtio_irq irq_pci_like, irq_mmio_like;
static atomic_uint tap_gone_calls;
static void count_tap_gone(struct net_pair *p, int err)
{
	(void)p;
	if (err == EBADFD)
		atomic_fetch_add(&tap_gone_calls, 1);   /* watcher thread: no cr_assert here */
}

/* Like virtio-pci with MSI-X on: the queue's call eventfd is the interrupt. */
static int pci_like_notifier(const struct virtio_irq *irq, unsigned q)
{
	(void)irq;
	return q == RX_QUEUE ? rxq.call_fd : q == TX_QUEUE ? txq.call_fd : -1;
}

static void init_queues(bool event_idx)
{
	virtq_driver_init(&rx_drv, &rxq, RX_QUEUE, &mem, QSIZE, RX_RING, event_idx, true);
	virtq_driver_init(&tx_drv, &txq, TX_QUEUE, &mem, QSIZE, TX_RING, event_idx, true);
}

static void setup(void)
{
	ram0 = mmap(NULL, RAM0_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ram1 = mmap(NULL, RAM1_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	cr_assert(ram0 != MAP_FAILED && ram1 != MAP_FAILED);
	memset(&mem, 0, sizeof(mem));
	cr_assert_eq(guest_mem_add_region(&mem, 0, RAM0_SIZE, ram0), 0);
	cr_assert_eq(guest_mem_add_region(&mem, RAM1_GPA, RAM1_SIZE, ram1), 0);
	memset(&rxq, 0, sizeof(rxq));
	memset(&txq, 0, sizeof(txq));
	rxq.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	rxq.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	txq.kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	txq.call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	cr_assert(rxq.kick_fd >= 0 && rxq.call_fd >= 0 && txq.kick_fd >= 0 && txq.call_fd >= 0);
	init_queues(true);
	recording_irq_init(&irq_log);
	irq_mmio_like = irq_log.irq;   /* like virtio-mmio: no queue notifier */
	irq_pci_like = irq_log.irq;
	irq_pci_like.queue_notifier = pci_like_notifier;
	pair = (struct net_pair){
		.index = 1,
		.name = "net0-qp1",
		.tap_fd = 99,               /* the fake kernel only records it */
		.rx = &rxq,
		.tx = &txq,
		.rx_index = RX_QUEUE,
		.tx_index = TX_QUEUE,
		.irq = &irq_pci_like,
		.mem = &mem,
		.features = FEATURES_V1,
		.vnet_hdr_len = 12,
		.vhost_fd = -1,             /* the backend opens its own unless the device gave one */
	};
	cr_redirect_stderr();
}

static void teardown(void)
{
	net_vhost_set_sys(NULL);
	close(rxq.kick_fd);
	close(rxq.call_fd);
	close(txq.kick_fd);
	close(txq.call_fd);
	munmap(ram0, RAM0_SIZE);
	munmap(ram1, RAM1_SIZE);
}

TestSuite(net_vhost, .init = setup, .fini = teardown);

static unsigned lines(const char *s)
{
	unsigned n = 0;
	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static unsigned open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	unsigned n = 0;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* ---- the fake kernel ---- */

struct call {
	unsigned long req;
	int vhost_fd;
	unsigned index;
	uint64_t num;                  /* vring state num, or features */
	int fd;                        /* vring file fd */
	struct vhost_vring_addr addr;
	unsigned nregions;
	struct vhost_memory_region regions[GUEST_MEM_MAX_REGIONS];
};

static struct call calls[64];
static unsigned n_calls;
static int fail_at = -1;          /* this ioctl (0-based) fails with EINVAL */
static int opened_fd = -1;
static int open_errno;            /* non-zero: open() fails with it */
static uint64_t fake_offered;
static unsigned fake_base[2];

static int fake_open(const char *path, int flags)
{
	cr_assert_str_eq(path, "/dev/vhost-net");
	cr_assert_eq(flags, O_RDWR | O_CLOEXEC);
	if (open_errno) {
		errno = open_errno;
		return -1;
	}
	opened_fd = eventfd(0, EFD_CLOEXEC);   /* a real fd, so that close() is real */
	return opened_fd;
}

static int fake_ioctl(int fd, unsigned long req, void *arg)
{
	cr_assert_lt(n_calls, 64);
	unsigned i = n_calls++;
	struct call *c = &calls[i];
	memset(c, 0, sizeof(*c));
	c->req = req;
	c->vhost_fd = fd;
	if ((int)i == fail_at) {
		errno = EINVAL;
		return -1;
	}
	struct vhost_vring_state *st = arg;
	struct vhost_vring_file *f = arg;
	struct vhost_memory *m = arg;
	switch (req) {
	case VHOST_SET_OWNER:
	case VHOST_RESET_OWNER:
		break;
	case VHOST_GET_FEATURES:
		*(uint64_t *)arg = fake_offered;
		break;
	case VHOST_SET_FEATURES:
		c->num = *(uint64_t *)arg;
		break;
	case VHOST_SET_MEM_TABLE:
		cr_assert_leq(m->nregions, GUEST_MEM_MAX_REGIONS);
		c->nregions = m->nregions;
		memcpy(c->regions, m->regions, m->nregions * sizeof(m->regions[0]));
		break;
	case VHOST_SET_VRING_NUM:
	case VHOST_SET_VRING_BASE:
		c->index = st->index;
		c->num = st->num;
		break;
	case VHOST_GET_VRING_BASE:
		c->index = st->index;
		cr_assert_lt(st->index, 2);
		st->num = fake_base[st->index];
		break;
	case VHOST_SET_VRING_ADDR:
		c->addr = *(struct vhost_vring_addr *)arg;
		c->index = c->addr.index;
		break;
	case VHOST_SET_VRING_KICK:
	case VHOST_SET_VRING_CALL:
	case VHOST_SET_VRING_ERR:
	case VHOST_NET_SET_BACKEND:
		c->index = f->index;
		c->fd = f->fd;
		break;
	default:
		cr_assert_fail("unexpected ioctl 0x%lx", req);
	}
	return 0;
}

static const struct net_vhost_sys fake_sys = { fake_open, fake_ioctl };

static void use_fake(void)
{
	n_calls = 0;
	fail_at = -1;
	opened_fd = -1;
	open_errno = 0;
	fake_offered = VHOST_OFFERS;
	fake_base[0] = fake_base[1] = 0;
	net_vhost_set_sys(&fake_sys);
}

static const char *req_name(unsigned long req)
{
	switch (req) {
	case VHOST_SET_OWNER: return "VHOST_SET_OWNER";
	case VHOST_RESET_OWNER: return "VHOST_RESET_OWNER";
	case VHOST_GET_FEATURES: return "VHOST_GET_FEATURES";
	case VHOST_SET_FEATURES: return "VHOST_SET_FEATURES";
	case VHOST_SET_MEM_TABLE: return "VHOST_SET_MEM_TABLE";
	case VHOST_SET_VRING_NUM: return "VHOST_SET_VRING_NUM";
	case VHOST_SET_VRING_BASE: return "VHOST_SET_VRING_BASE";
	case VHOST_GET_VRING_BASE: return "VHOST_GET_VRING_BASE";
	case VHOST_SET_VRING_ADDR: return "VHOST_SET_VRING_ADDR";
	case VHOST_SET_VRING_KICK: return "VHOST_SET_VRING_KICK";
	case VHOST_SET_VRING_CALL: return "VHOST_SET_VRING_CALL";
	case VHOST_SET_VRING_ERR: return "VHOST_SET_VRING_ERR";
	case VHOST_NET_SET_BACKEND: return "VHOST_NET_SET_BACKEND";
	default: return "?";
	}
}

/* One expected ioctl: request, vq index (-1: none). */
struct step {
	unsigned long req;
	int vq;
};

/* The start sequence, in order. */
static const struct step start_seq[] = {
	{ VHOST_SET_OWNER, -1 }, { VHOST_GET_FEATURES, -1 }, { VHOST_SET_FEATURES, -1 }, { VHOST_SET_MEM_TABLE, -1 },
	{ VHOST_SET_VRING_NUM, 0 }, { VHOST_SET_VRING_BASE, 0 }, { VHOST_SET_VRING_ADDR, 0 },
	{ VHOST_SET_VRING_KICK, 0 }, { VHOST_SET_VRING_CALL, 0 }, { VHOST_SET_VRING_ERR, 0 },
	{ VHOST_SET_VRING_NUM, 1 }, { VHOST_SET_VRING_BASE, 1 }, { VHOST_SET_VRING_ADDR, 1 },
	{ VHOST_SET_VRING_KICK, 1 }, { VHOST_SET_VRING_CALL, 1 }, { VHOST_SET_VRING_ERR, 1 },
	{ VHOST_NET_SET_BACKEND, 0 }, { VHOST_NET_SET_BACKEND, 1 },
};
#define START_CALLS ARRAY_SIZE(start_seq)

static const struct step stop_seq[] = {
	{ VHOST_NET_SET_BACKEND, 0 }, { VHOST_NET_SET_BACKEND, 1 },
	{ VHOST_GET_VRING_BASE, 0 }, { VHOST_GET_VRING_BASE, 1 },
};

static void assert_calls(unsigned from, const struct step *seq, unsigned n)
{
	cr_assert_geq(n_calls, from + n, "%u ioctls, want at least %u", n_calls, from + n);
	for (unsigned i = 0; i < n; i++) {
		const struct call *c = &calls[from + i];
		cr_assert_eq(c->req, seq[i].req, "ioctl %u is %s, want %s", from + i, req_name(c->req),
			     req_name(seq[i].req));
		cr_assert_eq(c->vhost_fd, opened_fd, "ioctl %u on another fd", from + i);
		if (seq[i].vq >= 0)
			cr_assert_eq(c->index, (unsigned)seq[i].vq, "ioctl %u (%s) on vq %u", from + i, req_name(c->req),
				     c->index);
	}
}

/* ---- the pieces ---- */

Test(net_vhost, memory_table_covers_every_region)
{
	struct vhost_memory *m = net_vhost_mem_table(&mem);
	cr_assert_not_null(m);
	cr_assert_eq(m->nregions, 2);
	cr_assert_eq(m->padding, 0);
	cr_assert_eq(m->regions[0].guest_phys_addr, 0);
	cr_assert_eq(m->regions[0].memory_size, RAM0_SIZE);
	cr_assert_eq(m->regions[0].userspace_addr, (uintptr_t)ram0);
	cr_assert_eq(m->regions[1].guest_phys_addr, RAM1_GPA);
	cr_assert_eq(m->regions[1].memory_size, RAM1_SIZE);
	cr_assert_eq(m->regions[1].userspace_addr, (uintptr_t)ram1);
	cr_assert_eq(m->regions[0].flags_padding | m->regions[1].flags_padding, 0);
	free(m);
	cr_assert_str_empty(logged());
}

Test(net_vhost, memory_table_refuses_bad_regions)
{
	struct guest_mem bad = { 0 };
	cr_assert_null(net_vhost_mem_table(&bad), "no RAM");
	bad.n_regions = GUEST_MEM_MAX_REGIONS + 1;
	cr_assert_null(net_vhost_mem_table(&bad), "more regions than there can be");

	bad = mem;
	bad.regions[1].size = 0;
	cr_assert_null(net_vhost_mem_table(&bad), "empty region");
	bad = mem;
	bad.regions[1].gpa = ~0ull - 0x1000;
	cr_assert_null(net_vhost_mem_table(&bad), "region wrapping around the guest address space");
	bad = mem;
	bad.regions[0].hva = NULL;
	cr_assert_null(net_vhost_mem_table(&bad), "region without a mapping");
	bad = mem;
	bad.regions[0].hva = (uint8_t *)(~(uintptr_t)0 - 0x1000);
	cr_assert_null(net_vhost_mem_table(&bad), "mapping wrapping around");
}

Test(net_vhost, features_are_masked_to_what_vhost_handles)
{
	uint64_t missing = 1;
	/* offloads, MQ, CTRL_VQ, MAC are the tap's and the device's business */
	uint64_t device = FBIT(VIRTIO_NET_F_CSUM) | FBIT(VIRTIO_NET_F_GUEST_CSUM) | FBIT(VIRTIO_NET_F_GUEST_TSO4) |
			  FBIT(VIRTIO_NET_F_HOST_TSO4) | FBIT(VIRTIO_NET_F_MQ) | FBIT(VIRTIO_NET_F_CTRL_VQ) |
			  FBIT(VIRTIO_NET_F_MAC) | FBIT(VIRTIO_NET_F_STATUS);
	cr_assert_eq(net_vhost_features(FEATURES_V1 | device, VHOST_OFFERS, &missing), FEATURES_V1);
	cr_assert_eq(missing, 0);

	/* bit 27 is ANY_LAYOUT for the guest but VHOST_NET_F_VIRTIO_NET_HDR for
	 * vhost ("vhost adds the header"): never, the tap has IFF_VNET_HDR */
	uint64_t f = net_vhost_features(FEATURES_V1 | FBIT(VIRTIO_F_ANY_LAYOUT), VHOST_OFFERS, &missing);
	cr_assert_eq(f & FBIT(VHOST_NET_F_VIRTIO_NET_HDR), 0);
	cr_assert_eq(missing, 0);
	/* nor dirty logging, nor what vhost offers and the guest did not take */
	f = net_vhost_features(FBIT(VIRTIO_F_VERSION_1), VHOST_OFFERS, &missing);
	cr_assert_eq(f, FBIT(VIRTIO_F_VERSION_1));
	cr_assert_eq(f & FBIT(VHOST_F_LOG_ALL), 0);
	/* a legacy-style ring option the guest took is passed on */
	f = net_vhost_features(FBIT(VIRTIO_F_VERSION_1) | FBIT(VIRTIO_F_NOTIFY_ON_EMPTY), VHOST_OFFERS, &missing);
	cr_assert_eq(f, FBIT(VIRTIO_F_VERSION_1) | FBIT(VIRTIO_F_NOTIFY_ON_EMPTY));

	/* a ring feature the guest took that vhost lacks: cannot serve */
	f = net_vhost_features(FEATURES_V1, VHOST_OFFERS & ~FBIT(VIRTIO_RING_F_EVENT_IDX), &missing);
	cr_assert_eq(missing, FBIT(VIRTIO_RING_F_EVENT_IDX));
	cr_assert_eq(f & FBIT(VIRTIO_RING_F_EVENT_IDX), 0);
	f = net_vhost_features(FEATURES_V1, 0, &missing);
	cr_assert_eq(missing, FEATURES_V1);
	/* layouts and platform features this backend does not set vhost up for */
	net_vhost_features(FEATURES_V1 | FBIT(VIRTIO_F_RING_PACKED), VHOST_OFFERS | FBIT(VIRTIO_F_RING_PACKED),
			   &missing);
	cr_assert_eq(missing, FBIT(VIRTIO_F_RING_PACKED));
	net_vhost_features(FEATURES_V1 | FBIT(VIRTIO_F_ACCESS_PLATFORM), VHOST_OFFERS, &missing);
	cr_assert_eq(missing, FBIT(VIRTIO_F_ACCESS_PLATFORM));
	net_vhost_features(FEATURES_V1 | FBIT(VIRTIO_NET_F_HASH_REPORT), VHOST_OFFERS, &missing);
	cr_assert_eq(missing, FBIT(VIRTIO_NET_F_HASH_REPORT));
	net_vhost_features(FEATURES_V1 | FBIT(VIRTIO_F_IN_ORDER), VHOST_OFFERS, &missing);
	cr_assert_eq(missing, FBIT(VIRTIO_F_IN_ORDER));
}

Test(net_vhost, header_length_follows_the_features)
{
	cr_assert_eq(net_vhost_hdr_len(FBIT(VIRTIO_F_VERSION_1)), 12);
	cr_assert_eq(net_vhost_hdr_len(FBIT(VIRTIO_NET_F_MRG_RXBUF)), 12);
	cr_assert_eq(net_vhost_hdr_len(FEATURES_V1), 12);
	cr_assert_eq(net_vhost_hdr_len(FBIT(VIRTIO_RING_F_EVENT_IDX)), 10);
	cr_assert_eq(net_vhost_hdr_len(0), 10);
}

Test(net_vhost, ring_addresses_are_host_addresses_in_ram)
{
	struct vhost_vring_addr a;
	cr_assert_eq(net_vhost_vring_addr(&mem, &txq.vq, 1, &a), 0);
	cr_assert_eq(a.index, 1);
	cr_assert_eq(a.flags, 0);
	cr_assert_eq(a.desc_user_addr, (uintptr_t)ram0 + TX_RING);
	cr_assert_eq(a.avail_user_addr, (uintptr_t)ram0 + TX_RING + 0x1000);
	cr_assert_eq(a.used_user_addr, (uintptr_t)ram0 + TX_RING + 0x2000);
	cr_assert_eq(a.log_guest_addr, 0);

	/* rings in the high region, the largest queue */
	struct virtq vq = { .size = 32768, .desc_gpa = RAM1_GPA, .avail_gpa = RAM1_GPA + 0x80000,
			    .used_gpa = RAM1_GPA + 0x90000 };
	cr_assert_eq(net_vhost_vring_addr(&mem, &vq, 0, &a), 0);
	cr_assert_eq(a.desc_user_addr, (uintptr_t)ram1);
	cr_assert_eq(a.used_user_addr, (uintptr_t)ram1 + 0x90000);
}

Test(net_vhost, hostile_ring_addresses_are_refused)
{
	struct vhost_vring_addr a;
	const struct virtq good = { .size = QSIZE, .desc_gpa = 0x1000, .avail_gpa = 0x2000, .used_gpa = 0x3000 };
	struct virtq vq = good;
	cr_assert_eq(net_vhost_vring_addr(&mem, &vq, 0, &a), 0);
	struct {
		const char *what;
		uint64_t desc, avail, used;
		uint16_t size;
	} bad[] = {
		{ "desc outside RAM", RAM0_SIZE + 0x1000, 0x2000, 0x3000, QSIZE },
		{ "desc in the hole below 4 GiB", 0xc0000000ull, 0x2000, 0x3000, QSIZE },
		{ "desc straddling the end of RAM", RAM0_SIZE - 0x800, 0x2000, 0x3000, QSIZE },
		{ "avail straddling the end of RAM", 0x1000, RAM0_SIZE - 6, 0x3000, QSIZE },
		{ "used straddling the end of the high region", 0x1000, 0x2000, RAM1_GPA + RAM1_SIZE - 8, QSIZE },
		{ "used past the end by its avail_event field", 0x1000, 0x2000, RAM0_SIZE - 6 - 8 * QSIZE + 2, QSIZE },
		{ "desc wrapping around", ~0ull - 0x7ff, 0x2000, 0x3000, QSIZE },
		{ "used wrapping around", 0x1000, 0x2000, ~0ull - 3, QSIZE },
		{ "misaligned desc", 0x1008, 0x2000, 0x3000, QSIZE },
		{ "misaligned avail", 0x1000, 0x2001, 0x3000, QSIZE },
		{ "misaligned used", 0x1000, 0x2000, 0x3002, QSIZE },
		{ "size 0", 0x1000, 0x2000, 0x3000, 0 },
		{ "size not a power of 2", 0x1000, 0x2000, 0x3000, 100 },
	};
	for (unsigned i = 0; i < ARRAY_SIZE(bad); i++) {
		vq = good;
		vq.desc_gpa = bad[i].desc;
		vq.avail_gpa = bad[i].avail;
		vq.used_gpa = bad[i].used;
		vq.size = bad[i].size;
		memset(&a, 0xa5, sizeof(a));
		cr_assert_eq(net_vhost_vring_addr(&mem, &vq, 0, &a), -1, "%s accepted", bad[i].what);
	}
	cr_assert_str_empty(logged());
}

/* ---- without /dev/vhost-net ---- */

Test(net_vhost, missing_device_here)
{
	int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		cr_skip_test("/dev/vhost-net opens on this host: the missing-device path is covered by "
			     "missing_device_faked");
	}
	int e = errno;
	cr_assert_not(net_vhost_available());
	unsigned fds = open_fds();
	cr_assert_eq(net_vhost_backend.start(&pair), -1);
	cr_assert_null(pair.backend_state);
	cr_assert_eq(open_fds(), fds, "nothing left open");
	const char *log = logged();
	char want[200];
	snprintf(want, sizeof(want), "minivmm: error: net0-qp1: vhost-net: cannot open /dev/vhost-net: %s\n",
		 strerror(e));
	cr_assert_str_eq(log, want);
}

Test(net_vhost, missing_device_faked)
{
	use_fake();
	open_errno = ENOENT;
	cr_assert_not(net_vhost_available());
	cr_assert_eq(net_vhost_backend.start(&pair), -1);
	cr_assert_eq(n_calls, 0);
	cr_assert_str_eq(logged(), "minivmm: error: net0-qp1: vhost-net: cannot open /dev/vhost-net: "
				   "No such file or directory\n");
	open_errno = 0;
	cr_assert(net_vhost_available());
	cr_assert_eq(n_calls, 0, "available() only opens");
	cr_assert_str_eq(net_vhost_backend.name, "vhost");
}

/* ---- the sequence, against the fake kernel ---- */

/* The device opens /dev/vhost-net before the sandbox: the backend runs on
 * that fd, and at stop hands it back reset (RESET_OWNER) instead of closing
 * it, so that the next start works without opening anything. */
Test(net_vhost, a_device_opened_fd_is_reset_not_closed)
{
	use_fake();
	int dev_fd = eventfd(0, EFD_CLOEXEC);
	cr_assert_geq(dev_fd, 0);
	pair.vhost_fd = dev_fd;
	opened_fd = dev_fd;            /* what assert_calls compares with */
	open_errno = ENOENT;           /* an open now would fail the start */
	for (int round = 0; round < 2; round++) {
		n_calls = 0;
		cr_assert_eq(net_vhost_backend.start(&pair), 0, "round %d", round);
		assert_calls(0, start_seq, START_CALLS);
		net_vhost_backend.stop(&pair);
		assert_calls(START_CALLS, stop_seq, ARRAY_SIZE(stop_seq));
		cr_assert_eq(n_calls, START_CALLS + ARRAY_SIZE(stop_seq) + 1);
		cr_assert_eq(calls[n_calls - 1].req, VHOST_RESET_OWNER, "last: %s", req_name(calls[n_calls - 1].req));
		cr_assert_eq(fcntl(dev_fd, F_GETFD), FD_CLOEXEC, "the device's fd is still open");
	}
	cr_assert_str_empty(logged());
	close(dev_fd);
}

Test(net_vhost, start_and_stop_sequence)
{
	use_fake();
	rxq.vq.last_avail_idx = 17;   /* as a worker left them */
	txq.vq.last_avail_idx = 40;
	unsigned fds = open_fds();
	cr_assert_eq(net_vhost_backend.start(&pair), 0);
	cr_assert_str_empty(logged());
	cr_assert_not_null(pair.backend_state);
	cr_assert_eq(n_calls, START_CALLS);
	assert_calls(0, start_seq, START_CALLS);
	cr_assert_eq(open_fds(), fds + 4, "the vhost fd, two error eventfds, the watcher's stop eventfd; no call eventfds of our own with a queue notifier");

	cr_assert_eq(calls[2].num, FEATURES_V1, "features 0x%llx", (unsigned long long)calls[2].num);
	cr_assert_eq(calls[3].nregions, 2);
	cr_assert_eq(calls[3].regions[0].userspace_addr, (uintptr_t)ram0);
	cr_assert_eq(calls[3].regions[1].guest_phys_addr, RAM1_GPA);
	for (unsigned v = 0; v < 2; v++) {
		const struct call *c = &calls[4 + 6 * v];
		struct virtio_queue *q = v ? &txq : &rxq;
		cr_assert_eq(c[0].num, QSIZE);
		cr_assert_eq(c[1].num, v ? 40 : 17, "base = last_avail_idx");
		cr_assert_eq(c[2].addr.desc_user_addr, (uintptr_t)ram0 + (v ? TX_RING : RX_RING));
		cr_assert_eq(c[2].addr.avail_user_addr, (uintptr_t)ram0 + (v ? TX_RING : RX_RING) + 0x1000);
		cr_assert_eq(c[2].addr.used_user_addr, (uintptr_t)ram0 + (v ? TX_RING : RX_RING) + 0x2000);
		cr_assert_eq(c[3].fd, q->kick_fd, "kick: the queue's ioeventfd");
		cr_assert_eq(c[4].fd, q->call_fd, "call: the transport's eventfd, straight to the guest");
		cr_assert(c[5].fd >= 0 && c[5].fd != q->call_fd && c[5].fd != q->kick_fd, "err: an eventfd of our own");
	}
	cr_assert_eq(calls[16].fd, 99, "RX backend: the pair's tap");
	cr_assert_eq(calls[17].fd, 99, "TX backend: the pair's tap");

	/* vhost moved on: used 5 RX and 9 TX buffers */
	fake_base[0] = 22;
	fake_base[1] = 49;
	virtq_driver_used(&rx_drv)->idx = htole16(5);
	virtq_driver_used(&tx_drv)->idx = htole16(9);
	rxq.vq.signalled_used_valid = txq.vq.signalled_used_valid = true;
	net_vhost_backend.stop(&pair);
	cr_assert_null(pair.backend_state);
	cr_assert_eq(n_calls, START_CALLS + ARRAY_SIZE(stop_seq));
	assert_calls(START_CALLS, stop_seq, ARRAY_SIZE(stop_seq));
	cr_assert_eq(calls[START_CALLS].fd, -1, "RX backend detached");
	cr_assert_eq(calls[START_CALLS + 1].fd, -1, "TX backend detached");
	cr_assert_eq(rxq.vq.last_avail_idx, 22);
	cr_assert_eq(txq.vq.last_avail_idx, 49);
	cr_assert_eq(rxq.vq.used_idx, 5);
	cr_assert_eq(txq.vq.used_idx, 9);
	cr_assert_not(rxq.vq.signalled_used_valid || txq.vq.signalled_used_valid);
	cr_assert_not(rxq.vq.broken || txq.vq.broken);
	cr_assert_eq(open_fds(), fds, "vhost fd closed");
	cr_assert_str_empty(logged());
	net_vhost_backend.stop(&pair);   /* stopping a stopped pair does nothing */
	cr_assert_eq(n_calls, START_CALLS + ARRAY_SIZE(stop_seq));

	/* a worker could take over now; here vhost again, from where it stopped */
	n_calls = 0;
	cr_assert_eq(net_vhost_backend.start(&pair), 0);
	cr_assert_eq(calls[5].num, 22);
	cr_assert_eq(calls[11].num, 49);
	net_vhost_backend.stop(&pair);
	cr_assert_eq(open_fds(), fds);
}

/* The worker backend picks up exactly where vhost stopped. */
Test(net_vhost, worker_resumes_where_vhost_stopped)
{
	use_fake();
	cr_assert_eq(net_vhost_backend.start(&pair), 0);
	/* the guest made 3 TX buffers available; vhost took 2 of them */
	for (uint16_t i = 0; i < 3; i++)
		cr_assert_eq(virtq_driver_add(&tx_drv, &(struct virtq_seg){ TX_BUF + 0x800 * i, 64, false }, 1), i);
	fake_base[1] = 2;
	virtq_driver_used(&tx_drv)->idx = htole16(2);
	net_vhost_backend.stop(&pair);
	struct virtq_chain *c = malloc(sizeof(*c));
	cr_assert_eq(virtq_pop_chain(&txq.vq, c), 1);
	cr_assert_eq(c->head, 2, "the first buffer vhost did not take");
	cr_assert_eq(virtq_pop_chain(&txq.vq, c), 0);
	cr_assert_eq(virtq_push_used(&txq.vq, 2, 0), 0);
	cr_assert_eq(virtq_driver_used_idx(&tx_drv), 3, "used entries continue after vhost's");
	cr_assert(virtq_should_notify(&txq.vq));
	free(c);
}

/* A pair's counters come from its own backend: vhost-net keeps none (its
 * state is no worker's to read), the worker counts what it moved. */
Test(net_vhost, stats_come_from_the_pairs_backend)
{
	static const struct net_pair_stats none;
	struct net_pair_stats s;

	use_fake();
	cr_assert_eq(net_vhost_backend.start(&pair), 0);
	memset(&s, 0xa5, sizeof(s));
	net_vhost_backend.stats(&pair, &s);
	cr_assert_not(s.available, "vhost-net keeps no counters");
	cr_assert_eq(memcmp(&s, &none, sizeof(s)), 0, "all zero");
	net_vhost_backend.stop(&pair);

	int tap[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, tap), 0);
	pair.tap_fd = tap[0];
	cr_assert_eq(net_worker_backend.start(&pair), 0);
	/* one 60-byte frame behind a zero (no offload) 12-byte header */
	virtq_driver_submit(&tx_drv, &(struct virtq_seg){ TX_BUF, 12 + 60, false }, 1);
	for (int i = 0; i < 200; i++) {
		net_worker_backend.stats(&pair, &s);
		if (s.tx_packets)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
	cr_assert(s.available);
	cr_assert_eq(s.tx_packets, 1);
	cr_assert_eq(s.tx_bytes, 60, "without the header");
	cr_assert_eq(s.tx_dropped + s.rx_packets + s.rx_dropped, 0);
	uint8_t frame[128];
	cr_assert_eq(recv(tap[1], frame, sizeof(frame), 0), 12 + 60, "the frame reached the tap");
	net_worker_backend.stop(&pair);
	memset(&s, 0xa5, sizeof(s));
	net_worker_backend.stats(&pair, &s);
	cr_assert_eq(memcmp(&s, &none, sizeof(s)), 0, "a stopped pair: nothing");
	close(tap[0]);
	close(tap[1]);
}

/* Transports without a queue notifier (virtio-mmio): vhost signals eventfds
 * of the backend's, and a thread per pair turns them into irq->queue(). */
Test(net_vhost, interrupts_are_forwarded_without_a_queue_notifier)
{
	use_fake();
	pair.irq = &irq_mmio_like;
	unsigned fds = open_fds();
	cr_assert_eq(net_vhost_backend.start(&pair), 0);
	cr_assert_str_empty(logged());
	int rx_call = calls[8].fd, tx_call = calls[14].fd;
	cr_assert(rx_call >= 0 && tx_call >= 0 && rx_call != tx_call);
	cr_assert(rx_call != rxq.call_fd && tx_call != txq.call_fd, "eventfds of the backend's own");
	cr_assert_eq(open_fds(), fds + 6, "vhost fd, two call and two error eventfds, the watcher's stop eventfd");

	uint64_t one = 1;
	cr_assert_eq(write(tx_call, &one, 8), 8);   /* what vhost does */
	wait_count(&irq_log.queue_calls[TX_QUEUE], 1, "TX interrupts");
	cr_assert_eq(atomic_load(&irq_log.queue_calls[TX_QUEUE]), 1, "TX signal forwarded to queue %d", TX_QUEUE);
	cr_assert_eq(atomic_load(&irq_log.queue_calls[RX_QUEUE]), 0);
	cr_assert_eq(write(rx_call, &one, 8), 8);
	wait_count(&irq_log.queue_calls[RX_QUEUE], 1, "RX interrupts");
	cr_assert_eq(atomic_load(&irq_log.queue_calls[RX_QUEUE]), 1);

	/* a signal vhost gives just before it stops still reaches the guest */
	cr_assert_eq(write(rx_call, &one, 8), 8);
	net_vhost_backend.stop(&pair);
	cr_assert_geq(atomic_load(&irq_log.queue_calls[RX_QUEUE]), 2);
	cr_assert_eq(open_fds(), fds, "everything closed, the forwarder joined");
	cr_assert_str_empty(logged());
}

/* vhost met a malformed ring and signalled the vq's error eventfd: one
 * line naming the pair and the queue, the device marked DEVICE_NEEDS_RESET
 * once (vhost signals again at each kick; the guest must reset). */
Test(net_vhost, a_malformed_ring_vhost_reports_needs_reset)
{
	const struct virtio_irq *irqs[] = { &irq_pci_like, &irq_mmio_like };
	/* A tap that is still there (the watcher looks at it first). */
	int tap[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tap), 0);
	pair.tap_fd = tap[0];
	for (unsigned m = 0; m < 2; m++) {
		use_fake();
		pair.irq = irqs[m];
		atomic_store(&irq_log.needs_reset_calls, 0);
		unsigned fds = open_fds();
		cr_assert_eq(net_vhost_backend.start(&pair), 0);
		int tx_err = calls[15].fd;
		cr_assert_eq(calls[15].req, VHOST_SET_VRING_ERR);
		cr_assert_eq(calls[15].index, 1);
		uint64_t one = 1;
		for (int k = 0; k < 3; k++) {
			cr_assert_eq(write(tx_err, &one, 8), 8);   /* what vhost's vq_err() does */
			usleep(20000);
		}
		wait_count(&irq_log.needs_reset_calls, 1, "needs_reset calls");
		cr_assert_eq(atomic_load(&irq_log.needs_reset_calls), 1, "DEVICE_NEEDS_RESET once");
		net_vhost_backend.stop(&pair);
		const char *log = logged();
		cr_assert_eq(lines(log), 1, "one line: %s", log);
		cr_assert(strstr(log, "minivmm: warning: net0-qp1: vhost-net stopped the TX queue 3: the guest's ring is "
				      "malformed"),
			  "%s", log);
		cr_assert_eq(open_fds(), fds, "everything closed, the watcher joined");
	}
	close(tap[0]);
	close(tap[1]);
}

/* A deleted tap fails vhost's batched send, which vhost reports on the same
 * error eventfd: that goes to the device's tap_gone (link down, its one line),
 * never as a malformed ring, and the device is not marked for reset. */
Test(net_vhost, a_deleted_tap_is_not_a_malformed_ring)
{
	int tap[2];
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, tap), 0);
	close(tap[1]);   /* the tap's fd now polls POLLHUP, as a deleted tap's polls POLLERR */
	use_fake();
	pair.tap_fd = tap[0];
	pair.tap_gone = count_tap_gone;
	atomic_store(&irq_log.needs_reset_calls, 0);
	atomic_store(&tap_gone_calls, 0);
	cr_assert_eq(net_vhost_backend.start(&pair), 0);
	cr_assert_eq(calls[15].req, VHOST_SET_VRING_ERR);
	uint64_t one = 1;
	cr_assert_eq(write(calls[15].fd, &one, 8), 8);
	wait_count(&tap_gone_calls, 1, "tap_gone calls");
	usleep(20000);
	net_vhost_backend.stop(&pair);
	pair.tap_gone = NULL;
	close(tap[0]);
	cr_assert_eq(atomic_load(&tap_gone_calls), 1, "the device told once, with EBADFD");
	cr_assert_eq(atomic_load(&irq_log.needs_reset_calls), 0, "not a reason to reset");
	cr_assert_eq(lines(logged()), 0, "the device logs the gone tap, the backend nothing: %s", logged());
}

/* Every ioctl of start() failing in turn: -1, one line naming the ioctl and
 * the pair, nothing left open. */
Test(net_vhost, each_failing_ioctl_is_reported_and_cleaned_up)
{
	const struct virtio_irq *irqs[] = { &irq_pci_like, &irq_mmio_like };
	for (unsigned m = 0; m < 2; m++) {
		pair.irq = irqs[m];
		for (unsigned k = 0; k < START_CALLS; k++) {
			use_fake();
			fail_at = (int)k;
			fake_base[0] = 3;   /* where vhost stopped, if it had started */
			rxq.vq.last_avail_idx = 0;
			unsigned fds = open_fds();
			cr_assert_eq(net_vhost_backend.start(&pair), -1, "start succeeded with ioctl %u failing", k);
			cr_assert_null(pair.backend_state);
			cr_assert_eq(open_fds(), fds, "ioctl %u failing leaks fds", k);
			const char *log = logged();
			cr_assert_eq(lines(log), 1, "ioctl %u failing logged: %s", k, log);
			char want[160];
			if (start_seq[k].vq >= 0)
				snprintf(want, sizeof(want), "minivmm: error: net0-qp1: vhost-net: %s (vq %d, %s): %s\n",
					 req_name(start_seq[k].req), start_seq[k].vq, start_seq[k].vq ? "TX" : "RX",
					 strerror(EINVAL));
			else
				snprintf(want, sizeof(want), "minivmm: error: net0-qp1: vhost-net: %s: %s\n",
					 req_name(start_seq[k].req), strerror(EINVAL));
			cr_assert_str_eq(log, want);
			if (k == START_CALLS - 1) {
				/* RX was attached: detached again and its position read back */
				assert_calls(START_CALLS, (const struct step[]){
					{ VHOST_NET_SET_BACKEND, 0 }, { VHOST_GET_VRING_BASE, 0 }, { VHOST_GET_VRING_BASE, 1 } }, 3);
				cr_assert_eq(calls[START_CALLS].fd, -1);
				cr_assert_eq(rxq.vq.last_avail_idx, 3);
				cr_assert_eq(n_calls, START_CALLS + 3);
			} else {
				cr_assert_eq(n_calls, k + 1, "nothing after the failing ioctl %u", k);
				cr_assert_eq(rxq.vq.last_avail_idx, 0);
			}
		}
	}
}

Test(net_vhost, vhost_without_a_negotiated_feature_is_refused)
{
	use_fake();
	fake_offered = VHOST_OFFERS & ~FBIT(VIRTIO_NET_F_MRG_RXBUF);
	unsigned fds = open_fds();
	cr_assert_eq(net_vhost_backend.start(&pair), -1);
	cr_assert_eq(open_fds(), fds);
	cr_assert_eq(n_calls, 2, "stops after VHOST_GET_FEATURES");
	char want[160];
	snprintf(want, sizeof(want),
		 "minivmm: error: net0-qp1: vhost-net: cannot serve the negotiated features 0x8000 (vhost offers 0x%llx)\n",
		 (unsigned long long)fake_offered);
	cr_assert_str_eq(logged(), want);
}

Test(net_vhost, tap_header_must_match_what_vhost_expects)
{
	use_fake();
	pair.vnet_hdr_len = 10;
	cr_assert_eq(net_vhost_backend.start(&pair), -1);
	cr_assert_eq(n_calls, 2);
	cr_assert_str_eq(logged(),
			 "minivmm: error: net0-qp1: vhost-net: the tap's virtio-net header is 10 bytes, vhost expects 12\n");
}

Test(net_vhost, rings_outside_ram_are_never_given_to_vhost)
{
	use_fake();
	txq.vq.used_gpa = RAM0_SIZE - 8;   /* as if virtq_init had been bypassed */
	unsigned fds = open_fds();
	cr_assert_eq(net_vhost_backend.start(&pair), -1);
	cr_assert_eq(open_fds(), fds);
	cr_assert_eq(n_calls, 4 + 6, "RX set up, TX refused before any TX ioctl");
	cr_assert_str_eq(logged(), "minivmm: error: net0-qp1: vhost-net: TX queue 3 (size 256): rings not in guest RAM\n");
}

Test(net_vhost, queues_not_ready_are_refused)
{
	use_fake();
	txq.ready = false;
	cr_assert_eq(net_vhost_backend.start(&pair), -1);
	cr_assert_eq(n_calls, 0);
	cr_assert_str_eq(logged(), "minivmm: error: net0-qp1: vhost-net: both queues of the pair must be ready\n");
}

/* If vhost cannot say where it stopped, restarting from a guess would hand
 * buffers out twice: the queue is marked broken (device needs reset). */
Test(net_vhost, lost_ring_position_breaks_the_queue)
{
	use_fake();
	cr_assert_eq(net_vhost_backend.start(&pair), 0);
	fail_at = (int)START_CALLS + 3;   /* GET_VRING_BASE of TX */
	net_vhost_backend.stop(&pair);
	cr_assert_null(pair.backend_state);
	cr_assert_not(rxq.vq.broken);
	cr_assert(txq.vq.broken);
	const char *log = logged();
	cr_assert_eq(lines(log), 2, "%s", log);
	cr_assert(strstr(log, "VHOST_GET_VRING_BASE (vq 1, TX): Invalid argument\n"), "%s", log);
	cr_assert(strstr(log, "net0-qp1: vhost-net: TX queue position lost; device needs reset\n"), "%s", log);
}

/* ---- the real kernel ---- */

struct real_env {
	int tap, pkt, ifindex;
	char ifname[IFNAMSIZ];
};

/* A tap with IFF_VNET_HDR (12-byte header), up, and a packet socket on it.
 * Returns NULL with *why set when this host cannot. */
static struct real_env *real_env_open(const char **why)
{
	static struct real_env e;
	static char reason[160];
	e.tap = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (e.tap < 0) {
		snprintf(reason, sizeof(reason), "cannot open /dev/net/tun: %s", strerror(errno));
		*why = reason;
		return NULL;
	}
	struct ifreq ifr = { .ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR };
	strcpy(ifr.ifr_name, "mvvhost%d");
	int hdr = 12;
	if (ioctl(e.tap, TUNSETIFF, &ifr) || ioctl(e.tap, TUNSETVNETHDRSZ, &hdr)) {
		snprintf(reason, sizeof(reason), "cannot create a tap (needs CAP_NET_ADMIN): %s", strerror(errno));
		*why = reason;
		close(e.tap);
		return NULL;
	}
	strcpy(e.ifname, ifr.ifr_name);
	char path[96];
	snprintf(path, sizeof(path), "/proc/sys/net/ipv6/conf/%s/disable_ipv6", e.ifname);
	FILE *f = fopen(path, "w");   /* less chatter on the tap; fine if it fails */
	if (f) {
		fputs("1\n", f);
		fclose(f);
	}
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s, 0);
	cr_assert_eq(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(s, SIOCSIFFLAGS, &ifr), 0, "bring %s up: %s", e.ifname, strerror(errno));
	close(s);
	e.ifindex = (int)if_nametoindex(e.ifname);
	e.pkt = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_ALL));
	cr_assert_geq(e.pkt, 0, "packet socket: %s", strerror(errno));
	struct sockaddr_ll sll = { .sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL), .sll_ifindex = e.ifindex };
	cr_assert_eq(bind(e.pkt, (struct sockaddr *)&sll, sizeof(sll)), 0);
	return &e;
}

#define FRAME_LEN 60
static void make_frame(uint8_t *f, const char *payload)
{
	static const uint8_t dst[6] = { 0x02, 0, 0, 0, 0, 0x02 }, src[6] = { 0x02, 0, 0, 0, 0, 0x01 };
	memset(f, 0, FRAME_LEN);
	memcpy(f, dst, 6);
	memcpy(f + 6, src, 6);
	f[12] = 0x88;   /* local experimental ethertype */
	f[13] = 0xb5;
	memcpy(f + 14, payload, strlen(payload));
}

static bool find_payload(const uint8_t *buf, size_t len, const char *payload)
{
	return len >= 14 + strlen(payload) && !memcmp(buf + 14, payload, strlen(payload));
}

static bool wait_signalled(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	if (poll(&p, 1, TEST_TIMEOUT_MS) != 1)
		return false;
	uint64_t v;
	return read(fd, &v, 8) == 8;
}

/* The guest sends one frame: it must come out of the tap. */
static void real_tx(struct real_env *e, const char *payload, bool pci_like)
{
	uint64_t b = virtq_driver_alloc(&tx_drv, 0x800);
	uint8_t *buf = guest_ptr(&mem, b);
	memset(buf, 0, 12);   /* virtio_net_hdr_v1: no offload */
	make_frame(buf + 12, payload);
	unsigned irqs = atomic_load(&irq_log.queue_calls[TX_QUEUE]);
	uint16_t head = virtq_driver_submit(&tx_drv, &(struct virtq_seg){ b, 12 + FRAME_LEN, false }, 1);
	uint8_t pkt[2048];
	bool seen = false;
	for (uint64_t t0 = now_ms(); !seen && now_ms() - t0 < TEST_TIMEOUT_MS;) {
		struct pollfd p = { .fd = e->pkt, .events = POLLIN };
		if (poll(&p, 1, 100) != 1)
			continue;
		ssize_t n = recv(e->pkt, pkt, sizeof(pkt), 0);
		seen = n > 0 && find_payload(pkt, (size_t)n, payload);
	}
	cr_assert(seen, "the guest's frame \"%s\" never left %s", payload, e->ifname);
	cr_assert_eq(virtq_driver_wait_used(&tx_drv).id, head, "the TX buffer returned");
	if (pci_like)
		cr_assert(wait_signalled(txq.call_fd), "no TX interrupt on the call eventfd");
	else
		for (uint64_t t0 = now_ms(); atomic_load(&irq_log.queue_calls[TX_QUEUE]) == irqs;) {
			cr_assert_lt(now_ms() - t0, TEST_TIMEOUT_MS, "no TX interrupt forwarded");
			usleep(1000);
		}
}

/* The host sends one frame into the tap: it must land in an RX buffer. */
static void real_rx(struct real_env *e, const char *payload, bool mrg)
{
	uint16_t before = virtq_driver_used_idx(&rx_drv);
	uint8_t frame[FRAME_LEN];
	make_frame(frame, payload);
	struct sockaddr_ll to = { .sll_family = AF_PACKET, .sll_ifindex = e->ifindex, .sll_halen = 6 };
	memcpy(to.sll_addr, frame, 6);
	cr_assert_eq(sendto(e->pkt, frame, sizeof(frame), 0, (struct sockaddr *)&to, sizeof(to)), FRAME_LEN,
		     "send into %s: %s", e->ifname, strerror(errno));
	bool seen = false;
	uint16_t seen_at = before;
	for (uint64_t t0 = now_ms(); !seen && now_ms() - t0 < TEST_TIMEOUT_MS;) {
		if (seen_at == virtq_driver_used_idx(&rx_drv)) {
			usleep(1000);
			continue;
		}
		struct virtq_used_elem el = virtq_driver_used(&rx_drv)->ring[seen_at % QSIZE];
		uint32_t id = le32toh(el.id), len = le32toh(el.len);
		cr_assert_lt(id, QSIZE);
		uint8_t *buf = guest_mem_ptr(&mem, RX_BUF + 0x800 * id, 0x800);
		if (len == 12 + FRAME_LEN && find_payload(buf + 12, len - 12, payload)) {
			seen = true;
			if (mrg)
				cr_assert_eq(buf[10] | buf[11] << 8, 1, "num_buffers");
		}
		seen_at++;
	}
	cr_assert(seen, "the host's frame \"%s\" never reached the guest", payload);
}

static void real_pair(bool pci_like)
{
	int fd = open("/dev/vhost-net", O_RDWR | O_CLOEXEC);
	if (fd < 0)
		cr_skip_test("cannot open /dev/vhost-net (%s): the real start/stop runs inside the nested rig or on "
			     "a host with vhost-net",
			     strerror(errno));
	close(fd);
	const char *why = NULL;
	struct real_env *e = real_env_open(&why);
	if (!e)
		cr_skip_test("%s", why);
	cr_assert(net_vhost_available());

	pair.tap_fd = e->tap;
	pair.irq = pci_like ? &irq_pci_like : &irq_mmio_like;
	/* pci-like: MRG_RXBUF, no EVENT_IDX; mmio-like: EVENT_IDX, no MRG_RXBUF */
	pair.features = pci_like ? FBIT(VIRTIO_F_VERSION_1) | FBIT(VIRTIO_NET_F_MRG_RXBUF)
				 : FBIT(VIRTIO_F_VERSION_1) | FBIT(VIRTIO_RING_F_EVENT_IDX);
	init_queues(!pci_like);
	/* RX chain i is buffer i: real_rx() finds a frame by the used id */
	for (uint16_t i = 0; i < 16; i++)
		cr_assert_eq(virtq_driver_add(&rx_drv, &(struct virtq_seg){ RX_BUF + 0x800 * i, 0x800, true }, 1), i);
	virtq_driver_set_buffers(&tx_drv, TX_BUF, 0x800 * QSIZE);
	unsigned fds = open_fds();

	cr_assert_eq(net_vhost_backend.start(&pair), 0, "start: %s", logged());
	virtq_driver_kick(&rx_drv);
	real_tx(e, "minivmm vhost tx 1", pci_like);
	real_rx(e, "minivmm vhost rx 1", pci_like);
	net_vhost_backend.stop(&pair);
	cr_assert_eq(open_fds(), fds);
	cr_assert_eq(txq.vq.last_avail_idx, 1);
	cr_assert_eq(txq.vq.used_idx, 1);
	cr_assert_eq(rxq.vq.used_idx, virtq_driver_used_idx(&rx_drv));
	cr_assert_eq(rxq.vq.last_avail_idx, rxq.vq.used_idx, "every RX buffer vhost took is used");
	cr_assert_not(rxq.vq.broken || txq.vq.broken);

	/* restarted from where it stopped */
	cr_assert_eq(net_vhost_backend.start(&pair), 0, "restart: %s", logged());
	real_tx(e, "minivmm vhost tx 2", pci_like);
	real_rx(e, "minivmm vhost rx 2", pci_like);
	net_vhost_backend.stop(&pair);
	cr_assert_eq(txq.vq.last_avail_idx, 2);
	cr_assert_eq(open_fds(), fds);
	cr_assert_str_empty(logged());
	close(e->pkt);
	close(e->tap);
}

Test(net_vhost, real_pair_with_queue_notifier, .timeout = 60)
{
	real_pair(true);
}

Test(net_vhost, real_pair_with_forwarded_interrupts, .timeout = 60)
{
	real_pair(false);
}
