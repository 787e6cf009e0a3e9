/* devices/net/tap.c on real taps. Every test runs in a network namespace of
 * its own (Criterion forks a process per test; unshare(CLONE_NEWNET) there),
 * so the taps it makes vanish with it and nothing touches the host's
 * interfaces. Needs root and /dev/net/tun; skipped (with the reason) without. */
#define _GNU_SOURCE
#include <criterion/criterion.h>
#include <criterion/redirect.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "devices/net/tap.h"

static struct net_tap tap;
static char err[512];

static void need_netns(void)
{
	if (geteuid() != 0)
		cr_skip_test("SKIP: not root: real taps need CAP_NET_ADMIN");
	if (access(NET_TAP_DEV, R_OK | W_OK) != 0)
		cr_skip_test("SKIP: %s: %s", NET_TAP_DEV, strerror(errno));
	if (unshare(CLONE_NEWNET) != 0)
		cr_skip_test("SKIP: unshare(CLONE_NEWNET): %s", strerror(errno));
}

static void setup(void)
{
	memset(&tap, 0, sizeof(tap));
	err[0] = 0;
}

static void teardown(void)
{
	net_tap_close(&tap);
}

TestSuite(net_tap, .init = setup, .fini = teardown);

static bool if_exists(const char *name)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(s, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	bool r = ioctl(s, SIOCGIFINDEX, &ifr) == 0;
	close(s);
	return r;
}

/* A persistent tap or tun made the way `ip tuntap add` makes it. */
static void make_persistent(const char *name, short flags)
{
	int fd = open(NET_TAP_DEV, O_RDWR | O_CLOEXEC);
	cr_assert_geq(fd, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	ifr.ifr_flags = flags;
	cr_assert_eq(ioctl(fd, TUNSETIFF, &ifr), 0, "TUNSETIFF %s: %s", name, strerror(errno));
	cr_assert_eq(ioctl(fd, TUNSETPERSIST, 1), 0);
	close(fd);
}

static short tun_flags(int fd)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	cr_assert_eq(ioctl(fd, TUNGETIFF, &ifr), 0, "TUNGETIFF: %s", strerror(errno));
	return ifr.ifr_flags;
}

Test(net_tap, creates_a_multiqueue_tap)
{
	need_netns();
	cr_assert(!if_exists("mvt0"));
	cr_assert_eq(net_tap_open(&tap, "mvt0", 4, err, sizeof(err)), 0, "%s", err);
	cr_assert(if_exists("mvt0"));
	cr_assert_eq(tap.n_fds, 4);
	cr_assert(tap.multi_queue);
	cr_assert(tap.created);
	cr_assert_str_eq(tap.name, "mvt0");
	for (unsigned i = 0; i < 4; i++) {
		int fd = tap.fds[i];
		cr_assert_geq(fd, 0);
		short f = tun_flags(fd);
		cr_assert_eq(f & (IFF_TAP | IFF_TUN), IFF_TAP, "queue %u flags 0x%x", i, f);
		cr_assert(f & IFF_NO_PI);
		cr_assert(f & IFF_VNET_HDR);
		cr_assert(f & IFF_MULTI_QUEUE);
		cr_assert(fcntl(fd, F_GETFL) & O_NONBLOCK);
		cr_assert(fcntl(fd, F_GETFD) & FD_CLOEXEC);
		int hdr = 0;
		cr_assert_eq(ioctl(fd, TUNGETVNETHDRSZ, &hdr), 0);
		cr_assert_eq(hdr, 12);
		for (unsigned j = 0; j < i; j++)
			cr_assert_neq(fd, tap.fds[j]);
	}
	/* nothing to read yet, and no blocking */
	char buf[64];
	cr_assert_eq(read(tap.fds[0], buf, sizeof(buf)), -1);
	cr_assert_eq(errno, EAGAIN);
	net_tap_close(&tap);
	cr_assert(!if_exists("mvt0"), "a tap we created goes away with its fds");
	net_tap_close(&tap);   /* twice is fine */
}

