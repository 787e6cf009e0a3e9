/* The ranges of a virtio-blk DISCARD or WRITE_ZEROES request (spec
 * 5.2.6): struct virtio_blk_discard_write_zeroes after the header, copied
 * out of guest memory once and every one checked before any is done. blk.c
 * does them on the image (blk_image.h) and tells the guest these limits in
 * its config space.
 *
 * A discard punches a hole (no data moves: large ranges and several of
 * them, as Linux merges the discards of a file system, up to 256 ranges; 32
 * is plenty). A write zeroes has one range, as Linux sends it, at most 32
 * MiB: where the image cannot punch or zero a range, the worker writes the
 * zeros, and a request must not hold it (and a pause) for long. */
#ifndef MINIVMM_VIRTIO_BLK_RANGES_H
#define MINIVMM_VIRTIO_BLK_RANGES_H

#include <stdbool.h>
#include <stdint.h>

#include "devices/virtio/virtq.h"

#define BLK_DISCARD_MAX_SEG 32u
#define BLK_DISCARD_MAX_SECTORS (1u << 21)        /* 1 GiB a range */
#define BLK_WRITE_ZEROES_MAX_SEG 1u
#define BLK_WRITE_ZEROES_MAX_SECTORS (1u << 16)   /* 32 MiB */

/* One range, in host byte order. */
struct blk_range {
	uint64_t sector;
	uint32_t num_sectors;            /* may be 0: nothing to do */
	bool unmap;                      /* write zeroes: a hole may be punched */
};

struct blk_ranges {
	unsigned n;
	struct blk_range range[BLK_DISCARD_MAX_SEG];
};

/* Reads the ranges of the request in c (a discard, or else a write zeroes;
 * its 16-byte header already read) into r and checks them against a disk
 * of capacity sectors. Returns VIRTIO_BLK_S_OK; VIRTIO_BLK_S_UNSUPP for
 * unknown flags (and unmap on a discard), as the spec says;
 * VIRTIO_BLK_S_IOERR for a count or a range the device does not take (too
 * many, too long, past the end, a length that is no whole number of
 * ranges). */
uint8_t blk_ranges_read(struct blk_ranges *r, bool discard, const struct virtq_chain *c, uint64_t capacity);

#endif
