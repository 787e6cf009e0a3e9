#!/bin/bash
# The README's first command: installs what is missing, builds minivmm and
# the default guest image (Debian's kernel + the busybox initramfs), and
# boots it to a shell on this terminal, with a 64 MiB disk (/dev/vda) and a
# NIC with 2 queue pairs (eth0) on a multiqueue tap made for it; the disk
# image and the tap are removed when the VM ends (guest-images/run-default.sh).
# Type 'poweroff' (or Ctrl-A x) to leave.
#
# With hardware KVM minivmm runs right here. On a host whose /dev/kvm is PVM
# (or missing) Linux cannot run directly, so the guest boots under minivmm
# inside the nested rig's L1 VM, still on this terminal.
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/install-deps.sh
echo "building minivmm..." >&2
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >build.cmake.log 2>&1 || { tail -20 build.cmake.log; exit 1; }
cmake --build build -j"$(nproc)" >build.build.log 2>&1 || { tail -30 build.build.log; exit 1; }
rm -f build.cmake.log build.build.log
echo "building the default guest image (cached in ${MINIVMM_CACHE:-~/.cache/minivmm})..." >&2
KERNEL=$(bash guest-images/build.sh debian-kernel | tail -n 1)
INITRD=$(bash guest-images/build.sh initramfs | tail -n 1)

hardware_kvm() {
	[[ -c /dev/kvm && ! -e /sys/module/kvm_pvm ]] && { [[ -e /sys/module/kvm_intel ]] || [[ -e /sys/module/kvm_amd ]]; }
}

if hardware_kvm; then
	exec sh guest-images/run-default.sh build/minivmm "$KERNEL" "$INITRD"
fi
echo "no hardware KVM here ($( [[ -e /sys/module/kvm_pvm ]] && echo "host KVM is PVM" || echo "no usable /dev/kvm")):" \
	"booting inside the nested rig (QEMU TCG L1 with kvm-amd)" >&2
exec env MINIVMM="$PWD/build/minivmm" DEBIAN_KERNEL="$KERNEL" GUEST_INITRD="$INITRD" MINIMAL_KERNEL=none \
	bash tests/rig/rig.sh --no-build --interactive --logdir build/rig-interactive
