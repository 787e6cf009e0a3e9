/* A disk's rate limits (--disk ...,bw=,iops=): operations and bytes per
 * second, each a token bucket with a one-time burst, for the whole disk.
 * Knows nothing of virtio: the device asks before each request whether it
 * may go (blk.c), and a request over the limits waits in its ring.
 *
 * The limits are the disk's, shared by its queue threads under a mutex
 * (arithmetic only under it: no I/O, no sleep): the limit a user sets is
 * the disk's, whichever queues the guest spreads its I/O over (one per vCPU
 * by default). Split per queue (rate/N each), a guest doing its I/O from one
 * CPU would get 1/N of the limit. */
#ifndef MINIVMM_VIRTIO_BLK_RATE_H
#define MINIVMM_VIRTIO_BLK_RATE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/base/token_bucket.h"

/* One limit (operations or bytes): a token bucket of 1/10 s worth (so an
 * idle disk gets little more than its rate), a one-time burst of one
 * second's worth spent first (a guest booting, or a job starting, goes at
 * full speed for a moment, as Firecracker's one_time_burst does), and the
 * bucket's debt for a request larger than it (a 1 MiB read under a 1 MB/s
 * limit): it goes when the bucket is full and the rest is paid before the
 * next request goes, so the rate holds whatever the request sizes. */
struct blk_limit {
	struct token_bucket bucket;      /* rate 0: no limit */
	uint64_t one_time;               /* left of the one-time burst */
};

struct blk_rate {
	bool limited;                    /* a limit is set; false: nothing here is used */
	pthread_mutex_t lock;
	struct blk_limit ops, bytes;
};

/* Limits of ops_per_sec and bytes_per_sec (0: none), their buckets full and
 * their bursts unspent. */
void blk_rate_init(struct blk_rate *r, uint64_t ops_per_sec, uint64_t bytes_per_sec);

void blk_rate_destroy(struct blk_rate *r);

/* Whether a request carrying `bytes` of data may go now: 0 and its cost
 * taken, or the nanoseconds to wait (nothing taken). Any thread. */
uint64_t blk_rate_admit(struct blk_rate *r, uint64_t bytes);

#endif
