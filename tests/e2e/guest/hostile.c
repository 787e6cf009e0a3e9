/* A hostile virtio driver, run as root in the guest (tests/e2e/hostile_guest.sh,
 * guest script hostile.sh). It drives minivmm's virtio devices by hand, with
 * no kernel driver bound to them, and feeds them what a malicious guest would:
 * looping and out-of-range chains, nested indirect tables, zero and huge
 * lengths, buffers outside guest RAM, an avail index jumping past the ring,
 * absurd queue sizes and addresses, notifies of queues that do not exist,
 * config-space accesses out of range.
 *
 * What it checks after each case, as the virtio 1.x spec asks (2.1.2): a
 * device that cannot go on sets DEVICE_NEEDS_RESET (0x40) and, since
 * DRIVER_OK is set, sends a configuration change notification (ISR bit 1 on
 * both transports; we poll, no interrupt is enabled); then a reset brings the
 * device back, and a normal request (a disk read, a packet sent) completes.
 * The VMM side (a log line naming the device, exit 0, no sanitizer report) is
 * checked by the host script from minivmm's output.
 *
 * virtio-vsock (device id 19: queues rx 0, tx 1, event 2; the 44-byte
 * little-endian packet header of spec 5.10.6; the guest's cid at config
 * offset 0) gets the ring cases on its TX queue, and on its RX queue (it
 * pops an RX chain only to send something: a packet of no connection on TX
 * makes it owe an RST), then the packet cases (q=pkt): packets of no
 * connection, headers that are short, lie about their length, or carry a
 * wrong type, op or cid, RX buffers it cannot use, absurd credit, a flood
 * of 2000 packets while the guest gives no RX buffer. None of those may
 * cost a reset: each ends with the device still answering (a connection
 * request to a host port nobody listens on gets its RST). A normal request
 * for the recovery check is such a connection request, and its RST.
 * With -H the host side of hostile_guest.sh is there: an echo server at
 * host port 5000 (VS_ECHO_PORT) for the cases that need an open connection
 * (absurd credit on one, a credit overrun on one while another goes on),
 * and host clients of the vsock socket during the host_clients case (see
 * vs_host_clients).
 *
 * Devices: virtio-mmio windows are found at 0xd0000000 + i * 0x1000 through
 * /dev/mem (arch/x86/layout.h), virtio-pci ones under /sys/bus/pci/devices,
 * their BAR mapped through the resourceN file (or /dev/mem at the BAR's
 * address when the kernel refuses that). Queue memory is locked
 * anonymous pages, one page per ring part, their physical addresses read from
 * /proc/self/pagemap.
 *
 * Output: progress lines while it runs ("HOSTILE-RUN ..."), then, once every
 * case is done (so that no VMM log line can land in the middle of one), one
 * line per case:
 *   HOSTILE-CASE tr=mmio dev=blk idx=0 q=req case=loop expect=reset got=reset status=0x4f isr=0x2
 *     recovered=yes secs=0.05 PASS log=descriptor chain loops
 * (one line; q is req for a disk, tx or rx for a NIC or a vsock, pkt for
 * the vsock packet cases; log= is what minivmm's warning says, when the
 * case causes one) and "HOSTILE-SUMMARY cases=N passed=P failed=F". Exit
 * status 0 when all pass. idx is the device's position among the devices
 * of its kind and transport (the host script maps it to minivmm's name,
 * e.g. blk1). Usage: hostile [-v] [-H] [CASE]. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u

/* virtio-mmio registers (spec 4.2.2) */
#define M_MAGIC 0x000
#define M_DEVICE_ID 0x008
#define M_DEV_FEAT 0x010
#define M_DEV_FEAT_SEL 0x014
#define M_DRV_FEAT 0x020
#define M_DRV_FEAT_SEL 0x024
#define M_QUEUE_SEL 0x030
#define M_QUEUE_NUM_MAX 0x034
#define M_QUEUE_NUM 0x038
#define M_QUEUE_READY 0x044
#define M_QUEUE_NOTIFY 0x050
#define M_INT_STATUS 0x060
#define M_INT_ACK 0x064
#define M_STATUS 0x070
#define M_DESC_LO 0x080
#define M_DESC_HI 0x084
#define M_AVAIL_LO 0x090
#define M_AVAIL_HI 0x094
#define M_USED_LO 0x0a0
#define M_USED_HI 0x0a4
#define M_CONFIG 0x100
#define MMIO_BASE 0xd0000000ull
#define MMIO_SLOTS 11

/* virtio-pci common configuration (spec 4.1.4.3) */
#define C_DFSELECT 0x00
#define C_DF 0x04
#define C_GFSELECT 0x08
#define C_GF 0x0c
#define C_STATUS 0x14
#define C_Q_SELECT 0x16
#define C_Q_SIZE 0x18
#define C_Q_ENABLE 0x1c
#define C_Q_NOFF 0x1e
#define C_Q_DESC 0x20
#define C_Q_AVAIL 0x28
#define C_Q_USED 0x30

#define S_ACK 1
#define S_DRIVER 2
#define S_DRIVER_OK 4
#define S_FEATURES_OK 8
#define S_NEEDS_RESET 0x40

#define F_INDIRECT (1ull << 28)
#define F_VERSION_1 (1ull << 32)

#define D_NEXT 1
#define D_WRITE 2
#define D_INDIRECT 4

#define ID_NET 1
#define ID_BLK 2
#define ID_VSOCK 19

#define QSIZE 16u

struct dev {
	bool pci;
	unsigned id, idx;         /* device id; position among its kind on its transport */
	volatile uint8_t *bar;    /* mmio window, or the pci BAR */
	size_t bar_len;
	uint32_t common, isr, devcfg, notify, notify_mult;   /* pci: offsets in the BAR */
	uint16_t qmax;
	char where[300];
};

struct page {
	uint8_t *va;
	uint64_t pa;
};

static struct page desc_pg, avail_pg, used_pg, buf_pg[4];
/* virtio-vsock: its RX buffers, a page each (Linux posts 4 KiB ones too),
 * and a page whose bytes are the payload of long packets. */
static struct page vs_rx_pg[QSIZE], vs_data_pg;
static uint64_t ram_end;   /* end of the highest System RAM range */
static int verbose;
static bool vs_host;       /* -H: hostile_guest.sh's host side is there */

static const char *kind_name(unsigned id)
{
	return id == ID_BLK ? "blk" : id == ID_NET ? "net" : "vsock";
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	printf("HOSTILE-FATAL ");
	vprintf(fmt, ap);
	printf("\n");
	va_end(ap);
	exit(2);
}

/* ---- register access (every access one load or store of its width) ---- */

static uint32_t rd(const struct dev *d, uint32_t off, unsigned w)
{
	volatile uint8_t *p = d->bar + off;
	switch (w) {
	case 1: return *p;
	case 2: return *(volatile uint16_t *)p;
	default: return *(volatile uint32_t *)p;
	}
}

static void wr(const struct dev *d, uint32_t off, unsigned w, uint32_t v)
{
	volatile uint8_t *p = d->bar + off;
	switch (w) {
	case 1: *p = (uint8_t)v; break;
	case 2: *(volatile uint16_t *)p = (uint16_t)v; break;
	default: *(volatile uint32_t *)p = v; break;
	}
	__sync_synchronize();
}

static uint8_t status_get(const struct dev *d)
{
	return d->pci ? rd(d, d->common + C_STATUS, 1) : rd(d, M_STATUS, 4);
}

static void status_set(const struct dev *d, uint8_t s)
{
	if (d->pci)
		wr(d, d->common + C_STATUS, 1, s);
	else
		wr(d, M_STATUS, 4, s);
}

/* Reads and clears the interrupt status (pci: the read clears it). */
static uint32_t isr_take(const struct dev *d)
{
	if (d->pci)
		return rd(d, d->isr, 1);
	uint32_t v = rd(d, M_INT_STATUS, 4);
	wr(d, M_INT_ACK, 4, v);
	return v;
}

static uint64_t features_get(const struct dev *d)
{
	uint64_t f = 0;
	for (unsigned i = 0; i < 2; i++) {
		if (d->pci) {
			wr(d, d->common + C_DFSELECT, 4, i);
			f |= (uint64_t)rd(d, d->common + C_DF, 4) << (32 * i);
		} else {
			wr(d, M_DEV_FEAT_SEL, 4, i);
			f |= (uint64_t)rd(d, M_DEV_FEAT, 4) << (32 * i);
		}
	}
	return f;
}

static void features_set(const struct dev *d, uint64_t f)
{
	for (unsigned i = 0; i < 2; i++) {
		if (d->pci) {
			wr(d, d->common + C_GFSELECT, 4, i);
			wr(d, d->common + C_GF, 4, (uint32_t)(f >> (32 * i)));
		} else {
			wr(d, M_DRV_FEAT_SEL, 4, i);
			wr(d, M_DRV_FEAT, 4, (uint32_t)(f >> (32 * i)));
		}
	}
}

static void queue_select(const struct dev *d, unsigned q)
{
	if (d->pci)
		wr(d, d->common + C_Q_SELECT, 2, q);
	else
		wr(d, M_QUEUE_SEL, 4, q);
}

static void addr_set(const struct dev *d, uint32_t pci_off, uint32_t mmio_lo, uint32_t mmio_hi, uint64_t a)
{
	if (d->pci) {
		wr(d, d->common + pci_off, 4, (uint32_t)a);
		wr(d, d->common + pci_off + 4, 4, (uint32_t)(a >> 32));
	} else {
		wr(d, mmio_lo, 4, (uint32_t)a);
		wr(d, mmio_hi, 4, (uint32_t)(a >> 32));
	}
}

static void queue_setup(const struct dev *d, unsigned q, uint32_t size, uint64_t desc, uint64_t avail,
			uint64_t used)
{
	queue_select(d, q);
	if (d->pci)
		wr(d, d->common + C_Q_SIZE, 2, size);
	else
		wr(d, M_QUEUE_NUM, 4, size);
	addr_set(d, C_Q_DESC, M_DESC_LO, M_DESC_HI, desc);
	addr_set(d, C_Q_AVAIL, M_AVAIL_LO, M_AVAIL_HI, avail);
	addr_set(d, C_Q_USED, M_USED_LO, M_USED_HI, used);
	if (d->pci)
		wr(d, d->common + C_Q_ENABLE, 2, 1);
	else
		wr(d, M_QUEUE_READY, 4, 1);
}

static void notify(const struct dev *d, unsigned q)
{
	if (d->pci)
		wr(d, d->notify + q * d->notify_mult, 2, q);
	else
		wr(d, M_QUEUE_NOTIFY, 4, q);
}

static uint32_t config_rd(const struct dev *d, uint32_t off, unsigned w)
{
	return rd(d, (d->pci ? d->devcfg : M_CONFIG) + off, w);
}

/* ---- guest-physical pages ---- */

static uint64_t phys_of(void *va)
{
	static int fd = -1;
	if (fd < 0 && (fd = open("/proc/self/pagemap", O_RDONLY)) < 0)
		die("open /proc/self/pagemap: %s", strerror(errno));
	uint64_t e;
	if (pread(fd, &e, 8, (off_t)((uintptr_t)va / PAGE * 8)) != 8)
		die("read /proc/self/pagemap: %s", strerror(errno));
	if (!(e & (1ull << 63)) || !(e & ((1ull << 55) - 1)))
		die("page %p not present or its frame hidden (pagemap entry 0x%" PRIx64 ")", va, e);
	return (e & ((1ull << 55) - 1)) * PAGE;
}

static struct page page_alloc(void)
{
	struct page p;
	p.va = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (p.va == MAP_FAILED)
		die("mmap: %s", strerror(errno));
	if (mlock(p.va, PAGE))
		die("mlock: %s", strerror(errno));
	memset(p.va, 0, PAGE);
	p.pa = phys_of(p.va);
	return p;
}

