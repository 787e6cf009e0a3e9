#!/bin/bash
# Runs every test: installs what is missing, builds minivmm twice (normal and
# ASan+UBSan), runs the unit and process tests (CTest) on both builds, then
# the end-to-end scenarios that boot real Linux guests (directly on a host
# with hardware virtualization, in the nested rig elsewhere).
# Usage: tests/run-all.sh [--no-e2e]
set -uo pipefail
cd "$(dirname "$0")/.."
E2E=1
[[ ${1:-} == --no-e2e ]] && E2E=0

bash .ci/install-deps.sh || { echo "dependency installation failed"; exit 1; }

step_fail=0
# Guest images (cached in ~/.cache/minivmm by the hash of their recipe) build
# in the background (niced): uncached, the minimal kernel alone takes ~10 min
# of make on 2 cores, beside the test steps below, which mostly wait on
# timeouts and children. The rig waits on each image's lock.
mkdir -p build build-asan
if ((E2E)); then
	(for n in all arm64-kernel arm64-initramfs arm64-qemu; do
		MINIVMM_JOBS=2 nice bash guest-images/build.sh "$n" || echo "guest-images/build.sh $n failed"
	done) >build/guest-images.log 2>&1 &
	IMAGES_PID=$!
fi
build() { # build DIR [cmake args...]
	local dir=$1; shift
	cmake -S . -B "$dir" "$@" >"$dir/cmake.log" 2>&1 && cmake --build "$dir" -j"$(nproc)" >"$dir/build.log" 2>&1 || {
		echo "BUILD FAILED ($dir):"; tail -n 30 "$dir/cmake.log" "$dir/build.log"; return 1; }
}
build build -DCMAKE_BUILD_TYPE=RelWithDebInfo || exit 1
# The sanitizer build with clang: gcc's UBSan does not instrument all that
# clang's does (a NULL + 0 in blk.c showed only under clang), and the
# release build above keeps gcc's warnings.
build build-asan -DCMAKE_BUILD_TYPE=Debug -DMINIVMM_SANITIZE=ON -DCMAKE_C_COMPILER=clang || exit 1

echo "== unit and process tests (release build)"
# -j3 on 2 cores: the slowest tests (the runner's, the process tests) mostly
# wait on timeouts and children, so they overlap with the CPU-bound ones.
(cd build && ctest --output-on-failure -j3) || step_fail=1
# The fuzzers (a fixed minute, one target at a time) run beside the
# single-threaded test steps below, on the other core; their result is
# printed and counted before the end-to-end scenarios.
(bash tests/fuzz/run.sh 60 >build/fuzz.log 2>&1; echo "rc=$?" >>build/fuzz.log) &
FUZZ_PID=$!
echo "== unit and process tests (ASan+UBSan build, clang)"
(cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	ctest --output-on-failure -V -j3 >ctest-asan.log 2>&1; rc=$?; tail -n 25 ctest-asan.log
	# the failed checks themselves (the log is verbose, the tail misses them)
	((rc)) && grep -E -B6 "\[FAIL\]|\(Failed\)|\(Timeout\)|\*\*\*" ctest-asan.log | grep -vE "\[PASS\]|\[RUN \]" | tail -n 60
	exit $rc) || step_fail=1
# Criterion runs each test in a child whose sanitizer report does not always
# fail the test: any report in the log fails the run.
if grep -nE "ERROR: (Leak|Address)Sanitizer|runtime error:" build-asan/ctest-asan.log; then
	echo "FAIL: sanitizer reports in build-asan/ctest-asan.log"
	step_fail=1
fi

echo "== threaded unit tests under ThreadSanitizer (clang; tests/tsan/)"
rm -f build-tsan/tsan-report.*
mkdir -p build-tsan
if cmake -S . -B build-tsan -DCMAKE_BUILD_TYPE=Debug -DMINIVMM_TSAN=ON -DCMAKE_C_COMPILER=clang \
	>build-tsan/cmake.log 2>&1 && cmake --build build-tsan --target tsan_tests -j"$(nproc)" >build-tsan/build.log 2>&1; then
	(cd build-tsan && ctest --output-on-failure -j2 -R '^tsan_') || { cat build-tsan/tsan-report.* 2>/dev/null; step_fail=1; }
