#!/bin/sh
# Run e2e scenarios and print one "RIG-RESULT <scenario> PASS|FAIL|SKIP <reason>"
# line each. Used by rig.sh directly on a host with hardware KVM, and by the
# L1 init inside the nested VM. POSIX sh (busybox ash in L1).
#
#   runner.sh [--results FILE] SCENARIO...
#
# Environment: LOGDIR, E2E_DIR (default: ../e2e next to this file), and the
# scenario variables (MINIVMM, DEBIAN_KERNEL, ... see lib.sh), exported.
# Each scenario's stdout+stderr goes to $LOGDIR/<scenario>.out. A scenario
# may print its own RIG-RESULT line (lib.sh's pass/fail/skip do); otherwise
# the exit status decides: 0 PASS, 77 SKIP (reason: last output line), other
# FAIL. A scenario file may set its time limit with a "# rig-timeout: SECONDS"
# line (default 300).

RIG_DIR=$(cd "$(dirname "$0")" && pwd)
E2E_DIR=${E2E_DIR:-$RIG_DIR/../e2e}
RESULTS=
if [ "$1" = --results ]; then RESULTS=$2; shift 2; fi
: "${LOGDIR:?LOGDIR must be set}"
mkdir -p "$LOGDIR"
export LOGDIR RIG_LIB="$RIG_DIR/lib.sh"

now() { cut -d' ' -f1 /proc/uptime; }

report() {
	# report NAME STATUS REASON
	echo "RIG-RESULT $1 $2 $3"
	[ -n "$RESULTS" ] && echo "RIG-RESULT $1 $2 $3" >>"$RESULTS"
	return 0
}

for s in "$@"; do
	s=${s%.sh}
	f=$E2E_DIR/$s.sh
	out=$LOGDIR/$s.out
	if [ ! -f "$f" ]; then
		report "$s" FAIL "no such scenario: $f"
		continue
	fi
	limit=$(sed -n 's/^# rig-timeout: *\([0-9][0-9]*\).*/\1/p' "$f" | head -n 1)
	limit=${limit:-300}
	echo "RIG-START $s (limit ${limit}s)"
	t0=$(now)
	# Own session/process group, so a timeout can stop everything it started.
	# /bin/sh by path: busybox applets (setsid, timeout, env) run their own
	# applets before searching PATH, and busybox sh would then shadow iproute2 ip.
	SCENARIO=$s setsid /bin/sh "$f" >"$out" 2>&1 </dev/null &
	pid=$!
	# Watchdog in its own process group too, so it can be stopped with its sleep.
	setsid sh -c '
		sleep "$1"
		echo "runner: scenario $3 exceeded $1s, killing it" >>"$4"
		kill -TERM -"$2" 2>/dev/null; kill -TERM "$2" 2>/dev/null
		sleep 5
		kill -KILL -"$2" 2>/dev/null; kill -KILL "$2" 2>/dev/null' \
		watchdog "$limit" "$pid" "$s" "$out" </dev/null >/dev/null 2>&1 &
	wd=$!
	{ wait "$pid"; rc=$?; } 2>/dev/null
	kill -TERM -"$wd" 2>/dev/null
	{ wait "$wd"; } 2>/dev/null
	secs=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')

	line=$(tr -d '\r' <"$out" | grep "^RIG-RESULT $s " | tail -n 1)
	status=$(echo "$line" | cut -d' ' -f3)
	reason=$(echo "$line" | cut -d' ' -f4-)
	case $status in
	PASS|FAIL|SKIP) ;;
	*)
		last=$(tr -d '\r' <"$out" | grep -v '^[[:space:]]*$' | tail -n 1)
		case $rc in
		0) status=PASS reason="exit 0" ;;
		77) status=SKIP reason=${last:-"exit 77"} ;;
		*) status=FAIL reason="exit $rc${last:+: $last}" ;;
		esac
		;;
	esac
	if grep -q "^runner: scenario $s exceeded" "$out"; then
		status=FAIL reason="timed out after ${limit}s"
	fi
	# The exit status wins over a PASS line printed before a later failure.
	if [ "$status" = PASS ] && [ "$rc" != 0 ]; then
		status=FAIL reason="printed PASS but exited $rc"
	fi
	report "$s" "$status" "$reason [${secs}s]"
	# The log dir reaches the host only if L1 lives to write it: a failure's
	# last lines go on the console too (the host prints RIG- lines live).
	[ "$status" = FAIL ] && tr -d '\r' <"$out" | grep . | tail -n 25 | cut -c1-200 | sed "s/^/RIG-TAIL $s: /"
done
