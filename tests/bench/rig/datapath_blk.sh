#!/bin/sh
# Benchmark (rig scenario): block datapath, minivmm against QEMU on each
# transport, alternated in one L1: fio in the guest (tests/e2e/guest/
# datapath_bench.sh: 4 KiB random read and write at queue depth 1 and 32,
# 1 MiB sequential read and write, 1 and 4 jobs), 4 vCPUs, 4 request queues
# under both VMMs, the same 200 MiB raw image on L1's tmpfs (both through
# L1's page cache: tmpfs has no O_DIRECT; QEMU cache=writeback,aio=threads).
# QEMU is microvm on its virtio-mmio, and microvm with pcie=on for pci.
# Exits, injected interrupts, system calls and CPU per request come with each
# figure (datapath.inc). Results: LOGDIR/datapath_blk.txt (table) and .tsv.
#   tests/rig/rig.sh --with-qemu --scenario-dir tests/bench/rig datapath_blk
#   BENCH_RUNS=N (default 3), DP_SECS=S per cell (4), DP_CONFIGS="mv-pci qemu-pci" (a subset;
#   DP_CELLS, DP_EXIT_REASONS: see datapath.inc;
#   mv-mmio-uring, mv-pci-uring: minivmm with engine=uring; mv-mmio-sync-p50: with poll=50)
# rig-timeout: 3600
# rig-needs: qemu
GUEST_TIMEOUT=${GUEST_TIMEOUT:-600}   # before lib.sh, which defaults it to 120
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"
. "$(dirname "$0")/datapath.inc"

dp_begin
CMDLINE="console=ttyS0 panic=-1 quiet mvtest=datapath_bench dp=blk dp_secs=$DP_SECS${DP_CELLS:+ dp_cells=$DP_CELLS}"
img=/tmp/dp-blk.img
# Written once, fully allocated: reads find data, not holes, in every run.
rm -f $img
dd if=/dev/zero of=$img bs=1M count=200 2>/dev/null || fail "cannot write $img"

blk_run() { # blk_run CONFIG RUN
	case $1 in
	mv-*|alt-*) # mv-TRANSPORT[-ENGINE[-pUS]]: minivmm's default engine (sync) and poll unless named;
		# alt-...: the same with $MINIVMM_ALT (rig.sh's MINIVMM_ALT), an A/B in one L1
		_tr=$(echo "$1" | cut -d- -f2) _en=$(echo "$1" | cut -d- -f3) _po=$(echo "$1" | cut -d- -f4)
		_bin=$MINIVMM; case $1 in alt-*) _bin=${MINIVMM_ALT:?alt-* configs need MINIVMM_ALT} ;; esac
		dp_run "$1" "$2" "$_bin" --console stdio --guest-exit --cpus 4 --mem 512 --kernel "$DEBIAN_KERNEL" \
		--initrd "$GUEST_INITRD" --cmdline "$CMDLINE" \
		--disk "$img,queues=4,transport=$_tr${_en:+,engine=$_en}${_po:+,poll=${_po#p}}" ;;
	qemu-mmio) dp_run "$1" "$2" "$QEMU" -enable-kvm -M microvm -cpu host -smp 4 -m 512 -nographic -no-reboot \
		-kernel "$DEBIAN_KERNEL" -initrd "$GUEST_INITRD" -append "$CMDLINE" \
		-drive "id=d0,file=$img,format=raw,if=none,cache=writeback,aio=threads" \
		-device virtio-blk-device,drive=d0,num-queues=4 ;;
	qemu-pci) dp_run "$1" "$2" "$QEMU" -enable-kvm -M microvm,pcie=on -cpu host -smp 4 -m 512 -nographic -no-reboot \
		-kernel "$DEBIAN_KERNEL" -initrd "$GUEST_INITRD" -append "$CMDLINE" \
		-drive "id=d0,file=$img,format=raw,if=none,cache=writeback,aio=threads" \
		-device virtio-blk-pci,drive=d0,num-queues=4 ;;
	*) fail "unknown config $1" ;;
	esac
}

dp_rounds blk_run "mv-mmio qemu-mmio mv-pci qemu-pci mv-pci-uring mv-mmio-uring"
rm -f $img
dp_finish "block datapath in L1 (TCG): fio, 4 vCPUs, 4 queues" \
	"mv-mmio:qemu-mmio qemu-mmio:- mv-pci:qemu-pci qemu-pci:- mv-pci-uring:qemu-pci mv-mmio-uring:qemu-mmio"
