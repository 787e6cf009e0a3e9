#define _GNU_SOURCE /* pthread_setname_np */
#include "devices/net/vhost.h"
#include "devices/net/tap.h"
#include "vmm/base/thread_start.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "devices/virtio/queue_worker.h"
#include "vmm/base/eventfd_util.h"
#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"

#ifndef VIRTIO_F_NOTIFICATION_DATA
#define VIRTIO_F_NOTIFICATION_DATA 38
#endif

#define FBIT(n) (1ull << (n))

/* What vhost-net has to know to handle the rings and the RX header. */
#define VHOST_WANTED (FBIT(VIRTIO_F_VERSION_1) | FBIT(VIRTIO_NET_F_MRG_RXBUF) | FBIT(VIRTIO_RING_F_EVENT_IDX) | \
		      FBIT(VIRTIO_RING_F_INDIRECT_DESC) | FBIT(VIRTIO_F_NOTIFY_ON_EMPTY))
/* What changes the datapath in ways this backend does not set vhost up for. */
#define VHOST_UNSUPPORTED (FBIT(VIRTIO_F_RING_PACKED) | FBIT(VIRTIO_F_IN_ORDER) | FBIT(VIRTIO_F_ACCESS_PLATFORM) | \
			   FBIT(VIRTIO_F_NOTIFICATION_DATA) | FBIT(VIRTIO_NET_F_HASH_REPORT))

/* vhost-net's vq numbers inside one pair. */
#define VQ_RX 0
#define VQ_TX 1
#define N_VQ 2

static const char *const vq_names[N_VQ] = { "RX", "TX" };

/* ---- how we reach the kernel ---- */

static int real_open(const char *path, int flags)
{
	return open(path, flags);
}

static int real_ioctl(int fd, unsigned long request, void *arg)
{
	return ioctl(fd, request, arg);
}

static const struct net_vhost_sys real_sys = { real_open, real_ioctl };
static const struct net_vhost_sys *sys = &real_sys;

void net_vhost_set_sys(const struct net_vhost_sys *s)
{
	sys = s ? s : &real_sys;
}

int net_vhost_open(void)
{
	return sys->open(NET_VHOST_DEV, O_RDWR | O_CLOEXEC);
}

bool net_vhost_available(void)
{
	int fd = net_vhost_open();
	if (fd < 0)
		return false;
	close(fd);
	return true;
}

/* ---- the pieces ---- */

uint64_t net_vhost_features(uint64_t negotiated, uint64_t offered, uint64_t *missing)
{
	uint64_t want = negotiated & VHOST_WANTED;
	*missing = (want & ~offered) | (negotiated & VHOST_UNSUPPORTED);
	return want & offered;
}

size_t net_vhost_hdr_len(uint64_t features)
{
	return features & (FBIT(VIRTIO_F_VERSION_1) | FBIT(VIRTIO_NET_F_MRG_RXBUF)) ? 12 : 10;
}

struct vhost_memory *net_vhost_mem_table(const struct guest_mem *mem)
{
	unsigned n = mem->n_regions;
	if (n == 0 || n > GUEST_MEM_MAX_REGIONS)
		return NULL;
	struct vhost_memory *m = calloc(1, sizeof(*m) + n * sizeof(m->regions[0]));
	if (!m)
		return NULL;
	for (unsigned i = 0; i < n; i++) {
		const struct guest_region *r = &mem->regions[i];
		uintptr_t hva = (uintptr_t)r->hva;
		if (!r->size || !hva || r->gpa + (r->size - 1) < r->gpa || hva + (r->size - 1) < hva) {
			free(m);
			return NULL;
		}
		m->regions[i] = (struct vhost_memory_region){
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = hva,
		};
	}
	m->nregions = n;
	return m;
}

int net_vhost_vring_addr(const struct guest_mem *mem, const struct virtq *vq, unsigned index,
			 struct vhost_vring_addr *out)
{
	uint32_t n = vq->size;
	if (n == 0 || (n & (n - 1)))
		return -1;
	uintptr_t d = (uintptr_t)guest_mem_ptr(mem, vq->desc_gpa, VIRTQ_DESC_BYTES(n));
	uintptr_t a = (uintptr_t)guest_mem_ptr(mem, vq->avail_gpa, VIRTQ_AVAIL_BYTES(n));
	uintptr_t u = (uintptr_t)guest_mem_ptr(mem, vq->used_gpa, VIRTQ_USED_BYTES(n));
	if (!d || !a || !u || (d & 15) || (a & 1) || (u & 3))
		return -1;
	*out = (struct vhost_vring_addr){
		.index = index,
		.flags = 0,            /* no dirty logging */
		.desc_user_addr = d,
		.used_user_addr = u,
		.avail_user_addr = a,
		.log_guest_addr = 0,
	};
	return 0;
}

