# arm64 images, sourced by build.sh (uses its cached_build, short_hash, hash_material_files,
# console_cpio, log, die). Debian's arm64 packages are downloaded with "apt-get download" and
# unpacked with dpkg-deb: nothing foreign is installed. That needs the arm64 architecture in
# apt's lists (.ci/install-deps.sh: dpkg --add-architecture arm64; apt-get update).
#
#   arm64-kernel     Debian's arm64 kernel Image (uncompressed, bootable by QEMU -kernel and by
#                    minivmm alike) + the few modules the nested arm64 rig's L1 loads, with a
#                    load order (modules.load). One image serves as L1 and as L2 kernel.
#   arm64-initramfs  busybox-static:arm64 + the virtio-mmio/pci/blk/net and vsock modules +
#                    guest-images/init.sh and tests/e2e/guest/*.sh, the same guest contract as the
#                    x86 initramfs (marker line, mvtest=NAME), + the guest programs of
#                    ARM64_GUEST_PROGRAMS cross-built static. The busybox binary is kept next to it
#                    (the rig's L1 userspace).

# Modules the L1 VM of the arm64 rig loads (dependencies are added by the build, before each
# module that needs them): virtio-mmio + virtio-blk for the results disk, tun/tap/vhost-net for
# network scenarios. KVM itself is built in (CONFIG_KVM=y) in Debian's arm64 kernel.
ARM64_L1_MODULES=(virtio_mmio virtio_blk tun tap vhost_net)
# Modules of the arm64 guest initramfs: virtio disks and NICs on both transports (arm64_devices),
# virtio-vsock (arm64_vsock; the x86 image's DEBIAN_MODULES have the same three).
ARM64_GUEST_MODULES=(virtio_mmio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk virtio_net
    vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport)
# Guest programs of the arm64 initramfs (tests/e2e/guest/NAME.c -> /usr/bin/NAME), built
# static with aarch64-linux-gnu-gcc. Only those that are not x86-specific: vsockcat (busybox has
# no AF_VSOCK) for arm64_vsock.
ARM64_GUEST_PROGRAMS=(vsockcat)
ARM64_CC=aarch64-linux-gnu-gcc

