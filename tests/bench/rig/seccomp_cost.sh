#!/bin/sh
# Benchmark (rig scenario, not a pass/fail test): what the seccomp filters
# cost. Boot-to-init and iperf3 throughput (2 vCPUs, 2 queue pairs, worker
# threads on virtio-pci: the datapath where every packet is a filtered
# readv/writev) with --seccomp on and off, alternated in one L1; reported as
# on/off ratios of the medians. Run with:
#   tests/rig/rig.sh --scenario-dir tests/bench/rig seccomp_cost
# rig-timeout: 1200
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"
. "$(dirname "$0")/bench.inc"

need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
RUNS=${BENCH_RUNS:-3}
host_tap --iperf

# Mbit/s from a net_iperf guest line ("MVTEST net tx: 812 Mbit/s").
mbits() {
	tr -d '\r' <"$1" | sed -n "s/^MVTEST net $2: \([0-9.]*\) \([KMG]\)bit\/s.*/\1 \2/p" |
		awk '{ v = $1; if ($2 == "G") v *= 1000; if ($2 == "K") v /= 1000; print v }'
}

for mode in on off; do eval "init_$mode= tx_$mode= rx_$mode="; done
lost=
i=0
while [ $i -lt "$RUNS" ]; do
	for mode in on off; do
		# A boot of the emulated L1 hangs now and then whatever the mode (an L2
		# that never reaches init): such a run is dropped and counted, not timed.
		out=$(BOOT_LIMIT=180 time_boot "boot-$mode-$i" "$MINIVMM" --guest-exit --seccomp $mode --cpus 1 --mem 256 \
			--kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" --cmdline "console=ttyS0 panic=-1 mvtest=marker")
		case $out in
		[0-9]*" "[0-9]*) set -- $out; eval "init_$mode=\"\$init_$mode $1\"" ;;
		*) lost="$lost boot-$mode-$i"; note "boot-$mode-$i lost: $(echo "$out" | tail -n 1)" ;;
		esac
		GUEST_TIMEOUT=240 run_guest "net-$mode-$i" --seccomp $mode --cpus 2 --mem 512 --kernel "$DEBIAN_KERNEL" \
			--initrd "$GUEST_INITRD" --net "tap0,queues=2,vhost=off,transport=pci" \
			--cmdline "console=ttyS0 panic=-1 quiet mvtest=net_iperf IPERF_SECS=5"
		tx=$(mbits "$GUEST_LOG" tx) rx=$(mbits "$GUEST_LOG" rx)
		if [ "$GUEST_RC" != 0 ] || [ -z "$tx" ] || [ -z "$rx" ]; then
			lost="$lost net-$mode-$i(rc=$GUEST_RC)"; show_tail "$GUEST_LOG"; continue
		fi
		eval "tx_$mode=\"\$tx_$mode $tx\"; rx_$mode=\"\$rx_$mode $rx\""
	done
	i=$((i + 1))
done

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
bi_on=$(median $init_on) bi_off=$(median $init_off)
tx_on_m=$(median $tx_on) tx_off_m=$(median $tx_off) rx_on_m=$(median $rx_on) rx_off_m=$(median $rx_off)
for v in "$bi_on" "$bi_off" "$tx_on_m" "$tx_off_m" "$rx_on_m" "$rx_off_m"; do
	[ -n "$v" ] || fail "every run of some measure was lost:$lost"
done
{
	echo "seccomp cost in L1 (TCG-emulated SVM), $RUNS alternated runs per mode, medians"
	echo "  boot to init: on $bi_on s, off $bi_off s (runs on:$init_on off:$init_off)  ratio on/off $(ratio $bi_on $bi_off)"
	echo "  iperf3 guest->host: on $tx_on_m, off $tx_off_m Mbit/s (runs on:$tx_on off:$tx_off)  ratio $(ratio $tx_on_m $tx_off_m)"
	echo "  iperf3 host->guest: on $rx_on_m, off $rx_off_m Mbit/s (runs on:$rx_on off:$rx_off)  ratio $(ratio $rx_on_m $rx_off_m)"
	echo "  runs lost (hung or failed, dropped):${lost:- none}"
} | tee "$LOGDIR/seccomp_cost.txt"
pass "seccomp on/off: boot $(ratio $bi_on $bi_off), tx $(ratio $tx_on_m $tx_off_m), rx $(ratio $rx_on_m $rx_off_m)"
