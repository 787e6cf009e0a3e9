# Shared helpers for end-to-end scenarios (tests/e2e/*.sh). POSIX sh: the
# scenarios run under busybox ash inside the nested L1 VM and under dash/bash
# on a host with hardware KVM. Source it with:
#
#   . "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"
#
# Environment (set by tests/rig/runner.sh):
#   MINIVMM         minivmm binary ("" when it is not built)
#   DEBIAN_KERNEL   Debian bzImage for L2 guests
#   MINIMAL_KERNEL  project's minimal bzImage ("" when unavailable)
#   GUEST_INITRD    L2 initramfs (/init prints "MINIVMM-GUEST: init started", mvtest=NAME)
#   LOGDIR          where every console and log of the run goes
#   PTYDRIVE        the ptydrive helper (expect/send over a pty)
#   QEMU            qemu-system-x86_64 (only with rig.sh --with-qemu)
#   SCENARIO        this scenario's name
#   GUEST_TIMEOUT   seconds one guest run may take (default 120)

SCENARIO=${SCENARIO:-$(basename "$0" .sh)}
LOGDIR=${LOGDIR:-build/rig-logs}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-120}
mkdir -p "$LOGDIR"

# Result reporting: each prints the scenario's RIG-RESULT line and exits.
rig_result() { echo "RIG-RESULT $SCENARIO $1 $2"; }
pass() { rig_result PASS "${*:-ok}"; exit 0; }
fail() { echo "FAIL: $*" >&2; rig_result FAIL "$*"; exit 1; }
skip() { echo "SKIP: $*" >&2; rig_result SKIP "$*"; exit 77; }
note() { echo "[$SCENARIO] $*"; }

# Seconds since boot with 1/100 s resolution (works in busybox and on hosts).
now() { cut -d' ' -f1 /proc/uptime; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

# show_tail LOG [N]: print the last N (default 40) lines of LOG to stderr.
show_tail() {
	echo "---- last ${2:-40} lines of $1 ----" >&2
	if [ -f "$1" ]; then tail -n "${2:-40}" "$1" | tr -d '\r' >&2; else echo "(missing)" >&2; fi
	echo "---- end of $1 ----" >&2
}

# Preconditions; each skips the scenario with a reason when unmet.
need_kvm() {
	[ -c /dev/kvm ] || skip "/dev/kvm missing"
	if [ -d /sys/module/kvm_pvm ]; then
		skip "host KVM is PVM (kvm_pvm): unmodified Linux guests cannot run; use the nested rig"
	fi
}
need_minivmm() {
	[ -n "$MINIVMM" ] && [ -x "$MINIVMM" ] || skip "minivmm not built (${MINIVMM:-MINIVMM unset})"
	need_kvm
}
need_qemu() {
	[ -n "$QEMU" ] && [ -x "$QEMU" ] || skip "QEMU not available (run rig.sh --with-qemu)"
	need_kvm
}
# need_file VAR: skip unless the file named by $VAR exists.
need_file() {
	eval "_nf=\${$1:-}"
	[ -n "$_nf" ] || skip "$1 unavailable${2:+: $2}"
	[ -f "$_nf" ] || skip "$1=$_nf does not exist"
}
need_ptydrive() {
	[ -n "$PTYDRIVE" ] && [ -x "$PTYDRIVE" ] || skip "ptydrive helper missing (${PTYDRIVE:-PTYDRIVE unset})"
}

# run_cmd NAME CMD [ARGS...]: run CMD with a timeout of $GUEST_TIMEOUT s,
# stdin from /dev/null, stdout+stderr saved to $LOGDIR/NAME.log.
# Sets GUEST_LOG, GUEST_RC (124 = timed out), GUEST_SECS. Never exits.
run_cmd() {
	_name=$1; shift
	GUEST_LOG=$LOGDIR/$_name.log
	note "run $_name: $* (timeout ${GUEST_TIMEOUT}s, log $GUEST_LOG)"
	_t0=$(now)
	timeout -s TERM -k 5 "$GUEST_TIMEOUT" "$@" </dev/null >"$GUEST_LOG" 2>&1
	GUEST_RC=$?
	GUEST_SECS=$(elapsed "$_t0")
	# coreutils timeout says 124; busybox timeout leaves the signal status.
	if awk -v s="$GUEST_SECS" -v t="$GUEST_TIMEOUT" 'BEGIN { exit !(s >= t) }'; then
		GUEST_RC=124
		echo "[$SCENARIO] $_name: TIMED OUT after ${GUEST_TIMEOUT}s" >>"$GUEST_LOG"
	fi
	note "$_name: exit $GUEST_RC after ${GUEST_SECS}s"
	return 0
}

# run_guest NAME MINIVMM-ARGS...: run minivmm with the console on stdout.
run_guest() {
	_name=$1; shift
	run_cmd "$_name" "$MINIVMM" --console stdio "$@"
}

# expect_line LOG REGEX [WHAT]: fail (with the log's tail) unless a line of LOG
# matches the extended regex. Carriage returns are ignored.
expect_line() {
	if tr -d '\r' <"$1" | grep -Eq -- "$2"; then
		note "found /$2/ in $1"
		return 0
	fi
	show_tail "$1"
	fail "${3:-no line matching /$2/} in $(basename "$1")"
}

# expect_no_line LOG REGEX [WHAT]: the opposite.
expect_no_line() {
	if tr -d '\r' <"$1" | grep -Eq -- "$2"; then
		show_tail "$1"
		fail "${3:-unexpected line matching /$2/} in $(basename "$1")"
	fi
	return 0
}

# expect_rc WANT [WHAT]: fail unless the last run_cmd/run_guest exited WANT.
expect_rc() {
	[ "$GUEST_RC" = "$1" ] && return 0
	show_tail "$GUEST_LOG"
	if [ "$GUEST_RC" = 124 ]; then
		fail "${2:-guest} timed out after ${GUEST_TIMEOUT}s (want exit $1)"
	fi
	fail "${2:-guest} exited $GUEST_RC, want $1"
}

# The line the L2 /init prints first.
# shellcheck disable=SC2034  # used by the scenarios
GUEST_MARKER='MINIVMM-GUEST: init started'

# host_tap [--iperf]: the host side of the net scenarios: a multiqueue tap0
# at 10.0.2.1/24 (the guests use 10.0.2.2), optionally an iperf3 server on
# it; both removed when the scenario exits. Sets IP (iproute2's ip).
host_tap() {
	IP=/usr/sbin/ip
	[ -x $IP ] || IP=$(command -v ip)
	[ -c /dev/net/tun ] || skip "no /dev/net/tun"
	$IP link del tap0 2>/dev/null
	$IP tuntap add tap0 mode tap multi_queue || fail "cannot create tap0"
	$IP addr add 10.0.2.1/24 dev tap0
	$IP link set tap0 up
	trap '$IP link del tap0 2>/dev/null' EXIT
	[ "${1:-}" = --iperf ] || return 0
	command -v iperf3 >/dev/null 2>&1 || skip "iperf3 missing"
	iperf3 -s -D --logfile "$LOGDIR/iperf3-server.log" || fail "cannot start the iperf3 server"
	trap 'pkill iperf3 2>/dev/null; $IP link del tap0 2>/dev/null' EXIT
}
