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
#   MARKTIME        the marktime helper (a command's time to a string in its output)
#   UDSCAT          the udscat helper (a Unix socket client and echo server)
#   RUNNER          minivmm-runner (runner/), when it was built
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
need_minimal_kernel() {
	need_file MINIMAL_KERNEL "guest-images/build.sh minimal-kernel did not give one"
}
need_ptydrive() {
	[ -n "$PTYDRIVE" ] && [ -x "$PTYDRIVE" ] || skip "ptydrive helper missing (${PTYDRIVE:-PTYDRIVE unset})"
}

# run_cmd NAME CMD [ARGS...]: run CMD with a timeout of $GUEST_TIMEOUT s,
# stdin from /dev/null, stdout+stderr saved to $LOGDIR/NAME.log. One that
# times out gets its threads and KVM counters dumped into the log (_threads),
# then SIGTERM, and SIGKILL 5 s later. Sets GUEST_LOG, GUEST_PID, GUEST_RC
# (124 = timed out), GUEST_SECS. Never exits.
run_cmd() {
	_name=$1; shift
	GUEST_LOG=$LOGDIR/$_name.log
	note "run $_name: $* (timeout ${GUEST_TIMEOUT}s, log $GUEST_LOG)"
	_t0=$(now)
	: >"$GUEST_LOG"
	# Appending: the watchdog's dump goes into the same log.
	"$@" </dev/null >>"$GUEST_LOG" 2>&1 &
	GUEST_PID=$!
	_watchdog "$GUEST_TIMEOUT" TERM
	wait "$GUEST_PID"
	GUEST_RC=$?
	kill "$_dog" 2>/dev/null
	wait "$_dog" 2>/dev/null
	GUEST_SECS=$(elapsed "$_t0")
	if [ -e "$_dog_fired" ]; then
		GUEST_RC=124
		rm -f "$_dog_fired"
		echo "[$SCENARIO] $_name: TIMED OUT after ${GUEST_TIMEOUT}s" >>"$GUEST_LOG"
	fi
	note "$_name: exit $GUEST_RC after ${GUEST_SECS}s"
	return 0
}

# run_guest NAME MINIVMM-ARGS...: run minivmm with the console on stdout.
run_guest() {
	_name=$1; shift
	run_cmd "$_name" "$MINIVMM" --console stdio --guest-exit "$@"
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
	trap host_tap_stop EXIT
	[ "${1:-}" = --iperf ] || return 0
	command -v iperf3 >/dev/null 2>&1 || skip "iperf3 missing"
	iperf_server_start 10.0.2.1
}

# host_tap_stop: host_tap's clean-up; a scenario that sets its own EXIT trap
# calls it from there.
host_tap_stop() {
	iperf_server_stop
	$IP link del tap0 2>/dev/null
}

# iperf_server_start IP: a fresh iperf3 server on IP:5201, this shell's child
# (IPERF_PID, IPERF_IP), stopping the one it had. Fails if another process
# holds the port: the guest would talk to that one, maybe still busy with a
# dead guest's test ("the server is busy running a test"). L1's busybox has
# no pkill, so a server is only ever stopped by its pid.
iperf_server_start() {
	iperf_server_stop
	IPERF_IP=$1
	iperf_port_listening && fail "TCP port 5201 (iperf3) is already taken on the host side: a server left by an earlier scenario?"
	iperf3 -s -B "$IPERF_IP" --logfile "$LOGDIR/iperf3-server.log" &
	IPERF_PID=$!
	_i=0
	while ! iperf_port_listening; do
		_i=$((_i + 1))
		[ $_i -le 50 ] && kill -0 "$IPERF_PID" 2>/dev/null ||
			fail "the iperf3 server on $IPERF_IP did not start (see $LOGDIR/iperf3-server.log)"
		sleep 0.1
	done
}

# iperf_server_stop: SIGKILL (a server's SIGTERM handler writes to its
# client, and can block on a dead one) and reap the iperf_server_start one.
iperf_server_stop() {
	[ -n "${IPERF_PID:-}" ] || return 0
	kill -9 "$IPERF_PID" 2>/dev/null
	wait "$IPERF_PID" 2>/dev/null
	IPERF_PID=
}

# iperf_port_listening: whether anything listens on TCP port 5201 (0x1451).
iperf_port_listening() {
	awk '$2 ~ /:1451$/ && $4 == "0A" { found = 1 } END { exit !found }' \
		/proc/net/tcp /proc/net/tcp6 2>/dev/null
}

# ---- a guest in the background (the fault scenarios act on a running VM) ----
#
# minivmm's console and stderr come through a FIFO this shell reads, so a
# scenario acts the moment a line appears without polling the log (a loop
# of greps would take CPU from the guest in the rig's emulated L1).