static uint64_t ram_end_read(void)
{
	FILE *f = fopen("/proc/iomem", "r");
	if (!f)
		die("/proc/iomem: %s", strerror(errno));
	char line[256];
	uint64_t end = 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a, b;
		if (line[0] != ' ' && strstr(line, ": System RAM") && sscanf(line, "%llx-%llx", &a, &b) == 2 &&
		    b + 1 > end)
			end = b + 1;
	}
	fclose(f);
	if (!end)
		die("no System RAM in /proc/iomem");
	return end;
}

/* ---- finding the devices ---- */

static int n_devs;
static struct dev devs[16];

static void find_mmio(void)
{
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0)
		die("/dev/mem: %s", strerror(errno));
	unsigned per_kind[ID_VSOCK + 1] = { 0 };
	for (unsigned i = 0; i < MMIO_SLOTS && n_devs < 16; i++) {
		uint64_t base = MMIO_BASE + i * PAGE;
		void *p = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)base);
		if (p == MAP_FAILED) {
			/* STRICT_DEVMEM refuses a window a driver still holds */
			if (verbose)
				printf("HOSTILE-RUN mmio 0x%llx: mmap: %s\n", (unsigned long long)base, strerror(errno));
			continue;
		}
		struct dev d = { .bar = p, .bar_len = PAGE };
		uint32_t id = rd(&d, M_DEVICE_ID, 4);
		if (rd(&d, M_MAGIC, 4) != 0x74726976 || (id != ID_NET && id != ID_BLK && id != ID_VSOCK)) {
			munmap(p, PAGE);
			continue;
		}
		d.id = id;
		d.idx = per_kind[id]++;
		wr(&d, M_QUEUE_SEL, 4, 0);
		d.qmax = (uint16_t)rd(&d, M_QUEUE_NUM_MAX, 4);
		snprintf(d.where, sizeof(d.where), "mmio@0x%llx", (unsigned long long)base);
		devs[n_devs++] = d;
	}
	close(fd);
}

static unsigned long read_hex(const char *dir, const char *file)
{
	char path[512], buf[64] = "";
	snprintf(path, sizeof(path), "%s/%s", dir, file);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = 0;
	fclose(f);
	return strtoul(buf, NULL, 16);
}

/* Reads the vendor capabilities out of config space to find where each
 * structure lives in which BAR. Expects them all in one BAR. */
static bool pci_setup(struct dev *d, const char *dir)
{
	char path[512];
	uint8_t cfg[256];
	snprintf(path, sizeof(path), "%s/config", dir);
	int fd = open(path, O_RDWR);
	if (fd < 0 || pread(fd, cfg, sizeof(cfg), 0) != sizeof(cfg))
		die("%s: %s", path, strerror(errno));
	/* memory decoding and bus mastering on: the unbound driver may have cleared them */
	uint16_t cmd = (uint16_t)(cfg[4] | cfg[5] << 8) | 0x6;
	if (pwrite(fd, &cmd, 2, 4) != 2)
		die("%s: enable memory: %s", path, strerror(errno));
	close(fd);

	int bar = -1;
	bool have[5] = { false };
	for (unsigned p = cfg[0x34] & ~3u, n = 0; p && p < 256 - 16 && n < 48; p = cfg[p + 1] & ~3u, n++) {
		if (cfg[p] != 0x09)   /* vendor-specific */
			continue;
		unsigned type = cfg[p + 3];
		uint32_t off;
		memcpy(&off, cfg + p + 8, 4);
		if (type < 1 || type > 4)
			continue;
		if (bar >= 0 && cfg[p + 4] != bar)
			die("%s: virtio structures in two BARs", dir);
		bar = cfg[p + 4];
		have[type] = true;
		if (type == 1)
			d->common = off;
		else if (type == 2) {
			d->notify = off;
			memcpy(&d->notify_mult, cfg + p + 16, 4);
		} else if (type == 3)
			d->isr = off;
		else
			d->devcfg = off;
	}
	if (bar < 0 || !have[1] || !have[2] || !have[3])
		die("%s: virtio capabilities missing", dir);
	snprintf(path, sizeof(path), "%s/resource%d", dir, bar);
	fd = open(path, O_RDWR | O_SYNC);
	if (fd < 0)
		die("%s: %s", path, strerror(errno));
	off_t len = lseek(fd, 0, SEEK_END);
	void *p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	int e = errno;
	close(fd);
	if (p == MAP_FAILED) {
		/* Debian's 6.1 refused this with EINVAL in the rig even with
		 * iomem=relaxed; /dev/mem at the BAR's address works. */
		unsigned long long start = 0, end = 0, flags = 0;
		snprintf(path, sizeof(path), "%s/resource", dir);
		FILE *f = fopen(path, "r");
		for (int i = 0; f && i <= bar; i++)
			if (fscanf(f, "%llx %llx %llx", &start, &end, &flags) != 3)
				start = end = 0;
		if (f)
			fclose(f);
		if (!start || end <= start)
			die("%s/resource%d: mmap: %s, and no address in %s", dir, bar, strerror(e), path);
		len = (off_t)(end - start + 1);
		fd = open("/dev/mem", O_RDWR | O_SYNC);
		if (fd < 0)
			die("/dev/mem: %s", strerror(errno));
		p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, (off_t)start);
		if (p == MAP_FAILED)
			die("%s/resource%d: mmap: %s; /dev/mem at 0x%llx: %s", dir, bar, strerror(e), start,
			    strerror(errno));
		close(fd);
		if (verbose)
			printf("HOSTILE-RUN %s: resource%d mmap: %s; mapped /dev/mem at 0x%llx instead\n", dir, bar,
			       strerror(e), start);
	}
	d->bar = p;
	d->bar_len = (size_t)len;
	wr(d, d->common + C_Q_SELECT, 2, 0);
	d->qmax = (uint16_t)rd(d, d->common + C_Q_SIZE, 2);
	return true;
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name);
}

static void find_pci(void)
{
	struct dirent **ents;
	int n = scandir("/sys/bus/pci/devices", &ents, NULL, by_name);
	if (n < 0)
		die("/sys/bus/pci/devices: %s", strerror(errno));
	unsigned per_kind[ID_VSOCK + 1] = { 0 };
	for (int i = 0; i < n; i++) {
		char dir[300];
		snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s", ents[i]->d_name);
		unsigned long vendor = read_hex(dir, "vendor"), device = read_hex(dir, "device");
		unsigned long id = device - 0x1040;   /* virtio 1.x PCI device ids */
		if (ents[i]->d_name[0] == '.' || vendor != 0x1af4 || (id != ID_NET && id != ID_BLK && id != ID_VSOCK) ||
		    n_devs == 16)
			continue;
		char drv[512];
		snprintf(drv, sizeof(drv), "%s/driver", dir);
		if (access(drv, F_OK) == 0)
			die("%s is still bound to a driver: unbind it first", dir);
		struct dev d = { .pci = true, .id = (unsigned)id };
		pci_setup(&d, dir);
		d.idx = per_kind[d.id]++;
		snprintf(d.where, sizeof(d.where), "pci %s", ents[i]->d_name);
		devs[n_devs++] = d;
	}
	for (int i = 0; i < n; i++)
		free(ents[i]);
	free(ents);
}

/* ---- driving a device ---- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static bool reset(const struct dev *d)
{
	status_set(d, 0);
	for (double t0 = now_s(); now_s() - t0 < 5;) {
		if (status_get(d) == 0)
			return true;
		usleep(1000);
	}
	return false;
}

/* ACKNOWLEDGE, DRIVER, features, FEATURES_OK. False when the device refuses. */
static bool negotiate(const struct dev *d, uint64_t want)
{
	status_set(d, S_ACK);
	status_set(d, S_ACK | S_DRIVER);
	uint64_t f = features_get(d) & want;
	features_set(d, f);
	status_set(d, S_ACK | S_DRIVER | S_FEATURES_OK);
	return status_get(d) & S_FEATURES_OK;
}

/* Chain cases on a NIC or a vsock attack its RX queue instead of TX during
 * the RX pass. */
static bool rx_pass;

/* The queue the cases attack: blk request queue 0, net and vsock TX queue 1
 * (RX queue 0 in the RX pass). */
static unsigned data_queue(const struct dev *d)
{
	return d->id != ID_BLK && !rx_pass ? 1 : 0;
}

static void vs_rings(const struct dev *d);

/* A NIC's other queue of pair 0 (both must be ready for the device to run
 * it): its own, empty, rings in buf_pg[3], 3 small parts in one page. A
 * vsock's other data queue likewise, and its event queue (vs_rings). */
static void other_queue_setup(const struct dev *d)
{
	if (d->id == ID_BLK)
		return;
	memset(buf_pg[3].va, 0, PAGE);
	queue_setup(d, data_queue(d) ^ 1, QSIZE, buf_pg[3].pa, buf_pg[3].pa + 0x400, buf_pg[3].pa + 0x800);
	if (d->id == ID_VSOCK)
		vs_rings(d);
}

struct ring {
	uint16_t avail_idx, used_seen;
};

static void rings_clear(void)
{
	memset(desc_pg.va, 0, PAGE);
	memset(avail_pg.va, 0, PAGE);
	memset(used_pg.va, 0, PAGE);
}

/* Sets up the device's queues: the attacked one on the shared pages. */
static void queues_setup(const struct dev *d, uint32_t size)
{
	rings_clear();
	other_queue_setup(d);
	queue_setup(d, data_queue(d), size, desc_pg.pa, avail_pg.pa, used_pg.pa);
}

static volatile struct {
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;
} *desc_at(uint8_t *table, unsigned i)
{
	return (void *)(table + 16 * i);
}

static void desc_set(uint8_t *table, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	desc_at(table, i)->addr = addr;
	desc_at(table, i)->len = len;
	desc_at(table, i)->flags = flags;
	desc_at(table, i)->next = next;
}

static volatile uint16_t *avail_idx(void) { return (uint16_t *)(avail_pg.va + 2); }
static volatile uint16_t *avail_ring(unsigned i) { return (uint16_t *)(avail_pg.va + 4 + 2 * i); }
static volatile uint16_t *used_idx(void) { return (uint16_t *)(used_pg.va + 2); }
static volatile uint32_t *used_len(unsigned i) { return (uint32_t *)(used_pg.va + 4 + 8 * i + 4); }

/* Publishes head at the next avail slot, moves the index by `by` and kicks. */
static void publish(const struct dev *d, struct ring *r, uint16_t head, uint16_t by)
{
	*avail_ring(r->avail_idx % QSIZE) = head;
	__sync_synchronize();
	r->avail_idx += by;
	*avail_idx() = r->avail_idx;
	__sync_synchronize();
	notify(d, data_queue(d));
}

static void vs_good_request(void);

/* A well-formed request in descriptors 0..: blk: read sector 0 into
 * buf_pg[1]; net: a 60-byte broadcast frame behind a zero virtio-net header;
 * vsock: a connection request to a host port nobody listens on
 * (vs_good_request). Returns the head. */
static uint16_t good_request(const struct dev *d)
{
	if (d->id == ID_VSOCK) {
		vs_good_request();
	} else if (d->id == ID_BLK) {
		memset(buf_pg[0].va, 0, 16);                 /* type 0 (IN), sector 0 */
		buf_pg[2].va[0] = 0xff;                      /* status, overwritten by the device */
		desc_set(desc_pg.va, 0, buf_pg[0].pa, 16, D_NEXT, 1);
		desc_set(desc_pg.va, 1, buf_pg[1].pa, 512, D_NEXT | D_WRITE, 2);
		desc_set(desc_pg.va, 2, buf_pg[2].pa, 1, D_WRITE, 0);
	} else {
		memset(buf_pg[0].va, 0, 12 + 60);
		memset(buf_pg[0].va + 12, 0xff, 6);          /* broadcast */
		memcpy(buf_pg[0].va + 18, "\x02\0\0\0\0\x42\x88\xb5", 8);   /* local MAC, experimental type */
		desc_set(desc_pg.va, 0, buf_pg[0].pa, 12 + 60, 0, 0);
	}
	return 0;
}

