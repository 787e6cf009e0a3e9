/* virtio-blk datapath (devices/virtio/blk.c, its synchronous and io_uring
 * engines) over a raw image in memory, with an in-process synthetic guest
 * driver and no VM: what the device costs per request, how the engines
 * compare, and how requests share interrupts and kicks.
 *
 *  - The image: 256 MiB in $TMPDIR if set, else /dev/shm (else /tmp),
 *    written whole first so that reads find data in the page cache;
 *    unlinked at once and opened by the device as /proc/self/fd/N, so that
 *    nothing is left behind however the benchmark ends. The file system
 *    matters to io_uring: what it cannot do without blocking goes to a
 *    kernel worker thread ("iou-wrk-TID", counted with the device's
 *    threads). Seen on Linux 6.18: tmpfs reads and writes, ext4 writes all
 *    go there; ext4 reads from the page cache complete inline. The header
 *    names the file system.
 *  - Fake guest memory and rings (the driver: tests/bench/bench_driver.h);
 *    the driver negotiates what Linux does (VERSION_1, EVENT_IDX, SEG_MAX,
 *    BLK_SIZE, FLUSH, MQ with more than one queue; no INDIRECT_DESC, so each
 *    request is a chain of three descriptors: 16-byte header, data, status
 *    byte) and runs one thread per queue (a guest vCPU) that keeps QD
 *    requests in flight: it waits for the queue's interrupts (the call
 *    eventfd the device signals through irq->queue()), checks every
 *    completion (status VIRTIO_BLK_S_OK, used length), sends the slot's
 *    next request and kicks when EVENT_IDX says so.
 *  - Workloads: 4 KiB random reads and writes (4 KiB aligned, all over the
 *    image) at QD1 and QD32 on 1 and 4 queues; 1 MiB sequential reads and
 *    writes at QD8 on one queue. FLUSH is negotiated (writeback: no write
 *    waits for a sync), and the driver sends none.
 * Engines: sync (poll=0), sync50 (the thread engine with --disk poll=50:
 * the queue looks at the ring every 50 us after a batch, kicks off), syncA
 * (poll=auto, minivmm's default: each queue polls or not, whichever it
 * measures to serve more), uring.
 * Each line: engine, workload, queues, QD per queue, thousands of requests
 * per second and MB/s (data, 10^6 bytes) in total, the CPU the whole process
 * used (user+sys, in cores: the driver threads included), the CPU the whole
 * host was busy (in cores: above "cores" means others were running too),
 * the CPU of the device's threads alone ("blk0-q<i>", and the io_uring
 * workers the kernel starts for them), the device threads' CPU microseconds
 * per request (the figure that does not depend on how busy the host is),
 * requests per interrupt (irq->queue() calls) and per kick (kick eventfd
 * writes the driver made because avail_event asked: batching both ways),
 * and a check:
 * requests that failed (a status other than OK, a wrong used length) and
 * needs_reset() calls, both 0 on a good run.
 *
 * Usage: bench_blk_datapath [SECONDS_PER_RUN (default 2) [FILTER]]   (30 runs)
 * FILTER: only the runs whose label contains it, e.g. "uring randread4k q1
 * qd32"; each is followed by what the device served in all (warm-up and
 * wind-down included), the count to divide a system-call trace by. */
#define _GNU_SOURCE
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <linux/virtio_blk.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "devices/virtio/blk.h"
#include "vmm/base/guest_mem.h"
#include "tests/bench/bench_driver.h"

#define QSIZE       256u
#define MAXQ        4u
#define MAX_QD      32u
#define IMG_SIZE    (256ull << 20)
#define IMG_SECTORS (IMG_SIZE / 512)
#define DEV_THREADS "blk0-q"   /* the worker threads' names: blk<index>-q<queue> */
#define F(b)        (1ull << (b))

/* Layout: queue q's rings at RING(q); its headers and status bytes at
 * META(q) (slot k: header at +32k, status at +32k+16); its data at DATA(q),
 * 32 MiB, slot k's at + k * the request's size. */
#define RING(q)   (0x100000ull + 0x10000ull * (q))
#define META(q)   (0x200000ull + 0x10000ull * (q))
#define DATA(q)   (0x1000000ull + 0x2000000ull * (q))
#define RAM_SIZE  (DATA(MAXQ))

