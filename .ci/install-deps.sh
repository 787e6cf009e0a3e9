#!/bin/bash
# Installs every Debian package minivmm's build, tests and guest images need.
# Idempotent: does nothing when everything is there already.
set -euo pipefail
PKGS=(
	# build and unit tests
	build-essential cmake pkg-config libcriterion-dev clang
	libfdt-dev libseccomp-dev libcap-dev
	# guest images: Debian kernel, busybox initramfs, our own minimal kernel
	linux-image-amd64 linux-source-6.1 busybox-static iperf3 cpio kmod e2fsprogs
	iproute2 ethtool bc flex bison libelf-dev libssl-dev xz-utils
	# the nested rig (QEMU TCG L1 with kvm-amd inside) and benchmarks
	qemu-system-x86 time python3
	# ACPI tables are cross-checked with ACPICA's disassembler
	acpica-tools
	# the arm64 port (cross build) and the nested arm64 rig (qemu-system-aarch64 TCG L1);
	# Debian's arm64 kernel, busybox and QEMU are downloaded, not installed, by
	# guest-images/build.sh arm64-*: apt needs the arm64 architecture in its lists (below)
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross binutils-aarch64-linux-gnu qemu-system-arm
)
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
need_update=0
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	echo "adding the arm64 architecture to apt (for guest-images/build.sh arm64-*)" >&2
	$SUDO dpkg --add-architecture arm64
	need_update=1
fi
if ! apt-cache show --no-all-versions linux-image-arm64:arm64 >/dev/null 2>&1; then
	need_update=1
fi
if ((${#missing[@]} == 0 && need_update)); then
	$SUDO apt-get update -qq
fi
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
