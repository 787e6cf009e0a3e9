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
 * (one line; q is req for a disk, tx or rx for a NIC)
 * and "HOSTILE-SUMMARY cases=N passed=P failed=F". Exit status 0 when all pass.
 * idx is the device's position among the devices of its kind and transport
 * (the host script maps it to minivmm's name, e.g. blk1). */
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
static uint64_t ram_end;   /* end of the highest System RAM range */
static int verbose;

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
	unsigned per_kind[3] = { 0 };
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
		if (rd(&d, M_MAGIC, 4) != 0x74726976 || (id != ID_NET && id != ID_BLK)) {
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
	unsigned per_kind[3] = { 0 };
	for (int i = 0; i < n; i++) {
		char dir[300];
		snprintf(dir, sizeof(dir), "/sys/bus/pci/devices/%s", ents[i]->d_name);
		unsigned long vendor = read_hex(dir, "vendor"), device = read_hex(dir, "device");
		if (ents[i]->d_name[0] == '.' || vendor != 0x1af4 || (device != 0x1041 && device != 0x1042) ||
		    n_devs == 16)
			continue;
		char drv[512];
		snprintf(drv, sizeof(drv), "%s/driver", dir);
		if (access(drv, F_OK) == 0)
			die("%s is still bound to a driver: unbind it first", dir);
		struct dev d = { .pci = true, .id = device == 0x1042 ? ID_BLK : ID_NET };
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

/* Chain cases on a NIC attack its RX queue instead of TX during the RX pass. */
static bool rx_pass;

/* The queue the cases attack: blk request queue 0, net TX queue 1 (RX
 * queue 0 in the RX pass). */
static unsigned data_queue(const struct dev *d)
{
	return d->id == ID_NET && !rx_pass ? 1 : 0;
}

/* A NIC's other queue of pair 0 (both must be ready for the device to run
 * it): its own, empty, rings in buf_pg[3], 3 small parts in one page. */
static void other_queue_setup(const struct dev *d)
{
	if (d->id != ID_NET)
		return;
	memset(buf_pg[3].va, 0, PAGE);
	queue_setup(d, data_queue(d) ^ 1, QSIZE, buf_pg[3].pa, buf_pg[3].pa + 0x400, buf_pg[3].pa + 0x800);
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

/* A well-formed request in descriptors 0..: blk: read sector 0 into
 * buf_pg[1]; net: a 60-byte broadcast frame behind a zero virtio-net header.
 * Returns the head. */
static uint16_t good_request(const struct dev *d)
{
	if (d->id == ID_BLK) {
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
	status_set(d, S_ACK | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	publish(d, &r, good_request(d), 1);
	if (!wait_used(&r, 10))
		return snprintf(why, n, "request not completed (status 0x%x)", status_get(d)), false;
	if (d->id == ID_BLK && (buf_pg[2].va[0] != 0 || *used_len(0) != 513))
		return snprintf(why, n, "read: status %u, used len %u", buf_pg[2].va[0], *used_len(0)), false;
	if (status_get(d) & S_NEEDS_RESET)
		return snprintf(why, n, "NEEDS_RESET after a good request"), false;
	return true;
}

/* ---- the cases ---- */

enum expect { RESET, HARMLESS, EITHER };
enum kind { CHAIN, SETUP, REGS };

struct hcase {
	const char *name;
	enum kind kind;
	enum expect expect;
	const char *log;            /* what minivmm's warning says (RESET cases) */
	unsigned devs;              /* bit ID_NET / ID_BLK: where it applies (0: both) */
	unsigned rx;                /* NICs: 0 TX pass only, 1 both passes, 2 RX pass only */
};

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
		/* blk config is 60 bytes here, net's 12 or so: these offsets are
		 * past both, inside the device's window (mmio: the window is 0x200
		 * long, config from 0x100; pci: a 4 KiB device region) */
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
		(void)config_rd(d, d->id == ID_BLK ? 58 : 10, 4);
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
	find_mmio();
	find_pci();
	printf("HOSTILE-RUN ram_end=0x%" PRIx64 " devices=%d\n", ram_end, n_devs);
	for (int i = 0; i < n_devs; i++)
		printf("HOSTILE-RUN device %s %s idx=%u queue_max=%u\n", devs[i].where,
		       devs[i].id == ID_BLK ? "blk" : "net", devs[i].idx, devs[i].qmax);
	if (!n_devs)
		die("no virtio-net or virtio-blk device found (drivers unbound?)");

	static struct result res[16 * 2 * N_CASES];
	unsigned n = 0, passed = 0;
	double t0 = now_s();
	for (int i = 0; i < n_devs; i++) {
		/* a NIC twice: chains on TX, then on RX (popped at the RX kick) */
		for (int pass = 0; pass < (devs[i].id == ID_NET ? 2 : 1); pass++) {
			rx_pass = pass == 1;
			for (unsigned k = 0; k < N_CASES; k++) {
				const struct hcase *c = &cases[k];
				if (only && strcmp(only, c->name))
					continue;
				if (c->devs && !(c->devs & (1u << devs[i].id)))
					continue;
				if (devs[i].id == ID_NET && (rx_pass ? c->rx == 0 : c->rx == 2))
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
		       r->d->pci ? "pci" : "mmio", r->d->id == ID_BLK ? "blk" : "net", r->d->idx,
		       r->d->id == ID_BLK ? "req" : r->rx ? "rx" : "tx", r->c->name,
		       r->c->expect == RESET ? "reset" : r->c->expect == HARMLESS ? "harmless" : "either",
		       r->got, r->status, r->isr, r->recovered ? "yes" : "no", r->secs, r->pass ? "PASS" : "FAIL",
		       r->why[0] ? " why=" : "", r->why, r->c->log && r->c->expect == RESET ? " log=" : "",
		       r->c->log && r->c->expect == RESET ? r->c->log : "");
	}
	printf("HOSTILE-SUMMARY cases=%u passed=%u failed=%u secs=%.1f\n", n, passed, n - passed, total);
	return passed == n ? 0 : 1;
}
