#include "devices/net/net_hdr.h"

#include <endian.h>

#define F(bit) (1ull << (bit))

const char *net_tx_hdr_invalid(const struct virtio_net_hdr *h, uint64_t features, uint64_t frame_len)
{
	/* DATA_VALID and RSC_INFO are the device's to set, on RX only. */
	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return "header flags other than NEEDS_CSUM";
	if (h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) {
		if (!(features & F(VIRTIO_NET_F_CSUM)))
			return "checksum offload (NEEDS_CSUM) not negotiated";
		/* The 16-bit checksum field must lie inside the frame. */
		uint64_t start = le16toh(h->csum_start), off = le16toh(h->csum_offset);
		if (start + off + 2 > frame_len)
			return "checksum offsets past the end of the frame";
	}
	switch (h->gso_type) {
	case VIRTIO_NET_HDR_GSO_NONE:
		return 0;
	case VIRTIO_NET_HDR_GSO_TCPV4:
		if (!(features & F(VIRTIO_NET_F_HOST_TSO4)))
			return "GSO type TCPv4 not negotiated";
		break;
	case VIRTIO_NET_HDR_GSO_TCPV6:
		if (!(features & F(VIRTIO_NET_F_HOST_TSO6)))
			return "GSO type TCPv6 not negotiated";
		break;
	default:   /* UDP (UFO), UDP_L4 (USO), the ECN bit: never offered */
		return "GSO type not offered";
	}
	if (h->gso_size == 0)
		return "GSO with gso_size 0";
	return 0;
}
