#define _GNU_SOURCE /* pthread_setname_np */
#include "devices/net/virtio_net.h"
#include "vmm/base/thread_start.h"
#include "devices/virtio/iov.h"

#include <endian.h>
#include <errno.h>
#include <inttypes.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "devices/net/vhost.h"
#include "devices/net/worker.h"
#include "devices/virtio/queue_worker.h"
#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"
#include "vmm/base/snap_format.h"

#define NET_QUEUE_MAX_SIZE 256
/* How often the control thread checks that the tap still exists (ms). */
#define TAP_CHECK_MS 1000
/* Config space up to max_virtqueue_pairs: mtu and what follows need
 * features we do not offer. */
#define NET_CONFIG_SIZE ((uint32_t)offsetof(struct virtio_net_config, mtu))
#define F(bit) (1ull << (bit))
/* Control commands served per wake-up at most: a driver that keeps the
 * queue's avail index ahead for ever must not keep the thread from seeing
 * a reset (it goes back through poll, kicked by itself). */
#define CTRL_DRAIN_BUDGET 64u
/* VQ_PAIRS_SET that change the pair count: starting and stopping a pair
 * costs a thread, eventfds and, with vhost-net, ioctls, so a driver gets
 * PAIRS_CHANGE_BURST changes at once and then one per PAIRS_CHANGE_NS (a
 * real one changes them at probe and on "ethtool -L"). */
#define PAIRS_CHANGE_BURST 10u
#ifndef PAIRS_CHANGE_NS   /* the fuzz target, which must not sleep, sets 0 */
#define PAIRS_CHANGE_NS 100000000ull
#endif
/* A rate limit's burst: this fraction of a second of its rate. */
#define LIMIT_BURST_PER_S 10u

_Static_assert(offsetof(struct virtio_net_config, max_virtqueue_pairs) == 8, "virtio-net config layout");
_Static_assert(VIRTIO_NET_MAX_PAIRS * 2 + 1 <= VIRTIO_MAX_QUEUES, "queues of the largest device");

/* One queue pair and what serves it. */
struct net_qp {
	struct net_pair pair;                  /* handed to the backend while it runs */
	const struct net_backend_ops *backend; /* NULL: stopped */
	bool attached;                         /* its tap queue is attached */
	int vhost_fd;                          /* /dev/vhost-net for this pair, or -1 */
	char rx_name[32], tx_name[32];         /* "net0 rx2", in virtq's log lines */
	/* Its share of the NIC's rate limits: written by activate() while no
	 * pair runs, then the pair's thread's alone (start and join order them). */
	struct net_pair_limit limit;
	struct net_pair_stats totals;          /* pair.totals: every stopped backend's counters */
};

struct virtio_net {
	char name[16];                   /* "net0" */
	unsigned index;
	unsigned max_pairs;
	struct net_tap tap;
	enum virtio_net_backend_choice choice;
	const struct net_backend_ops *backend;
	const struct thread_starter *threads;
	struct queue_worker *ctrl_worker; /* the control queue's thread */
	atomic_bool stopping;            /* reset() in progress: stop between commands */
	struct log_limit log_limit;      /* the lines the guest can cause, pairs' too */
	uint64_t pairs_change_tat;       /* rate of pair changes: next "theoretical arrival" (GCRA) */
	uint64_t bytes_per_sec, packets_per_sec;   /* rate limits, each direction; 0: none */
	unsigned tx_irq_delay_us;        /* params' */
	unsigned limit_pairs;            /* the pairs the buckets are shared among; 0: not made yet */

	/* Config space and receive filter: read by vCPUs (and tests), written
	 * by the control thread. */
	pthread_mutex_t lock;            /* also: a pair's backend set or cleared (virtio_net_pair_stats) */
	uint8_t mac[6];
	uint16_t status;
	struct virtio_net_rx_filter filter;
	/* The tap was deleted under us: logged once, link down for good (a tap
	 * made again under the same name is another interface). Outlives
	 * resets, like the tap fds. */
	atomic_bool tap_gone;

	/* Set by activate() before any thread starts, cleared by reset() after
	 * they all stopped. While active, pairs are started and stopped by
	 * activate() (pair 0) and then by the control thread only. */
	bool active;
	uint64_t features;
	const struct virtio_irq *irq;
	struct virtio_queue *queues;
	unsigned n_queues;
	unsigned usable_pairs;           /* max_pairs with MQ, else 1 */
	unsigned restore_pairs;          /* at restore: the pairs activate() starts (0: one) */
	atomic_uint active_pairs;        /* pairs 0..active_pairs-1 run */
	int ctrl_index;                  /* -1: no control queue */
	char ctrl_thread_name[16];       /* "net0-ctrl" */
	char ctrl_vq_name[32];
	struct virtq_chain ctrl_chain;   /* one command at a time */

	struct net_qp qps[];             /* [max_pairs] */
};

/* ---- the tap going away ---- */

/* Called by a backend's thread (or the control thread) when the tap is
 * gone. Every pair of the device sees it: one line for all of them. */
