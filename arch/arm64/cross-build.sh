#!/bin/bash
# Cross-builds the static arm64 minivmm on an x86_64 Debian host and checks
# the result is what an arm64 rootfs needs: an aarch64, statically linked
# executable.
# Usage: arch/arm64/cross-build.sh [BUILD_DIR]     (default: build-arm64)
# Needs (.ci/install-deps.sh installs them): gcc-aarch64-linux-gnu,
# libseccomp-dev:arm64, libcap-dev:arm64, libjson-c-dev:arm64, liburing-dev:arm64,
# and apt access for libfdt-dev:arm64.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=${1:-build-arm64}
cache=${MINIVMM_CACHE:-$HOME/.cache/minivmm}

command -v aarch64-linux-gnu-gcc >/dev/null || {
	echo "arm64 cross build: aarch64-linux-gnu-gcc missing (apt-get install gcc-aarch64-linux-gnu)" >&2; exit 1; }

# libfdt-dev cannot be installed for amd64 and arm64 at once on Debian 12
# (it is not Multi-Arch: same, and installing one removes the other), and
# the native one is needed by the unit tests. So the arm64 static library is
# taken out of its package into the cache instead of being installed.
ver=$(apt-cache show --no-all-versions libfdt-dev:arm64 2>/dev/null | sed -n 's/^Version: //p' | head -n1)
if [[ -z $ver ]]; then
	echo "arm64 cross build: apt knows no libfdt-dev:arm64 (dpkg --add-architecture arm64 && apt-get update)" >&2
	exit 1
fi
fdt=$cache/arm64-libfdt-${ver//[^A-Za-z0-9.+-]/_}
if [[ ! -f $fdt/usr/lib/aarch64-linux-gnu/libfdt.a ]]; then
	mkdir -p "$cache"
	tmp=$(mktemp -d)
	chmod 755 "$tmp"   # apt-get download runs as _apt when it can
	(cd "$tmp" && apt-get download "libfdt-dev:arm64=$ver" >/dev/null 2>"$tmp/apt.log") || {
		echo "arm64 cross build: apt-get download libfdt-dev:arm64 failed:" >&2; cat "$tmp/apt.log" >&2
		rm -rf "$tmp"; exit 1; }
	rm -rf "$fdt.tmp"
	dpkg-deb -x "$tmp"/libfdt-dev_*_arm64.deb "$fdt.tmp"
	rm -rf "$tmp" "$fdt"
	mv "$fdt.tmp" "$fdt"
fi

mkdir -p "$out"
cmake -S . -B "$out" -DCMAKE_TOOLCHAIN_FILE=arch/arm64/toolchain-aarch64.cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	-DMINIVMM_STATIC=ON -DLIBFDT_LIBRARY="$fdt/usr/lib/aarch64-linux-gnu/libfdt.a" \
	-DLIBFDT_INCLUDE_DIR="$fdt/usr/include" >"$out/cmake.log" 2>&1 || {
	echo "arm64 cross build: cmake failed:" >&2; tail -n 30 "$out/cmake.log" >&2; exit 1; }
cmake --build "$out" -j"$(nproc)" >"$out/build.log" 2>&1 || {
	echo "arm64 cross build: build failed:" >&2; grep -E "error|warning" "$out/build.log" | head -n 30 >&2
	tail -n 10 "$out/build.log" >&2; exit 1; }
desc=$(file -b "$out/minivmm")
if [[ $desc != *"ARM aarch64"* || $desc != *"statically linked"* ]]; then
	echo "arm64 cross build: $out/minivmm is not a static aarch64 executable: $desc" >&2
	exit 1
fi
echo "arm64 cross build: $out/minivmm ($(stat -c %s "$out/minivmm") bytes, static aarch64)"
