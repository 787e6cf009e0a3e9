#!/bin/sh
# Benchmark (rig scenario): sequential block throughput in the guest, minivmm
# vs QEMU microvm, same kernel, initramfs and image, both on virtio-mmio
# (microvm's transport), plus minivmm on virtio-pci. Reported as ratios.
# Both VMMs go through the L1 page cache (the image is on tmpfs, which has
# no O_DIRECT; minivmm uses plain preadv/pwritev, QEMU cache=writeback).
#   tests/rig/rig.sh --scenario-dir tests/bench/rig blk_compare
# rig-timeout: 900
# rig-needs: qemu
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"

need_minivmm
need_qemu
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
RUNS=${BENCH_RUNS:-3}
CMDLINE="console=ttyS0 panic=-1 quiet mvtest=blk_bench"
img=/tmp/bench.img

# rate LOG KIND: the MB/s figure dd printed for "write" or "read"
rate() { tr -d '\r' <"$1" | sed -n "s/^MVTEST bench $2: .*, \([0-9.]*\)MB\/s.*/\1/p" | tail -n 1; }

runs() { # runs NAME CMD...: one boot; sets R_W and R_R (MB/s)
	_n=$1; shift
	rm -f $img; truncate -s 128M $img
	run_cmd "$_n" "$@"
	expect_rc 0 "$_n"
	R_W=$(rate "$GUEST_LOG" write); R_R=$(rate "$GUEST_LOG" read)
	[ -n "$R_W" ] && [ -n "$R_R" ] || { show_tail "$GUEST_LOG"; fail "$_n: no dd rate in the log"; }
}

mw= mr= pw= pr= qw= qr=
i=0
while [ $i -lt "$RUNS" ]; do
	runs "blkbench-minivmm-mmio-$i" "$MINIVMM" --console stdio --guest-exit --kernel "$DEBIAN_KERNEL" \
		--initrd "$GUEST_INITRD" --disk "$img,transport=mmio" --cmdline "$CMDLINE"
	mw="$mw $R_W"; mr="$mr $R_R"
	runs "blkbench-minivmm-pci-$i" "$MINIVMM" --console stdio --guest-exit --kernel "$DEBIAN_KERNEL" \
		--initrd "$GUEST_INITRD" --disk "$img,transport=pci" --cmdline "$CMDLINE"
	pw="$pw $R_W"; pr="$pr $R_R"
	runs "blkbench-qemu-$i" "$QEMU" -enable-kvm -M microvm -cpu host -m 256 -nographic -no-reboot \
		-kernel "$DEBIAN_KERNEL" -initrd "$GUEST_INITRD" -append "$CMDLINE" \
		-drive "id=d0,file=$img,format=raw,if=none,cache=writeback,aio=threads" -device virtio-blk-device,drive=d0
	qw="$qw $R_W"; qr="$qr $R_R"
	i=$((i + 1))
done
rm -f $img
median() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }
{
	echo "block benchmark in L1 (dd 64 MiB, direct I/O, 1 MiB blocks), $RUNS boots each, medians in MB/s"
	echo "  minivmm mmio: write $(median $mw) read $(median $mr)   (write:$mw read:$mr)"
	echo "  minivmm pci:  write $(median $pw) read $(median $pr)   (write:$pw read:$pr)"
	echo "  qemu microvm: write $(median $qw) read $(median $qr)   (write:$qw read:$qr)"
	awk -v a="$(median $mw)" -v b="$(median $qw)" -v c="$(median $mr)" -v d="$(median $qr)" \
		-v e="$(median $pw)" -v f="$(median $pr)" \
		'BEGIN { printf "  ratio minivmm/qemu: mmio write %.2f read %.2f; pci write %.2f read %.2f\n", a/b, c/d, e/b, f/d }'
} | tee "$LOGDIR/blk_compare.txt"
pass "see blk_compare.txt"