/* Waits for the used index to move past r->used_seen. */
static bool wait_used(struct ring *r, double secs)
{
	for (double t0 = now_s(); now_s() - t0 < secs;) {
		if (*used_idx() != r->used_seen) {
			r->used_seen = *used_idx();
			return true;
		}
		usleep(500);
	}
	return false;
}

static bool recover_tx(const struct dev *d, struct ring *rp, char *why, size_t n);
static void vs_rx_post(const struct dev *d, unsigned from, unsigned n);
static bool vs_answered(const struct dev *d, char *why, size_t n);

/* Resets the device, sets it up as a plain driver would and has one request
 * served: what "the guest can use the device again" means. */
static bool recover(const struct dev *d, char *why, size_t n)
{
	struct ring r = { 0, 0 };
	bool was_rx = rx_pass;
	rx_pass = false;   /* a frame sent on TX */
	bool ok = recover_tx(d, &r, why, n);
	rx_pass = was_rx;
	return ok;
}

static bool recover_tx(const struct dev *d, struct ring *rp, char *why, size_t n)
{
	struct ring r = *rp;
	if (!reset(d))
		return snprintf(why, n, "status not 0 after reset"), false;
	if (!negotiate(d, F_VERSION_1))
		return snprintf(why, n, "FEATURES_OK refused"), false;
	queues_setup(d, QSIZE);
	if (d->id == ID_VSOCK)
		vs_rx_post(d, 0, QSIZE);   /* for the answer */
	status_set(d, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	publish(d, &r, good_request(d), 1);
	if (!wait_used(&r, 10))
		return snprintf(why, n, "request not completed (status 0x%x)", status_get(d)), false;
	if (d->id == ID_BLK && (buf_pg[2].va[0] != 0 || *used_len(0) != 513))
		return snprintf(why, n, "read: status %u, used len %u", buf_pg[2].va[0], *used_len(0)), false;
	if (d->id == ID_VSOCK && !vs_answered(d, why, n))
		return false;
	if (status_get(d) & S_NEEDS_RESET)
		return snprintf(why, n, "NEEDS_RESET after a good request"), false;
	return true;
}

/* ---- virtio-vsock by hand ---- */

#define VS_EVQ 2
#define VS_HDR 44u
#define VS_HOST_CID 2u
#define VS_STREAM 1u
enum { OP_REQUEST = 1, OP_RESPONSE, OP_RST, OP_SHUTDOWN, OP_RW, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST };
#define VS_SHUT_BOTH 3u                  /* SHUTDOWN flags: will receive (1) and send (2) no more */
#define VS_SLOT 256u                     /* TX: a packet per descriptor, in its slot's bytes of buf_pg[2] */
#define VS_SLOT_DATA (VS_SLOT - VS_HDR)  /* the payload a slot takes */
#define VS_RX_DATA (PAGE - VS_HDR)       /* the payload an RX buffer takes */
#define VS_BUF (64u * 1024)              /* the buf_alloc the device advertises, and ours */
/* A host port with no "<uds>_1" socket: a connection request there gets an
 * RST, and no log line (nobody listening is not news). */
#define VS_NO_LISTENER 1u
/* -H: hostile_guest.sh's echo server, "udscat -l <uds>_5000 N": it serves
 * one connection at a time, the next once the device closed the last. */
#define VS_ECHO_PORT 5000u
/* The RSTs for packets of no connection the device keeps while the guest
 * gives it no RX buffer (VSOCK_MAX_ORPHAN_RST, devices/vsock/vsock_mux.h):
 * past those it takes no TX packet until they are out. */
#define VS_MAX_ORPHAN_RST 64u

struct vhdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port, len;
	uint16_t type, op;
	uint32_t flags, buf_alloc, fwd_cnt;
};

/* A packet the device put in the RX queue. */
struct vpkt {
	struct vhdr h;
	uint8_t data[VS_RX_DATA];
};

/* A queue driven as a plain driver does: its rings, the avail index it
 * publishes next, the used entries it has seen. */
struct vq {
	unsigned q;
	uint8_t *desc, *avail, *used;
	uint16_t avail_idx, used_seen;
};

struct seg {
	uint64_t pa;
	uint32_t len;
};

static struct vq vs_rx, vs_tx;
static uint64_t vs_cid;          /* the guest's, from config space */
static bool vs_refill;           /* an RX buffer read goes back to the queue */
static uint32_t vs_good_port;    /* the guest port of good_request's connection request */

/* Byte by byte: the wire is little-endian, the buffers unaligned. */
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

static void vs_encode(const struct vhdr *h, uint8_t *b)
{
	put_le(b, h->src_cid, 8);
	put_le(b + 8, h->dst_cid, 8);
	put_le(b + 16, h->src_port, 4);
	put_le(b + 20, h->dst_port, 4);
	put_le(b + 24, h->len, 4);
	put_le(b + 28, h->type, 2);
	put_le(b + 30, h->op, 2);
	put_le(b + 32, h->flags, 4);
	put_le(b + 36, h->buf_alloc, 4);
	put_le(b + 40, h->fwd_cnt, 4);
}

static void vs_decode(const uint8_t *b, struct vhdr *h)
{
	h->src_cid = get_le(b, 8);
	h->dst_cid = get_le(b + 8, 8);
	h->src_port = (uint32_t)get_le(b + 16, 4);
	h->dst_port = (uint32_t)get_le(b + 20, 4);
	h->len = (uint32_t)get_le(b + 24, 4);
	h->type = (uint16_t)get_le(b + 28, 2);
	h->op = (uint16_t)get_le(b + 30, 2);
	h->flags = (uint32_t)get_le(b + 32, 4);
	h->buf_alloc = (uint32_t)get_le(b + 36, 4);
	h->fwd_cnt = (uint32_t)get_le(b + 40, 4);
}

static const char *op_name(unsigned op)
{
	static const char *const names[] = { "op 0",     "REQUEST", "RESPONSE",      "RST",
					     "SHUTDOWN", "RW",      "CREDIT_UPDATE", "CREDIT_REQUEST" };
	return op < 8 ? names[op] : "op >7";
}

/* A fresh guest port for each connection (30000 up, never one the flood uses). */
static uint32_t vs_port(void)
{
	static uint32_t next;
	return 30000 + next++ % 30000;
}

/* A packet from the guest's port gport to the host's port hport: STREAM,
 * no payload, our credit VS_BUF with nothing taken yet. */
static struct vhdr vs_pkt(uint16_t op, uint32_t gport, uint32_t hport)
{
	return (struct vhdr){ .src_cid = vs_cid, .dst_cid = VS_HOST_CID, .src_port = gport, .dst_port = hport,
			      .type = VS_STREAM, .op = op, .buf_alloc = VS_BUF };
}

static void vq_init(struct vq *v, unsigned q, uint8_t *desc, uint8_t *avail, uint8_t *used)
{
	*v = (struct vq){ .q = q, .desc = desc, .avail = avail, .used = used };
}

static volatile uint16_t *vq_used_idx(const struct vq *v) { return (uint16_t *)(v->used + 2); }

/* Chains published and not used yet (the device uses a vsock's in order). */
static unsigned vq_pending(const struct vq *v)
{
	return (uint16_t)(v->avail_idx - *vq_used_idx(v));
}

/* head in the next avail slot; the index goes out with the next kick. */
static void vq_add(struct vq *v, uint16_t head)
{
	*(volatile uint16_t *)(v->avail + 4 + 2 * (v->avail_idx % QSIZE)) = head;
	v->avail_idx++;
}

static void vq_kick(const struct dev *d, struct vq *v)
{
	__sync_synchronize();
	*(volatile uint16_t *)(v->avail + 2) = v->avail_idx;
	__sync_synchronize();
	notify(d, v->q);
}

/* The next used entry: true with its id and length, false when there is none. */
static bool vq_used_next(struct vq *v, uint32_t *id, uint32_t *len)
{
	if (*vq_used_idx(v) == v->used_seen)
		return false;
	__sync_synchronize();
	volatile uint32_t *e = (uint32_t *)(v->used + 4 + 8 * (v->used_seen % QSIZE));
	*id = e[0];
	*len = e[1];
	v->used_seen++;
	return true;
}

/* A vsock's rings (other_queue_setup set up its other data queue in
 * buf_pg[3]; the attacked one is on the shared pages): which are RX and TX
 * for the vs_ functions, and its event queue, empty, in buf_pg[3]'s last
 * quarter (it carries only the TRANSPORT_RESET event after a restore). No
 * RX buffer yet: vs_rx_post. */
static void vs_rings(const struct dev *d)
{
	struct vq *att = rx_pass ? &vs_rx : &vs_tx, *other = rx_pass ? &vs_tx : &vs_rx;
	vq_init(att, data_queue(d), desc_pg.va, avail_pg.va, used_pg.va);
	vq_init(other, data_queue(d) ^ 1, buf_pg[3].va, buf_pg[3].va + 0x400, buf_pg[3].va + 0x800);
	queue_setup(d, VS_EVQ, QSIZE, buf_pg[3].pa + 0xc00, buf_pg[3].pa + 0xd00, buf_pg[3].pa + 0xd80);
	vs_cid = config_rd(d, 0, 4) | (uint64_t)config_rd(d, 4, 4) << 32;
	vs_refill = true;
}

/* RX buffer i (one device-writable page, vs_rx_pg[i]) as head i. */
static void vs_rx_add(unsigned i)
{
	desc_set(vs_rx.desc, i, vs_rx_pg[i].pa, PAGE, D_WRITE, 0);
	vq_add(&vs_rx, (uint16_t)i);
}

/* Gives the device RX buffers from..from+n-1, which it must not hold now. */
static void vs_rx_post(const struct dev *d, unsigned from, unsigned n)
{
	for (unsigned i = from; i < from + n; i++)
		vs_rx_add(i);
	vq_kick(d, &vs_rx);
}

/* Waits up to secs until at most keep TX chains wait for the device. */
static bool vs_tx_wait(unsigned keep, double secs)
{
	for (double t0 = now_s(); vq_pending(&vs_tx) > keep;) {
		if (now_s() - t0 >= secs)
			return false;
		usleep(500);
	}
	return true;
}

/* Queues a TX packet in one descriptor: h as given (its len is the
 * caller's, and may lie), then n <= VS_SLOT_DATA bytes of payload, in the
 * slot's bytes of buf_pg[2] (the slot is the avail index: used again QSIZE
 * packets later, once the device used it). A full ring is kicked and
 * waited for (5 s at most); kick: publish it now. */
static bool vs_put(const struct dev *d, const struct vhdr *h, const void *data, uint32_t n, bool kick, char *why,
		   size_t wn)
{
	if (vq_pending(&vs_tx) >= QSIZE) {
		vq_kick(d, &vs_tx);
		if (!vs_tx_wait(QSIZE - 1, 5))
			return snprintf(why, wn, "the device took no TX packet in 5 s"), false;
	}
	unsigned slot = vs_tx.avail_idx % QSIZE;
	uint8_t *b = buf_pg[2].va + slot * VS_SLOT;
	vs_encode(h, b);
	if (n)
		memcpy(b + VS_HDR, data, n);
	desc_set(vs_tx.desc, slot, buf_pg[2].pa + slot * VS_SLOT, VS_HDR + n, 0, 0);
	vq_add(&vs_tx, (uint16_t)slot);
	if (kick)
		vq_kick(d, &vs_tx);
	return true;
}

/* Sends h, encoded in vs_data_pg's first bytes, as a chain of the n <= 256
 * pieces s (which may point there, or anywhere), through an indirect table
 * in buf_pg[1]: once the device used every TX chain before (the table and
 * those bytes are then free). */