static void tap_gone(struct virtio_net *net, int err)
{
	if (atomic_exchange(&net->tap_gone, true))
		return;
	log_warn("%s: tap %s is gone (%s; deleted?): link down, the guest's frames are dropped from now on", net->name,
		 net->tap.name, strerror(err));
	pthread_mutex_lock(&net->lock);
	net->status &= (uint16_t)~VIRTIO_NET_S_LINK_UP;
	pthread_mutex_unlock(&net->lock);
	/* Threads that call this run only while active (reset joins them
	 * before it clears irq). */
	if (net->features & F(VIRTIO_NET_F_STATUS))
		net->irq->config(net->irq);
}

static void pair_tap_gone(struct net_pair *p, int err)
{
	tap_gone(p->owner, err);
}

/* ---- queue pairs ---- */

/* Pair i has its queues set up by the driver; logs it when not. */
static bool pair_set_up(struct virtio_net *net, unsigned i)
{
	if (2 * i + 1 >= net->n_queues || !net->queues[2 * i].ready || !net->queues[2 * i + 1].ready) {
		log_warn_limited(&net->log_limit, "%s: queue pair %u was not set up by the driver; not started",
				 net->name, i);
		return false;
	}
	return true;
}

/* Pairs 0..n-1 have their queues set up; logs the first one that has not. */
static bool pairs_set_up(struct virtio_net *net, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (!pair_set_up(net, i))
			return false;
	return true;
}

static int pair_start(struct virtio_net *net, unsigned i)
{
	struct net_qp *qp = &net->qps[i];
	if (qp->backend)
		return 0;
	if (!pair_set_up(net, i))
		return -1;
	/* A gone tap has no queues to attach: the backend drops its frames. */
	if (!qp->attached && !atomic_load(&net->tap_gone)) {
		int e = net_tap_set_queue(&net->tap, i, true);
		if (e < 0) {
			log_warn_limited(&net->log_limit, "%s: cannot attach queue %u of tap %s: %s", net->name, i,
					 net->tap.name, strerror(-e));
			return -1;
		}
		qp->attached = true;
	}
	struct virtio_queue *rx = &net->queues[2 * i], *tx = &net->queues[2 * i + 1];
	if (!rx->vq.name)
		rx->vq.name = qp->rx_name;
	if (!tx->vq.name)
		tx->vq.name = qp->tx_name;
	struct net_pair *p = &qp->pair;
	p->index = i;
	snprintf(p->name, sizeof(p->name), "net%u-qp%u", net->index % 1000, i % 100);
	p->tap_fd = net->tap.fds[i];
	p->rx = rx;
	p->tx = tx;
	p->rx_index = 2 * i;
	p->tx_index = 2 * i + 1;
	p->irq = net->irq;
	p->mem = rx->vq.mem;
	p->features = net->features;
	p->vnet_hdr_len = NET_TAP_VNET_HDR_LEN;
	p->backend_state = NULL;
	p->threads = net->threads;
	p->vhost_fd = qp->vhost_fd;
	p->tap_gone = pair_tap_gone;
	p->owner = net;
	p->log_limit = &net->log_limit;
	p->limit = net->bytes_per_sec || net->packets_per_sec ? &qp->limit : NULL;
	p->tx_irq_delay_us = net->tx_irq_delay_us;
	p->totals = &qp->totals;

	const struct net_backend_ops *b = net->backend;
	if (b->start(p) < 0) {
		if (b == &net_worker_backend || net->choice != VIRTIO_NET_BACKEND_AUTO)
			goto fail;
		log_warn_limited(&net->log_limit, "%s: %s backend failed for queue pair %u; using a worker thread",
				 net->name, b->name, i);
		b = &net_worker_backend;
		if (b->start(p) < 0)
			goto fail;
	}
	pthread_mutex_lock(&net->lock);
	qp->backend = b;
	pthread_mutex_unlock(&net->lock);
	return 0;
fail:
	if (i > 0 && net->tap.multi_queue && net_tap_set_queue(&net->tap, i, false) == 0)
		qp->attached = false;
	return -1;
}

static void pair_stop(struct virtio_net *net, unsigned i)
{
	struct net_qp *qp = &net->qps[i];
	/* Cleared under the lock before the backend frees its state, so that
	 * virtio_net_pair_stats on another thread never reads it freed. */
	pthread_mutex_lock(&net->lock);
	const struct net_backend_ops *b = qp->backend;
	qp->backend = NULL;
	pthread_mutex_unlock(&net->lock);
	if (b)
		b->stop(&qp->pair);
	/* Queue 0 stays attached: with no queue at all the tap loses its carrier. */
	if (i > 0 && qp->attached && net->tap.multi_queue && !atomic_load(&net->tap_gone)) {
		int e = net_tap_set_queue(&net->tap, i, false);
		if (e < 0)
			log_warn_limited(&net->log_limit, "%s: cannot detach queue %u of tap %s: %s", net->name, i,
					 net->tap.name, strerror(-e));
		else
			qp->attached = false;
	}
}

/* Runs exactly pairs 0..n-1. On failure the pairs that ran still run. */
static int set_pairs(struct virtio_net *net, unsigned n)
{
	unsigned cur = atomic_load(&net->active_pairs);
	if (n < cur) {
		for (unsigned i = cur; i-- > n;)
			pair_stop(net, i);
	} else {
		for (unsigned i = cur; i < n; i++) {
			if (pair_start(net, i) < 0) {
				while (i-- > cur)
					pair_stop(net, i);
				return -1;
			}
		}
	}
	atomic_store(&net->active_pairs, n);
	return 0;
}

/* ---- control queue ---- */

