#!/usr/bin/env bash
# Build the guest images minivmm's tests boot (see README.md next to this file).
#
#   guest-images/build.sh debian-kernel|initramfs|minimal-kernel|all
#
# Each image lands in ${MINIVMM_CACHE:-$HOME/.cache/minivmm}/NAME-<hash>/, where <hash> covers
# everything that goes into it (this script, the inputs from the repo, the Debian package versions).
# A directory holding a .done stamp is complete and is reused as is. The last line on stdout is the
# absolute path of the image file (for "all": one line per image); progress goes to stderr.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$HERE")
CACHE=${MINIVMM_CACHE:-$HOME/.cache/minivmm}
JOBS=${MINIVMM_JOBS:-3}

KSRC_PKG=linux-source-6.1
KSRC_TARBALL=/usr/src/$KSRC_PKG.tar.xz
KERNEL_FRAGMENT=$HERE/minimal-kernel.config
INIT_SCRIPT=$HERE/init.sh
GUEST_TESTS_DIR=$REPO/tests/e2e/guest
# The function runner's guest agent (/usr/bin/mvagent, run by /init with mvagent=1): its sources
# and the protocol header it shares with the host side.
AGENT_SRCS=("$REPO/runner/agent/mvagent.c" "$REPO/runner/proto.c")
AGENT_HDRS=("$REPO/runner/proto.h")

# Programs copied into the initramfs next to busybox, with the libraries ldd lists for them. They
# keep their Debian paths; iproute2's ip must stay named "ip" (it picks its sub-command from its
# own file name) and must shadow busybox's ip applet, which has no "tuntap".
#
# dash is /bin/sh: Debian's busybox-static is built with FEATURE_SH_STANDALONE/PREFER_APPLETS, so
# busybox sh runs its own applet for every name it knows (ip, mke2fs) whatever PATH says. dash
# looks commands up in PATH, so "ip" in /init, in test scripts and at the prompt is iproute2's.
INITRAMFS_PROGRAMS=(/bin/dash /usr/bin/iperf3 /sbin/ip /sbin/ethtool /sbin/mke2fs)
INITRAMFS_ETC=(/etc/mke2fs.conf /etc/iproute2)

# Debian kernel modules for the initramfs, in load order (/init insmods them in this order; the
# build checks every module's dependencies come before it). crc32c_generic provides the
# "crypto-crc32c" soft dependency of ext4 and jbd2; crc32c_intel is only a faster variant and
# fails to load (harmlessly) on CPUs without SSE4.2.
DEBIAN_MODULES=(
    virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_mmio
    virtio_blk failover net_failover virtio_net
    crc16 mbcache jbd2 crc32c_generic crc32c_intel ext4
    vsock vmw_vsock_virtio_transport_common vmw_vsock_virtio_transport
    virtio_rng
)

log() { printf '[build.sh] %s\n' "$*" >&2; }
die() { printf '[build.sh] error: %s\n' "$*" >&2; exit 1; }

# Temporary directories removed on exit, whatever happens. A signal that kills bash skips the
# EXIT trap, so the usual ones are turned into an exit (else a killed kernel build leaves 1.5 GB).
CLEANUP=()
cleanup() { local d; for d in "${CLEANUP[@]}"; do rm -rf -- "$d"; done; }
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

pkg_installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
pkg_version() { dpkg-query -W -f='${Version}' "$1"; }

