#define _GNU_SOURCE /* pthread_setname_np */
#include "devices/net/worker.h"
#include "vmm/base/thread_start.h"
#include "devices/virtio/iov.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <unistd.h>

#include "devices/net/tap.h"
#include "devices/net/net_hdr.h"
#include "devices/virtio/queue_worker.h"
#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"

/* Frames served per direction before the thread looks at its other
 * direction and at the stop eventfd again. */
#define BUDGET 256u
/* Within a batch, the guest is told every this many frames (if it asks):
 * it can then give buffers back while the batch goes on. */
#define NOTIFY_EVERY 64u
/* Largest frame a tap hands out, without its header: a 64 KiB GSO packet
 * (IP total length <= 65535) with its Ethernet header and a VLAN tag. */
#define MAX_GSO_FRAME (65535u + 14u + 4u)
#define ETH_VLAN_HLEN 18u

/* One RX chain popped and not yet used: its writable buffers are
 * iov[first .. first + n_iov) of the worker's array. */
struct rx_held {
	uint16_t head;
	unsigned n_iov;
	uint64_t cap;
};

enum { PAIR_OK = 0, PAIR_MORE = 1, PAIR_BROKEN = -1 };

struct worker {
	struct net_pair *p;
	struct queue_worker *thread;   /* the pair's thread */
	size_t hdr_len;
	bool mrg;                 /* VIRTIO_NET_F_MRG_RXBUF negotiated */
	bool clear_flags;         /* no GUEST_CSUM: RX header flags must be 0 */
	uint64_t rx_target;       /* RX bytes (header included) to gather before a read, with mrg */

	/* The thread's own state. */
	bool tx_blocked;          /* the tap said EAGAIN: wait for POLLOUT */
	bool rx_wait_tap;         /* RX buffers are there: wait for a frame */
	bool tap_dead;            /* the tap is gone: TX is drained and dropped, RX idle */
	struct net_pair_limit *lim;   /* p->limit: the pair's rate limits, or NULL */
	uint64_t tx_until, rx_until;  /* a direction stopped for its limit until then (monotonic ns); 0: not */
	uint64_t timer_at;        /* what lim->timer_fd was last set to (monotonic ns); 0: never */
	uint64_t tx_irq_delay_ns; /* p->tx_irq_delay_us: 0, TX interrupts go at once */
	uint64_t tx_irq_due;      /* a TX interrupt held back until then (monotonic ns); 0: none */

	_Atomic uint64_t tx_packets, tx_bytes, tx_dropped, tx_bad_header;
	_Atomic uint64_t rx_packets, rx_bytes, rx_dropped, rx_buffers;
	_Atomic uint64_t wakeups, tx_throttled, rx_throttled;

	/* RX chains held between pops and pushes; given back before sleeping. */
	unsigned n_held, n_iov;
	uint64_t cap;             /* sum of held[].cap */
	bool iov_full;            /* the next chain would not fit in iov[] */
	struct rx_held held[VIRTQ_MAX_IOV];
	struct iovec iov[VIRTQ_MAX_IOV];
	/* One byte past the guest's buffers, the last iovec of a read: the tap
	 * truncates a frame to the buffers it is given and says only how much
	 * it wrote, so a frame that reaches this byte did not fit. */
	uint8_t overflow;
	/* One popped chain at a time (16 KiB: not on the thread's stack). */
	struct virtq_chain chain;
};