static uint8_t ctrl_rx(struct virtio_net *net, uint8_t cmd, const struct virtq_chain *c, uint64_t dlen)
{
	uint8_t on;
	if (!(net->features & F(VIRTIO_NET_F_CTRL_RX)) || dlen != 1 || !iov_to_buf(c->iov, c->n_out, 2, &on, 1))
		return VIRTIO_NET_ERR;
	/* ALLUNI, NOMULTI, NOUNI, NOBCAST need CTRL_RX_EXTRA, not offered. */
	if (cmd != VIRTIO_NET_CTRL_RX_PROMISC && cmd != VIRTIO_NET_CTRL_RX_ALLMULTI)
		return VIRTIO_NET_ERR;
	pthread_mutex_lock(&net->lock);
	if (cmd == VIRTIO_NET_CTRL_RX_PROMISC)
		net->filter.promisc = on;
	else
		net->filter.allmulti = on;
	pthread_mutex_unlock(&net->lock);
	return VIRTIO_NET_OK;
}

/* MAC_TABLE_SET data: le32 n, n MACs (unicast), le32 m, m MACs (multicast). */
static uint8_t ctrl_mac_table(struct virtio_net *net, const struct virtq_chain *c, uint64_t dlen)
{
	uint32_t n_uni, n_multi;
	if (!(net->features & F(VIRTIO_NET_F_CTRL_RX)) || dlen < 8)
		return VIRTIO_NET_ERR;
	iov_to_buf(c->iov, c->n_out, 2, &n_uni, 4);
	n_uni = le32toh(n_uni);
	if (n_uni > (dlen - 8) / 6)
		return VIRTIO_NET_ERR;
	uint64_t multi_off = 2 + 4 + 6ull * n_uni;
	iov_to_buf(c->iov, c->n_out, multi_off, &n_multi, 4);
	n_multi = le32toh(n_multi);
	if (8 + 6ull * n_uni + 6ull * n_multi != dlen)
		return VIRTIO_NET_ERR;
	pthread_mutex_lock(&net->lock);
	net->filter.n_uni = n_uni;
	net->filter.n_multi = n_multi;
	for (uint32_t i = 0; i < n_uni && i < VIRTIO_NET_MAC_TABLE_MAX; i++)
		iov_to_buf(c->iov, c->n_out, 6 + 6ull * i, net->filter.uni[i], 6);
	for (uint32_t i = 0; i < n_multi && i < VIRTIO_NET_MAC_TABLE_MAX; i++)
		iov_to_buf(c->iov, c->n_out, multi_off + 4 + 6ull * i, net->filter.multi[i], 6);
	pthread_mutex_unlock(&net->lock);
	return VIRTIO_NET_OK;
}

static uint8_t ctrl_mac(struct virtio_net *net, uint8_t cmd, const struct virtq_chain *c, uint64_t dlen)
{
	if (cmd == VIRTIO_NET_CTRL_MAC_TABLE_SET)
		return ctrl_mac_table(net, c, dlen);
	if (cmd != VIRTIO_NET_CTRL_MAC_ADDR_SET || !(net->features & F(VIRTIO_NET_F_CTRL_MAC_ADDR)) || dlen != 6)
		return VIRTIO_NET_ERR;
	uint8_t mac[6];
	iov_to_buf(c->iov, c->n_out, 2, mac, 6);
	pthread_mutex_lock(&net->lock);
	memcpy(net->mac, mac, 6);   /* config space shows it (spec 5.1.6.5.2) */
	pthread_mutex_unlock(&net->lock);
	return VIRTIO_NET_OK;
}

/* Waits until the driver may change the pair count again (GCRA: a burst of
 * PAIRS_CHANGE_BURST, then one per PAIRS_CHANGE_NS). Returns false if a
 * reset came first: the command is then not served. */
static bool pairs_change_wait(struct virtio_net *net)
{
	const uint64_t burst_ns = (PAIRS_CHANGE_BURST - 1) * PAIRS_CHANGE_NS;
	for (;;) {
		uint64_t now = monotonic_ns();
		if (net->pairs_change_tat <= now + burst_ns) {
			net->pairs_change_tat = (net->pairs_change_tat > now ? net->pairs_change_tat : now) +
						PAIRS_CHANGE_NS;
			return true;
		}
		if (atomic_load(&net->stopping))
			return false;
		uint64_t wait_ms = (net->pairs_change_tat - now - burst_ns) / 1000000u + 1;
		if (queue_worker_wait_stop(net->ctrl_worker, (int)wait_ms))
			return false;
	}
}

static uint8_t ctrl_mq(struct virtio_net *net, uint8_t cmd, const struct virtq_chain *c, uint64_t dlen)
{
	uint16_t n;
	if (cmd != VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET || !(net->features & F(VIRTIO_NET_F_MQ)) || dlen != 2)
		return VIRTIO_NET_ERR;
	iov_to_buf(c->iov, c->n_out, 2, &n, 2);
	n = le16toh(n);
	if (n < VIRTIO_NET_CTRL_MQ_VQ_PAIRS_MIN || n > net->usable_pairs)
		return VIRTIO_NET_ERR;
	/* A command that cannot be served costs no start: it waits for nothing. */
	if (n != atomic_load(&net->active_pairs) && (!pairs_set_up(net, n) || !pairs_change_wait(net)))
		return VIRTIO_NET_ERR;
	return set_pairs(net, n) < 0 ? VIRTIO_NET_ERR : VIRTIO_NET_OK;
}

