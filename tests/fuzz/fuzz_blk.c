/* libFuzzer target for virtio-blk's request path (devices/virtio/blk.c): the
 * input is a hostile driver's small guest, i.e. the whole contents of guest
 * RAM with one queue's rings at fixed addresses, and a few settings. The
 * device's own drain() (pop, serve, push, notify) runs on it, against a
 * 64 KiB disk image in memory. Checked: the image keeps its size; each
 * drain() call stops within its budget; a broken queue stays broken. ASan/UBSan (clang, halting) catch the
 * rest: this target found the NULL + 0 in iov_fill() (issue 13, item 4).
 *
 * blk.c is included, not linked, to reach its static drain(). Build and run:
 * tests/fuzz/run.sh. FUZZ_BLK_WRITE_SEEDS=DIR writes seed inputs and exits.
 *
 * Input layout (little-endian), missing bytes read as zero:
 *   0   u8  queue size = 1 << (b % 9) (1..256)
 *   1   u8  bit 0 EVENT_IDX, bit 1 INDIRECT_DESC, bit 2 read-only disk,
 *           bit 3 FLUSH negotiated (else every write is synced), bit 4
 *           DISCARD and WRITE_ZEROES negotiated (ranges punched or zeroed in
 *           the image, a memfd: it punches holes, zeros are written), bit 5
 *           the io_uring engine (where the kernel allows it: its requests
 *           in flight are then completed by the worker's stop op, as a pause
 *           would, after the drains)
 *   2   u16 starting index (the device's last_avail_idx and used_idx)
 *   4   RAM (16 KiB at guest address 0): descriptor table at 0x0, available
 *       ring at 0x1000, used ring at 0x2000, buffers anywhere
 */
#define _GNU_SOURCE
#include "devices/virtio/blk.c"
#include "fuzz_check.h"
#include "fuzz_ram.h"

#include <sys/mman.h>
#include <sys/stat.h>

#define HDR       4
#define RAM_SIZE  0x4000u
#define DESC_GPA  0x0u
#define AVAIL_GPA 0x1000u
#define USED_GPA  0x2000u
#define DISK_SIZE 0x10000

static uint8_t ram[RAM_SIZE];
static struct virtio_blk *disks[2][2];   /* [io_uring][read-only] */
static int disk_fd = -1;
static unsigned notified;

static void irq_queue(const struct virtio_irq *irq, unsigned q)
{
	(void)irq;
	CHECK(q == 0);
	notified++;
}

static void irq_other(const struct virtio_irq *irq)
{
	(void)irq;
}

static const struct virtio_irq fuzz_irq = { irq_queue, irq_other, irq_other, NULL };

static void setup_once(void)
{
	if (disk_fd >= 0)
		return;
	disk_fd = memfd_create("fuzz-blk-disk", MFD_CLOEXEC);
	CHECK(disk_fd >= 0 && ftruncate(disk_fd, DISK_SIZE) == 0);
	char path[64], err[256];
	snprintf(path, sizeof(path), "/proc/self/fd/%d", disk_fd);
	for (int uring = 0; uring < 2; uring++)
		for (int ro = 0; ro < 2; ro++) {
			disks[uring][ro] = virtio_blk_create(
				&(struct virtio_blk_params){ .path = path, .readonly = ro, .num_queues = 1,
							     .engine = uring ? VIRTIO_BLK_ENGINE_AUTO : VIRTIO_BLK_ENGINE_SYNC },
				err, sizeof(err));
			if (!disks[uring][ro]) {
				fprintf(stderr, "fuzz_blk: %s\n", err);
				abort();
			}
		}
}

/* Seeds: one request each (IN, OUT, FLUSH with extra writable bytes, GET_ID,
 * an unknown type, DISCARD of two ranges, WRITE_ZEROES with unmap), header
 * and status in their own descriptors, on each engine. */
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)v); put16(p + 2, (uint16_t)(v >> 16)); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)v); put32(p + 4, (uint32_t)(v >> 32)); }

static void desc(uint8_t *r, unsigned i, uint64_t addr, uint32_t len, uint16_t flags, uint16_t next)
{
	uint8_t *d = r + DESC_GPA + 16 * i;
	put64(d, addr);
	put32(d + 8, len);
	put16(d + 12, flags);
	put16(d + 14, next);
}

