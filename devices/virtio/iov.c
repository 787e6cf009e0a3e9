#include "devices/virtio/iov.h"

#include <string.h>

unsigned iov_slice(const struct iovec *src, unsigned n, uint64_t off, uint64_t len, struct iovec *dst)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		if (off >= src[i].iov_len) {
			off -= src[i].iov_len;
			continue;
		}
		uint64_t take = src[i].iov_len - off;
		if (take > len)
			take = len;
		dst[k].iov_base = (uint8_t *)src[i].iov_base + off;
		dst[k].iov_len = take;
		k++;
		len -= take;
		off = 0;
	}
	return k;
}

bool iov_to_buf(const struct iovec *iov, unsigned n, uint64_t off, void *dst, size_t len)
{
	struct iovec part[1];
	uint8_t *d = dst;
	/* slice one buffer at a time so no temporary array is needed */
	for (unsigned i = 0; i < n && len; i++) {
		if (!iov_slice(&iov[i], 1, off, len, part)) {
			off -= iov[i].iov_len;
			continue;
		}
		memcpy(d, part[0].iov_base, part[0].iov_len);
		d += part[0].iov_len;
		len -= part[0].iov_len;
		off = 0;
	}
	return len == 0;
}

bool iov_from_buf(const struct iovec *iov, unsigned n, uint64_t off, const void *src, size_t len)
{
	struct iovec part[1];
	const uint8_t *s = src;
	for (unsigned i = 0; i < n && len; i++) {
		if (!iov_slice(&iov[i], 1, off, len, part)) {
			off -= iov[i].iov_len;
			continue;
		}
		memcpy(part[0].iov_base, s, part[0].iov_len);
		s += part[0].iov_len;
		len -= part[0].iov_len;
		off = 0;
	}
	return len == 0;
}
