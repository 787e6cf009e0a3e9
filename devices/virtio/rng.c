#define _GNU_SOURCE
#include "devices/virtio/rng.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>

#include "devices/virtio/iov.h"
#include "devices/virtio/queue_worker.h"
#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"
#include "vmm/base/thread_start.h"
#include "vmm/base/token_bucket.h"

#define RNG_QUEUE_MAX_SIZE 256
/* Requests served per wake-up at most: the driver can keep the ring full
 * for ever. After this many the worker goes back through poll() (where a
 * stop is seen) without sleeping. */
#define RNG_DRAIN_BUDGET 256u

struct virtio_rng {
	char name[16];                   /* "rng0", in log lines */
	char thread_name[16];
	char vq_name[32];                /* "rng0 requestq", in virtq's log lines */
	const struct thread_starter *threads;
	struct log_limit log_limit;      /* the lines the guest can cause, across activations */
	struct queue_worker *worker;     /* the one thread, from activate to reset (not while paused) */

	/* Written by activate() before the worker starts and by reset()
	 * after it stopped: read-only while it runs. */
	bool active;
	const struct virtio_irq *irq;
	struct virtio_queue *queue;      /* the transport's; NULL: the driver did not set it up */

	atomic_bool stopping;            /* pause or reset: stop between requests */
	/* The worker's own (one thread at a time; start and join order them). */
	struct token_bucket bucket;      /* bytes; kept across resets */
	struct virtq_chain chain;        /* one request at a time */
	struct iovec fill[VIRTQ_MAX_IOV];   /* the part of it that gets bytes */

	/* virtio_rng_stats: bumped by the worker, read by anyone. */
	atomic_uint_fast64_t n_requests, n_bytes, n_throttled, n_errors;
};

static void bump(atomic_uint_fast64_t *n, uint64_t v)
{
	atomic_fetch_add_explicit(n, v, memory_order_relaxed);
}

/* ---- requests ---- */

/* Fills the first len writable bytes of r->chain with random bytes.
 * Returns how many it wrote (fewer only when getrandom fails). */
static uint64_t fill_random(struct virtio_rng *r, uint64_t len)
{
	const struct virtq_chain *c = &r->chain;
	unsigned n = iov_slice(c->iov + c->n_out, c->n_in, 0, len, r->fill);
	uint64_t done = 0;
	for (unsigned i = 0; i < n; i++) {
		uint8_t *p = r->fill[i].iov_base;
		size_t left = r->fill[i].iov_len;
		while (left) {
			/* Flags 0: the urandom pool, which blocks only before the
			 * host's pool is first seeded. A chunk is at most 64 KiB:
			 * no short reads but for a signal (none come here). */
			ssize_t got = getrandom(p, left, 0);
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				log_warn_limited(&r->log_limit, "%s: getrandom: %s; request (head %u) gets %" PRIu64
						 " bytes", r->name, got < 0 ? strerror(errno) : "no bytes", c->head, done);
				return done;
			}
			p += got;
			left -= (size_t)got;
			done += (uint64_t)got;
		}
	}
	return done;
}

/* A request the device refuses: given back with nothing written. */
static uint32_t refuse(struct virtio_rng *r, const char *what)
{
	log_warn_limited(&r->log_limit, "%s: request (head %u) %s; given back with nothing written", r->name,
			 r->chain.head, what);
	bump(&r->n_errors, 1);
	return 0;
}

/* How much of a request to fill: all its writable bytes, at most the cap
 * and the bucket's burst. */
static uint64_t request_len(const struct virtio_rng *r)
{
	uint64_t len = r->chain.in_len, max = token_bucket_max_take(&r->bucket);
	if (len > VIRTIO_RNG_REQUEST_MAX)
		len = VIRTIO_RNG_REQUEST_MAX;
	return len < max ? len : max;
}

/* Serves the available requests, up to the budget or until the bucket is
 * short (then the request goes back to the ring and next says how long to
 * sleep). Returns -1 when the queue is broken. */
static int rng_serve(void *ctx, struct queue_worker_sleep *next)
{
	struct virtio_rng *r = ctx;
	struct virtq *vq = &r->queue->vq;
	const struct virtq_chain *c = &r->chain;
	unsigned served = 0;
	int res = 0;

	while (!atomic_load_explicit(&r->stopping, memory_order_relaxed) && served < RNG_DRAIN_BUDGET &&
	       (res = virtq_pop_chain(vq, &r->chain)) > 0) {
		uint32_t written;
		if (c->out_len) {
			written = refuse(r, "has device-readable bytes (the device only writes)");
		} else if (!c->in_len) {
			written = refuse(r, "has no device-writable bytes");
		} else {
			uint64_t len = request_len(r), now = monotonic_ns();
			uint64_t wait_ns = token_bucket_wait_ns(&r->bucket, len, now);
			if (wait_ns) {
				/* Back to the ring: nothing is held while the worker
				 * sleeps (a pause finds the rings final). */
				virtq_unpop(vq);
				bump(&r->n_throttled, 1);
				uint64_t ms = wait_ns / 1000000u + 1;
				next->timeout_ms = ms > INT_MAX ? INT_MAX : (int)ms;
				break;
			}
			token_bucket_take(&r->bucket, len, now);
			uint64_t got = fill_random(r, len);
			if (got) {
				bump(&r->n_requests, 1);
				bump(&r->n_bytes, got);
			} else {
				bump(&r->n_errors, 1);
			}
			written = (uint32_t)got;   /* <= 64 KiB */
		}
		virtq_push_used(vq, c->head, written);
		served++;
	}
	if (virtq_should_notify(vq))
		r->irq->queue(r->irq, 0);
	if (served == RNG_DRAIN_BUDGET)
		next->timeout_ms = 0;   /* more may be waiting: round again after poll() */
	return res < 0 ? -1 : 0;
}

