/* Host side of a virtio-net device: a Linux tap interface opened through
 * /dev/net/tun with one file descriptor per queue pair.
 *
 * Every fd is opened O_RDWR | O_NONBLOCK | O_CLOEXEC and attached with
 * TUNSETIFF(IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | IFF_MULTI_QUEUE) under the
 * same name: each read() returns one frame and each write() takes one, both
 * preceded by a 12-byte virtio_net_hdr (TUNSETVNETHDRSZ), the header of a
 * VERSION_1 virtio-net device, so guest buffers go to and from the tap as they
 * are. A tap that does not exist is created (CAP_NET_ADMIN) and goes away
 * when its last fd is closed; minivmm never configures it (addresses, link
 * state, MTU are the host's business). */
#ifndef MINIVMM_NET_TAP_H
#define MINIVMM_NET_TAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NET_TAP_VNET_HDR_LEN 12u
#define NET_TAP_MAX_QUEUES 32u
#define NET_TAP_DEV "/dev/net/tun"

struct net_tap {
	char name[16];                 /* IFNAMSIZ */
	unsigned n_fds;
	int fds[NET_TAP_MAX_QUEUES];   /* -1 when not open */
	bool multi_queue;              /* IFF_MULTI_QUEUE: queues can be detached/attached */
	bool created;                  /* did not exist before: goes away with the fds */
};

/* Opens `queues` (1..NET_TAP_MAX_QUEUES) fds on tap `name`, all attached.
 * With queues == 1 a tap made without multi_queue is accepted too. Returns 0,
 * or -1 with one line in err ("tap NAME: ...": the caller adds the option it
 * came from) saying what is wrong and, where it helps, the command that fixes it (e.g. a tap that cannot be
 * created: `ip tuntap add NAME mode tap multi_queue`). Nothing stays open on
 * failure. */
int net_tap_open(struct net_tap *t, const char *name, unsigned queues, char *err, size_t errlen);

/* Closes every fd (a tap we created disappears). Safe on a zeroed or
 * already closed struct, and twice. */
void net_tap_close(struct net_tap *t);

/* Attaches (on) or detaches (off) queue q (TUNSETQUEUE). The kernel steers
 * frames only to attached queues, so the device detaches the queues of the
 * pairs the guest has not enabled (a detached fd stays valid and just gets
 * no frames). Returns 0 or -errno (-EINVAL when already in that state);
 * always 0 on a tap without multi_queue (q must then be 0). */
int net_tap_set_queue(struct net_tap *t, unsigned q, bool on);

/* TUN_F_* offloads the tap may hand to a guest that negotiated these
 * virtio-net features: CSUM for GUEST_CSUM, TSO4/TSO6/TSO_ECN/UFO for
 * GUEST_TSO4/GUEST_TSO6/GUEST_ECN/GUEST_UFO, each only with GUEST_CSUM (a
 * segment with a partial checksum needs it). */
unsigned net_tap_offload_flags(uint64_t guest_features);

/* TUNSETOFFLOAD on an attached fd (the setting is the whole tap's). Returns
 * 0 or -errno. */
int net_tap_set_offload(int fd, unsigned tun_flags);

/* Whether the tap behind fd is gone, without waiting: 0 if not, EBADFD when
 * the interface was deleted (its fds say POLLERR/POLLHUP), EBADF when fd
 * itself is not open (POLLNVAL). */
int net_tap_fd_gone(int fd);

/* MTU of the tap an attached fd belongs to, or -1. */
int net_tap_fd_mtu(int fd);

#endif
