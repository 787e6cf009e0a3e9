#!/bin/sh
# Benchmark (rig scenario): iperf3 -P 4 guest<->L1 through a 4-queue tap,
# minivmm vs QEMU microvm on the same kernel and initramfs, both on
# virtio-mmio (microvm's transport) with vhost=off and vhost=on, plus
# minivmm on virtio-pci; alternated in one L1. Ratios are minivmm/QEMU.
#   tests/rig/rig.sh --scenario-dir tests/bench/rig net_compare
# rig-timeout: 900
# rig-needs: qemu
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"

need_minivmm
need_qemu
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
host_tap --iperf
CMDLINE="console=ttyS0 panic=-1 quiet mvtest=net_iperf IPERF_SECS=5"

# mbit LOG tx|rx: the iperf3 SUM in Mbit/s
mbit() {
	tr -d '\r' <"$1" | sed -n "s/^MVTEST net $2: \([0-9.]*\) \([KMG]\)bit\/s/\1 \2/p" | tail -n 1 |
		awk '{ v = $1; if ($2 == "K") v /= 1000; if ($2 == "G") v *= 1000; printf "%.1f", v }'
}
one() { # one NAME CMD...: sets TX RX
	run_cmd "$@"
	expect_rc 0 "$1"
	TX=$(mbit "$GUEST_LOG" tx); RX=$(mbit "$GUEST_LOG" rx)
	[ -n "$TX" ] && [ -n "$RX" ] || { show_tail "$GUEST_LOG"; fail "$1: no iperf3 result"; }
}
out="iperf3 -P 4, 4 vCPUs, 4 queue pairs, in L1 (TCG); Mbit/s guest->host (tx) and host->guest (rx)"
for vh in off on; do
	one "netbench-minivmm-mmio-$vh" "$MINIVMM" --console stdio --guest-exit --cpus 4 --mem 512 --kernel "$DEBIAN_KERNEL" \
		--initrd "$GUEST_INITRD" --net "tap0,queues=4,vhost=$vh,transport=mmio" --cmdline "$CMDLINE"
	mtx=$TX; mrx=$RX
	one "netbench-minivmm-pci-$vh" "$MINIVMM" --console stdio --guest-exit --cpus 4 --mem 512 --kernel "$DEBIAN_KERNEL" \
		--initrd "$GUEST_INITRD" --net "tap0,queues=4,vhost=$vh,transport=pci" --cmdline "$CMDLINE"
	ptx=$TX; prx=$RX
	one "netbench-qemu-$vh" "$QEMU" -enable-kvm -M microvm -cpu host -smp 4 -m 512 -nographic -no-reboot \
		-kernel "$DEBIAN_KERNEL" -initrd "$GUEST_INITRD" -append "$CMDLINE" \
		-netdev "tap,id=n0,ifname=tap0,script=no,downscript=no,queues=4,vhost=$vh" \
		-device virtio-net-device,netdev=n0,mq=on
	qtx=$TX; qrx=$RX
	out="$out
vhost=$vh: minivmm mmio tx $mtx rx $mrx | minivmm pci tx $ptx rx $prx | qemu microvm tx $qtx rx $qrx
vhost=$vh: ratio minivmm/qemu: mmio tx $(awk -v a=$mtx -v b=$qtx 'BEGIN{printf "%.2f", a/b}') rx $(awk -v a=$mrx -v b=$qrx 'BEGIN{printf "%.2f", a/b}'); pci tx $(awk -v a=$ptx -v b=$qtx 'BEGIN{printf "%.2f", a/b}') rx $(awk -v a=$prx -v b=$qrx 'BEGIN{printf "%.2f", a/b}')"
done
echo "$out" | tee "$LOGDIR/net_compare.txt"
pass "see net_compare.txt"