/* Serves one command. Returns the ack, or -1 when the chain has no room
 * for one (the device then needs a reset). */
static int ctrl_serve(struct virtio_net *net, const struct virtq_chain *c)
{
	uint8_t hdr[2];
	if (c->in_len < 1) {
		log_warn_limited(&net->log_limit,
				 "%s: control command (head %u) has no device-writable ack byte; device needs reset",
				 net->name, c->head);
		return -1;
	}
	if (!iov_to_buf(c->iov, c->n_out, 0, hdr, 2))
		return VIRTIO_NET_ERR;   /* no class and command */
	uint64_t dlen = c->out_len - 2;
	switch (hdr[0]) {
	case VIRTIO_NET_CTRL_RX:
		return ctrl_rx(net, hdr[1], c, dlen);
	case VIRTIO_NET_CTRL_MAC:
		return ctrl_mac(net, hdr[1], c, dlen);
	case VIRTIO_NET_CTRL_MQ:
		return ctrl_mq(net, hdr[1], c, dlen);
	default:
		return VIRTIO_NET_ERR;   /* VLAN, ANNOUNCE, GUEST_OFFLOADS, ...: not offered */
	}
}

/* Serves every command queued. Returns -1 when the queue is broken. */
static int ctrl_drain(struct virtio_net *net)
{
	struct virtio_queue *q = &net->queues[net->ctrl_index];
	struct virtq_chain *c = &net->ctrl_chain;
	unsigned served = 0;
	int r = 0, ret = 0;

	while (!atomic_load_explicit(&net->stopping, memory_order_relaxed) && served < CTRL_DRAIN_BUDGET &&
	       (r = virtq_pop_chain(&q->vq, c)) > 0) {
		served++;
		int ack = ctrl_serve(net, c);
		if (ack < 0) {
			ret = -1;
			break;
		}
		/* in_len >= 1 and empty descriptors give no iov: the first
		 * writable iov holds at least the ack byte. */
		*(uint8_t *)c->iov[c->n_out].iov_base = (uint8_t)ack;
		if (virtq_push_used(&q->vq, c->head, 1) < 0) {
			ret = -1;
			break;
		}
	}
	if (r < 0)
		ret = -1;
	if (virtq_should_notify(&q->vq))
		net->irq->queue(net->irq, (unsigned)net->ctrl_index);
	if (served == CTRL_DRAIN_BUDGET)
		eventfd_signal(q->kick_fd);   /* more may be waiting: come back after poll */
	return ret;
}

/* The control thread's work: the commands queued, and how long to sleep. */
static int ctrl_thread_serve(void *ctx, struct queue_worker_sleep *next)
{
	struct virtio_net *net = ctx;
	/* A deleted tap says nothing to vhost-net's user (vhost drops the TX
	 * frames by itself), so this thread looks at it every TAP_CHECK_MS.
	 * Not by sleeping in poll on the tap fd: the deletion wakes only POLLIN
	 * waiters, and waiting for POLLIN here would wake this thread for every
	 * frame the tap receives. */
	if (!atomic_load(&net->tap_gone))
		next->timeout_ms = TAP_CHECK_MS;
	return ctrl_drain(net);
}

static void ctrl_thread_woken(void *ctx, const struct pollfd *watch)
{
	struct virtio_net *net = ctx;
	if (atomic_load(&net->tap_gone))
		return;
	/* Queue 0 is always attached: its fd says POLLERR once the tap is gone. */
	int gone = net_tap_fd_gone(net->tap.fds[0]);
	if (gone)
		tap_gone(net, gone);
}

static const struct queue_worker_ops ctrl_thread_ops = {
	.serve = ctrl_thread_serve,
	.woken = ctrl_thread_woken,
};

/* ---- rate limits ---- */

/* A bucket for 1/pairs of per_s (0: no limit) and of its burst, full. */
static void limit_share(struct token_bucket *b, uint64_t per_s, unsigned pairs, uint64_t now)
{
	uint64_t rate = per_s * NET_LIMIT_SCALE / pairs;
	uint64_t burst = rate / LIMIT_BURST_PER_S;
	token_bucket_init(b, rate, burst < NET_LIMIT_SCALE ? NET_LIMIT_SCALE : burst, now);
}

/* Splits the NIC's limits evenly among the pairs the driver can use, each
 * pair's thread metering its share with buckets of its own. Why not one
 * bucket for the NIC, shared by the pairs: a lock taken for every frame of
 * every pair, and a pair waiting for a large frame's bytes while the others
 * keep taking small ones could wait for ever. The price: one flow (the tap
 * steers a flow to one pair) gets its pair's share, not the NIC's limit.
 * Made once, full, and again only when the count of usable pairs changes:
 * a driver does not gain a burst by resetting the device. */
static void limits_share(struct virtio_net *net, unsigned pairs)
{
	if ((!net->bytes_per_sec && !net->packets_per_sec) || net->limit_pairs == pairs)
		return;
	uint64_t now = monotonic_ns();
	for (unsigned i = 0; i < net->max_pairs; i++) {
		struct net_pair_limit *l = &net->qps[i].limit;
		struct net_dir_limit *dirs[] = { &l->tx, &l->rx };
		for (unsigned d = 0; d < 2; d++) {
			limit_share(&dirs[d]->bytes, net->bytes_per_sec, pairs, now);
			limit_share(&dirs[d]->packets, net->packets_per_sec, pairs, now);
		}
	}
	net->limit_pairs = pairs;
}

