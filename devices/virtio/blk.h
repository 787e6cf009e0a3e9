/* virtio-blk device model (virtio 1.x, spec section 5.2) on a raw image file
 * or block device.
 *
 * Offered features: SEG_MAX, BLK_SIZE (512), FLUSH, RO for a read-only disk,
 * MQ when there is more than one queue. Requests served: IN, OUT, FLUSH,
 * GET_ID; anything else completes with VIRTIO_BLK_S_UNSUPP.
 *
 * Threads: activate() starts one worker per ready queue ("blk<index>-q<i>"),
 * which waits on that queue's kick eventfd and does the I/O with
 * preadv/pwritev/fdatasync, so a vCPU never blocks on the disk. reset() stops
 * and joins them all. The device owns the image fd and a queue worker
 * (devices/virtio/queue_worker.h: the threads and their stop eventfd); the
 * transport owns the queues, their eventfds and the interrupt handle. */
#ifndef MINIVMM_VIRTIO_BLK_H
#define MINIVMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>

#include "devices/virtio/virtio.h"

struct virtio_blk;

/* Opens the image at path, read-write or read-only, for a device with
 * num_queues queues (1..VIRTIO_MAX_QUEUES). Returns NULL with one line in err
 * naming the path and the reason (missing, not a regular file or block
 * device, size not a multiple of 512, ...). */
struct virtio_blk *virtio_blk_create(const char *path, bool readonly, unsigned num_queues, char *err,
				     size_t errlen);

/* Which disk of the VM this is (default 0): names the worker threads
 * ("blk<index>-q<i>"), the log lines, and the serial that GET_ID returns
 * ("minivmm-blk<index>"), so that every disk of a VM has its own. Call
 * before activation. */
void virtio_blk_set_index(struct virtio_blk *blk, unsigned index);

/* Who creates the queue workers (vmm/base/thread_start.h); default: plain
 * pthread_create. Call before activation. */
struct thread_starter;
void virtio_blk_set_threads(struct virtio_blk *blk, const struct thread_starter *threads);

/* Stops the workers if they run, closes the image. NULL is accepted. */
void virtio_blk_destroy(struct virtio_blk *blk);

/* The dev pointer of every op is the struct virtio_blk. */
extern const struct virtio_dev_ops virtio_blk_ops;

#endif