/* ---- one pair ---- */

struct vhost_pair {
	struct net_pair *p;
	int fd;                      /* /dev/vhost-net */
	bool backend_set[N_VQ];
	int own_call[N_VQ];          /* our call eventfd when the transport has none for vhost, else -1 */
	int err_fd[N_VQ];            /* vhost signals it when the guest's ring is malformed */
	bool err_reported;           /* the device was marked broken once already */
	unsigned queue[N_VQ];        /* transport queue numbers, for irq->queue() */
	struct queue_worker *watcher;   /* the pair's thread, NULL until set up */
};

static int vhost_ioctl(struct vhost_pair *v, unsigned long request, const char *what, int vq, void *arg)
{
	if (sys->ioctl(v->fd, request, arg) >= 0)
		return 0;
	int e = errno;
	if (vq >= 0)
		log_error_limited(v->p->log_limit, "%s: vhost-net: %s (vq %d, %s): %s", v->p->name, what, vq,
				  vq_names[vq], strerror(e));
	else
		log_error_limited(v->p->log_limit, "%s: vhost-net: %s: %s", v->p->name, what, strerror(e));
	return -1;
}
#define VIOCTL(v, request, vq, arg) vhost_ioctl(v, request, #request, vq, arg)

static struct virtio_queue *queue_of(struct net_pair *p, int vq)
{
	return vq == VQ_RX ? p->rx : p->tx;
}

static bool signalled(int fd)
{
	return fd >= 0 && eventfd_drain(fd) > 0;
}

/* Turns each signal vhost gives one of our call eventfds into irq->queue(). */
static void forward_pending(struct vhost_pair *v)
{
	for (int i = 0; i < N_VQ; i++)
		if (signalled(v->own_call[i]))
			v->p->irq->queue(v->p->irq, v->queue[i]);
}

/* vhost found the guest's ring malformed (a loop, an index or address out
 * of range...): it stops using the queue (which check failed it says only
 * with dynamic debug on: vq_err is pr_debug). The device then needs a
 * reset, as when a worker finds it (virtq.c). vhost signals the same
 * eventfd when its batched send fails ("Fail to batch sending packets"),
 * which a deleted tap does: that is the tap's fault, not the ring's. */
static void report_errors(struct vhost_pair *v)
{
	for (int i = 0; i < N_VQ; i++) {
		if (!signalled(v->err_fd[i]))
			continue;
		int gone = net_tap_fd_gone(v->p->tap_fd);
		if (gone) {
			if (v->p->tap_gone)
				v->p->tap_gone(v->p, gone);
			else if (!v->err_reported)
				log_warn("%s: vhost-net: the tap is gone", v->p->name);
			v->err_reported = true;
			continue;
		}
		if (v->err_reported)
			continue;
		v->err_reported = true;
		log_warn_limited(v->p->log_limit,
				 "%s: vhost-net stopped the %s queue %u: the guest's ring is malformed; device needs reset",
				 v->p->name, vq_names[i], v->queue[i]);
		v->p->irq->needs_reset(v->p->irq);
	}
}

/* The pair's thread while vhost runs it: forwards our call eventfds (if
 * any) and watches the error eventfds. */
static void watcher_woken(void *ctx, const struct pollfd *watch)
{
	struct vhost_pair *v = ctx;
	forward_pending(v);
	report_errors(v);
}

static const struct queue_worker_ops watcher_ops = { .woken = watcher_woken };

static int start_watcher(struct vhost_pair *v)
{
	struct queue_worker_params qp = {
		.thread_name = v->p->name,
		.role = THREAD_ROLE_VHOST_FWD,
		.threads = v->p->threads,
		.log_limit = v->p->log_limit,
		.ops = &watcher_ops,
		.ctx = v,
	};
	char name[32];
	snprintf(name, sizeof(name), "%s vhost watcher", v->p->name);
	qp.name = name;
	for (int i = 0; i < N_VQ; i++) {
		if (v->own_call[i] >= 0)
			qp.watch[qp.n_watch++] = (struct pollfd){ .fd = v->own_call[i], .events = POLLIN };
		qp.watch[qp.n_watch++] = (struct pollfd){ .fd = v->err_fd[i], .events = POLLIN };
	}
	v->watcher = queue_worker_create(1);
	if (!v->watcher) {
		log_error("%s: vhost-net: eventfd: %s", v->p->name, strerror(errno));
		return -1;
	}
	int e = queue_worker_start(v->watcher, &qp);
	if (e) {
		log_error("%s: vhost-net: cannot start the pair's watcher thread: %s", v->p->name, strerror(e));
		return -1;
	}
	return 0;
}

