/* The virtio-net header of a frame the guest sends, checked before the tap
 * (and so the host kernel) sees it: only what the device offered and the
 * driver took, with checksum offsets inside the frame (spec 5.1.6.2: the
 * device may drop a frame whose header breaks the driver requirements). */
#ifndef MINIVMM_NET_HDR_H
#define MINIVMM_NET_HDR_H

#include <linux/virtio_net.h>
#include <stdint.h>

/* NULL if the frame may go out, else why not ("GSO type 3 not negotiated").
 * features: negotiated; frame_len: bytes after the header. */
const char *net_tx_hdr_invalid(const struct virtio_net_hdr *h, uint64_t features, uint64_t frame_len);

#endif
