/* virtio-blk device model (virtio 1.x, spec section 5.2) on a raw image file
 * or block device.
 *
 * Offered features: SEG_MAX, BLK_SIZE (512), FLUSH, RO for a read-only disk,
 * DISCARD and WRITE_ZEROES for a writable one, MQ when there is more than
 * one queue. Requests served: IN, OUT, FLUSH, GET_ID, and DISCARD and
 * WRITE_ZEROES when negotiated (their ranges checked in
 * devices/virtio/blk_ranges.h; holes punched in the image with fallocate(),
 * zeros written where it cannot: devices/virtio/blk_image.h); anything else
 * completes with VIRTIO_BLK_S_UNSUPP.
 *
 * Rate limits (optional): operations and bytes per second for the whole
 * disk, each a token bucket with a one-time burst; a queue over its budget
 * leaves the request in its ring and its worker sleeps until the budget is
 * there (see virtio_blk_params; the buckets: devices/virtio/blk_rate.h).
 *
 * Threads: activate() starts one worker per ready queue ("blk<index>-q<i>"),
 * which waits on that queue's kick eventfd and does the I/O, so a vCPU never
 * blocks on the disk. reset() stops and joins them all.
 *
 * Engines (virtio_blk_params.engine): io_uring (devices/virtio/blk_uring.h)
 * keeps up to 64 reads, writes and flushes in flight per queue, in a ring
 * made at create (before the sandbox) and restricted to those operations on
 * the image; a pause or reset waits for them and completes them first. The
 * synchronous engine serves one request at a time with
 * preadv/pwritev/fdatasync. Either way, other requests (GET_ID, DISCARD and
 * WRITE_ZEROES with fallocate, unsupported ones), writes in writethrough
 * mode and requests of more than seg_max segments are served synchronously.
 *
 * The device owns the image fd, the rings and a queue worker
 * (devices/virtio/queue_worker.h: the threads and their stop eventfd); the
 * transport owns the queues, their eventfds and the interrupt handle.
 *
 * Files: blk.c is the device (requests, the io_uring engine's slots, the
 * workers, life cycle, config space); blk_ranges.c, blk_image.c, blk_rate.c
 * and blk_uring.c do one job each for it, as above, and know nothing of the
 * device. */
#ifndef MINIVMM_VIRTIO_BLK_H
#define MINIVMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"

struct thread_starter;

/* How a disk's requests reach the image. */
enum virtio_blk_engine {
	VIRTIO_BLK_ENGINE_AUTO,    /* io_uring where the kernel allows it, else sync; one info line says which */
	VIRTIO_BLK_ENGINE_SYNC,    /* preadv/pwritev/fdatasync on the queue's worker, one request at a time */
	VIRTIO_BLK_ENGINE_URING,   /* io_uring, or create() fails saying why */
};

struct virtio_blk_params {
	const char *path;            /* the image: a regular file or block device */
	bool readonly;
	unsigned num_queues;         /* 1..VIRTIO_MAX_QUEUES */
	/* Which disk of the VM this is: names the worker threads
	 * ("blk<index>-q<i>"), the log lines, and the serial that GET_ID
	 * returns ("minivmm-blk<index>"), so that every disk of a VM has its
	 * own. */
	unsigned index;
	/* GET_ID's answer: 1 to VIRTIO_BLK_ID_BYTES (20) printable ASCII
	 * characters; NULL: "minivmm-blk<index>". */
	const char *serial;
	/* Rate limits, per second, for the disk (all its queues together); 0:
	 * none. An operation is any request; its bytes are the data it carries
	 * (a read's or write's; a discard or write-zeroes counts its 16-byte
	 * ranges, not the sectors they name). Each limit allows a one-time
	 * burst of one second's worth, then refills a bucket of 1/10 s worth. */
	uint64_t bytes_per_sec;
	uint64_t ops_per_sec;
	enum virtio_blk_engine engine;          /* 0: auto */
	/* After a wake-up that served requests, a queue's thread keeps the
	 * guest's kicks off and looks at the ring again after this many
	 * microseconds, as long as it finds requests there each time; then it
	 * asks for kicks again and sleeps. 0: never (kicked for every batch).
	 * The synchronous engine only; at most VIRTIO_BLK_POLL_US_MAX. */
	unsigned poll_us;
	/* poll_us polls only where it serves more: each queue measures its
	 * requests per second polling and on kicks and takes the better
	 * (devices/virtio/blk_poll.h). */
	bool poll_auto;
	const struct thread_starter *threads;   /* who creates the queue workers; NULL: pthread_create */
};

#define VIRTIO_BLK_POLL_US_MAX 1000u

struct virtio_blk;

/* Opens the image. Returns NULL with one line in err naming the image and
 * the reason ("image PATH: not a regular file or block device", size not a
 * multiple of 512, a serial that is too long, "engine=uring: io_uring
 * unavailable: io_uring_setup: ..." ...); the caller adds where the path came
 * from. Makes the io_uring engine's rings: call before the sandbox. */
struct virtio_blk *virtio_blk_create(const struct virtio_blk_params *p, char *err, size_t errlen);

/* Gives the disk another index (see virtio_blk_params; a serial given at
 * create stays). Call before activation. */
void virtio_blk_set_index(struct virtio_blk *blk, unsigned index);

/* Stops the workers if they run, closes the image. NULL is accepted. */
void virtio_blk_destroy(struct virtio_blk *blk);

/* Requests served since the device was created (all queues; relaxed
 * counters, each one exact, read while the workers run). Bytes are the
 * data of the requests that succeeded. */
struct virtio_blk_stats {
	uint64_t reads, writes, flushes, discards, write_zeroes, others;   /* others: GET_ID, unsupported types */
	uint64_t read_bytes, written_bytes;
	uint64_t errors;                            /* completed with a status other than OK (UNSUPP too) */
	uint64_t discards_ignored;                  /* completed OK, but the image cannot punch holes */
	uint64_t throttled;                         /* waits of a queue over the rate limits */
	uint64_t uring_requests;                    /* submitted through io_uring (the rest: synchronously) */
	/* poll=auto: the tuner's epochs (devices/virtio/blk_poll.h) spent
	 * polling and on kicks, all queues: where polling won, most are
	 * polled. */
	uint64_t poll_epochs, kick_epochs;
};
void virtio_blk_stats(const struct virtio_blk *blk, struct virtio_blk_stats *out);

/* The engine create() chose: "io_uring" or "sync". */
const char *virtio_blk_engine_name(const struct virtio_blk *blk);

/* With engine=auto: one info line saying which engine create() chose and,
 * for sync, why ("blk0: image PATH, 2 queues, engine: sync (io_uring
 * unavailable: io_uring_setup: ...)"); the first call only. Not said by
 * create() itself: a start-up error after it must stay the one line on
 * stderr. */
void virtio_blk_log_engine(struct virtio_blk *blk);

/* The dev pointer of every op is the struct virtio_blk. */
extern const struct virtio_dev_ops virtio_blk_ops;

#endif
