#!/bin/sh
# arm64 reference boot: the same Debian arm64 kernel + arm64 initramfs that
# arm64_boot gives minivmm, under Debian's arm64 QEMU with KVM inside the
# nested arm64 L1. Proves L2 Linux boots on L1's KVM whatever minivmm's arm64
# port does, and gives the time to compare arm64_boot with.
# rig-arch: arm64
# rig-needs: qemu
# rig-timeout: 300
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_qemu
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
GUEST_TIMEOUT=${GUEST_TIMEOUT_ARM64:-240}

run_cmd arm64-qemu-boot "$QEMU" -M virt,gic-version=3 -accel kvm -cpu host -smp 1 -m 256 \
	-nographic -no-reboot -nic none -kernel "$DEBIAN_KERNEL" -initrd "$GUEST_INITRD" \
	-append "console=ttyAMA0 panic=-1 mvtest=marker"
expect_line "$GUEST_LOG" "$GUEST_MARKER" "guest /init never started"
expect_line "$GUEST_LOG" '^MVTEST marker uname=.*arm64' "guest marker script did not run (or not an arm64 kernel)"
expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test marker exit=0' "guest marker script did not finish"
expect_rc 0 "QEMU"
init_at=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^\[ *\([0-9.]*\)\] Run \/init as init process.*/\1/p' | head -n 1)
pass "Debian arm64 kernel under QEMU/KVM booted to init and powered off in ${GUEST_SECS}s (guest clock at /init: ${init_at:-?}s)"
