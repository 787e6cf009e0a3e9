#!/bin/sh
# Benchmark (rig scenario, not a pass/fail test): how many microVMs per second the function
# runner starts and completes, minivmm against QEMU microvm measured in the same L1. Each batch
# is the example's 20 commands (tests/runner/example.cmds), all 20 VMs at once, same kernel,
# initramfs, memory and command line; the batches alternate minivmm, QEMU, for each kernel.
# Every result must be verified (status through the guest port, output through the console) or
# the batch does not count. Run with:
#   tests/rig/rig.sh --scenario-dir tests/bench/rig runner_rate
# BENCH_KERNELS="minimal debian" (default both), BENCH_ROUNDS (default 1), BENCH_MEM (default
# 96 MiB for the minimal kernel, 256 for Debian's, which runs out of memory unpacking the
# initramfs with its modules at 96).
# rig-timeout: 3000
# rig-needs: qemu
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"

need_minivmm
need_qemu
need_file GUEST_INITRD
RUNNER_DIR=$(cd "$(dirname "$RIG_LIB")/../runner" && pwd) || fail "tests/runner is missing"
ROUNDS=${BENCH_ROUNDS:-1}
KERNELS=${BENCH_KERNELS:-minimal debian}
REPORT=$LOGDIR/runner_rate.txt

grep -v '^#' "$RUNNER_DIR/example.cmds" | cut -f4- | grep . >"$LOGDIR/runner-rate-commands"
n=$(wc -l <"$LOGDIR/runner-rate-commands")

# batch VMM KERNEL_NAME KERNEL MEM ROUND: one batch of all commands at once. Sets B_RATE (VMs/s),
# B_MEAN (mean seconds per VM), B_WALL (seconds for the batch). A batch with any result the
# runner could not verify counts as nothing: the benchmark fails and says which VM and why.
batch() {
	_out=$LOGDIR/runner-rate-$1-$2-$5
	sh "$RUNNER_DIR/function_runner.sh" --vmm "$1" --minivmm "$MINIVMM" --qemu "$QEMU" \
		--kernel "$3" --initrd "$GUEST_INITRD" --mem "$4" --timeout 1200 --out "$_out" \
		-f "$LOGDIR/runner-rate-commands" >"$_out.log" 2>&1
	_rc=$?
	cat "$_out.log"
	if [ $_rc != 0 ]; then
		for _d in "$_out"/*/; do
			[ "$(cat "$_d/status" 2>/dev/null)" = - ] && note "$(basename "$_d"): $(tail -n 2 "$_d/vmm.log" | tr '\n' ' ')"
		done
		fail "$1 with the $2 kernel: runner exited $_rc (see $(basename "$_out").log)"
	fi
	. "$_out/summary"
	B_RATE=$vms_per_sec B_MEAN=$mean_vm_secs B_WALL=$wall_secs
	note "$1 $2 round $5: $n VMs in $B_WALL s, $B_RATE VMs/s, mean $B_MEAN s per VM"
}

median() { echo "$@" | tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

{
	echo "function runner rate in L1 (TCG-emulated SVM, 2 vCPUs; absolute times are emulator speed)"
	echo "$n commands (tests/runner/example.cmds) in $n VMs at once, 1 vCPU each, $ROUNDS round(s), medians"
} >"$REPORT"
summary=
for kname in $KERNELS; do
	case $kname in
	minimal) kernel=${MINIMAL_KERNEL:-} mem=${BENCH_MEM:-96} ;;
	debian) kernel=${DEBIAN_KERNEL:-} mem=${BENCH_MEM:-256} ;;
	*) fail "BENCH_KERNELS: minimal or debian, not $kname" ;;
	esac
	if [ -z "$kernel" ] || [ ! -f "$kernel" ]; then
		echo "  $kname kernel: unavailable, skipped" | tee -a "$REPORT"
		continue
	fi
	mr= mm= mw= qr= qm= qw=
	r=0
	while [ $r -lt "$ROUNDS" ]; do
		batch minivmm "$kname" "$kernel" "$mem" $r; mr="$mr $B_RATE"; mm="$mm $B_MEAN"; mw="$mw $B_WALL"
		batch qemu "$kname" "$kernel" "$mem" $r; qr="$qr $B_RATE"; qm="$qm $B_MEAN"; qw="$qw $B_WALL"
		r=$((r + 1))
	done
	a=$(median $mr) b=$(median $qr)
	ratio=$(awk -v a="$a" -v b="$b" 'BEGIN { printf "%.2f", a / b }')
	{
		echo "  $kname kernel, --mem $mem: minivmm $a VMs/s (batch $(median $mw) s, mean $(median $mm) s per VM; runs:$mr)"
		echo "  $kname kernel: qemu microvm $b VMs/s (batch $(median $qw) s, mean $(median $qm) s per VM; runs:$qr)"
		echo "  $kname kernel: ratio minivmm/qemu $ratio"
	} | tee -a "$REPORT"
	summary="$summary $kname: $a vs $b VMs/s (${ratio}x);"
done
[ -n "$summary" ] || skip "no guest kernel available"
pass "runner rate minivmm vs qemu microvm,$summary see runner_rate.txt"
