#!/bin/sh
# arm64 rig self-test, no Linux guest: L1's kernel was entered at EL2, its KVM
# initialised hyp mode (VHE or nVHE), /dev/kvm exists, and kvm-check
# (tests/rig/arm64/kvm-check.c) runs four guest instructions in a fresh VM and
# sees their MMIO write come out as KVM_EXIT_MMIO. Prints the round-trip time.
# rig-arch: arm64
# rig-timeout: 60
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

dmesg >"$LOGDIR/arm64-kvm-dmesg.log" 2>&1
expect_line "$LOGDIR/arm64-kvm-dmesg.log" 'CPU: All CPU\(s\) started at EL2' \
	"L1 kernel not entered at EL2 (QEMU needs -M virt,virtualization=on)"
expect_line "$LOGDIR/arm64-kvm-dmesg.log" 'kvm \[[0-9]+\]: (VHE|Hyp) mode initialized successfully' \
	"KVM did not initialise hyp mode"
need_kvm
need_file KVM_CHECK "kvm-check is built by rig.sh --arch arm64"
run_cmd kvm-check "$KVM_CHECK"
expect_line "$GUEST_LOG" '^KVM-CHECK PASS' "kvm-check did not pass"
expect_rc 0 "kvm-check"
mode=$(tr -d '\r' <"$LOGDIR/arm64-kvm-dmesg.log" | sed -n 's/.*kvm \[[0-9]*\]: \(VHE\|Hyp\) mode initialized.*/\1/p' | head -n 1)
pass "KVM ($mode) in L1: $(sed -n 's/^KVM-CHECK PASS //p' "$GUEST_LOG")"
