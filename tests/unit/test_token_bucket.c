/* vmm/base/token_bucket.c: refill to the nanosecond, the burst cap, long
 * gaps without overflow, a clock that goes back, the wait it predicts, and
 * no limit at rate 0. Time is whatever the test passes in. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "vmm/base/token_bucket.h"

#define S 1000000000ull
#define MS 1000000ull

Test(token_bucket, starts_full_and_spends_its_burst)
{
	struct token_bucket b;
	token_bucket_init(&b, 1000, 100, 5 * S);
	cr_assert_eq(b.tokens, 100);
	cr_assert(token_bucket_take(&b, 60, 5 * S));
	cr_assert(token_bucket_take(&b, 40, 5 * S));
	cr_assert_not(token_bucket_take(&b, 1, 5 * S), "empty at the same instant");
	cr_assert_eq(b.tokens, 0);
	cr_assert_eq(token_bucket_max_take(&b), 100);
}

Test(token_bucket, refills_at_its_rate)
{
	struct token_bucket b;
	token_bucket_init(&b, 1000, 100, 0);   /* 1 token per ms */
	cr_assert(token_bucket_take(&b, 100, 0));
	token_bucket_refill(&b, 10 * MS);
	cr_assert_eq(b.tokens, 10);
	cr_assert_not(token_bucket_take(&b, 11, 10 * MS));
	cr_assert(token_bucket_take(&b, 10, 10 * MS));
	cr_assert(token_bucket_take(&b, 5, 15 * MS));
	cr_assert_eq(b.tokens, 0);
}

/* Refilled every 100 ns at 1000 tokens/s: each refill earns a ten-thousandth
 * of a token, and none of it is lost. */
Test(token_bucket, many_small_refills_lose_nothing)
{
	struct token_bucket b;
	token_bucket_init(&b, 1000, 1000, 0);
	cr_assert(token_bucket_take(&b, 1000, 0));
	uint64_t t = 0;
	for (int i = 0; i < 100000; i++) {   /* 10 ms */
		t += 100;
		token_bucket_refill(&b, t);
	}
	cr_assert_eq(b.tokens, 10, "got %llu", (unsigned long long)b.tokens);
	/* An odd rate: 3 tokens per second over 1/3 s steps. */
	token_bucket_init(&b, 3, 10, 0);
	cr_assert(token_bucket_take(&b, 10, 0));
	t = 0;
	for (int i = 0; i < 9; i++) {
		t += S / 3 + (i % 3 == 2);   /* 333333333, 333333333, 333333334 */
		token_bucket_refill(&b, t);
	}
	cr_assert_eq(b.tokens, 9);
	cr_assert_eq(b.frac, 0);
}

Test(token_bucket, never_holds_more_than_its_burst)
{
	struct token_bucket b;
	token_bucket_init(&b, 1000, 50, 0);
	token_bucket_refill(&b, 10 * S);
	cr_assert_eq(b.tokens, 50);
	cr_assert(token_bucket_take(&b, 40, 10 * S));
	token_bucket_refill(&b, 10 * S + 29 * MS);
	cr_assert_eq(b.tokens, 50 - 40 + 29);
	token_bucket_refill(&b, 10 * S + 41 * MS);
	cr_assert_eq(b.tokens, 50, "12 ms more earn 12, of which 11 fit");
	token_bucket_refill(&b, 10 * S + 1000 * MS);
	cr_assert_eq(b.tokens, 50);
	cr_assert_eq(b.frac, 0, "a full bucket keeps no fraction");
	cr_assert_not(token_bucket_take(&b, 51, 11 * S), "more than the burst is never there");
}

/* Centuries at the highest rates: (now - last) * rate is far past 2^64. */
Test(token_bucket, long_gaps_do_not_overflow)
{
	struct token_bucket b;
	token_bucket_init(&b, UINT64_MAX, UINT64_MAX - 1, 0);
	cr_assert(token_bucket_take(&b, UINT64_MAX - 1, 0));
	token_bucket_refill(&b, UINT64_MAX);
	cr_assert_eq(b.tokens, UINT64_MAX - 1);

	token_bucket_init(&b, 1ull << 40, 65536, 1);
	cr_assert(token_bucket_take(&b, 65536, 1));
	token_bucket_refill(&b, UINT64_MAX - 5);
	cr_assert_eq(b.tokens, 65536);

	token_bucket_init(&b, 1, 1ull << 62, 0);
	cr_assert(token_bucket_take(&b, 1ull << 62, 0));
	token_bucket_refill(&b, UINT64_MAX);   /* 18446744073 s at 1/s */
	cr_assert_eq(b.tokens, UINT64_MAX / S);
	cr_assert_eq(b.frac, UINT64_MAX % S);
}

/* A clock that goes back earns nothing for the jump, and the bucket does
 * not wait for the old time to come again. */
Test(token_bucket, time_going_backwards)
{
	struct token_bucket b;
	token_bucket_init(&b, 1000, 100, 100 * S);
	cr_assert(token_bucket_take(&b, 100, 100 * S));
	token_bucket_refill(&b, 50 * S);
	cr_assert_eq(b.tokens, 0, "nothing earned going back");
	cr_assert_not(token_bucket_take(&b, 1, 50 * S));
	token_bucket_refill(&b, 50 * S + 10 * MS);
	cr_assert_eq(b.tokens, 10, "earning again from the new time");
	cr_assert_eq(token_bucket_wait_ns(&b, 20, 0), 10 * MS, "a wait asked back in time is still the rate's");
	cr_assert(token_bucket_take(&b, 10, 10 * MS));
}

