#include "devices/virtio/blk_poll.h"

void blk_poll_tuner_init(struct blk_poll_tuner *t)
{
	/* A probe first: the epoch before it is the incumbent's (kicks). */
	*t = (struct blk_poll_tuner){ .phase = BLK_POLL_HOLD, .hold_left = 1, .hold = BLK_POLL_HOLD_MIN };
}

bool blk_poll_tuner_polls(const struct blk_poll_tuner *t)
{
	bool probing = t->phase == BLK_POLL_PROBE_SETTLE || t->phase == BLK_POLL_PROBE;
	return probing ? !t->incumbent_polls : t->incumbent_polls;
}

static void end_epoch(struct blk_poll_tuner *t, double rate)
{
	if (blk_poll_tuner_polls(t))
		t->epochs_polled++;
	else
		t->epochs_kicked++;
	switch (t->phase) {
	case BLK_POLL_HOLD:
		if (--t->hold_left == 0) {
			t->before_rate = rate;
			t->phase = BLK_POLL_PROBE_SETTLE;
		}
		return;
	case BLK_POLL_PROBE_SETTLE:
		t->phase = BLK_POLL_PROBE;
		return;
	case BLK_POLL_PROBE:
		t->probe_rate = rate;
		t->phase = BLK_POLL_CHECK_SETTLE;
		return;
	case BLK_POLL_CHECK_SETTLE:
		t->phase = BLK_POLL_CHECK;
		return;
	case BLK_POLL_CHECK:
		if (t->probe_rate > (t->before_rate + rate) / 2) {
			t->incumbent_polls = !t->incumbent_polls;
			t->switches++;
			t->hold = BLK_POLL_HOLD_MIN;
		} else if (t->hold < BLK_POLL_HOLD_MAX) {
			t->hold *= 2;
		}
		t->hold_left = t->hold;
		t->phase = BLK_POLL_HOLD;
		return;
	}
}

void blk_poll_tuner_served(struct blk_poll_tuner *t, unsigned served, uint64_t now_ns)
{
	if (!t->epoch_start_ns) {
		/* The first epoch starts with the first batch: the time before
		 * it, an idle guest's, says nothing about either way. */
		t->epoch_start_ns = t->last_ns = now_ns ? now_ns : 1;
		t->epoch_served = served;
		return;
	}
	/* An idle guest's pause is left out of the epoch: it says nothing
	 * about either way, and would make the epoch it falls in lose. */
	if (now_ns > t->last_ns && now_ns - t->last_ns > BLK_POLL_IDLE_NS)
		t->epoch_start_ns += now_ns - t->last_ns;
	t->last_ns = now_ns;
	t->epoch_served += served;
	uint64_t elapsed = now_ns > t->epoch_start_ns ? now_ns - t->epoch_start_ns : 0;
	bool due = (elapsed >= BLK_POLL_EPOCH_MIN_NS && t->epoch_served >= BLK_POLL_EPOCH_MIN_REQUESTS) ||
		   elapsed >= BLK_POLL_EPOCH_MAX_NS;
	if (!due)
		return;
	end_epoch(t, (double)t->epoch_served * 1e9 / (double)elapsed);
	t->epoch_start_ns = now_ns;
	t->epoch_served = 0;
}
