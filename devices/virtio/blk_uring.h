/* An io_uring engine for a block device's requests (virtio-blk's, see
 * devices/virtio/blk.c): vectored reads and writes and data syncs on one
 * image fd, many in flight per ring, their completions reaped in batches.
 * It knows nothing of virtio: a request is an iovec array, an offset and a
 * 64-bit tag the caller gets back with the result.
 *
 * The ring is made whole at create(), before the sandbox, so that the thread
 * which uses it needs io_uring_enter only (never io_uring_setup or
 * io_uring_register): it starts disabled (IORING_SETUP_R_DISABLED), the image
 * fd is registered as its only fixed file, its restrictions
 * (IORING_REGISTER_RESTRICTIONS) allow READV, WRITEV and FSYNC and only with
 * IOSQE_FIXED_FILE, and no io_uring_register operation at all, then it is
 * enabled. A thread that goes wrong can therefore only read, write or sync
 * the image through it: any other opcode, any fd but the fixed one, another
 * fixed file index, and any later registration are refused by the kernel
 * (-EACCES or -EBADF in the completion, or from io_uring_register).
 *
 * Completions: the ring fd polls readable (POLLIN) while completions wait to
 * be reaped, so a poll loop watches it directly (as QEMU does), no eventfd.
 *
 * Threads: one ring is used by one thread at a time (the device's queue
 * worker; another after a reset). The thread that submits a request must
 * also be the one that waits for it: the kernel may finish a buffered read
 * in that thread's task work, and cancels what a thread left in flight when
 * it exits, so a thread waits for its requests (blk_uring_wait) before it
 * stops.
 *
 * System calls (the thread role's seccomp list, vmm/sandbox.c): io_uring_enter
 * on the using thread (submit, wait, and a reap that finds the completion ring
 * overflowed, which the in-flight bound below prevents); io_uring_setup,
 * io_uring_register, mmap and close at create/destroy, before the sandbox or
 * on the control thread. */
#ifndef MINIVMM_VIRTIO_BLK_URING_H
#define MINIVMM_VIRTIO_BLK_URING_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define BLK_URING_MAX_DEPTH 256u

struct blk_uring;
struct io_uring;

/* A ring for up to depth (1..BLK_URING_MAX_DEPTH) requests in flight on fd
 * (which the caller keeps open for the ring's life). Returns NULL with errno
 * set and one line in err naming the step and the reason, e.g.
 * "io_uring_setup: Operation not permitted (disabled by sysctl
 * kernel.io_uring_disabled?)": ENOSYS (no io_uring in this kernel, or a
 * seccomp filter around the process), EPERM (kernel.io_uring_disabled),
 * ENOMEM (RLIMIT_MEMLOCK on kernels before 5.12), EINVAL (a kernel older
 * than 5.10: no restrictions). */
struct blk_uring *blk_uring_create(int fd, unsigned depth, char *err, size_t errlen);

/* Closes the ring; the kernel cancels or finishes what is still in flight
 * (nothing, when the thread that used it waited for its requests). NULL is
 * accepted. Not while a thread uses the ring. */
void blk_uring_destroy(struct blk_uring *u);

/* The ring fd: POLLIN while completions wait to be reaped. */
int blk_uring_fd(const struct blk_uring *u);

/* Requests queued or in flight and not yet reaped (0..depth). */
unsigned blk_uring_in_flight(const struct blk_uring *u);

/* The depth given to create(). */
unsigned blk_uring_depth(const struct blk_uring *u);

/* Queue one request; nothing reaches the kernel before blk_uring_submit().
 * The iovecs (not only the buffers) must stay valid and unchanged until the
 * completion is reaped. Return 0, or -EBUSY when depth requests are in
 * flight already. fdatasync: IORING_FSYNC_DATASYNC, covering the writes
 * completed before it was submitted. */
int blk_uring_readv(struct blk_uring *u, const struct iovec *iov, unsigned n, uint64_t off, uint64_t tag);
int blk_uring_writev(struct blk_uring *u, const struct iovec *iov, unsigned n, uint64_t off, uint64_t tag);
int blk_uring_fdatasync(struct blk_uring *u, uint64_t tag);

/* Hands the queued requests to the kernel (one io_uring_enter). Returns 0,
 * or -errno (EAGAIN, EBUSY, ENOMEM...): the requests stay queued, the next
 * submit or wait hands them over. */
int blk_uring_submit(struct blk_uring *u);

/* One finished request: its tag and the result, bytes transferred (which
 * may be short of the request: end of file, or a partial transfer) or
 * -errno. */
struct blk_uring_done {
	uint64_t tag;
	int32_t res;
};

/* Takes up to max completions that are there, without waiting. Returns how
 * many were written to out. */
unsigned blk_uring_reap(struct blk_uring *u, struct blk_uring_done *out, unsigned max);

/* Submits what is queued and waits until at least one completion can be
 * reaped (returns at once when nothing is in flight). Returns 0, or -errno
 * when the kernel refuses (a signal's EINTR is retried). */
int blk_uring_wait(struct blk_uring *u);

/* For tests: the liburing ring, to do what a compromised thread could. */
struct io_uring *blk_uring_ring(struct blk_uring *u);

#endif
