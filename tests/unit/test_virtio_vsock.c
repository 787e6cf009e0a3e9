/* virtio-vsock device model on fake guest memory, with real Unix sockets in
 * a temporary directory for the host side. The test plays the transport
 * (queues, eventfds, an interrupt handle that records calls), the guest's
 * driver (rings, buffers, kicks, and the guest's half of the vsock protocol
 * with its credit accounting) and the host programs (a listener at
 * "<uds>_<port>", clients of "<uds>"); it waits for the device's thread
 * with bounded polls. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "devices/vsock/vsock.h"
#include "devices/vsock/vsock_pkt.h"
#include "vmm/base/guest_mem.h"
#include "vmm/base/snap_format.h"
#include "vmm/base/thread_start.h"
#include "vmm/sandbox.h"
#include "captured_log.h"
#include "proc_census.h"
#include "sandboxed_starter.h"
#include "virtq_driver.h"

#define RAM_SIZE   (16u << 20)
#define QSIZE      256
#define CID        3u
#define RXQ        0
#define TXQ        1
#define EVQ        2
#define NQ         3
/* Per queue: rings at RING_GPA(q), BUF_BYTES of buffers at BUF_GPA(q). */
#define RING_GPA(q) (0x10000ull * ((q) + 1))
#define BUF_GPA(q)  (0x100000ull + BUF_BYTES * (q))
#define BUF_BYTES   0x400000ull
#define RX_BUF      (VSOCK_HDR_SIZE + 4096u)   /* what Linux's driver posts */
#define GUEST_BUF   (1u << 20)                 /* the buf_alloc the test's guest advertises */
#define DEV_BUF     (64u * 1024)               /* the device's */
#define HOST_PORT_FIRST (1u << 30)

static uint8_t *ram;
static struct guest_mem mem;
static struct virtio_vsock *dev;
static struct virtio_queue queues[NQ];   /* the transport's side */
static struct recording_irq irq_log;
static struct virtq_driver drv[NQ];      /* the guest's side */
static uint64_t buf_gpa[NQ][QSIZE];      /* by head: the buffer of each posted chain */
static bool rx_refill;                   /* every RX packet taken is replaced by a new buffer */
static char dir[32], uds[64];

static void *gpa(uint64_t a) { return guest_ptr(&mem, a); }

/* ---- fixture ---- */

static void setup(void)
{
	ram = calloc(1, RAM_SIZE);
	cr_assert_not_null(ram);
	memset(&mem, 0, sizeof(mem));
	cr_assert_eq(guest_mem_add_region(&mem, 0, RAM_SIZE, ram), 0);
	recording_irq_init(&irq_log);
	for (unsigned q = 0; q < NQ; q++) {
		memset(&queues[q], 0, sizeof(queues[q]));
		queues[q].kick_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		queues[q].call_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		cr_assert(queues[q].kick_fd >= 0 && queues[q].call_fd >= 0);
	}
	strcpy(dir, "/tmp/minivmm-vsock-XXXXXX");
	cr_assert_not_null(mkdtemp(dir));
	snprintf(uds, sizeof(uds), "%s/v.sock", dir);
	dev = NULL;
	rx_refill = true;
	cr_redirect_stderr();
}

static void teardown(void)
{
	virtio_vsock_destroy(dev);
	for (unsigned q = 0; q < NQ; q++) {
		close(queues[q].kick_fd);
		close(queues[q].call_fd);
	}
	DIR *d = opendir(dir);
	for (struct dirent *e; d && (e = readdir(d));) {
		if (e->d_name[0] != '.')
			unlinkat(dirfd(d), e->d_name, 0);
	}
	if (d)
		closedir(d);
	rmdir(dir);
	free(ram);
}

TestSuite(virtio_vsock, .init = setup, .fini = teardown);

static struct virtio_vsock *create_with(const char *path, uint64_t cid, const struct thread_starter *ts)
{
	char err[256] = "";
	struct virtio_vsock *v = virtio_vsock_create(
		&(struct virtio_vsock_params){ .guest_cid = cid, .uds_path = path, .index = 0, .threads = ts }, err,
		sizeof(err));
	cr_assert_not_null(v, "create: %s", err);
	return v;
}

static struct virtio_vsock *create_at(const char *path, uint64_t cid)
{
	return create_with(path, cid, NULL);
}

/* What the transport does at DRIVER_OK: queues on zeroed rings. */
static void init_queues(void)
{
	for (unsigned q = 0; q < NQ; q++) {
		virtq_driver_init(&drv[q], &queues[q], q, &mem, QSIZE, RING_GPA(q), false, false);
		virtq_driver_set_buffers(&drv[q], BUF_GPA(q), BUF_BYTES);
	}
}

static void activate(struct virtio_vsock *v)
{
	cr_assert_eq(virtio_vsock_ops.activate(v, 1ull << VIRTIO_F_VERSION_1, queues, NQ, &irq_log.irq), 0);
}

static void start(void)
{
	dev = create_at(uds, CID);
	init_queues();
	activate(dev);
}

/* ---- the guest's driver ---- */

/* n device-writable buffers of len bytes on queue q, one kick. */
static void post(unsigned q, unsigned n, uint32_t len)
{
	for (unsigned i = 0; i < n; i++) {
		uint64_t a = virtq_driver_alloc(&drv[q], len);
		struct virtq_seg s = { a, len, true };
		buf_gpa[q][virtq_driver_add(&drv[q], &s, 1)] = a;
	}
	virtq_driver_kick(&drv[q]);
}

static void post_rx(unsigned n)
{
	post(RXQ, n, RX_BUF);
}

struct pkt {
	struct vsock_hdr h;
	uint8_t data[4096];
};

/* The next packet in the RX queue (waiting for it), checked for what every
 * packet from the host must be. */
static void rx_next(struct pkt *p)
{
	struct virtq_used_elem e = virtq_driver_wait_used(&drv[RXQ]);
	cr_assert_lt(e.id, QSIZE);
	cr_assert_geq(e.len, VSOCK_HDR_SIZE, "RX used length %u", e.len);
	const uint8_t *b = gpa(buf_gpa[RXQ][e.id]);
	vsock_hdr_decode(b, &p->h);
	cr_assert_eq(e.len, VSOCK_HDR_SIZE + p->h.len, "used length %u for payload %u", e.len, p->h.len);
	cr_assert_leq(p->h.len, sizeof(p->data));
	memcpy(p->data, b + VSOCK_HDR_SIZE, p->h.len);
	cr_assert_eq(p->h.src_cid, 2);
	cr_assert_eq(p->h.dst_cid, CID);
	cr_assert_eq(p->h.type, VSOCK_TYPE_STREAM);
	if (rx_refill)
		post_rx(1);
}

static void rx_expect(uint16_t op, uint32_t src_port, uint32_t dst_port, struct pkt *p)
{
	rx_next(p);
	cr_assert_eq(p->h.op, op, "op %u, expected %u (ports %u -> %u)", p->h.op, op, p->h.src_port, p->h.dst_port);
	cr_assert_eq(p->h.src_port, src_port, "src port %u, expected %u", p->h.src_port, src_port);
	cr_assert_eq(p->h.dst_port, dst_port, "dst port %u, expected %u", p->h.dst_port, dst_port);
}

static struct vsock_hdr ghdr(uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	return (struct vsock_hdr){ .src_cid = CID, .dst_cid = VSOCK_HOST_CID, .src_port = src_port,
				   .dst_port = dst_port, .type = VSOCK_TYPE_STREAM, .op = op, .buf_alloc = GUEST_BUF };
}

/* Puts bytes in the TX queue as one chain of one descriptor, no kick. */
static void tx_add_raw(const void *bytes, uint32_t len)
{
	uint64_t a = virtq_driver_alloc(&drv[TXQ], len ? len : 1);
	memcpy(gpa(a), bytes, len);
	struct virtq_seg s = { a, len, false };
	virtq_driver_add(&drv[TXQ], &s, 1);
}

static void tx_add(struct vsock_hdr h, const void *data, uint32_t len)
{
	static uint8_t b[VSOCK_HDR_SIZE + 70000];
	cr_assert_leq(len, sizeof(b) - VSOCK_HDR_SIZE);
	h.len = len;
	vsock_hdr_encode(&h, b);
	if (len)
		memcpy(b + VSOCK_HDR_SIZE, data, len);
	tx_add_raw(b, VSOCK_HDR_SIZE + len);
}

