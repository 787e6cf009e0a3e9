/* virtio-blk's poll=auto: for one queue's thread, whether to poll the ring
 * after a batch or to ask for the guest's kicks, chosen by the requests per
 * second each way gave on this host.
 *
 * Polling saves the guest a kick (a VM exit) per batch and costs latency: a
 * request that comes while the thread sleeps waits for the next look. Which
 * pays depends on what an exit costs and how idle the host's CPUs are (in a
 * nested guest polling won by 1.2-1.6x; on a host with cheap exits kicks
 * were 1.5-4x the faster), which a VMM cannot ask. So it measures: the
 * queue runs in epochs (at least BLK_POLL_EPOCH_MIN_NS and
 * BLK_POLL_EPOCH_MIN_REQUESTS, or BLK_POLL_EPOCH_MAX_NS), mostly in the
 * way that won last, and now and then two epochs the other way. The first
 * epoch after each change of way is not measured: a guest's batches take a
 * while to follow (with polling they grow, as its interrupts come once a
 * burst). The second, the probe, is compared with the mean of the measured
 * epochs before and after it, which cancels a load that grows or shrinks
 * steadily. The other way takes
 * over when it served more. Gaps of an idle guest (over BLK_POLL_IDLE_NS)
 * are left out of the epochs' time. The first decision comes after five epochs;
 * every probe the incumbent wins doubles the epochs to the next one (from
 * BLK_POLL_HOLD_MIN to BLK_POLL_HOLD_MAX), so the cost of probing a worse
 * way falls to about 3% of the time.
 *
 * Pure arithmetic on the times it is given: unit-tested with made-up
 * clocks (tests/unit/test_blk_poll.c). One per queue, used by its thread
 * only. */
#ifndef MINIVMM_BLK_POLL_H
#define MINIVMM_BLK_POLL_H

#include <stdbool.h>
#include <stdint.h>

#define BLK_POLL_EPOCH_MIN_NS 20000000ull        /* 20 ms */
#define BLK_POLL_EPOCH_MAX_NS 500000000ull       /* 500 ms: a slow queue still decides */
#define BLK_POLL_EPOCH_MIN_REQUESTS 64u
/* A gap between batches longer than this is the guest idle, not waiting
 * for the device: left out of the epoch's time. */
#define BLK_POLL_IDLE_NS 50000000ull           /* 50 ms */
#define BLK_POLL_HOLD_MIN 4u
#define BLK_POLL_HOLD_MAX 64u

enum blk_poll_phase {
	BLK_POLL_HOLD,           /* the incumbent's epochs, hold_left of them to go */
	BLK_POLL_PROBE_SETTLE,   /* the other way, not measured */
	BLK_POLL_PROBE,          /* the other way, measured */
	BLK_POLL_CHECK_SETTLE,   /* back to the incumbent, not measured */
	BLK_POLL_CHECK,          /* the incumbent again, to compare with */
};

struct blk_poll_tuner {
	bool incumbent_polls;     /* the way that won last (starts with kicks) */
	enum blk_poll_phase phase;
	unsigned hold_left, hold;
	uint64_t epoch_start_ns;  /* 0: no epoch started yet */
	uint64_t last_ns;         /* the last batch's time */
	uint64_t epoch_served;
	double before_rate, probe_rate;   /* requests per second */
	uint64_t epochs_polled, epochs_kicked, switches;   /* for stats */
};

void blk_poll_tuner_init(struct blk_poll_tuner *t);

/* Whether the thread polls after its next batch. */
bool blk_poll_tuner_polls(const struct blk_poll_tuner *t);

/* Accounts requests served (0 is fine) at now_ns (CLOCK_MONOTONIC), ending
 * the epoch and maybe changing the way when it is due. */
void blk_poll_tuner_served(struct blk_poll_tuner *t, unsigned served, uint64_t now_ns);

#endif
