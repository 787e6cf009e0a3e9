/* A token bucket: the rate limit of a device's data (virtio-rng's bytes
 * today; disk and NIC bandwidth later). Pure arithmetic on a time the caller
 * passes in (monotonic_ns() in a device, any clock in a test): no clock,
 * no lock, no thread. One bucket belongs to one thread.
 *
 * The bucket holds at most `burst` tokens and earns `rate` per second, to
 * the nanosecond and with no rounding loss however often it is refilled
 * (the fraction of a token earned is kept). A bucket made full spends its
 * burst at once, then `rate` per second. Any gap, however long, refills it
 * without overflow (the arithmetic is 128-bit). A time earlier than the
 * last one seen (a clock that went back) earns nothing and becomes the
 * new reference: the bucket never stalls waiting for the old time.
 *
 * A cost larger than what the bucket holds (a 1 MiB request under a
 * 1 MB/s limit) can be charged anyway: the bucket gives what it holds and
 * the rest is owed. The debt is paid from the next tokens earned before
 * anything else can go, so the rate holds whatever the sizes.
 *
 * rate 0 means no limit: every take succeeds and nothing is counted. */
#ifndef MINIVMM_TOKEN_BUCKET_H
#define MINIVMM_TOKEN_BUCKET_H

#include <stdbool.h>
#include <stdint.h>

struct token_bucket {
	uint64_t rate;       /* tokens per second; 0: unlimited */
	uint64_t burst;      /* the most it holds (>= 1 when limited) */
	uint64_t tokens;     /* held now, <= burst */
	uint64_t frac;       /* the part of a token earned too, in 1e-9 tokens (< 1e9) */
	uint64_t last_ns;    /* the time of the last refill */
	uint64_t debt;       /* owed by costs charged beyond what it held */
};

/* A full bucket at time now_ns. burst 0 with a rate is taken as 1 (a bucket
 * that can never hold a token would wait for ever). */
void token_bucket_init(struct token_bucket *b, uint64_t rate, uint64_t burst, uint64_t now_ns);

/* Adds what was earned since the last refill, up to burst. */
void token_bucket_refill(struct token_bucket *b, uint64_t now_ns);

/* Refills, then takes n tokens if they are all there. True when it took
 * them (always, unlimited). n above burst can never be taken: ask for at
 * most token_bucket_max_take(). */
bool token_bucket_take(struct token_bucket *b, uint64_t n, uint64_t now_ns);

/* Refills and pays what it can of the debt, then the nanoseconds until the
 * debt left plus n tokens are there (capped at burst): 0 when they are now
 * (always, unlimited). Rounded up, so a caller that sleeps that long finds
 * them. */
uint64_t token_bucket_wait_ns(struct token_bucket *b, uint64_t n, uint64_t now_ns);

/* Refills, then spends cost: what the bucket holds of it now, the rest
 * owed (see above). Call it once token_bucket_wait_ns() said 0. */
void token_bucket_charge(struct token_bucket *b, uint64_t cost, uint64_t now_ns);

/* The most one take can ask for: burst, or UINT64_MAX unlimited. */
uint64_t token_bucket_max_take(const struct token_bucket *b);

#endif
