#define _GNU_SOURCE /* fallocate, O_NOATIME */
#include "devices/virtio/blk_image.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* The zeros written where fallocate() cannot: BLK_ZERO_IOV pieces of this a call. */
#define BLK_ZERO_CHUNK (64u * 1024)
#define BLK_ZERO_IOV 16u

/* Size in bytes of the image open at fd, or -1 with err filled. */
static int64_t image_size(int fd, const char *path, char *err, size_t errlen)
{
	struct stat st;
	uint64_t size;

	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "image %s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISREG(st.st_mode)) {
		size = (uint64_t)st.st_size;
	} else if (S_ISBLK(st.st_mode)) {
		if (ioctl(fd, BLKGETSIZE64, &size) < 0) {
			snprintf(err, errlen, "image %s: cannot get the size of the block device: %s", path,
				 strerror(errno));
			return -1;
		}
	} else {
		snprintf(err, errlen, "image %s: not a regular file or block device", path);
		return -1;
	}
	if (size % BLK_SECTOR_SIZE) {
		snprintf(err, errlen, "image %s: size %" PRIu64 " bytes is not a multiple of 512", path, size);
		return -1;
	}
	if (size > INT64_MAX) {
		snprintf(err, errlen, "image %s: size %" PRIu64 " bytes is too large", path, size);
		return -1;
	}
	return (int64_t)size;
}

int blk_image_open(const char *path, bool readonly, uint64_t *size, char *err, size_t errlen)
{
	/* O_NONBLOCK: a FIFO named by mistake must fail the check below, not
	 * hang the open. Cleared afterwards. */
	int fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		if (errno == EISDIR)
			snprintf(err, errlen, "image %s: not a regular file or block device", path);
		else if (!readonly && (errno == EACCES || errno == EROFS || errno == EPERM))
			snprintf(err, errlen, "image %s: cannot open it read-write: %s (add ,ro for a read-only disk)",
				 path, strerror(errno));
		else
			snprintf(err, errlen, "image %s: %s", path, strerror(errno));
		return -1;
	}
	int64_t bytes = image_size(fd, path, err, errlen);
	if (bytes < 0) {
		close(fd);
		return -1;
	}
	/* O_NOATIME: an image's access time tells nobody anything, and its
	 * update cost 3% of a 4 KiB read from the page cache
	 * (bench_blk_datapath). Only the file's owner (or CAP_FOWNER) may set
	 * it: anyone else goes without. */
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || (fcntl(fd, F_SETFL, (fl & ~O_NONBLOCK) | O_NOATIME) < 0 &&
		       fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) < 0)) {
		snprintf(err, errlen, "image %s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	*size = (uint64_t)bytes;
	return fd;
}

uint32_t blk_image_block_sectors(int fd)
{
	struct stat st;
	if (fstat(fd, &st) == 0 && st.st_blksize >= (blksize_t)BLK_SECTOR_SIZE && st.st_blksize <= (1 << 20) &&
	    !(st.st_blksize & (st.st_blksize - 1)))
		return (uint32_t)st.st_blksize / BLK_SECTOR_SIZE;
	return 4096 / BLK_SECTOR_SIZE;
}

int blk_image_rw(int fd, bool write, struct iovec *iov, unsigned n, off_t off)
{
	while (n) {
		ssize_t r = write ? pwritev(fd, iov, (int)n, off) : preadv(fd, iov, (int)n, off);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -EIO;   /* end of file: the image shrank under us */
		off += r;
		size_t done = (size_t)r;
		while (n && done >= iov->iov_len) {
			done -= iov->iov_len;
			iov++;
			n--;
		}
		if (n) {
			iov->iov_base = (uint8_t *)iov->iov_base + done;
			iov->iov_len -= done;
		}
	}
	return 0;
}

/* fallocate(), again after a signal (a bounded number of times: a signal
 * does not come in a loop here). Returns 0 or -errno. */
static int falloc(int fd, int mode, uint64_t off, uint64_t len)
{
	for (int tries = 0; tries < 8; tries++) {
		if (fallocate(fd, mode, (off_t)off, (off_t)len) == 0)
			return 0;
		if (errno != EINTR)
			return -errno;
	}
	return -EINTR;
}

/* EINVAL is what a block device says to a range that is not aligned to its
 * logical blocks. */
bool blk_image_cannot(int e)
{
	return e == -EOPNOTSUPP || e == -ENOSYS || e == -EINVAL;
}

/* Writes len bytes of zeros at off, 1 MiB a call. */
static int write_zeros(int fd, uint64_t off, uint64_t len)
{
	static uint8_t zeros[BLK_ZERO_CHUNK];   /* never written: in .bss, not in the binary */
	struct iovec iov[BLK_ZERO_IOV];
	/* len <= 32 MiB (a write zeroes' range): 32 rounds at most */
	while (len) {
		unsigned n = 0;
		uint64_t round = 0;
		for (; n < BLK_ZERO_IOV && round < len; n++) {
			size_t take = len - round < BLK_ZERO_CHUNK ? (size_t)(len - round) : BLK_ZERO_CHUNK;
			iov[n] = (struct iovec){ zeros, take };
			round += take;
		}
		int e = blk_image_rw(fd, true, iov, n, (off_t)off);
		if (e < 0)
			return e;
		off += round;
		len -= round;
	}
	return 0;
}

int blk_image_punch_hole(int fd, uint64_t off, uint64_t len)
{
	return falloc(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, len);
}

int blk_image_zero(int fd, uint64_t off, uint64_t len, bool unmap)
{
	int e = -EOPNOTSUPP;
	if (unmap)
		e = blk_image_punch_hole(fd, off, len);
	if (blk_image_cannot(e))
		e = falloc(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, off, len);
	if (blk_image_cannot(e))
		e = write_zeros(fd, off, len);
	return e;
}