static inline void count(_Atomic uint64_t *c, uint64_t n)
{
	/* Only the worker writes: no locked add needed. */
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

/* Errors after which the tap queue never works again. EIO is not one: the
 * tap says it when its interface is down (`ip link set tap0 down`), which
 * may change back; the frame is dropped, as on a NIC without link. */
static bool tap_gone_errno(int e)
{
	return e == EBADFD || e == ENXIO || e == ENODEV || e == EBADF;
}

/* Once per pair: the tap is gone. From here on TX is drained (every frame
 * dropped, so the guest never waits on a full ring) and RX waits forever. */
static void mark_tap_dead(struct worker *w, int err)
{
	struct net_pair *p = w->p;
	if (w->tap_dead)
		return;
	w->tap_dead = true;
	w->rx_wait_tap = w->tx_blocked = false;
	if (p->tap_gone)
		p->tap_gone(p, err);
	else
		log_warn("%s: tap queue fd %d: %s (tap deleted?); frames dropped from now on", p->name, p->tap_fd,
			 strerror(err));
}

/* ---- rate limits ---- */

/* Nanoseconds until a frame of len bytes (0: not known yet, as before a
 * read) may go in direction d: 0 now. What earlier frames owe is paid
 * first, and a frame larger than the burst goes when the bucket is full. */
static uint64_t limit_wait_ns(struct net_dir_limit *d, uint64_t len, uint64_t now)
{
	uint64_t wait = token_bucket_wait_ns(&d->packets, NET_LIMIT_SCALE, now);
	uint64_t wb = token_bucket_wait_ns(&d->bytes, (len ? len : 1) * NET_LIMIT_SCALE, now);
	return wait > wb ? wait : wb;
}

/* A frame of len bytes went: one packet, and its bytes (what the bucket
 * does not hold is owed). */
static void limit_charge(struct net_dir_limit *d, uint64_t len, uint64_t now)
{
	token_bucket_take(&d->packets, NET_LIMIT_SCALE, now);   /* there: limit_wait_ns said so */
	token_bucket_charge(&d->bytes, len * NET_LIMIT_SCALE, now);
}

/* Whether a direction may go on now: false, with its stop time set and
 * counted, when its limit says to wait. len as for limit_wait_ns. */
static bool limit_pass(struct net_dir_limit *d, uint64_t len, uint64_t *until, _Atomic uint64_t *throttled)
{
	uint64_t now = monotonic_ns(), wait = limit_wait_ns(d, len, now);
	if (!wait)
		return true;
	*until = now + wait;
	count(throttled, 1);
	return false;
}

/* Sets up the sleep of a pair with a direction stopped until `until`
 * (0: none): the timerfd (only set when the time changes), polled instead
 * of the ring or the tap of that direction. Without a timerfd, or if it
 * cannot be set, poll's timeout (ms, rounded up). */
static void limit_sleep(struct worker *w, struct queue_worker_sleep *next, uint64_t until)
{
	int fd = w->lim ? w->lim->timer_fd : -1;
	next->watch[1] = (struct pollfd){ .fd = -1 };
	if (!until)
		return;
	if (fd >= 0 && until != w->timer_at) {
		struct itimerspec its = { .it_value = { .tv_sec = (time_t)(until / 1000000000u),
							.tv_nsec = (long)(until % 1000000000u) } };
		if (timerfd_settime(fd, TFD_TIMER_ABSTIME, &its, NULL) == 0) {
			w->timer_at = until;
		} else {
			log_warn_limited(w->p->log_limit, "%s: rate limit timer: %s; sleeping in poll instead",
					 w->p->name, strerror(errno));
			fd = -1;
		}
	}
	if (fd >= 0) {
		next->watch[1] = (struct pollfd){ .fd = fd, .events = POLLIN };
		return;
	}
	uint64_t now = monotonic_ns();
	uint64_t ms = until > now ? (until - now + 999999u) / 1000000u : 0;
	if (next->timeout_ms != 0)
		next->timeout_ms = ms > INT_MAX ? INT_MAX : (int)ms;
}

/* ---- TX: guest -> tap ---- */

static int tx_process(struct worker *w)
{
	struct net_pair *p = w->p;
	struct virtq *vq = &p->tx->vq;
	struct virtq_chain *c = &w->chain;
	int ret = PAIR_OK;
	bool pushed = false;

	w->tx_blocked = false;
	for (unsigned budget = BUDGET;; budget--) {
		if (!budget) {
			ret = PAIR_MORE;
			break;
		}
		int r = virtq_pop_chain(vq, c);
		if (r == 0)
			break;
		if (r < 0) {
			ret = PAIR_BROKEN;   /* virtq logged why */
			break;
		}
		if (c->n_in || c->out_len < w->hdr_len) {
			log_warn_limited(p->log_limit, "%s: TX chain (head %u) %s; pair stopped, device needs reset",
					 p->name, c->head,
					 c->n_in ? "has a device-writable buffer" : "is shorter than the 12-byte virtio-net header");
			ret = PAIR_BROKEN;
			break;
		}
		struct virtio_net_hdr h;
		iov_to_buf(c->iov, c->n_out, 0, &h, sizeof(h));   /* out_len >= hdr_len > sizeof(h) */
		const char *bad = net_tx_hdr_invalid(&h, p->features, c->out_len - w->hdr_len);
		if (bad) {
			/* Not for the host kernel to sort out: dropped, counted. */
			log_warn_limited(p->log_limit, "%s: TX frame (head %u) dropped: %s", p->name, c->head, bad);
			count(&w->tx_bad_header, 1);
			count(&w->tx_dropped, 1);
			if (virtq_push_used(vq, c->head, 0) < 0) {
				ret = PAIR_BROKEN;
				break;
			}
			continue;
		}
		/* Over the limit: back to the ring, where it waits (nothing is
		 * dropped, nothing held). A dead tap's frames are not metered. */
		uint64_t len = c->out_len - w->hdr_len;
		bool metered = w->lim && !w->tap_dead;
		if (metered && !limit_pass(&w->lim->tx, len, &w->tx_until, &w->tx_throttled)) {
			virtq_unpop(vq);
			break;
		}
		ssize_t n = -1;
		int e = EBADFD;   /* what a dead tap would say */
		if (!w->tap_dead) {
			do
				n = writev(p->tap_fd, c->iov, (int)c->n_out);
			while (n < 0 && errno == EINTR);
			e = errno;
		}
		if (n < 0 && e == EAGAIN) {
			virtq_unpop(vq);
			w->tx_blocked = true;
			break;
		}
		/* The tap took it, or refused it (a frame refused costs the same
		 * host work as one sent). */
		if (metered)
			limit_charge(&w->lim->tx, len, monotonic_ns());
		if (n < 0 && tap_gone_errno(e))
			mark_tap_dead(w, e);
		if (n < 0) {
			/* runt, bad GSO header, too long, interface down, tap gone:
			 * the frame goes nowhere and the guest gets its buffer back */
			count(&w->tx_dropped, 1);
		} else {
			count(&w->tx_packets, 1);
			count(&w->tx_bytes, len);
		}
		if (virtq_push_used(vq, c->head, 0) < 0) {
			ret = PAIR_BROKEN;
			break;
		}
		pushed = true;
		if ((BUDGET - budget + 1) % NOTIFY_EVERY == 0 && virtq_should_notify(vq))
			p->irq->queue(p->irq, p->tx_index);
	}
	if (!w->tx_irq_delay_ns) {
		if (virtq_should_notify(vq))
			p->irq->queue(p->irq, p->tx_index);
	} else if (pushed && !w->tx_irq_due) {
		w->tx_irq_due = monotonic_ns() + w->tx_irq_delay_ns;
	}
	return ret;
}

/* The TX interrupt held back by tx_process(), once due (or now: force).
 * The guest has often taken its buffers back by then (Linux frees them at
 * its next transmit and in its RX poll) and moved used_event past them:
 * then none is sent. Returns the µs left until it is due, or -1. */
static int tx_irq_flush(struct worker *w, bool force)
{
	if (!w->tx_irq_due)
		return -1;
	uint64_t now = monotonic_ns();
	if (!force && now < w->tx_irq_due)
		return (int)((w->tx_irq_due - now + 999u) / 1000u);
	w->tx_irq_due = 0;
	if (virtq_should_notify(&w->p->tx->vq))
		w->p->irq->queue(w->p->irq, w->p->tx_index);
	return -1;
}

/* ---- RX: tap -> guest ---- */

/* Gives every held chain back to the ring, last popped first. */
static void rx_release(struct worker *w)
{
	for (unsigned i = 0; i < w->n_held; i++)
		virtq_unpop(&w->p->rx->vq);
	w->n_held = w->n_iov = 0;
	w->cap = 0;
	w->iov_full = false;
}

/* Pops RX chains until a frame surely fits (with mrg) or one is held.
 * Returns PAIR_OK (enough or the ring is empty) or PAIR_BROKEN. */
static int rx_fill(struct worker *w)
{
	struct virtq *vq = &w->p->rx->vq;
	struct virtq_chain *c = &w->chain;

	while (w->mrg ? (w->cap < w->rx_target && !w->iov_full) : w->n_held == 0) {
		int r = virtq_pop_chain(vq, c);
		if (r == 0)
			return PAIR_OK;
		if (r < 0)
			return PAIR_BROKEN;
		if (c->n_out || c->in_len < w->hdr_len) {
			log_warn_limited(w->p->log_limit, "%s: RX chain (head %u) %s; pair stopped, device needs reset",
					 w->p->name, c->head,
					 c->n_out ? "has a device-readable buffer" : "is shorter than the 12-byte virtio-net header");
			/* Not ours to push: the device is going to be reset anyway. */
			return PAIR_BROKEN;
		}
		/* Room for the chain and the overflow sentinel, except for a
		 * first chain (it must be taken whatever its size). */
		if (w->n_held && w->n_iov + c->n_in + 1 > VIRTQ_MAX_IOV) {
			virtq_unpop(vq);
			w->iov_full = true;
			return PAIR_OK;
		}
		memcpy(&w->iov[w->n_iov], c->iov, c->n_in * sizeof(struct iovec));
		w->held[w->n_held++] = (struct rx_held){ .head = c->head, .n_iov = c->n_in, .cap = c->in_len };
		w->n_iov += c->n_in;
		w->cap += c->in_len;
	}
	return PAIR_OK;
}

/* Whether the held chains are worth a read. */
static bool rx_ready(const struct worker *w)
{
	if (!w->n_held)
		return false;
	if (!w->mrg)
		return true;
	/* Fewer buffers than the largest frame needs: wait for the guest to add
	 * some, unless it cannot (we hold its whole ring, or all the iovecs a
	 * read can take); a frame that does not fit is then dropped. */
	return w->cap >= w->rx_target || w->n_held >= w->p->rx->vq.size || w->iov_full;
}

/* Hands the frame of len bytes, read into the held chains, to the guest.
 * Returns PAIR_OK or PAIR_BROKEN. */
static int rx_deliver(struct worker *w, uint64_t len)
{
	struct virtq *vq = &w->p->rx->vq;
	unsigned k = 0, iovs = 0;
	uint64_t left = len;

	while (left) {
		uint64_t take = w->held[k].cap < left ? w->held[k].cap : left;
		left -= take;
		iovs += w->held[k].n_iov;
		k++;
	}
	/* The header lies wholly in the first chain (in_len >= 12 checked);
	 * the tap does not write num_buffers. */
	uint16_t nb = htole16((uint16_t)k);
	iov_from_buf(w->iov, w->held[0].n_iov, offsetof(struct virtio_net_hdr_v1, num_buffers), &nb, sizeof(nb));
	if (w->clear_flags) {
		uint8_t zero = 0;
		iov_from_buf(w->iov, w->held[0].n_iov, offsetof(struct virtio_net_hdr_v1, flags), &zero, 1);
	}
	left = len;
	for (unsigned i = 0; i < k; i++) {
		uint64_t take = w->held[i].cap < left ? w->held[i].cap : left;
		left -= take;
		if (virtq_push_used(vq, w->held[i].head, (uint32_t)take) < 0)
			return PAIR_BROKEN;
	}
	count(&w->rx_packets, 1);
	count(&w->rx_bytes, len - w->hdr_len);
	count(&w->rx_buffers, k);

	w->n_held -= k;
	w->n_iov -= iovs;
	for (unsigned i = 0; i < k; i++)
		w->cap -= w->held[i].cap;
	memmove(&w->held[0], &w->held[k], w->n_held * sizeof(w->held[0]));
	memmove(&w->iov[0], &w->iov[iovs], w->n_iov * sizeof(w->iov[0]));
	w->iov_full = false;
	return PAIR_OK;
}

static int rx_process(struct worker *w)
{
	struct net_pair *p = w->p;
	int ret = PAIR_OK;

	w->rx_wait_tap = false;
	if (w->tap_dead)
		return PAIR_OK;   /* nothing will ever come: the guest's buffers stay posted */
	for (unsigned budget = BUDGET;;) {
		if (!budget) {
			ret = PAIR_MORE;
			break;
		}
		ret = rx_fill(w);
		if (ret != PAIR_OK || !rx_ready(w))
			break;   /* no (or not enough) buffers: wait for the RX kick */
		/* Over the limit: the tap is not read (it queues, then drops, as a
		 * link would) and the chains go back to the ring. */
		if (w->lim && !limit_pass(&w->lim->rx, 0, &w->rx_until, &w->rx_throttled))
			break;
		/* iov[] has room for the sentinel unless a chain alone took all
		 * VIRTQ_MAX_IOV entries: then a frame that fills it exactly is
		 * taken as fitting. */
		unsigned n = w->n_iov;
		if (n < VIRTQ_MAX_IOV)
			w->iov[n++] = (struct iovec){ .iov_base = &w->overflow, .iov_len = 1 };
		ssize_t r = readv(p->tap_fd, w->iov, (int)n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN) {
				w->rx_wait_tap = true;
				break;
			}
			/* EBADFD once the tap is deleted; nothing else is expected
			 * from a read that had room for the largest frame. */
			mark_tap_dead(w, errno);
			break;
		}
		budget--;
		if (w->lim)   /* also a frame dropped below: it was read */
			limit_charge(&w->lim->rx, (size_t)r > w->hdr_len ? (uint64_t)r - w->hdr_len : 0, monotonic_ns());
		if ((uint64_t)r > w->cap || (size_t)r < w->hdr_len) {
			/* Longer than the buffers: drop it, the chains stay held and
			 * the next frame overwrites what was written. */
			count(&w->rx_dropped, 1);
			continue;
		}
		ret = rx_deliver(w, (uint64_t)r);
		if (ret != PAIR_OK)
			break;
		if ((BUDGET - budget) % NOTIFY_EVERY == 0 && virtq_should_notify(&p->rx->vq))
			p->irq->queue(p->irq, p->rx_index);
	}
	rx_release(w);
	if (virtq_should_notify(&p->rx->vq))
		p->irq->queue(p->irq, p->rx_index);
	return ret;
}

