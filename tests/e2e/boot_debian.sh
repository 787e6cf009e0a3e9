#!/bin/sh
# Debian's kernel (bzImage) + the guest initramfs boot under minivmm to /init,
# run the guest's marker script, power off, and minivmm exits 0. The VM has a
# virtio-rng (--rng): the guest's kernel must take it as its hardware RNG and
# read 16 KiB of random bytes from /dev/hwrng.
# rig-timeout: 180
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD

# A guest the rig killed (rig_guest_died) boots again, and the result says so.
retried=
boot() {
	run_guest "$1" --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" --rng \
		--cmdline "console=ttyS0 panic=-1 mvtest=marker"
}
boot_retrying boot-debian
expect_line "$GUEST_LOG" "$GUEST_MARKER" "guest /init never started"
expect_line "$GUEST_LOG" '^MVTEST marker uname=' "guest marker script did not run"
expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test marker exit=0' "guest marker script did not finish"
# 4096 random bytes hold nearly all 256 byte values (a device returning zeros or a constant
# would show 1).
expect_line "$GUEST_LOG" '^MVTEST rng current=virtio_rng.0 bytes=16384 distinct=2[0-9][0-9]' \
	"the guest did not read 16 KiB of random bytes from the virtio-rng"
rng=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^MVTEST rng //p')
expect_rc 0 "minivmm"
pass "Debian kernel booted to init and powered off, exit 0 in ${GUEST_SECS}s; virtio-rng: $rng${retried:+ (re-booted:$retried)}"