static struct guest_mem mem;
static struct virtio_queue queues[MAXQ];
static atomic_bool running;
static char img_path[64];

static void *gpa(uint64_t a)
{
	return bench_gpa(&mem, a);
}

/* ---- the transport side: interrupts are the call eventfds ---- */

static _Atomic uint64_t irq_calls;
static atomic_uint needs_reset;

static void irq_queue(const struct virtio_irq *irq, unsigned q)
{
	uint64_t one = 1;
	atomic_fetch_add_explicit(&irq_calls, 1, memory_order_relaxed);
	if (q < MAXQ && write(queues[q].call_fd, &one, sizeof(one)) < 0) {
		/* counter full: pending anyway */
	}
}
static void irq_config(const struct virtio_irq *irq) {}
static void irq_needs_reset(const struct virtio_irq *irq) { atomic_fetch_add(&needs_reset, 1); }
static const struct virtio_irq irq = { .queue = irq_queue, .config = irq_config, .needs_reset = irq_needs_reset };

/* ---- the synthetic driver ---- */

struct workload {
	const char *name;
	bool write, random;
	uint32_t len;   /* data bytes per request */
};

struct queue_drv {
	unsigned index, qd;
	const struct workload *wl;
	struct dq dq;
	pthread_t thread;
	uint64_t rng;          /* xorshift64 state: random sectors */
	uint64_t next_sector;  /* sequential ones */
	_Atomic uint64_t done, failures;
};
static struct queue_drv drv[MAXQ];

static uint64_t next_sector(struct queue_drv *d)
{
	uint64_t sectors = d->wl->len / 512;
	if (d->wl->random) {
		d->rng ^= d->rng << 13;
		d->rng ^= d->rng >> 7;
		d->rng ^= d->rng << 17;
		return d->rng % (IMG_SECTORS / sectors) * sectors;
	}
	uint64_t s = d->next_sector;
	d->next_sector = (s + sectors) % IMG_SECTORS;
	return s;
}

/* Slot k's request again, at a new sector, made available (not published). */
static void send_slot(struct queue_drv *d, unsigned k)
{
	struct virtio_blk_outhdr h = { .type = htole32(d->wl->write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN),
				       .sector = htole64(next_sector(d)) };
	memcpy(gpa(META(d->index) + 32 * k), &h, sizeof(h));
	*(uint8_t *)gpa(META(d->index) + 32 * k + 16) = 0xff;
	dq_add(&d->dq, (uint16_t)(3 * k));
}

/* Slot k owns descriptors 3k..3k+2 for the whole run. */
static void setup_queue(struct queue_drv *d, unsigned index, const struct workload *wl, unsigned qd)
{
	d->index = index;
	d->qd = qd;
	d->wl = wl;
	d->rng = 0x9e3779b97f4a7c15ull * (index + 1);
	d->next_sector = IMG_SECTORS / MAXQ * index;
	atomic_store(&d->done, 0);
	atomic_store(&d->failures, 0);
	dq_init(&d->dq, &mem, &queues[index], QSIZE, RING(index));
	uint16_t data_flags = wl->write ? 0 : VIRTQ_DESC_F_WRITE;
	for (unsigned k = 0; k < qd; k++) {
		uint16_t h = (uint16_t)(3 * k);
		uint64_t meta = META(index) + 32 * k;
		d->dq.desc[h] = (struct virtq_desc){ htole64(meta), htole32(16), htole16(VIRTQ_DESC_F_NEXT),
						     htole16(h + 1) };
		d->dq.desc[h + 1] = (struct virtq_desc){ htole64(DATA(index) + (uint64_t)k * wl->len), htole32(wl->len),
							 htole16(data_flags | VIRTQ_DESC_F_NEXT), htole16(h + 2) };
		d->dq.desc[h + 2] = (struct virtq_desc){ htole64(meta + 16), htole32(1), htole16(VIRTQ_DESC_F_WRITE), 0 };
	}
}

/* A completion is good when its status is OK and its used length covers
 * what the device wrote: the data and the status for a read, the status
 * for a write. */
