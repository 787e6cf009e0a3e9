#!/bin/bash
# Host-side checks of rig.sh's architecture selection (no VM is booted):
# --list/--all take the scenarios of the --arch asked for (a "# rig-arch:"
# line, default x86_64), a scenario of the other architecture is refused with
# one line naming it, a bad --arch is refused, and the arm64 KVM check
# program compiles (when the cross compiler is there).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
RIG=$ROOT/tests/rig/rig.sh
bad=0
no() { echo "FAIL: $*"; bad=1; }

x86=$(bash "$RIG" --list) || no "--list failed"
arm=$(bash "$RIG" --arch arm64 --list) || no "--arch arm64 --list failed"
for f in "$ROOT"/tests/e2e/*.sh; do
	n=$(basename "$f" .sh)
	a=$(sed -n 's/^# rig-arch: *\([a-z0-9_]*\).*/\1/p' "$f" | head -n 1)
	case ${a:-x86_64} in
	arm64) grep -qx "$n" <<<"$arm" || no "$n (arm64) missing from --arch arm64 --list"
		grep -qx "$n" <<<"$x86" && no "$n (arm64) listed for x86_64" ;;
	x86_64) grep -qx "$n" <<<"$x86" || no "$n missing from --list"
		grep -qx "$n" <<<"$arm" && no "$n (x86_64) listed for arm64" ;;
	*) no "$n: unknown rig-arch '$a'" ;;
	esac
done
[ -n "$arm" ] || no "no arm64 scenario at all"

one_arm=$(head -n 1 <<<"$arm")
out=$(bash "$RIG" --mode nested "$one_arm" 2>&1); rc=$?
[ $rc = 2 ] && grep -q "scenario $one_arm is for arm64" <<<"$out" \
	|| no "x86 run of $one_arm: want exit 2 and 'is for arm64', got $rc: $out"
out=$(bash "$RIG" --arch sparc rig_selftest 2>&1); rc=$?
[ $rc = 2 ] && grep -q "bad --arch sparc" <<<"$out" || no "--arch sparc: want exit 2, got $rc: $out"

if command -v aarch64-linux-gnu-gcc >/dev/null; then
	aarch64-linux-gnu-gcc -fsyntax-only -Wall -Wextra -Werror "$ROOT/tests/rig/arm64/kvm-check.c" \
		|| no "tests/rig/arm64/kvm-check.c does not compile"
else
	echo "note: no aarch64-linux-gnu-gcc, kvm-check.c not compiled"
fi
[ $bad = 0 ] && echo "rig arch selection: ok ($(wc -l <<<"$arm") arm64, $(wc -l <<<"$x86") x86_64 scenarios)"
exit $bad
