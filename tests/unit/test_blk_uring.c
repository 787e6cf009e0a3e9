/* The io_uring block engine (devices/virtio/blk_uring.c) alone, against a
 * temporary file: requests land, many in flight, short reads at the end of
 * the file, and the ring's restrictions (only READV, WRITEV and FSYNC, only
 * on the one fixed file, no registration once enabled), as a compromised
 * thread holding the ring would meet them. Where the kernel refuses io_uring
 * the tests that need a ring skip and say why; the refusals themselves are
 * tested on a thread whose seccomp filter makes io_uring_setup fail. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "devices/virtio/blk_uring.h"
#include "proc_census.h"
#include "uring_refused.h"

#define FILE_SIZE (1u << 20)

static char path[64], other_path[64];
static int fd = -1, other_fd = -1;
static struct blk_uring *u;

static uint8_t pattern(uint64_t off)
{
	return (uint8_t)(off * 13 + off / 4096);
}

static int temp_file(char *p, size_t len, uint64_t size, uint8_t fill_or_pattern)
{
	snprintf(p, len, "/tmp/minivmm-uring-test-XXXXXX");
	int f = mkstemp(p);
	cr_assert_geq(f, 0);
	uint8_t *buf = malloc(size ? size : 1);
	cr_assert_not_null(buf);
	for (uint64_t i = 0; i < size; i++)
		buf[i] = fill_or_pattern ? fill_or_pattern : pattern(i);
	cr_assert_eq(pwrite(f, buf, size, 0), (ssize_t)size);
	free(buf);
	return f;
}

static void setup(void)
{
	fd = temp_file(path, sizeof(path), FILE_SIZE, 0);
	other_fd = temp_file(other_path, sizeof(other_path), 4096, 0x5e);   /* a "secret" the ring must not reach */
	u = NULL;
}

static void teardown(void)
{
	blk_uring_destroy(u);
	close(fd);
	close(other_fd);
	unlink(path);
	unlink(other_path);
}

TestSuite(blk_uring, .init = setup, .fini = teardown);

/* A ring on the test file, or the test skips saying why the kernel refused. */
static struct blk_uring *ring_or_skip(unsigned depth)
{
	char err[256] = "";
	struct blk_uring *r = blk_uring_create(fd, depth, err, sizeof(err));
	if (!r) {
		int e = errno;
		cr_assert(e == ENOSYS || e == EPERM || e == ENOMEM || e == EINVAL, "unexpected failure: %s", err);
		cr_skip_test("the kernel refuses io_uring here: %s", err);
	}
	return r;
}

/* Waits for and reaps exactly one completion. */
static struct blk_uring_done one(void)
{
	struct blk_uring_done d;
	for (int i = 0; i < 1000; i++) {
		if (blk_uring_reap(u, &d, 1) == 1)
			return d;
		cr_assert_eq(blk_uring_wait(u), 0);
	}
	cr_assert_fail("no completion");
	return d;
}

/* Raw SQEs, as a thread that went wrong would write them. */
static struct io_uring_sqe *raw_sqe(void)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(blk_uring_ring(u));
	cr_assert_not_null(sqe);
	return sqe;
}

/* Submits the raw SQE and returns its result. */
static int raw_result(void)
{
	struct io_uring *ring = blk_uring_ring(u);
	struct io_uring_cqe *cqe;
	io_uring_submit(ring);
	cr_assert_eq(io_uring_wait_cqe(ring, &cqe), 0);
	int res = cqe->res;
	io_uring_cqe_seen(ring, cqe);
	return res;
}

