#define _GNU_SOURCE /* pthread_setname_np */
#include "devices/virtio/blk.h"
#include "vmm/base/thread_start.h"
#include "devices/virtio/iov.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <linux/virtio_blk.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/virtio/queue_worker.h"
#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"
#include "vmm/base/snap_format.h"

#define SECTOR_SIZE 512u
#define BLK_QUEUE_MAX_SIZE 256
/* A request is header + data segments + status, and one chain holds at most
 * VIRTQ_MAX_IOV descriptors (the driver gives header and status one each). */
#define BLK_SEG_MAX (VIRTQ_MAX_IOV - 2)
/* Config space up to num_queues, the last field of the features we offer
 * (QEMU's minimum size too); the discard fields after it need F_DISCARD. */
#define BLK_CONFIG_SIZE ((uint32_t)offsetof(struct virtio_blk_config, max_discard_sectors))

_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio-blk request header is 16 bytes");
_Static_assert(offsetof(struct virtio_blk_config, num_queues) == 34, "virtio-blk config layout");

/* One queue's worker thread and its scratch space. */
struct blk_worker {
	struct virtio_blk *blk;
	unsigned queue_index;
	struct virtio_queue *queue;      /* the transport's; valid from activate() to reset() */
	char thread_name[16];            /* "blk0-q1": the kernel keeps 15 characters */
	char vq_name[32];                /* "blk0 q1", in virtq's log lines */
	/* One request at a time: kept here rather than on the thread's stack
	 * (32 KiB) or malloc'd per request. */
	struct virtq_chain chain;
	struct iovec data[VIRTQ_MAX_IOV];   /* the request's data buffers, a slice of chain.iov */
};

struct virtio_blk {
	int fd;                          /* the image */
	bool readonly;
	unsigned num_queues;
	uint64_t capacity;               /* in 512-byte sectors */
	char name[16];                   /* "blk0", in log lines */
	char serial[VIRTIO_BLK_ID_BYTES];   /* NUL padded, not NUL terminated when full */
	struct virtio_blk_config config; /* little-endian, as the driver reads it */

	/* Written by activate() before the workers start and by reset() after
	 * they stopped (the transport's thread): read-only while they run. */
	bool active;
	bool writethrough;               /* FLUSH not negotiated: every write is synced */
	const struct virtio_irq *irq;
	const struct thread_starter *threads;   /* NULL: plain pthread_create */

	atomic_bool stopping;            /* reset() in progress: stop between requests */
	atomic_bool warned_malformed;    /* one log line per activation, however hostile the driver */
	atomic_bool warned_io;
	struct log_limit log_limit;      /* the lines the guest can cause, across activations */
	/* virtio_blk_stats: bumped by the workers, read by anyone. */
	atomic_uint_fast64_t n_reads, n_writes, n_flushes, n_others, n_read_bytes, n_written_bytes, n_errors;
	struct queue_worker *queue_threads;   /* one per ready queue, from activate() to reset() */
	struct blk_worker workers[];     /* [num_queues] */
};

/* ---- scatter-gather helpers ---- */

/* Writes src at the start of the buffers and zeroes the rest of them.
 * src may be NULL with len 0 (zero everything): it is indexed, never
 * advanced, as NULL + 0 is undefined behaviour. */
static void iov_fill(const struct iovec *iov, unsigned n, const void *src, size_t len)
{
	size_t done = 0;
	for (unsigned i = 0; i < n; i++) {
		size_t take = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		if (take)
			memcpy(iov[i].iov_base, (const uint8_t *)src + done, take);
		memset((uint8_t *)iov[i].iov_base + take, 0, iov[i].iov_len - take);
		done += take;
	}
}

/* preadv/pwritev the whole of iov at off. Short transfers (a signal, the
 * kernel's 2 GiB cap per call) go on where they stopped, consuming iov.
 * Returns 0 or -errno. */