static const struct queue_worker_ops rng_worker_ops = { .serve = rng_serve };

/* ---- virtio_dev_ops ---- */

static int start_worker(struct virtio_rng *r)
{
	struct queue_worker_params qp = {
		.name = r->vq_name,
		.thread_name = r->thread_name,
		.role = THREAD_ROLE_RNG,
		.threads = r->threads,
		.kick_fds = { r->queue->kick_fd },
		.n_kicks = 1,
		.irq = r->irq,
		.log_limit = &r->log_limit,
		.ops = &rng_worker_ops,
		.ctx = r,
	};
	int e = queue_worker_start(r->worker, &qp);
	if (e) {
		log_error_limited(&r->log_limit, "%s: cannot start its thread: %s", r->name, strerror(e));
		return -1;
	}
	return 0;
}

/* The worker ends its batch; the queue stays. */
static void rng_pause(void *dev)
{
	struct virtio_rng *r = dev;
	if (!r->active)
		return;
	atomic_store(&r->stopping, true);
	queue_worker_stop(r->worker);
}

static int rng_resume(void *dev)
{
	struct virtio_rng *r = dev;
	if (!r->active || !r->queue || queue_worker_running(r->worker))
		return 0;
	atomic_store(&r->stopping, false);
	return start_worker(r);
}

/* A pause that also lets go of the queue. */
static void rng_reset(void *dev)
{
	struct virtio_rng *r = dev;
	if (!r->active)
		return;
	rng_pause(r);
	r->queue = NULL;
	r->irq = NULL;
	r->active = false;
}

static int rng_activate(void *dev, uint64_t features, struct virtio_queue *queues, unsigned n_queues,
			const struct virtio_irq *irq)
{
	struct virtio_rng *r = dev;
	if (r->active) {
		log_warn_limited(&r->log_limit, "%s: activated twice without a reset", r->name);
		return -1;
	}
	r->irq = irq;
	r->queue = n_queues >= 1 && queues[0].ready ? &queues[0] : NULL;
	atomic_store(&r->stopping, false);
	r->active = true;
	if (!r->queue) {
		log_warn_limited(&r->log_limit, "%s: the driver did not set up the request queue; no entropy", r->name);
		return 0;
	}
	if (!r->queue->vq.name)
		r->queue->vq.name = r->vq_name;
	if (start_worker(r)) {
		rng_reset(r);   /* the transport only sets NEEDS_RESET: nothing may keep running */
		return -1;
	}
	return 0;
}

static uint64_t rng_features(void *dev)
{
	return 0;
}

static unsigned rng_num_queues(void *dev)
{
	return 1;
}

static uint32_t rng_config_size(void *dev)
{
	return 0;
}

static void rng_config_read(void *dev, uint32_t offset, void *data, uint32_t len)
{
	memset(data, 0, len);
}

const struct virtio_dev_ops virtio_rng_ops = {
	.name = "rng",
	.device_id = VIRTIO_ID_RNG,
	.features = rng_features,
	.num_queues = rng_num_queues,
	.queue_max_size = RNG_QUEUE_MAX_SIZE,
	.config_size = rng_config_size,
	.config_read = rng_config_read,
	.activate = rng_activate,
	.reset = rng_reset,
	.pause = rng_pause,
	.resume = rng_resume,
};

/* ---- life cycle ---- */

struct virtio_rng *virtio_rng_create(const struct virtio_rng_params *p, char *err, size_t errlen)
{
	struct virtio_rng *r = calloc(1, sizeof(*r));
	if (!r) {
		err_set(err, errlen, "rng%u: out of memory", p->index);
		return NULL;
	}
	snprintf(r->name, sizeof(r->name), "rng%u", p->index % 1000000u);
	snprintf(r->thread_name, sizeof(r->thread_name), "rng%u", p->index % 1000000u);
	snprintf(r->vq_name, sizeof(r->vq_name), "%s requestq", r->name);
	log_limit_init(&r->log_limit, r->name);
	r->threads = p->threads;
	/* A burst of one request, or of one second's bytes when that is less. */
	uint64_t burst = p->bytes_per_sec < VIRTIO_RNG_REQUEST_MAX ? p->bytes_per_sec : VIRTIO_RNG_REQUEST_MAX;
	token_bucket_init(&r->bucket, p->bytes_per_sec, burst, monotonic_ns());
	if (!(r->worker = queue_worker_create(1))) {
		err_set(err, errlen, "%s: eventfd: %s", r->name, strerror(errno));
		virtio_rng_destroy(r);
		return NULL;
	}
	return r;
}

void virtio_rng_destroy(struct virtio_rng *r)
{
	if (!r)
		return;
	rng_reset(r);
	queue_worker_destroy(r->worker);
	log_limit_destroy(&r->log_limit);
	free(r);
}

void virtio_rng_stats(const struct virtio_rng *cr, struct virtio_rng_stats *out)
{
	struct virtio_rng *r = (struct virtio_rng *)cr;   /* atomic loads take non-const pointers in C11 */
	*out = (struct virtio_rng_stats){
		.requests = atomic_load_explicit(&r->n_requests, memory_order_relaxed),
		.bytes = atomic_load_explicit(&r->n_bytes, memory_order_relaxed),
		.throttled = atomic_load_explicit(&r->n_throttled, memory_order_relaxed),
		.errors = atomic_load_explicit(&r->n_errors, memory_order_relaxed),
	};
}