static void write_seeds(const char *dir)
{
	static const struct { const char *name; uint32_t type; uint32_t data_len; bool data_write; } reqs[] = {
		{ "read", VIRTIO_BLK_T_IN, 4096, true },
		{ "write", VIRTIO_BLK_T_OUT, 4096, false },
		{ "flush-with-writable-bytes", VIRTIO_BLK_T_FLUSH, 8, true },
		{ "get-id", VIRTIO_BLK_T_GET_ID, 20, true },
		{ "unknown-type", 99, 16, true },
		{ "discard", VIRTIO_BLK_T_DISCARD, 32, false },
		{ "write-zeroes", VIRTIO_BLK_T_WRITE_ZEROES, 16, false },
	};
	for (unsigned k = 0; k < 2 * sizeof(reqs) / sizeof(reqs[0]); k++) {
		unsigned i = k / 2;
		bool uring = k & 1;
		static uint8_t in[HDR + RAM_SIZE];
		memset(in, 0, sizeof(in));
		in[0] = 4;      /* 16 entries */
		in[1] = 1 | 8 | 16 | (uring ? 32 : 0);   /* EVENT_IDX, FLUSH, DISCARD and WRITE_ZEROES, io_uring */
		uint8_t *r = in + HDR;
		desc(r, 0, 0x3000, 16, VIRTQ_DESC_F_NEXT, 1);   /* header */
		desc(r, 1, 0x3100, reqs[i].data_len, (uint16_t)(VIRTQ_DESC_F_NEXT | (reqs[i].data_write ? VIRTQ_DESC_F_WRITE : 0)), 2);
		desc(r, 2, 0x3ff0, 1, VIRTQ_DESC_F_WRITE, 0);     /* status */
		put32(r + 0x3000, reqs[i].type);
		put64(r + 0x3008, 8);                             /* sector */
		/* discard and write zeroes ranges: sector, count, flags */
		put64(r + 0x3100, 8);
		put32(r + 0x3108, 16);
		put32(r + 0x310c, reqs[i].type == VIRTIO_BLK_T_WRITE_ZEROES ? VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP : 0);
		put64(r + 0x3110, 100);
		put32(r + 0x3118, 4);
		put16(r + AVAIL_GPA + 2, 1);                      /* avail->idx */
		put16(r + AVAIL_GPA + 4, 0);                      /* ring[0] = head 0 */
		char name[64];
		snprintf(name, sizeof(name), "%s%s", reqs[i].name, uring ? "-uring" : "");
		fuzz_write_seed(dir, name, in, sizeof(in));
	}
}

/* Before libFuzzer starts, as the other targets do: an exit() from inside
 * the fuzz callback counts as a failure to libFuzzer. */
__attribute__((constructor)) static void maybe_write_seeds(void)
{
	const char *dir = getenv("FUZZ_BLK_WRITE_SEEDS");
	if (!dir)
		return;
	write_seeds(dir);
	exit(0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	setup_once();
	uint8_t h[HDR] = { 0 };
	memcpy(h, data, size < HDR ? size : HDR);
	struct guest_mem mem;
	fuzz_ram_load(&mem, ram, RAM_SIZE, data, size, HDR);
	uint16_t qsize = (uint16_t)(1u << (h[0] % 9));
	struct virtio_queue queue;
	memset(&queue, 0, sizeof(queue));
	queue.ready = true;
	queue.kick_fd = queue.call_fd = -1;
	if (virtq_init(&queue.vq, &mem, qsize, DESC_GPA, AVAIL_GPA, USED_GPA, h[1] & 1, h[1] & 2))
		return 0;
	uint16_t start = (uint16_t)(h[2] | h[3] << 8);
	queue.vq.last_avail_idx = queue.vq.avail_idx_shadow = queue.vq.used_idx = start;

	struct virtio_blk *blk = disks[(h[1] >> 5) & 1][(h[1] >> 2) & 1];
	struct blk_worker *w = &blk->workers[0];
	w->queue = &queue;
	blk->irq = &fuzz_irq;
	blk->writethrough = !(h[1] & 8);
	blk->discard = blk->write_zeroes = !blk->readonly && (h[1] & 16);
	atomic_store(&blk->stopping, false);
	notified = 0;

	/* drain() serves everything available: at most qsize entries per call
	 * (a buffer the device fills may overlap the ring and publish more,
	 * which the second call serves). */
	bool was_broken = false;
	for (int round = 0; round < 2; round++) {
		unsigned served;
		int r = drain(w, &served, false);
		CHECK(r == 0 || queue.vq.broken);
		CHECK(!was_broken || queue.vq.broken);
		was_broken = queue.vq.broken;
	}
	worker_stop(w);   /* io_uring: what is in flight completes (or is waited for, on a broken queue) */
	CHECK(!w->ring || blk_uring_in_flight(w->ring) == 0);
	uint16_t pushed = (uint16_t)(queue.vq.used_idx - start);
	/* (The used ring's contents are not checked: a request's data may
	 * legitimately land on it, the guest having put a buffer there; nor is
	 * the count bounded by the ring: such data may publish more requests.
	 * drain()'s budget bounds it.) */
	CHECK(pushed <= 2 * BLK_DRAIN_BUDGET);
	struct stat st;
	CHECK(fstat(disk_fd, &st) == 0 && st.st_size == DISK_SIZE);
	w->queue = NULL;
	blk->irq = NULL;
	return 0;
}
