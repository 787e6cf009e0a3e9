#!/bin/sh
# The minimal kernel (guest-images, tinyconfig-based) + the guest initramfs boot under minivmm to /init,
# run the guest's marker script, power off, and minivmm exits 0.
# rig-timeout: 180
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD

# A guest the rig killed (rig_guest_died) boots again, and the result says so.
retried=
boot() {
	run_guest "$1" --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
		--cmdline "console=ttyS0 panic=-1 mvtest=marker"
}
boot_retrying boot-minimal
expect_line "$GUEST_LOG" "$GUEST_MARKER" "guest /init never started"
expect_line "$GUEST_LOG" '^MVTEST marker uname=' "guest marker script did not run"
expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test marker exit=0' "guest marker script did not finish"
expect_rc 0 "minivmm"
pass "minimal kernel booted to init and powered off, exit 0 in ${GUEST_SECS}s${retried:+ (re-booted:$retried)}"
