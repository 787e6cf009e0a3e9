/* virtio-rng (entropy) device model (virtio 1.x, spec section 5.4).
 *
 * One queue, the requestq: the driver posts device-writable buffers, the
 * device fills them with getrandom(2) bytes and gives each back with the
 * number of bytes written. No feature bits, no config space.
 *
 * The guest is hostile:
 * - a request with any device-readable byte, or with no device-writable
 *   byte, is given back with nothing written (memory untouched) and one
 *   rate-limited warning; the queue goes on;
 * - a malformed ring or chain (an address outside guest RAM, a loop...)
 *   breaks the queue (devices/virtio/virtq.h): DEVICE_NEEDS_RESET;
 * - a request gets at most VIRTIO_RNG_REQUEST_MAX bytes (the used length
 *   says how many), and the worker serves a bounded batch per wake-up;
 * - the bytes are rate-limited by a token bucket (vmm/base/token_bucket.h):
 *   bytes_per_sec, with a burst of VIRTIO_RNG_REQUEST_MAX bytes (one
 *   second's worth when that is less). A request waits, in the ring, until
 *   the bucket holds what it gets: the worker then sleeps in poll() until
 *   then (or a kick, or a stop), it does not spin. The bucket is the
 *   device's, not the driver's: a reset does not refill it.
 *
 * Threads: activate() starts one worker, "rng<index>" (role
 * THREAD_ROLE_RNG: poll, read and getrandom), on the queue worker
 * (devices/virtio/queue_worker.h); reset() and pause() stop it between
 * requests (no chain is held across a wait: a throttled one is given back
 * to the ring). The transport owns the queue, its eventfds and the
 * interrupt handle.
 *
 * Snapshots: nothing of its own to save (no save/load ops): the transport's
 * queue state is all there is. */
#ifndef MINIVMM_VIRTIO_RNG_H
#define MINIVMM_VIRTIO_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "devices/virtio/virtio.h"

struct thread_starter;

/* The most bytes one request gets, and the token bucket's burst. */
#define VIRTIO_RNG_REQUEST_MAX (64u * 1024)

struct virtio_rng_params {
	uint64_t bytes_per_sec;      /* the rate limit; 0: none */
	unsigned index;              /* names the thread "rng<index>" and the log lines */
	const struct thread_starter *threads;   /* NULL: pthread_create */
};

struct virtio_rng;

/* Returns NULL with one line in err (out of memory, no eventfd). */
struct virtio_rng *virtio_rng_create(const struct virtio_rng_params *p, char *err, size_t errlen);

/* Stops the worker if it runs. NULL is accepted. */
void virtio_rng_destroy(struct virtio_rng *r);

/* Since the device was created (relaxed counters, each one exact):
 * requests: requests filled; bytes: random bytes given to the guest;
 * throttled: times a request had to wait for the rate limit; errors:
 * requests given back with nothing written (readable bytes, no writable
 * bytes, getrandom failing). */
struct virtio_rng_stats {
	uint64_t requests, bytes, throttled, errors;
};
void virtio_rng_stats(const struct virtio_rng *r, struct virtio_rng_stats *out);

/* The dev pointer of every op is the struct virtio_rng. */
extern const struct virtio_dev_ops virtio_rng_ops;

#endif
