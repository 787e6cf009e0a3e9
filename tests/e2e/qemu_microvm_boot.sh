#!/bin/sh
# Rig self-test: QEMU (not minivmm) boots the Debian kernel as an L2 guest
# with KVM inside L1, microvm machine. Proves that KVM works in L1, that L2
# Linux boots, and that results come back. Needs rig.sh --with-qemu.
# rig-timeout: 180
# rig-needs: qemu
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_qemu
need_file DEBIAN_KERNEL
need_file GUEST_INITRD

run_cmd qemu-microvm "$QEMU" -enable-kvm -M microvm -cpu host -m 256 -nographic -no-reboot \
	-kernel "$DEBIAN_KERNEL" -initrd "$GUEST_INITRD" -append "console=ttyS0 mvtest=cpus"
expect_line "$GUEST_LOG" "$GUEST_MARKER" "no init marker"
expect_line "$GUEST_LOG" '^MVTEST cpus=1' "guest did not report cpus=1"
expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test cpus exit=0' "guest test did not finish"
expect_rc 0 "qemu"
pass "L2 Debian kernel booted under QEMU microvm+KVM in ${GUEST_SECS}s"