/* ---- activation ---- */

/* Ends the control queue's thread, after its batch of commands. */
static void stop_ctrl(struct virtio_net *net)
{
	if (!queue_worker_running(net->ctrl_worker))
		return;
	atomic_store(&net->stopping, true);
	queue_worker_stop(net->ctrl_worker);
	atomic_store(&net->stopping, false);
}

static void net_reset(void *dev)
{
	struct virtio_net *net = dev;

	if (!net->active)
		return;
	stop_ctrl(net);
	for (unsigned i = net->max_pairs; i-- > 0;)
		pair_stop(net, i);
	atomic_store(&net->active_pairs, 0);
	/* The next driver may take no offloads: plain frames until it says. */
	net_tap_set_offload(net->tap.fds[0], 0);
	net->irq = NULL;
	net->queues = NULL;
	net->n_queues = 0;
	net->ctrl_index = -1;
	net->active = false;
}

/* The control queue's thread, when the driver set the queue up. */
static int start_ctrl(struct virtio_net *net)
{
	if (net->ctrl_index < 0 || !net->queues[net->ctrl_index].ready)
		return 0;
	struct virtio_queue *cq = &net->queues[net->ctrl_index];
	if (!cq->vq.name)
		cq->vq.name = net->ctrl_vq_name;
	struct queue_worker_params qp = {
		.name = net->ctrl_vq_name,
		.thread_name = net->ctrl_thread_name,
		.role = THREAD_ROLE_NET_CTRL,
		.threads = net->threads,
		.kick_fds = { cq->kick_fd },
		.n_kicks = 1,
		.irq = net->irq,
		.log_limit = &net->log_limit,
		.ops = &ctrl_thread_ops,
		.ctx = net,
	};
	int err = queue_worker_start(net->ctrl_worker, &qp);
	if (err) {
		log_error_limited(&net->log_limit, "%s: cannot start the control queue thread: %s", net->name,
				  strerror(err));
		return -1;
	}
	return 0;
}

static int net_activate(void *dev, uint64_t features, struct virtio_queue *queues, unsigned n_queues,
			const struct virtio_irq *irq)
{
	struct virtio_net *net = dev;

	if (net->active) {
		log_warn_limited(&net->log_limit, "%s: activated twice without a reset", net->name);
		return -1;
	}
	bool ctrl = features & F(VIRTIO_NET_F_CTRL_VQ);
	bool mq = ctrl && (features & F(VIRTIO_NET_F_MQ));
	net->features = features;
	net->irq = irq;
	net->queues = queues;
	net->n_queues = n_queues;
	net->usable_pairs = mq ? net->max_pairs : 1;
	limits_share(net, net->usable_pairs);
	net->ctrl_index = ctrl ? (int)(mq ? 2 * net->max_pairs : 2) : -1;
	if (net->ctrl_index >= (int)n_queues)
		net->ctrl_index = -1;
	atomic_store(&net->active_pairs, 0);
	net->active = true;

	/* What the tap may give the guest: checksums left to do and GSO
	 * packets only if it said it takes them. The tap keeps its previous
	 * setting if this fails (a fake tap in tests): plain frames. */
	int e = net_tap_set_offload(net->tap.fds[0], net_tap_offload_flags(features));
	if (e < 0 && !atomic_load(&net->tap_gone))   /* a gone tap was reported once */
		log_warn_limited(&net->log_limit, "%s: TUNSETOFFLOAD on tap %s: %s", net->name, net->tap.name,
				 strerror(-e));

	/* Multiqueue starts disabled: only pair 0 runs until VQ_PAIRS_SET
	 * (at restore: the pairs the driver had asked for). */
	unsigned pairs = net->restore_pairs && net->restore_pairs <= net->usable_pairs ? net->restore_pairs : 1;
	net->restore_pairs = 0;
	if (n_queues > 1 && queues[0].ready && queues[1].ready) {
		if (set_pairs(net, pairs) < 0) {
			net_reset(net);
			return -1;
		}
	} else {
		log_warn_limited(&net->log_limit, "%s: the driver did not set up queue pair 0; no traffic", net->name);
	}

	if (start_ctrl(net)) {
		net_reset(net);
		return -1;
	}
	return 0;
}

/* Pairs and the control thread stop (vhost gives back where it stopped);
 * the pair count, filter and features stay for resume. */
static void net_pause(void *dev)
{
	struct virtio_net *net = dev;
	if (!net->active)
		return;
	stop_ctrl(net);
	for (unsigned i = atomic_load(&net->active_pairs); i-- > 0;)
		pair_stop(net, i);
}

static int net_resume(void *dev)
{
	struct virtio_net *net = dev;
	if (!net->active)
		return 0;
	/* The pairs pause stopped, started again as a pair change would
	 * (on failure none runs, and active_pairs says so). */
	unsigned n = atomic_load(&net->active_pairs);
	atomic_store(&net->active_pairs, 0);
	if (set_pairs(net, n) < 0)
		return -1;
	return start_ctrl(net);
}