/* ---- the thread ---- */

/* The thread's work: TX, then RX, each up to its budget; a direction
 * stopped for its rate limit is left alone (its ring not read, its tap not
 * polled) until its time, which the thread sleeps on. */
static int pair_serve(void *ctx, struct queue_worker_sleep *next)
{
	struct worker *w = ctx;
	uint64_t now = w->lim ? monotonic_ns() : 0;
	if (w->tx_until <= now)
		w->tx_until = 0;
	if (w->rx_until <= now)
		w->rx_until = 0;
	int t = w->tx_until ? PAIR_OK : tx_process(w);
	int r = t == PAIR_BROKEN ? t : w->rx_until ? PAIR_OK : rx_process(w);
	if (t == PAIR_BROKEN || r == PAIR_BROKEN)
		return -1;
	if (t == PAIR_MORE || r == PAIR_MORE)
		next->timeout_ms = 0;
	next->timeout_us = tx_irq_flush(w, false);
	uint64_t until = w->tx_until;
	if (w->rx_until && (!until || w->rx_until < until))
		until = w->rx_until;
	limit_sleep(w, next, until);
	/* Not polled once dead: it reports POLLERR for ever. */
	next->watch[0] = (struct pollfd){
		.fd = w->tap_dead ? -1 : w->p->tap_fd,
		.events = (short)((w->rx_wait_tap ? POLLIN : 0) | (w->tx_blocked ? POLLOUT : 0)),
	};
	return 0;
}

