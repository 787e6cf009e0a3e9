#!/bin/sh
# Exit status: 0 after the guest powers off or reboots (reported); non-zero with a clear
# "minivmm: error: ..." message when --kernel is not a kernel.
# rig-timeout: 180
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD

# 1. A file that is not a kernel: fails fast, non-zero, names the problem.
bogus=$LOGDIR/not-a-kernel.bin
i=0
: >"$bogus"
while [ $i -lt 2048 ]; do echo "this is not a kernel image, just text $i" >>"$bogus"; i=$((i + 1)); done
GUEST_TIMEOUT=30 run_guest bad-kernel --kernel "$bogus" --initrd "$GUEST_INITRD"
if [ "$GUEST_RC" = 0 ] || [ "$GUEST_RC" = 124 ]; then
	show_tail "$GUEST_LOG"
	fail "minivmm with a non-kernel file exited $GUEST_RC, want an error status"
fi
expect_line "$GUEST_LOG" '^minivmm: error: .*(not-a-kernel|kernel)' "no clear error message for a non-kernel file"
note "non-kernel: exit $GUEST_RC, $(tr -d '\r' <"$GUEST_LOG" | grep -E '^minivmm: error:' | head -n 1)"
bad_rc=$GUEST_RC

# 2. A real boot that ends with the guest powering off: exit 0.
run_guest poweroff --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
	--cmdline "console=ttyS0 panic=-1 mvtest=marker"
expect_line "$GUEST_LOG" "$GUEST_MARKER" "guest /init never started"
expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test marker exit=0' "guest test did not finish"
expect_line "$GUEST_LOG" 'guest powered off' "minivmm did not report a guest poweroff"
expect_rc 0 "minivmm after guest poweroff"
off_secs=$GUEST_SECS

# 3. The guest reboots: the VM stops, exit 0, and minivmm says why.
run_guest reboot --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
	--cmdline "console=ttyS0 panic=-1 mvtest=reboot"
expect_line "$GUEST_LOG" '^MVTEST rebooting' "guest reboot script did not run"
expect_line "$GUEST_LOG" 'guest requested a reboot' "minivmm did not report the guest reboot"
expect_rc 0 "minivmm after guest reboot"
pass "poweroff -> exit 0 (${off_secs}s); reboot -> exit 0, reported; non-kernel file -> exit $bad_rc with an error message"