static bool vs_put_chain(const struct dev *d, const struct vhdr *h, const struct seg *s, unsigned n, char *why,
			 size_t wn)
{
	vq_kick(d, &vs_tx);
	if (!vs_tx_wait(0, 5))
		return snprintf(why, wn, "the device took no TX packet in 5 s"), false;
	vs_encode(h, vs_data_pg.va);
	for (unsigned i = 0; i < n; i++)
		desc_set(buf_pg[1].va, i, s[i].pa, s[i].len, i + 1 < n ? D_NEXT : 0, (uint16_t)(i + 1));
	unsigned slot = vs_tx.avail_idx % QSIZE;
	desc_set(vs_tx.desc, slot, buf_pg[1].pa, n * 16, D_INDIRECT, 0);
	vq_add(&vs_tx, (uint16_t)slot);
	vq_kick(d, &vs_tx);
	return true;
}

/* The next packet in the RX queue, waiting up to secs: 1, 0 when none came,
 * -1 (why) when it breaks a rule every packet from the host keeps. Its
 * buffer goes back to the queue (kicked once no other used one waits)
 * unless vs_refill is off. */
static int vs_recv(const struct dev *d, struct vpkt *p, double secs, char *why, size_t wn)
{
	uint32_t id, len;
	for (double t0 = now_s(); !vq_used_next(&vs_rx, &id, &len);) {
		if (now_s() - t0 >= secs)
			return 0;
		usleep(500);
	}
	if (id >= QSIZE || len < VS_HDR || len > PAGE)
		return snprintf(why, wn, "RX used entry: id %u, length %u", id, len), -1;
	vs_decode(vs_rx_pg[id].va, &p->h);
	if (p->h.len > VS_RX_DATA || len != VS_HDR + p->h.len)
		return snprintf(why, wn, "RX used length %u for a %s with %u bytes", len, op_name(p->h.op), p->h.len),
		       -1;
	if (p->h.src_cid != VS_HOST_CID || p->h.dst_cid != vs_cid || p->h.type != VS_STREAM)
		return snprintf(why, wn, "RX %s: cid %" PRIu64 " to %" PRIu64 ", type %u", op_name(p->h.op), p->h.src_cid,
				p->h.dst_cid, p->h.type), -1;
	memcpy(p->data, vs_rx_pg[id].va + VS_HDR, p->h.len);
	if (vs_refill) {
		vs_rx_add(id);
		if (*vq_used_idx(&vs_rx) == vs_rx.used_seen)
			vq_kick(d, &vs_rx);
	}
	return 1;
}

/* The next packet must be op from host port hport to guest port gport. */
static bool vs_expect(const struct dev *d, uint16_t op, uint32_t hport, uint32_t gport, struct vpkt *p, double secs,
		      char *why, size_t wn)
{
	int r = vs_recv(d, p, secs, why, wn);
	if (r < 0)
		return false;
	if (!r)
		return snprintf(why, wn, "no %s (host port %u to guest port %u) in %.0f s", op_name(op), hport, gport,
				secs), false;
	if (p->h.op != op || p->h.src_port != hport || p->h.dst_port != gport)
		return snprintf(why, wn, "got %s (host port %u to guest port %u), want %s (%u to %u)", op_name(p->h.op),
				p->h.src_port, p->h.dst_port, op_name(op), hport, gport), false;
	return true;
}

/* Nothing may come for secs: the packet was dropped, not answered. */
static bool vs_quiet(const struct dev *d, double secs, char *why, size_t wn)
{
	struct vpkt p;
	int r = vs_recv(d, &p, secs, why, wn);
	if (r > 0)
		snprintf(why, wn, "got %s (host port %u to guest port %u), want nothing", op_name(p.h.op), p.h.src_port,
			 p.h.dst_port);
	return r == 0;
}

/* good_request's packet for a vsock, in descriptor 0. */
static void vs_good_request(void)
{
	vs_good_port = vs_port();
	struct vhdr h = vs_pkt(OP_REQUEST, vs_good_port, VS_NO_LISTENER);
	vs_encode(&h, buf_pg[0].va);
	desc_set(desc_pg.va, 0, buf_pg[0].pa, VS_HDR, 0, 0);
}

/* good_request's connection request got its RST: the device answers. What
 * a case left in the RX queue before it is passed over (64 packets at most). */
static bool vs_answered(const struct dev *d, char *why, size_t wn)
{
	struct vpkt p;
	for (unsigned i = 0; i < 64; i++) {
		int r = vs_recv(d, &p, 5, why, wn);
		if (r < 0)
			return false;
		if (!r)
			return snprintf(why, wn, "no RST for a connection request to host port %u in 5 s (status 0x%x)",
					VS_NO_LISTENER, status_get(d)), false;
		if (p.h.dst_port == vs_good_port)
			return p.h.op == OP_RST && p.h.src_port == VS_NO_LISTENER
				       ? true
				       : (snprintf(why, wn, "a connection request to host port %u got %s from port %u",
						   VS_NO_LISTENER, op_name(p.h.op), p.h.src_port), false);
	}
	return snprintf(why, wn, "no RST for a connection request among 64 packets"), false;
}

/* ---- the cases ---- */

enum expect { RESET, HARMLESS, EITHER };
enum kind { CHAIN, SETUP, REGS, PACKETS };

struct hcase {
	const char *name;
	enum kind kind;
	enum expect expect;
	const char *log;            /* what minivmm's warning says (RESET cases; vsock packet cases) */
	unsigned devs;              /* bit ID_NET / ID_BLK / ID_VSOCK: where it applies (0: all) */
	unsigned rx;                /* NICs, vsocks: 0 TX pass only, 1 both passes, 2 RX pass only */
};

#define VSOCK (1u << ID_VSOCK)

static const struct hcase cases[] = {
	{ "loop", CHAIN, RESET, ": descriptor chain loops", 0, 1 },
	{ "next_out_of_range", CHAIN, RESET, "next index", 0, 1 },
	{ "head_out_of_range", CHAIN, RESET, "head index", 0, 1 },
	{ "indirect_in_indirect", CHAIN, RESET, "indirect descriptor inside an indirect table", 0, 1 },
	{ "indirect_loop", CHAIN, RESET, "indirect descriptor chain loops", 0, 1 },
	{ "indirect_len_zero", CHAIN, RESET, "indirect table length 0 ", 0, 1 },
	{ "indirect_len_odd", CHAIN, RESET, "indirect table length 17 ", 0, 1 },
	{ "indirect_not_negotiated", CHAIN, RESET, "without VIRTIO_F_INDIRECT_DESC", 0, 1 },
	{ "indirect_table_outside_ram", CHAIN, RESET, "+0x40 is outside guest RAM", 0, 1 },
	{ "zero_length", CHAIN, EITHER, NULL, 0, 1 },
	{ "huge_length", CHAIN, RESET, "+0xffffffff is outside guest RAM", 0, 1 },
	{ "addr_outside_ram", CHAIN, RESET, "buffer 0x7ff000000000+0x40 is outside", 0, 1 },
	{ "addr_spans_end_of_ram", CHAIN, RESET, "+0x1000 is outside guest RAM", 0, 1 },
	{ "addr_wraps_2_64", CHAIN, RESET, "buffer 0xfffffffffffff000+0x2000 is outside", 0, 1 },
	{ "read_after_write", CHAIN, RESET, "device-readable descriptor after", 0, 1 },
	{ "avail_idx_jump", CHAIN, RESET, "available index", 0, 1 },
	{ "qsize_0", SETUP, RESET, "size 0 is not a power of 2", 0, 0 },
	{ "qsize_not_power_of_2", SETUP, RESET, "size 3 is not a power of 2", 0, 0 },
	{ "qsize_above_max", SETUP, RESET, "size 0 is not a power of 2", 0, 0 },   /* refused: reads 0 */
	{ "qaddr_outside_ram", SETUP, RESET, "descriptor table 0x7ff000000000+0x100 is outside guest RAM", 0, 0 },
	{ "qaddr_spans_end_of_ram", SETUP, RESET, "used ring", 0, 0 },
	{ "qaddr_misaligned", SETUP, RESET, "is not 16-byte aligned", 0, 0 },
	{ "notify_unconfigured_queues", REGS, HARMLESS, NULL, 0, 0 },
	{ "config_out_of_range", REGS, HARMLESS, NULL, 0, 0 },
	{ "queue_sel_out_of_range", REGS, HARMLESS, NULL, 0, 0 },
	{ "driver_ok_without_features_ok", REGS, RESET, "DRIVER_OK without FEATURES_OK", 0, 0 },
	{ "rx_readable_buffer", CHAIN, RESET, "RX chain (head 0) has a device-readable buffer", 1u << ID_NET, 2 },
	{ "rx_short_buffer", CHAIN, RESET, "is shorter than the 12-byte virtio-net header", 1u << ID_NET, 2 },
	/* virtio-vsock's packets (run_packets, vs_fns): none may cost a reset,
	 * and the device must answer after each */
	{ "no_connection", PACKETS, HARMLESS, NULL, VSOCK, 0 },
	{ "short_header", PACKETS, HARMLESS, "readable bytes, fewer than the 44-byte header; dropped", VSOCK, 0 },
	{ "len_beyond_chain", PACKETS, HARMLESS, "refused: payload longer than its buffers", VSOCK, 0 },
	{ "len_over_64k", PACKETS, HARMLESS, "refused: payload over 64 KiB", VSOCK, 0 },
	{ "bad_type", PACKETS, HARMLESS, "refused: type is not STREAM (1)", VSOCK, 0 },
	{ "bad_op", PACKETS, HARMLESS, "refused: unknown op", VSOCK, 0 },
	{ "payload_not_rw", PACKETS, HARMLESS, "refused: payload on a packet other than RW", VSOCK, 0 },
	{ "bad_src_cid", PACKETS, HARMLESS, "refused: source cid is not the guest's", VSOCK, 0 },
	{ "bad_dst_cid", PACKETS, HARMLESS, "refused: destination cid is not the host (2)", VSOCK, 0 },
	{ "rx_bad_buffers", PACKETS, HARMLESS, "given back unused", VSOCK, 0 },
	{ "absurd_credit", PACKETS, HARMLESS, NULL, VSOCK, 0 },
	{ "flood", PACKETS, HARMLESS, NULL, VSOCK, 0 },
	{ "credit_overrun", PACKETS, HARMLESS, "data beyond the credit it was given; connection reset", VSOCK, 0 },
	{ "host_clients", PACKETS, HARMLESS, "sent no CONNECT line in 5 s; closed", VSOCK, 0 },
};
#define N_CASES (sizeof(cases) / sizeof(cases[0]))

/* Writes the malformed chain of a CHAIN case; returns the head to publish
 * and sets *by (how far avail idx moves). */
