#include "devices/virtio/blk_uring.h"

#include <errno.h>
#include <liburing.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

struct blk_uring {
	struct io_uring ring;
	unsigned depth;
	unsigned in_flight;      /* queued or submitted, not reaped */
};

/* What an io_uring_setup error most likely means here, for the one line. */
static const char *setup_hint(int e)
{
	switch (e) {
	case ENOSYS:
		return " (no io_uring in this kernel, or a seccomp filter around this process refuses it)";
	case EPERM:
		return " (disabled by sysctl kernel.io_uring_disabled)";
	case ENOMEM:
		return " (RLIMIT_MEMLOCK too low for the ring? kernels before 5.12 count it)";
	case EINVAL:
		return " (a kernel older than 5.10?)";
	default:
		return "";
	}
}

/* io_uring_register(2) itself: Debian 12's liburing.so (2.3) does not
 * export io_uring_register_restrictions and io_uring_enable_rings (its
 * static library does), so these two are made directly. Returns 0 or -errno. */
static int uring_register(struct blk_uring *u, unsigned op, const void *arg, unsigned nr)
{
	long r = syscall(__NR_io_uring_register, u->ring.ring_fd, op, arg, nr);
	return r < 0 ? -errno : 0;
}

/* Makes the ring whole while it is disabled: the image as the only fixed
 * file, then the restrictions, then enabled. Returns 0 or -errno with err
 * filled. */
static int seal(struct blk_uring *u, int fd, char *err, size_t errlen)
{
	int r = io_uring_register_files(&u->ring, &fd, 1);
	if (r < 0) {
		snprintf(err, errlen, "io_uring_register_files: %s", strerror(-r));
		return r;
	}
	/* No IORING_RESTRICTION_REGISTER_OP entry: once enabled, the ring
	 * takes no io_uring_register operation at all (no other file, no
	 * buffers, no eventfd). IOSQE_IO_LINK and the rest are not allowed:
	 * nothing here links requests. */
	struct io_uring_restriction res[] = {
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV },
		{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_ALLOWED, .sqe_flags = IOSQE_FIXED_FILE },
		{ .opcode = IORING_RESTRICTION_SQE_FLAGS_REQUIRED, .sqe_flags = IOSQE_FIXED_FILE },
	};
	r = uring_register(u, IORING_REGISTER_RESTRICTIONS, res, sizeof(res) / sizeof(res[0]));
	if (r < 0) {
		snprintf(err, errlen, "io_uring_register(RESTRICTIONS): %s%s", strerror(-r),
			 r == -EINVAL ? " (a kernel older than 5.10?)" : "");
		return r;
	}
	r = uring_register(u, IORING_REGISTER_ENABLE_RINGS, NULL, 0);
	if (r < 0) {
		snprintf(err, errlen, "io_uring_register(ENABLE_RINGS): %s", strerror(-r));
		return r;
	}
	return 0;
}

struct blk_uring *blk_uring_create(int fd, unsigned depth, char *err, size_t errlen)
{
	if (depth < 1 || depth > BLK_URING_MAX_DEPTH) {
		snprintf(err, errlen, "io_uring: depth %u: must be 1 to %u", depth, BLK_URING_MAX_DEPTH);
		errno = EINVAL;
		return NULL;
	}
	struct blk_uring *u = calloc(1, sizeof(*u));
	if (!u) {
		snprintf(err, errlen, "io_uring: out of memory");
		errno = ENOMEM;
		return NULL;
	}
	u->depth = depth;
	/* SQ entries: depth (a request takes one, and at most depth are
	 * queued or in flight); CQ entries: the kernel's default twice that,
	 * so the completion ring can never overflow. */
	struct io_uring_params params = { .flags = IORING_SETUP_R_DISABLED };
	int r = io_uring_queue_init_params(depth, &u->ring, &params);
	if (r < 0) {
		snprintf(err, errlen, "io_uring_setup: %s%s", strerror(-r), setup_hint(-r));
		free(u);
		errno = -r;
		return NULL;
	}
	r = seal(u, fd, err, errlen);
	if (r < 0) {
		io_uring_queue_exit(&u->ring);
		free(u);
		errno = -r;
		return NULL;
	}
	return u;
}

