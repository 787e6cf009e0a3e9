#!/bin/bash
# VMM start to first guest instruction, and RSS, on this host's KVM with the
# tiny test guest, against the raw-ioctl floor (kvm_floor) in the same run.
# Usage: bench_startup.sh BUILD_DIR [RUNS]
set -euo pipefail
B=${1:-build}
RUNS=${2:-30}
MINIVMM=$B/minivmm
TINY=$B/tests/guests/tiny_guest.elf
FLOOR=$B/tests/bench/kvm_floor
[[ -x $MINIVMM && -f $TINY && -x $FLOOR ]] || { echo "build first: cmake --build $B" >&2; exit 1; }

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

mv_first=() mv_wall=() mv_rss=() fl_first=() fl_wall=() fl_rss=()
for ((i = 0; i < RUNS; i++)); do
	# minivmm: in-process time to the guest's first instruction (its boot
	# marker), whole-process wall time, and peak RSS.
	out=$( { /usr/bin/time -f 'rss=%M wall=%e' env MINIVMM_BOOT_MARKERS=1 "$MINIVMM" --kernel "$TINY" --console none; } 2>&1 )
	mv_first+=("$(sed -n 's/.*boot marker 1 at \([0-9.]*\) ms.*/\1/p' <<<"$out")")
	mv_rss+=("$(sed -n 's/.*rss=\([0-9]*\).*/\1/p' <<<"$out")")
	mv_wall+=("$(sed -n 's/.*wall=\([0-9.]*\).*/\1/p' <<<"$out")")
	out=$( { /usr/bin/time -f 'rss=%M wall=%e' "$FLOOR" 256; } 2>&1 )
	fl_first+=("$(sed -n 's/.*first_exit_ms=\([0-9.]*\).*/\1/p' <<<"$out")")
	fl_rss+=("$(sed -n 's/.*rss=\([0-9]*\).*/\1/p' <<<"$out")")
	fl_wall+=("$(sed -n 's/.*wall=\([0-9.]*\).*/\1/p' <<<"$out")")
done
m1=$(printf '%s\n' "${mv_first[@]}" | median); f1=$(printf '%s\n' "${fl_first[@]}" | median)
m2=$(printf '%s\n' "${mv_rss[@]}" | median);   f2=$(printf '%s\n' "${fl_rss[@]}" | median)
m3=$(printf '%s\n' "${mv_wall[@]}" | median);  f3=$(printf '%s\n' "${fl_wall[@]}" | median)
echo "startup benchmark: $RUNS runs each, medians, tiny guest, 256 MiB, 1 vCPU ($(uname -r))"
printf '%-34s %12s %12s %8s\n' metric minivmm kvm-floor ratio
printf '%-34s %12.3f %12.3f %8.2f\n' "start -> first guest insn (ms)" "$m1" "$f1" "$(echo "$m1 / $f1" | bc -l)"
printf '%-34s %12.3f %12.3f %8.2f\n' "whole run, exec to exit (s)" "$m3" "$f3" "$(echo "($m3 + 0.0001) / ($f3 + 0.0001)" | bc -l)"
printf '%-34s %12d %12d %8.2f\n' "peak RSS (KiB)" "$m2" "$f2" "$(echo "$m2 / $f2" | bc -l)"
