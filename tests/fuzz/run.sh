#!/bin/bash
# Builds the virtqueue fuzz target with clang + libFuzzer + ASan/UBSan and runs
# it for a fixed time, then prints one result line. Exit status: 0 when no
# crash was found, 1 on a crash (or leak, timeout, failed check), 2 when it
# cannot build.
#
# Usage: tests/fuzz/run.sh [SECONDS]           (default 30)
#   OUT=dir (default build-fuzz): binary, corpus (kept between runs), crash
#   artifacts, full log. Reproduce a crash: $OUT/fuzz_virtq $OUT/artifacts/crash-...
# Needs clang and libFuzzer's runtime (Debian: clang, libclang-rt-14-dev).
set -uo pipefail
cd "$(dirname "$0")/../.."
SECS=${1:-30}
OUT=${OUT:-build-fuzz}
CC=${CC:-clang}
NAME=fuzz_virtq

mkdir -p "$OUT/corpus-virtq" "$OUT/artifacts"
if ! echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' |
	"$CC" -x c -fsanitize=fuzzer - -o "$OUT/.probe" >/dev/null 2>&1; then
	echo "$NAME: ERROR: $CC cannot link libFuzzer (Debian: apt-get install clang libclang-rt-14-dev)"
	exit 2
fi
rm -f "$OUT/.probe"

"$CC" -std=gnu11 -g -O1 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer \
	-I. tests/fuzz/fuzz_virtq.c devices/virtio/virtq.c vmm/guest_mem.c -o "$OUT/$NAME" ||
	{ echo "$NAME: BUILD FAILED"; exit 2; }
python3 tests/fuzz/make_seeds.py "$OUT/seeds-virtq" || { echo "$NAME: seed generation failed"; exit 2; }

# -close_fd_mask=2: the target's stderr (one warning per broken queue) is
# dropped; libFuzzer's and the sanitizers' reports still reach the log.
# New inputs go to the first corpus directory; the seeds are only read.
LOG=$OUT/$NAME.log
touch "$OUT/.start"
ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	"$OUT/$NAME" -max_total_time="$SECS" -timeout=10 -rss_limit_mb=1024 -max_len=20496 \
	-close_fd_mask=2 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/" \
	"$OUT/corpus-virtq" "$OUT/seeds-virtq" >"$LOG" 2>&1
rc=$?

runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$LOG" | tail -1)
secs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$LOG" | tail -1)
eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$LOG" | tail -1)
cov=$(grep -o 'cov: [0-9]*' "$LOG" | tail -1)
files=$(find "$OUT/corpus-virtq" -type f | wc -l)
if ((rc == 0)); then
	echo "$NAME: OK: ${runs:-?} runs in ${secs:-?} s (${eps:-?} exec/s), ${cov:-cov: ?}, corpus $files inputs, no crash"
	exit 0
fi
[[ -n $runs ]] || runs=$(grep -o '^#[0-9]*' "$LOG" | tail -1 | tr -d '#')
echo "$NAME: FAILED (exit $rc) after about ${runs:-?} runs; log: $LOG"
grep -E '^(==[0-9]+==ERROR|SUMMARY|fuzz_virtq: check failed|.*runtime error)' "$LOG" | head -5
find "$OUT/artifacts" -type f -newer "$OUT/.start" | sed "s|^|  artifact: |"
exit 1