# start_guest NAME MINIVMM-ARGS...: run_guest without waiting. Sets
# GUEST_LOG, GUEST_PID (minivmm's own pid) and GUEST_T0. Then watch_for
# lines, and finish with wait_guest.
start_guest() {
	_name=$1; shift
	GUEST_LOG=$LOGDIR/$_name.log
	note "start $_name: $MINIVMM --console stdio --guest-exit $* (log $GUEST_LOG)"
	_fifo=$LOGDIR/.$_name.fifo
	rm -f "$_fifo"
	mkfifo "$_fifo" || fail "cannot make the FIFO $_fifo"
	: >"$GUEST_LOG"
	GUEST_T0=$(now)
	"$MINIVMM" --console stdio --guest-exit "$@" </dev/null >"$_fifo" 2>&1 &
	GUEST_PID=$!
	exec 3<"$_fifo"
	rm -f "$_fifo"
	_drain=
}

# _threads: where each thread of the guest and each vhost worker is (state,
# wait channel, kernel stack when readable): why a guest did not end.
_threads() {
	echo "[$SCENARIO] minivmm $GUEST_PID still running; its threads and the vhost workers:"
	for _t in /proc/"$GUEST_PID"/task/* $(grep -l '^vhost-' /proc/[0-9]*/comm 2>/dev/null | sed 's,/comm$,,'); do
		[ -r "$_t/stat" ] || continue
		echo "  $(cut -d' ' -f1-3 "$_t/stat") utime+stime=$(cut -d' ' -f14-15 "$_t/stat") wchan=$(cat "$_t/wchan" 2>/dev/null)"
		sed 's/^/      /' "$_t/stack" 2>/dev/null | head -n 12
	done
	# A vCPU thread that is running: in the guest, or exiting over and over?
	# KVM's counters for this VM (debugfs), 1 s apart.
	[ -d /sys/kernel/debug/kvm ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
	for _d in /sys/kernel/debug/kvm/"$GUEST_PID"-*; do
		[ -d "$_d" ] || continue
		_c="exits io_exits mmio_exits irq_exits halt_exits halt_wakeup irq_injections nmi_injections
			insn_emulation pf_taken signal_exits irq_window_exits request_irq_exits hypercalls"
		_a=$(cd "$_d" && cat $_c 2>/dev/null | tr '\n' ' ')
		sleep 1
		_b=$(cd "$_d" && cat $_c 2>/dev/null | tr '\n' ' ')
		echo "  kvm $(basename "$_d") ($(echo $_c)): $_a-> $_b"
	done
	for _t in /proc/"$GUEST_PID"/task/*; do
		echo "  $(cut -d' ' -f1-2 "$_t/stat") utime+stime=$(cut -d' ' -f14-15 "$_t/stat") (1 s later)"
	done
}

# _watchdog SECS [SIGNAL]: after SECS, dumps the guest's threads into its log
# and SIGKILLs it (or sends SIGNAL, and SIGKILL 5 s later). Sets _dog;
# _dog_fired is a file that exists once it fired.
_watchdog() {
	_dog_fired=$LOGDIR/.watchdog-$GUEST_PID
	rm -f "$_dog_fired"
	# Killing the watchdog kills its sleep too: nothing is left holding
	# the scenario's output open.
	(
		trap 'kill $_s 2>/dev/null; exit 0' TERM
		sleep "$1" &
		_s=$!
		wait $_s
		kill -0 "$GUEST_PID" 2>/dev/null || exit 0
		: >"$_dog_fired"
		_threads >>"$GUEST_LOG"
		[ "${2:-KILL}" = KILL ] || {
			kill -"$2" "$GUEST_PID"
			sleep 5 &
			_s=$!
			wait $_s
		}
		kill -KILL "$GUEST_PID" 2>/dev/null
	) </dev/null >/dev/null 2>&1 &
	_dog=$!
}

# watch_for REGEX SECS [SIGNAL]: copies the guest's output into GUEST_LOG
# line by line until one matches (CRs ignored): then sends SIGNAL (if given)
# to minivmm at once and returns 0, the rest of the output going on into
# the log in the background. Returns 1 if the output ends without it; after
# SECS the guest is SIGKILLed (so it ends).
watch_for() {
	[ -z "$_drain" ] || return 1
	_watchdog "$2"
	_rc=1
	while IFS= read -r _line <&3; do
		printf '%s\n' "$_line" >>"$GUEST_LOG"
		if printf '%s\n' "$_line" | tr -d '\r' | grep -Eq -- "$1"; then
			[ -z "$3" ] || kill -"$3" "$GUEST_PID"
			_rc=0
			break
		fi
	done
	kill "$_dog" 2>/dev/null
	cat <&3 >>"$GUEST_LOG" &
	_drain=$!
	exec 3<&-
	[ $_rc = 0 ] && note "$(basename "$GUEST_LOG" .log): /$1/ after $(elapsed "$GUEST_T0")s"
	return $_rc
}

# wait_guest SECS: waits for the background minivmm to end, SIGKILLing it
# after SECS. Sets GUEST_RC (its exit status; 124 if it had to be killed),
# GUEST_END (when it ended, as from now) and GUEST_SECS (since start_guest).
wait_guest() {
	if [ -z "$_drain" ]; then
		cat <&3 >>"$GUEST_LOG" &
		_drain=$!
		exec 3<&-
	fi
	_watchdog "$1"
	wait "$GUEST_PID"
	GUEST_RC=$?
	GUEST_END=$(now)
	kill "$_dog" 2>/dev/null
	wait "$_drain"
	_drain=
	if [ -e "$_dog_fired" ]; then
		GUEST_RC=124
		rm -f "$_dog_fired"
		echo "[$SCENARIO] TIMED OUT: still running ${1}s after it was waited for; killed" >>"$GUEST_LOG"
	fi
	GUEST_SECS=$(elapsed "$GUEST_T0")
	note "$(basename "$GUEST_LOG" .log): exit $GUEST_RC after ${GUEST_SECS}s"
}

# expect_count LOG REGEX N [WHAT]: fail unless exactly N lines of LOG match.
expect_count() {
	_n=$(tr -d '\r' <"$1" | grep -Ec -- "$2")
	[ "$_n" = "$3" ] && return 0
	show_tail "$1"
	fail "${4:-lines matching /$2/}: $_n, want $3 in $(basename "$1")"
}

# no_sanitizer_report LOG: fail if an ASan/UBSan build of minivmm said anything.
no_sanitizer_report() {
	expect_no_line "$1" 'ERROR: (Address|Leak|Thread)Sanitizer|runtime error:' "sanitizer report"
}

# rig_guest_died LOG [MARKER]: prints why, and returns 0, if the L2 guest of
# LOG died the way the emulated rig killed guests when L1's KVM ran them on
# the emulated CPU's nested paging: a triple fault with no oops or panic on
# the guest's console, a guest that timed out with CPUs in soft lockup and
# no word from minivmm, or no MARKER line (default: the guest's init banner)
# at all. QEMU's guests died the same ways at a like rate in the same L1s;
# with npt=0 (the rig's default since) neither did (docs/rig-failure-rates.md).
# So a death is a failure now: scenarios boot such a guest again only when
# RIG_REBOOTS (default 0) asks for it, saying so in their result line.
RIG_REBOOTS=${RIG_REBOOTS:-0}
rig_guest_died() {
	_l=$(tr -d '\r' <"$1")
	if printf '%s\n' "$_l" | grep -q '^minivmm: vcpu[0-9]*: guest triple fault' &&
		! printf '%s\n' "$_l" | grep -Eq 'Kernel panic|Oops|BUG:|general protection'; then
		echo "L2 triple fault after: $(printf '%s\n' "$_l" | grep -v '^minivmm:' | grep . | tail -n 1 | cut -c1-50)"
		return 0
	fi
	# Seen once (2026-12-03, vhost=on, iperf3 -R): two guest CPUs stuck
	# for good, minivmm silent. The log keeps the dump of its threads.
	if printf '%s\n' "$_l" | grep -q 'TIMED OUT' &&
		printf '%s\n' "$_l" | grep -q 'watchdog: BUG: soft lockup' &&
		! printf '%s\n' "$_l" | grep -Eq '^minivmm: (warning|error)|Kernel panic|Oops|BUG: (unable|kernel NULL)|general protection'; then
		echo "L2 soft lockup: $(printf '%s\n' "$_l" | grep -o 'CPU#[0-9]* stuck' | sort -u | tr '\n' ' ')"
		return 0
	fi
	if ! printf '%s\n' "$_l" | grep -q -- "${2:-$GUEST_MARKER}" &&
		! printf '%s\n' "$_l" | grep -q '^minivmm: error'; then
		echo "died before init: $(printf '%s\n' "$_l" | grep . | tail -n 1 | cut -c1-50)"
		return 0
	fi
	return 1
}

# boot_retrying NAME: runs the scenario's boot function (with NAME), and
# again, at most RIG_REBOOTS (default 0) more times, while rig_guest_died
# says the guest died that way; each such death is kept as LOGDIR/NAME-died-N.log and
# added to $retried for the scenario's result line.
boot_retrying() {
	boot "$1"
	_n=0
	while [ $_n -lt "$RIG_REBOOTS" ] && _why=$(rig_guest_died "$GUEST_LOG"); do
		_n=$((_n + 1))
		retried="$retried $1($_why)"
		note "$1: $_why; booting it once more"
		mv "$GUEST_LOG" "$LOGDIR/$1-died-$_n.log"
		# The dead guest's iperf3 test would keep the server busy until TCP
		# gives up on it (minutes): the next guest gets a fresh one.
		[ -n "${IPERF_PID:-}" ] && iperf_server_start "$IPERF_IP"
		boot "$1"
	done
}
