#!/bin/sh
# Boots the default guest with a small disk and a 2-queue NIC, console on
# this terminal: what guest-images/boot-default.sh runs, right on a host with
# hardware KVM or inside the nested rig's L1 (tests/rig/l1-init.sh, where it
# is /rig/guest-images/run-default.sh). POSIX sh: it runs under dash in L1.
#
#   run-default.sh MINIVMM KERNEL INITRD
#
# Makes a 64 MiB disk image (ext4 when mke2fs is there) and a multiqueue
# tap, mvtap<pid>, for --disk and --net TAP,queues=2, and removes both when
# minivmm exits. Without the rights to make a tap (not root) the guest boots
# without a NIC, saying so. Exit status: minivmm's.
set -u
[ $# = 3 ] || { echo "usage: $0 MINIVMM KERNEL INITRD" >&2; exit 2; }
MINIVMM=$1 KERNEL=$2 INITRD=$3

# iproute2's ip and e2fsprogs' mke2fs by path: a busybox shell (L1's, started
# through busybox setsid/cttyhack) runs its own applets for bare names, and
# busybox's ip has no tuntap.
tool() {
	for d in /usr/sbin /sbin /usr/bin /bin; do
		[ -x "$d/$1" ] && [ "$(readlink -f "$d/$1")" != "$(readlink -f /bin/busybox 2>/dev/null)" ] \
			&& { echo "$d/$1"; return; }
	done
	echo "$1"
}
IP=$(tool ip)
MKE2FS=$(tool mke2fs)

DIR=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-default.XXXXXX") || exit 1
DISK=$DIR/disk.img
TAP=mvtap$$
tap_made=0
cleanup() {
	[ $tap_made = 1 ] && "$IP" tuntap del dev "$TAP" mode tap multi_queue 2>/dev/null
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

truncate -s 64M "$DISK" 2>/dev/null || dd if=/dev/zero of="$DISK" bs=1M count=0 seek=64 2>/dev/null \
	|| { echo "cannot make the disk image $DISK" >&2; exit 1; }
"$MKE2FS" -q -F -t ext4 -L minivmm "$DISK" >/dev/null 2>&1 || true
set -- --disk "$DISK"
if "$IP" tuntap add dev "$TAP" mode tap multi_queue 2>"$DIR/tap.err" && "$IP" link set "$TAP" up; then
	tap_made=1
	set -- "$@" --net "$TAP,queues=2"
	nic="eth0 with 2 queue pairs on tap $TAP"
else
	echo "no NIC: cannot make a tap ($(head -n 1 "$DIR/tap.err"); run as root)" >&2
	nic="no NIC"
fi

echo "default guest: 2 vCPUs, 512 MiB, disk /dev/vda (64 MiB), $nic"
echo "in the guest: ls /dev/vda /sys/class/net/eth0/queues; type poweroff to leave"
echo "Ctrl-A x stops the VM"
"$MINIVMM" --cpus 2 --mem 512 --kernel "$KERNEL" --initrd "$INITRD" "$@" --cmdline "console=ttyS0 quiet"
