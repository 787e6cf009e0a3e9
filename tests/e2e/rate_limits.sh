#!/bin/sh
# Rate limits as a user sets them: a disk with bw=, a disk with iops=, a NIC
# with bw= (worker backend, one queue pair: the limit is split over pairs),
# on virtio-pci. fio and iperf3 in the guest (tests/e2e/guest/rate_limits.sh)
# must measure within 10% of each limit once the burst is spent; TCP's
# goodput is what iperf3 sees, a little under the frames' bytes that the NIC
# meters, so the network is allowed down to 85%.
# rig-timeout: 300
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
host_tap --iperf

DISK_BW=20000000    # bytes/s
DISK_IOPS=300
NET_BW=2500000      # bytes/s: 20 Mbit/s
a=/tmp/rate-a.img b=/tmp/rate-b.img
rm -f $a $b
dd if=/dev/zero of=$a bs=1M count=64 2>/dev/null && dd if=/dev/zero of=$b bs=1M count=64 2>/dev/null ||
	fail "cannot write the images"
run_guest rate --cpus 2 --mem 512 --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
	--disk "$a,bw=$DISK_BW,transport=pci" --disk "$b,iops=$DISK_IOPS,transport=pci" \
	--net "tap0,queues=1,bw=$NET_BW,transport=pci" \
	--cmdline "console=ttyS0 panic=-1 quiet mvtest=rate_limits"
rm -f $a $b
expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test rate_limits exit=0' "the guest's measurements did not finish"
expect_rc 0 minivmm
got() { tr -d '\r' <"$GUEST_LOG" | sed -n "s/^MVTEST rate $1 \([0-9]*\)$/\1/p" | tail -n 1; }
out= bad=
check() { # check NAME MEASURED LIMIT MIN-RATIO
	r=$(awk -v m="$2" -v l="$3" 'BEGIN { printf "%.3f", m / l }')
	out="$out $1=$2/$3($r)"
	awk -v r="$r" -v lo="$4" 'BEGIN { exit !(r >= lo && r <= 1.10) }' || bad="$bad $1 at ${r}x of its limit;"
}
check disk_bw "$(got disk_bw)" $DISK_BW 0.90
check disk_iops "$(got disk_iops)" $DISK_IOPS 0.90
check net_tx "$(got net_tx)" $((NET_BW * 8)) 0.85
check net_rx "$(got net_rx)" $((NET_BW * 8)) 0.85
[ -z "$bad" ] || { show_tail "$GUEST_LOG"; fail "outside the limits:$bad (measured/limit:$out)"; }
pass "measured/limit:$out"