static uint16_t chain_attack(const struct hcase *c, uint16_t *by)
{
	uint8_t *t = desc_pg.va, *ind = buf_pg[1].va;
	uint64_t b = buf_pg[0].pa;
	*by = 1;
	if (!strcmp(c->name, "loop")) {
		desc_set(t, 0, b, 16, D_NEXT, 1);
		desc_set(t, 1, b, 16, D_NEXT, 2);
		desc_set(t, 2, b, 16, D_NEXT, 0);
	} else if (!strcmp(c->name, "next_out_of_range")) {
		desc_set(t, 0, b, 16, D_NEXT, QSIZE + 7);
	} else if (!strcmp(c->name, "head_out_of_range")) {
		return QSIZE + 3;
	} else if (!strcmp(c->name, "indirect_in_indirect")) {
		desc_set(t, 0, buf_pg[1].pa, 32, D_INDIRECT, 0);
		desc_set(ind, 0, b, 16, D_NEXT, 1);
		desc_set(ind, 1, buf_pg[1].pa, 32, D_INDIRECT, 0);
	} else if (!strcmp(c->name, "indirect_loop")) {
		desc_set(t, 0, buf_pg[1].pa, 32, D_INDIRECT, 0);
		desc_set(ind, 0, b, 16, D_NEXT, 1);
		desc_set(ind, 1, b, 16, D_NEXT, 0);
	} else if (!strcmp(c->name, "indirect_len_zero")) {
		desc_set(t, 0, buf_pg[1].pa, 0, D_INDIRECT, 0);
	} else if (!strcmp(c->name, "indirect_len_odd")) {
		desc_set(t, 0, buf_pg[1].pa, 17, D_INDIRECT, 0);
	} else if (!strcmp(c->name, "indirect_not_negotiated")) {
		desc_set(t, 0, buf_pg[1].pa, 16, D_INDIRECT, 0);   /* INDIRECT_DESC left out of the features */
		desc_set(ind, 0, b, 16, 0, 0);
	} else if (!strcmp(c->name, "indirect_table_outside_ram")) {
		desc_set(t, 0, ram_end + 0x100000, 64, D_INDIRECT, 0);
	} else if (!strcmp(c->name, "zero_length")) {
		desc_set(t, 0, b, 0, D_NEXT, 1);
		desc_set(t, 1, 0xdead0000ull, 0, D_WRITE, 0);   /* the address of an empty buffer is not used */
	} else if (!strcmp(c->name, "huge_length")) {
		desc_set(t, 0, b, 0xffffffffu, 0, 0);
	} else if (!strcmp(c->name, "addr_outside_ram")) {
		desc_set(t, 0, 0x7ff000000000ull, 64, 0, 0);
	} else if (!strcmp(c->name, "addr_spans_end_of_ram")) {
		desc_set(t, 0, ram_end - 0x800, 0x1000, 0, 0);
	} else if (!strcmp(c->name, "addr_wraps_2_64")) {
		desc_set(t, 0, 0xfffffffffffff000ull, 0x2000, 0, 0);
	} else if (!strcmp(c->name, "read_after_write")) {
		desc_set(t, 0, b, 16, D_NEXT | D_WRITE, 1);
		desc_set(t, 1, b, 16, 0, 0);
	} else if (!strcmp(c->name, "rx_readable_buffer")) {
		desc_set(t, 0, b, 64, 0, 0);                    /* RX buffers are device-writable */
	} else if (!strcmp(c->name, "rx_short_buffer")) {
		desc_set(t, 0, b, 4, D_WRITE, 0);               /* not even the virtio-net header fits */
	} else if (!strcmp(c->name, "avail_idx_jump")) {
		*by = QSIZE + 5;   /* the caller publishes a good request, 21 entries at once */
	}
	return 0;
}

/* Queue setup of a SETUP case: size and ring addresses. */
static void setup_attack(const struct dev *d, const struct hcase *c)
{
	uint64_t desc = desc_pg.pa, avail = avail_pg.pa, used = used_pg.pa;
	uint32_t size = QSIZE;
	if (!strcmp(c->name, "qsize_0"))
		size = 0;
	else if (!strcmp(c->name, "qsize_not_power_of_2"))
		size = 3;
	else if (!strcmp(c->name, "qsize_above_max"))
		size = d->qmax + 1u;   /* 16 bits: QueueNum 257 on a 256 max */
	else if (!strcmp(c->name, "qaddr_outside_ram"))
		desc = 0x7ff000000000ull;
	else if (!strcmp(c->name, "qaddr_spans_end_of_ram"))
		used = ram_end - 0x40;
	else if (!strcmp(c->name, "qaddr_misaligned"))
		desc += 8;
	rings_clear();
	other_queue_setup(d);
	queue_setup(d, data_queue(d), size, desc, avail, used);
}

/* A REGS case; returns false (with why) when the device misbehaved right
 * there, e.g. config space beyond its size did not read as 0. */
static bool regs_attack(const struct dev *d, const struct hcase *c, char *why, size_t n)
{
	if (!strcmp(c->name, "notify_unconfigured_queues")) {
		/* queue 0 of net is set up; 2.. and out-of-range ones are not */
		static const unsigned qs[] = { 2, 5, 63, 64, 255, 1000 };
		for (unsigned i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
			if (d->pci) {
				if (qs[i] * d->notify_mult + 2 <= 0x1000)
					notify(d, qs[i]);
				wr(d, d->notify, 2, qs[i]);   /* queue 0's address, another queue's number */
			} else {
				notify(d, qs[i]);
			}
		}
		wr(d, d->pci ? d->notify : M_QUEUE_NOTIFY, 4, 0xffffffffu);
		return true;
	}
	if (!strcmp(c->name, "config_out_of_range")) {
		/* blk config is 60 bytes here, net's 12 or so, vsock's 8: these
		 * offsets are past all, inside the device's window (mmio: the window
		 * is 0x200 long, config from 0x100; pci: a 4 KiB device region) */
		static const uint32_t mmio_offs[] = { 0x40, 0x80, 0xfc }, pci_offs[] = { 0x100, 0x3fc, 0x7f0, 0xefc };
		const uint32_t *offs = d->pci ? pci_offs : mmio_offs;
		unsigned n_offs = d->pci ? 4 : 3;
		for (unsigned i = 0; i < n_offs; i++) {
			uint32_t off = offs[i];
			for (unsigned w = 1; w <= 4; w *= 2) {
				uint32_t v = config_rd(d, off, w);
				if (v)
					return snprintf(why, n, "config +0x%x (width %u) read 0x%x, want 0", off, w, v), false;
				wr(d, (d->pci ? d->devcfg : M_CONFIG) + off, w, 0xa5a5a5a5u);
			}
		}
		/* an access straddling the end of the config space */
		(void)config_rd(d, d->id == ID_BLK ? 58 : d->id == ID_NET ? 10 : 6, 4);
		/* unaligned and narrow accesses to 32-bit registers */
		if (!d->pci) {
			(void)rd(d, M_STATUS + 1, 1);
			(void)rd(d, M_STATUS, 2);
			wr(d, M_STATUS + 2, 2, 0xffff);
			wr(d, M_QUEUE_NOTIFY, 2, 0);
		} else {
			(void)rd(d, d->common + C_STATUS, 4);
			wr(d, d->common + C_Q_SIZE + 1, 1, 0xff);
			(void)rd(d, d->isr + 1, 4);
		}
		return true;
	}
	if (!strcmp(c->name, "queue_sel_out_of_range")) {
		static const uint32_t sels[] = { 64, 0xffff, 0x10000, 0xffffffffu };
		for (unsigned i = 0; i < sizeof(sels) / sizeof(sels[0]); i++) {
			if (d->pci && sels[i] > 0xffff)
				continue;   /* queue_select is 16 bits: 0x10000 is queue 0 */
			if (d->pci) {
				wr(d, d->common + C_Q_SELECT, 2, sels[i]);
				wr(d, d->common + C_Q_SIZE, 2, 8);
				wr(d, d->common + C_Q_ENABLE, 2, 1);
				addr_set(d, C_Q_DESC, 0, 0, 0x1000);
				uint32_t s = rd(d, d->common + C_Q_SIZE, 2), off = rd(d, d->common + C_Q_NOFF, 2);
				if (s || off)
					return snprintf(why, n, "queue %u: size %u notify_off %u, want 0", sels[i], s, off), false;
			} else {
				wr(d, M_QUEUE_SEL, 4, sels[i]);
				wr(d, M_QUEUE_NUM, 4, 8);
				wr(d, M_QUEUE_READY, 4, 1);
				wr(d, M_DESC_LO, 4, 0x1000);
				uint32_t m = rd(d, M_QUEUE_NUM_MAX, 4), r = rd(d, M_QUEUE_READY, 4);
				if (m || r)
					return snprintf(why, n, "queue %u: num_max %u ready %u, want 0", sels[i], m, r), false;
			}
		}
		return true;
	}
	return true;
}

struct result {
	const struct dev *d;
	const struct hcase *c;
	const char *got;
	uint8_t status;
	uint32_t isr;
	bool recovered, pass, rx;
	double secs;
	char why[200];
};

/* ---- virtio-vsock's packet cases ---- */

#define WHY(res) (res)->why, sizeof((res)->why)

/* Puts where it went wrong before why. Returns false. */
static bool __attribute__((format(printf, 2, 3))) failed(struct result *res, const char *fmt, ...)
{
	char where[120], why[sizeof(res->why)];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(where, sizeof(where), fmt, ap);
	va_end(ap);
	snprintf(why, sizeof(why), "%s", res->why);
	if (snprintf(res->why, sizeof(res->why), "%s%s%s", where, why[0] ? ": " : "", why) >= (int)sizeof(res->why))
		memcpy(res->why + sizeof(res->why) - 4, "...", 4);   /* cut short */
	return false;
}

/* Exactly n bytes of payload on the connection from host port hport to
 * guest port gport (its CREDIT_UPDATEs passed over), into out. */
static bool vs_recv_data(const struct dev *d, uint32_t hport, uint32_t gport, uint8_t *out, uint32_t n, char *why,
			 size_t wn)
{
	struct vpkt p;
	for (uint32_t got = 0; got < n;) {
		int r = vs_recv(d, &p, 5, why, wn);
		if (r < 0)
			return false;
		if (!r)
			return snprintf(why, wn, "%u of %u bytes came in 5 s", got, n), false;
		if (p.h.src_port != hport || p.h.dst_port != gport || (p.h.op != OP_RW && p.h.op != OP_CREDIT_UPDATE))
			return snprintf(why, wn, "got %s (host port %u to guest port %u) after %u of %u bytes",
					op_name(p.h.op), p.h.src_port, p.h.dst_port, got, n), false;
		if (p.h.op != OP_RW)
			continue;
		if (p.h.len > n - got)
			return snprintf(why, wn, "%u bytes came, %u were sent", got + p.h.len, n), false;
		memcpy(out + got, p.data, p.h.len);
		got += p.h.len;
	}
	return true;
}

/* The guest closes h's connection (SHUTDOWN, both ways); the device's RST
 * completes the close (its CREDIT_UPDATEs passed over). */
static bool vs_close(const struct dev *d, struct vhdr h, char *why, size_t wn)
{
	h.op = OP_SHUTDOWN;
	h.flags = VS_SHUT_BOTH;
	h.len = 0;
	if (!vs_put(d, &h, NULL, 0, true, why, wn))
		return false;
	struct vpkt p;
	for (unsigned i = 0; i < 16; i++) {
		int r = vs_recv(d, &p, 5, why, wn);
		if (r < 0)
			return false;
		if (!r)
			return snprintf(why, wn, "no RST in 5 s"), false;
		if (p.h.src_port != h.dst_port || p.h.dst_port != h.src_port ||
		    (p.h.op != OP_RST && p.h.op != OP_CREDIT_UPDATE))
			return snprintf(why, wn, "got %s (host port %u to guest port %u), want RST (%u to %u)",
					op_name(p.h.op), p.h.src_port, p.h.dst_port, h.dst_port, h.src_port), false;
		if (p.h.op == OP_RST)
			return true;
	}
	return snprintf(why, wn, "no RST among 16 packets"), false;
}

/* Packets of connections that do not exist: each is answered with an RST,
 * but an RST (never an RST for an RST). */
static bool vs_no_connection(const struct dev *d, struct result *res)
{
	static const uint16_t ops[] = { OP_RW, OP_SHUTDOWN, OP_CREDIT_UPDATE, OP_CREDIT_REQUEST, OP_RESPONSE };
	struct vpkt p;
	for (unsigned i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		uint32_t g = vs_port(), hp = 1000 + i;
		struct vhdr h = vs_pkt(ops[i], g, hp);
		h.len = ops[i] == OP_RW ? 3 : 0;
		h.flags = ops[i] == OP_SHUTDOWN ? VS_SHUT_BOTH : 0;
		if (!vs_put(d, &h, "abc", h.len, true, WHY(res)) || !vs_expect(d, OP_RST, hp, g, &p, 5, WHY(res)))
			return failed(res, "%s of no connection", op_name(ops[i]));
	}
	struct vhdr h = vs_pkt(OP_RST, vs_port(), 1000);
	if (!vs_put(d, &h, NULL, 0, true, WHY(res)) || !vs_quiet(d, 0.3, WHY(res)))
		return failed(res, "RST of no connection");
	res->got = "rst";
	return true;
}

/* Headers the chain does not hold whole, 20 bytes in one descriptor and
 * 40 in two: dropped (nobody to answer). The same connection request cut
 * 3 + 17 + 24 across three descriptors is whole, and answered. */