static bool completion_ok(const struct queue_drv *d, const struct virtq_used_elem *e)
{
	unsigned k = e->id / 3;
	if (e->id % 3 || k >= d->qd)
		return false;
	uint8_t st = *(uint8_t *)gpa(META(d->index) + 32 * k + 16);
	return st == VIRTIO_BLK_S_OK && e->len == (d->wl->write ? 1 : d->wl->len + 1);
}

static void *queue_main(void *arg)
{
	struct queue_drv *d = arg;
	struct pollfd pfd = { .fd = d->dq.queue->call_fd, .events = POLLIN };
	char name[16];
	snprintf(name, sizeof(name), "drv-q%u", d->index);
	pthread_setname_np(pthread_self(), name);

	uint16_t old = d->dq.avail_idx;
	for (unsigned k = 0; k < d->qd; k++)
		send_slot(d, k);
	dq_publish(&d->dq, old);
	while (atomic_load_explicit(&running, memory_order_relaxed)) {
		struct virtq_used_elem e;
		uint64_t done = 0, failed = 0;
		old = d->dq.avail_idx;
		while (dq_used(&d->dq, &e)) {
			done++;
			if (!completion_ok(d, &e)) {
				failed++;
				if (e.id % 3 || e.id / 3 >= d->qd)
					continue;   /* not ours: never sent again */
			}
			send_slot(d, e.id / 3);
		}
		dq_publish(&d->dq, old);
		if (done) {
			atomic_fetch_add_explicit(&d->done, done, memory_order_relaxed);
			if (failed)
				atomic_fetch_add_explicit(&d->failures, failed, memory_order_relaxed);
			continue;
		}
		if (dq_arm(&d->dq))
			continue;
		if (poll(&pfd, 1, 10) > 0) {
			uint64_t v;
			if (read(pfd.fd, &v, sizeof(v)) < 0) {
			}
		}
	}
	return NULL;
}

/* ---- one run ---- */

struct result {
	double iops, bytes_per_s, cores, host_cores, dev_cores, per_irq, per_kick;
	uint64_t failures;
	unsigned resets;
	struct virtio_blk_stats served;   /* in all, warm-up and wind-down included */
};

/* Returns 0, or -1 with err saying why the disk could not be made. */
static int run(enum virtio_blk_engine engine, unsigned poll_us, bool poll_auto, const struct workload *wl, unsigned nq,
	       unsigned qd, double secs, struct result *r, char *err, size_t errlen)
{
	struct virtio_blk_params p = { .path = img_path, .num_queues = nq, .engine = engine, .poll_us = poll_us,
				       .poll_auto = poll_auto };
	struct virtio_blk *blk = virtio_blk_create(&p, err, errlen);
	if (!blk)
		return -1;
	for (unsigned q = 0; q < nq; q++)
		setup_queue(&drv[q], q, wl, qd);
	uint64_t wanted = F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_EVENT_IDX) | F(VIRTIO_BLK_F_SEG_MAX) |
			  F(VIRTIO_BLK_F_BLK_SIZE) | F(VIRTIO_BLK_F_FLUSH) | F(VIRTIO_BLK_F_MQ);
	uint64_t offered = virtio_blk_ops.features(blk) | F(VIRTIO_F_VERSION_1) | F(VIRTIO_F_EVENT_IDX);
	unsigned resets0 = atomic_load(&needs_reset);
	if (virtio_blk_ops.activate(blk, wanted & offered, queues, nq, &irq)) {
		snprintf(err, errlen, "activation failed");
		virtio_blk_destroy(blk);
		return -1;
	}
	atomic_store(&running, true);
	for (unsigned q = 0; q < nq; q++)
		pthread_create(&drv[q].thread, NULL, queue_main, &drv[q]);

	usleep(300000);   /* warm up */
	uint64_t done0 = 0, kicks0 = 0, done1 = 0, kicks1 = 0;
	for (unsigned q = 0; q < nq; q++) {
		done0 += atomic_load(&drv[q].done);
		kicks0 += atomic_load(&drv[q].dq.kicks);
	}
	uint64_t irq0 = atomic_load(&irq_calls);
	struct bench_window win;
	bench_window_sleep(&win, DEV_THREADS, secs);
	uint64_t irq1 = atomic_load(&irq_calls);
	for (unsigned q = 0; q < nq; q++) {
		done1 += atomic_load(&drv[q].done);
		kicks1 += atomic_load(&drv[q].dq.kicks);
	}
	double dt = win.t1 - win.t0, n = (double)(done1 - done0);
	r->iops = n / dt;
	r->bytes_per_s = r->iops * wl->len;
	bench_window_cores(&win, &r->cores, &r->host_cores, &r->dev_cores);
	r->per_irq = irq1 > irq0 ? n / (double)(irq1 - irq0) : 0;
	r->per_kick = kicks1 > kicks0 ? n / (double)(kicks1 - kicks0) : 0;

	atomic_store(&running, false);
	r->failures = 0;
	for (unsigned q = 0; q < nq; q++) {
		pthread_join(drv[q].thread, NULL);
		r->failures += atomic_load(&drv[q].failures);
	}
	virtio_blk_ops.reset(blk);   /* the workers finish what is in flight, then are joined */
	virtio_blk_stats(blk, &r->served);
	virtio_blk_destroy(blk);
	r->resets = atomic_load(&needs_reset) - resets0;
	return 0;
}

