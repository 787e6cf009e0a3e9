#include "vmm/base/token_bucket.h"

#define NS_PER_S 1000000000ull

void token_bucket_init(struct token_bucket *b, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
	*b = (struct token_bucket){
		.rate = rate,
		.burst = rate && !burst ? 1 : burst,
		.last_ns = now_ns,
	};
	b->tokens = b->burst;
}

void token_bucket_refill(struct token_bucket *b, uint64_t now_ns)
{
	if (!b->rate)
		return;
	if (now_ns <= b->last_ns || b->tokens >= b->burst) {
		/* Back in time: nothing earned, and the new time is the reference
		 * (waiting for the old one could take for ever). Full: nothing to
		 * earn. */
		if (b->tokens >= b->burst) {
			b->tokens = b->burst;
			b->frac = 0;
		}
		b->last_ns = now_ns;
		return;
	}
	/* (now - last) * rate fits 128 bits whatever the gap: no overflow. */
	unsigned __int128 earned = (unsigned __int128)(now_ns - b->last_ns) * b->rate + b->frac;
	unsigned __int128 whole = earned / NS_PER_S;
	b->last_ns = now_ns;
	if (whole >= b->burst - b->tokens) {
		b->tokens = b->burst;
		b->frac = 0;
	} else {
		b->tokens += (uint64_t)whole;
		b->frac = (uint64_t)(earned % NS_PER_S);
	}
}

bool token_bucket_take(struct token_bucket *b, uint64_t n, uint64_t now_ns)
{
	if (!b->rate)
		return true;
	token_bucket_refill(b, now_ns);
	if (b->tokens < n)
		return false;
	b->tokens -= n;
	return true;
}

/* Pays what it holds of the debt. */
static void pay_debt(struct token_bucket *b)
{
	uint64_t pay = b->debt < b->tokens ? b->debt : b->tokens;
	b->tokens -= pay;
	b->debt -= pay;
}

uint64_t token_bucket_wait_ns(struct token_bucket *b, uint64_t n, uint64_t now_ns)
{
	if (!b->rate)
		return 0;
	token_bucket_refill(b, now_ns);
	pay_debt(b);
	n = b->debt > UINT64_MAX - n ? UINT64_MAX : b->debt + n;
	if (n > b->burst)
		n = b->burst;
	if (b->tokens >= n)
		return 0;
	/* What is missing, in 1e-9 tokens, over the rate, rounded up. */
	unsigned __int128 missing = (unsigned __int128)(n - b->tokens) * NS_PER_S - b->frac;
	unsigned __int128 ns = (missing + b->rate - 1) / b->rate;
	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

void token_bucket_charge(struct token_bucket *b, uint64_t cost, uint64_t now_ns)
{
	if (!b->rate)
		return;
	token_bucket_refill(b, now_ns);
	pay_debt(b);
	uint64_t take = cost < b->tokens ? cost : b->tokens;
	b->tokens -= take;
	cost -= take;
	b->debt = b->debt > UINT64_MAX - cost ? UINT64_MAX : b->debt + cost;
}

uint64_t token_bucket_max_take(const struct token_bucket *b)
{
	return b->rate ? b->burst : UINT64_MAX;
}
