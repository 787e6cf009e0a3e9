#!/bin/sh
# Benchmark (rig scenario): network datapath, minivmm against QEMU on each
# transport and backend, alternated in one L1: iperf3 in the guest to the
# host side of a 4-queue tap (tests/e2e/guest/datapath_bench.sh: guest to
# host and host to guest, 1 and 4 streams), 4 vCPUs, 4 queue pairs. minivmm's
# worker threads are compared with QEMU's own (userspace) backend, vhost-net
# with vhost-net. QEMU is microvm on its virtio-mmio, and microvm with
# pcie=on for pci (romfile= : no option ROM, which microvm has no firmware for). Exits, injected interrupts, system calls and CPU per packet
# come with each figure (datapath.inc). Results: LOGDIR/datapath_net.txt and .tsv.
#   tests/rig/rig.sh --with-qemu --scenario-dir tests/bench/rig datapath_net
#   BENCH_RUNS=N (default 3), DP_SECS=S per cell (4), DP_CONFIGS (a subset of the configs below),
#   DP_CELLS, DP_EXIT_REASONS: see datapath.inc
# rig-timeout: 3600
# rig-needs: qemu
GUEST_TIMEOUT=${GUEST_TIMEOUT:-300}   # before lib.sh, which defaults it to 120
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"
. "$(dirname "$0")/datapath.inc"

dp_begin
host_tap --iperf
CMDLINE="console=ttyS0 panic=-1 quiet mvtest=datapath_bench dp=net dp_secs=$DP_SECS${DP_CELLS:+ dp_cells=$DP_CELLS}"

net_run() { # net_run CONFIG RUN; CONFIG: VMM-TRANSPORT-BACKEND[-tUS] (tUS: minivmm's tx_irq_delay=US)
	_tr=$(echo "$1" | cut -d- -f2) _be=$(echo "$1" | cut -d- -f3) _td=$(echo "$1" | cut -d- -f4)
	_vh=off; [ "$_be" = vhost ] && _vh=on
	iperf_server_start 10.0.2.1
	case $1 in
	mv-*|alt-*) # alt-...: with $MINIVMM_ALT (rig.sh's MINIVMM_ALT), an A/B in one L1
		_bin=$MINIVMM; case $1 in alt-*) _bin=${MINIVMM_ALT:?alt-* configs need MINIVMM_ALT} ;; esac
		dp_run "$1" "$2" "$_bin" --console stdio --guest-exit --cpus 4 --mem 512 --kernel "$DEBIAN_KERNEL" \
		--initrd "$GUEST_INITRD" --cmdline "$CMDLINE" --net "tap0,queues=4,vhost=$_vh,transport=$_tr${_td:+,tx_irq_delay=${_td#t}}" ;;
	qemu-*)
		_m=microvm _d=virtio-net-device
		[ "$_tr" = pci ] && _m=microvm,pcie=on _d=virtio-net-pci,vectors=10,romfile=
		dp_run "$1" "$2" "$QEMU" -enable-kvm -M $_m -cpu host -smp 4 -m 512 -nographic -no-reboot \
			-kernel "$DEBIAN_KERNEL" -initrd "$GUEST_INITRD" -append "$CMDLINE" \
			-netdev "tap,id=n0,ifname=tap0,script=no,downscript=no,queues=4,vhost=$_vh" -device "$_d,netdev=n0,mq=on" ;;
	esac
	iperf_server_stop
}

dp_rounds net_run "mv-mmio-worker qemu-mmio-user mv-mmio-vhost qemu-mmio-vhost mv-pci-worker qemu-pci-user mv-pci-vhost qemu-pci-vhost"
dp_finish "network datapath in L1 (TCG): iperf3, 4 vCPUs, 4 queue pairs" \
	"mv-mmio-worker:qemu-mmio-user qemu-mmio-user:- mv-mmio-vhost:qemu-mmio-vhost qemu-mmio-vhost:- mv-pci-worker:qemu-pci-user qemu-pci-user:- mv-pci-vhost:qemu-pci-vhost qemu-pci-vhost:-"