/* Sends one packet and waits until the device has taken it. */
static void tx_send(struct vsock_hdr h, const void *data, uint32_t len)
{
	tx_add(h, data, len);
	virtq_driver_kick(&drv[TXQ]);
	virtq_driver_wait_used(&drv[TXQ]);
}

static void rx_none(unsigned ms)
{
	virtq_driver_assert_no_used(&drv[RXQ], ms);
}

/* ---- the guest's half of a connection ---- */

struct gconn {
	uint32_t gport, hport;
	uint32_t buf_alloc;                    /* ours */
	uint32_t rx_cnt;                       /* bytes received (and consumed at once: our fwd_cnt) */
	uint32_t tx_cnt, peer_buf, peer_fwd;   /* the device's credit, as its packets said */
};

static struct vsock_hdr gc_hdr(const struct gconn *c, uint16_t op)
{
	struct vsock_hdr h = ghdr(op, c->gport, c->hport);
	h.buf_alloc = c->buf_alloc;
	h.fwd_cnt = c->rx_cnt;
	return h;
}

/* The next packet, which must be c's; its credit fields taken. */
static void gc_rx(struct gconn *c, struct pkt *p)
{
	rx_next(p);
	cr_assert_eq(p->h.src_port, c->hport, "packet (op %u) from host port %u, expected %u", p->h.op, p->h.src_port,
		     c->hport);
	cr_assert_eq(p->h.dst_port, c->gport);
	c->peer_buf = p->h.buf_alloc;
	c->peer_fwd = p->h.fwd_cnt;
}

/* The next packet of c that is not a CREDIT_UPDATE. */
static void gc_rx_skip_credit(struct gconn *c, struct pkt *p)
{
	do
		gc_rx(c, p);
	while (p->h.op == VSOCK_OP_CREDIT_UPDATE);
}

/* Sends n bytes as a driver does: never past the device's credit (asking
 * for more when it runs out). */
static void gc_send(struct gconn *c, const uint8_t *data, size_t n)
{
	for (size_t off = 0; off < n;) {
		uint32_t room = c->peer_buf - (c->tx_cnt - c->peer_fwd);
		if (!room) {
			tx_send(gc_hdr(c, VSOCK_OP_CREDIT_REQUEST), NULL, 0);
			struct pkt p;
			gc_rx(c, &p);
			cr_assert_eq(p.h.op, VSOCK_OP_CREDIT_UPDATE);
			continue;
		}
		uint32_t k = n - off < 4096 ? (uint32_t)(n - off) : 4096;
		k = k < room ? k : room;
		tx_send(gc_hdr(c, VSOCK_OP_RW), data + off, k);
		c->tx_cnt += k;
		off += k;
	}
}

/* Receives exactly n bytes of RW payload on c. */
static void gc_recv(struct gconn *c, uint8_t *out, size_t n)
{
	for (size_t got = 0; got < n;) {
		struct pkt p;
		gc_rx_skip_credit(c, &p);
		cr_assert_eq(p.h.op, VSOCK_OP_RW, "op %u while %zu of %zu bytes came", p.h.op, got, n);
		cr_assert_gt(p.h.len, 0);
		cr_assert_leq(got + p.h.len, n, "more than was sent");
		memcpy(out + got, p.data, p.h.len);
		got += p.h.len;
		c->rx_cnt += p.h.len;
	}
}

/* ---- the host's programs ---- */

static int host_listen(uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", uds, port);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "bind %s: %s", sa.sun_path, strerror(errno));
	cr_assert_eq(listen(fd, 1024), 0);
	return fd;
}

static void wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	cr_assert_eq(poll(&p, 1, TEST_TIMEOUT_MS), 1, "fd %d: nothing after %d ms", fd, TEST_TIMEOUT_MS);
}

static int host_accept(int lfd)
{
	wait_fd(lfd, POLLIN);
	int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	cr_assert_geq(fd, 0);
	return fd;
}

/* A host program connecting to the device's socket. */
static int host_client(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", uds);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect %s: %s", uds, strerror(errno));
	return fd;
}

static void host_write(int fd, const void *b, size_t n)
{
	for (size_t done = 0; done < n;) {
		ssize_t w = send(fd, (const uint8_t *)b + done, n - done, MSG_NOSIGNAL);
		cr_assert_gt(w, 0, "send: %s", strerror(errno));
		done += (size_t)w;
	}
}

static void host_read(int fd, void *b, size_t n)
{
	for (size_t got = 0; got < n;) {
		wait_fd(fd, POLLIN);
		ssize_t r = read(fd, (uint8_t *)b + got, n - got);
		cr_assert_gt(r, 0, "read after %zu of %zu bytes: %zd (%s)", got, n, r, r < 0 ? strerror(errno) : "EOF");
		got += (size_t)r;
	}
}

/* The peer closed: EOF (or a reset) with no byte before. */
static void host_assert_closed(int fd)
{
	wait_fd(fd, POLLIN);
	char c;
	ssize_t r = read(fd, &c, 1);
	cr_assert(r == 0 || (r < 0 && errno == ECONNRESET), "read gave %zd", r);
}

static void host_assert_quiet(int fd, int ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&p, 1, ms), 0, "fd %d readable (revents 0x%x)", fd, p.revents);
}

static void fill(uint8_t *b, size_t n, unsigned seed)
{
	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i * 31 + i / 251 + seed);
}

/* The guest connects from gport to host port hport, where lfd listens:
 * RESPONSE, then the host side accepted. */
static int gc_connect(struct gconn *c, int lfd, uint32_t gport, uint32_t hport)
{
	*c = (struct gconn){ .gport = gport, .hport = hport, .buf_alloc = GUEST_BUF };
	tx_send(gc_hdr(c, VSOCK_OP_REQUEST), NULL, 0);
	struct pkt p;
	gc_rx(c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_RESPONSE, "op %u", p.h.op);
	cr_assert_eq(p.h.buf_alloc, DEV_BUF);
	return host_accept(lfd);
}

/* A host client asks for guest port gport; the guest accepts from it.
 * Returns the client, with "OK <port>\n" read. */
static int host_connect_in(struct gconn *c, uint32_t gport)
{
	int fd = host_client();
	char line[32];
	int n = snprintf(line, sizeof(line), "CONNECT %u\n", gport);
	host_write(fd, line, (size_t)n);
	struct pkt p;
	rx_next(&p);
	cr_assert_eq(p.h.op, VSOCK_OP_REQUEST);
	cr_assert_eq(p.h.dst_port, gport);
	cr_assert_geq(p.h.src_port, HOST_PORT_FIRST);
	*c = (struct gconn){ .gport = gport, .hport = p.h.src_port, .buf_alloc = GUEST_BUF, .peer_buf = p.h.buf_alloc,
			     .peer_fwd = p.h.fwd_cnt };
	tx_send(gc_hdr(c, VSOCK_OP_RESPONSE), NULL, 0);
	char want[32], got[32];
	n = snprintf(want, sizeof(want), "OK %u\n", c->hport);
	host_read(fd, got, (size_t)n);
	cr_assert_arr_eq(got, want, (size_t)n);
	return fd;
}

/* ---- identity, config, creation ---- */

Test(virtio_vsock, ops_identity_and_config_space)
{
	dev = create_at(uds, 0x1122334455ull & 0xffffffffull);
	cr_assert_eq(virtio_vsock_ops.device_id, 19);
	cr_assert_eq(VIRTIO_ID_VSOCK, 19);
	cr_assert_str_eq(virtio_vsock_ops.name, "vsock");
	cr_assert_eq(virtio_vsock_ops.num_queues(dev), 3);
	cr_assert_eq(virtio_vsock_ops.queue_max_size, 256);
	cr_assert_eq(virtio_vsock_ops.features(dev), 0, "nothing device-specific");
	cr_assert_eq(virtio_vsock_ops.config_size(dev), 8);
	uint8_t cfg[8];
	virtio_vsock_ops.config_read(dev, 0, cfg, 8);
	const uint8_t want[8] = { 0x55, 0x44, 0x33, 0x22, 0, 0, 0, 0 };
	cr_assert_arr_eq(cfg, want, 8, "le64 guest_cid");
	uint32_t hi = 0xdeadbeef;
	virtio_vsock_ops.config_read(dev, 4, &hi, 4);
	cr_assert_eq(hi, 0);
	uint8_t b;
	virtio_vsock_ops.config_read(dev, 1, &b, 1);
	cr_assert_eq(b, 0x44);
	virtio_vsock_ops.config_write(dev, 0, "\x07", 1);   /* read-only */
	virtio_vsock_ops.config_read(dev, 0, &b, 1);
	cr_assert_eq(b, 0x55);
	/* the socket: listening, 0600 */
	struct stat st;
	cr_assert_eq(stat(uds, &st), 0);
	cr_assert(S_ISSOCK(st.st_mode));
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	cr_assert_geq(virtio_vsock_dir_fd(dev), 0);
}