/* The eventfd vhost signals for vq i: the transport's own when it has one
 * that interrupts the guest by itself, else one of ours (forwarded). */
static int call_fd_for(struct vhost_pair *v, int i)
{
	const struct virtio_irq *irq = v->p->irq;
	int fd = irq->queue_notifier ? irq->queue_notifier(irq, v->queue[i]) : -1;
	if (fd >= 0)
		return fd;
	v->own_call[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->own_call[i] < 0)
		log_error("%s: vhost-net: eventfd: %s", v->p->name, strerror(errno));
	return v->own_call[i];
}

/* Takes the rings back from vhost: detaches the tap (vhost flushes its work
 * before the ioctl returns), then reads where vhost stopped. */
static void take_back(struct vhost_pair *v)
{
	struct net_pair *p = v->p;
	for (int i = 0; i < N_VQ; i++) {
		if (!v->backend_set[i])
			continue;
		struct vhost_vring_file none = { .index = (unsigned)i, .fd = -1 };
		if (VIOCTL(v, VHOST_NET_SET_BACKEND, i, &none) == 0)
			v->backend_set[i] = false;
	}
	for (int i = 0; i < N_VQ; i++) {
		struct virtq *vq = &queue_of(p, i)->vq;
		struct vhost_vring_state base = { .index = (unsigned)i };
		uint16_t used_idx;
		if (v->backend_set[i] || VIOCTL(v, VHOST_GET_VRING_BASE, i, &base) ||
		    guest_mem_read(p->mem, vq->used_gpa + 2, &used_idx, sizeof(used_idx))) {
			/* Where vhost stopped is unknown: restarting from a guess
			 * would hand the guest's buffers out twice. */
			log_error_limited(p->log_limit, "%s: vhost-net: %s queue position lost; device needs reset",
					  p->name, vq_names[i]);
			vq->broken = true;
			continue;
		}
		vq->last_avail_idx = (uint16_t)base.num;
		vq->avail_idx_shadow = vq->last_avail_idx;   /* the next pop reads avail->idx */
		vq->used_idx = le16toh(used_idx);
		vq->signalled_used_valid = false;            /* the next user decides afresh */
	}
}

/* Releases everything start() set up, after the rings were taken back. */
static void release(struct vhost_pair *v)
{
	if (v->fd >= 0 && v->fd == v->p->vhost_fd) {
		/* The device's fd, opened before the sandbox closed the door on
		 * /dev: RESET_OWNER drops vhost's kick, call and tap references
		 * and leaves it ready for the next start. */
		if (sys->ioctl(v->fd, VHOST_RESET_OWNER, NULL) < 0)
			log_warn("%s: vhost-net: VHOST_RESET_OWNER: %s", v->p->name, strerror(errno));
	} else if (v->fd >= 0) {
		close(v->fd);   /* vhost drops its kick, call and tap references */
	}
	if (v->watcher) {
		bool ran = queue_worker_running(v->watcher);
		queue_worker_destroy(v->watcher);
		if (ran)
			forward_pending(v);   /* what vhost signalled last */
	}
	for (int i = 0; i < N_VQ; i++) {
		if (v->own_call[i] >= 0)
			close(v->own_call[i]);
		if (v->err_fd[i] >= 0)
			close(v->err_fd[i]);
	}
	free(v);
}

static int setup_vq(struct vhost_pair *v, int i)
{
	struct net_pair *p = v->p;
	struct virtio_queue *q = queue_of(p, i);
	struct virtq *vq = &q->vq;
	struct vhost_vring_addr addr;
	if (net_vhost_vring_addr(p->mem, vq, (unsigned)i, &addr)) {
		log_error_limited(p->log_limit, "%s: vhost-net: %s queue %u (size %u): rings not in guest RAM", p->name,
				  vq_names[i], v->queue[i], vq->size);
		return -1;
	}
	int call = call_fd_for(v, i);
	if (call < 0)
		return -1;
	v->err_fd[i] = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->err_fd[i] < 0) {
		log_error("%s: vhost-net: eventfd: %s", p->name, strerror(errno));
		return -1;
	}
	struct vhost_vring_file err = { .index = (unsigned)i, .fd = v->err_fd[i] };
	struct vhost_vring_state num = { .index = (unsigned)i, .num = vq->size };
	struct vhost_vring_state base = { .index = (unsigned)i, .num = vq->last_avail_idx };
	struct vhost_vring_file kick = { .index = (unsigned)i, .fd = q->kick_fd };
	struct vhost_vring_file callf = { .index = (unsigned)i, .fd = call };
	if (VIOCTL(v, VHOST_SET_VRING_NUM, i, &num) || VIOCTL(v, VHOST_SET_VRING_BASE, i, &base) ||
	    VIOCTL(v, VHOST_SET_VRING_ADDR, i, &addr) || VIOCTL(v, VHOST_SET_VRING_KICK, i, &kick) ||
	    VIOCTL(v, VHOST_SET_VRING_CALL, i, &callf) || VIOCTL(v, VHOST_SET_VRING_ERR, i, &err))
		return -1;
	return 0;
}

