#!/bin/bash
# The README's first command, driven through a pty as a user would type:
# runs guest-images/boot-default.sh (host KVM or the nested rig, whichever it
# picks), waits for the guest shell, checks that the guest has its disk
# (/dev/vda) and a NIC with 2 queue pairs (eth0: rx-0 rx-1 tx-0 tx-1), types
# poweroff, and expects boot-default.sh to end with status 0.
#   tests/rig/check-boot-default.sh [LOG]    (default build/check-boot-default.log)
# Takes a few minutes in the nested rig (install check, build, L1 boot).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
LOG=${1:-build/check-boot-default.log}
mkdir -p build/rig "$(dirname "$LOG")"
PTYDRIVE=build/rig/ptydrive
[[ -x $PTYDRIVE ]] || cc -static -O2 -o "$PTYDRIVE" tests/rig/ptydrive.c || exit 2
# The guest expands $(...): the echoed command lines do not match, only their output.
"$PTYDRIVE" --timeout "${CHECK_TIMEOUT:-1200}" --log "$LOG" \
	--expect 'Ctrl-A x stops the VM' \
	--expect 'minivmm guest shell' \
	--expect '# $' \
	--send 'echo "disk=$(ls /dev/vda)"' \
	--expect '^disk=/dev/vda$' \
	--send 'echo "queues=$(ls /sys/class/net/eth0/queues | tr "\n" " ")"' \
	--expect '^queues=rx-0 rx-1 tx-0 tx-1 $' \
	--send 'poweroff' \
	-- bash guest-images/boot-default.sh >/dev/null
rc=$?
grep -E '^(disk|queues)=|Ctrl-A x|^default guest' "$LOG" | tr -d '\r'
if ((rc != 0)); then
	echo "FAIL: ptydrive exit $rc (log: $LOG)"; tail -n 30 "$LOG"; exit 1
fi
echo "PASS: boot-default.sh: /dev/vda, eth0 with 2 queue pairs, poweroff -> exit 0"