/* The driver's choices the device keeps: MAC, receive filter, pairs in use. */
static void net_save(void *dev, struct snap_writer *w)
{
	struct virtio_net *net = dev;
	snap_put_u32(w, net->max_pairs);
	snap_put_u32(w, net->active ? atomic_load(&net->active_pairs) : 0);
	pthread_mutex_lock(&net->lock);
	snap_put_bytes(w, net->mac, 6);
	const struct virtio_net_rx_filter *f = &net->filter;
	snap_put_u8(w, f->promisc);
	snap_put_u8(w, f->allmulti);
	snap_put_u32(w, f->n_uni);
	snap_put_u32(w, f->n_multi);
	snap_put_bytes(w, f->uni, sizeof(f->uni));
	snap_put_bytes(w, f->multi, sizeof(f->multi));
	pthread_mutex_unlock(&net->lock);
}

static int net_load(void *dev, struct snap_reader *r)
{
	struct virtio_net *net = dev;
	struct virtio_net_rx_filter f;
	uint8_t mac[6];
	uint32_t max_pairs = snap_get_u32(r);
	uint32_t pairs = snap_get_u32(r);
	snap_get_bytes(r, mac, 6);
	f.promisc = snap_get_u8(r) != 0;
	f.allmulti = snap_get_u8(r) != 0;
	f.n_uni = snap_get_u32(r);
	f.n_multi = snap_get_u32(r);
	snap_get_bytes(r, f.uni, sizeof(f.uni));
	snap_get_bytes(r, f.multi, sizeof(f.multi));
	if (snap_failed(r))
		return -1;
	if (max_pairs != net->max_pairs) {
		snap_fail(r, "the snapshot's NIC had %u queue pairs, this one has %u", max_pairs, net->max_pairs);
		return -1;
	}
	if (pairs > max_pairs) {
		snap_fail(r, "%u queue pairs in use, of %u", pairs, max_pairs);
		return -1;
	}
	pthread_mutex_lock(&net->lock);
	memcpy(net->mac, mac, 6);
	net->filter = f;
	pthread_mutex_unlock(&net->lock);
	net->restore_pairs = pairs;
	return 0;
}

/* ---- features and config space ---- */

static uint64_t net_features(void *dev)
{
	const struct virtio_net *net = dev;
	uint64_t f = F(VIRTIO_NET_F_CSUM) | F(VIRTIO_NET_F_GUEST_CSUM) | F(VIRTIO_NET_F_MAC) |
		     F(VIRTIO_NET_F_GUEST_TSO4) | F(VIRTIO_NET_F_GUEST_TSO6) | F(VIRTIO_NET_F_HOST_TSO4) |
		     F(VIRTIO_NET_F_HOST_TSO6) | F(VIRTIO_NET_F_MRG_RXBUF) | F(VIRTIO_NET_F_STATUS) |
		     F(VIRTIO_NET_F_CTRL_VQ) | F(VIRTIO_NET_F_CTRL_RX) | F(VIRTIO_NET_F_CTRL_MAC_ADDR);
	if (net->max_pairs > 1)
		f |= F(VIRTIO_NET_F_MQ);
	return f;
}

static unsigned net_num_queues(void *dev)
{
	return 2 * ((const struct virtio_net *)dev)->max_pairs + 1;
}

static uint32_t net_config_size(void *dev)
{
	return NET_CONFIG_SIZE;
}

static void net_config_read(void *dev, uint32_t offset, void *data, uint32_t len)
{
	struct virtio_net *net = dev;
	struct virtio_net_config cfg;

	memset(&cfg, 0, sizeof(cfg));
	pthread_mutex_lock(&net->lock);
	memcpy(cfg.mac, net->mac, 6);
	cfg.status = htole16(net->status);
	pthread_mutex_unlock(&net->lock);
	cfg.max_virtqueue_pairs = htole16((uint16_t)net->max_pairs);
	virtio_config_copy(data, offset, len, &cfg, NET_CONFIG_SIZE);
}

static void net_config_write(void *dev, uint32_t offset, const void *data, uint32_t len)
{
	/* Read-only with VERSION_1 (the MAC is set through the control queue). */
}

const struct virtio_dev_ops virtio_net_ops = {
	.name = "net",
	.device_id = VIRTIO_ID_NET,
	.features = net_features,
	.num_queues = net_num_queues,
	.queue_max_size = NET_QUEUE_MAX_SIZE,
	.config_size = net_config_size,
	.config_read = net_config_read,
	.config_write = net_config_write,
	.activate = net_activate,
	.reset = net_reset,
	.pause = net_pause,
	.resume = net_resume,
	.save = net_save,
	.load = net_load,
};

/* ---- life cycle ---- */

void virtio_net_default_mac(unsigned index, unsigned long salt, uint8_t mac[6])
{
	uint32_t h = (uint32_t)(salt * 2654435761ul) ^ (uint32_t)(salt >> 16);
	mac[0] = 0x52;   /* locally administered, unicast */
	mac[1] = 0x54;
	mac[2] = 0x00;
	mac[3] = (uint8_t)(h >> 24);
	mac[4] = (uint8_t)(h >> 16);
	mac[5] = (uint8_t)index;
}