Test(net_tap, attaches_to_an_existing_multiqueue_tap)
{
	need_netns();
	make_persistent("mvt1", IFF_TAP | IFF_NO_PI | IFF_MULTI_QUEUE);
	cr_assert_eq(net_tap_open(&tap, "mvt1", 2, err, sizeof(err)), 0, "%s", err);
	cr_assert(!tap.created);
	cr_assert(tap.multi_queue);
	cr_assert(tun_flags(tap.fds[1]) & IFF_VNET_HDR);
	net_tap_close(&tap);
	cr_assert(if_exists("mvt1"), "a tap the user made stays");
}

Test(net_tap, single_queue_tap)
{
	need_netns();
	make_persistent("mvt2", IFF_TAP | IFF_NO_PI);
	/* one pair: fine without multi_queue */
	cr_assert_eq(net_tap_open(&tap, "mvt2", 1, err, sizeof(err)), 0, "%s", err);
	cr_assert(!tap.multi_queue);
	cr_assert_eq(net_tap_set_queue(&tap, 0, true), 0);
	net_tap_close(&tap);
	/* two pairs: a clear error with the fix */
	cr_assert_eq(net_tap_open(&tap, "mvt2", 2, err, sizeof(err)), -1);
	cr_assert(strstr(err, "tap mvt2:"), "%s", err);
	cr_assert(strstr(err, "without multi_queue"), "%s", err);
	cr_assert(strstr(err, "ip tuntap add mvt2 mode tap multi_queue"), "%s", err);
	cr_assert_eq(tap.n_fds, 0);
}

Test(net_tap, tun_device_refused)
{
	need_netns();
	make_persistent("mvt3", IFF_TUN | IFF_NO_PI | IFF_MULTI_QUEUE);
	cr_assert_eq(net_tap_open(&tap, "mvt3", 2, err, sizeof(err)), -1);
	cr_assert(strstr(err, "tun (layer 3) device, not a tap"), "%s", err);
	cr_assert(!strchr(err, '\n'));
}

Test(net_tap, other_interface_refused)
{
	need_netns();
	cr_assert_eq(net_tap_open(&tap, "lo", 1, err, sizeof(err)), -1);
	cr_assert(strstr(err, "tap lo: interface lo exists and is not a tap device"), "%s", err);
}

