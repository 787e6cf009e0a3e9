/* devices/virtio/blk_poll.c (poll=auto): the tuner takes the way that
 * serves more requests per second, keeps it, probes the other way less and
 * less often, changes its mind when the host does, and is not fooled by an
 * idle guest or a load that ramps. Time is a made-up clock. */
#include <criterion/criterion.h>
#include <stdint.h>

#include "devices/virtio/blk_poll.h"

#define US 1000ull
#define MS 1000000ull

struct sim {
	struct blk_poll_tuner t;
	uint64_t now;
	unsigned polled, kicked;   /* batches each way */
};

/* n batches of 4 requests; a request takes poll_ns when the thread polls,
 * kick_ns when it asks for kicks. */
static void run(struct sim *s, unsigned n, uint64_t poll_ns, uint64_t kick_ns)
{
	for (unsigned i = 0; i < n; i++) {
		bool polls = blk_poll_tuner_polls(&s->t);
		s->now += 4 * (polls ? poll_ns : kick_ns);
		polls ? s->polled++ : s->kicked++;
		blk_poll_tuner_served(&s->t, 4, s->now);
	}
}

static void start(struct sim *s)
{
	*s = (struct sim){ .now = 1000 * MS };
	blk_poll_tuner_init(&s->t);
	cr_assert_not(blk_poll_tuner_polls(&s->t), "starts asking for kicks");
}

Test(blk_poll, takes_polling_where_it_serves_more)
{
	struct sim s;
	start(&s);
	/* A nested guest: a kick costs, polling serves 1.3x the requests. */
	run(&s, 200, 260 * US, 340 * US);
	cr_assert(blk_poll_tuner_polls(&s.t), "polls after the first probe");
	cr_assert_eq(s.t.switches, 1);
	s.polled = s.kicked = 0;
	run(&s, 20000, 260 * US, 340 * US);
	cr_assert_eq(s.t.switches, 1, "stays");
	cr_assert_gt(s.polled, 20000 * 95 / 100, "the probes of kicks take under 5%% of the batches (%u kicked)", s.kicked);
}

Test(blk_poll, keeps_kicks_where_polling_is_slower)
{
	struct sim s;
	start(&s);
	/* A host with cheap exits: one request at a time, polling 4x slower. */
	run(&s, 200000, 120 * US, 30 * US);
	cr_assert_not(blk_poll_tuner_polls(&s.t));
	cr_assert_eq(s.t.switches, 0);
	cr_assert_eq(s.t.hold, BLK_POLL_HOLD_MAX, "the hold grew to its cap");
	/* Time polled, not batches: the probes' share of the time is what
	 * they cost. */
	double poll_time = (double)s.polled * 120, kick_time = (double)s.kicked * 30;
	cr_assert_lt(poll_time / (poll_time + kick_time), 0.08, "probing took %.3f of the time",
		     poll_time / (poll_time + kick_time));
	cr_assert_gt(s.t.epochs_kicked, 25 * s.t.epochs_polled, "%lu kicked, %lu polled epochs",
		     (unsigned long)s.t.epochs_kicked, (unsigned long)s.t.epochs_polled);
}

Test(blk_poll, changes_its_mind_when_the_host_does)
{
	struct sim s;
	start(&s);
	run(&s, 50000, 260 * US, 340 * US);
	cr_assert(blk_poll_tuner_polls(&s.t));
	/* Now kicks are the faster: the next probe (at most BLK_POLL_HOLD_MAX
	 * epochs of the longest, 500 ms, away) finds it. */
	run(&s, 40000, 200 * US, 50 * US);
	cr_assert_not(blk_poll_tuner_polls(&s.t), "back to kicks");
	cr_assert_eq(s.t.switches, 2);
}

/* A guest whose batches take a while to grow once the thread polls: the
 * first 30 ms of polling run at the kicks' rate, then 1.5x faster. The
 * first epoch after a change of way is not measured, so polling wins. */