static int setup(struct vhost_pair *v)
{
	struct net_pair *p = v->p;
	v->fd = p->vhost_fd >= 0 ? p->vhost_fd : sys->open(NET_VHOST_DEV, O_RDWR | O_CLOEXEC);
	if (v->fd < 0) {
		log_error("%s: vhost-net: cannot open %s: %s", p->name, NET_VHOST_DEV, strerror(errno));
		return -1;
	}
	uint64_t offered = 0, missing;
	if (VIOCTL(v, VHOST_SET_OWNER, -1, NULL) || VIOCTL(v, VHOST_GET_FEATURES, -1, &offered))
		return -1;
	uint64_t features = net_vhost_features(p->features, offered, &missing);
	if (missing) {
		log_error("%s: vhost-net: cannot serve the negotiated features 0x%llx (vhost offers 0x%llx)", p->name,
			  (unsigned long long)missing, (unsigned long long)offered);
		return -1;
	}
	if (p->vnet_hdr_len != net_vhost_hdr_len(features)) {
		log_error("%s: vhost-net: the tap's virtio-net header is %zu bytes, vhost expects %zu", p->name,
			  p->vnet_hdr_len, net_vhost_hdr_len(features));
		return -1;
	}
	if (VIOCTL(v, VHOST_SET_FEATURES, -1, &features))
		return -1;
	struct vhost_memory *table = net_vhost_mem_table(p->mem);
	if (!table) {
		log_error("%s: vhost-net: guest memory cannot be described to vhost", p->name);
		return -1;
	}
	int r = VIOCTL(v, VHOST_SET_MEM_TABLE, -1, table);
	free(table);
	if (r)
		return -1;
	for (int i = 0; i < N_VQ; i++)
		if (setup_vq(v, i))
			return -1;
	if (start_watcher(v))
		return -1;
	for (int i = 0; i < N_VQ; i++) {
		struct vhost_vring_file backend = { .index = (unsigned)i, .fd = p->tap_fd };
		if (VIOCTL(v, VHOST_NET_SET_BACKEND, i, &backend))
			return -1;
		v->backend_set[i] = true;
	}
	return 0;
}

static int vhost_start(struct net_pair *p)
{
	if (!p->rx || !p->tx || !p->rx->ready || !p->tx->ready) {
		log_error_limited(p->log_limit, "%s: vhost-net: both queues of the pair must be ready", p->name);
		return -1;
	}
	struct vhost_pair *v = calloc(1, sizeof(*v));
	if (!v) {
		log_error("%s: vhost-net: out of memory", p->name);
		return -1;
	}
	*v = (struct vhost_pair){
		.p = p,
		.fd = -1,
		.own_call = { -1, -1 },
		.err_fd = { -1, -1 },
		.queue = { p->rx_index, p->tx_index },
	};
	if (setup(v)) {
		/* vhost may have used buffers already: their positions go back to the vqs */
		if (v->backend_set[VQ_RX] || v->backend_set[VQ_TX])
			take_back(v);
		release(v);
		return -1;
	}
	p->backend_state = v;
	return 0;
}

static void vhost_stop(struct net_pair *p)
{
	struct vhost_pair *v = p->backend_state;
	if (!v)
		return;
	v->backend_set[VQ_RX] = v->backend_set[VQ_TX] = true;   /* read back both, whatever happened */
	take_back(v);
	release(v);
	p->backend_state = NULL;
}

/* The kernel moves the frames and counts nothing we can read. */
static void vhost_stats(const struct net_pair *p, struct net_pair_stats *out)
{
	memset(out, 0, sizeof(*out));
}

const struct net_backend_ops net_vhost_backend = {
	.name = "vhost",
	.start = vhost_start,
	.stop = vhost_stop,
	.stats = vhost_stats,
};