static void pair_woken(void *ctx, const struct pollfd *watch)
{
	struct worker *w = ctx;
	count(&w->wakeups, 1);
	/* A tap queue reports POLLERR once its tap is gone (the interface was
	 * deleted); reads and writes say EBADFD. */
	if (watch[0].revents & (POLLERR | POLLHUP | POLLNVAL))
		mark_tap_dead(w, watch[0].revents & POLLNVAL ? EBADF : EBADFD);
	/* The rate limit timer went off: cleared (it is set again, or not
	 * polled, by the next serve). */
	if (watch[1].revents & POLLIN) {
		uint64_t ticks;
		ssize_t n = read(watch[1].fd, &ticks, sizeof(ticks));
		(void)n;   /* EAGAIN: cleared by a new setting already */
	}
}

/* The thread stops (device reset, pause, exit): an interrupt held back
 * goes now, or a guest paused with it would wait for it after resume. */
static void pair_stop(void *ctx)
{
	tx_irq_flush(ctx, true);
}

static const struct queue_worker_ops pair_ops = { .serve = pair_serve, .woken = pair_woken, .stop = pair_stop };

static int worker_start(struct net_pair *p)
{
	struct worker *w = calloc(1, sizeof(*w));
	if (!w) {
		log_error("%s: out of memory", p->name);
		return -1;
	}
	w->p = p;
	w->lim = p->limit;
	w->tx_irq_delay_ns = (uint64_t)p->tx_irq_delay_us * 1000u;
	w->hdr_len = p->vnet_hdr_len ? p->vnet_hdr_len : NET_TAP_VNET_HDR_LEN;
	w->mrg = p->features & (1ull << VIRTIO_NET_F_MRG_RXBUF);
	w->clear_flags = !(p->features & (1ull << VIRTIO_NET_F_GUEST_CSUM));
	uint64_t frame;
	if (net_tap_offload_flags(p->features) & ~(unsigned)TUN_F_CSUM) {
		frame = MAX_GSO_FRAME;
	} else {
		int mtu = net_tap_fd_mtu(p->tap_fd);
		frame = mtu > 0 && (unsigned)mtu < MAX_GSO_FRAME - ETH_VLAN_HLEN ? (uint64_t)mtu + ETH_VLAN_HLEN
										    : MAX_GSO_FRAME;
	}
	w->rx_target = w->hdr_len + frame;
	w->thread = queue_worker_create(1);
	if (!w->thread) {
		log_error("%s: eventfd: %s", p->name, strerror(errno));
		free(w);
		return -1;
	}

	struct queue_worker_params qp = {
		.name = p->name,
		.thread_name = p->name,
		.role = THREAD_ROLE_NET,
		.threads = p->threads,
		.kick_fds = { p->tx->kick_fd, p->rx->kick_fd },
		.n_kicks = 2,
		/* events: set by pair_serve(); the rate limit timer: set when throttled */
		.watch = { { .fd = p->tap_fd }, { .fd = -1 } },
		.n_watch = 2,
		.irq = p->irq,
		.log_limit = p->log_limit,
		.ops = &pair_ops,
		.ctx = w,
	};
	int e = queue_worker_start(w->thread, &qp);
	if (e) {
		log_error("%s: cannot start its thread: %s", p->name, strerror(e));
		queue_worker_destroy(w->thread);
		free(w);
		return -1;
	}
	p->backend_state = w;
	return 0;
}

