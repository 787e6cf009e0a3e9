#!/bin/sh
# Benchmark (rig scenario, not a pass/fail test): minivmm-runner's jobs per second and latency
# of `true`, restored from the snapshot pool against booting each VM cold (--cold), and against
# QEMU microvm cold boots of the same kernel and initramfs (the console runner,
# tests/runner/function_runner.sh --vmm qemu, which runs the command at boot); then the memory
# (summed PSS of the VMMs) per concurrent job, pool against cold. All in one L1, one after the
# other. Run with:
#   tests/rig/rig.sh --with-qemu --scenario-dir tests/bench/rig runner_jobs
# BENCH_JOBS (pool jobs, default 40), BENCH_COLD_JOBS (cold jobs, each kind, default 8),
# BENCH_CONC (jobs at once, default 4), BENCH_MEM (MiB, default 128).
# rig-timeout: 3000
# rig-needs: qemu
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"

need_minivmm
need_qemu
need_file GUEST_INITRD
[ -n "${RUNNER:-}" ] && [ -x "$RUNNER" ] || skip "no minivmm-runner"
[ -n "${MINIMAL_KERNEL:-}" ] && [ -f "$MINIMAL_KERNEL" ] || skip "no minimal kernel"
RUNNER_DIR=$(cd "$(dirname "$RIG_LIB")/../runner" && pwd) || fail "tests/runner is missing"
NPOOL=${BENCH_JOBS:-40} NCOLD=${BENCH_COLD_JOBS:-8} CONC=${BENCH_CONC:-4} MEM=${BENCH_MEM:-128}
W=$LOGDIR/runner-jobs
mkdir -p "$W/work"
REPORT=$LOGDIR/runner_jobs.txt
OPTS="--kernel $MINIMAL_KERNEL --initrd $GUEST_INITRD --minivmm $MINIVMM --mem $MEM --pool-dir $W/pool --work-dir $W/work"

# pct P FILE: the P-th percentile of the numbers in FILE (nearest rank).
pct() { sort -n "$2" | awk -v p="$1" '{ a[NR] = $1 } END { i = int((p * NR + 99) / 100); if (i < 1) i = 1; print a[i] }'; }

# server_batch NAME N COLD: N `true` jobs through the server, CONC at once. Sets B_WALL (s),
# B_RATE (jobs/s); per-job latencies (ms) in $W/NAME.ms.
server_batch() {
	_s=$W/$1.sock
	# shellcheck disable=SC2086
	"$RUNNER" serve --socket "$_s" $OPTS --jobs "$CONC" 2>"$W/$1.serve.err" &
	_spid=$!
	_i=0
	while [ ! -S "$_s" ] && [ $_i -lt 100 ]; do sleep 0.1; _i=$((_i + 1)); done
	_i=0
	: >"$W/$1.jobs"
	while [ $_i -lt "$2" ]; do
		printf '{"id":%d,"argv":["true"],"cold":%s}\n' $_i "$3" >>"$W/$1.jobs"
		_i=$((_i + 1))
	done
	_t0=$(now)
	timeout 2400 "$RUNNER" submit --socket "$_s" <"$W/$1.jobs" >"$W/$1.results"
	B_WALL=$(elapsed "$_t0")
	kill -TERM $_spid
	wait $_spid
	_ok=$(grep -c '"outcome":"ok","status":0,' "$W/$1.results")
	[ "$_ok" = "$2" ] || fail "$1: $_ok of $2 jobs ok: $(grep -v '"outcome":"ok"' "$W/$1.results" | head -n 2)"
	sed -n 's/.*"ms":\([0-9]*\),.*/\1/p' "$W/$1.results" >"$W/$1.ms"
	B_RATE=$(awk -v n="$2" -v w="$B_WALL" 'BEGIN { printf "%.3f", n / w }')
	note "$1: $2 jobs in $B_WALL s ($B_RATE jobs/s), latency p50 $(pct 50 "$W/$1.ms") ms, p99 $(pct 99 "$W/$1.ms") ms"
}

note "making the pool's snapshot"
# shellcheck disable=SC2086
"$RUNNER" run $OPTS -v -- true 2>"$W/first.err" || fail "first job: $(cat "$W/first.err")"
snap_line=$(grep 'snapshot made in' "$W/first.err")