static bool vs_short_header(const struct dev *d, struct result *res)
{
	uint32_t g = vs_port();
	struct vhdr h = vs_pkt(OP_REQUEST, g, VS_NO_LISTENER);
	const uint64_t a = vs_data_pg.pa;
	const struct seg one[] = { { a, 20 } }, two[] = { { a, 20 }, { a + 20, 20 } },
			 three[] = { { a, 3 }, { a + 3, 17 }, { a + 20, 24 } };
	struct vpkt p;
	if (!vs_put_chain(d, &h, one, 1, WHY(res)) || !vs_quiet(d, 0.3, WHY(res)))
		return failed(res, "a 20-byte header");
	if (!vs_put_chain(d, &h, two, 2, WHY(res)) || !vs_quiet(d, 0.3, WHY(res)))
		return failed(res, "a 40-byte header in 2 descriptors");
	if (!vs_put_chain(d, &h, three, 3, WHY(res)) || !vs_expect(d, OP_RST, VS_NO_LISTENER, g, &p, 5, WHY(res)))
		return failed(res, "a whole header in 3 descriptors");
	res->got = "dropped";
	return true;
}

/* A len beyond the bytes the chain holds (10 of them: len 100, and len 11):
 * refused; the header is whole, so an RST. */
static bool vs_len_beyond_chain(const struct dev *d, struct result *res)
{
	static const uint32_t lens[] = { 100, 11 };
	struct vpkt p;
	for (unsigned i = 0; i < 2; i++) {
		uint32_t g = vs_port();
		struct vhdr h = vs_pkt(OP_RW, g, 1000);
		h.len = lens[i];
		if (!vs_put(d, &h, "0123456789", 10, true, WHY(res)) || !vs_expect(d, OP_RST, 1000, g, &p, 5, WHY(res)))
			return failed(res, "len %u on 10 bytes", lens[i]);
	}
	res->got = "rst";
	return true;
}

/* Payload over 64 KiB: 65537 bytes the chain really holds (17 pages through
 * an indirect table), and a len of 4 GiB - 1 with no payload: refused, RSTs. */
static bool vs_len_over_64k(const struct dev *d, struct result *res)
{
	uint32_t g = vs_port();
	struct vhdr h = vs_pkt(OP_RW, g, 1000);
	h.len = VS_BUF + 1;
	struct seg s[18] = { { vs_data_pg.pa, VS_HDR } };
	for (unsigned i = 1; i < 18; i++)
		s[i] = (struct seg){ vs_data_pg.pa, PAGE };
	struct vpkt p;
	if (!vs_put_chain(d, &h, s, 18, WHY(res)) || !vs_expect(d, OP_RST, 1000, g, &p, 5, WHY(res)))
		return failed(res, "65537 bytes");
	h = vs_pkt(OP_RW, g = vs_port(), 1000);
	h.len = 0xffffffffu;
	if (!vs_put(d, &h, NULL, 0, true, WHY(res)) || !vs_expect(d, OP_RST, 1000, g, &p, 5, WHY(res)))
		return failed(res, "len 0xffffffff");
	res->got = "rst";
	return true;
}

/* A field the device does not take (type, op, payload on a control packet):
 * each of the n packets, from a fresh guest port to host port 1000, is
 * refused and answered with an RST. */
static bool vs_refused(const struct dev *d, struct result *res, const struct vhdr *pkts, unsigned n)
{
	struct vpkt p;
	for (unsigned i = 0; i < n; i++) {
		struct vhdr h = pkts[i];
		h.src_port = vs_port();
		h.dst_port = 1000;
		if (!vs_put(d, &h, "abcde", h.len, true, WHY(res)) ||
		    !vs_expect(d, OP_RST, 1000, h.src_port, &p, 5, WHY(res)))
			return failed(res, "type %u op %u len %u", h.type, h.op, h.len);
	}
	res->got = "rst";
	return true;
}

/* Types other than STREAM (SEQPACKET is not offered): refused, RSTs; an RST
 * of type 0 is not answered either. */
static bool vs_bad_type(const struct dev *d, struct result *res)
{
	struct vhdr h[3];
	static const uint16_t types[] = { 0, 2, 0xffff };
	for (unsigned i = 0; i < 3; i++) {
		h[i] = vs_pkt(OP_REQUEST, 0, 0);
		h[i].type = types[i];
	}
	if (!vs_refused(d, res, h, 3))
		return false;
	struct vhdr rst = vs_pkt(OP_RST, vs_port(), 1000);
	rst.type = 0;
	if (!vs_put(d, &rst, NULL, 0, true, WHY(res)) || !vs_quiet(d, 0.3, WHY(res)))
		return failed(res, "an RST of type 0");
	return true;
}

/* Ops 0 (INVALID), 8 and 0xffff: refused, RSTs. */
static bool vs_bad_op(const struct dev *d, struct result *res)
{
	struct vhdr h[3] = { vs_pkt(0, 0, 0), vs_pkt(8, 0, 0), vs_pkt(0xffff, 0, 0) };
	return vs_refused(d, res, h, 3);
}

/* Payload on a REQUEST (1 byte) and on a CREDIT_UPDATE (5): refused, RSTs. */
static bool vs_payload_not_rw(const struct dev *d, struct result *res)
{
	struct vhdr h[2] = { vs_pkt(OP_REQUEST, 0, 0), vs_pkt(OP_CREDIT_UPDATE, 0, 0) };
	h[0].len = 1;
	h[1].len = 5;
	return vs_refused(d, res, h, 2);
}

/* cids that are not this guest's to the host's: dropped, never answered
 * (nobody to answer); src: the source cid of each packet, else the
 * destination's. */
static bool vs_bad_cid(const struct dev *d, struct result *res, bool src, const uint64_t *cids, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		struct vhdr h = vs_pkt(OP_REQUEST, vs_port(), VS_NO_LISTENER);
		if (src)
			h.src_cid = cids[i];
		else
			h.dst_cid = cids[i];
		if (!vs_put(d, &h, NULL, 0, true, WHY(res)) || !vs_quiet(d, 0.3, WHY(res)))
			return failed(res, "%s cid 0x%" PRIx64, src ? "source" : "destination", cids[i]);
	}
	res->got = "dropped";
	return true;
}

/* Another guest's, the host's, this guest's with bit 32 set. */
static bool vs_bad_src_cid(const struct dev *d, struct result *res)
{
	const uint64_t cids[] = { vs_cid + 1, VS_HOST_CID, vs_cid | 1ull << 32 };
	return vs_bad_cid(d, res, true, cids, 3);
}

/* This guest itself, another, VMADDR_CID_ANY, the host's with bit 32 set. */
static bool vs_bad_dst_cid(const struct dev *d, struct result *res)
{
	const uint64_t cids[] = { vs_cid, vs_cid + 4, 0xffffffffu, VS_HOST_CID | 1ull << 32 };
	return vs_bad_cid(d, res, false, cids, 4);
}

/* RX chains the device cannot use, one device-readable, one shorter than a
 * header: given back unused (length 0); the RST owed for a packet of no
 * connection goes in the good chain after them. */
static bool vs_rx_bad_buffers(const struct dev *d, struct result *res)
{
	desc_set(vs_rx.desc, 0, vs_rx_pg[0].pa, PAGE, 0, 0);
	desc_set(vs_rx.desc, 1, vs_rx_pg[1].pa, 20, D_WRITE, 0);
	vq_add(&vs_rx, 0);
	vq_add(&vs_rx, 1);
	vs_rx_add(2);
	vq_kick(d, &vs_rx);
	uint32_t g = vs_port();
	struct vhdr h = vs_pkt(OP_RW, g, 1000);
	if (!vs_put(d, &h, NULL, 0, true, WHY(res)))
		return false;
	for (unsigned i = 0; i < 3; i++) {
		uint32_t id, len, want = i < 2 ? 0 : VS_HDR;
		for (double t0 = now_s(); !vq_used_next(&vs_rx, &id, &len);) {
			if (now_s() - t0 > 5)
				return failed(res, "RX chain %u not used in 5 s", i);
			usleep(500);
		}
		if (id != i || len != want)
			return failed(res, "RX used entry %u: head %u length %u, want head %u length %u", i, id, len, i,
				      want);
	}
	vs_decode(vs_rx_pg[2].va, &h);
	if (h.op != OP_RST || h.src_port != 1000 || h.dst_port != g)
		return failed(res, "got %s (host port %u to guest port %u), want RST (1000 to %u)", op_name(h.op),
			      h.src_port, h.dst_port, g);
	vs_rx_post(d, 0, QSIZE);
	res->got = "given_back";
	return true;
}

/* Absurd credit from the guest: a connection request with buf_alloc 4 GiB -
 * 1 and fwd_cnt 2^31 ahead, to a port nobody listens on, gets its RST.
 * With -H, on a connection to the echo server: what comes back fits one RX
 * buffer whatever room the guest claims; a fwd_cnt ahead of what the device
 * sent leaves no room, so nothing comes until honest credit. */
static bool vs_absurd_credit(const struct dev *d, struct result *res)
{
	struct vpkt p;
	uint8_t back[8];
	uint32_t g = vs_port();
	struct vhdr h = vs_pkt(OP_REQUEST, g, VS_NO_LISTENER);
	h.buf_alloc = 0xffffffffu;
	h.fwd_cnt = 0x80000000u;
	if (!vs_put(d, &h, NULL, 0, true, WHY(res)) || !vs_expect(d, OP_RST, VS_NO_LISTENER, g, &p, 5, WHY(res)))
		return failed(res, "a request to a port nobody listens on");
	res->got = "rst";
	if (!vs_host)
		return true;
	h.src_port = g = vs_port();
	h.dst_port = VS_ECHO_PORT;
	if (!vs_put(d, &h, NULL, 0, true, WHY(res)) || !vs_expect(d, OP_RESPONSE, VS_ECHO_PORT, g, &p, 5, WHY(res)))
		return failed(res, "the host's echo server (port %u)", VS_ECHO_PORT);
	h.op = OP_RW;
	h.len = 8;
	if (!vs_put(d, &h, "absurd-1", 8, true, WHY(res)) || !vs_recv_data(d, VS_ECHO_PORT, g, back, 8, WHY(res)))
		return failed(res, "an echo with 4 GiB of credit");
	if (memcmp(back, "absurd-1", 8))
		return failed(res, "the echo came back different");
	/* fwd_cnt past the 8 bytes the device sent: no room at all */
	h.op = OP_CREDIT_UPDATE;
	h.len = 0;
	h.buf_alloc = 4096;
	h.fwd_cnt = 0x80000000u + 100000u;
	if (!vs_put(d, &h, NULL, 0, true, WHY(res)))
		return false;
	h.op = OP_RW;
	h.len = 8;
	if (!vs_put(d, &h, "absurd-2", 8, true, WHY(res)) || !vs_quiet(d, 0.5, WHY(res)))
		return failed(res, "fwd_cnt ahead of what the device sent");
	h.op = OP_CREDIT_UPDATE;
	h.len = 0;
	h.fwd_cnt = 8;
	if (!vs_put(d, &h, NULL, 0, true, WHY(res)) || !vs_recv_data(d, VS_ECHO_PORT, g, back, 8, WHY(res)))
		return failed(res, "after honest credit");
	if (memcmp(back, "absurd-2", 8))
		return failed(res, "the echo came back different");
	h.fwd_cnt = 16;
	if (!vs_close(d, h, WHY(res)))
		return failed(res, "closing");
	res->got = "completed";
	return true;
}

#define VS_FLOOD 2000u
#define VS_FLOOD_PORT 10000u   /* guest ports VS_FLOOD_PORT.. */

/* Queues flood packets (RW of no connection, one guest port each) while the
 * TX ring has room; kicks. */
static void vs_flood_put(const struct dev *d, struct result *res, unsigned *sent)
{
	unsigned room = QSIZE - vq_pending(&vs_tx);
	for (unsigned i = 0; i < room && *sent < VS_FLOOD; i++, (*sent)++) {
		struct vhdr h = vs_pkt(OP_RW, VS_FLOOD_PORT + *sent, VS_NO_LISTENER);
		(void)vs_put(d, &h, NULL, 0, false, WHY(res));   /* room checked: never waits */
	}
	if (room)
		vq_kick(d, &vs_tx);
}

