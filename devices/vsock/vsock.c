#define _GNU_SOURCE
#include "devices/vsock/vsock.h"

#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/virtio/queue_worker.h"
#include "devices/vsock/vsock_mux.h"
#include "vmm/base/file_util.h"
#include "vmm/base/log.h"
#include "vmm/base/log_limit.h"
#include "vmm/base/snap_format.h"
#include "vmm/base/thread_start.h"

#define VSOCK_QUEUE_MAX_SIZE 256
#define VSOCK_CONFIG_SIZE 8u   /* le64 guest_cid */
#define SUN_PATH_SIZE sizeof(((struct sockaddr_un *)0)->sun_path)
/* "<uds_path>_4294967295" must fit in sun_path, with its NUL. */
#define VSOCK_UDS_PATH_MAX (SUN_PATH_SIZE - 1 - 11)
#define VSOCK_LISTEN_BACKLOG 128

struct virtio_vsock {
	char name[16];                   /* "vsock0", in log lines */
	char thread_name[16];
	char vq_names[VSOCK_QUEUES][32];
	uint64_t guest_cid;
	uint8_t config[VSOCK_CONFIG_SIZE];
	const struct thread_starter *threads;
	struct log_limit log_limit;      /* the lines the guest can cause */

	char uds_path[SUN_PATH_SIZE];
	char sock_name[SUN_PATH_SIZE];   /* its last component, removed from dir_fd */
	int listen_fd, dir_fd;
	bool bound;                      /* the socket file is ours to remove */
	bool mux_ready;                  /* mux initialised: fini it */

	struct queue_worker *worker;     /* the device thread, from activate to reset (not while paused) */
	/* Set by activate() before the thread starts, cleared by reset() after
	 * it stopped. */
	bool active;
	bool serving;                    /* rx and tx were set up: the thread runs, unless paused */
	bool loaded;                     /* load() ran: tell the next driver its connections are gone */
	struct vsock_mux mux;            /* what the thread does */
};

/* ---- virtio_dev_ops ---- */

static const struct queue_worker_ops vsock_thread_ops = { .serve = vsock_mux_serve, .woken = vsock_mux_woken };

static int start_thread(struct virtio_vsock *v)
{
	vsock_mux_prepare(&v->mux);
	struct queue_worker_params qp = {
		.name = v->name,
		.thread_name = v->thread_name,
		.role = THREAD_ROLE_VSOCK,
		.threads = v->threads,
		.kick_fds = { v->mux.q[VSOCK_RXQ]->kick_fd, v->mux.q[VSOCK_TXQ]->kick_fd },
		.n_kicks = 2,
		/* Two epoll fds stand for every socket (see vsock_conn.h); the
		 * event queue's kick is ours, watched only while an event waits
		 * for a buffer. Set by vsock_mux_serve(). */
		.watch = { { .fd = -1 }, { .fd = -1 }, { .fd = -1 } },
		.n_watch = VSOCK_WATCHES,
		.irq = v->mux.irq,
		.log_limit = &v->log_limit,
		.ops = &vsock_thread_ops,
		.ctx = &v->mux,
	};
	int e = queue_worker_start(v->worker, &qp);
	if (e) {
		log_error_limited(&v->log_limit, "%s: cannot start its thread: %s", v->name, strerror(e));
		return -1;
	}
	return 0;
}

/* The thread stops between batches; connections, rings and owed packets
 * stay (no chain is held across batches). */
static void vsock_pause(void *dev)
{
	struct virtio_vsock *v = dev;
	if (!v->active || !queue_worker_running(v->worker))
		return;
	atomic_store(&v->mux.stopping, true);
	queue_worker_stop(v->worker);
}

static int vsock_resume(void *dev)
{
	struct virtio_vsock *v = dev;
	if (!v->serving || queue_worker_running(v->worker))
		return 0;
	return start_thread(v);
}

/* A pause that also closes every connection (host clients closed). The
 * listening socket stays. */