static int rw_full(int fd, bool write, struct iovec *iov, unsigned n, off_t off)
{
	while (n) {
		ssize_t r = write ? pwritev(fd, iov, (int)n, off) : preadv(fd, iov, (int)n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;   /* end of file: the image shrank under us */
		off += r;
		size_t done = (size_t)r;
		while (n && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return 0;
}

/* ---- requests ---- */

/* The device-writable bytes before the status byte (the data of IN and
 * GET_ID), described in w->data. Returns the number of entries. */
static unsigned writable_data(struct blk_worker *w)
{
	const struct virtq_chain *c = &w->chain;
	return iov_slice(c->iov + c->n_out, c->n_in, 0, c->in_len - 1, w->data);
}

/* Every request reports all its writable bytes as written (used len =
 * in_len): the spec counts len from the first writable byte and the status
 * is the last one, so the bytes a request does not fill are zeroed. */
static void zero_writable_data(struct blk_worker *w)
{
	iov_fill(w->data, writable_data(w), NULL, 0);
}

static bool in_capacity(const struct virtio_blk *blk, uint64_t sector, uint64_t len)
{
	return len % SECTOR_SIZE == 0 && sector <= blk->capacity && len / SECTOR_SIZE <= blk->capacity - sector;
}

/* Logs the first host I/O error of an activation: the guest sees IOERR for
 * every one, the log should not grow with them. */
static void warn_io(struct virtio_blk *blk, int err, const char *what, uint64_t len, uint64_t sector)
{
	if (atomic_exchange(&blk->warned_io, true))
		return;
	if (len)
		log_warn_limited(&blk->log_limit,
				 "%s: %s of %" PRIu64 " bytes at sector %" PRIu64 " failed: %s (further errors not logged)",
				 blk->name, what, len, sector, strerror(err));
	else
		log_warn_limited(&blk->log_limit, "%s: %s failed: %s (further errors not logged)", blk->name, what,
				 strerror(err));
}

static uint8_t do_read(struct blk_worker *w, uint64_t sector)
{
	struct virtio_blk *blk = w->blk;
	uint64_t len = w->chain.in_len - 1;
	unsigned n = writable_data(w);
	if (!in_capacity(blk, sector, len)) {
		iov_fill(w->data, n, NULL, 0);
		return VIRTIO_BLK_S_IOERR;
	}
	int e = rw_full(blk->fd, false, w->data, n, (off_t)(sector * SECTOR_SIZE));
	if (e < 0) {
		warn_io(blk, -e, "read", len, sector);
		zero_writable_data(w);   /* not half old guest data, half disk */
		return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_write(struct blk_worker *w, uint64_t sector)
{
	struct virtio_blk *blk = w->blk;
	const struct virtq_chain *c = &w->chain;
	uint64_t len = c->out_len - sizeof(struct virtio_blk_outhdr);

	zero_writable_data(w);   /* a well-formed write has none */
	if (blk->readonly || !in_capacity(blk, sector, len))
		return VIRTIO_BLK_S_IOERR;
	unsigned n = iov_slice(c->iov, c->n_out, sizeof(struct virtio_blk_outhdr), len, w->data);
	int e = rw_full(blk->fd, true, w->data, n, (off_t)(sector * SECTOR_SIZE));
	if (e == 0 && blk->writethrough && fdatasync(blk->fd) < 0)
		e = -errno;
	if (e < 0) {
		warn_io(blk, -e, "write", len, sector);
		return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

static uint8_t do_flush(struct blk_worker *w)
{
	struct virtio_blk *blk = w->blk;
	zero_writable_data(w);
	/* Nothing of ours to sync on a read-only disk. */
	if (!blk->readonly && fdatasync(blk->fd) < 0) {
		warn_io(blk, errno, "flush", 0, 0);
		return VIRTIO_BLK_S_IOERR;
	}
	return VIRTIO_BLK_S_OK;
}

static void warn_malformed(struct blk_worker *w, const char *what)
{
	struct virtio_blk *blk = w->blk;
	if (!atomic_exchange(&blk->warned_malformed, true))
		log_warn_limited(&blk->log_limit,
				 "%s q%u: request (head %u) %s; completed with nothing written (further ones not logged)",
				 blk->name, w->queue_index, w->chain.head, what);
}

static void count(struct virtio_blk *blk, uint32_t type, uint8_t st, uint64_t bytes)
{
	atomic_uint_fast64_t *n = type == VIRTIO_BLK_T_IN ? &blk->n_reads : type == VIRTIO_BLK_T_OUT ? &blk->n_writes
				  : type == VIRTIO_BLK_T_FLUSH ? &blk->n_flushes : &blk->n_others;
	atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
	if (st != VIRTIO_BLK_S_OK)
		atomic_fetch_add_explicit(&blk->n_errors, 1, memory_order_relaxed);
	else if (type == VIRTIO_BLK_T_IN)
		atomic_fetch_add_explicit(&blk->n_read_bytes, bytes, memory_order_relaxed);
	else if (type == VIRTIO_BLK_T_OUT)
		atomic_fetch_add_explicit(&blk->n_written_bytes, bytes, memory_order_relaxed);
}

void virtio_blk_stats(const struct virtio_blk *b, struct virtio_blk_stats *out)
{
	struct virtio_blk *blk = (struct virtio_blk *)b;   /* atomic loads take non-const pointers in C11 */
	*out = (struct virtio_blk_stats){
		.reads = atomic_load_explicit(&blk->n_reads, memory_order_relaxed),
		.writes = atomic_load_explicit(&blk->n_writes, memory_order_relaxed),
		.flushes = atomic_load_explicit(&blk->n_flushes, memory_order_relaxed),
		.others = atomic_load_explicit(&blk->n_others, memory_order_relaxed),
		.read_bytes = atomic_load_explicit(&blk->n_read_bytes, memory_order_relaxed),
		.written_bytes = atomic_load_explicit(&blk->n_written_bytes, memory_order_relaxed),
		.errors = atomic_load_explicit(&blk->n_errors, memory_order_relaxed),
	};
}

/* Serves the request in w->chain: a 16-byte header (type, reserved,
 * sector) in the first device-readable bytes, however the descriptors cut
 * them; the data (the rest of the readable bytes for OUT, the writable bytes
 * but the last for IN and GET_ID); the status, the last writable byte.
 * Returns the used length. */
static uint32_t serve(struct blk_worker *w)
{
	struct virtio_blk *blk = w->blk;
	const struct virtq_chain *c = &w->chain;
	struct virtio_blk_outhdr hdr;

	/* Without a status byte there is no way to report anything, and a
	 * partial header says nothing reliable: leave the disk alone. */
	if (c->in_len < 1) {
		warn_malformed(w, "has no device-writable status byte");
		return 0;
	}
	if (c->out_len < sizeof(hdr)) {
		warn_malformed(w, "has a header shorter than 16 bytes");
		return 0;
	}
	/* Copied once: the driver may change guest memory under us. It may also
	 * be split across descriptors. */
	iov_to_buf(c->iov, c->n_out, 0, &hdr, sizeof(hdr));
	uint32_t type = le32toh(hdr.type);
	uint64_t sector = le64toh(hdr.sector);
	const struct iovec *last = &c->iov[c->n_out + c->n_in - 1];
	uint8_t *status = (uint8_t *)last->iov_base + last->iov_len - 1;
	uint8_t st;

	switch (type) {
	case VIRTIO_BLK_T_IN:
		st = do_read(w, sector);
		break;
	case VIRTIO_BLK_T_OUT:
		st = do_write(w, sector);
		break;
	case VIRTIO_BLK_T_FLUSH:
		st = do_flush(w);
		break;
	case VIRTIO_BLK_T_GET_ID:
		iov_fill(w->data, writable_data(w), blk->serial, sizeof(blk->serial));
		st = VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
	case VIRTIO_BLK_T_SECURE_ERASE:
		/* Not offered; on a read-only disk the answer is the one any write gets. */
		zero_writable_data(w);
		st = blk->readonly ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_UNSUPP;
		break;
	default:
		zero_writable_data(w);
		st = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	*status = st;
	count(blk, type, st, type == VIRTIO_BLK_T_IN ? c->in_len - 1 : c->out_len - sizeof(hdr));
	return (uint32_t)c->in_len;   /* <= UINT32_MAX: virtq bounds a chain's total */
}

/* ---- worker threads ---- */

/* Requests served per wake-up at most. The driver can keep the ring full
 * for ever (and a read may even land on the ring and publish more): after
 * this many the worker interrupts the guest, goes back through poll (where
 * a reset is seen) and carries on, kicked by itself. */
#define BLK_DRAIN_BUDGET 1024u

/* Serves the available requests (up to the budget), then interrupts the
 * guest if it wants. Returns -1 when the queue is broken. */
static int drain(struct blk_worker *w)
{
	struct virtio_blk *blk = w->blk;
	struct virtq *vq = &w->queue->vq;
	unsigned served = 0;
	int r = 0;

	while (!atomic_load_explicit(&blk->stopping, memory_order_relaxed) && served < BLK_DRAIN_BUDGET &&
	       (r = virtq_pop_chain(vq, &w->chain)) > 0) {
		virtq_push_used(vq, w->chain.head, serve(w));
		served++;
	}
	if (virtq_should_notify(vq))
		blk->irq->queue(blk->irq, w->queue_index);
	if (served == BLK_DRAIN_BUDGET) {
		/* More may be waiting: come back after poll. Only this thread
		 * reads the eventfd; a full counter means a kick is pending. */
		if (w->queue->kick_fd >= 0)
			eventfd_signal(w->queue->kick_fd);
	}
	return r < 0 ? -1 : 0;
}

static int worker_serve(void *ctx, struct queue_worker_sleep *next)
{
	return drain(ctx);
}

static const struct queue_worker_ops blk_worker_ops = { .serve = worker_serve };

/* Requests in flight finish (each worker ends its batch); the queues stay. */
static void blk_pause(void *dev)
{
	struct virtio_blk *blk = dev;
	if (!blk->active)
		return;
	/* Every worker ends its batch now, not when its turn to be joined comes. */
	atomic_store(&blk->stopping, true);
	queue_worker_stop(blk->queue_threads);
}

/* A pause that also lets go of the queues. */
static void blk_reset(void *dev)
{
	struct virtio_blk *blk = dev;

	if (!blk->active)
		return;
	blk_pause(blk);
	for (unsigned i = 0; i < blk->num_queues; i++)
		blk->workers[i].queue = NULL;
	blk->irq = NULL;
	blk->active = false;
}

/* Starts a thread for every queue activate() handed over. */
static int start_workers(struct virtio_blk *blk)
{
	for (unsigned i = 0; i < blk->num_queues; i++) {
		struct blk_worker *w = &blk->workers[i];
		if (!w->queue)
			continue;
		struct queue_worker_params qp = {
			.name = w->vq_name,
			.thread_name = w->thread_name,
			.role = THREAD_ROLE_BLK,
			.threads = blk->threads,
			.kick_fds = { w->queue->kick_fd },
			.n_kicks = 1,
			.irq = blk->irq,
			.log_limit = &blk->log_limit,
			.ops = &blk_worker_ops,
			.ctx = w,
		};
		int e = queue_worker_start(blk->queue_threads, &qp);
		if (e) {
			log_error_limited(&blk->log_limit, "%s: cannot start the thread of queue %u: %s", blk->name, i,
					  strerror(e));
			return -1;
		}
	}
	return 0;
}

static int blk_activate(void *dev, uint64_t features, struct virtio_queue *queues, unsigned n_queues,
			const struct virtio_irq *irq)
{
	struct virtio_blk *blk = dev;

	if (blk->active) {
		log_warn_limited(&blk->log_limit, "%s: activated twice without a reset", blk->name);
		return -1;
	}
	blk->irq = irq;
	blk->writethrough = !(features & (1ull << VIRTIO_BLK_F_FLUSH));
	atomic_store(&blk->stopping, false);
	atomic_store(&blk->warned_malformed, false);
	atomic_store(&blk->warned_io, false);
	blk->active = true;
	if (n_queues > blk->num_queues)
		n_queues = blk->num_queues;
	for (unsigned i = 0; i < n_queues; i++) {
		struct blk_worker *w = &blk->workers[i];
		if (!queues[i].ready)
			continue;
		w->queue = &queues[i];
		if (!w->queue->vq.name)
			w->queue->vq.name = w->vq_name;
	}
	if (start_workers(blk)) {
		blk_reset(blk);   /* the transport only sets NEEDS_RESET: nothing may keep running */
		return -1;
	}
	return 0;
}

static int blk_resume(void *dev)
{
	struct virtio_blk *blk = dev;
	if (!blk->active)
		return 0;
	atomic_store(&blk->stopping, false);
	if (start_workers(blk)) {
		queue_worker_stop(blk->queue_threads);
		return -1;
	}
	return 0;
}

/* The disk a snapshot's guest knew: the same size, queues and mode. */
static void blk_save(void *dev, struct snap_writer *w)
{
	const struct virtio_blk *blk = dev;
	snap_put_u64(w, blk->capacity);
	snap_put_u32(w, blk->num_queues);
	snap_put_u8(w, blk->readonly);
}

static int blk_load(void *dev, struct snap_reader *r)
{
	const struct virtio_blk *blk = dev;
	uint64_t capacity = snap_get_u64(r);
	uint32_t num_queues = snap_get_u32(r);
	bool readonly = snap_get_u8(r) != 0;
	if (snap_failed(r))
		return -1;
	if (capacity != blk->capacity)
		snap_fail(r, "the snapshot's disk had %llu bytes, this one has %llu",
			  (unsigned long long)capacity * 512, (unsigned long long)blk->capacity * 512);
	else if (num_queues != blk->num_queues)
		snap_fail(r, "the snapshot's disk had %u queues, this one has %u", num_queues, blk->num_queues);
	else if (readonly != blk->readonly)
		snap_fail(r, "the snapshot's disk was %s, this one is %s", readonly ? "read-only" : "writable",
			  blk->readonly ? "read-only" : "writable");
	return snap_failed(r) ? -1 : 0;
}

/* ---- config space and features ---- */

static uint64_t blk_features(void *dev)
{
	const struct virtio_blk *blk = dev;
	uint64_t f = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) | (1ull << VIRTIO_BLK_F_FLUSH);
	if (blk->readonly)
		f |= 1ull << VIRTIO_BLK_F_RO;
	if (blk->num_queues > 1)
		f |= 1ull << VIRTIO_BLK_F_MQ;
	return f;
}

static unsigned blk_num_queues(void *dev)
{
	return ((const struct virtio_blk *)dev)->num_queues;
}

static uint32_t blk_config_size(void *dev)
{
	return BLK_CONFIG_SIZE;
}

static void blk_config_read(void *dev, uint32_t offset, void *data, uint32_t len)
{
	const struct virtio_blk *blk = dev;
	virtio_config_copy(data, offset, len, &blk->config, BLK_CONFIG_SIZE);
}

static void blk_config_write(void *dev, uint32_t offset, const void *data, uint32_t len)
{
	/* Every field we offer is read-only (no CONFIG_WCE). */
}

const struct virtio_dev_ops virtio_blk_ops = {
	.name = "blk",
	.device_id = VIRTIO_ID_BLOCK,
	.features = blk_features,
	.num_queues = blk_num_queues,
	.queue_max_size = BLK_QUEUE_MAX_SIZE,
	.config_size = blk_config_size,
	.config_read = blk_config_read,
	.config_write = blk_config_write,
	.activate = blk_activate,
	.reset = blk_reset,
	.pause = blk_pause,
	.resume = blk_resume,
	.save = blk_save,
	.load = blk_load,
};

/* ---- life cycle ---- */

void virtio_blk_set_index(struct virtio_blk *blk, unsigned index)
{
	char serial[32];

	snprintf(blk->name, sizeof(blk->name), "blk%u", index);
	snprintf(serial, sizeof(serial), "minivmm-blk%u", index);
	memset(blk->serial, 0, sizeof(blk->serial));
	memcpy(blk->serial, serial, strnlen(serial, sizeof(blk->serial)));
	for (unsigned i = 0; i < blk->num_queues; i++) {
		struct blk_worker *w = &blk->workers[i];
		snprintf(w->thread_name, sizeof(w->thread_name), "blk%u-q%u", index % 1000,
			 i % VIRTIO_MAX_QUEUES);
		snprintf(w->vq_name, sizeof(w->vq_name), "blk%u q%u", index, i);
	}
}

/* Size in bytes of the image open at fd, or -1 with err filled. */
static int64_t image_size(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	uint64_t size;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "image %s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
			snprintf(err, errlen, "image %s: cannot get the size of the block device: %s", path,
				 strerror(errno));
			return -1;
		}
	} else {
		snprintf(err, errlen, "image %s: not a regular file or block device", path);
		return -1;
	}
	if (size % SECTOR_SIZE) {
		snprintf(err, errlen, "image %s: size %" PRIu64 " bytes is not a multiple of 512", path, size);
		return -1;
	}
	if (size > INT64_MAX) {
		snprintf(err, errlen, "image %s: size %" PRIu64 " bytes is too large", path, size);
		return -1;
	}
	return (int64_t)size;
}

struct virtio_blk *virtio_blk_create(const struct virtio_blk_params *p, char *err, size_t errlen)
{
	const char *path = p->path;
	bool readonly = p->readonly;
	unsigned num_queues = p->num_queues;

	if (num_queues < 1 || num_queues > VIRTIO_MAX_QUEUES) {
		snprintf(err, errlen, "image %s: %u queues: must be 1 to %u", path, num_queues, VIRTIO_MAX_QUEUES);
		return NULL;
	}
	/* O_NONBLOCK: a FIFO named by mistake must fail the check below, not
	 * hang the open. Cleared afterwards. */
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == EISDIR)
			snprintf(err, errlen, "image %s: not a regular file or block device", path);
		else if (!readonly && (errno == EACCES || errno == EROFS || errno == EPERM))
			snprintf(err, errlen, "image %s: cannot open it read-write: %s (add ,ro for a read-only disk)",
				 path, strerror(errno));
		else
			snprintf(err, errlen, "image %s: %s", path, strerror(errno));
		return NULL;
	}
	int64_t size = image_size(fd, path, err, errlen);
	if (size < 0) {
		close(fd);
		return NULL;
	}
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0) {
		snprintf(err, errlen, "image %s: %s", path, strerror(errno));
		close(fd);
		return NULL;
	}

	struct virtio_blk *blk = calloc(1, sizeof(*blk) + num_queues * sizeof(struct blk_worker));
	if (!blk) {
		snprintf(err, errlen, "image %s: out of memory", path);
		close(fd);
		return NULL;
	}
	blk->fd = fd;
	log_limit_init(&blk->log_limit, blk->name);
	blk->readonly = readonly;
	blk->num_queues = num_queues;
	blk->capacity = (uint64_t)size / SECTOR_SIZE;
	for (unsigned i = 0; i < num_queues; i++) {
		blk->workers[i].blk = blk;
		blk->workers[i].queue_index = i;
	}
	blk->queue_threads = queue_worker_create(num_queues);
	if (!blk->queue_threads) {
		snprintf(err, errlen, "image %s: eventfd: %s", path, strerror(errno));
		virtio_blk_destroy(blk);
		return NULL;
	}
	blk->threads = p->threads;
	virtio_blk_set_index(blk, p->index);

	blk->config.capacity = htole64(blk->capacity);
	blk->config.seg_max = htole32(BLK_SEG_MAX);
	blk->config.blk_size = htole32(SECTOR_SIZE);
	blk->config.num_queues = htole16((uint16_t)num_queues);
	return blk;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	if (!blk)
		return;
	blk_reset(blk);
	queue_worker_destroy(blk->queue_threads);
	close(blk->fd);
	log_limit_destroy(&blk->log_limit);
	free(blk);
}