/* ---- the image ---- */

/* Makes the image, written whole, and unlinks it: img_path names it
 * through the fd kept open. Returns the directory it went in, or NULL. */
static const char *make_image(int *fd_out)
{
	const char *dirs[] = { getenv("TMPDIR"), "/dev/shm", "/tmp" };
	for (unsigned i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		if (!dirs[i])
			continue;
		char path[256];
		snprintf(path, sizeof(path), "%s/bench-blk-XXXXXX", dirs[i]);
		int fd = mkstemp(path);
		if (fd < 0)
			continue;
		unlink(path);
		static uint8_t chunk[1 << 20];
		for (size_t b = 0; b < sizeof(chunk); b++)
			chunk[b] = (uint8_t)(b * 7 + b / 512);
		uint64_t off = 0;
		while (off < IMG_SIZE && pwrite(fd, chunk, sizeof(chunk), (off_t)off) == (ssize_t)sizeof(chunk))
			off += sizeof(chunk);
		if (off < IMG_SIZE) {
			fprintf(stderr, "image in %s: %s\n", dirs[i], strerror(errno));
			close(fd);
			continue;
		}
		snprintf(img_path, sizeof(img_path), "/proc/self/fd/%d", fd);
		*fd_out = fd;
		return dirs[i];
	}
	return NULL;
}

/* The image's file system, as far as io_uring cares. */
static const char *fs_name(int fd)
{
	struct statfs st;
	if (fstatfs(fd, &st))
		return "file system unknown";
	switch (st.f_type) {
	case TMPFS_MAGIC: return "tmpfs";
	case EXT4_SUPER_MAGIC: return "ext4";
	case XFS_SUPER_MAGIC: return "xfs";
	case BTRFS_SUPER_MAGIC: return "btrfs";
	default: return "file system unknown";
	}
}