Test(blk_uring, reads_and_writes_land)
{
	u = ring_or_skip(8);
	cr_assert_eq(blk_uring_depth(u), 8);
	uint8_t a[3000], b[5192], back[8192];
	memset(a, 0xa1, sizeof(a));
	memset(b, 0xb2, sizeof(b));
	struct iovec w[] = { { a, sizeof(a) }, { b, sizeof(b) } };
	cr_assert_eq(blk_uring_writev(u, w, 2, 4096, 7), 0);
	cr_assert_eq(blk_uring_in_flight(u), 1);
	cr_assert_eq(blk_uring_submit(u), 0);
	struct blk_uring_done d = one();
	cr_assert_eq(d.tag, 7);
	cr_assert_eq(d.res, 8192);
	cr_assert_eq(blk_uring_in_flight(u), 0);

	uint8_t file[8192 + 2];
	cr_assert_eq(pread(fd, file, sizeof(file), 4095), (ssize_t)sizeof(file));
	cr_assert_eq(file[0], pattern(4095), "the byte before changed");
	cr_assert_arr_eq(file + 1, a, sizeof(a));
	cr_assert_arr_eq(file + 1 + sizeof(a), b, sizeof(b));
	cr_assert_eq(file[8193], pattern(4096 + 8192), "the byte after changed");

	memset(back, 0, sizeof(back));
	struct iovec r[] = { { back, 100 }, { back + 100, sizeof(back) - 100 } };
	cr_assert_eq(blk_uring_readv(u, r, 2, 4096, 1ull << 40), 0);
	cr_assert_eq(blk_uring_fdatasync(u, 9), 0);
	cr_assert_eq(blk_uring_submit(u), 0);
	bool seen_read = false, seen_sync = false;
	for (int i = 0; i < 2; i++) {
		d = one();
		if (d.tag == 1ull << 40) {
			cr_assert_eq(d.res, (int32_t)sizeof(back));
			seen_read = true;
		} else {
			cr_assert_eq(d.tag, 9);
			cr_assert_eq(d.res, 0, "fdatasync: %s", strerror(-d.res));
			seen_sync = true;
		}
	}
	cr_assert(seen_read && seen_sync);
	cr_assert_arr_eq(back, a, sizeof(a));
	cr_assert_arr_eq(back + sizeof(a), b, sizeof(b));
	/* nothing in flight: wait returns at once */
	cr_assert_eq(blk_uring_wait(u), 0);
}

Test(blk_uring, many_in_flight_and_the_ring_fd_polls)
{
	enum { DEPTH = 64, LEN = 4096 };
	u = ring_or_skip(DEPTH);
	static uint8_t bufs[DEPTH][LEN];
	static struct iovec iov[DEPTH];
	struct pollfd p = { .fd = blk_uring_fd(u), .events = POLLIN };
	cr_assert_eq(poll(&p, 1, 0), 0, "readable with nothing done");
	/* reads at scattered offsets, the depth of them */
	for (unsigned i = 0; i < DEPTH; i++) {
		memset(bufs[i], 0xee, LEN);
		iov[i] = (struct iovec){ bufs[i], LEN };
		cr_assert_eq(blk_uring_readv(u, &iov[i], 1, ((i * 37) % 256) * (uint64_t)LEN, 1000 + i), 0);
	}
	cr_assert_eq(blk_uring_in_flight(u), DEPTH);
	struct iovec extra = { bufs[0], LEN };
	cr_assert_eq(blk_uring_readv(u, &extra, 1, 0, 1), -EBUSY, "more than the depth");
	cr_assert_eq(blk_uring_fdatasync(u, 1), -EBUSY);
	cr_assert_eq(blk_uring_submit(u), 0);
	/* the ring fd says when completions are there */
	cr_assert_eq(poll(&p, 1, 5000), 1);
	cr_assert(p.revents & POLLIN);

	bool seen[DEPTH] = { false };
	struct blk_uring_done done[DEPTH + 8];
	unsigned total = 0;
	for (int rounds = 0; total < DEPTH && rounds < 10000; rounds++) {
		unsigned n = blk_uring_reap(u, done, DEPTH + 8);
		for (unsigned k = 0; k < n; k++) {
			cr_assert(done[k].tag >= 1000 && done[k].tag < 1000 + DEPTH, "tag %llu",
				  (unsigned long long)done[k].tag);
			unsigned i = (unsigned)(done[k].tag - 1000);
			cr_assert_not(seen[i], "request %u completed twice", i);
			seen[i] = true;
			cr_assert_eq(done[k].res, LEN, "request %u: %d", i, done[k].res);
		}
		total += n;
		if (total < DEPTH)
			cr_assert_eq(blk_uring_wait(u), 0);
	}
	cr_assert_eq(total, DEPTH);
	cr_assert_eq(blk_uring_in_flight(u), 0);
	for (unsigned i = 0; i < DEPTH; i++) {
		uint64_t off = ((i * 37) % 256) * (uint64_t)LEN;
		for (unsigned j = 0; j < LEN; j += 511)
			cr_assert_eq(bufs[i][j], pattern(off + j), "request %u byte %u", i, j);
	}
	cr_assert_eq(poll(&p, 1, 0), 0, "readable after everything was reaped");
	/* and the ring takes the depth again */
	for (unsigned i = 0; i < DEPTH; i++)
		cr_assert_eq(blk_uring_writev(u, &iov[i], 1, (uint64_t)i * LEN, i), 0);
	cr_assert_eq(blk_uring_submit(u), 0);
	for (unsigned i = 0; i < DEPTH; i++)
		cr_assert_eq(one().res, LEN);
}

