#include "devices/virtio/blk_ranges.h"

#include <endian.h>
#include <linux/virtio_blk.h>

#include "devices/virtio/blk_image.h"
#include "devices/virtio/iov.h"

_Static_assert(sizeof(struct virtio_blk_discard_write_zeroes) == 16, "virtio-blk discard range is 16 bytes");
_Static_assert(BLK_DISCARD_MAX_SEG >= BLK_WRITE_ZEROES_MAX_SEG, "one buffer for the ranges of both");

uint8_t blk_ranges_read(struct blk_ranges *r, bool discard, const struct virtq_chain *c, uint64_t capacity)
{
	struct virtio_blk_discard_write_zeroes seg[BLK_DISCARD_MAX_SEG];
	uint64_t len = c->out_len - sizeof(struct virtio_blk_outhdr);
	uint32_t max_seg = discard ? BLK_DISCARD_MAX_SEG : BLK_WRITE_ZEROES_MAX_SEG;
	uint32_t max_sectors = discard ? BLK_DISCARD_MAX_SECTORS : BLK_WRITE_ZEROES_MAX_SECTORS;
	uint32_t allowed_flags = discard ? 0 : VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP;

	r->n = 0;
	if (len == 0 || len % sizeof(seg[0]) || len / sizeof(seg[0]) > max_seg)
		return VIRTIO_BLK_S_IOERR;
	unsigned n = (unsigned)(len / sizeof(seg[0]));
	/* Copied once: the driver may change them under us. */
	iov_to_buf(c->iov, c->n_out, sizeof(struct virtio_blk_outhdr), seg, len);
	for (unsigned i = 0; i < n; i++)
		if (le32toh(seg[i].flags) & ~allowed_flags)
			return VIRTIO_BLK_S_UNSUPP;
	for (unsigned i = 0; i < n; i++) {
		uint32_t num = le32toh(seg[i].num_sectors);
		uint64_t bytes = (uint64_t)num * BLK_SECTOR_SIZE;
		if (num > max_sectors || !blk_sectors_fit(capacity, le64toh(seg[i].sector), bytes))
			return VIRTIO_BLK_S_IOERR;
	}
	for (unsigned i = 0; i < n; i++)
		r->range[i] = (struct blk_range){
			.sector = le64toh(seg[i].sector),
			.num_sectors = le32toh(seg[i].num_sectors),
			.unmap = le32toh(seg[i].flags) & VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP,
		};
	r->n = n;
	return VIRTIO_BLK_S_OK;
}
