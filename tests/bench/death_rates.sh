#!/bin/bash
# How often guests die under load, minivmm against QEMU microvm in the same
# L1s: runs the rig scenario tests/bench/rig/death_rates.sh ROUNDS times, each
# round in a fresh L1 (an L1 that dies takes only its own round with it), and
# tabulates every run by how it ended, L1 deaths included (the run that was
# going on when L1 died is the one charged with it).
#
#   tests/bench/death_rates.sh [ROUNDS] [OUTDIR]
#   DEATH_CASES="fio:mmio:4 fio:pci:4 ..." DEATH_VMMS="minivmm qemu" BENCH_RUNS=N \
#       tests/bench/death_rates.sh 3
#
# Knobs as for the scenario (see its header); ROUNDS defaults to 1, OUTDIR to
# build/death-rates; DEATH_RIG_ARGS adds rig.sh options (e.g. --no-build with
# MINIVMM=...). Every round's logs stay in OUTDIR/round-N; the table is
# OUTDIR/table.md and is printed at the end.
set -uo pipefail
cd "$(dirname "$0")/../.."
ROUNDS=${1:-1}
OUT=${2:-build/death-rates}
mkdir -p "$OUT"
runs=$OUT/runs.txt
: >"$runs"
for ((r = 0; r < ROUNDS; r++)); do
	log=$OUT/round-$r
	rm -rf "$log"
	echo "death_rates: round $((r + 1)) of $ROUNDS (logs in $log)"
	# A wedged L1 (no panic, no output) would otherwise hold the round until
	# the scenario's own 2-hour limit: every run may take its guest timeout.
	n_runs=$(( ${BENCH_RUNS:-1} * $(wc -w <<<"${DEATH_CASES:-fio:mmio:4}") * $(wc -w <<<"${DEATH_VMMS:-minivmm qemu}") ))
	bash tests/rig/rig.sh ${DEATH_RIG_ARGS:-} --scenario-dir tests/bench/rig --logdir "$log" \
		--timeout $(( n_runs * (${GUEST_TIMEOUT:-900} + 30) + 120 )) death_rates >"$OUT/round-$r.txt" 2>&1
	console=$log/l1-console.log
	[[ -f $console ]] || { echo "death_rates: round $r left no L1 console (see $OUT/round-$r.txt)"; continue; }
	# "RIG-RUNSTART case vmm n" then "RIG-RUN case vmm n outcome secs detail".
	tr -d '\r' <"$console" | awk -v round="$r" '
		/^RIG-RUNSTART / { open_run = $2 " " $3 " " $4; next }
		/^RIG-RUN / { print round, $2, $3, $4, $5, $6, $7; open_run = ""; next }
		/Kernel panic/ { how = "panic" }
		/soft lockup/ && how == "" { how = "soft-lockup" }
		END { if (open_run != "") { split(open_run, a, " "); print round, a[1], a[2], a[3], "l1-death", "-", "L1_" (how == "" ? "wedged_or_reset" : how) } }
	' >>"$runs"
	grep -h "RIG-RUN " "$OUT/round-$r.txt" | sed 's/^/  /'
	grep -q 'l1-death' <(awk -v r="$r" '$1 == r' "$runs") && echo "  round $r: L1 died"
done

{
	echo "| case | VMM | runs | ok | L2 triple fault | L2 hang (RCU stall) | L2 hang (soft lockup) | L2 hang (other) | L2 panic | bad data | minivmm error | L1 death | other |"
	echo "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
	awk '{ k = $2 " " $3; n[k]++; c[k, $5]++; keys[k] = 1 }
		END {
			for (k in keys) {
				split(k, a, " ")
				other = n[k] - c[k, "ok"] - c[k, "triple"] - c[k, "hang-rcu"] - c[k, "hang-lockup"] - c[k, "hang"] - c[k, "panic"] - c[k, "verify"] - c[k, "vmm-error"] - c[k, "l1-death"]
				printf "| %s | %s | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d | %d |\n", a[1], a[2], n[k], c[k, "ok"], c[k, "triple"], c[k, "hang-rcu"], c[k, "hang-lockup"], c[k, "hang"], c[k, "panic"], c[k, "verify"], c[k, "vmm-error"], c[k, "l1-death"], other
			}
		}' "$runs" | sort
} >"$OUT/table.md"
echo
cat "$OUT/table.md"
echo "(each run: $runs; round logs: $OUT/round-N)"