/* 2000 packets of no connection while the guest gives no RX buffer: the
 * device owes an RST for each, and keeps at most VS_MAX_ORPHAN_RST of them:
 * it takes no more TX packets (it does not queue replies without bound).
 * Then RX buffers, taken back at once, and the rest of the flood: exactly
 * one RST for every packet. */
static bool vs_flood(const struct dev *d, struct result *res)
{
	static bool seen[VS_FLOOD];
	memset(seen, 0, sizeof(seen));
	unsigned sent = 0, taken = 0, rsts = 0;
	/* until the device takes none for 1 s */
	for (double t = now_s(); sent < VS_FLOOD && now_s() - t < 1;) {
		vs_flood_put(d, res, &sent);
		usleep(1000);
		if (*vq_used_idx(&vs_tx) != taken) {
			taken = *vq_used_idx(&vs_tx);
			t = now_s();
		}
	}
	unsigned starved = taken;
	if (!starved || starved > VS_MAX_ORPHAN_RST)
		return failed(res, "with no RX buffer the device took %u of %u packets of no connection, want 1 to %u",
			      starved, sent, VS_MAX_ORPHAN_RST);
	vs_rx_post(d, 0, QSIZE);
	for (double t = now_s(); rsts < VS_FLOOD && now_s() - t < 3;) {
		vs_flood_put(d, res, &sent);
		struct vpkt p;
		int r = vs_recv(d, &p, 0.01, WHY(res));
		if (r < 0)
			return failed(res, "after %u RSTs", rsts);
		if (!r)
			continue;
		t = now_s();
		uint32_t k = p.h.dst_port - VS_FLOOD_PORT;
		if (p.h.op != OP_RST || p.h.src_port != VS_NO_LISTENER || k >= sent || seen[k])
			return failed(res, "after %u RSTs: %s (host port %u to guest port %u)%s", rsts, op_name(p.h.op),
				      p.h.src_port, p.h.dst_port, k < sent && seen[k] ? ", a second one" : "");
		seen[k] = true;
		rsts++;
	}
	if (rsts != VS_FLOOD)
		return failed(res, "%u RSTs for %u packets of no connection (%u sent, %u taken)", rsts, VS_FLOOD, sent,
			      (unsigned)(uint16_t)*vq_used_idx(&vs_tx));
	if (verbose)
		printf("HOSTILE-RUN vsock flood: %u packets taken with no RX buffer, then %u RSTs for %u\n", starved,
		       rsts, VS_FLOOD);
	res->got = "bounded";
	return true;
}

/* -H. A guest that overruns the credit on connection A (to the echo
 * server): the 64 KiB the device advertised in one packet, then one byte
 * more, with no RX buffer for a credit update between (the guest never
 * reads): A is reset, and only A: B (waiting for the echo server, which
 * takes it once A is gone) goes on. */
static bool vs_credit_overrun(const struct dev *d, struct result *res)
{
	struct vpkt p;
	uint32_t a = vs_port(), b = vs_port();
	struct vhdr ha = vs_pkt(OP_REQUEST, a, VS_ECHO_PORT), hb = vs_pkt(OP_REQUEST, b, VS_ECHO_PORT);
	ha.buf_alloc = 0;   /* A's echo never comes back */
	vs_rx_post(d, 0, 2);   /* for the two RESPONSEs */
	vs_refill = false;
	if (!vs_put(d, &ha, NULL, 0, true, WHY(res)) || !vs_expect(d, OP_RESPONSE, VS_ECHO_PORT, a, &p, 5, WHY(res)) ||
	    !vs_put(d, &hb, NULL, 0, true, WHY(res)) || !vs_expect(d, OP_RESPONSE, VS_ECHO_PORT, b, &p, 5, WHY(res)))
		return failed(res, "the host's echo server (port %u)", VS_ECHO_PORT);
	ha.op = OP_RW;
	ha.len = VS_BUF;
	struct seg s[17] = { { vs_data_pg.pa, VS_HDR } };
	for (unsigned i = 1; i < 17; i++)
		s[i] = (struct seg){ vs_data_pg.pa, PAGE };
	if (!vs_put_chain(d, &ha, s, 17, WHY(res)))
		return false;
	ha.len = 1;
	if (!vs_put(d, &ha, "!", 1, true, WHY(res)) || !vs_tx_wait(0, 5))
		return failed(res, "A's packets not taken");
	vs_refill = true;
	vs_rx_post(d, 0, QSIZE);
	if (!vs_expect(d, OP_RST, VS_ECHO_PORT, a, &p, 5, WHY(res)))
		return failed(res, "A past its credit");
	uint8_t back[10];
	hb.op = OP_RW;
	hb.len = 10;
	if (!vs_put(d, &hb, "still-here", 10, true, WHY(res)) || !vs_recv_data(d, VS_ECHO_PORT, b, back, 10, WHY(res)))
		return failed(res, "B after A's reset");
	if (memcmp(back, "still-here", 10))
		return failed(res, "B's echo came back different");
	hb.fwd_cnt = 10;
	if (!vs_close(d, hb, WHY(res)))
		return failed(res, "closing B");
	res->got = "rst";
	return true;
}

/* -H: the host window. While it lasts, hostile_guest.sh's host side sends
 * its clients to the vsock socket, and this program is the guest's end:
 *  - guest port 1234: refused (an RST, as when nobody listens there);
 *  - guest port 1235: never answered: the device gives up after 5 s (an RST
 *    to the guest, the host client closed);
 *  - guest port 7001: accepted; the host client sends zeros until it is
 *    killed mid-stream: the device passes the bytes, then says the host went
 *    (a SHUTDOWN, or an RST); the guest's RST ends it;
 *  - guest port 7002: accepted and echoed while all the others come and
 *    go; the host client ends its side (a SHUTDOWN), the guest closes too,
 *    and the device's RST completes the close;
 *  - a client that never sends its CONNECT line, and one that sends
 *    garbage instead: never reach the guest (the host checks they are
 *    closed, after 5 s and at once);
 *  - guest port 9999: the host is done (refused too).
 * Opened by a HOSTILE-VSOCK-WINDOW line, which the host side waits for;
 * VS_WIN_SECS at most. */
#define VS_WIN_REFUSED 1234u
#define VS_WIN_IGNORED 1235u
#define VS_WIN_CUT 7001u
#define VS_WIN_ECHO 7002u
#define VS_WIN_DONE 9999u
#define VS_WIN_SECS 120

/* A connection of the window, the guest's end. */
struct vs_conn {
	uint32_t gport, hport;   /* hport 0: none yet */
	uint32_t got, told;      /* payload received (taken at once: our fwd_cnt); the fwd_cnt last sent */
	bool shut, closed, bad;  /* bad: 7001's bytes were not all zero */
};

static bool vs_conn_send(const struct dev *d, struct vs_conn *c, uint16_t op, uint32_t flags, const void *data,
			 uint32_t n, char *why, size_t wn)
{
	struct vhdr h = vs_pkt(op, c->gport, c->hport);
	h.len = n;
	h.flags = flags;
	h.fwd_cnt = c->told = c->got;
	return vs_put(d, &h, data, n, true, why, wn);
}

static bool vs_host_clients(const struct dev *d, struct result *res)
{
	struct vs_conn cut = { .gport = VS_WIN_CUT }, echo = { .gport = VS_WIN_ECHO };
	uint32_t ignored = 0, refused = 0, unexpected = 0;
	double t_ignored = 0, ignored_after = -1;
	bool done = false;
	char odd[100] = "";
	usleep(500000);   /* minivmm's lines of the cases before first */
	printf("HOSTILE-VSOCK-WINDOW open: host clients now, then CONNECT %u\n", VS_WIN_DONE);
	for (double t0 = now_s(); now_s() - t0 < VS_WIN_SECS;) {
		bool over = (!cut.hport || cut.closed) && (!echo.hport || echo.closed) && (!ignored || ignored_after >= 0);
		if (done && over)
			break;
		struct vpkt p;
		int r = vs_recv(d, &p, 0.1, WHY(res));
		if (r < 0)
			return failed(res, "host window");
		if (!r)
			continue;
		uint32_t hp = p.h.src_port, gp = p.h.dst_port;
		struct vs_conn *c = gp == VS_WIN_CUT ? &cut : gp == VS_WIN_ECHO ? &echo : NULL;
		if (c && c->hport && c->hport != hp)
			c = NULL;   /* a second connection to the port */
		bool ok = true;
		if (p.h.op == OP_REQUEST && c && !c->hport) {
			c->hport = hp;
			ok = vs_conn_send(d, c, OP_RESPONSE, 0, NULL, 0, WHY(res));
		} else if (p.h.op == OP_REQUEST && gp == VS_WIN_IGNORED && !ignored) {
			ignored = hp;
			t_ignored = now_s();
		} else if (p.h.op == OP_REQUEST) {
			refused += gp == VS_WIN_REFUSED;
			done |= gp == VS_WIN_DONE;
			if (gp != VS_WIN_REFUSED && gp != VS_WIN_DONE && !unexpected++)
				snprintf(odd, sizeof(odd), "REQUEST from host port %u to guest port %u", hp, gp);
			struct vhdr h = vs_pkt(OP_RST, gp, hp);
			ok = vs_put(d, &h, NULL, 0, true, WHY(res));
		} else if (p.h.op == OP_RST && ignored && hp == ignored && gp == VS_WIN_IGNORED) {
			ignored_after = now_s() - t_ignored;
		} else if (!c || !c->hport) {
			if (!unexpected++)
				snprintf(odd, sizeof(odd), "%s from host port %u to guest port %u", op_name(p.h.op), hp,
					 gp);
		} else if (c->closed) {
			/* crossed the guest's RST */
		} else if (p.h.op == OP_RW) {
			for (uint32_t i = 0; i < p.h.len && c == &cut; i++)
				cut.bad |= p.data[i] != 0;
			c->got += p.h.len;
			for (uint32_t off = 0; ok && c == &echo && off < p.h.len; off += VS_SLOT_DATA)
				ok = vs_conn_send(d, c, OP_RW, 0, p.data + off,
						  p.h.len - off < VS_SLOT_DATA ? p.h.len - off : VS_SLOT_DATA, WHY(res));
			if (ok && c->got - c->told >= VS_BUF / 4)
				ok = vs_conn_send(d, c, OP_CREDIT_UPDATE, 0, NULL, 0, WHY(res));
		} else if (p.h.op == OP_SHUTDOWN && !c->shut) {
			/* 7001: the host went, the guest's RST ends it; 7002: the
			 * host sends no more, the guest closes too */
			c->shut = true;
			c->closed = c == &cut;
			ok = vs_conn_send(d, c, c == &cut ? OP_RST : OP_SHUTDOWN, c == &cut ? 0 : VS_SHUT_BOTH, NULL, 0,
					  WHY(res));
		} else if (p.h.op == OP_RST) {
			c->closed = true;
		} else if (p.h.op == OP_CREDIT_REQUEST) {
			ok = vs_conn_send(d, c, OP_CREDIT_UPDATE, 0, NULL, 0, WHY(res));
		} else if (p.h.op != OP_CREDIT_UPDATE && p.h.op != OP_SHUTDOWN && !unexpected++) {
			snprintf(odd, sizeof(odd), "%s from host port %u to guest port %u", op_name(p.h.op), hp, gp);
		}
		if (!ok)
			return failed(res, "answering %s on guest port %u", op_name(p.h.op), gp);
	}
	if (!done)
		return failed(res, "no connection to guest port %u in %d s (the host side of hostile_guest.sh?)",
			      VS_WIN_DONE, VS_WIN_SECS);
	if (refused != 1)
		return failed(res, "%u connection requests to guest port %u, want 1", refused, VS_WIN_REFUSED);
	if (ignored_after < 4 || ignored_after > 10)
		return failed(res, "the request to guest port %u that was never answered: %s %.1f s, want about 5",
			      VS_WIN_IGNORED, ignored ? "reset after" : "never came, ", ignored_after);
	if (!cut.closed || !cut.got || cut.bad)
		return failed(res, "guest port %u (the host client killed mid-stream): %s, %u bytes%s, %s", VS_WIN_CUT,
			      cut.hport ? "accepted" : "no request", cut.got, cut.bad ? " not all zero" : "",
			      cut.shut ? "SHUTDOWN" : cut.closed ? "RST" : "not closed");
	if (!echo.closed || !echo.got)
		return failed(res, "guest port %u (echo): %s, %u bytes echoed, %s", VS_WIN_ECHO,
			      echo.hport ? "accepted" : "no request", echo.got, echo.closed ? "closed" : "not closed");
	if (unexpected)
		return failed(res, "%u unexpected packets, the first: %s", unexpected, odd);
	if (verbose)
		printf("HOSTILE-RUN vsock host window: %u bytes before the cut, %u echoed, port %u reset after %.1f s\n",
		       cut.got, echo.got, VS_WIN_IGNORED, ignored_after);
	res->got = "completed";
	return true;
}

