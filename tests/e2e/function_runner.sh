#!/bin/sh
# The function runner (tests/runner/): example.sh runs 20 commands, each in its own microVM,
# all 20 at once, and checks every exit status (passed back through the guest port), stdout
# and stderr (through each VM's --console file). Then two commands that end their VM without
# reporting a status (a poweroff, and a guest-port write that bypasses the guest's reporting)
# must come back as "no-status", with the runner's exit status 1.
# rig-timeout: 900
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file GUEST_INITRD
# The minimal kernel boots faster than Debian's (README, function runner). L1 has 4 GiB for 20
# VMs: 96 MiB each is enough under the minimal kernel; Debian's runs out of memory unpacking
# the initramfs (its modules) at 96, so it gets 256 (as in the rate benchmark). A VM gets 300 s
# before it counts as hung: 20 VMs share L1's 2 emulated vCPUs, and one takes 35-165 s.
if [ -n "${MINIMAL_KERNEL:-}" ] && [ -f "$MINIMAL_KERNEL" ]; then
	KERNEL=$MINIMAL_KERNEL MEM=96
else
	KERNEL=${DEBIAN_KERNEL:-} MEM=256
fi
[ -n "$KERNEL" ] && [ -f "$KERNEL" ] || skip "no guest kernel (MINIMAL_KERNEL and DEBIAN_KERNEL unavailable)"
RUNNER_DIR=$(cd "$(dirname "$RIG_LIB")/../runner" && pwd) || fail "tests/runner is missing"
OPTS="--kernel $KERNEL --initrd $GUEST_INITRD --minivmm $MINIVMM --mem $MEM --timeout 300"

note "example: 20 commands in 20 microVMs at once, kernel $KERNEL"
t0=$(now)
# shellcheck disable=SC2086
sh "$RUNNER_DIR/example.sh" $OPTS --out "$LOGDIR/function-runner" >"$LOGDIR/function-runner.log" 2>&1
rc=$?
cat "$LOGDIR/function-runner.log"
expect_line "$LOGDIR/function-runner.log" '^example: PASS' "the example's results are wrong"
[ $rc = 0 ] || fail "example.sh exited $rc after printing PASS"
rate=$(sed -n 's/^function_runner: .*s: \([0-9.]* VMs\/s\).*/\1/p' "$LOGDIR/function-runner.log" | head -n 1)   # the batch, not a retry
secs=$(elapsed "$t0")

note "commands that end their VM without a status must be reported as such"
# shellcheck disable=SC2086
sh "$RUNNER_DIR/function_runner.sh" $OPTS --out "$LOGDIR/function-runner-nostatus" -- \
	'echo bye; poweroff -f' 'mvexit 9' >"$LOGDIR/function-runner-nostatus.log" 2>&1
rc=$?
cat "$LOGDIR/function-runner-nostatus.log"
[ $rc = 1 ] || fail "runner exited $rc for VMs without a status, want 1"
outcomes=$(awk -F'\t' 'NR > 1 { printf "%s%s", sep, $2; sep = "," }' "$LOGDIR/function-runner-nostatus/results.tsv")
[ "$outcomes" = no-status,no-status ] || fail "outcomes $outcomes, want no-status,no-status"
# The VMM's side of it: poweroff is exit 0, the bare port write is the status itself.
[ "$(cat "$LOGDIR/function-runner-nostatus/1/rc")" = 0 ] || fail "poweroff: minivmm exited $(cat "$LOGDIR/function-runner-nostatus/1/rc"), want 0"
[ "$(cat "$LOGDIR/function-runner-nostatus/2/rc")" = 9 ] || fail "mvexit 9: minivmm exited $(cat "$LOGDIR/function-runner-nostatus/2/rc"), want 9"
expect_line "$LOGDIR/function-runner-nostatus/2/vmm.log" '^minivmm: guest exited with status 9$'

retried=$(sed -n 's/.*(ran again after the guest died before init:\(.*\))$/\1/p' "$LOGDIR/function-runner.log")
pass "20 commands in 20 concurrent microVMs, all results right, in ${secs}s (${rate})${retried:+, ran again after the guest died before init:$retried}; VMs without a status reported"
