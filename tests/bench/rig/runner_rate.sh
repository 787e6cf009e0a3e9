#!/bin/sh
# Benchmark (rig scenario, not a pass/fail test): how many microVMs per second the function
# runner starts and completes, minivmm against QEMU microvm measured in the same L1. Each batch
# is the example's 20 commands (tests/runner/example.cmds), all 20 VMs at once, same kernel,
# initramfs, memory and command line; the batches alternate minivmm, QEMU, for each kernel.
# Every result must be verified (status through the guest port, output through the console) or
# the batch does not count. Run with:
#   tests/rig/rig.sh --scenario-dir tests/bench/rig runner_rate
# BENCH_KERNELS="minimal debian" (default both), BENCH_ROUNDS (default 1), BENCH_MEM (96).
# rig-timeout: 3000
# rig-needs: qemu
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"

need_minivmm
need_qemu
need_file GUEST_INITRD
RUNNER_DIR=$(cd "$(dirname "$RIG_LIB")/../runner" && pwd) || fail "tests/runner is missing"
ROUNDS=${BENCH_ROUNDS:-1}
MEM=${BENCH_MEM:-96}
KERNELS=${BENCH_KERNELS:-minimal debian}
REPORT=$LOGDIR/runner_rate.txt

grep -v '^#' "$RUNNER_DIR/example.cmds" | cut -f4- | grep . >"$LOGDIR/runner-rate-commands"
n=$(wc -l <"$LOGDIR/runner-rate-commands")

# batch VMM KERNEL_NAME KERNEL ROUND: one batch of all commands at once; prints its VMs/s.
batch() {
	_out=$LOGDIR/runner-rate-$1-$2-$4
	sh "$RUNNER_DIR/function_runner.sh" --vmm "$1" --minivmm "$MINIVMM" --qemu "$QEMU" \
		--kernel "$3" --initrd "$GUEST_INITRD" --mem "$MEM" --timeout 1200 --out "$_out" \
		-f "$LOGDIR/runner-rate-commands" >"$_out.log" 2>&1
	_rc=$?
	[ $_rc = 0 ] || { tail -n 30 "$_out.log" >&2; fail "$1 with the $2 kernel: runner exited $_rc (see $(basename "$_out").log)"; }
	. "$_out/summary"
	note "$1 $2 round $4: $n VMs in $wall_secs s, $vms_per_sec VMs/s, mean $mean_vm_secs s per VM"
	echo "$vms_per_sec $mean_vm_secs $wall_secs"
}

median() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

{
	echo "function runner rate in L1 (TCG-emulated SVM, 2 vCPUs; absolute times are emulator speed)"
	echo "$n commands (tests/runner/example.cmds) in $n VMs at once, --mem $MEM, 1 vCPU each, $ROUNDS round(s), medians"
} >"$REPORT"
summary=
for kname in $KERNELS; do
	case $kname in
	minimal) kernel=${MINIMAL_KERNEL:-} ;;
	debian) kernel=${DEBIAN_KERNEL:-} ;;
	*) fail "BENCH_KERNELS: minimal or debian, not $kname" ;;
	esac
	if [ -z "$kernel" ] || [ ! -f "$kernel" ]; then
		echo "  $kname kernel: unavailable, skipped" | tee -a "$REPORT"
		continue
	fi
	mr= mm= mw= qr= qm= qw=
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		set -- $(batch minivmm "$kname" "$kernel" $r); mr="$mr $1"; mm="$mm $2"; mw="$mw $3"
		set -- $(batch qemu "$kname" "$kernel" $r); qr="$qr $1"; qm="$qm $2"; qw="$qw $3"
		r=$((r + 1))
	done
	a=$(median $mr) b=$(median $qr)
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
	{
		echo "  $kname kernel: minivmm $a VMs/s (batch $(median $mw) s, mean $(median $mm) s per VM; runs:$mr)"
		echo "  $kname kernel: qemu microvm $b VMs/s (batch $(median $qw) s, mean $(median $qm) s per VM; runs:$qr)"
		echo "  $kname kernel: ratio minivmm/qemu $ratio"
	} | tee -a "$REPORT"
	summary="$summary $kname: $a vs $b VMs/s (${ratio}x);"
done
[ -n "$summary" ] || skip "no guest kernel available"
pass "runner rate minivmm vs qemu microvm,$summary see runner_rate.txt"