/* Picks the backend for p->backend; logs the choice of AUTO. */
static const struct net_backend_ops *choose_backend(const struct virtio_net_params *p, const char *name, char *err,
						    size_t errlen)
{
	if (p->bytes_per_sec || p->packets_per_sec) {
		/* vhost-net moves the frames in the kernel, where nothing meters them. */
		if (p->backend == VIRTIO_NET_BACKEND_VHOST) {
			snprintf(err, errlen, "tap %s: a rate limit needs the worker backend: vhost-net moves the "
				 "frames in the kernel, where they cannot be metered", p->tap);
			return NULL;
		}
		if (p->backend == VIRTIO_NET_BACKEND_AUTO)
			log_info("%s: tap %s, %u queue pair%s, datapath: worker threads (rate limited: vhost-net "
				 "cannot meter)", name, p->tap, p->queue_pairs, p->queue_pairs > 1 ? "s" : "");
		return &net_worker_backend;
	}
	switch (p->backend) {
	case VIRTIO_NET_BACKEND_WORKER:
		return &net_worker_backend;
	case VIRTIO_NET_BACKEND_VHOST:
		if (!net_vhost_available()) {
			snprintf(err, errlen, "tap %s: vhost=on but %s cannot be opened (modprobe vhost_net, or "
				 "use vhost=off)", p->tap, NET_VHOST_DEV);
			return NULL;
		}
		return &net_vhost_backend;
	case VIRTIO_NET_BACKEND_AUTO:
	default:
		if (net_vhost_available()) {
			log_info("%s: tap %s, %u queue pair%s, datapath: vhost-net", name, p->tap, p->queue_pairs,
				 p->queue_pairs > 1 ? "s" : "");
			return &net_vhost_backend;
		}
		log_info("%s: tap %s, %u queue pair%s, datapath: worker threads (%s not available)", name, p->tap,
			 p->queue_pairs, p->queue_pairs > 1 ? "s" : "", NET_VHOST_DEV);
		return &net_worker_backend;
	}
}

struct virtio_net *virtio_net_create_on_tap(const struct virtio_net_params *p, struct net_tap *tap, char *err,
					    size_t errlen)
{
	char name[16];
	snprintf(name, sizeof(name), "net%u", p->index % 1000);
	if (p->queue_pairs < 1 || p->queue_pairs > VIRTIO_NET_MAX_PAIRS) {
		snprintf(err, errlen, "tap %s: %u queue pairs: must be 1 to %u", p->tap, p->queue_pairs,
			 VIRTIO_NET_MAX_PAIRS);
		net_tap_close(tap);
		return NULL;
	}
	if (tap->n_fds != p->queue_pairs) {
		snprintf(err, errlen, "tap %s: %u tap queues open for %u queue pairs", p->tap, tap->n_fds,
			 p->queue_pairs);
		net_tap_close(tap);
		return NULL;
	}
	const struct net_backend_ops *backend = choose_backend(p, name, err, errlen);
	if (!backend) {
		net_tap_close(tap);
		return NULL;
	}
	struct virtio_net *net = calloc(1, sizeof(*net) + p->queue_pairs * sizeof(struct net_qp));
	if (!net) {
		snprintf(err, errlen, "tap %s: out of memory", p->tap);
		net_tap_close(tap);
		return NULL;
	}
	net->tap = *tap;
	tap->n_fds = 0;   /* ours now */
	net->ctrl_worker = queue_worker_create(1);
	if (!net->ctrl_worker) {
		snprintf(err, errlen, "tap %s: eventfd: %s", p->tap, strerror(errno));
		net_tap_close(&net->tap);
		free(net);
		return NULL;
	}
	pthread_mutex_init(&net->lock, NULL);
	snprintf(net->name, sizeof(net->name), "%s", name);
	log_limit_init(&net->log_limit, net->name);
	net->index = p->index;
	net->max_pairs = p->queue_pairs;
	net->choice = p->backend;
	net->backend = backend;
	net->threads = p->threads;
	net->bytes_per_sec = p->bytes_per_sec;
	net->packets_per_sec = p->packets_per_sec;
	net->tx_irq_delay_us = p->tx_irq_delay_us;
	memcpy(net->mac, p->mac, 6);
	net->status = VIRTIO_NET_S_LINK_UP;
	net->ctrl_index = -1;
	snprintf(net->ctrl_thread_name, sizeof(net->ctrl_thread_name), "net%u-ctrl", p->index % 1000);
	snprintf(net->ctrl_vq_name, sizeof(net->ctrl_vq_name), "%s ctrl", name);
	for (unsigned i = 0; i < net->max_pairs; i++) {
		struct net_qp *qp = &net->qps[i];
		qp->attached = true;
		qp->vhost_fd = -1;
		qp->limit.timer_fd = -1;
		snprintf(qp->rx_name, sizeof(qp->rx_name), "%s rx%u", name, i);
		snprintf(qp->tx_name, sizeof(qp->tx_name), "%s tx%u", name, i);
	}
	/* One vhost instance per pair, opened now: once the sandbox is in
	 * place nothing can open /dev/vhost-net any more. */
	for (unsigned i = 0; i < net->max_pairs && backend == &net_vhost_backend; i++) {
		net->qps[i].vhost_fd = net_vhost_open();
		if (net->qps[i].vhost_fd < 0) {
			snprintf(err, errlen, "tap %s: cannot open %s for queue pair %u: %s", p->tap, NET_VHOST_DEV, i,
				 strerror(errno));
			virtio_net_destroy(net);
			return NULL;
		}
	}
	/* A rate limit timer per pair, made now: the sandbox lets the pairs'
	 * threads set a timer, not make one. */
	for (unsigned i = 0; i < net->max_pairs && (net->bytes_per_sec || net->packets_per_sec); i++) {
		net->qps[i].limit.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
		if (net->qps[i].limit.timer_fd < 0) {
			snprintf(err, errlen, "tap %s: timerfd for queue pair %u: %s", p->tap, i, strerror(errno));
			virtio_net_destroy(net);
			return NULL;
		}
	}
	/* Only the pairs the guest enables get frames: detach the others. */
	for (unsigned i = 1; i < net->max_pairs && net->tap.multi_queue; i++) {
		int e = net_tap_set_queue(&net->tap, i, false);
		if (e < 0) {
			snprintf(err, errlen, "tap %s: cannot detach queue %u of the tap: %s", p->tap, i, strerror(-e));
			virtio_net_destroy(net);
			return NULL;
		}
		net->qps[i].attached = false;
	}
	return net;
}