static void vsock_reset(void *dev)
{
	struct virtio_vsock *v = dev;
	if (!v->active)
		return;
	vsock_pause(v);
	vsock_mux_detach(&v->mux);
	v->serving = false;
	v->active = false;
}

static int vsock_activate(void *dev, uint64_t features, struct virtio_queue *queues, unsigned n_queues,
			  const struct virtio_irq *irq)
{
	struct virtio_vsock *v = dev;
	if (v->active) {
		log_warn_limited(&v->log_limit, "%s: activated twice without a reset", v->name);
		return -1;
	}
	struct virtio_queue *q[VSOCK_QUEUES];
	for (unsigned i = 0; i < VSOCK_QUEUES; i++) {
		q[i] = i < n_queues && queues[i].ready ? &queues[i] : NULL;
		if (q[i] && !q[i]->vq.name)
			q[i]->vq.name = v->vq_names[i];
	}
	/* Connections are not saved: after a load the guest must drop its own. */
	vsock_mux_attach(&v->mux, q, irq, v->loaded);
	v->loaded = false;
	v->active = true;
	if (!q[VSOCK_RXQ] || !q[VSOCK_TXQ]) {
		log_warn_limited(&v->log_limit, "%s: the driver did not set up the rx and tx queues; no traffic", v->name);
		return 0;
	}
	v->serving = true;
	if (start_thread(v)) {
		vsock_reset(v);   /* the transport only sets NEEDS_RESET: nothing may keep running */
		return -1;
	}
	return 0;
}

static void vsock_save(void *dev, struct snap_writer *w)
{
	const struct virtio_vsock *v = dev;
	snap_put_u64(w, v->guest_cid);
}

static int vsock_load(void *dev, struct snap_reader *r)
{
	struct virtio_vsock *v = dev;
	uint64_t cid = snap_get_u64(r);
	if (snap_failed(r))
		return -1;
	if (cid != v->guest_cid) {
		snap_fail(r, "the snapshot's vsock had guest cid %" PRIu64 ", this one has %" PRIu64, cid, v->guest_cid);
		return -1;
	}
	v->loaded = true;
	return 0;
}

static uint64_t vsock_features(void *dev)
{
	return 0;   /* stream only: no SEQPACKET */
}

static unsigned vsock_num_queues(void *dev)
{
	return VSOCK_QUEUES;
}

static uint32_t vsock_config_size(void *dev)
{
	return VSOCK_CONFIG_SIZE;
}

static void vsock_config_read(void *dev, uint32_t offset, void *data, uint32_t len)
{
	const struct virtio_vsock *v = dev;
	virtio_config_copy(data, offset, len, v->config, VSOCK_CONFIG_SIZE);
}

static void vsock_config_write(void *dev, uint32_t offset, const void *data, uint32_t len)
{
	/* guest_cid is read-only. */
}

const struct virtio_dev_ops virtio_vsock_ops = {
	.name = "vsock",
	.device_id = VIRTIO_ID_VSOCK,
	.features = vsock_features,
	.num_queues = vsock_num_queues,
	.queue_max_size = VSOCK_QUEUE_MAX_SIZE,
	.config_size = vsock_config_size,
	.config_read = vsock_config_read,
	.config_write = vsock_config_write,
	.activate = vsock_activate,
	.reset = vsock_reset,
	.pause = vsock_pause,
	.resume = vsock_resume,
	.save = vsock_save,
	.load = vsock_load,
};

/* ---- life cycle ---- */

/* Makes the listening socket at path. Returns 0, or -1 with err. */
static int open_listener(struct virtio_vsock *v, const char *path, char *err, size_t errlen)
{
	v->listen_fd = unix_listener_open("vsock socket", path, VSOCK_LISTEN_BACKLOG, &v->dir_fd, v->sock_name,
					  sizeof(v->sock_name), err, errlen);
	if (v->listen_fd < 0)
		return -1;
	v->bound = true;
	return 0;
}

