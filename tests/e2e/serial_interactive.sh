#!/bin/sh
# The serial console through a real pty, as a user at a terminal sees it:
# wait for the guest shell's prompt, type a command, read its output, type
# poweroff, and minivmm exits 0.
# rig-timeout: 180
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_ptydrive
need_file DEBIAN_KERNEL
need_file GUEST_INITRD

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
	--send 'poweroff' \
	-- "$MINIVMM" --console stdio --guest-exit --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
	--cmdline "console=ttyS0 panic=-1" >/dev/null 2>"$LOGDIR/serial-interactive.ptydrive"
rc=$?
secs=$(elapsed "$t0")
cat "$LOGDIR/serial-interactive.ptydrive"
if [ $rc != 0 ]; then
	show_tail "$log"
	why=$(grep -E '^ptydrive: (timeout|command ended|cannot|write|bad)' "$LOGDIR/serial-interactive.ptydrive" | head -n 1)
	how=$(grep -E '^ptydrive: command (exited|was|ended with)' "$LOGDIR/serial-interactive.ptydrive" | tail -n 1)
	fail "ptydrive exit $rc: ${why#ptydrive: }${why:+; }${how#ptydrive: }"
fi
pass "prompt, echo hello-\$((6*7)) -> hello-42, poweroff -> exit 0 in ${secs}s"
