#!/bin/sh
# Guest side of the restore benchmark (tests/bench/rig/restore_compare.sh):
# boot marker 42 on the guest port every 2 ms (mvmark_ms=N on the command
# line to change that) from here on. A cold boot is timed to its first
# marker, a restore to the first marker after it.
ms=$(sed -n 's/.*mvmark_ms=\([0-9]*\).*/\1/p' /proc/cmdline)
echo "MVTEST snapbench marking every ${ms:-2} ms"
exec mvexit --mark 42 "${ms:-2}"