Test(token_bucket, wait_is_what_the_missing_tokens_take)
{
	struct token_bucket b;
	token_bucket_init(&b, 1000, 100, 0);
	cr_assert_eq(token_bucket_wait_ns(&b, 100, 0), 0, "there now");
	cr_assert(token_bucket_take(&b, 100, 0));
	cr_assert_eq(token_bucket_wait_ns(&b, 1, 0), 1 * MS);
	cr_assert_eq(token_bucket_wait_ns(&b, 30, 0), 30 * MS);
	cr_assert_eq(token_bucket_wait_ns(&b, 500, 0), 100 * MS, "capped at the burst");
	/* with a fraction earned: rounded up, and enough after that long */
	cr_assert_eq(token_bucket_wait_ns(&b, 1, 300000), 700000);
	token_bucket_init(&b, 3, 10, 0);
	cr_assert(token_bucket_take(&b, 10, 0));
	uint64_t w = token_bucket_wait_ns(&b, 1, 0);
	cr_assert_eq(w, 333333334, "1/3 s rounded up");
	cr_assert_not(token_bucket_take(&b, 1, w - 1));
	cr_assert(token_bucket_take(&b, 1, w));
	/* the longest wait does not overflow */
	token_bucket_init(&b, 1, UINT64_MAX, 0);
	cr_assert(token_bucket_take(&b, UINT64_MAX, 0));
	cr_assert_eq(token_bucket_wait_ns(&b, UINT64_MAX, 0), UINT64_MAX);
}

/* The bucket holds its budget over any interval: burst + rate * t. */
Test(token_bucket, budget_over_an_interval)
{
	struct token_bucket b;
	const uint64_t rate = 4096, burst = 1024;
	token_bucket_init(&b, rate, burst, 0);
	uint64_t taken = 0, t = 0;
	/* a greedy taker of 100 tokens every 0.37 ms for 2 s */
	while (t <= 2 * S) {
		if (token_bucket_take(&b, 100, t))
			taken += 100;
		t += 370000;
	}
	cr_assert_leq(taken, burst + rate * 2, "took %llu", (unsigned long long)taken);
	cr_assert_geq(taken, burst + rate * 2 - 200, "took %llu", (unsigned long long)taken);
}

Test(token_bucket, rate_zero_is_no_limit)
{
	struct token_bucket b;
	token_bucket_init(&b, 0, 0, 0);
	cr_assert(token_bucket_take(&b, UINT64_MAX, 0));
	cr_assert(token_bucket_take(&b, UINT64_MAX, 0));
	cr_assert_eq(token_bucket_wait_ns(&b, UINT64_MAX, 0), 0);
	cr_assert_eq(token_bucket_max_take(&b), UINT64_MAX);
}

Test(token_bucket, zero_burst_holds_one_token)
{
	struct token_bucket b;
	token_bucket_init(&b, 10, 0, 0);
	cr_assert_eq(token_bucket_max_take(&b), 1);
	cr_assert(token_bucket_take(&b, 1, 0));
	cr_assert_eq(token_bucket_wait_ns(&b, 5, 0), S / 10, "a wait that can end");
}

/* A cost above what the bucket holds is charged anyway: the rest is owed,
 * paid from the next tokens, and nothing else goes until it is. */
Test(token_bucket, charge_beyond_the_bucket_is_owed)
{
	struct token_bucket b;
	token_bucket_init(&b, 1000, 100, 0);   /* 1 token per ms */
	cr_assert_eq(token_bucket_wait_ns(&b, 250, 0), 0, "full: a cost above the burst may go");
	token_bucket_charge(&b, 250, 0);
	cr_assert_eq(b.tokens, 0);
	cr_assert_eq(b.debt, 150);
	/* 150 owed, then 10 more: the wait is capped at a bucketful (100 ms). */
	cr_assert_eq(token_bucket_wait_ns(&b, 10, 0), 100 * MS);
	cr_assert_eq(token_bucket_wait_ns(&b, 10, 100 * MS), 60 * MS, "100 paid, 50 owed + 10");
	cr_assert_eq(b.debt, 50);
	cr_assert_eq(token_bucket_wait_ns(&b, 10, 160 * MS), 0);
	cr_assert_eq(b.debt, 0);
	cr_assert_eq(b.tokens, 10);
	token_bucket_charge(&b, 10, 160 * MS);
	cr_assert_eq(b.tokens, 0);
	cr_assert_eq(b.debt, 0);
}

/* Charged in pieces larger than the bucket, a second of costs takes a
 * second of rate: the debt keeps the rate whatever the sizes. */
Test(token_bucket, debt_keeps_the_rate)
{
	struct token_bucket b;
	token_bucket_init(&b, 1000, 100, 0);
	cr_assert(token_bucket_take(&b, 100, 0), "start empty");
	uint64_t now = 0, charged = 0;
	for (int i = 0; i < 1000 && now < 10 * S; i++) {
		/* As a device does: sleep what it says until it says 0; each
		 * sleep is at most a bucketful, so a debt takes a few. */
		uint64_t w;
		int sleeps = 0;
		while ((w = token_bucket_wait_ns(&b, 300, now)) != 0) {
			cr_assert_leq(w, 100 * MS);
			now += w;
			cr_assert_lt(++sleeps, 5);
		}
		token_bucket_charge(&b, 300, now);
		charged += 300;
	}
	/* At 10 s, 10,000 tokens earned: charged can exceed that by at most one
	 * cost (the one that went last and is still owed). */
	cr_assert_leq(charged, 10000 + 300);
	cr_assert_geq(charged, 10000 - 300);
}

Test(token_bucket, unlimited_charge_owes_nothing)
{
	struct token_bucket b;
	token_bucket_init(&b, 0, 0, 0);
	token_bucket_charge(&b, UINT64_MAX, 0);
	cr_assert_eq(b.debt, 0);
	cr_assert_eq(token_bucket_wait_ns(&b, UINT64_MAX, 0), 0);
}