else
	echo "BUILD FAILED (build-tsan):"; tail -n 30 build-tsan/cmake.log build-tsan/build.log; step_fail=1
fi

echo "== arm64: static cross build, and the arm64 binary's command-line checks under qemu-user"
if bash arch/arm64/cross-build.sh build-arm64; then
	bash tests/cli/test_arm64_cli.sh build-arm64/minivmm || step_fail=1
else
	step_fail=1
fi

echo "== fuzz targets (fixed time each; ran beside the steps above)"
wait "$FUZZ_PID"
grep -v '^rc=' build/fuzz.log
grep -qx 'rc=0' build/fuzz.log || step_fail=1

if ((E2E)); then
	echo "== end-to-end scenarios (real Linux guests)"
	wait "$IMAGES_PID"   # its failures show again, per image, in the rig's report
	rig() { MINIVMM=$PWD/build/minivmm bash tests/rig/rig.sh --no-build "$@"; }
	# The nested rig's L1 (Debian's kernel running KVM on a TCG-emulated CPU)
	# sometimes dies under load, under QEMU as the L2 VMM as under minivmm
	# (docs/rig-failure-rates.md): a kernel panic in a vCPU thread's KVM_RUN
	# ("stack guard page was hit"), a silent reset, or a wedge the rig stops.
	# It takes every scenario still to run with it and says nothing about
	# minivmm. Those scenarios, and only those (never one that reported FAIL),
	# run again in a fresh L1, at most 3 L1s per group; each death is counted
	# and said. Scenarios marked "# rig-last" (the heavy-I/O ones, where L1
	# has died most) run after the others, so that an L1 death there cuts off
	# only them. (They had an L1 each, ~20 s of boot apiece, until the held VM
	# in L1 took away the cause of most deaths: docs/rig-failure-rates.md.)
	L1_DEATHS=0
	rig_group() { # rig_group NAME SCENARIO...
		local name=$1 attempt=1 rc=0 logdir n; shift
		local todo=("$@") missing
		while :; do
			logdir=build/rig-logs-$name; ((attempt > 1)) && logdir+=-retry$((attempt - 1))
			rig --logdir "$logdir" "${todo[@]}" && return $rc
			grep -q "^RIG-RESULT [^ ]* FAIL" "$logdir/results.txt" 2>/dev/null && rc=1
			missing=()
			for n in "${todo[@]}"; do
				grep -q "^RIG-RESULT $n " "$logdir/results.txt" 2>/dev/null || missing+=("$n")
			done
			((${#missing[@]})) || return 1
			L1_DEATHS=$((L1_DEATHS + 1))
			if ((attempt >= 3)); then
				echo "rig: the L1 VM died $attempt times in a row before ${missing[*]} reported; giving up"
				return 1
			fi
			echo "rig: the L1 VM died before ${missing[*]} reported (see $logdir/l1-console.log);" \
				"running them in a fresh L1"
			todo=("${missing[@]}")
			attempt=$((attempt + 1))
		done
	}
	last=() first=()
	for n in $(bash tests/rig/rig.sh --list); do   # the x86_64 scenarios
		if grep -q '^# rig-last' "tests/e2e/$n.sh"; then last+=("$n"); else first+=("$n"); fi
	done
	rig_group x86 "${first[@]}" "${last[@]}" || step_fail=1
	echo "rig: L1 deaths in this run: $L1_DEATHS (scenarios they cut off ran again in a fresh L1)"
	echo "== arm64 end-to-end scenarios (nested arm64 rig: qemu-system-aarch64 TCG L1 with KVM)"
	# The same rig with Debian's arm64 kernel as L1 and the cross-built minivmm
	# (built above); ~3 minutes. Without the arm64 binary the minivmm scenarios
	# skip, saying so; the build step has failed the run already.
	MINIVMM=$PWD/build-arm64/minivmm
	[[ -x $MINIVMM ]] || MINIVMM=none
	MINIVMM=$MINIVMM bash tests/rig/rig.sh --no-build --arch arm64 --logdir build/rig-logs-arm64 --all \
		|| step_fail=1
else
	echo "SKIP: end-to-end scenarios (--no-e2e given)"
fi

if ((step_fail)); then
	echo "SOME TESTS FAILED"
	exit 1
fi
echo "ALL TESTS PASSED"
