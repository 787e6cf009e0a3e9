#include "devices/net/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define TAP_FLAGS (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR)

_Static_assert(sizeof(struct virtio_net_hdr_v1) == NET_TAP_VNET_HDR_LEN, "virtio-net v1 header is 12 bytes");

/* ioctl on a throw-away socket of the current network namespace. */
static int sock_ioctl(unsigned long req, struct ifreq *ifr)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return -errno;
	int r = ioctl(s, req, ifr) < 0 ? -errno : 0;
	close(s);
	return r;
}

static bool if_exists(const char *name)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	return sock_ioctl(SIOCGIFINDEX, &ifr) == 0;
}

/* Driver name and bus of an existing interface ("tun" and "tap" for a tap). */
static int if_driver(const char *name, struct ethtool_drvinfo *info)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	memset(info, 0, sizeof(*info));
	info->cmd = ETHTOOL_GDRVINFO;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_data = (void *)info;
	return sock_ioctl(SIOCETHTOOL, &ifr);
}

/* One fd of /dev/net/tun attached to the tap. Returns the fd or -errno. */
static int attach_fd(const char *name, short flags)
{
	int fd = open(NET_TAP_DEV, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = flags;
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Why TUNSETIFF said EINVAL for an interface that exists. */
static void explain_einval(const char *name, unsigned queues, char *err, size_t errlen)
{
	struct ethtool_drvinfo info;
	if (if_driver(name, &info) < 0)
		snprintf(err, errlen, "tap %s: interface %s exists and is not a tap device", name, name);
	else if (strcmp(info.driver, "tun") != 0)
		snprintf(err, errlen, "tap %s: interface %s exists and is not a tap device (driver %s)", name, name,
			 info.driver);
	else if (!strcmp(info.bus_info, "tun"))
		snprintf(err, errlen, "tap %s: %s is a tun (layer 3) device, not a tap; recreate it: "
			 "ip tuntap del %s mode tun && ip tuntap add %s mode tap multi_queue", name, name, name, name);
	else
		snprintf(err, errlen, "tap %s: tap %s exists without multi_queue, needed for queues=%u; recreate it: "
			 "ip tuntap del %s mode tap && ip tuntap add %s mode tap multi_queue", name, name, queues,
			 name, name);
}

static void explain(const char *name, unsigned queues, bool existed, int e, char *err, size_t errlen)
{
	switch (e) {
	case ENOENT:
	case ENODEV:
		snprintf(err, errlen, "tap %s: cannot open %s: %s (load the tun module: modprobe tun)", name,
			 NET_TAP_DEV, strerror(e));
		break;
	case EPERM:
	case EACCES:
		if (!existed)
			snprintf(err, errlen, "tap %s: cannot create tap %s: %s; create it beforehand: "
				 "ip tuntap add %s mode tap multi_queue user $(id -un)", name, name, strerror(e), name);
		else
			snprintf(err, errlen, "tap %s: cannot attach to tap %s: %s (it belongs to another user or "
				 "group; recreate it: ip tuntap add %s mode tap multi_queue user $(id -un))", name, name,
				 strerror(e), name);
		break;
	case EBUSY:
		snprintf(err, errlen, "tap %s: tap %s is in use by another process", name, name);
		break;
	case EINVAL:
		if (existed) {
			explain_einval(name, queues, err, errlen);
			break;
		}
		/* fall through */
	default:
		snprintf(err, errlen, "tap %s: TUNSETIFF: %s", name, strerror(e));
		break;
	}
}

int net_tap_open(struct net_tap *t, const char *name, unsigned queues, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < NET_TAP_MAX_QUEUES; i++)
		t->fds[i] = -1;
	if (!name[0] || strlen(name) >= sizeof(t->name)) {
		snprintf(err, errlen, "tap %s: not a valid interface name", name);
		return -1;
	}
	if (queues < 1 || queues > NET_TAP_MAX_QUEUES) {
		snprintf(err, errlen, "tap %s: %u queues: must be 1 to %u", name, queues, NET_TAP_MAX_QUEUES);
		return -1;
	}
	snprintf(t->name, sizeof(t->name), "%s", name);
	bool existed = if_exists(name);

	short flags = TAP_FLAGS | IFF_MULTI_QUEUE;
	int fd = attach_fd(name, flags);
	if (fd == -EINVAL && existed && queues == 1) {
		/* A single-queue tap serves one pair just as well. */
		struct ethtool_drvinfo info;
		if (if_driver(name, &info) == 0 && !strcmp(info.driver, "tun") && !strcmp(info.bus_info, "tap")) {
			flags = TAP_FLAGS;
			fd = attach_fd(name, flags);
		}
	}
	if (fd < 0) {
		explain(name, queues, existed, -fd, err, errlen);
		return -1;
	}
	t->fds[0] = fd;
	t->n_fds = 1;
	t->multi_queue = flags & IFF_MULTI_QUEUE;
	t->created = !existed;

	int hdr = NET_TAP_VNET_HDR_LEN;
	if (ioctl(fd, TUNSETVNETHDRSZ, &hdr) < 0) {
		snprintf(err, errlen, "tap %s: TUNSETVNETHDRSZ: %s", name, strerror(errno));
		net_tap_close(t);
		return -1;
	}
	for (unsigned i = 1; i < queues; i++) {
		fd = attach_fd(name, flags);
		if (fd < 0) {
			if (fd == -EINVAL || fd == -E2BIG)
				snprintf(err, errlen, "tap %s: cannot open queue %u of tap %s: %s (too many queues "
					 "attached?)", name, i, name, strerror(-fd));
			else
				explain(name, queues, true, -fd, err, errlen);
			net_tap_close(t);
			return -1;
		}
		t->fds[i] = fd;
		t->n_fds = i + 1;
	}
	return 0;
}

void net_tap_close(struct net_tap *t)
{
	for (unsigned i = 0; i < t->n_fds && i < NET_TAP_MAX_QUEUES; i++) {
		if (t->fds[i] >= 0)
			close(t->fds[i]);
		t->fds[i] = -1;
	}
	t->n_fds = 0;
}

int net_tap_set_queue(struct net_tap *t, unsigned q, bool on)
{
	if (q >= t->n_fds || t->fds[q] < 0)
		return -EINVAL;
	if (!t->multi_queue)
		return 0;
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = on ? IFF_ATTACH_QUEUE : IFF_DETACH_QUEUE;
	if (ioctl(t->fds[q], TUNSETQUEUE, &ifr) < 0) {
		/* Already in the wanted state: the kernel says EINVAL. */
		return -errno;
	}
	return 0;
}

unsigned net_tap_offload_flags(uint64_t f)
{
	unsigned o = 0;
	if (!(f & (1ull << VIRTIO_NET_F_GUEST_CSUM)))
		return 0;
	o |= TUN_F_CSUM;
	if (f & (1ull << VIRTIO_NET_F_GUEST_TSO4))
		o |= TUN_F_TSO4;
	if (f & (1ull << VIRTIO_NET_F_GUEST_TSO6))
		o |= TUN_F_TSO6;
	if ((f & (1ull << VIRTIO_NET_F_GUEST_ECN)) && (o & (TUN_F_TSO4 | TUN_F_TSO6)))
		o |= TUN_F_TSO_ECN;
	if (f & (1ull << VIRTIO_NET_F_GUEST_UFO))
		o |= TUN_F_UFO;
	return o;
}

int net_tap_set_offload(int fd, unsigned tun_flags)
{
	return ioctl(fd, TUNSETOFFLOAD, (unsigned long)tun_flags) < 0 ? -errno : 0;
}

int net_tap_fd_gone(int fd)
{
	struct pollfd t = { .fd = fd };
	if (poll(&t, 1, 0) <= 0)
		return 0;
	if (t.revents & POLLNVAL)
		return EBADF;
	return t.revents & (POLLERR | POLLHUP) ? EBADFD : 0;
}

int net_tap_fd_mtu(int fd)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (ioctl(fd, TUNGETIFF, &ifr) < 0)
		return -1;
	if (sock_ioctl(SIOCGIFMTU, &ifr) < 0)
		return -1;
	return ifr.ifr_mtu;
}