struct virtio_vsock *virtio_vsock_create(const struct virtio_vsock_params *p, char *err, size_t errlen)
{
	const char *path = p->uds_path ? p->uds_path : "";
	if (!*path || strlen(path) > VSOCK_UDS_PATH_MAX) {
		err_set(err, errlen, "vsock socket %s: a path is 1 to %zu bytes (\"_<port>\" is added for the host's "
			"listeners)", path, VSOCK_UDS_PATH_MAX);
		return NULL;
	}
	if (p->guest_cid < 3 || p->guest_cid >= 0xffffffffull) {
		err_set(err, errlen, "vsock socket %s: guest cid %" PRIu64 ": must be 3 to 4294967294", path,
			p->guest_cid);
		return NULL;
	}
	struct virtio_vsock *v = calloc(1, sizeof(*v));
	if (!v) {
		err_set(err, errlen, "vsock socket %s: out of memory", path);
		return NULL;
	}
	v->listen_fd = v->dir_fd = -1;
	snprintf(v->name, sizeof(v->name), "vsock%u", p->index % 1000000u);
	snprintf(v->thread_name, sizeof(v->thread_name), "vsock%u", p->index % 1000000u);
	snprintf(v->vq_names[VSOCK_RXQ], sizeof(v->vq_names[VSOCK_RXQ]), "%s rx", v->name);
	snprintf(v->vq_names[VSOCK_TXQ], sizeof(v->vq_names[VSOCK_TXQ]), "%s tx", v->name);
	snprintf(v->vq_names[VSOCK_EVQ], sizeof(v->vq_names[VSOCK_EVQ]), "%s event", v->name);
	log_limit_init(&v->log_limit, v->name);
	snprintf(v->uds_path, sizeof(v->uds_path), "%s", path);
	v->guest_cid = p->guest_cid;
	uint64_t le_cid = htole64(p->guest_cid);
	memcpy(v->config, &le_cid, sizeof(le_cid));
	v->threads = p->threads;
	if (open_listener(v, path, err, errlen)) {
		virtio_vsock_destroy(v);
		return NULL;
	}
	if (!(v->worker = queue_worker_create(1)) ||
	    vsock_mux_init(&v->mux, v->name, v->guest_cid, v->uds_path, v->listen_fd, &v->log_limit)) {
		err_set(err, errlen, "vsock socket %s: %s", path, strerror(errno));
		virtio_vsock_destroy(v);
		return NULL;
	}
	v->mux_ready = true;
	return v;
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	if (!v)
		return;
	vsock_reset(v);
	queue_worker_destroy(v->worker);
	if (v->mux_ready)
		vsock_mux_fini(&v->mux);
	if (v->listen_fd >= 0)
		close(v->listen_fd);
	/* From the directory opened at create: the path may not resolve any
	 * more (--chroot). */
	if (v->bound && unlinkat(v->dir_fd, v->sock_name, 0) && errno != ENOENT)
		log_warn("vsock socket %s: cannot remove it: %s", v->uds_path, strerror(errno));
	if (v->dir_fd >= 0)
		close(v->dir_fd);
	log_limit_destroy(&v->log_limit);
	free(v);
}

void virtio_vsock_stats(const struct virtio_vsock *cv, struct virtio_vsock_stats *out)
{
	struct vsock_mux *m = (struct vsock_mux *)&cv->mux;   /* atomic loads take non-const pointers in C11 */
	*out = (struct virtio_vsock_stats){
		.connections = atomic_load_explicit(&m->n_connections, memory_order_relaxed),
		.rx_packets = atomic_load_explicit(&m->n_rx_packets, memory_order_relaxed),
		.tx_packets = atomic_load_explicit(&m->n_tx_packets, memory_order_relaxed),
		.rx_bytes = atomic_load_explicit(&m->n_rx_bytes, memory_order_relaxed),
		.tx_bytes = atomic_load_explicit(&m->n_tx_bytes, memory_order_relaxed),
		.resets = atomic_load_explicit(&m->n_resets, memory_order_relaxed),
		.errors = atomic_load_explicit(&m->n_errors, memory_order_relaxed),
	};
}

int virtio_vsock_dir_fd(const struct virtio_vsock *v)
{
	return v->dir_fd;
}
