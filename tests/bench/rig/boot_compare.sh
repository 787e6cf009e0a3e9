#!/bin/sh
# Benchmark (rig scenario, not a pass/fail test): boot-to-init and
# boot-to-poweroff of the same L2 kernel + initramfs under minivmm and under
# QEMU microvm, alternated in one L1, reported as ratios. Run with:
#   tests/rig/rig.sh --with-qemu --scenario-dir tests/bench/rig boot_compare
# With MINIVMM_ALT (rig.sh's: a second binary), that one is timed too, in the
# same rounds (an A/B in one L1).
# rig-timeout: 900
# rig-needs: qemu
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"
. "$(dirname "$0")/bench.inc"

need_minivmm
need_qemu
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
RUNS=${BENCH_RUNS:-3}
CMDLINE="console=ttyS0 panic=-1 mvtest=marker"

mv_init= mv_end= q_init= q_end= a_init= a_end=
i=0
while [ $i -lt "$RUNS" ]; do
	set -- $(time_boot "bench-minivmm-$i" "$MINIVMM" --guest-exit --cpus 1 --mem 256 --kernel "$DEBIAN_KERNEL" \
		--initrd "$GUEST_INITRD" --cmdline "$CMDLINE")
	mv_init="$mv_init $1"; mv_end="$mv_end $2"
	set -- $(time_boot "bench-qemu-$i" "$QEMU" -enable-kvm -M microvm -cpu host -smp 1 -m 256 -nographic \
		-no-reboot -kernel "$DEBIAN_KERNEL" -initrd "$GUEST_INITRD" -append "$CMDLINE")
	q_init="$q_init $1"; q_end="$q_end $2"
	if [ -n "${MINIVMM_ALT:-}" ]; then
		set -- $(time_boot "bench-alt-$i" "$MINIVMM_ALT" --guest-exit --cpus 1 --mem 256 --kernel "$DEBIAN_KERNEL" \
			--initrd "$GUEST_INITRD" --cmdline "$CMDLINE")
		a_init="$a_init $1"; a_end="$a_end $2"
	fi
	i=$((i + 1))
done

mi=$(median $mv_init); me=$(median $mv_end); qi=$(median $q_init); qe=$(median $q_end)
{
	echo "boot benchmark in L1 (TCG-emulated SVM; absolute times are emulator speed), $RUNS runs each, medians"
	echo "  minivmm to init: $mi s (runs:$mv_init)  to exit: $me s (runs:$mv_end)"
	echo "  qemu microvm to init: $qi s (runs:$q_init)  to exit: $qe s (runs:$q_end)"
	[ -n "$a_init" ] && echo "  minivmm-alt ($MINIVMM_ALT) to init: $(median $a_init) s (runs:$a_init)  to exit: $(median $a_end) s (runs:$a_end)"
	awk -v a="$mi" -v b="$qi" -v c="$me" -v d="$qe" \
		'BEGIN { printf "  ratio minivmm/qemu: to init %.2f, to exit %.2f\n", a / b, c / d }'
} | tee "$LOGDIR/boot_compare.txt"
pass "minivmm/qemu boot to init $(awk -v a="$mi" -v b="$qi" 'BEGIN { printf "%.2f", a / b }') (see boot_compare.txt)"