# Install missing Debian packages (needs root; otherwise say what to install).
ensure_packages() {
    local p missing=()
    for p in "$@"; do pkg_installed "$p" || missing+=("$p"); done
    ((${#missing[@]} == 0)) && return 0
    [[ $(id -u) == 0 ]] || die "missing packages, install them: apt-get install ${missing[*]}"
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" >&2
}

# Kernel release the linux-image-amd64 metapackage points at, e.g. "6.1.0-56-amd64".
debian_kernel_release() {
    ensure_packages linux-image-amd64
    local dep
    dep=$(dpkg-query -W -f='${Depends}' linux-image-amd64)   # "linux-image-6.1.0-56-amd64 (= 6.1.192-2)"
    dep=${dep%% *}
    echo "${dep#linux-image-}"
}

# First 16 hex digits of a sha256 over stdin.
short_hash() { sha256sum | cut -c1-16; }

# Print each named file (path relative to the repo, then its content); used to build cache keys.
hash_material_files() {
    local f
    for f in "$@"; do
        printf '=== file %s\n' "${f#"$REPO"/}"
        cat -- "$f"
    done
}

# "package=version" of the Debian packages owning the given paths (the part of a cache key that
# covers host files copied into an image); a path no package owns is keyed by its content hash.
owner_versions() {
    local -A owners=()
    local -a candidates=()
    local line f p alias
    # With merged /usr, dpkg knows a file under the name its package shipped it as: /lib/x/y,
    # /usr/lib/x/y, or the target of the symlink ldd names. Ask for every spelling, in one
    # dpkg -S call (each call reads the whole file database).
    for f in "$@"; do
        candidates+=("$f" "$(readlink -f "$f")")
    done
    for f in "${candidates[@]}"; do
        [[ $f == /usr/* ]] && candidates+=("${f#/usr}") || candidates+=("/usr$f")
    done
    while IFS= read -r line; do
        [[ $line == diversion* ]] && continue
        owners[${line#*: }]=${line%%: /*}          # "libc6:amd64: /lib/.../libc.so.6"
    done < <(dpkg -S "${candidates[@]}" 2>/dev/null || true)
    for f in "$@"; do
        p=
        for alias in "$f" "$(readlink -f "$f")"; do
            p=${owners[$alias]:-${owners[/usr$alias]:-${owners[${alias#/usr}]:-}}}
            [[ -n $p ]] && break
        done
        if [[ -n $p ]]; then
            for p in ${p//,/ }; do                   # a directory may have several owners
                echo "$p=$(pkg_version "$p")"
            done
        else
            echo "unpackaged:$f=$(sha256sum <"$f" | cut -c1-16)"
        fi
    done | sort -u
}

# Run a command with its output appended to the log; on failure show the log's tail and keep
# the log next to the cache (the staging directory holding it is removed on exit).
run_logged() {
    local logfile=$1; shift
    if ! "$@" >>"$logfile" 2>&1; then
        local kept=$CACHE/$BUILD_ID.failed.log
        cp -- "$logfile" "$kept" 2>/dev/null || kept=$logfile
        log "FAILED: $* -- last lines of the log ($kept):"
        tail -n 40 -- "$logfile" >&2
        exit 1
    fi
}

# cached_build NAME KEY FILE FUNCTION: unless $CACHE/NAME-KEY/.done exists, run FUNCTION STAGE_DIR
# (with the key material on stdin) in a fresh staging directory next to the final one, stamp it
# and rename it into place (atomic: readers never see a half-built directory). Prints the path.
cached_build() {
    local name=$1 key=$2 file=$3 fn=$4
    local out=$CACHE/$name-$key
    local lock stage start
    mkdir -p -- "$CACHE"
    # Parallel test jobs may ask for the same image: one builds, the others wait and reuse it.
    # The lock is released as soon as this image is done ("all" goes on to the next one).
    exec {lock}>"$CACHE/.$name-$key.lock"
    flock "$lock"
    if [[ -f $out/.done ]]; then
        exec {lock}>&-
        log "$name: up to date ($out)"
        echo "$out/$file"
        return 0
    fi
    BUILD_ID=$name-$key   # names the kept log of a failed build
    stage=$(mktemp -d "$CACHE/.$name-$key.XXXXXX")
    CLEANUP+=("$stage")
    chmod 755 "$stage"
    start=$SECONDS
    log "$name: building into $out"
    cat >"$stage/key.txt"               # what the hash was computed over, for the curious
    "$fn" "$stage"
    [[ -s $stage/$file ]] || die "$name: $file was not produced"
    touch "$stage/.done"                # last: marks the directory complete
    # A directory without .done is the leftover of an interrupted build: replace it.
    rm -rf -- "$out"
    mv -T -- "$stage" "$out"
    rm -f -- "$CACHE/$BUILD_ID.failed.log"
    exec {lock}>&-
    log "$name: done in $((SECONDS - start)) s"
    echo "$out/$file"
}

# ---------------------------------------------------------------------------------------------
# debian-kernel: Debian's own kernel (virtio drivers as modules, loaded by the initramfs)
# ---------------------------------------------------------------------------------------------

recipe_debian_kernel() {
    local kver
    kver=$(debian_kernel_release)
    ensure_packages "linux-image-$kver"
    {
        hash_material_files "$HERE/build.sh"
        echo "linux-image-amd64=$(pkg_version linux-image-amd64)"
        echo "linux-image-$kver=$(pkg_version "linux-image-$kver")"
    } >"$WORK/material"
    KVER=$kver
    cached_build debian-kernel "$(short_hash <"$WORK/material")" bzImage build_debian_kernel <"$WORK/material"
}

build_debian_kernel() {
    local stage=$1
    cp -- "/boot/vmlinuz-$KVER" "$stage/bzImage"
    cp -- "/boot/config-$KVER" "$stage/config"
}

# ---------------------------------------------------------------------------------------------
# initramfs: busybox userspace + iperf3, ip, ethtool, mkfs.ext4 + Debian's virtio/ext4 modules
# ---------------------------------------------------------------------------------------------

# Shared libraries (and the ELF interpreter) ldd lists for the given programs.
shared_libs() {
    # Lines are "\tlibfoo.so.1 => /lib/.../libfoo.so.1 (0x...)" or "\t/lib64/ld-linux...so.2 (0x...)";
    # the "/path/prog:" headers ldd prints for several programs do not start with a tab.
    ldd "$@" | awk '/^\t/ && $2 == "=>" && $3 ~ /^\// { print $3 } /^\t\// { print $1 }' | sort -u
}

module_path() { modinfo -k "$KVER" -n "$1"; }

recipe_initramfs() {
    FIO_BIN=$(recipe_fio | tail -n 1)
    KVER=$(debian_kernel_release)
    ensure_packages "linux-image-$KVER" busybox-static dash iperf3 iproute2 ethtool e2fsprogs cpio kmod
    local -a tests csrcs libs mods inputs
    local m path
    mapfile -t tests < <(find "$GUEST_TESTS_DIR" -maxdepth 1 -name '*.sh' -type f | sort)
    mapfile -t csrcs < <(find "$GUEST_TESTS_DIR" -maxdepth 1 -name '*.c' -type f | sort)
    mapfile -t libs < <(shared_libs "${INITRAMFS_PROGRAMS[@]}")
    mods=()
    for m in "${DEBIAN_MODULES[@]}"; do
        path=$(module_path "$m") || die "module $m not found for $KVER"
        mods+=("$path")
    done
    inputs=(/bin/busybox "${INITRAMFS_PROGRAMS[@]}" "${libs[@]}" "${mods[@]}" "${INITRAMFS_ETC[@]}")
    {
        hash_material_files "$HERE/build.sh" "$INIT_SCRIPT" "${tests[@]}" "${csrcs[@]}" "${AGENT_SRCS[@]}" \
            "${AGENT_HDRS[@]}"
        echo "kernel-release=$KVER"
        echo "fio=$FIO_BIN"   # its directory name is the hash of its own recipe
        gcc --version | head -1
        owner_versions "${inputs[@]}"
    } >"$WORK/material"
    GUEST_TESTS=("${tests[@]}")
    GUEST_CSRCS=("${csrcs[@]}")
    LIBS=("${libs[@]}")
    cached_build initramfs "$(short_hash <"$WORK/material")" initramfs.cpio.gz build_initramfs <"$WORK/material"
}

# A newc cpio entry without data (directory or device node): the header is ASCII hex fields.
newc_entry() {   # NAME MODE(octal) RDEV_MAJOR RDEV_MINOR INO
    local name=$1 mode=$2 major=$3 minor=$4 ino=$5
    local namesize=$((${#name} + 1))
    #       magic  ino  mode uid  gid nlink mtime size devmaj devmin rdevmaj rdevmin namesize check
    printf '070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%s\0' \
        "$ino" "$mode" 0 0 1 0 0 0 0 "$major" "$minor" "$namesize" 0 "$name"
    head -c $(((4 - (110 + namesize) % 4) % 4)) /dev/zero   # pad header+name to 4 bytes
}

# The kernel opens /dev/console on the initramfs before /init runs (it is what gives /init its
# stdin/stdout), i.e. before devtmpfs is mounted, so the archive must carry the node itself. It is
# written by hand so that building needs no root (mknod). The kernel unpacks concatenated archives;
# this one goes last so that "cpio -t" (which stops at the first trailer) still lists everything.
console_cpio() {
    newc_entry dev 0040755 0 0 1
    newc_entry dev/console 0020600 5 1 2
    newc_entry 'TRAILER!!!' 0 0 0 0
}

build_initramfs() {
    local stage=$1
    local root=$stage/root
    local f m name rel
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc/mvtest,proc,sys,dev,tmp,root,lib/modules}
    chmod 1777 "$root/tmp"

    # busybox, every applet as a symlink (the list has paths like "sbin/ip", "usr/bin/setsid",
    # all in the four directories made above).
    cp -- /bin/busybox "$root/bin/busybox"
    while read -r rel; do
        [[ $rel == bin/busybox ]] || ln -s /bin/busybox "$root/$rel"
    done < <("$root/bin/busybox" --list-full)

    # The real programs. Their busybox namesakes are removed from every directory so that the
    # Debian program is the only one on any PATH order (notably iproute2's ip).
    for f in "${INITRAMFS_PROGRAMS[@]}"; do
        name=$(basename "$f")
        rm -f "$root"/{bin,sbin,usr/bin,usr/sbin}/"$name"
        mkdir -p "$root/$(dirname "$f")"
        cp -L --preserve=mode -- "$f" "$root/$f"
    done
    ln -sf dash "$root/bin/sh"
    # mke2fs chooses the filesystem type from its name (mkfs.ext4 -> ext4), like Debian's links.
    for name in mkfs.ext2 mkfs.ext3 mkfs.ext4; do
        rm -f "$root"/{bin,sbin,usr/bin,usr/sbin}/"$name"
        ln -s mke2fs "$root/sbin/$name"
    done
    for f in "${LIBS[@]}"; do
        mkdir -p "$root/$(dirname "$f")"
        cp -L --preserve=mode -- "$f" "$root/$f"
    done
    for f in "${INITRAMFS_ETC[@]}"; do
        cp -a -- "$f" "$root/etc/"
    done
    install -m 755 -- "$FIO_BIN" "$root/usr/bin/fio"

    # Debian modules under their usual paths, the load order list, and a modules.dep (depmod)
    # so that the kernel's own request_module (busybox modprobe) works as well.
    local kmod_dir=$root/lib/modules/$KVER
    local seen=" "
    mkdir -p "$kmod_dir"
    : >"$kmod_dir/minivmm-load-order"
    for m in "${DEBIAN_MODULES[@]}"; do
        local dep src
        for dep in $(modinfo -k "$KVER" -F depends "$m" | tr ',' ' '); do
            [[ $seen == *" $dep "* ]] || die "module $m needs $dep loaded first: fix DEBIAN_MODULES"
        done
        seen+="$m "
        src=$(module_path "$m")
        rel=${src#/lib/modules/"$KVER"/}
        mkdir -p "$kmod_dir/$(dirname "$rel")"
        cp -- "$src" "$kmod_dir/$rel"
        echo "$rel" >>"$kmod_dir/minivmm-load-order"
    done
    cp -- /lib/modules/"$KVER"/modules.{order,builtin,builtin.modinfo} "$kmod_dir/"
    depmod -b "$root" "$KVER"

    # /init and the guest test scripts (run by /init when the command line says mvtest=NAME).
    install -m 755 -- "$INIT_SCRIPT" "$root/init"
    for f in "${GUEST_TESTS[@]}"; do
        install -m 755 -- "$f" "$root/etc/mvtest/"
    done
    # Guest helper programs (tests/e2e/guest/NAME.c -> /usr/bin/NAME): static, so they need
    # nothing from the image; one file each, no headers beyond libc's and the kernel's.
    for f in "${GUEST_CSRCS[@]}"; do
        name=$(basename "$f" .c)
        gcc -static -O2 -Wall -Wextra -Werror -o "$root/usr/bin/$name" "$f" ||
            die "guest helper $f does not build"
    done
    # The function runner's agent, static the same way (runner/agent/mvagent.c + runner/proto.c).
    gcc -static -O2 -Wall -Wextra -Werror -I "$REPO/runner" -o "$root/usr/bin/mvagent" "${AGENT_SRCS[@]}" ||
        die "the guest agent runner/agent/mvagent.c does not build"

    # Sanity: the only ip is iproute2's (a regular file, not the busybox link), and sh is dash.
    [[ -f $root/sbin/ip && ! -L $root/sbin/ip ]] || die "/sbin/ip is not iproute2's ip"
    [[ $(find "$root" -name ip | wc -l) == 1 ]] || die "more than one ip in the initramfs"
    [[ $(readlink "$root/bin/sh") == dash ]] || die "/bin/sh is not dash"

    {
        (cd "$root" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet)
        console_cpio
    } | gzip -n >"$stage/initramfs.cpio.gz"   # -9 would cost 4x the CPU for 0.5% smaller
    du -sh "$stage/initramfs.cpio.gz" >&2
    rm -rf -- "$root"
}

# ---------------------------------------------------------------------------------------------
# fio: a static fio from Debian's fio source package, for the guests' verified block load
# ---------------------------------------------------------------------------------------------

# Debian's fio binary links ~80 MB of libraries (ceph, gluster, rdma...), too much for an
# initramfs that every guest unpacks at emulator speed; built static with only the engines the
# tests use (libaio, io_uring, psync), it is one 3 MB file. The source comes through apt's deb-src
# entry (.ci/install-deps.sh adds it).
recipe_fio() {
    ensure_packages build-essential dpkg-dev libaio-dev zlib1g-dev
    local ver
    ver=$(apt-cache showsrc fio 2>/dev/null | sed -n 's/^Version: //p' | sort -V | tail -n 1)
    [[ -n $ver ]] || die "fio: no source package (apt needs a deb-src entry: run .ci/install-deps.sh)"
    {
        hash_material_files "$HERE/build.sh"
        echo "fio-source=$ver"
        echo "libaio-dev=$(pkg_version libaio-dev) zlib1g-dev=$(pkg_version zlib1g-dev)"
        echo "compiler=$(gcc --version | head -n1)"
    } >"$WORK/material"
    FIO_VERSION=$ver
    cached_build fio "$(short_hash <"$WORK/material")" fio build_fio <"$WORK/material"
}

build_fio() {
    local stage=$1
    local buildlog=$stage/build.log
    local src
    src=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-fio.XXXXXX")
    CLEANUP+=("$src")
    log "fio: fetching and unpacking Debian's fio $FIO_VERSION source (log: $buildlog)"
    (cd "$src" && run_logged "$buildlog" apt-get source -qq "fio=$FIO_VERSION")
    cd "$src"/fio-*/
    run_logged "$buildlog" ./configure --build-static --disable-native --disable-numa --disable-rdma \
        --disable-gfapi --disable-rados --disable-rbd --disable-http --disable-pmem --disable-xnvme \
        --disable-libzbc --disable-tcmalloc --disable-dfs
    grep -q '^CONFIG_LIBAIO=y' config-host.mak || die "fio: configure found no libaio (libaio-dev)"
    log "fio: make -j$JOBS"
    run_logged "$buildlog" make -j"$JOBS" fio
    strip -o "$stage/fio" fio
    cd /
    rm -rf -- "$src"
}

# ---------------------------------------------------------------------------------------------
# minimal-kernel: tinyconfig + minimal-kernel.config from Debian's linux-source package
# ---------------------------------------------------------------------------------------------

recipe_minimal_kernel() {
    ensure_packages "$KSRC_PKG" build-essential bc flex bison libelf-dev libssl-dev xz-utils
    {
        hash_material_files "$HERE/build.sh" "$KERNEL_FRAGMENT"
        echo "$KSRC_PKG=$(pkg_version "$KSRC_PKG")"
        echo "compiler=$(gcc --version | head -n1)"
    } >"$WORK/material"
    cached_build minimal-kernel "$(short_hash <"$WORK/material")" bzImage build_minimal_kernel <"$WORK/material"
}

# Print the fragment's options that .config does not have as asked (kconfig silently drops an
# option whose dependencies are not met); returns non-zero if there is any.
check_fragment() {
    local config=$1 line name have bad=0
    while IFS= read -r line; do
        case $line in
            CONFIG_*=*) name=${line%%=*} ;;
            "# CONFIG_"*" is not set") name=${line#\# }; name=${name%% *} ;;
            *) continue ;;
        esac
        have=$(grep -E "^(# )?${name}[= ]" "$config" || true)
        if [[ $line == "#"* ]]; then
            [[ -z $have || $have == "$line" ]] && continue
        else
            [[ $have == "$line" ]] && continue
        fi
        log "  fragment wants '$line', .config has '${have:-nothing}'"
        bad=1
    done <"$KERNEL_FRAGMENT"
    return $bad
}

build_minimal_kernel() {
    local stage=$1
    local buildlog=$stage/build.log
    local src
    # The source tree (~1.5 GB unpacked) lives in TMPDIR, not in the cache.
    src=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-kernel.XXXXXX")
    CLEANUP+=("$src")
    log "minimal-kernel: unpacking $KSRC_TARBALL (log: $buildlog)"
    run_logged "$buildlog" tar -xf "$KSRC_TARBALL" -C "$src" --strip-components=1
    cd "$src"   # merge_config.sh writes its temporary files to the current directory
    log "minimal-kernel: configuring (tinyconfig + $(basename "$KERNEL_FRAGMENT"))"
    run_logged "$buildlog" make tinyconfig
    run_logged "$buildlog" scripts/kconfig/merge_config.sh -m .config "$KERNEL_FRAGMENT"
    run_logged "$buildlog" make olddefconfig
    # Fail fast, before minutes of compiling, if kconfig dropped anything.
    check_fragment .config ||
        die "minimal-kernel: fragment options not set (above): fix their dependencies in $KERNEL_FRAGMENT"
    log "minimal-kernel: make -j$JOBS bzImage (a few minutes)"
    run_logged "$buildlog" make -j"$JOBS" bzImage
    # The build re-runs kconfig (syncconfig, compiler-dependent options): check the final .config.
    check_fragment .config || die "minimal-kernel: fragment options lost during the build (above)"
    cp -- arch/x86/boot/bzImage "$stage/bzImage"
    cp -- .config "$stage/config"
    ls -l "$stage/bzImage" >&2
    cd /
    rm -rf -- "$src"
}

# ---------------------------------------------------------------------------------------------

usage() {
    cat >&2 <<EOF
usage: $0 debian-kernel|initramfs|fio|minimal-kernel|all|arm64-kernel|arm64-initramfs|arm64-qemu
Builds into \${MINIVMM_CACHE:-\$HOME/.cache/minivmm}/NAME-<hash>/ (now: $CACHE) unless already
there; prints the image path last. MINIVMM_JOBS sets make -j (default 3).
EOF
    exit 2
}

# shellcheck source=guest-images/arm64.sh
. "$HERE/arm64.sh"

(($# == 1)) || usage
WORK=$(mktemp -d "${TMPDIR:-/tmp}/minivmm-build.XXXXXX")
CLEANUP+=("$WORK")
case $1 in
    debian-kernel) recipe_debian_kernel ;;
    initramfs) recipe_initramfs ;;
    fio) recipe_fio ;;
    minimal-kernel) recipe_minimal_kernel ;;
    all) recipe_debian_kernel; recipe_initramfs; recipe_minimal_kernel ;;
    arm64-kernel) recipe_arm64_kernel ;;
    arm64-initramfs) recipe_arm64_initramfs ;;
    arm64-qemu) recipe_arm64_qemu ;;
    *) usage ;;
esac
