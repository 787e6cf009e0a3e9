#define _GNU_SOURCE /* pthread_setname_np */
#include "devices/virtio/blk.h"
#include "vmm/base/thread_start.h"
#include "devices/virtio/iov.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_blk.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/virtio/blk_image.h"
#include "devices/virtio/blk_poll.h"
#include "devices/virtio/blk_ranges.h"
#include "devices/virtio/blk_rate.h"
#include "devices/virtio/blk_uring.h"
#include "devices/virtio/queue_worker.h"
#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"
#include "vmm/base/snap_format.h"

#define BLK_QUEUE_MAX_SIZE 256
/* The data segments a request may have (seg_max), as QEMU tells it: the
 * queue size less the header's and the status's descriptors. A slot of the
 * io_uring engine holds that many; a chain with more (a driver ignoring
 * seg_max, up to VIRTQ_MAX_IOV descriptors) is served synchronously. */
#define BLK_SEG_MAX (BLK_QUEUE_MAX_SIZE - 2)
/* io_uring engine: requests in flight per queue at most (the queue's ring
 * and slots). */
#define BLK_URING_DEPTH 64u
/* Config space up to write_zeroes_may_unmap and its padding, the last field
 * of the features we offer (secure erase and zones are not). */
#define BLK_CONFIG_SIZE ((uint32_t)offsetof(struct virtio_blk_config, max_secure_erase_sectors))

_Static_assert(sizeof(struct virtio_blk_outhdr) == 16, "virtio-blk request header is 16 bytes");
_Static_assert(offsetof(struct virtio_blk_config, num_queues) == 34, "virtio-blk config layout");
_Static_assert(offsetof(struct virtio_blk_config, write_zeroes_may_unmap) == 56, "virtio-blk config layout");

/* A request in a queue's ring (io_uring engine): what its completion
 * needs. Preallocated, BLK_URING_DEPTH per queue. The data buffers' iovecs
 * stay here until the completion: the kernel reads them at submission, and
 * a short transfer's rest is done from them. */
struct blk_slot {
	uint32_t type;                   /* VIRTIO_BLK_T_IN, _OUT or _FLUSH */
	uint16_t head;
	uint32_t used_len;
	uint8_t *status;                 /* the last device-writable byte, in guest RAM */
	uint64_t sector, len;            /* len: data bytes (0 for a flush) */
	unsigned n_iov;
	struct iovec iov[BLK_SEG_MAX];
};

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
	/* io_uring engine (made at create, before the sandbox): the queue's
	 * ring and its slots, used by the queue's worker thread only. ring is
	 * NULL with the synchronous engine, and once a ring could not be
	 * drained (see worker_stop); ring_made is what destroy closes. */
	struct blk_uring *ring, *ring_made;
	struct blk_slot *slots;          /* [BLK_URING_DEPTH] */
	uint8_t free_slots[BLK_URING_DEPTH];
	unsigned n_free;
	unsigned queued;                 /* in the ring, not yet submitted */
	bool submit_failed;              /* retry soon: nothing else may wake the thread */
	/* poll_us: wake-ups left to serve without polling, and how many the
	 * next poll that finds nothing skips (doubling to BLK_POLL_BACKOFF_MAX;
	 * 0 again once a poll finds requests). */
	unsigned poll_skip, poll_backoff;
	/* poll_auto: whether this queue polls; told of every batch. */
	struct blk_poll_tuner tuner;
	/* Since create, for the exit line: requests, interrupts sent, polling
	 * looks and those that found nothing. Written by the thread only, read
	 * once it is joined. */
	uint64_t n_requests, n_interrupts, n_looks, n_empty_looks;
};

struct virtio_blk {
	int fd;                          /* the image */
	bool readonly;
	unsigned num_queues;
	uint64_t capacity;               /* in 512-byte sectors */
	char name[16];                   /* "blk0", in log lines */
	char serial[VIRTIO_BLK_ID_BYTES];   /* NUL padded, not NUL terminated when full */
	bool custom_serial;              /* given at create: set_index keeps it */
	struct virtio_blk_config config; /* little-endian, as the driver reads it */
	struct blk_rate rate;            /* kept across resets: a reset does not refill the burst */
	unsigned poll_us;                /* virtio_blk_params.poll_us (the io_uring engine does not poll) */
	bool poll_auto;                  /* virtio_blk_params.poll_auto */

	/* Written by activate() before the workers start and by reset() after
	 * they stopped (the transport's thread): read-only while they run. */
	bool active;
	bool writethrough;               /* FLUSH not negotiated: every write is synced */
	bool discard, write_zeroes;      /* negotiated: served (else UNSUPP) */
	const struct virtio_irq *irq;
	const struct thread_starter *threads;   /* NULL: plain pthread_create */