static void create_fails(const char *path, uint64_t cid, const char *want)
{
	char err[256] = "";
	struct virtio_vsock *v = virtio_vsock_create(
		&(struct virtio_vsock_params){ .guest_cid = cid, .uds_path = path }, err, sizeof(err));
	cr_assert_null(v, "created at %s", path);
	cr_assert_str_eq(err, want);
}

Test(virtio_vsock, create_errors)
{
	char want[400], p[300];
	snprintf(want, sizeof(want), "vsock socket %s: guest cid 2: must be 3 to 4294967294", uds);
	create_fails(uds, 2, want);
	snprintf(want, sizeof(want), "vsock socket %s: guest cid 4294967295: must be 3 to 4294967294", uds);
	create_fails(uds, 0xffffffffull, want);
	create_fails("", CID, "vsock socket : a path is 1 to 96 bytes (\"_<port>\" is added for the host's listeners)");
	char longp[200];
	memset(longp, 'a', sizeof(longp));
	longp[0] = '/';
	longp[97] = 0;   /* 97 bytes */
	snprintf(want, sizeof(want), "vsock socket %s: a path is 1 to 96 bytes (\"_<port>\" is added for the host's "
		 "listeners)", longp);
	create_fails(longp, CID, want);
	/* a regular file is not ours to remove */
	snprintf(p, sizeof(p), "%s/file", dir);
	close(open(p, O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
	snprintf(want, sizeof(want), "vsock socket %s: exists and is not a socket", p);
	create_fails(p, CID, want);
	cr_assert_eq(access(p, F_OK), 0, "still there");
	/* no such directory */
	snprintf(p, sizeof(p), "%s/nodir/v.sock", dir);
	snprintf(want, sizeof(want), "vsock socket %s: its directory: No such file or directory", p);
	create_fails(p, CID, want);
	/* a live listener is another VM's */
	dev = create_at(uds, CID);
	snprintf(want, sizeof(want), "vsock socket %s: another process listens on it", uds);
	create_fails(uds, CID, want);
	virtio_vsock_destroy(dev);
	dev = NULL;
	cr_assert_neq(access(uds, F_OK), 0, "destroy removes the socket");
	/* a stale socket (its listener gone) is replaced */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", uds);
	cr_assert_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	close(fd);
	dev = create_at(uds, CID);
	close(host_client());   /* it listens */
}

Test(virtio_vsock, nothing_left_behind)
{
	unsigned fds = census_fds();
	start();
	int lfd = host_listen(1234);
	post_rx(8);
	struct gconn c, h;
	int a = gc_connect(&c, lfd, 5000, 1234);
	int b = host_connect_in(&h, 77);
	cr_assert_eq(census_threads("vsock0", 1), 1);
	virtio_vsock_destroy(dev);
	dev = NULL;
	host_assert_closed(a);
	host_assert_closed(b);
	close(a);
	close(b);
	close(lfd);
	cr_assert_eq(census_threads("vsock0", 0), 0);
	cr_assert_eq(census_fds(), fds, "fds before %u, after %u", fds, census_fds());
	cr_assert_neq(access(uds, F_OK), 0);
}

/* ---- guest to host ---- */

Test(virtio_vsock, guest_connects_and_data_flows_both_ways)
{
	start();
	int lfd = host_listen(1234);
	post_rx(16);
	struct gconn c;
	int hfd = gc_connect(&c, lfd, 5000, 1234);
	/* small, then 200 KB (past the device's 64 KiB of credit: the guest
	 * needs its credit updates), byte-exact */
	gc_send(&c, (const uint8_t *)"hello", 5);
	char small[5];
	host_read(hfd, small, 5);
	cr_assert_arr_eq(small, "hello", 5);
	static uint8_t out[200000], in[200000];
	fill(out, sizeof(out), 1);
	gc_send(&c, out, 100000);
	host_read(hfd, in, 100000);   /* the first half stays in the socket buffer meanwhile */
	gc_send(&c, out + 100000, 100000);
	host_read(hfd, in + 100000, 100000);
	cr_assert_arr_eq(in, out, sizeof(out));
	/* host to guest, byte-exact, in packets of at most the RX buffer */
	fill(out, 150000, 2);
	host_write(hfd, out, 150000);
	gc_recv(&c, in, 150000);
	cr_assert_arr_eq(in, out, 150000);

	struct virtio_vsock_stats st;
	virtio_vsock_stats(dev, &st);
	cr_assert_eq(st.connections, 1);
	cr_assert_eq(st.tx_bytes, 200005);
	cr_assert_eq(st.rx_bytes, 150000);
	cr_assert_eq(st.errors, 0);
	cr_assert_eq(st.resets, 0);
	cr_assert_gt(atomic_load(&irq_log.queue_calls[RXQ]), 0);
	cr_assert_gt(atomic_load(&irq_log.queue_calls[TXQ]), 0);

	/* the guest closes: the host sees EOF, the guest gets the RST that
	 * completes its close */
	tx_send(gc_hdr(&c, VSOCK_OP_SHUTDOWN), NULL, 0);   /* no flags: nothing */
	host_assert_quiet(hfd, 50);
	struct vsock_hdr sh = gc_hdr(&c, VSOCK_OP_SHUTDOWN);
	sh.flags = VSOCK_SHUTDOWN_BOTH;
	tx_send(sh, NULL, 0);
	struct pkt p;
	gc_rx_skip_credit(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_RST);
	host_assert_closed(hfd);
	close(hfd);
	close(lfd);
	cr_assert_eq(atomic_load(&irq_log.needs_reset_calls), 0);
}

/* However the guest cuts header and payload across descriptors. */
Test(virtio_vsock, packet_split_across_descriptors)
{
	start();
	int lfd = host_listen(1234);
	post_rx(4);
	struct gconn c;
	int hfd = gc_connect(&c, lfd, 5000, 1234);
	uint8_t pkt[VSOCK_HDR_SIZE + 10];
	struct vsock_hdr h = gc_hdr(&c, VSOCK_OP_RW);
	h.len = 10;
	vsock_hdr_encode(&h, pkt);
	memcpy(pkt + VSOCK_HDR_SIZE, "0123456789", 10);
	/* cuts at 3, 20, 44 (header end) and 47, in five descriptors */
	const unsigned cuts[] = { 0, 3, 20, 44, 47, sizeof(pkt) };
	struct virtq_seg segs[5];
	for (unsigned i = 0; i < 5; i++) {
		uint32_t len = cuts[i + 1] - cuts[i];
		uint64_t a = virtq_driver_alloc(&drv[TXQ], len);
		memcpy(gpa(a), pkt + cuts[i], len);
		segs[i] = (struct virtq_seg){ a, len, false };
	}
	virtq_driver_submit(&drv[TXQ], segs, 5);
	virtq_driver_wait_used(&drv[TXQ]);
	char got[10];
	host_read(hfd, got, 10);
	cr_assert_arr_eq(got, "0123456789", 10);
	close(hfd);
	close(lfd);
}

Test(virtio_vsock, guest_connect_to_a_port_nobody_listens_on)
{
	start();
	post_rx(4);
	tx_send(ghdr(VSOCK_OP_REQUEST, 5000, 4321), NULL, 0);
	struct pkt p;
	rx_expect(VSOCK_OP_RST, 4321, 5000, &p);
	/* a socket file nobody listens on any more: the same */
	close(host_listen(4322));
	tx_send(ghdr(VSOCK_OP_REQUEST, 5001, 4322), NULL, 0);
	rx_expect(VSOCK_OP_RST, 4322, 5001, &p);
	struct virtio_vsock_stats st;
	virtio_vsock_stats(dev, &st);
	cr_assert_eq(st.connections, 0);
	cr_assert_eq(st.resets, 2);
	cr_assert_str_empty(logged(), "nobody listening is not news");
}

/* The device never sends more than the guest said it has room for. */
Test(virtio_vsock, host_data_waits_for_the_guests_credit)
{
	start();
	int lfd = host_listen(1234);
	post_rx(16);
	struct gconn c = { .gport = 5000, .hport = 1234, .buf_alloc = 8192 };
	tx_send(gc_hdr(&c, VSOCK_OP_REQUEST), NULL, 0);
	struct pkt p;
	gc_rx(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_RESPONSE);
	int hfd = host_accept(lfd);
	static uint8_t out[20000], in[20000];
	fill(out, sizeof(out), 3);
	host_write(hfd, out, sizeof(out));
	gc_recv(&c, in, 8192);
	rx_none(150);   /* the guest's 8 KiB are full */
	/* it read 8 KiB: says so, and gets the next 8 */
	tx_send(gc_hdr(&c, VSOCK_OP_CREDIT_UPDATE), NULL, 0);
	gc_recv(&c, in + 8192, 8192);
	rx_none(150);
	/* a bigger buffer: the rest */
	c.buf_alloc = 1u << 20;
	tx_send(gc_hdr(&c, VSOCK_OP_CREDIT_UPDATE), NULL, 0);
	gc_recv(&c, in + 16384, sizeof(out) - 16384);
	cr_assert_arr_eq(in, out, sizeof(out));
	/* a CREDIT_REQUEST gets the device's */
	tx_send(gc_hdr(&c, VSOCK_OP_CREDIT_REQUEST), NULL, 0);
	gc_rx(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_CREDIT_UPDATE);
	cr_assert_eq(p.h.buf_alloc, DEV_BUF);
	close(hfd);
	close(lfd);
}

/* Absurd credit from the guest moves no more than one RX buffer per packet. */
Test(virtio_vsock, absurd_guest_credit_is_harmless)
{
	start();
	int lfd = host_listen(1234);
	post_rx(16);
	struct gconn c = { .gport = 5000, .hport = 1234, .buf_alloc = UINT32_MAX };
	struct vsock_hdr h = gc_hdr(&c, VSOCK_OP_REQUEST);
	h.fwd_cnt = 0x80000000u;
	tx_send(h, NULL, 0);
	struct pkt p;
	gc_rx(&c, &p);
	int hfd = host_accept(lfd);
	/* in flight by its own count: 0 - 2^31 wraps to 2^31 <= 2^32-1, so it
	 * claims ~2 GiB of room; packets still fit RX buffers */
	static uint8_t out[30000], in[30000];
	fill(out, sizeof(out), 4);
	host_write(hfd, out, sizeof(out));
	for (size_t got = 0; got < sizeof(out);) {
		gc_rx_skip_credit(&c, &p);
		cr_assert_eq(p.h.op, VSOCK_OP_RW);
		cr_assert_leq(p.h.len, 4096);
		memcpy(in + got, p.data, p.h.len);
		got += p.h.len;
	}
	cr_assert_arr_eq(in, out, sizeof(out));
	/* fwd_cnt ahead of what it was sent: no room at all, nothing sent */
	h = gc_hdr(&c, VSOCK_OP_CREDIT_UPDATE);
	h.buf_alloc = 4096;
	h.fwd_cnt = 0x80000000u + 100000u;
	tx_send(h, NULL, 0);
	host_write(hfd, "x", 1);
	rx_none(150);
	close(hfd);
	close(lfd);
}

/* ---- host to guest ---- */

Test(virtio_vsock, host_connects_in_and_data_flows)
{
	start();
	post_rx(16);
	int fd = host_client();
	/* the line and the first bytes of the stream in one write: the bytes
	 * wait for the connection */
	host_write(fd, "CONNECT 52\nearly", 16);
	struct pkt p;
	rx_next(&p);
	cr_assert_eq(p.h.op, VSOCK_OP_REQUEST);
	cr_assert_eq(p.h.dst_port, 52);
	cr_assert_eq(p.h.src_port, HOST_PORT_FIRST, "the first host port: 2^30");
	cr_assert_eq(p.h.buf_alloc, DEV_BUF);
	struct gconn c = { .gport = 52, .hport = p.h.src_port, .buf_alloc = GUEST_BUF, .peer_buf = DEV_BUF };
	rx_none(50);   /* nothing before the guest's answer */
	host_assert_quiet(fd, 10);
	tx_send(gc_hdr(&c, VSOCK_OP_RESPONSE), NULL, 0);
	char line[20];
	host_read(fd, line, 14);
	cr_assert_arr_eq(line, "OK 1073741824\n", 14);
	uint8_t in[5];
	gc_recv(&c, in, 5);
	cr_assert_arr_eq(in, "early", 5);
	static uint8_t big[90000], back[90000];
	fill(big, sizeof(big), 5);
	gc_send(&c, big, sizeof(big));
	host_read(fd, back, sizeof(back));
	cr_assert_arr_eq(back, big, sizeof(big));
	host_write(fd, big, 30000);
	gc_recv(&c, back, 30000);
	cr_assert_arr_eq(back, big, 30000);
	/* a second client gets the next host port */
	struct gconn c2;
	int fd2 = host_connect_in(&c2, 53);
	cr_assert_eq(c2.hport, HOST_PORT_FIRST + 1);
	struct virtio_vsock_stats st;
	virtio_vsock_stats(dev, &st);
	cr_assert_eq(st.connections, 2);
	close(fd);
	close(fd2);
}

Test(virtio_vsock, host_connect_to_a_guest_port_nobody_listens_on)
{
	start();
	post_rx(4);
	int fd = host_client();
	host_write(fd, "CONNECT 99\n", 11);
	struct pkt p;
	rx_next(&p);
	cr_assert_eq(p.h.op, VSOCK_OP_REQUEST);
	tx_send(ghdr(VSOCK_OP_RST, 99, p.h.src_port), NULL, 0);
	host_assert_closed(fd);
	close(fd);
	rx_none(50);   /* an RST is never answered */
}

Test(virtio_vsock, host_client_with_a_bad_line_is_closed)
{
	start();
	post_rx(4);
	static const char *const lines[] = { "HELLO 52\n", "CONNECT 4294967296\n", "CONNECT 52\r\n",
					     "CONNECT 5200000000000000000000000000000000" };
	for (unsigned i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
		int fd = host_client();
		host_write(fd, lines[i], strlen(lines[i]));
		host_assert_closed(fd);
		close(fd);
	}
	rx_none(50);   /* the guest heard of none */
	cr_assert(strstr(logged(), "vsock0: host client on "), "logged: %s", logged());
	/* a good one still works */
	struct gconn c;
	close(host_connect_in(&c, 52));
}

/* No line in 5 s: closed (one bounded wait of about 5 s). */
Test(virtio_vsock, silent_host_client_is_closed_after_5_s)
{
	start();
	post_rx(4);
	int fd = host_client();
	host_write(fd, "CONN", 4);
	uint64_t t0 = now_ms();
	struct pollfd pf = { .fd = fd, .events = POLLIN };
	cr_assert_eq(poll(&pf, 1, 8000), 1, "not closed after 8 s");
	uint64_t took = now_ms() - t0;
	cr_assert(took >= 4500 && took < 7500, "closed after %llu ms", (unsigned long long)took);
	host_assert_closed(fd);
	close(fd);
	rx_none(10);
}

/* ---- a long echo through full buffers ---- */

/* 4 MiB from a host client to an echo in the guest and back, as the rig's
 * vsock scenario does it, with every buffer on the way filling up: the host
 * writes whatever its socket takes and reads slowly, so the device's 64 KiB
 * toward it fill and the guest runs out of the device's credit; the guest
 * advertises 64 KiB, reads 64 KiB at a time and echoes before it reads
 * again (vsockcat's echo), so the device runs out of the guest's credit and
 * stops reading the host socket. Nothing may close or reset the connection
 * on the way (that is what a guest's EPIPE mid-stream would mean), and every
 * byte comes back in order. */
#define ECHO_BYTES     (4u << 20)
#define ECHO_GUEST_BUF (64u * 1024)
#define ECHO_APP_BUF   (64u * 1024)

/* The host program, on a thread of its own: udscat's loop, which never
 * blocks in a write; it reads 4 KiB per turn, and stops reading for 20 ms
 * after each 256 KiB (long enough for every buffer toward it to fill). */
struct echo_host {
	int fd;
	const uint8_t *out;
	uint8_t *back;
	size_t sent, got;
	int err;            /* errno of what failed; -1: an early EOF; 0: nothing did */
	atomic_bool done;
};

static void echo_host_send(struct echo_host *h)
{
	ssize_t w = send(h->fd, h->out + h->sent, ECHO_BYTES - h->sent, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w > 0)
		h->sent += (size_t)w;
	else if (w < 0 && errno != EAGAIN)
		h->err = errno;
}

/* Returns whether it read the end of a 256 KiB piece. */
static bool echo_host_recv(struct echo_host *h)
{
	size_t want = ECHO_BYTES - h->got < 4096 ? ECHO_BYTES - h->got : 4096;
	ssize_t r = recv(h->fd, h->back + h->got, want, MSG_DONTWAIT);
	if (r > 0)
		h->got += (size_t)r;
	else if (r == 0 || errno != EAGAIN)
		h->err = r ? errno : -1;
	return r > 0 && h->got / (256 * 1024) != (h->got - (size_t)r) / (256 * 1024);
}

static void *echo_host_main(void *arg)
{
	struct echo_host *h = arg;
	uint64_t reading_at = 0;   /* not before (ms) */
	while (h->got < ECHO_BYTES && !h->err && !atomic_load(&h->done)) {
		bool read_now = now_ms() >= reading_at;
		short ev = (short)((read_now ? POLLIN : 0) | (h->sent < ECHO_BYTES ? POLLOUT : 0));
		struct pollfd p = { .fd = h->fd, .events = ev };
		if (poll(&p, 1, read_now ? 100 : 1) <= 0)
			continue;
		if (p.revents & POLLOUT)
			echo_host_send(h);
		if (read_now && (p.revents & (POLLIN | POLLHUP | POLLERR)) && echo_host_recv(h))
			reading_at = now_ms() + 20;
	}
	atomic_store(&h->done, true);
	return NULL;
}

/* The guest's end: its receive buffer, the echo program's buffer, and how
 * often each credit ran out. */
struct echo_guest {
	struct gconn c;
	uint8_t rxbuf[ECHO_GUEST_BUF];
	size_t rx_head, rx_len;           /* received, not read by the program yet */
	uint8_t app[ECHO_APP_BUF];
	size_t app_off, app_len;          /* read by the program, not echoed yet */
	size_t echoed;
	unsigned guest_full, device_full; /* turns the guest's buffer was full / it had no credit left */
};

/* Takes the packets the device put in the RX queue. Returns whether any. */
static bool echo_guest_rx(struct echo_guest *g)
{
	bool any = false;
	for (unsigned i = 0; i < QSIZE && virtq_driver_has_used(&drv[RXQ]); i++) {
		struct pkt p;
		gc_rx(&g->c, &p);
		any = true;
		cr_assert(p.h.op == VSOCK_OP_RW || p.h.op == VSOCK_OP_CREDIT_UPDATE,
			  "op %u (flags %u) after %zu bytes echoed: the device closed a connection in use", p.h.op,
			  p.h.flags, g->echoed);
		cr_assert_leq(g->rx_len + p.h.len, ECHO_GUEST_BUF, "the device sent past the guest's credit");
		for (uint32_t k = 0; k < p.h.len; k++)
			g->rxbuf[(g->rx_head + g->rx_len + k) % ECHO_GUEST_BUF] = p.data[k];
		g->rx_len += p.h.len;
	}
	g->guest_full += g->rx_len == ECHO_GUEST_BUF;
	return any;
}

/* The echo program reads once its last read is all echoed; the guest then
 * tells the device its room, as Linux does when little of it is left. */
static bool echo_guest_read(struct echo_guest *g)
{
	if (g->app_len || !g->rx_len)
		return false;
	size_t n = g->rx_len < ECHO_APP_BUF ? g->rx_len : ECHO_APP_BUF;
	for (size_t k = 0; k < n; k++)
		g->app[k] = g->rxbuf[(g->rx_head + k) % ECHO_GUEST_BUF];
	g->rx_head = (g->rx_head + n) % ECHO_GUEST_BUF;
	g->rx_len -= n;
	g->app_off = 0;
	g->app_len = n;
	g->c.rx_cnt += (uint32_t)n;
	tx_send(gc_hdr(&g->c, VSOCK_OP_CREDIT_UPDATE), NULL, 0);
	return true;
}

/* Echoes what the device's credit allows, in packets of at most 4 KiB. */
static bool echo_guest_write(struct echo_guest *g)
{
	bool any = false;
	while (g->app_len) {
		uint32_t room = g->c.peer_buf - (g->c.tx_cnt - g->c.peer_fwd);
		if (!room) {
			g->device_full++;
			break;
		}
		uint32_t k = g->app_len < 4096 ? (uint32_t)g->app_len : 4096;
		k = k < room ? k : room;
		tx_send(gc_hdr(&g->c, VSOCK_OP_RW), g->app + g->app_off, k);
		g->c.tx_cnt += k;
		g->app_off += k;
		g->app_len -= k;
		g->echoed += k;
		any = true;
	}
	return any;
}

Test(virtio_vsock, long_echo_through_full_buffers_both_ways, .timeout = 60)
{
	start();
	post_rx(64);
	static struct echo_guest g;
	memset(&g, 0, sizeof(g));
	int fd = host_connect_in(&g.c, 1234);
	g.c.buf_alloc = ECHO_GUEST_BUF;
	tx_send(gc_hdr(&g.c, VSOCK_OP_CREDIT_UPDATE), NULL, 0);   /* before any byte: its real size */
	static uint8_t out[ECHO_BYTES], back[ECHO_BYTES];
	fill(out, sizeof(out), 9);
	static struct echo_host h;
	h = (struct echo_host){ .fd = fd, .out = out, .back = back };
	pthread_t t;
	cr_assert_eq(pthread_create(&t, NULL, echo_host_main, &h), 0);
	uint64_t progress = now_ms();
	while (!atomic_load(&h.done)) {
		bool moved = echo_guest_rx(&g);
		moved |= echo_guest_read(&g);
		moved |= echo_guest_write(&g);
		if (moved)
			progress = now_ms();
		else
			usleep(100);
		if (now_ms() - progress > TEST_TIMEOUT_MS)
			break;
	}
	bool stalled = !atomic_load(&h.done);
	atomic_store(&h.done, true);
	pthread_join(t, NULL);
	cr_assert(!stalled && !h.err && h.got == ECHO_BYTES,
		  "stalled (%d) or failed (%d): host sent %zu, got %zu back; guest echoed %zu, holds %zu + %zu", stalled,
		  h.err, h.sent, h.got, g.echoed, g.rx_len, g.app_len);
	cr_assert_arr_eq(back, out, ECHO_BYTES);
	cr_assert_gt(g.guest_full, 0, "the guest's buffer never filled: the test did not stop the device");
	cr_assert_gt(g.device_full, 0, "the device's credit never ran out: the test did not fill its buffer");
	struct virtio_vsock_stats st;
	virtio_vsock_stats(dev, &st);
	cr_assert_eq(st.errors, 0);
	cr_assert_eq(st.resets, 0);
	cr_assert_str_empty(logged());
	close(fd);
}

/* ---- hostile and broken guests ---- */

Test(virtio_vsock, packets_of_no_connection_get_an_rst)
{
	start();
	post_rx(8);
	tx_send(ghdr(VSOCK_OP_RW, 6000, 1234), "abc", 3);
	struct pkt p;
	rx_expect(VSOCK_OP_RST, 1234, 6000, &p);
	tx_send(ghdr(VSOCK_OP_SHUTDOWN, 6001, 1235), NULL, 0);
	rx_expect(VSOCK_OP_RST, 1235, 6001, &p);
	tx_send(ghdr(VSOCK_OP_RESPONSE, 6002, HOST_PORT_FIRST), NULL, 0);
	rx_expect(VSOCK_OP_RST, HOST_PORT_FIRST, 6002, &p);
	tx_send(ghdr(VSOCK_OP_CREDIT_REQUEST, 6003, 1), NULL, 0);
	rx_expect(VSOCK_OP_RST, 1, 6003, &p);
	/* never an RST for an RST */
	tx_send(ghdr(VSOCK_OP_RST, 6004, 1234), NULL, 0);
	rx_none(100);
	struct virtio_vsock_stats st;
	virtio_vsock_stats(dev, &st);
	cr_assert_eq(st.resets, 4);
	cr_assert_eq(st.errors, 0, "not malformed");
}

Test(virtio_vsock, malformed_packets_are_dropped_and_the_device_keeps_working)
{
	start();
	post_rx(8);
	uint8_t junk[20] = { 0 };
	tx_add_raw(junk, 20);
	virtq_driver_kick(&drv[TXQ]);
	virtq_driver_wait_used(&drv[TXQ]);
	cr_assert(strstr(logged(), "vsock0: TX chain (head 0) has 20 readable bytes, fewer than the 44-byte header; "
			 "dropped"), "logged: %s", logged());
	struct pkt p;
	/* wrong cids: nobody to answer */
	struct vsock_hdr h = ghdr(VSOCK_OP_REQUEST, 5000, 1234);
	h.src_cid = CID + 1;
	tx_send(h, NULL, 0);
	h = ghdr(VSOCK_OP_REQUEST, 5000, 1234);
	h.dst_cid = 7;
	tx_send(h, NULL, 0);
	rx_none(100);
	/* wrong type, unknown op, too long, truncated, payload on a control
	 * packet: each answered with an RST */
	h = ghdr(VSOCK_OP_REQUEST, 5001, 1234);
	h.type = 2;
	tx_send(h, NULL, 0);
	rx_expect(VSOCK_OP_RST, 1234, 5001, &p);
	h = ghdr(9, 5002, 1234);
	tx_send(h, NULL, 0);
	rx_expect(VSOCK_OP_RST, 1234, 5002, &p);
	static uint8_t big[VSOCK_MAX_PAYLOAD + 1];
	tx_send(ghdr(VSOCK_OP_RW, 5003, 1234), big, sizeof(big));
	rx_expect(VSOCK_OP_RST, 1234, 5003, &p);
	uint8_t raw[VSOCK_HDR_SIZE + 10];
	h = ghdr(VSOCK_OP_RW, 5004, 1234);
	h.len = 11;   /* one byte more than the chain holds */
	vsock_hdr_encode(&h, raw);
	tx_add_raw(raw, sizeof(raw));
	virtq_driver_kick(&drv[TXQ]);
	virtq_driver_wait_used(&drv[TXQ]);
	rx_expect(VSOCK_OP_RST, 1234, 5004, &p);
	h = ghdr(VSOCK_OP_REQUEST, 5005, 1234);
	tx_send(h, "x", 1);
	rx_expect(VSOCK_OP_RST, 1234, 5005, &p);
	/* a bad RST is not answered */
	h = ghdr(VSOCK_OP_RST, 5006, 1234);
	h.type = 0;
	tx_send(h, NULL, 0);
	rx_none(100);
	struct virtio_vsock_stats st;
	virtio_vsock_stats(dev, &st);
	cr_assert_eq(st.errors, 9);
	cr_assert_eq(atomic_load(&irq_log.needs_reset_calls), 0);
	/* and it still works */
	int lfd = host_listen(1234);
	struct gconn c;
	int hfd = gc_connect(&c, lfd, 5007, 1234);
	gc_send(&c, (const uint8_t *)"ok", 2);
	char b[2];
	host_read(hfd, b, 2);
	close(hfd);
	close(lfd);
}

/* RX chains the device cannot use go back empty, and the next is used. */
Test(virtio_vsock, unusable_rx_chains_are_given_back)
{
	start();
	post(RXQ, 1, 10);   /* shorter than a header */
	/* one with a device-readable descriptor */
	uint64_t a = virtq_driver_alloc(&drv[RXQ], 64), b = virtq_driver_alloc(&drv[RXQ], RX_BUF);
	struct virtq_seg segs[2] = { { a, 64, false }, { b, RX_BUF, true } };
	virtq_driver_add(&drv[RXQ], segs, 2);
	post_rx(1);
	tx_send(ghdr(VSOCK_OP_RW, 6000, 1234), NULL, 0);
	struct virtq_used_elem e = virtq_driver_wait_used(&drv[RXQ]);
	cr_assert_eq(e.len, 0, "the short one, unused");
	e = virtq_driver_wait_used(&drv[RXQ]);
	cr_assert_eq(e.len, 0, "the readable one, unused");
	e = virtq_driver_wait_used(&drv[RXQ]);
	cr_assert_eq(e.len, VSOCK_HDR_SIZE, "the RST in the good one");
	struct vsock_hdr h;
	vsock_hdr_decode(gpa(buf_gpa[RXQ][e.id]), &h);
	cr_assert_eq(h.op, VSOCK_OP_RST);
	cr_assert_eq(atomic_load(&irq_log.needs_reset_calls), 0);
	cr_assert(strstr(logged(), "vsock0: RX chain (head 0) is shorter than the 44-byte header; given back unused"),
		  "logged: %s", logged());
}

Test(virtio_vsock, broken_ring_needs_reset)
{
	start();
	post_rx(2);
	/* avail->idx far past what the ring can hold */
	struct virtq_avail *avail = virtq_driver_avail(&drv[TXQ]);
	__atomic_store_n(&avail->idx, htole16(QSIZE + 10), __ATOMIC_RELEASE);
	virtq_driver_kick(&drv[TXQ]);
	wait_count(&irq_log.needs_reset_calls, 1, "needs_reset");
	/* a reset and a new driver: working again */
	virtio_vsock_ops.reset(dev);
	init_queues();
	activate(dev);
	post_rx(2);
	tx_send(ghdr(VSOCK_OP_RW, 6000, 1234), NULL, 0);
	struct pkt p;
	rx_expect(VSOCK_OP_RST, 1234, 6000, &p);
}

/* A guest past its credit has that connection reset; another one goes on. */
Test(virtio_vsock, credit_overrun_resets_only_that_connection)
{
	start();
	int lfd = host_listen(1234);
	post_rx(2);
	rx_refill = false;   /* no buffer left when A overruns: no credit update can come between */
	struct gconn a, b;
	int ha = gc_connect(&a, lfd, 5000, 1234);
	int hb = gc_connect(&b, lfd, 5001, 1234);
	static uint8_t out[DEV_BUF];
	fill(out, sizeof(out), 6);
	/* all 64 KiB of credit, then one byte more, in one batch */
	tx_add(gc_hdr(&a, VSOCK_OP_RW), out, DEV_BUF);
	tx_add(gc_hdr(&a, VSOCK_OP_RW), "!", 1);
	virtq_driver_kick(&drv[TXQ]);
	virtq_driver_wait_used(&drv[TXQ]);
	virtq_driver_wait_used(&drv[TXQ]);
	rx_refill = true;
	post_rx(8);
	struct pkt p;
	gc_rx(&a, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_RST, "op %u", p.h.op);
	/* what was within the credit reached the host; then it was closed */
	static uint8_t in[DEV_BUF];
	host_read(ha, in, DEV_BUF);
	cr_assert_arr_eq(in, out, DEV_BUF);
	host_assert_closed(ha);
	cr_assert(strstr(logged(), "vsock0: guest port 5000 to host port 1234: data beyond the credit it was given; "
			 "connection reset"), "logged: %s", logged());
	/* B: both ways */
	b.peer_buf = DEV_BUF;
	gc_send(&b, (const uint8_t *)"still here", 10);
	char got[10];
	host_read(hb, got, 10);
	cr_assert_arr_eq(got, "still here", 10);
	host_write(hb, "yes", 3);
	uint8_t y[3];
	gc_recv(&b, y, 3);
	cr_assert_arr_eq(y, "yes", 3);
	struct virtio_vsock_stats st;
	virtio_vsock_stats(dev, &st);
	cr_assert_eq(st.errors, 1);
	close(ha);
	close(hb);
	close(lfd);
}

/* A guest that never reads keeps the host's bytes in the host's socket:
 * the device holds no more than the RX buffers the guest gave. */
Test(virtio_vsock, a_guest_that_never_reads_costs_nothing)
{
	start();
	int lfd = host_listen(1234);
	post_rx(2);
	rx_refill = false;
	struct gconn c;
	int hfd = gc_connect(&c, lfd, 5000, 1234);
	fcntl(hfd, F_SETFL, O_NONBLOCK);
	static uint8_t chunk[65536];
	size_t sent = 0;
	for (int i = 0; i < 64; i++) {   /* until the socket is full */
		ssize_t w = send(hfd, chunk, sizeof(chunk), MSG_NOSIGNAL);
		if (w <= 0)
			break;
		sent += (size_t)w;
	}
	cr_assert_lt(sent, 64u * sizeof(chunk), "a socket that never fills");
	struct pkt p;
	gc_rx(&c, &p);   /* the one RX buffer left */
	cr_assert_eq(p.h.op, VSOCK_OP_RW);
	rx_none(100);
	close(hfd);
	close(lfd);
}

Test(virtio_vsock, connection_limit)
{
	start();
	int lfd = host_listen(7000);
	post_rx(8);
	struct pkt p;
	for (uint32_t i = 0; i < 256; i++) {
		tx_send(ghdr(VSOCK_OP_REQUEST, 10000 + i, 7000), NULL, 0);
		rx_expect(VSOCK_OP_RESPONSE, 7000, 10000 + i, &p);
	}
	tx_send(ghdr(VSOCK_OP_REQUEST, 20000, 7000), NULL, 0);
	rx_expect(VSOCK_OP_RST, 7000, 20000, &p);
	cr_assert(strstr(logged(), "vsock0: guest connection to host port 7000 refused: 256 connections open, the most"),
		  "logged: %s", logged());
	/* a host client is refused too (closed at once: its line may not even go) */
	int fd = host_client();
	(void)!send(fd, "CONNECT 5\n", 10, MSG_NOSIGNAL);
	host_assert_closed(fd);
	close(fd);
	/* one closes: room for one more */
	tx_send(ghdr(VSOCK_OP_RST, 10000, 7000), NULL, 0);
	tx_send(ghdr(VSOCK_OP_REQUEST, 20001, 7000), NULL, 0);
	rx_expect(VSOCK_OP_RESPONSE, 7000, 20001, &p);
	struct virtio_vsock_stats st;
	virtio_vsock_stats(dev, &st);
	cr_assert_eq(st.connections, 257);
	close(lfd);
}

/* ---- shutdown ---- */

Test(virtio_vsock, half_closes_then_both)
{
	start();
	int lfd = host_listen(1234);
	post_rx(8);
	struct gconn c;
	int hfd = gc_connect(&c, lfd, 5000, 1234);
	/* the host is done sending: SHUTDOWN(SEND) after its last bytes */
	host_write(hfd, "last", 4);
	shutdown(hfd, SHUT_WR);
	uint8_t in[4];
	gc_recv(&c, in, 4);
	struct pkt p;
	gc_rx_skip_credit(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_SHUTDOWN);
	cr_assert_eq(p.h.flags, VSOCK_SHUTDOWN_SEND);
	/* the guest still sends */
	gc_send(&c, (const uint8_t *)"more", 4);
	char got[4];
	host_read(hfd, got, 4);
	cr_assert_arr_eq(got, "more", 4);
	/* now it is done too: the host reads EOF, the device says both ways
	 * are shut and waits for the guest's RST */
	struct vsock_hdr sh = gc_hdr(&c, VSOCK_OP_SHUTDOWN);
	sh.flags = VSOCK_SHUTDOWN_SEND;
	tx_send(sh, NULL, 0);
	host_assert_closed(hfd);
	gc_rx_skip_credit(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_SHUTDOWN);
	cr_assert_eq(p.h.flags, VSOCK_SHUTDOWN_BOTH);
	tx_send(gc_hdr(&c, VSOCK_OP_RST), NULL, 0);
	/* gone: a packet on those ports gets an RST */
	tx_send(gc_hdr(&c, VSOCK_OP_RW), "x", 1);
	gc_rx(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_RST);
	close(hfd);
	close(lfd);
}

Test(virtio_vsock, host_close_gives_shutdown_both_and_an_rst_after_2_s)
{
	start();
	int lfd = host_listen(1234);
	post_rx(8);
	struct gconn c;
	int hfd = gc_connect(&c, lfd, 5000, 1234);
	host_write(hfd, "bye", 3);
	close(hfd);
	uint8_t in[3];
	gc_recv(&c, in, 3);
	cr_assert_arr_eq(in, "bye", 3);
	struct pkt p;
	gc_rx_skip_credit(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_SHUTDOWN);
	cr_assert_eq(p.h.flags, VSOCK_SHUTDOWN_BOTH);
	/* a guest that never sends its RST gets one */
	uint64_t t0 = now_ms();
	gc_rx_skip_credit(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_RST);
	uint64_t took = now_ms() - t0;
	cr_assert(took >= 1500, "RST after %llu ms", (unsigned long long)took);
	close(lfd);
}

Test(virtio_vsock, guest_rcv_shutdown_reaches_the_host)
{
	start();
	int lfd = host_listen(1234);
	post_rx(8);
	struct gconn c;
	int hfd = gc_connect(&c, lfd, 5000, 1234);
	struct vsock_hdr sh = gc_hdr(&c, VSOCK_OP_SHUTDOWN);
	sh.flags = VSOCK_SHUTDOWN_RCV;
	tx_send(sh, NULL, 0);
	/* the host's writes fail: nobody will read them */
	uint64_t deadline = now_ms() + TEST_TIMEOUT_MS;
	while (send(hfd, "x", 1, MSG_NOSIGNAL) == 1)
		cr_assert_lt(now_ms(), deadline);
	cr_assert_eq(errno, EPIPE);
	rx_none(50);
	/* the other way still works */
	gc_send(&c, (const uint8_t *)"hi", 2);
	char got[2];
	host_read(hfd, got, 2);
	cr_assert_arr_eq(got, "hi", 2);
	close(hfd);
	close(lfd);
}

/* ---- life cycle ---- */

Test(virtio_vsock, pause_and_resume_keep_a_connection)
{
	start();
	int lfd = host_listen(1234);
	post_rx(8);
	struct gconn c;
	int hfd = gc_connect(&c, lfd, 5000, 1234);
	cr_assert_eq(census_threads("vsock0", 1), 1);
	virtio_vsock_ops.pause(dev);
	cr_assert_eq(census_threads("vsock0", 0), 0);
	/* nothing moves while paused, and nothing is lost */
	host_write(hfd, "while paused", 12);
	tx_add(gc_hdr(&c, VSOCK_OP_RW), "queued", 6);
	virtq_driver_kick(&drv[TXQ]);
	rx_none(100);
	cr_assert_not(virtq_driver_has_used(&drv[TXQ]));
	host_assert_quiet(hfd, 10);
	cr_assert_eq(virtio_vsock_ops.resume(dev), 0);
	cr_assert_eq(census_threads("vsock0", 1), 1);
	virtq_driver_wait_used(&drv[TXQ]);
	c.tx_cnt += 6;
	char got[6];
	host_read(hfd, got, 6);
	cr_assert_arr_eq(got, "queued", 6);
	uint8_t in[12];
	gc_recv(&c, in, 12);
	cr_assert_arr_eq(in, "while paused", 12);
	/* pausing twice, resuming twice: harmless */
	virtio_vsock_ops.pause(dev);
	virtio_vsock_ops.pause(dev);
	cr_assert_eq(virtio_vsock_ops.resume(dev), 0);
	cr_assert_eq(virtio_vsock_ops.resume(dev), 0);
	cr_assert_eq(census_threads("vsock0", 1), 1);
	gc_send(&c, (const uint8_t *)"again", 5);
	char again[5];
	host_read(hfd, again, 5);
	cr_assert_arr_eq(again, "again", 5);
	close(hfd);
	close(lfd);
}

Test(virtio_vsock, reset_closes_connections_and_keeps_the_listener)
{
	start();
	int lfd = host_listen(1234);
	post_rx(8);
	struct gconn c, h;
	int out = gc_connect(&c, lfd, 5000, 1234);
	int in = host_connect_in(&h, 52);
	virtio_vsock_ops.reset(dev);
	cr_assert_eq(census_threads("vsock0", 0), 0);
	host_assert_closed(out);
	host_assert_closed(in);
	close(out);
	close(in);
	/* a client of the inactive device waits in the backlog; the next
	 * driver hears of it */
	int fd = host_client();
	host_write(fd, "CONNECT 9\n", 10);
	init_queues();
	activate(dev);
	post_rx(4);
	struct pkt p;
	rx_next(&p);
	cr_assert_eq(p.h.op, VSOCK_OP_REQUEST);
	cr_assert_eq(p.h.dst_port, 9);
	/* the old connections are gone */
	tx_send(gc_hdr(&c, VSOCK_OP_RW), "x", 1);
	rx_expect(VSOCK_OP_RST, 1234, 5000, &p);
	close(fd);
	close(lfd);
}

Test(virtio_vsock, no_rx_or_tx_queue_no_thread)
{
	dev = create_at(uds, CID);
	init_queues();
	queues[TXQ].ready = false;
	activate(dev);
	cr_assert_eq(census_threads("vsock0", 0), 0);
	cr_assert(strstr(logged(), "vsock0: the driver did not set up the rx and tx queues; no traffic"));
	virtio_vsock_ops.pause(dev);
	cr_assert_eq(virtio_vsock_ops.resume(dev), 0);
	cr_assert_eq(census_threads("vsock0", 0), 0);
	virtio_vsock_ops.reset(dev);
}

static struct virtio_vsock *loaded_device(const char *path, uint64_t cid, const struct snap_writer *w, char *err,
					  size_t errlen, int *rc)
{
	struct virtio_vsock *v = create_at(path, cid);
	struct snap_reader r;
	snap_reader_init(&r, w->buf, w->len, err, errlen);
	*rc = virtio_vsock_ops.load(v, &r);
	return v;
}

Test(virtio_vsock, transport_reset_event_after_load)
{
	dev = create_at(uds, CID);
	struct snap_writer w = { 0 };
	virtio_vsock_ops.save(dev, &w);
	cr_assert_not(w.err);
	cr_assert_eq(w.len, 8);
	char path[200], err[256] = "";
	int rc;
	/* another cid is refused, saying both */
	snprintf(path, sizeof(path), "%s/other.sock", dir);
	struct virtio_vsock *other = loaded_device(path, CID + 1, &w, err, sizeof(err), &rc);
	cr_assert_eq(rc, -1);
	cr_assert(strstr(err, "the snapshot's vsock had guest cid 3, this one has 4"), "err: %s", err);
	virtio_vsock_destroy(other);
	/* the same cid loads; its first activation tells the guest */
	snprintf(path, sizeof(path), "%s/restored.sock", dir);
	err[0] = 0;
	struct virtio_vsock *v = loaded_device(path, CID, &w, err, sizeof(err), &rc);
	cr_assert_eq(rc, 0, "%s", err);
	init_queues();
	memset(gpa(BUF_GPA(EVQ)), 0xff, 64);   /* what the device writes shows */
	post(EVQ, 2, 8);
	activate(v);
	struct virtq_used_elem e = virtq_driver_wait_used(&drv[EVQ]);
	cr_assert_eq(e.len, 4);
	const uint8_t *ev = gpa(buf_gpa[EVQ][e.id]);
	cr_assert(ev[0] == 0 && ev[1] == 0 && ev[2] == 0 && ev[3] == 0, "id VIRTIO_VSOCK_EVENT_TRANSPORT_RESET");
	wait_count(&irq_log.queue_calls[EVQ], 1, "event interrupt");
	virtq_driver_assert_no_used(&drv[EVQ], 100);   /* one event */
	/* the next activation (no load since) sends none */
	virtio_vsock_ops.reset(v);
	init_queues();
	post(EVQ, 2, 8);
	activate(v);
	virtq_driver_assert_no_used(&drv[EVQ], 150);
	virtio_vsock_destroy(v);
	snap_writer_free(&w);
}

/* An event waits for the guest's event buffer. */
Test(virtio_vsock, transport_reset_event_waits_for_a_buffer)
{
	dev = create_at(uds, CID);
	struct snap_writer w = { 0 };
	virtio_vsock_ops.save(dev, &w);
	struct snap_reader r;
	char err[128] = "";
	snap_reader_init(&r, w.buf, w.len, err, sizeof(err));
	cr_assert_eq(virtio_vsock_ops.load(dev, &r), 0);
	snap_writer_free(&w);
	init_queues();
	activate(dev);
	post(EVQ, 1, 2);   /* too short for the event: given back unused */
	struct virtq_used_elem e = virtq_driver_wait_used(&drv[EVQ]);
	cr_assert_eq(e.len, 0);
	post(EVQ, 1, 4);
	e = virtq_driver_wait_used(&drv[EVQ]);
	cr_assert_eq(e.len, 4);
}

/* ---- the thread under its seccomp filter ---- */

/* Everything the thread does, under THREAD_ROLE_VSOCK's allow list: a call
 * missing from it ends this process with status 159 (the test fails). */
Test(virtio_vsock, the_thread_keeps_to_its_seccomp_allow_list)
{
	const struct thread_starter *starter = sandboxed_starter(THREAD_ROLE_VSOCK);
	dev = create_with(uds, CID, starter);
	init_queues();
	activate(dev);
	post_rx(16);
	int lfd = host_listen(1234);
	/* guest to host: connect, data both ways past the credit, half and full closes */
	struct gconn c;
	int hfd = gc_connect(&c, lfd, 5000, 1234);
	static uint8_t out[100000], in[100000];
	fill(out, sizeof(out), 7);
	gc_send(&c, out, sizeof(out));
	host_read(hfd, in, sizeof(in));
	cr_assert_arr_eq(in, out, sizeof(out));
	host_write(hfd, out, 30000);
	gc_recv(&c, in, 30000);
	host_write(hfd, "end", 3);
	close(hfd);   /* hang-up: poll, SHUTDOWN both, the guest's RST */
	uint8_t e[3];
	gc_recv(&c, e, 3);
	struct pkt p;
	gc_rx_skip_credit(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_SHUTDOWN);
	tx_send(gc_hdr(&c, VSOCK_OP_RST), NULL, 0);
	/* a guest close with a half-closed host */
	hfd = gc_connect(&c, lfd, 5001, 1234);
	struct vsock_hdr sh = gc_hdr(&c, VSOCK_OP_SHUTDOWN);
	sh.flags = VSOCK_SHUTDOWN_RCV;
	tx_send(sh, NULL, 0);
	sh.flags = VSOCK_SHUTDOWN_BOTH;
	tx_send(sh, NULL, 0);
	gc_rx_skip_credit(&c, &p);
	cr_assert_eq(p.h.op, VSOCK_OP_RST);
	host_assert_closed(hfd);
	close(hfd);
	/* refused connects, a malformed packet (a log line), a packet of no connection */
	tx_send(ghdr(VSOCK_OP_REQUEST, 5002, 999), NULL, 0);
	rx_expect(VSOCK_OP_RST, 999, 5002, &p);
	uint8_t junk[8] = { 0 };
	tx_add_raw(junk, sizeof(junk));
	virtq_driver_kick(&drv[TXQ]);
	virtq_driver_wait_used(&drv[TXQ]);
	tx_send(ghdr(VSOCK_OP_RW, 5003, 999), "x", 1);
	rx_expect(VSOCK_OP_RST, 999, 5003, &p);
	/* host to guest: accept, the line, OK, data; a bad line */
	struct gconn h;
	int fd = host_connect_in(&h, 52);
	uint8_t d4[4];
	host_write(fd, "data", 4);
	gc_recv(&h, d4, 4);
	int bad = host_client();
	host_write(bad, "nope\n", 5);
	host_assert_closed(bad);
	close(bad);
	/* pause, resume (a new thread, sandboxed too), reset */
	virtio_vsock_ops.pause(dev);
	host_write(fd, "z", 1);
	cr_assert_eq(virtio_vsock_ops.resume(dev), 0);
	gc_recv(&h, e, 1);
	gc_send(&h, (const uint8_t *)"ok", 2);
	char ok[2];
	host_read(fd, ok, 2);
	virtio_vsock_ops.reset(dev);
	host_assert_closed(fd);
	close(fd);
	close(lfd);
	cr_assert_eq(atomic_load(&sandboxed_threads), 2);
	virtio_vsock_destroy(dev);   /* on this (unfiltered) thread */
	dev = NULL;
	sandbox_destroy(&sandbox);
}
