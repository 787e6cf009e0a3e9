#!/bin/sh
# The README's first command as a user at a terminal sees it, through a real
# pty: guest-images/run-default.sh (what boot-default.sh runs) boots the
# guest with its disk and a 2-queue NIC on a tap it makes; wait for the
# shell's prompt, type commands, read their output (a command, /dev/vda,
# eth0's four queues), type poweroff, and it exits 0 with the tap gone.
# rig-timeout: 180
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_ptydrive
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
RUN_DEFAULT=${RUN_DEFAULT:-/rig/guest-images/run-default.sh}
[ -r "$RUN_DEFAULT" ] || fail "no $RUN_DEFAULT"

log=$LOGDIR/serial-interactive.log
note "ptydrive session, console in $log"
t0=$(now)
# $((6*7)) is expanded by the guest's shell: the echoed command line does not
# contain "hello-42", only the command's output does.
"$PTYDRIVE" --timeout "$GUEST_TIMEOUT" --log "$log" \
	--expect "$GUEST_MARKER" \
	--expect '# $' \
	--send 'echo hello-$((6*7))' \
	--expect '^hello-42$' \
	--send 'echo "disk=$(ls /dev/vda)"' \
	--expect '^disk=/dev/vda$' \
	--send 'echo "queues=$(ls /sys/class/net/eth0/queues | tr "\n" " ")"' \
	--expect '^queues=rx-0 rx-1 tx-0 tx-1 $' \
	--send 'poweroff' \
	-- sh "$RUN_DEFAULT" "$MINIVMM" "$DEBIAN_KERNEL" "$GUEST_INITRD" >/dev/null 2>"$LOGDIR/serial-interactive.ptydrive"
rc=$?
secs=$(elapsed "$t0")
cat "$LOGDIR/serial-interactive.ptydrive"
if [ $rc != 0 ]; then
	show_tail "$log"
	why=$(grep -E '^ptydrive: (timeout|command ended|cannot|write|bad)' "$LOGDIR/serial-interactive.ptydrive" | head -n 1)
	how=$(grep -E '^ptydrive: command (exited|was|ended with)' "$LOGDIR/serial-interactive.ptydrive" | tail -n 1)
	fail "ptydrive exit $rc: ${why#ptydrive: }${why:+; }${how#ptydrive: }"
fi
left=$(ls /sys/class/net | grep -c '^mvtap' || true)
[ "$left" = 0 ] || fail "run-default.sh left $left tap(s) behind"
pass "run-default.sh: prompt, hello-42, /dev/vda, eth0 rx-0 rx-1 tx-0 tx-1, poweroff -> exit 0, tap removed, in ${secs}s"