	atomic_bool stopping;            /* reset() in progress: stop between requests */
	atomic_bool warned_malformed;    /* one log line per activation, however hostile the driver */
	atomic_bool warned_io;
	atomic_bool warned_no_punch;     /* once per device: the image cannot punch holes */
	struct log_limit log_limit;      /* the lines the guest can cause, across activations */
	/* virtio_blk_stats: bumped by the workers, read by anyone. */
	atomic_uint_fast64_t n_reads, n_writes, n_flushes, n_others, n_read_bytes, n_written_bytes, n_errors;
	atomic_uint_fast64_t n_discards, n_write_zeroes, n_discards_ignored, n_throttled;
	atomic_uint_fast64_t n_uring;    /* requests submitted through io_uring */
	atomic_uint_fast64_t n_poll_epochs, n_kick_epochs;   /* poll=auto's epochs each way, all queues */
	bool uring;                      /* the io_uring engine: every worker has a ring */
	char engine_note[1536];          /* engine=auto's choice and why, for virtio_blk_log_engine() */
	atomic_bool warned_uring;        /* once per activation: a ring refused a submission */
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
	if (!blk_sectors_fit(blk->capacity, sector, len)) {
		iov_fill(w->data, n, NULL, 0);
		return VIRTIO_BLK_S_IOERR;
	}
	int e = blk_image_rw(blk->fd, false, w->data, n, (off_t)(sector * BLK_SECTOR_SIZE));
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
	if (blk->readonly || !blk_sectors_fit(blk->capacity, sector, len))
		return VIRTIO_BLK_S_IOERR;
	unsigned n = iov_slice(c->iov, c->n_out, sizeof(struct virtio_blk_outhdr), len, w->data);
	int e = blk_image_rw(blk->fd, true, w->data, n, (off_t)(sector * BLK_SECTOR_SIZE));
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

/* A discard: a hole punched (the size kept). Where the image cannot punch
 * holes it is done as nothing, which a discard may be (spec 5.2.6.2), and
 * counted. Returns 0 or -errno. */
static int discard_range(struct virtio_blk *blk, uint64_t off, uint64_t len)
{
	int e = blk_image_punch_hole(blk->fd, off, len);
	if (!blk_image_cannot(e))
		return e;
	atomic_fetch_add_explicit(&blk->n_discards_ignored, 1, memory_order_relaxed);
	if (!atomic_exchange(&blk->warned_no_punch, true))
		log_warn_limited(&blk->log_limit, "%s: the image cannot punch holes (%s): discards do nothing",
				 blk->name, strerror(-e));
	return 0;
}

/* DISCARD and WRITE_ZEROES: the ranges after the header, every one of them
 * checked (blk_ranges_read) before any is done on the image. */
static uint8_t do_discard_write_zeroes(struct blk_worker *w, uint32_t type)
{
	struct virtio_blk *blk = w->blk;
	struct blk_ranges r;
	bool discard = type == VIRTIO_BLK_T_DISCARD;

	zero_writable_data(w);   /* a well-formed one has none */
	if (blk->readonly)
		return VIRTIO_BLK_S_IOERR;   /* as any write */
	if (!(discard ? blk->discard : blk->write_zeroes))
		return VIRTIO_BLK_S_UNSUPP;
	uint8_t st = blk_ranges_read(&r, discard, &w->chain, blk->capacity);
	if (st != VIRTIO_BLK_S_OK)
		return st;
	for (unsigned i = 0; i < r.n; i++) {
		uint64_t sector = r.range[i].sector, bytes = (uint64_t)r.range[i].num_sectors * BLK_SECTOR_SIZE;
		if (!bytes)
			continue;
		int e = discard ? discard_range(blk, sector * BLK_SECTOR_SIZE, bytes)
				: blk_image_zero(blk->fd, sector * BLK_SECTOR_SIZE, bytes, r.range[i].unmap);
		if (e < 0) {
			warn_io(blk, -e, discard ? "discard" : "write zeroes", bytes, sector);
			return VIRTIO_BLK_S_IOERR;
		}
	}
	if (blk->writethrough && fdatasync(blk->fd) < 0) {
		warn_io(blk, errno, discard ? "discard" : "write zeroes", 0, 0);
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
	atomic_uint_fast64_t *n = &blk->n_others;
	switch (type) {
	case VIRTIO_BLK_T_IN: n = &blk->n_reads; break;
	case VIRTIO_BLK_T_OUT: n = &blk->n_writes; break;
	case VIRTIO_BLK_T_FLUSH: n = &blk->n_flushes; break;
	case VIRTIO_BLK_T_DISCARD: n = &blk->n_discards; break;
	case VIRTIO_BLK_T_WRITE_ZEROES: n = &blk->n_write_zeroes; break;
	}
	atomic_fetch_add_explicit(n, 1, memory_order_relaxed);
	if (st != VIRTIO_BLK_S_OK)
		atomic_fetch_add_explicit(&blk->n_errors, 1, memory_order_relaxed);
	else if (type == VIRTIO_BLK_T_IN)
		atomic_fetch_add_explicit(&blk->n_read_bytes, bytes, memory_order_relaxed);
	else if (type == VIRTIO_BLK_T_OUT)
		atomic_fetch_add_explicit(&blk->n_written_bytes, bytes, memory_order_relaxed);
}

const char *virtio_blk_engine_name(const struct virtio_blk *blk)
{
	return blk->uring ? "io_uring" : "sync";
}

void virtio_blk_log_engine(struct virtio_blk *blk)
{
	if (blk->engine_note[0])
		log_info("%s", blk->engine_note);
	blk->engine_note[0] = 0;
}

void virtio_blk_stats(const struct virtio_blk *b, struct virtio_blk_stats *out)
{
	struct virtio_blk *blk = (struct virtio_blk *)b;   /* atomic loads take non-const pointers in C11 */
	*out = (struct virtio_blk_stats){
		.reads = atomic_load_explicit(&blk->n_reads, memory_order_relaxed),
		.writes = atomic_load_explicit(&blk->n_writes, memory_order_relaxed),
		.flushes = atomic_load_explicit(&blk->n_flushes, memory_order_relaxed),
		.discards = atomic_load_explicit(&blk->n_discards, memory_order_relaxed),
		.write_zeroes = atomic_load_explicit(&blk->n_write_zeroes, memory_order_relaxed),
		.others = atomic_load_explicit(&blk->n_others, memory_order_relaxed),
		.read_bytes = atomic_load_explicit(&blk->n_read_bytes, memory_order_relaxed),
		.written_bytes = atomic_load_explicit(&blk->n_written_bytes, memory_order_relaxed),
		.errors = atomic_load_explicit(&blk->n_errors, memory_order_relaxed),
		.discards_ignored = atomic_load_explicit(&blk->n_discards_ignored, memory_order_relaxed),
		.throttled = atomic_load_explicit(&blk->n_throttled, memory_order_relaxed),
		.uring_requests = atomic_load_explicit(&blk->n_uring, memory_order_relaxed),
		.poll_epochs = atomic_load_explicit(&blk->n_poll_epochs, memory_order_relaxed),
		.kick_epochs = atomic_load_explicit(&blk->n_kick_epochs, memory_order_relaxed),
	};
}

/* ---- io_uring engine ----
 *
 * Reads, writes and flushes go to the queue's ring; what cannot (another
 * type, a request the disk refuses, a slot's worth of segments exceeded,
 * writes in writethrough mode) is served synchronously as before, between
 * them. The spec orders nothing between requests in flight, and a flush
 * need only cover the writes completed before it was submitted (what Linux
 * relies on: it waits for a write's completion before flushing it). */

/* serve()'s answer for a request handed to the ring: its completion
 * pushes it. No used length is this: a request with a header has an in_len
 * of at most UINT32_MAX - 16. */
#define BLK_IN_FLIGHT UINT32_MAX

/* Takes a free slot for the request in w->chain and fills what its
 * completion needs but the data. */
static struct blk_slot *take_slot(struct blk_worker *w, uint32_t type, uint64_t sector, uint64_t len,
				  uint8_t *status, unsigned *index)
{
	*index = w->free_slots[--w->n_free];
	struct blk_slot *s = &w->slots[*index];
	s->type = type;
	s->head = w->chain.head;
	s->used_len = (uint32_t)w->chain.in_len;
	s->status = status;
	s->sector = sector;
	s->len = len;
	s->n_iov = 0;
	return s;
}

/* After slot i's request was put on the ring with result e: counted as
 * queued, or (e: cannot be, a slot was free so is an entry) the slot
 * given back and false, for the synchronous path. */
static bool slot_queued(struct blk_worker *w, unsigned i, int e)
{
	if (e) {
		w->free_slots[w->n_free++] = (uint8_t)i;
		return false;
	}
	w->queued++;
	atomic_fetch_add_explicit(&w->blk->n_uring, 1, memory_order_relaxed);
	return true;
}

/* Hands a read or a write to the ring when it can go there: a slot free,
 * data in the disk's range, at most a slot's worth of buffers, and for a
 * write a writable disk in writeback mode (in writethrough every write is
 * synced before it completes: synchronous). Returns whether it went; if
 * not, the caller serves it synchronously, from scratch. */
static bool submit_rw(struct blk_worker *w, bool write, uint64_t sector, uint8_t *status)
{
	struct virtio_blk *blk = w->blk;
	const struct virtq_chain *c = &w->chain;
	if (!w->ring || !w->n_free)
		return false;
	uint64_t len = write ? c->out_len - sizeof(struct virtio_blk_outhdr) : c->in_len - 1;
	if (!len || !blk_sectors_fit(blk->capacity, sector, len) || (write && (blk->readonly || blk->writethrough)))
		return false;
	if (write)
		zero_writable_data(w);   /* a well-formed write has none; w->data is free again after */
	unsigned n = write ? iov_slice(c->iov, c->n_out, sizeof(struct virtio_blk_outhdr), len, w->data)
			   : writable_data(w);
	if (n > BLK_SEG_MAX)
		return false;
	unsigned i;
	struct blk_slot *s = take_slot(w, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN, sector, len, status, &i);
	memcpy(s->iov, w->data, n * sizeof(s->iov[0]));
	s->n_iov = n;
	uint64_t off = sector * BLK_SECTOR_SIZE;
	int e = write ? blk_uring_writev(w->ring, s->iov, n, off, i) : blk_uring_readv(w->ring, s->iov, n, off, i);
	return slot_queued(w, i, e);
}

/* A flush to the ring (a data sync of the image); a read-only disk has
 * nothing to sync and answers at once. */
static bool submit_flush(struct blk_worker *w, uint8_t *status)
{
	struct virtio_blk *blk = w->blk;
	if (!w->ring || !w->n_free || blk->readonly)
		return false;
	zero_writable_data(w);
	unsigned i;
	take_slot(w, VIRTIO_BLK_T_FLUSH, 0, 0, status, &i);
	return slot_queued(w, i, blk_uring_fdatasync(w->ring, i));
}

/* Hands what is queued to the kernel. A refusal (EAGAIN, ENOMEM: the
 * kernel short of memory) leaves it queued for the next round, which the
 * worker makes soon (submit_failed), and is logged once an activation. */
static void submit_queued(struct blk_worker *w)
{
	if (!w->queued)
		return;
	int e = blk_uring_submit(w->ring);
	w->submit_failed = e < 0;
	if (e < 0) {
		if (!atomic_exchange(&w->blk->warned_uring, true))
			log_warn_limited(&w->blk->log_limit, "%s q%u: io_uring submission failed: %s (retrying)",
					 w->blk->name, w->queue_index, strerror(-e));
		return;
	}
	w->queued = 0;
}

/* The rest of a short transfer, synchronously from the slot's buffers
 * (the end of the image moved, or the kernel stopped early: rare).
 * Returns 0 or -errno. */
static int rw_rest(struct blk_worker *w, const struct blk_slot *s, uint64_t done)
{
	unsigned n = iov_slice(s->iov, s->n_iov, done, s->len - done, w->data);
	return blk_image_rw(w->blk->fd, s->type == VIRTIO_BLK_T_OUT, w->data, n,
			    (off_t)(s->sector * BLK_SECTOR_SIZE + done));
}

/* Completes the request in slot i with the ring's result: status, counts,
 * used entry (no interrupt: the caller decides once for the batch). */
static void finish(struct blk_worker *w, unsigned i, int32_t res)
{
	struct virtio_blk *blk = w->blk;
	struct blk_slot *s = &w->slots[i];
	uint8_t st = VIRTIO_BLK_S_OK;
	if (s->type == VIRTIO_BLK_T_FLUSH) {
		if (res < 0) {
			warn_io(blk, -res, "flush", 0, 0);
			st = VIRTIO_BLK_S_IOERR;
		}
	} else {
		bool write = s->type == VIRTIO_BLK_T_OUT;
		int e = res < 0 ? res : (uint64_t)res < s->len ? rw_rest(w, s, (uint64_t)res) : 0;
		if (e < 0) {
			warn_io(blk, -e, write ? "write" : "read", s->len, s->sector);
			if (!write)
				iov_fill(s->iov, s->n_iov, NULL, 0);   /* not half old guest data, half disk */
			st = VIRTIO_BLK_S_IOERR;
		}
	}
	*s->status = st;
	count(blk, s->type, st, s->len);
	virtq_push_used(&w->queue->vq, s->head, s->used_len);
	w->free_slots[w->n_free++] = (uint8_t)i;
}

/* Completes what the ring has finished (at most its depth: bounded).
 * Returns how many. */
static unsigned settle(struct blk_worker *w)
{
	struct blk_uring_done done[BLK_URING_DEPTH];
	unsigned n = blk_uring_reap(w->ring, done, BLK_URING_DEPTH);
	for (unsigned k = 0; k < n; k++) {
		if (done[k].tag < BLK_URING_DEPTH)
			finish(w, (unsigned)done[k].tag, done[k].res);
	}
	return n;
}

/* Serves the request in w->chain: a 16-byte header (type, reserved,
 * sector) in the first device-readable bytes, however the descriptors cut
 * them; the data (the rest of the readable bytes for OUT, the writable bytes
 * but the last for IN and GET_ID); the status, the last writable byte.
 * Returns the used length, or BLK_IN_FLIGHT when the request went to the
 * io_uring engine's ring (its completion pushes it). */
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
		if (submit_rw(w, false, sector, status))
			return BLK_IN_FLIGHT;
		st = do_read(w, sector);
		break;
	case VIRTIO_BLK_T_OUT:
		if (submit_rw(w, true, sector, status))
			return BLK_IN_FLIGHT;
		st = do_write(w, sector);
		break;
	case VIRTIO_BLK_T_FLUSH:
		if (submit_flush(w, status))
			return BLK_IN_FLIGHT;
		st = do_flush(w);
		break;
	case VIRTIO_BLK_T_GET_ID:
		iov_fill(w->data, writable_data(w), blk->serial, sizeof(blk->serial));
		st = VIRTIO_BLK_S_OK;
		break;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES:
		st = do_discard_write_zeroes(w, type);
		break;
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

/* Requests served (and waits for the rate limits) per wake-up at most. The
 * driver can keep the ring full for ever (and a read may even land on the
 * ring and publish more): after this many the worker interrupts the guest,
 * goes back through poll (where a reset is seen) and carries on, kicked by
 * itself. */
#define BLK_DRAIN_BUDGET 1024u

/* The data a request carries, its header and status byte left out: what
 * the bytes limit counts. From the chain's lengths, which the driver cannot
 * change after the pop (the type in guest memory it could). */
static uint64_t chain_data_bytes(const struct virtq_chain *c)
{
	uint64_t out = c->out_len > sizeof(struct virtio_blk_outhdr) ? c->out_len - sizeof(struct virtio_blk_outhdr) : 0;
	return out + (c->in_len > 1 ? c->in_len - 1 : 0);
}

/* Whether poll=auto's tuner picks the way after this queue's batches. */
static bool tuned(const struct blk_worker *w)
{
	return w->blk->poll_auto && w->blk->poll_us && !w->ring && w->queue->vq.event_idx;
}

/* Tells the tuner of a batch (it times the epochs by them), and counts the
 * epochs it ends for stats. */
static void tell_tuner(struct blk_worker *w, unsigned served)
{
	uint64_t polled = w->tuner.epochs_polled, kicked = w->tuner.epochs_kicked;
	blk_poll_tuner_served(&w->tuner, served, monotonic_ns());
	if (w->tuner.epochs_polled != polled)
		atomic_fetch_add_explicit(&w->blk->n_poll_epochs, 1, memory_order_relaxed);
	if (w->tuner.epochs_kicked != kicked)
		atomic_fetch_add_explicit(&w->blk->n_kick_epochs, 1, memory_order_relaxed);
}

/* Interrupts the guest if it wants one for what was pushed since the last
 * decision. */
static void notify_guest(struct blk_worker *w)
{
	if (virtq_should_notify(&w->queue->vq)) {
		w->blk->irq->queue(w->blk->irq, w->queue_index);
		w->n_interrupts++;
	}
}

/* Serves the available requests (up to the budget), then interrupts the
 * guest if it wants (unless defer: a polling caller interrupts once the
 * ring is idle, see poll_ring). A request over the rate limits goes back to the ring
 * (nothing is held: a pause finds the rings final) and the worker sleeps
 * until the budget is there, on the stop eventfd only: it neither polls the
 * ring nor wakes for the guest's kicks meanwhile (they stay counted in the
 * kick eventfd), nor reaps the io_uring engine's completions (they wait at
 * most as long as the next request must). Returns -1 when the queue is
 * broken.
 *
 * With the io_uring engine, the reads, writes and flushes go to the queue's
 * ring (at most BLK_URING_DEPTH in flight; with every slot taken the worker
 * stops popping and the ring's fd wakes it for the completions), are handed
 * to the kernel once a batch, and what has completed is pushed before the
 * one interrupt of the batch. */
static int drain(struct blk_worker *w, unsigned *served, bool defer)
{
	struct virtio_blk *blk = w->blk;
	struct virtq *vq = &w->queue->vq;
	unsigned rounds = 0;
	int r = 0;

	if (w->ring)
		settle(w);
	while (!atomic_load_explicit(&blk->stopping, memory_order_relaxed) && rounds < BLK_DRAIN_BUDGET) {
		if (w->ring && !w->n_free) {
			/* Every slot in flight: what finished frees some. */
			submit_queued(w);
			if (!settle(w))
				break;   /* the ring's fd wakes the worker */
		}
		if ((r = virtq_pop_chain(vq, &w->chain)) <= 0)
			break;
		rounds++;
		uint64_t wait_ns = blk_rate_admit(&blk->rate, chain_data_bytes(&w->chain));
		if (wait_ns) {
			virtq_unpop(vq);
			atomic_fetch_add_explicit(&blk->n_throttled, 1, memory_order_relaxed);
			/* What was served goes to the guest now, not after the wait,
			 * and what is queued goes to the kernel. */
			if (w->ring) {
				submit_queued(w);
				settle(w);
			}
			notify_guest(w);
			uint64_t ms = wait_ns / 1000000u + 1;
			if (queue_worker_wait_stop(blk->queue_threads, ms > INT_MAX ? INT_MAX : (int)ms))
				break;   /* pause or reset */
			continue;
		}
		uint32_t len = serve(w);
		if (len != BLK_IN_FLIGHT)
			virtq_push_used(vq, w->chain.head, len);
	}
	if (w->ring) {
		submit_queued(w);
		settle(w);
	}
	if (!defer || rounds == BLK_DRAIN_BUDGET)
		notify_guest(w);
	if (rounds == BLK_DRAIN_BUDGET) {
		/* More may be waiting: come back after poll. Only this thread
		 * reads the eventfd; a full counter means a kick is pending. */
		if (w->queue->kick_fd >= 0)
			eventfd_signal(w->queue->kick_fd);
	}
	*served = rounds;
	w->n_requests += rounds;
	if (tuned(w))
		tell_tuner(w, rounds);
	return r < 0 ? -1 : 0;
}

/* Wake-ups of poll_us a serve() polls through at most before it goes back
 * through the worker's poll() (where a pause or reset is seen). */
#define BLK_POLL_ROUNDS 64u
/* Batches served without polling, at most, after polls that found nothing:
 * a guest with one request at a time pays one empty look in this many. */
#define BLK_POLL_BACKOFF_MAX 64u

/* After a batch, with poll_us: the guest's kicks stay off (virtq
 * kicks_off) and the thread looks at the ring every poll_us for as long
 * as each look finds requests, then asks for kicks again. A guest keeping
 * many requests in flight then adds them without an exit each (a kick is
 * a VM exit, and a wake-up of this thread); a guest with one request at a
 * time costs an empty look, and then polls less and less often (the
 * backoff). The guest's interrupt waits for the first look that finds
 * nothing (or the last of BLK_POLL_ROUNDS); the look after it decides
 * (a guest answers completions with requests). Called with kicks_off set
 * before the batch (served requests: its drain() did not ask for a kick,
 * nor interrupt, either). Returns drain()'s -1 or 0;
 * *more: requests came in as the kicks were asked for again. */
static int poll_ring(struct blk_worker *w, unsigned served, bool *more)
{
	struct virtio_blk *blk = w->blk;
	struct virtq *vq = &w->queue->vq;
	struct timespec pause = { .tv_nsec = (long)blk->poll_us * 1000 };
	bool found = false, told = false;
	int r = 0;

	for (unsigned i = 0; served && i < BLK_POLL_ROUNDS && r == 0; i++) {
		nanosleep(&pause, NULL);
		w->n_looks++;
		if (atomic_load_explicit(&blk->stopping, memory_order_relaxed))
			break;
		if (!virtq_has_buffers(vq)) {
			w->n_empty_looks++;
			/* A guest that adds requests as it sees completions had
			 * not been told of them yet: tell it, and look once more
			 * before going back to kicks. */
			if (told)
				break;
			notify_guest(w);
			told = true;
			continue;
		}
		found = true;
		told = false;
		r = drain(w, &served, true);
	}
	/* The interrupt for everything served since the kick: a guest that
	 * keeps adding requests while it has completions it has not been told
	 * of gets one interrupt for the lot once it stops (QD32: a few a
	 * batch instead of one a look; an interrupt costs the guest exits and
	 * its handler's time). */
	notify_guest(w);
	if (found) {
		w->poll_backoff = 0;
	} else if (served) {
		w->poll_backoff = w->poll_backoff ? w->poll_backoff * 2 : 1;
		if (w->poll_backoff > BLK_POLL_BACKOFF_MAX)
			w->poll_backoff = BLK_POLL_BACKOFF_MAX;
		w->poll_skip = w->poll_backoff;
	}
	vq->kicks_off = false;
	*more = r == 0 && virtq_has_buffers(vq);   /* asks for the next kick, and looks once more */
	return r;
}

static int worker_serve(void *ctx, struct queue_worker_sleep *next)
{
	struct blk_worker *w = ctx;
	bool polling = w->blk->poll_us && !w->ring && w->queue->vq.event_idx;
	if (tuned(w))
		polling = blk_poll_tuner_polls(&w->tuner);
	if (polling && w->poll_skip) {
		w->poll_skip--;
		polling = false;
	}
	unsigned served = 0;
	w->queue->vq.kicks_off = polling;
	int r = drain(w, &served, polling);
	if (polling) {
		bool more = false;
		if (r == 0)
			r = poll_ring(w, served, &more);
		w->queue->vq.kicks_off = false;   /* a broken queue: nothing more to ask */
		if (more)
			next->timeout_ms = 0;   /* serve again before sleeping */
	}
	if (w->submit_failed)
		next->timeout_ms = 1;   /* the kernel refused a submission: try again soon */
	return r;
}

/* How long the worker waits for its requests in flight when it stops: each
 * wait returns with a completion (file I/O always completes), so the bound
 * is for a kernel that keeps refusing io_uring_enter (1 ms between tries). */
#define BLK_STOP_TRIES 10000u

/* The queue worker's stop op, on the worker's thread before it ends (pause,
 * reset, destroy, or the queue broke): waits for the requests in the ring
 * and completes them, so that a pause finds the rings final, a reset leaves
 * nothing to complete into the queues it lets go of, and the next thread
 * inherits an empty ring (the kernel would otherwise cancel them as this
 * thread exits). On a broken queue their used entries are refused by virtq:
 * they are only waited for. */
static void worker_stop(void *ctx)
{
	struct blk_worker *w = ctx;
	struct virtio_blk *blk = w->blk;
	if (!w->ring)
		return;
	for (unsigned tries = 0; blk_uring_in_flight(w->ring) && tries < BLK_STOP_TRIES; tries++) {
		if (blk_uring_wait(w->ring) < 0)
			nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
		settle(w);
	}
	w->queued = 0;
	w->submit_failed = false;
	if (blk_uring_in_flight(w->ring)) {
		/* Never seen: the kernel refused io_uring_enter for 10 s. Those
		 * requests are lost to the guest; the queue goes on without its
		 * ring, whose slots may still be in the kernel's hands. */
		log_error_limited(&blk->log_limit,
				  "%s q%u: %u requests still in flight in io_uring after 10 s; the queue goes on "
				  "synchronously", blk->name, w->queue_index, blk_uring_in_flight(w->ring));
		w->ring = NULL;
	}
	if (virtq_should_notify(&w->queue->vq))
		blk->irq->queue(blk->irq, w->queue_index);
}

static const struct queue_worker_ops blk_worker_ops = { .serve = worker_serve, .stop = worker_stop };

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
			/* io_uring: the ring's fd is readable while completions wait */
			.watch = { { .fd = w->ring ? blk_uring_fd(w->ring) : -1, .events = POLLIN } },
			.n_watch = w->ring ? 1 : 0,
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
	blk->discard = !blk->readonly && (features & (1ull << VIRTIO_BLK_F_DISCARD));
	blk->write_zeroes = !blk->readonly && (features & (1ull << VIRTIO_BLK_F_WRITE_ZEROES));
	atomic_store(&blk->stopping, false);
	atomic_store(&blk->warned_malformed, false);
	atomic_store(&blk->warned_io, false);
	atomic_store(&blk->warned_uring, false);
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
	else
		f |= (1ull << VIRTIO_BLK_F_DISCARD) | (1ull << VIRTIO_BLK_F_WRITE_ZEROES);
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

/* Sets GET_ID's answer: at most VIRTIO_BLK_ID_BYTES, NUL padded. */
static void set_serial(struct virtio_blk *blk, const char *serial)
{
	memset(blk->serial, 0, sizeof(blk->serial));
	memcpy(blk->serial, serial, strnlen(serial, sizeof(blk->serial)));
}

void virtio_blk_set_index(struct virtio_blk *blk, unsigned index)
{
	char serial[32];

	snprintf(blk->name, sizeof(blk->name), "blk%u", index);
	snprintf(serial, sizeof(serial), "minivmm-blk%u", index);
	if (!blk->custom_serial)
		set_serial(blk, serial);
	for (unsigned i = 0; i < blk->num_queues; i++) {
		struct blk_worker *w = &blk->workers[i];
		snprintf(w->thread_name, sizeof(w->thread_name), "blk%u-q%u", index % 1000,
			 i % VIRTIO_MAX_QUEUES);
		snprintf(w->vq_name, sizeof(w->vq_name), "blk%u q%u", index, i);
	}
}

/* The io_uring engine's rings and slots, one per queue, made before the
 * sandbox. Returns 0, or -1 with err saying why (everything made is freed). */
static int make_rings(struct virtio_blk *blk, char *err, size_t errlen)
{
	for (unsigned i = 0; i < blk->num_queues; i++) {
		struct blk_worker *w = &blk->workers[i];
		w->slots = calloc(BLK_URING_DEPTH, sizeof(w->slots[0]));
		if (!w->slots) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		w->ring_made = blk_uring_create(blk->fd, BLK_URING_DEPTH, err, errlen);
		if (!w->ring_made)
			return -1;
		w->ring = w->ring_made;
		for (unsigned k = 0; k < BLK_URING_DEPTH; k++)
			w->free_slots[k] = (uint8_t)k;
		w->n_free = BLK_URING_DEPTH;
	}
	return 0;
}

static void free_rings(struct virtio_blk *blk)
{
	for (unsigned i = 0; i < blk->num_queues; i++) {
		struct blk_worker *w = &blk->workers[i];
		blk_uring_destroy(w->ring_made);
		free(w->slots);
		w->ring = w->ring_made = NULL;
		w->slots = NULL;
		w->n_free = 0;
	}
}

/* Picks the engine: io_uring when asked or, for auto, when the kernel
 * allows it (engine_note says which and why, for the line
 * virtio_blk_log_engine() writes). Returns 0, or -1 with err filled when
 * io_uring was asked for and cannot be had. */
static int choose_engine(struct virtio_blk *blk, enum virtio_blk_engine engine, const char *path, char *err,
			 size_t errlen)
{
	char why[200] = "";
	if (engine == VIRTIO_BLK_ENGINE_SYNC)
		return 0;
	if (!make_rings(blk, why, sizeof(why))) {
		blk->uring = true;
		if (engine == VIRTIO_BLK_ENGINE_AUTO)
			snprintf(blk->engine_note, sizeof(blk->engine_note), "%s: image %s, %u queue%s, engine: io_uring",
				 blk->name, path, blk->num_queues, blk->num_queues > 1 ? "s" : "");
		return 0;
	}
	free_rings(blk);
	if (engine == VIRTIO_BLK_ENGINE_URING) {
		snprintf(err, errlen, "image %s: engine=uring: io_uring unavailable: %s", path, why);
		return -1;
	}
	snprintf(blk->engine_note, sizeof(blk->engine_note), "%s: image %s, %u queue%s, engine: sync (io_uring "
		 "unavailable: %s)", blk->name, path, blk->num_queues, blk->num_queues > 1 ? "s" : "", why);
	return 0;
}

/* A serial GET_ID can give: 1 to 20 printable ASCII characters. */
static bool serial_ok(const char *s)
{
	size_t n = strnlen(s, VIRTIO_BLK_ID_BYTES + 1);
	if (n < 1 || n > VIRTIO_BLK_ID_BYTES)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
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
	if (p->serial && !serial_ok(p->serial)) {
		snprintf(err, errlen, "image %s: serial: must be 1 to %u printable ASCII characters", path,
			 VIRTIO_BLK_ID_BYTES);
		return NULL;
	}
	uint64_t size;
	int fd = blk_image_open(path, readonly, &size, err, errlen);
	if (fd < 0)
		return NULL;

	struct virtio_blk *blk = calloc(1, sizeof(*blk) + num_queues * sizeof(struct blk_worker));
	if (!blk) {
		snprintf(err, errlen, "image %s: out of memory", path);
		close(fd);
		return NULL;
	}
	blk->fd = fd;
	log_limit_init(&blk->log_limit, blk->name);
	blk_rate_init(&blk->rate, p->ops_per_sec, p->bytes_per_sec);
	blk->poll_us = p->poll_us < VIRTIO_BLK_POLL_US_MAX ? p->poll_us : VIRTIO_BLK_POLL_US_MAX;
	blk->poll_auto = p->poll_auto;
	if (p->serial) {
		set_serial(blk, p->serial);
		blk->custom_serial = true;
	}
	blk->readonly = readonly;
	blk->num_queues = num_queues;
	blk->capacity = size / BLK_SECTOR_SIZE;
	for (unsigned i = 0; i < num_queues; i++) {
		blk->workers[i].blk = blk;
		blk_poll_tuner_init(&blk->workers[i].tuner);
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
	if (choose_engine(blk, p->engine, path, err, errlen)) {
		virtio_blk_destroy(blk);
		return NULL;
	}

	blk->config.capacity = htole64(blk->capacity);
	blk->config.seg_max = htole32(BLK_SEG_MAX);
	blk->config.blk_size = htole32(BLK_SECTOR_SIZE);
	blk->config.num_queues = htole16((uint16_t)num_queues);
	if (!readonly) {
		blk->config.max_discard_sectors = htole32(BLK_DISCARD_MAX_SECTORS);
		blk->config.max_discard_seg = htole32(BLK_DISCARD_MAX_SEG);
		blk->config.discard_sector_alignment = htole32(blk_image_block_sectors(fd));
		blk->config.max_write_zeroes_sectors = htole32(BLK_WRITE_ZEROES_MAX_SECTORS);
		blk->config.max_write_zeroes_seg = htole32(BLK_WRITE_ZEROES_MAX_SEG);
		blk->config.write_zeroes_may_unmap = 1;   /* unmap: a hole is punched */
	}
	return blk;
}

void virtio_blk_destroy(struct virtio_blk *blk)
{
	if (!blk)
		return;
	blk_reset(blk);
	/* Where each queue's time went, for whoever tunes a host: what the
	 * guest asked (requests, kicks), what it was given (interrupts), and
	 * what poll= did. */
	for (unsigned i = 0; i < blk->num_queues; i++) {
		const struct blk_worker *w = &blk->workers[i];
		uint64_t polled = w->tuner.epochs_polled, epochs = polled + w->tuner.epochs_kicked;
		if (!epochs)
			continue;   /* poll=auto did not run: nothing to tune */
		log_info("%s q%u: %" PRIu64 " requests, %" PRIu64 " kicks, %" PRIu64 " interrupts, %" PRIu64
			 " polling looks (%" PRIu64 " empty); poll=auto polled %" PRIu64 " of %" PRIu64 " epochs",
			 blk->name, i, w->n_requests, queue_worker_kicks(blk->queue_threads, i), w->n_interrupts,
			 w->n_looks, w->n_empty_looks, polled, epochs);
	}
	queue_worker_destroy(blk->queue_threads);
	free_rings(blk);   /* before the image: each holds it as its fixed file */
	close(blk->fd);
	log_limit_destroy(&blk->log_limit);
	blk_rate_destroy(&blk->rate);
	free(blk);
}