Test(blk_poll, a_slow_start_is_not_held_against_polling)
{
	struct sim s;
	start(&s);
	uint64_t polling_since = 0;
	bool was_polling = false;
	for (unsigned i = 0; i < 20000; i++) {
		bool polls = blk_poll_tuner_polls(&s.t);
		if (polls && !was_polling)
			polling_since = s.now;
		was_polling = polls;
		bool settled = polls && s.now - polling_since >= 30 * MS;
		s.now += 4 * (settled ? 200 * US : 300 * US);
		blk_poll_tuner_served(&s.t, 4, s.now);
	}
	cr_assert(blk_poll_tuner_polls(&s.t), "kicks kept (%lu polled, %lu kicked epochs)",
		  (unsigned long)s.t.epochs_polled, (unsigned long)s.t.epochs_kicked);
	cr_assert_gt(s.t.epochs_polled, 5 * s.t.epochs_kicked);
}

/* The epoch before a probe and the one after are averaged: a load that
 * grows steadily makes neither way look better. */
Test(blk_poll, a_ramp_is_not_a_win)
{
	struct sim s;
	start(&s);
	for (unsigned i = 0; i < 30000; i++) {
		s.now += 4 * (400 * US - i * 10);   /* faster and faster, either way */
		blk_poll_tuner_served(&s.t, 4, s.now);
	}
	cr_assert_eq(s.t.switches, 0, "%lu switches", (unsigned long)s.t.switches);
}

/* The guest goes idle in the epoch after a probe: the pause is not
 * counted against the incumbent. */
Test(blk_poll, an_idle_guest_is_left_out)
{
	struct sim s;
	start(&s);
	run(&s, 40000, 40 * US, 30 * US);   /* kicks win; hold at its cap */
	cr_assert_not(blk_poll_tuner_polls(&s.t));
	uint64_t switches = s.t.switches;
	/* Walk to the epoch after the next probe, going idle 2 s in each
	 * epoch on the way (idle gaps in every phase). */
	for (unsigned guard = 0; guard < 1000000 && s.t.phase != BLK_POLL_CHECK; guard++)
		run(&s, 1, 40 * US, 30 * US);
	cr_assert_eq(s.t.phase, BLK_POLL_CHECK);
	run(&s, 10, 40 * US, 30 * US);
	s.now += 2000 * MS;   /* idle */
	run(&s, 200, 40 * US, 30 * US);
	cr_assert_eq(s.t.switches, switches, "the idle pause made polling look better");
	cr_assert_not(blk_poll_tuner_polls(&s.t));
}

/* A queue that serves few requests still ends its epochs (by time). */
Test(blk_poll, a_slow_queue_still_decides)
{
	struct sim s;
	start(&s);
	for (unsigned i = 0; i < 100; i++) {
		bool polls = blk_poll_tuner_polls(&s.t);
		s.now += polls ? 30 * MS : 45 * MS;   /* one request per batch, under 64 per epoch */
		blk_poll_tuner_served(&s.t, 1, s.now);
	}
	cr_assert(blk_poll_tuner_polls(&s.t), "polling served more, slowly");
	cr_assert_gt(s.t.epochs_polled + s.t.epochs_kicked, 5);
}

/* Batches that serve nothing (a spurious wake-up) and a clock that stands
 * still or goes back do not end an epoch early or divide by zero. */
Test(blk_poll, empty_batches_and_a_stuck_clock)
{
	struct sim s;
	start(&s);
	for (unsigned i = 0; i < 1000; i++)
		blk_poll_tuner_served(&s.t, 0, s.now);
	blk_poll_tuner_served(&s.t, 1000, s.now - 5 * MS);
	cr_assert_eq(s.t.epochs_polled + s.t.epochs_kicked, 0);
	run(&s, 1000, 100 * US, 100 * US);
	cr_assert_gt(s.t.epochs_polled + s.t.epochs_kicked, 0);
}