Test(net_tap, bad_arguments)
{
	cr_assert_eq(net_tap_open(&tap, "", 1, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not a valid interface name"), "%s", err);
	cr_assert_eq(net_tap_open(&tap, "abcdefghijklmnopq", 1, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not a valid interface name"), "%s", err);
	cr_assert_eq(net_tap_open(&tap, "mvt4", 0, err, sizeof(err)), -1);
	cr_assert(strstr(err, "0 queues"), "%s", err);
	cr_assert_eq(net_tap_open(&tap, "mvt4", NET_TAP_MAX_QUEUES + 1, err, sizeof(err)), -1);
	cr_assert_eq(tap.n_fds, 0);
}

/* Without CAP_NET_ADMIN a tap cannot be created: the message tells how to
 * create it beforehand. */
Test(net_tap, cannot_create_without_cap_net_admin)
{
	need_netns();
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct data[2];
	cr_assert_eq(syscall(SYS_capget, &hdr, data), 0);
	data[CAP_NET_ADMIN / 32].effective &= ~(1u << (CAP_NET_ADMIN % 32));
	cr_assert_eq(syscall(SYS_capset, &hdr, data), 0, "capset: %s", strerror(errno));

	cr_assert_eq(net_tap_open(&tap, "mvt5", 2, err, sizeof(err)), -1);
	cr_assert(strstr(err, "tap mvt5: cannot create tap mvt5"), "%s", err);
	cr_assert(strstr(err, "ip tuntap add mvt5 mode tap multi_queue"), "%s", err);
	cr_assert(!if_exists("mvt5"));
}

Test(net_tap, detach_and_attach_queues)
{
	need_netns();
	cr_assert_eq(net_tap_open(&tap, "mvt6", 2, err, sizeof(err)), 0, "%s", err);
	/* (which queues frames go to is checked in test_virtio_net) */
	cr_assert_eq(net_tap_set_queue(&tap, 1, true), -EINVAL, "already attached");
	cr_assert_eq(net_tap_set_queue(&tap, 1, false), 0);
	cr_assert_eq(net_tap_set_queue(&tap, 1, false), -EINVAL, "already detached");
	cr_assert_eq(net_tap_set_queue(&tap, 1, true), 0);
	cr_assert_eq(net_tap_set_queue(&tap, 0, false), 0);
	cr_assert_eq(net_tap_set_queue(&tap, 0, true), 0);
	cr_assert_eq(net_tap_set_queue(&tap, 2, true), -EINVAL, "no such queue");
}

Test(net_tap, offload_flags_follow_guest_features)
{
	const uint64_t csum = 1ull << VIRTIO_NET_F_GUEST_CSUM, tso4 = 1ull << VIRTIO_NET_F_GUEST_TSO4,
		       tso6 = 1ull << VIRTIO_NET_F_GUEST_TSO6, ecn = 1ull << VIRTIO_NET_F_GUEST_ECN,
		       ufo = 1ull << VIRTIO_NET_F_GUEST_UFO;
	cr_assert_eq(net_tap_offload_flags(0), 0);
	cr_assert_eq(net_tap_offload_flags(tso4 | tso6 | ufo), 0, "no segment offload without checksum offload");
	cr_assert_eq(net_tap_offload_flags(csum), TUN_F_CSUM);
	cr_assert_eq(net_tap_offload_flags(csum | tso4), TUN_F_CSUM | TUN_F_TSO4);
	cr_assert_eq(net_tap_offload_flags(csum | tso4 | tso6), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
	cr_assert_eq(net_tap_offload_flags(csum | ecn), TUN_F_CSUM, "ECN only goes with TSO");
	cr_assert_eq(net_tap_offload_flags(csum | tso6 | ecn), TUN_F_CSUM | TUN_F_TSO6 | TUN_F_TSO_ECN);
	cr_assert_eq(net_tap_offload_flags(csum | ufo), TUN_F_CSUM | TUN_F_UFO);
	/* host-side features do not matter */
	cr_assert_eq(net_tap_offload_flags(csum | (1ull << VIRTIO_NET_F_HOST_TSO4) | (1ull << VIRTIO_NET_F_CSUM)),
		     TUN_F_CSUM);
}

Test(net_tap, set_offload_and_mtu)
{
	need_netns();
	cr_assert_eq(net_tap_open(&tap, "mvt7", 1, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(net_tap_set_offload(tap.fds[0], TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), 0);
	cr_assert_eq(net_tap_set_offload(tap.fds[0], 0), 0);
	cr_assert_eq(net_tap_set_offload(tap.fds[0], 0x8000), -EINVAL, "unknown offload bit");
	cr_assert_eq(net_tap_fd_mtu(tap.fds[0]), 1500);

	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, "mvt7");
	ifr.ifr_mtu = 9000;
	cr_assert_eq(ioctl(s, SIOCSIFMTU, &ifr), 0);
	close(s);
	cr_assert_eq(net_tap_fd_mtu(tap.fds[0]), 9000);
	cr_assert_eq(net_tap_fd_mtu(-1), -1);
}

/* The tap's fds say so once the interface is deleted under them (the devices'
 * "tap is gone" path); a closed fd is EBADF, not a gone tap. */
Test(net_tap, a_deleted_tap_is_gone)
{
	need_netns();
	cr_assert_eq(net_tap_open(&tap, "mvt8", 2, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(net_tap_fd_gone(tap.fds[0]), 0);
	cr_assert_eq(net_tap_fd_gone(tap.fds[1]), 0);
	cr_assert_eq(system("ip link del mvt8"), 0, "ip link del mvt8 failed (iproute2 installed?)");
	cr_assert_eq(net_tap_fd_gone(tap.fds[0]), EBADFD);
	cr_assert_eq(net_tap_fd_gone(tap.fds[1]), EBADFD);
	int fd = dup(tap.fds[0]);
	close(fd);
	cr_assert_eq(net_tap_fd_gone(fd), EBADF);
}