Test(blk_uring, short_reads_at_the_end_of_the_file)
{
	u = ring_or_skip(4);
	uint8_t buf[8192];
	struct iovec iov = { buf, sizeof(buf) };
	memset(buf, 0xcc, sizeof(buf));
	/* straddling the end: what there is */
	cr_assert_eq(blk_uring_readv(u, &iov, 1, FILE_SIZE - 3000, 1), 0);
	cr_assert_eq(blk_uring_submit(u), 0);
	struct blk_uring_done d = one();
	cr_assert_eq(d.res, 3000);
	for (unsigned i = 0; i < 3000; i++)
		cr_assert_eq(buf[i], pattern(FILE_SIZE - 3000 + i), "byte %u", i);
	cr_assert_eq(buf[3000], 0xcc, "wrote past what it read");
	/* at and past the end: nothing */
	cr_assert_eq(blk_uring_readv(u, &iov, 1, FILE_SIZE, 2), 0);
	cr_assert_eq(blk_uring_readv(u, &iov, 1, 2ull * FILE_SIZE, 3), 0);
	cr_assert_eq(blk_uring_submit(u), 0);
	cr_assert_eq(one().res, 0);
	cr_assert_eq(one().res, 0);
	/* the file shrank under it: the same */
	cr_assert_eq(ftruncate(fd, 4096), 0);
	cr_assert_eq(blk_uring_readv(u, &iov, 1, 0, 4), 0);
	cr_assert_eq(blk_uring_submit(u), 0);
	cr_assert_eq(one().res, 4096);
}