int main(int argc, char **argv)
{
	double secs = argc > 1 ? atof(argv[1]) : 2.0;
	const char *filter = argc > 2 ? argv[2] : NULL;
	if (secs <= 0 || secs > 30 || argc > 3) {
		fprintf(stderr, "usage: %s [SECONDS_PER_RUN (0-30, default 2) [FILTER]]\n", argv[0]);
		return 2;
	}
	int img_fd;
	const char *dir = make_image(&img_fd);
	if (!dir) {
		fprintf(stderr, "cannot make a %llu MiB image in /dev/shm, $TMPDIR or /tmp\n",
			(unsigned long long)(IMG_SIZE >> 20));
		return 1;
	}
	void *ram = mmap(NULL, RAM_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
	if (ram == MAP_FAILED || guest_mem_add_region(&mem, 0, RAM_SIZE, ram)) {
		fprintf(stderr, "no memory\n");
		return 1;
	}
	for (unsigned q = 0; q < MAXQ; q++) {
		queues[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		queues[q].call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	}

	static const struct workload rand_read = { "randread4k", false, true, 4096 };
	static const struct workload rand_write = { "randwrite4k", true, true, 4096 };
	static const struct workload seq_read = { "seqread1m", false, false, 1 << 20 };
	static const struct workload seq_write = { "seqwrite1m", true, false, 1 << 20 };
	struct {
		const struct workload *wl;
		unsigned nq, qd;
	} runs[18];
	unsigned n_runs = 0;
	const struct workload *rand[2] = { &rand_read, &rand_write };
	for (unsigned w = 0; w < 2; w++)
		for (unsigned qd = 1; qd <= MAX_QD; qd *= 32)
			for (unsigned nq = 1; nq <= MAXQ; nq *= 4)
				runs[n_runs++] = (typeof(runs[0])){ rand[w], nq, qd };
	runs[n_runs++] = (typeof(runs[0])){ &seq_read, 1, 8 };
	runs[n_runs++] = (typeof(runs[0])){ &seq_write, 1, 8 };

	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	printf("virtio-blk datapath on a %llu MiB raw image in %s (%s, page cache), %.1f s per run, %ld CPUs\n",
	       (unsigned long long)(IMG_SIZE >> 20), dir, fs_name(img_fd), secs, cpus);
	printf("synthetic guest: one driver thread per queue keeping QD requests in flight, queue size %u, EVENT_IDX\n",
	       QSIZE);
	printf("cores: the process; host: the machine; dev: the device's threads (%s<i>, their io_uring workers);\n"
	       "dev us/rq: their CPU per request; rq/irq, rq/kick: requests per interrupt and per kick;\n"
	       "check: failed requests, resets\n", DEV_THREADS);
	printf("%-6s %-11s %2s %3s %8s %8s %6s %6s %6s %9s %7s %8s  %s\n", "engine", "workload", "q", "QD", "kIOPS",
	       "MB/s", "cores", "host", "dev", "dev us/rq", "rq/irq", "rq/kick", "check");
	static const struct {
		const char *name;
		enum virtio_blk_engine engine;
		unsigned poll_us;
		bool poll_auto;
	} engines[] = { { "sync", VIRTIO_BLK_ENGINE_SYNC, 0, false },
			{ "sync50", VIRTIO_BLK_ENGINE_SYNC, 50, false },
			{ "syncA", VIRTIO_BLK_ENGINE_SYNC, 50, true },
			{ "uring", VIRTIO_BLK_ENGINE_URING, 0, false } };
	int status = 0;
	for (unsigned e = 0; e < sizeof(engines) / sizeof(engines[0]); e++) {
		for (unsigned i = 0; i < n_runs; i++) {
			char label[64], err[512];
			snprintf(label, sizeof(label), "%s %s q%u qd%u", engines[e].name, runs[i].wl->name, runs[i].nq,
				 runs[i].qd);
			if (filter && !strstr(label, filter))
				continue;
			struct result r;
			if (run(engines[e].engine, engines[e].poll_us, engines[e].poll_auto, runs[i].wl, runs[i].nq, runs[i].qd, secs, &r, err,
				sizeof(err))) {
				if (engines[e].engine == VIRTIO_BLK_ENGINE_URING && strstr(err, "io_uring unavailable")) {
					printf("SKIP %s runs: %s\n", engines[e].name, err);
					break;
				}
				fprintf(stderr, "%s: %s\n", label, err);
				return 1;
			}
			char check[64];
			if (r.failures || r.resets)
				snprintf(check, sizeof(check), "FAILED %llu, resets %u", (unsigned long long)r.failures,
					 r.resets);
			else
				snprintf(check, sizeof(check), "ok");
			printf("%-6s %-11s %2u %3u %8.1f %8.1f %6.2f %6.2f %6.2f %9.2f %7.2f %8.2f  %s\n", engines[e].name,
			       runs[i].wl->name, runs[i].nq, runs[i].qd, r.iops / 1e3, r.bytes_per_s / 1e6, r.cores,
			       r.host_cores, r.dev_cores, r.iops > 0 ? r.dev_cores / r.iops * 1e6 : 0, r.per_irq,
			       r.per_kick, check);
			if (filter)
				printf("  served in all: %llu reads, %llu writes, %llu through io_uring, %llu errors;"
				       " poll=auto epochs: %llu polled, %llu on kicks\n",
				       (unsigned long long)r.served.reads, (unsigned long long)r.served.writes,
				       (unsigned long long)r.served.uring_requests, (unsigned long long)r.served.errors,
				       (unsigned long long)r.served.poll_epochs, (unsigned long long)r.served.kick_epochs);
			fflush(stdout);
			if (r.failures || r.resets)
				status = 1;
		}
	}
	return status;
}