static void worker_stats(const struct net_pair *p, struct net_pair_stats *out);

static void worker_stop(struct net_pair *p)
{
	struct worker *w = p->backend_state;

	if (!w)
		return;
	/* The thread gave its RX chains back before sleeping: the rings are
	 * where the next backend starts. */
	queue_worker_stop(w->thread);
	if (p->totals) {
		struct net_pair_stats s;
		worker_stats(p, &s);
		net_pair_stats_add(p->totals, &s);
	}
	queue_worker_destroy(w->thread);
	free(w);
	p->backend_state = NULL;
}

static void worker_stats(const struct net_pair *p, struct net_pair_stats *out)
{
	const struct worker *w = p->backend_state;
	memset(out, 0, sizeof(*out));
	if (!w)
		return;
	out->available = true;
	out->tx_packets = atomic_load_explicit(&w->tx_packets, memory_order_relaxed);
	out->tx_bytes = atomic_load_explicit(&w->tx_bytes, memory_order_relaxed);
	out->tx_dropped = atomic_load_explicit(&w->tx_dropped, memory_order_relaxed);
	out->tx_bad_header = atomic_load_explicit(&w->tx_bad_header, memory_order_relaxed);
	out->rx_packets = atomic_load_explicit(&w->rx_packets, memory_order_relaxed);
	out->rx_bytes = atomic_load_explicit(&w->rx_bytes, memory_order_relaxed);
	out->rx_dropped = atomic_load_explicit(&w->rx_dropped, memory_order_relaxed);
	out->rx_buffers = atomic_load_explicit(&w->rx_buffers, memory_order_relaxed);
	out->wakeups = atomic_load_explicit(&w->wakeups, memory_order_relaxed);
	out->tx_throttled = atomic_load_explicit(&w->tx_throttled, memory_order_relaxed);
	out->rx_throttled = atomic_load_explicit(&w->rx_throttled, memory_order_relaxed);
	out->kicks = queue_worker_kicks(w->thread, 0);
}

const struct net_backend_ops net_worker_backend = {
	.name = "worker",
	.start = worker_start,
	.stop = worker_stop,
	.stats = worker_stats,
};
