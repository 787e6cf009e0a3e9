#!/bin/bash
# Installs every Debian package minivmm's build, tests and guest images need.
# Idempotent: does nothing when everything is there already.
set -euo pipefail
PKGS=(
	# build and unit tests
	build-essential cmake pkg-config libcriterion-dev clang
	libfdt-dev libseccomp-dev libcap-dev libjson-c-dev
	# virtio-blk's io_uring engine (devices/virtio/blk_uring.c)
	liburing-dev
	# guest images: Debian kernel, busybox initramfs, our own minimal kernel
	linux-image-amd64 linux-source-6.1 busybox-static iperf3 cpio kmod e2fsprogs
	iproute2 ethtool bc flex bison libelf-dev libssl-dev xz-utils
	# the guests' static fio, built from Debian's fio source package (guest-images/build.sh fio)
	dpkg-dev libaio-dev zlib1g-dev
	# the nested rig (QEMU TCG L1 with kvm-amd inside) and benchmarks
	qemu-system-x86 time python3
	# ACPI tables are cross-checked with ACPICA's disassembler
	acpica-tools
	# arm64: cross build (static; libfdt-dev:arm64 is unpacked by
	# arch/arm64/cross-build.sh, it cannot be installed beside the native
	# one), dtc for the device tree tests, qemu-user to run the arm64 binary
	gcc-aarch64-linux-gnu libc6-dev-arm64-cross libseccomp-dev:arm64 libcap-dev:arm64 libjson-c-dev:arm64
	liburing-dev:arm64
	device-tree-compiler qemu-user
	# the nested arm64 rig (tests/rig/rig.sh --arch arm64): a qemu-system-aarch64 TCG L1;
	# Debian's arm64 kernel, busybox and QEMU are downloaded, not installed, by
	# guest-images/build.sh arm64-*
	binutils-aarch64-linux-gnu qemu-system-arm
)
# The :arm64 packages need the foreign architecture (and a fresh package list).
if ! dpkg --print-foreign-architectures | grep -qx arm64; then
	SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
	$SUDO dpkg --add-architecture arm64
fi
# guest-images/build.sh fio fetches Debian's fio source: apt needs a deb-src entry.
SRC_LIST=/etc/apt/sources.list.d/minivmm-deb-src.sources
NEED_UPDATE=0
if [[ -z $(apt-cache showsrc fio 2>/dev/null) ]]; then
	SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
	printf '%s\n' 'Types: deb-src' 'URIs: http://deb.debian.org/debian' 'Suites: bookworm' \
		'Components: main' 'Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg' | $SUDO tee "$SRC_LIST" >/dev/null
	NEED_UPDATE=1
fi
missing=()
for p in "${PKGS[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
SUDO=; [[ $(id -u) -eq 0 ]] || SUDO=sudo
# guest-images/build.sh arm64-* downloads arm64 packages: apt's lists must have them.
if ((${#missing[@]} == 0)) && { ((NEED_UPDATE)) || ! apt-cache show --no-all-versions linux-image-arm64:arm64 >/dev/null 2>&1; }; then
	$SUDO apt-get update -qq
fi
if ((${#missing[@]})); then
	echo "installing: ${missing[*]}" >&2
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
fi