Test(blk_uring, opcodes_not_allowed_are_refused)
{
	u = ring_or_skip(4);
	uint8_t buf[4096];
	memset(buf, 0xcc, sizeof(buf));
	/* a plain READ on the fixed file: not one of the three */
	struct io_uring_sqe *sqe = raw_sqe();
	io_uring_prep_read(sqe, 0, buf, sizeof(buf), 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	cr_assert_eq(raw_result(), -EACCES);
	cr_assert_eq(buf[0], 0xcc);
	/* opening a file (into the fixed table or not) */
	sqe = raw_sqe();
	io_uring_prep_openat(sqe, AT_FDCWD, other_path, O_RDONLY, 0);
	cr_assert_eq(raw_result(), -EACCES);
	sqe = raw_sqe();
	io_uring_prep_openat(sqe, AT_FDCWD, other_path, O_RDONLY, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	cr_assert_eq(raw_result(), -EACCES);
	/* fallocate (punching a hole) and a NOP */
	sqe = raw_sqe();
	io_uring_prep_fallocate(sqe, 0, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 4096);
	sqe->flags |= IOSQE_FIXED_FILE;
	cr_assert_eq(raw_result(), -EACCES);
	sqe = raw_sqe();
	io_uring_prep_nop(sqe);
	cr_assert_eq(raw_result(), -EACCES);
	/* an allowed opcode with a flag beyond FIXED_FILE */
	struct iovec iov = { buf, sizeof(buf) };
	sqe = raw_sqe();
	io_uring_prep_readv(sqe, 0, &iov, 1, 0);
	sqe->flags |= IOSQE_FIXED_FILE | IOSQE_ASYNC;
	cr_assert_eq(raw_result(), -EACCES);
	cr_assert_eq(buf[0], 0xcc);
	uint8_t first[4096];
	cr_assert_eq(pread(fd, first, sizeof(first), 0), (ssize_t)sizeof(first));
	for (unsigned i = 0; i < sizeof(first); i++)
		cr_assert_eq(first[i], pattern(i), "the file changed at %u", i);
	/* the engine's own requests still work */
	cr_assert_eq(blk_uring_readv(u, &iov, 1, 0, 5), 0);
	cr_assert_eq(blk_uring_submit(u), 0);
	cr_assert_eq(one().res, 4096);
}

Test(blk_uring, the_ring_refuses_any_other_fd)
{
	u = ring_or_skip(4);
	struct io_uring *ring = blk_uring_ring(u);
	uint8_t buf[4096];
	struct iovec iov = { buf, sizeof(buf) };
	memset(buf, 0, sizeof(buf));
	/* a plain fd, not the fixed file: refused, for reads and writes */
	struct io_uring_sqe *sqe = raw_sqe();
	io_uring_prep_readv(sqe, other_fd, &iov, 1, 0);
	cr_assert_eq(raw_result(), -EACCES);
	cr_assert_eq(buf[0], 0, "read the other file");
	sqe = raw_sqe();
	io_uring_prep_writev(sqe, other_fd, &iov, 1, 0);
	cr_assert_eq(raw_result(), -EACCES);
	sqe = raw_sqe();
	io_uring_prep_fsync(sqe, other_fd, 0);
	cr_assert_eq(raw_result(), -EACCES);
	/* another fixed file index: there is none */
	sqe = raw_sqe();
	io_uring_prep_readv(sqe, 1, &iov, 1, 0);
	sqe->flags |= IOSQE_FIXED_FILE;
	cr_assert_eq(raw_result(), -EBADF);
	cr_assert_eq(buf[0], 0);
	/* and no other file (or buffer, or eventfd) can be registered now */
	cr_assert_eq(io_uring_register_files_update(ring, 0, &other_fd, 1), -EACCES);
	cr_assert_eq(io_uring_unregister_files(ring), -EACCES);
	cr_assert_eq(io_uring_register_buffers(ring, &iov, 1), -EACCES);
	cr_assert_eq(io_uring_register_eventfd(ring, other_fd), -EACCES);
	uint8_t secret[4096];
	cr_assert_eq(pread(other_fd, secret, sizeof(secret), 0), (ssize_t)sizeof(secret));
	for (unsigned i = 0; i < sizeof(secret); i++)
		cr_assert_eq(secret[i], 0x5e, "the other file changed at %u", i);
	/* the fixed file still works */
	cr_assert_eq(blk_uring_readv(u, &iov, 1, 8192, 3), 0);
	cr_assert_eq(blk_uring_submit(u), 0);
	cr_assert_eq(one().res, 4096);
	cr_assert_eq(buf[5], pattern(8192 + 5));
}

Test(blk_uring, destroy_with_requests_in_flight_leaks_nothing)
{
	unsigned fds = census_fds();
	u = ring_or_skip(16);
	cr_assert_eq(census_fds(), fds + 1, "the ring fd");
	static uint8_t buf[16][4096];
	static struct iovec iov[16];
	for (unsigned i = 0; i < 16; i++) {
		iov[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
		cr_assert_eq(blk_uring_readv(u, &iov[i], 1, i * 4096ull, i), 0);
	}
	cr_assert_eq(blk_uring_submit(u), 0);
	blk_uring_destroy(u);
	u = NULL;
	cr_assert_eq(census_fds(), fds);
	/* one queued and never submitted */
	u = ring_or_skip(2);
	cr_assert_eq(blk_uring_fdatasync(u, 1), 0);
	blk_uring_destroy(u);
	u = NULL;
	cr_assert_eq(census_fds(), fds);
}

Test(blk_uring, bad_depth)
{
	char err[256] = "";
	cr_assert_null(blk_uring_create(fd, 0, err, sizeof(err)));
	cr_assert_eq(errno, EINVAL);
	cr_assert(strstr(err, "depth 0"), "%s", err);
	cr_assert_null(blk_uring_create(fd, BLK_URING_MAX_DEPTH + 1, err, sizeof(err)));
}

/* ---- the kernel refusing io_uring ---- */

struct refused {
	int fd;
	struct blk_uring *made;
	int err;
	char msg[256];
	unsigned fds_before, fds_after;
};

static void try_create(void *p)
{
	struct refused *r = p;
	r->fds_before = census_fds();
	r->made = blk_uring_create(r->fd, 8, r->msg, sizeof(r->msg));
	r->err = errno;
	r->fds_after = census_fds();
}

Test(blk_uring, kernel_refusals_are_one_line_with_the_reason)
{
	static const struct {
		int err;
		const char *want;
	} cases[] = {
		{ EPERM, "io_uring_setup: Operation not permitted (disabled by sysctl kernel.io_uring_disabled)" },
		{ ENOSYS, "io_uring_setup: Function not implemented (no io_uring in this kernel, or a seccomp filter" },
		{ ENOMEM, "io_uring_setup: Cannot allocate memory (RLIMIT_MEMLOCK" },
	};
	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct refused r = { .fd = fd };
		with_io_uring_refused(cases[i].err, try_create, &r);
		cr_assert_null(r.made);
		cr_assert_eq(r.err, cases[i].err);
		cr_assert(strstr(r.msg, cases[i].want), "got: %s", r.msg);
		cr_assert_null(strchr(r.msg, '\n'));
		cr_assert_eq(r.fds_after, r.fds_before, "fd leaked");
	}
}
