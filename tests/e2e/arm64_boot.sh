#!/bin/sh
# arm64: Debian's arm64 kernel (Image) + the arm64 busybox initramfs boot under
# the cross-built minivmm inside the nested arm64 L1, reach /init, run the
# guest's marker script, power off (PSCI SYSTEM_OFF), and minivmm exits 0.
# Reports minivmm start to poweroff, and the guest kernel's own clock at
# "Run /init" (boot to init as the guest sees it).
# rig-arch: arm64
# rig-timeout: 300
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
GUEST_TIMEOUT=${GUEST_TIMEOUT_ARM64:-240}

run_guest arm64-boot --cpus 1 --mem 256 --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
	--cmdline "console=ttyS0 earlycon panic=-1 mvtest=marker"
expect_line "$GUEST_LOG" "$GUEST_MARKER" "guest /init never started"
expect_line "$GUEST_LOG" '^MVTEST marker uname=.*arm64' "guest marker script did not run (or not an arm64 kernel)"
expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test marker exit=0' "guest marker script did not finish"
expect_rc 0 "minivmm"
init_at=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^\[ *\([0-9.]*\)\] Run \/init as init process.*/\1/p' | head -n 1)
pass "Debian arm64 kernel booted to init and powered off, exit 0 in ${GUEST_SECS}s (guest clock at /init: ${init_at:-?}s)"