void blk_uring_destroy(struct blk_uring *u)
{
	if (!u)
		return;
	/* Whatever is still in flight (nothing, when its thread waited before
	 * it stopped) the kernel cancels or finishes as the ring goes. */
	io_uring_queue_exit(&u->ring);
	free(u);
}

int blk_uring_fd(const struct blk_uring *u)
{
	return u->ring.ring_fd;
}

unsigned blk_uring_in_flight(const struct blk_uring *u)
{
	return u->in_flight;
}

unsigned blk_uring_depth(const struct blk_uring *u)
{
	return u->depth;
}

/* The next SQE for the image (fixed file 0), or NULL when depth are in
 * flight. The SQ has depth entries and every queued request counts as in
 * flight until reaped, so one is free whenever in_flight < depth. */
static struct io_uring_sqe *next_sqe(struct blk_uring *u)
{
	if (u->in_flight >= u->depth)
		return NULL;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	if (sqe)
		u->in_flight++;
	return sqe;
}

/* One operation on the fixed file (index 0), tagged. fsync_flags shares
 * the SQE's field with the rw flags, 0 for reads and writes. */
static int queue_op(struct blk_uring *u, int op, const struct iovec *iov, unsigned n, uint64_t off,
		    unsigned fsync_flags, uint64_t tag)
{
	struct io_uring_sqe *sqe = next_sqe(u);
	if (!sqe)
		return -EBUSY;
	io_uring_prep_rw(op, sqe, 0, iov, n, off);
	sqe->fsync_flags = fsync_flags;
	sqe->flags = IOSQE_FIXED_FILE;
	io_uring_sqe_set_data64(sqe, tag);
	return 0;
}

int blk_uring_readv(struct blk_uring *u, const struct iovec *iov, unsigned n, uint64_t off, uint64_t tag)
{
	return queue_op(u, IORING_OP_READV, iov, n, off, 0, tag);
}

int blk_uring_writev(struct blk_uring *u, const struct iovec *iov, unsigned n, uint64_t off, uint64_t tag)
{
	return queue_op(u, IORING_OP_WRITEV, iov, n, off, 0, tag);
}

int blk_uring_fdatasync(struct blk_uring *u, uint64_t tag)
{
	return queue_op(u, IORING_OP_FSYNC, NULL, 0, 0, IORING_FSYNC_DATASYNC, tag);
}

int blk_uring_submit(struct blk_uring *u)
{
	for (int tries = 0; tries < 16; tries++) {
		int r = io_uring_submit(&u->ring);
		if (r != -EINTR)
			return r < 0 ? r : 0;
	}
	return -EINTR;
}

unsigned blk_uring_reap(struct blk_uring *u, struct blk_uring_done *out, unsigned max)
{
	struct io_uring_cqe *cqes[32];
	unsigned got = 0;
	while (got < max) {
		unsigned want = max - got < 32 ? max - got : 32;
		unsigned n = io_uring_peek_batch_cqe(&u->ring, cqes, want);
		for (unsigned i = 0; i < n; i++)
			out[got + i] = (struct blk_uring_done){ io_uring_cqe_get_data64(cqes[i]), cqes[i]->res };
		io_uring_cq_advance(&u->ring, n);
		got += n;
		/* A completion that is not one of ours (it cannot be: only this
		 * engine queues) would make the count wrong: never below 0. */
		u->in_flight -= n < u->in_flight ? n : u->in_flight;
		if (n < want)
			break;
	}
	return got;
}

int blk_uring_wait(struct blk_uring *u)
{
	if (!u->in_flight)
		return 0;
	for (int tries = 0; tries < 16; tries++) {
		int r = io_uring_submit_and_wait(&u->ring, 1);
		if (r != -EINTR)
			return r < 0 ? r : 0;
	}
	return -EINTR;
}

struct io_uring *blk_uring_ring(struct blk_uring *u)
{
	return &u->ring;
}
