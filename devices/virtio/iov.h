/* Scatter-gather helpers over the iovecs of a popped chain (see virtq.h):
 * shared by the device models so each copies guest buffers the same way. */
#ifndef MINIVMM_VIRTIO_IOV_H
#define MINIVMM_VIRTIO_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Describes bytes [off, off+len) of src[0..n) in dst, without copying.
 * Returns the number of dst entries, none of them empty. */
unsigned iov_slice(const struct iovec *src, unsigned n, uint64_t off, uint64_t len, struct iovec *dst);

/* Copies len bytes starting at offset off of the buffers into dst. Returns
 * false (having copied what there was) when the buffers hold fewer. */
bool iov_to_buf(const struct iovec *iov, unsigned n, uint64_t off, void *dst, size_t len);

/* Copies src into the buffers at offset off. Returns false when they are
 * too short for all of it. */
bool iov_from_buf(const struct iovec *iov, unsigned n, uint64_t off, const void *src, size_t len);

#endif