server_batch pool "$NPOOL" false
pool_rate=$B_RATE pool_wall=$B_WALL
server_batch cold "$NCOLD" true
cold_rate=$B_RATE cold_wall=$B_WALL

note "QEMU microvm cold boots (console runner), $NCOLD at $CONC at once"
_i=0
set --
while [ $_i -lt "$NCOLD" ]; do set -- "$@" true; _i=$((_i + 1)); done
t0=$(now)
sh "$RUNNER_DIR/function_runner.sh" --vmm qemu --qemu "$QEMU" --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
	--mem "$MEM" --jobs "$CONC" --timeout 1200 --out "$W/qemu" -- "$@" >"$W/qemu.log" 2>&1 ||
	fail "QEMU batch: $(tail -n 3 "$W/qemu.log")"
qemu_wall=$(elapsed "$t0")
qemu_rate=$(awk -v n="$NCOLD" -v w="$qemu_wall" 'BEGIN { printf "%.3f", n / w }')
cat "$W"/qemu/*/times | awk '{ printf "%d\n", ($2 - $1) * 1000 }' >"$W/qemu.ms"

# pss_per_job NAME [--cold]: CONC jobs at once that print "started" and sleep; once all have
# started, the summed PSS of their VMMs (KiB) / CONC into P_KIB.
pss_per_job() {
	_i=0 _pids=
	while [ $_i -lt "$CONC" ]; do
		# shellcheck disable=SC2086
		"$RUNNER" run $OPTS "$2" -- sh -c 'echo started; sleep 900' >"$W/$1.pss.$_i" 2>&1 &
		_pids="$_pids $!"
		_i=$((_i + 1))
	done
	_t=0
	while [ "$(cat "$W/$1".pss.* | grep -c '^started$')" -lt "$CONC" ]; do
		sleep 1
		_t=$((_t + 1))
		[ $_t -lt 1200 ] || fail "$1: not all $CONC jobs started in 1200 s"
	done
	sleep 2
	# The VMMs: every process named minivmm (L1 runs nothing else of that name).
	_sum=0 _n=0
	for _c in /proc/[0-9]*/comm; do
		[ "$(cat "$_c" 2>/dev/null)" = minivmm ] || continue
		_k=$(awk '/^Pss:/ { print $2 }' "${_c%/comm}/smaps_rollup" 2>/dev/null)
		[ -n "$_k" ] && { _sum=$((_sum + _k)); _n=$((_n + 1)); }
	done
	# shellcheck disable=SC2086
	kill -TERM $_pids
	wait
	[ "$_n" = "$CONC" ] || fail "$1: $_n minivmm processes, want $CONC"
	P_KIB=$((_sum / CONC))
	note "$1: $CONC jobs at once, PSS per job $P_KIB KiB"
}
pss_per_job pool --verbose
pss_pool=$P_KIB
pss_per_job cold --cold
pss_cold=$P_KIB

r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
{
	echo "minivmm-runner in L1 (TCG-emulated SVM, 2 vCPUs; absolute times are emulator speed)"
	echo "minimal kernel, $MEM MiB, 1 vCPU; \`true\`, $CONC jobs at once; $snap_line"
	echo "  snapshot pool: $NPOOL jobs in $pool_wall s: $pool_rate jobs/s; latency p50 $(pct 50 "$W/pool.ms") ms, p99 $(pct 99 "$W/pool.ms") ms"
	echo "  --cold:        $NCOLD jobs in $cold_wall s: $cold_rate jobs/s; latency p50 $(pct 50 "$W/cold.ms") ms, p99 $(pct 99 "$W/cold.ms") ms"
	echo "  QEMU microvm cold (console runner): $NCOLD jobs in $qemu_wall s: $qemu_rate jobs/s; latency p50 $(pct 50 "$W/qemu.ms") ms, p99 $(pct 99 "$W/qemu.ms") ms"
	echo "  pool / cold rate: $(r "$pool_rate" "$cold_rate"); pool / QEMU rate: $(r "$pool_rate" "$qemu_rate")"
	echo "  PSS per concurrent job: pool $pss_pool KiB, cold $pss_cold KiB, ratio cold/pool $(r "$pss_cold" "$pss_pool")"
} | tee "$REPORT"
pass "pool $(r "$pool_rate" "$cold_rate")x the cold rate, $(r "$pool_rate" "$qemu_rate")x QEMU's; memory per job cold/pool $(r "$pss_cold" "$pss_pool") (see runner_jobs.txt)"
