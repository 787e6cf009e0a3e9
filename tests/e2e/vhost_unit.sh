#!/bin/sh
# The vhost-net backend's unit tests (tests/unit/test_net_vhost.c) where
# /dev/vhost-net exists: their real half (a vhost-net instance per queue pair on
# a real tap, frames both ways, stop and restart where it stopped) skips on the
# project's hosts, which have no vhost-net, and is run here instead. No guest.
# rig-timeout: 120
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

[ -n "${VHOST_UNIT_TEST:-}" ] || skip "no tests/unit/test_net_vhost beside minivmm (a build without tests?)"
[ -c /dev/vhost-net ] || fail "/dev/vhost-net missing"
log=$LOGDIR/vhost-unit.log
t0=$(date +%s)
"$VHOST_UNIT_TEST" --verbose >"$log" 2>&1
rc=$?
for t in real_pair_with_queue_notifier real_pair_with_forwarded_interrupts; do
	grep -q "^\[PASS\] net_vhost::$t:" "$log" || { show_tail "$log"; fail "net_vhost::$t did not pass (exit $rc)"; }
done
[ $rc -eq 0 ] || { show_tail "$log"; fail "test_net_vhost exited $rc"; }
synth=$(grep -o 'Tested: [0-9]* | Passing: [0-9]*' "$log" | tail -n 1)
skips=$(grep '^\[SKIP\]' "$log" | sed 's/^\[SKIP\] net_vhost::\([^:]*\).*/\1/' | tr '\n' ' ')
pass "real vhost-net pairs (queue notifier; forwarded interrupts) pass; $synth${skips:+; skipped here, as designed: $skips}in $(( $(date +%s) - t0 ))s"