# arm64_modules TREE KVER DEST LIST MODULE...: copy each module and its dependencies (first)
# from the unpacked kernel package TREE to DEST/<path under /lib/modules/KVER>, appending the
# paths in load order to LIST.
arm64_modules() {
    local x=$1 kver=$2 dest=$3 list=$4 m seen=" "; shift 4
    depmod -b "$x" "$kver" || die "depmod on the unpacked $kver failed"
    add_module() {
        local d src rel
        [[ $seen == *" $1 "* ]] && return 0
        seen+="$1 "
        for d in $(modinfo -b "$x" -k "$kver" -F depends "$1" | tr ',' ' '); do
            add_module "$d"
        done
        src=$(modinfo -b "$x" -k "$kver" -n "$1") || die "no module $1 in $kver"
        [[ $src == /* ]] || return 0   # "(builtin)"
        rel=${src#"$x"/lib/modules/"$kver"/}
        mkdir -p "$dest/$(dirname "$rel")"
        cp -- "$src" "$dest/$rel"
        echo "$rel" >>"$list"
    }
    : >"$list"
    for m in "$@"; do add_module "$m"; done
}

# Candidate version of an arm64 package in apt's lists (no network needed).
arm64_candidate() {
    local v
    v=$(apt-cache show --no-all-versions "$1:arm64" 2>/dev/null | sed -n 's/^Version: //p' | head -n 1)
    [[ -n $v ]] || die "no $1:arm64 in apt's lists: run .ci/install-deps.sh (dpkg --add-architecture arm64; apt-get update)"
    echo "$v"
}

# The kernel package linux-image-arm64:arm64 points at, e.g. "linux-image-6.1.0-56-arm64".
arm64_kernel_package() {
    local dep
    arm64_candidate linux-image-arm64 >/dev/null
    dep=$(apt-cache show --no-all-versions linux-image-arm64:arm64 | sed -n 's/^Depends: //p' | head -n 1)
    echo "${dep%% *}"
}

# arm64_unpack DIR PKG=VERSION...: download each arm64 package and unpack it into DIR.
arm64_unpack() {
    local dir=$1 dl p; shift
    dl=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-debs.XXXXXX")
    CLEANUP+=("$dl")
    chmod 755 "$dl"   # apt drops to its _apt user for downloads; let it write here
    local -a want=()
    for p in "$@"; do want+=("${p%%=*}:arm64=${p#*=}"); done
    log "downloading ${want[*]}"
    # One apt-get for all (each start reads apt's whole package lists: seconds).
    (cd "$dl" && apt-get download -q "${want[@]}") >/dev/null 2>"$dl/err" ||
        { cat "$dl/err" >&2; die "apt-get download failed"; }
    for p in "$dl"/*.deb; do
        dpkg-deb -x "$p" "$dir" || die "dpkg-deb -x $p failed"
    done
    rm -rf -- "$dl"
}

recipe_arm64_kernel() {
    local pkg
    pkg=$(arm64_kernel_package)
    ARM64_KPKG="$pkg=$(arm64_candidate "$pkg")"
    {
        hash_material_files "$HERE/build.sh" "$HERE/arm64.sh"
        echo "$ARM64_KPKG"
    } >"$WORK/material"
    cached_build arm64-kernel "$(short_hash <"$WORK/material")" Image build_arm64_kernel <"$WORK/material"
}

build_arm64_kernel() {
    local stage=$1 x x_kernel kver
    x=$stage/deb
    arm64_unpack "$x" "$ARM64_KPKG"
    kver=${ARM64_KPKG%%=*}; kver=${kver#linux-image-}
    # Debian ships an uncompressed Image on arm64 (the "ARM\x64" magic at 0x38); a gzip'd one
    # would need unpacking first, minivmm loads the Image format only.
    x_kernel=$x/boot/vmlinuz-$kver
    if [[ $(od -An -c -j 0 -N 2 "$x_kernel" | tr -d ' ') == $'\037\213' ]]; then
        gzip -dc "$x_kernel" >"$stage/Image"
    else
        cp -- "$x_kernel" "$stage/Image"
    fi
    [[ $(od -An -tx1 -j 56 -N 4 "$stage/Image" | tr -d ' ') == 41524d64 ]] ||
        die "arm64-kernel: $x_kernel is not an arm64 Image (no ARM\\x64 magic)"
    cp -- "$x/boot/config-$kver" "$stage/config"
    echo "$kver" >"$stage/release"

    # The L1 modules and their dependencies, in load order, under modules/ (paths as in
    # /lib/modules/KVER/), listed in modules.load.
    arm64_modules "$x" "$kver" "$stage/modules" "$stage/modules.load" "${ARM64_L1_MODULES[@]}"
    rm -rf -- "$x"
    ls -l "$stage/Image" >&2
}

recipe_arm64_initramfs() {
    local -a tests csrcs=()
    local pkg p
    mapfile -t tests < <(find "$GUEST_TESTS_DIR" -maxdepth 1 -name '*.sh' -type f | sort)
    for p in "${ARM64_GUEST_PROGRAMS[@]}"; do
        [[ -f $GUEST_TESTS_DIR/$p.c ]] || die "arm64-initramfs: no guest program $GUEST_TESTS_DIR/$p.c"
        csrcs+=("$GUEST_TESTS_DIR/$p.c")
    done
    command -v "$ARM64_CC" >/dev/null ||
        die "arm64-initramfs: $ARM64_CC missing (apt-get install gcc-aarch64-linux-gnu libc6-dev-arm64-cross)"
    ARM64_BUSYBOX="busybox-static=$(arm64_candidate busybox-static)"
    pkg=$(arm64_kernel_package)
    ARM64_KPKG="$pkg=$(arm64_candidate "$pkg")"
    {
        hash_material_files "$HERE/build.sh" "$HERE/arm64.sh" "$INIT_SCRIPT" "${tests[@]}" "${csrcs[@]}"
        echo "$ARM64_BUSYBOX"
        echo "$ARM64_KPKG"
        echo "compiler=$("$ARM64_CC" --version | head -n 1)"
    } >"$WORK/material"
    GUEST_CSRCS=("${csrcs[@]}")
    GUEST_TESTS=("${tests[@]}")
    cached_build arm64-initramfs "$(short_hash <"$WORK/material")" initramfs.cpio.gz \
        build_arm64_initramfs <"$WORK/material"
}

build_arm64_initramfs() {
    local stage=$1 root=$1/root f kver
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/mvtest,proc,sys,dev,tmp,root}
    chmod 1777 "$root/tmp"
    arm64_unpack "$stage/deb" "$ARM64_BUSYBOX" "$ARM64_KPKG"
    cp -- "$stage/deb/bin/busybox" "$root/bin/busybox"
    # The virtio modules, loaded by init.sh in the order of minivmm-load-order.
    kver=${ARM64_KPKG%%=*}; kver=${kver#linux-image-}
    mkdir -p "$root/lib/modules/$kver"
    arm64_modules "$stage/deb" "$kver" "$root/lib/modules/$kver" \
        "$root/lib/modules/$kver/minivmm-load-order" "${ARM64_GUEST_MODULES[@]}"
    cp -- "$stage/deb/bin/busybox" "$stage/busybox"   # for the rig's L1 userspace too
    rm -rf -- "$stage/deb"
    # The applet links are made at boot (busybox --install): an arm64 busybox cannot be asked
    # for its applet list here. /bin/sh is busybox's ash (the x86 image uses dash so that
    # iproute2's ip wins over busybox's; there is no iproute2 here).
    ln -s busybox "$root/bin/sh"
    cat >"$root/init" <<'EOF'
#!/bin/busybox sh
# arm64 guest /init (guest-images/arm64.sh): make busybox's applet links, then the shared init.
/bin/busybox --install -s
exec /bin/sh /etc/minivmm-init.sh
EOF
    chmod 755 "$root/init"
    install -m 755 -- "$INIT_SCRIPT" "$root/etc/minivmm-init.sh"
    for f in "${GUEST_TESTS[@]}"; do
        install -m 755 -- "$f" "$root/etc/mvtest/"
    done
    # Guest programs, static (nothing else in the image has a libc).
    for f in "${GUEST_CSRCS[@]}"; do
        "$ARM64_CC" -static -O2 -Wall -Wextra -Werror -o "$root/usr/bin/$(basename "$f" .c)" "$f" ||
            die "arm64-initramfs: guest program $f does not build with $ARM64_CC"
    done
    {
        (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
        console_cpio
    } | gzip -n >"$stage/initramfs.cpio.gz"
    du -sh "$stage/initramfs.cpio.gz" >&2
    rm -rf -- "$root"
}

# arm64-qemu: qemu-system-aarch64 for arm64 with the shared libraries it needs, as a small
# sysroot (root/usr/bin/qemu-system-aarch64, root/lib/...). The nested arm64 rig packs it into
# L1 with --with-qemu, as the reference VMM next to minivmm (tests/e2e/arm64_qemu_boot.sh).
recipe_arm64_qemu() {
    # Every arm64 library package qemu-system-arm:arm64 depends on, directly or not, at its
    # candidate version (one apt-cache call: each start reads apt's lists); arch-all ones
    # (-common, -data) carry no libraries. Only the libraries the binary needs are kept.
    mapfile -t ARM64_QEMU_PKGS < <(apt-cache show --no-all-versions $(apt-cache depends --recurse \
            --no-recommends --no-suggests --no-conflicts --no-breaks --no-replaces --no-enhances \
            --no-pre-depends qemu-system-arm:arm64 2>/dev/null |
            sed -n 's/^\(qemu-system-arm\|lib[^ :]*\|zlib1g\)\(:arm64\)\?$/\1:arm64/p' | sort -u) 2>/dev/null |
        awk '/^Package: / { p = $2 } /^Version: / { v = $2 } /^Architecture: / { a = $2 }
             /^$/ { if (a == "arm64") print p "=" v; p = v = a = "" }
             END { if (a == "arm64") print p "=" v }' | sort -u)
    ((${#ARM64_QEMU_PKGS[@]} > 1)) || die "arm64-qemu: no qemu-system-arm:arm64 in apt's lists"
    {
        hash_material_files "$HERE/build.sh" "$HERE/arm64.sh"
        printf '%s\n' "${ARM64_QEMU_PKGS[@]}"
    } >"$WORK/material"
    cached_build arm64-qemu "$(short_hash <"$WORK/material")" root/usr/bin/qemu-system-aarch64 \
        build_arm64_qemu <"$WORK/material"
}

build_arm64_qemu() {
    local stage=$1 x=$1/deb root=$1/root f want lib d
    arm64_unpack "$x" "${ARM64_QEMU_PKGS[@]}"
    mkdir -p "$root/usr/bin" "$root/lib/aarch64-linux-gnu"
    cp -- "$x/usr/bin/qemu-system-aarch64" "$root/usr/bin/"
    # The NEEDED closure, resolved in the unpacked tree (ldd cannot run an arm64 binary).
    local -a todo=("$x/usr/bin/qemu-system-aarch64")
    local seen=" "
    while ((${#todo[@]})); do
        f=${todo[0]}; todo=("${todo[@]:1}")
        for want in $(aarch64-linux-gnu-readelf -d "$f" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
            [[ $seen == *" $want "* ]] && continue
            seen+="$want "
            lib=
            for d in lib/aarch64-linux-gnu usr/lib/aarch64-linux-gnu; do
                [[ -e $x/$d/$want ]] && { lib=$x/$d/$want; break; }
            done
            [[ -n $lib ]] || die "arm64-qemu: $want (needed by $(basename "$f")) is in no unpacked package"
            cp -L -- "$lib" "$root/lib/aarch64-linux-gnu/$want"
            todo+=("$lib")
        done
    done
    cp -L -- "$x/lib/ld-linux-aarch64.so.1" "$root/lib/ld-linux-aarch64.so.1"
    rm -rf -- "$x"
    du -sh "$root" >&2
}