struct virtio_net *virtio_net_create(const struct virtio_net_params *p, char *err, size_t errlen)
{
	struct net_tap tap;
	if (p->queue_pairs < 1 || p->queue_pairs > VIRTIO_NET_MAX_PAIRS) {
		snprintf(err, errlen, "tap %s: %u queue pairs: must be 1 to %u", p->tap, p->queue_pairs,
			 VIRTIO_NET_MAX_PAIRS);
		return NULL;
	}
	if (net_tap_open(&tap, p->tap, p->queue_pairs, err, errlen) < 0)
		return NULL;
	return virtio_net_create_on_tap(p, &tap, err, errlen);
}

unsigned virtio_net_tap_fds(const struct virtio_net *net, int *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < net->tap.n_fds && n < max; i++)
		if (net->tap.fds[i] >= 0)
			out[n++] = net->tap.fds[i];
	return n;
}

unsigned virtio_net_vhost_fds(const struct virtio_net *net, int *out, unsigned max)
{
	unsigned n = 0;
	for (unsigned i = 0; i < net->max_pairs && n < max; i++)
		if (net->qps[i].vhost_fd >= 0)
			out[n++] = net->qps[i].vhost_fd;
	return n;
}

void virtio_net_destroy(struct virtio_net *net)
{
	if (!net)
		return;
	net_reset(net);
	/* What each pair did, for whoever tunes a host (and finds the frames
	 * it lost): worker pairs that moved any. */
	for (unsigned i = 0; i < net->max_pairs; i++) {
		const struct net_pair_stats *s = &net->qps[i].totals;
		if (s->tx_packets + s->tx_dropped + s->rx_packets + s->rx_dropped)
			log_info("%s: sent %" PRIu64 " frames (%" PRIu64 " dropped), received %" PRIu64 " (%" PRIu64
				 " dropped, %" PRIu64 " buffers), %" PRIu64 " kicks, %" PRIu64 " wake-ups",
				 net->qps[i].pair.name, s->tx_packets, s->tx_dropped, s->rx_packets, s->rx_dropped,
				 s->rx_buffers, s->kicks, s->wakeups);
	}
	for (unsigned i = 0; i < net->max_pairs; i++) {
		if (net->qps[i].vhost_fd >= 0)
			close(net->qps[i].vhost_fd);
		if (net->qps[i].limit.timer_fd >= 0)
			close(net->qps[i].limit.timer_fd);
	}
	queue_worker_destroy(net->ctrl_worker);
	net_tap_close(&net->tap);
	pthread_mutex_destroy(&net->lock);
	log_limit_destroy(&net->log_limit);
	free(net);
}

/* ---- introspection ---- */

const struct net_backend_ops *virtio_net_backend(const struct virtio_net *net)
{
	return net->backend;
}

void virtio_net_set_backend(struct virtio_net *net, const struct net_backend_ops *ops)
{
	if (!net->active)
		net->backend = ops;
}

unsigned virtio_net_active_pairs(const struct virtio_net *net)
{
	return atomic_load(&((struct virtio_net *)net)->active_pairs);
}

const struct net_pair *virtio_net_pair(const struct virtio_net *net, unsigned i)
{
	if (i >= net->max_pairs || !net->qps[i].backend)
		return NULL;
	return &net->qps[i].pair;
}

void virtio_net_pair_stats(const struct virtio_net *net, unsigned i, struct net_pair_stats *out)
{
	const struct net_qp *qp = i < net->max_pairs ? &net->qps[i] : NULL;
	memset(out, 0, sizeof(*out));
	if (!qp)
		return;
	pthread_mutex_t *lock = &((struct virtio_net *)net)->lock;
	pthread_mutex_lock(lock);
	if (qp->backend && qp->backend->stats)
		qp->backend->stats(&qp->pair, out);
	pthread_mutex_unlock(lock);
}

void virtio_net_rx_filter(struct virtio_net *net, struct virtio_net_rx_filter *out)
{
	pthread_mutex_lock(&net->lock);
	*out = net->filter;
	pthread_mutex_unlock(&net->lock);
}

void virtio_net_mac(struct virtio_net *net, uint8_t mac[6])
{
	pthread_mutex_lock(&net->lock);
	memcpy(mac, net->mac, 6);
	pthread_mutex_unlock(&net->lock);
}