/* What runs each packet case (by the case's name); own_rx: it posts the RX
 * buffers itself; host: it needs the host side of hostile_guest.sh (-H). */
static const struct vs_fn {
	const char *name;
	bool (*run)(const struct dev *d, struct result *res);
	bool own_rx, host;
} vs_fns[] = {
	{ "no_connection", vs_no_connection, false, false },
	{ "short_header", vs_short_header, false, false },
	{ "len_beyond_chain", vs_len_beyond_chain, false, false },
	{ "len_over_64k", vs_len_over_64k, false, false },
	{ "bad_type", vs_bad_type, false, false },
	{ "bad_op", vs_bad_op, false, false },
	{ "payload_not_rw", vs_payload_not_rw, false, false },
	{ "bad_src_cid", vs_bad_src_cid, false, false },
	{ "bad_dst_cid", vs_bad_dst_cid, false, false },
	{ "rx_bad_buffers", vs_rx_bad_buffers, true, false },
	{ "absurd_credit", vs_absurd_credit, false, false },
	{ "flood", vs_flood, true, false },
	{ "credit_overrun", vs_credit_overrun, true, true },
	{ "host_clients", vs_host_clients, false, true },
};

static const struct vs_fn *vs_fn_of(const struct hcase *c)
{
	for (unsigned i = 0; i < sizeof(vs_fns) / sizeof(vs_fns[0]); i++)
		if (!strcmp(vs_fns[i].name, c->name))
			return &vs_fns[i];
	die("packet case %s has no function", c->name);
	return NULL;
}

/* A packet case, on a vsock set up as a plain driver would (RX with every
 * buffer, unless the case posts its own; TX; event); then, when the device
 * did not ask for a reset, it must still answer a connection request. */
static void run_packets(const struct dev *d, const struct hcase *c, struct result *res)
{
	const struct vs_fn *fn = vs_fn_of(c);
	double t0 = now_s();
	bool ok = false;
	if (!reset(d)) {
		snprintf(res->why, sizeof(res->why), "status not 0 after reset");
		goto out;
	}
	(void)isr_take(d);
	if (!negotiate(d, F_VERSION_1 | F_INDIRECT)) {
		snprintf(res->why, sizeof(res->why), "FEATURES_OK refused");
		goto out;
	}
	queues_setup(d, QSIZE);
	status_set(d, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	if (!fn->own_rx)
		vs_rx_post(d, 0, QSIZE);
	ok = fn->run(d, res);
	res->status = status_get(d);
	res->isr = isr_take(d);
	if (res->status & S_NEEDS_RESET) {
		res->got = "reset";
		if (ok)
			snprintf(res->why, sizeof(res->why), "DEVICE_NEEDS_RESET");
		ok = false;
	} else if (ok) {
		vs_good_port = vs_port();
		struct vhdr h = vs_pkt(OP_REQUEST, vs_good_port, VS_NO_LISTENER);
		ok = (vs_put(d, &h, NULL, 0, true, WHY(res)) && vs_answered(d, WHY(res))) ||
		     failed(res, "the device stopped answering");
	}
out:
	res->recovered = recover(d, res->why + strlen(res->why), sizeof(res->why) - strlen(res->why));
	res->pass = ok && res->recovered;
	res->secs = now_s() - t0;
	reset(d);
}

static void run_case(const struct dev *d, const struct hcase *c, struct result *res)
{
	double t0 = now_s();
	struct ring r = { 0, 0 };
	res->d = d;
	res->c = c;
	res->rx = rx_pass;
	res->got = "?";
	res->why[0] = 0;
	bool ok = true;

	if (c->kind == PACKETS) {
		run_packets(d, c, res);
		return;
	}
	if (!reset(d)) {
		snprintf(res->why, sizeof(res->why), "status not 0 after reset");
		ok = false;
		goto out;
	}
	(void)isr_take(d);
	if (!strcmp(c->name, "driver_ok_without_features_ok")) {
		status_set(d, S_ACK);
		status_set(d, S_ACK | S_DRIVER);
		queues_setup(d, QSIZE);
		status_set(d, S_ACK | S_DRIVER | S_DRIVER_OK);
	} else {
		uint64_t feat = F_VERSION_1 | (strcmp(c->name, "indirect_not_negotiated") ? F_INDIRECT : 0);
		if (!negotiate(d, feat)) {
			snprintf(res->why, sizeof(res->why), "FEATURES_OK refused");
			ok = false;
			goto out;
		}
		if (c->kind == SETUP)
			setup_attack(d, c);
		else
			queues_setup(d, QSIZE);
		status_set(d, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
		if (c->kind == CHAIN) {
			uint16_t by;
			uint16_t head = chain_attack(c, &by);
			if (!strcmp(c->name, "avail_idx_jump"))
				head = good_request(d);
			publish(d, &r, head, by);
			/* A vsock pops an RX chain only to send something: a packet
			 * of no connection on TX makes it owe an RST. */
			if (d->id == ID_VSOCK && rx_pass) {
				struct vhdr h = vs_pkt(OP_RW, vs_port(), VS_NO_LISTENER);
				(void)vs_put(d, &h, NULL, 0, true, res->why, sizeof(res->why));
			}
		} else if (c->kind == REGS) {
			ok = regs_attack(d, c, res->why, sizeof(res->why));
			/* still usable right away, without a reset */
			if (ok) {
				publish(d, &r, good_request(d), 1);
				if (!wait_used(&r, 10)) {
					snprintf(res->why, sizeof(res->why), "device stopped serving after the accesses");
					ok = false;
				}
			}
		}
	}

	/* The device has up to 5 s to react (the rig runs at emulator speed). */
	bool done = false;
	for (double w0 = now_s(); now_s() - w0 < (c->expect == HARMLESS ? 0.3 : 5);) {
		res->status = status_get(d);
		if (res->status & S_NEEDS_RESET)
			break;
		if (*used_idx() != r.used_seen) {
			done = true;
			break;
		}
		usleep(1000);
	}
	res->status = status_get(d);
	res->isr = isr_take(d);
	bool needs_reset = res->status & S_NEEDS_RESET;
	/* The notification follows DEVICE_NEEDS_RESET (it is sent after the
	 * status bit is set): give it a moment to land in the ISR. */
	for (double w0 = now_s(); needs_reset && !(res->isr & 2) && now_s() - w0 < 2;) {
		usleep(1000);
		res->isr |= isr_take(d);
	}
	res->got = needs_reset ? "reset" : done ? "completed" : "nothing";
	if (c->expect == RESET && !needs_reset) {
		snprintf(res->why + strlen(res->why), sizeof(res->why) - strlen(res->why), "no DEVICE_NEEDS_RESET");
		ok = false;
	} else if (c->expect == RESET && !(res->isr & 2)) {
		snprintf(res->why, sizeof(res->why), "DEVICE_NEEDS_RESET without a config change notification");
		ok = false;
	} else if (c->expect == HARMLESS && needs_reset) {
		snprintf(res->why, sizeof(res->why), "DEVICE_NEEDS_RESET after harmless accesses");
		ok = false;
	} else if (c->expect == EITHER && !needs_reset && !done) {
		snprintf(res->why, sizeof(res->why), "neither completed nor DEVICE_NEEDS_RESET");
		ok = false;
	}
out:
	res->recovered = recover(d, res->why + strlen(res->why), sizeof(res->why) - strlen(res->why));
	res->pass = ok && res->recovered;
	res->secs = now_s() - t0;
	reset(d);
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-v"))
			verbose = 1;
		else if (!strcmp(argv[i], "-H"))
			vs_host = true;
		else
			only = argv[i];   /* one case by name */
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	ram_end = ram_end_read();
	desc_pg = page_alloc();
	avail_pg = page_alloc();
	used_pg = page_alloc();
	for (unsigned i = 0; i < 4; i++)
		buf_pg[i] = page_alloc();
	for (unsigned i = 0; i < QSIZE; i++)
		vs_rx_pg[i] = page_alloc();
	vs_data_pg = page_alloc();
	find_mmio();
	find_pci();
	printf("HOSTILE-RUN ram_end=0x%" PRIx64 " devices=%d\n", ram_end, n_devs);
	for (int i = 0; i < n_devs; i++)
		printf("HOSTILE-RUN device %s %s idx=%u queue_max=%u\n", devs[i].where, kind_name(devs[i].id),
		       devs[i].idx, devs[i].qmax);
	if (!n_devs)
		die("no virtio-net, virtio-blk or virtio-vsock device found (drivers unbound?)");

	static struct result res[16 * 2 * N_CASES];
	unsigned n = 0, passed = 0;
	double t0 = now_s();
	for (int i = 0; i < n_devs; i++) {
		/* a NIC or a vsock twice: chains on TX, then on RX (popped at the
		 * RX kick; a vsock's when it has a packet to send) */
		for (int pass = 0; pass < (devs[i].id == ID_BLK ? 1 : 2); pass++) {
			rx_pass = pass == 1;
			for (unsigned k = 0; k < N_CASES; k++) {
				const struct hcase *c = &cases[k];
				if (only && strcmp(only, c->name))
					continue;
				if (c->devs && !(c->devs & (1u << devs[i].id)))
					continue;
				if (devs[i].id != ID_BLK && (rx_pass ? c->rx == 0 : c->rx == 2))
					continue;
				if (c->kind == PACKETS && vs_fn_of(c)->host && !vs_host)
					continue;
				if (verbose)
					printf("HOSTILE-RUN %s %s%s\n", devs[i].where, rx_pass ? "rx " : "", c->name);
				run_case(&devs[i], c, &res[n]);
				passed += res[n].pass;
				n++;
			}
		}
		rx_pass = false;
	}
	double total = now_s() - t0;
	/* Give minivmm's last warnings time to reach the log before ours. */
	sleep(1);
	for (unsigned i = 0; i < n; i++) {
		const struct result *r = &res[i];
		printf("HOSTILE-CASE tr=%s dev=%s idx=%u q=%s case=%s expect=%s got=%s status=0x%x isr=0x%x "
		       "recovered=%s secs=%.2f %s%s%s%s%s\n",
		       r->d->pci ? "pci" : "mmio", kind_name(r->d->id), r->d->idx,
		       r->d->id == ID_BLK ? "req" : r->c->kind == PACKETS ? "pkt" : r->rx ? "rx" : "tx", r->c->name,
		       r->c->expect == RESET ? "reset" : r->c->expect == HARMLESS ? "harmless" : "either",
		       r->got, r->status, r->isr, r->recovered ? "yes" : "no", r->secs, r->pass ? "PASS" : "FAIL",
		       r->why[0] ? " why=" : "", r->why, r->c->log ? " log=" : "", r->c->log ? r->c->log : "");
	}
	printf("HOSTILE-SUMMARY cases=%u passed=%u failed=%u secs=%.1f\n", n, passed, n - passed, total);
	return passed == n ? 0 : 1;
}
