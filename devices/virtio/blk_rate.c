#include "devices/virtio/blk_rate.h"

#include "vmm/base/log.h"   /* monotonic_ns */

#define BLK_LIMIT_BUCKET_DIV 10u

static void limit_init(struct blk_limit *l, uint64_t rate, uint64_t now)
{
	token_bucket_init(&l->bucket, rate, rate / BLK_LIMIT_BUCKET_DIV, now);   /* 0 with a rate: 1 */
	l->one_time = rate;
}

/* Nanoseconds until a request costing n may go (0: now): the one-time
 * burst first, then the bucket (which pays its debt first). */
static uint64_t limit_wait_ns(struct blk_limit *l, uint64_t n, uint64_t now)
{
	if (!l->bucket.rate || n <= l->one_time)
		return 0;
	return token_bucket_wait_ns(&l->bucket, n - l->one_time, now);
}

/* Spends n, once limit_wait_ns() said 0 at the same time. */
static void limit_take(struct blk_limit *l, uint64_t n, uint64_t now)
{
	if (!l->bucket.rate)
		return;
	uint64_t burst = n < l->one_time ? n : l->one_time;
	l->one_time -= burst;
	token_bucket_charge(&l->bucket, n - burst, now);
}

void blk_rate_init(struct blk_rate *r, uint64_t ops_per_sec, uint64_t bytes_per_sec)
{
	pthread_mutex_init(&r->lock, NULL);
	uint64_t now = monotonic_ns();
	limit_init(&r->ops, ops_per_sec, now);
	limit_init(&r->bytes, bytes_per_sec, now);
	r->limited = ops_per_sec || bytes_per_sec;
}

void blk_rate_destroy(struct blk_rate *r)
{
	pthread_mutex_destroy(&r->lock);
}

uint64_t blk_rate_admit(struct blk_rate *r, uint64_t bytes)
{
	if (!r->limited)
		return 0;
	uint64_t now = monotonic_ns();
	pthread_mutex_lock(&r->lock);
	uint64_t w_ops = limit_wait_ns(&r->ops, 1, now), w_bytes = limit_wait_ns(&r->bytes, bytes, now);
	if (!w_ops && !w_bytes) {
		limit_take(&r->ops, 1, now);
		limit_take(&r->bytes, bytes, now);
	}
	pthread_mutex_unlock(&r->lock);
	return w_ops > w_bytes ? w_ops : w_bytes;
}
