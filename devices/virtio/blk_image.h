/* A disk's image (a raw file or a block device) as virtio-blk uses it,
 * knowing nothing of virtio: opened with its checks, read and written whole
 * with preadv/pwritev, and ranges of it made to read as zeros with
 * fallocate() (holes, zeroed ranges), zeros written where the image cannot.
 * The io_uring engine (blk_uring.h) reads and writes the same fd its own
 * way. */
#ifndef MINIVMM_VIRTIO_BLK_IMAGE_H
#define MINIVMM_VIRTIO_BLK_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

/* The unit of an image's size and of every request's position and length. */
#define BLK_SECTOR_SIZE 512u

/* Whether len bytes at sector are whole sectors inside an image of
 * capacity sectors (no overflow, whatever the guest asks). */
static inline bool blk_sectors_fit(uint64_t capacity, uint64_t sector, uint64_t len)
{
	return len % BLK_SECTOR_SIZE == 0 && sector <= capacity && len / BLK_SECTOR_SIZE <= capacity - sector;
}

/* Opens the image at path (read-only or read-write; close-on-exec,
 * blocking) and gets its size, a multiple of 512 bytes. Returns the fd, or
 * -1 with one line in err naming the image and the reason ("image PATH: not
 * a regular file or block device", "...: cannot open it read-write: ... (add
 * ,ro for a read-only disk)", a size that is not a multiple of 512 ...). */
int blk_image_open(const char *path, bool readonly, uint64_t *size, char *err, size_t errlen);

/* The granularity of the holes the image punches, in sectors: its block
 * size (a hole is punched in whole blocks; a part of one is zeroed), 4 KiB
 * when it says nothing sensible. */
uint32_t blk_image_block_sectors(int fd);

/* preadv/pwritev the whole of iov at off. Short transfers (a signal, the
 * kernel's 2 GiB cap per call) go on where they stopped, consuming iov.
 * Returns 0 or -errno (-EIO at the end of the file: the image shrank). */
int blk_image_rw(int fd, bool write, struct iovec *iov, unsigned n, off_t off);

/* A hole punched at off (the size kept). Returns 0 or -errno; see
 * blk_image_cannot(). */
int blk_image_punch_hole(int fd, uint64_t off, uint64_t len);

/* Whether -errno e from blk_image_punch_hole() says the image (its file
 * system, or the block device) cannot do it at all, rather than failed. */
bool blk_image_cannot(int e);

/* Reads of len bytes at off give zeros afterwards. With unmap a hole is
 * punched (it reads as zeros), else the range is zeroed in place
 * (FALLOC_FL_ZERO_RANGE: its blocks stay allocated); where the image can do
 * neither, zeros are written, 1 MiB a call (len: a write zeroes' range, at
 * most 32 MiB). Returns 0 or -errno. */
int blk_image_zero(int fd, uint64_t off, uint64_t len, bool unmap);

#endif
