#!/bin/bash
# Hostile input from the command line: corrupt and truncated kernel images
# (bzImage and ELF), truncated and oversized initrds, absurd --mem/--cpus,
# files that are directories, FIFOs, devices, unreadable, symlink loops,
# names too long. Every case must end with exit status 1 and exactly one line
# on stderr, "minivmm: error: ...", naming the culprit: no crash, no hang
# (each run is limited to 20 s), no sanitizer report (any would be more
# lines). CTest runs it on the normal and the ASan+UBSan build.
# Usage: test_bad_images.sh MINIVMM [TINY_GUEST_ELF]
set -u
MINIVMM=$1
TINY=${2:-}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

. "$(dirname "$0")/expect.sh"

# ---- images: written by Python, one per defect ----
if ! images_from_host; then
python3 - "$tmp" <<'PY'
import struct, sys, os
d = sys.argv[1]

def bz(version=0x20f, xlf=1, setup_sects=4, syssize=1024 // 16, init_size=0x10000, code=1024, boot_flag=0xaa55,
       magic=b'HdrS'):
    img = bytearray((setup_sects + 1) * 512 + code)
    img[0x1f1] = setup_sects
    struct.pack_into('<I', img, 0x1f4, syssize)
    struct.pack_into('<H', img, 0x1fe, boot_flag)
    img[0x200:0x202] = b'\xeb\x66'
    img[0x202:0x206] = magic
    struct.pack_into('<H', img, 0x206, version)
    struct.pack_into('<I', img, 0x22c, 0x37ffffff)
    struct.pack_into('<H', img, 0x236, xlf)
    struct.pack_into('<I', img, 0x238, 2047)
    struct.pack_into('<I', img, 0x260, init_size)
    return img

def elf(cls=2, machine=62, etype=2, phnum=1, phentsize=56, ptype=1, offset=0x100, paddr=0x200000, filesz=256,
        memsz=4096, entry=0x200000, phoff=64, size=0x200):
    img = bytearray(size)
    img[0:4] = b'\x7fELF'
    img[4], img[5], img[6] = cls, 1, 1
    struct.pack_into('<HHIQQQIHHHHHH', img, 16, etype, machine, 1, entry, phoff, 0, 0, 64, phentsize, phnum, 0, 0, 0)
    if phoff + 56 <= size:
        struct.pack_into('<IIQQQQQQ', img, phoff, ptype, 5, offset, paddr, paddr, filesz, memsz, 0x1000)
    return img

imgs = {
    'bz-old-protocol': bz(version=0x20b),
    'bz-no-64bit-entry': bz(xlf=0),
    'bz-setup-past-end': bz(setup_sects=255, code=0)[:0x400],
    'bz-syssize-zero': bz(syssize=0),
    'bz-syssize-huge': bz(syssize=0xffffffff),
    'bz-no-hdrs': bz(magic=b'XXXX'),
    'bz-header-cut': bz()[:0x210],
    'bz-init-size-huge': bz(init_size=0xfffff000),
    'elf-32bit': elf(cls=1),
    'elf-arm': elf(machine=183),
    'elf-shared-object': elf(etype=3),
    'elf-phnum-huge': elf(phnum=0xffff),
    'elf-phoff-past-end': elf(phoff=0xfffffff0),
    'elf-phentsize-bad': elf(phentsize=32),
    'elf-segment-past-end': elf(filesz=0x100000),
    'elf-segment-offset-huge': elf(offset=0xffffffffffffff00),
    'elf-filesz-gt-memsz': elf(filesz=256, memsz=16),
    'elf-no-load': elf(ptype=4),
    'elf-header-cut': elf()[:40],
    'elf-paddr-outside-ram': elf(paddr=0x7fff00000000, entry=0x7fff00000000),
    'elf-paddr-wraps': elf(paddr=0xfffffffffffff000, entry=0xfffffffffffff000, memsz=0x2000),
    'elf-entry-outside': elf(entry=0x900000),
}
for name, img in imgs.items():
    open(os.path.join(d, name), 'wb').write(img)
PY
fi
images_made

# protocol/format defects: refused by the probe, before KVM is opened
expect_error "--kernel $tmp/bz-old-protocol: boot protocol 2.11 is too old" --kernel "$tmp/bz-old-protocol"
expect_error "--kernel $tmp/bz-no-64bit-entry: bzImage has no 64-bit entry point" --kernel "$tmp/bz-no-64bit-entry"
expect_error "--kernel $tmp/bz-setup-past-end: truncated bzImage: setup claims" --kernel "$tmp/bz-setup-past-end"
expect_error "--kernel $tmp/bz-syssize-zero: truncated bzImage: kernel needs" --kernel "$tmp/bz-syssize-zero"
expect_error "--kernel $tmp/bz-syssize-huge: truncated bzImage: kernel needs" --kernel "$tmp/bz-syssize-huge"
expect_error "--kernel $tmp/bz-no-hdrs: not a kernel" --kernel "$tmp/bz-no-hdrs"
expect_error "--kernel $tmp/bz-header-cut: truncated bzImage" --kernel "$tmp/bz-header-cut"
expect_error "--kernel $tmp/elf-32bit: ELF file is not a 64-bit x86 image" --kernel "$tmp/elf-32bit"
expect_error "--kernel $tmp/elf-arm: ELF file is not a 64-bit x86 image" --kernel "$tmp/elf-arm"
expect_error "--kernel $tmp/elf-shared-object: ELF file is not an executable" --kernel "$tmp/elf-shared-object"
expect_error "--kernel $tmp/elf-phnum-huge: truncated or bad ELF program headers" --kernel "$tmp/elf-phnum-huge"
expect_error "--kernel $tmp/elf-phoff-past-end: truncated or bad ELF program headers" --kernel "$tmp/elf-phoff-past-end"
expect_error "--kernel $tmp/elf-phentsize-bad: truncated or bad ELF program headers" --kernel "$tmp/elf-phentsize-bad"
expect_error "--kernel $tmp/elf-segment-past-end: truncated ELF: segment 0" --kernel "$tmp/elf-segment-past-end"
expect_error "--kernel $tmp/elf-segment-offset-huge: truncated ELF: segment 0" --kernel "$tmp/elf-segment-offset-huge"
expect_error "--kernel $tmp/elf-filesz-gt-memsz: bad ELF: segment 0 has filesz > memsz" --kernel "$tmp/elf-filesz-gt-memsz"
expect_error "--kernel $tmp/elf-no-load: ELF file has no loadable segment" --kernel "$tmp/elf-no-load"
expect_error "--kernel $tmp/elf-header-cut: truncated ELF header" --kernel "$tmp/elf-header-cut"

# a real kernel cut short, wherever it is cut
real=$(ls /boot/vmlinuz-* 2>/dev/null | head -1)
if [[ -n $real && -r $real ]]; then
	size=$(stat -c %s "$real")
	for cut in 512 4096 $((size / 2)) $((size * 9 / 10)); do
		head -c "$cut" "$real" > "$tmp/vmlinuz-cut-$cut"
		expect_error "--kernel $tmp/vmlinuz-cut-$cut: " --kernel "$tmp/vmlinuz-cut-$cut"
	done
	# the message says what is wrong, not just that something is
	out=$("$MINIVMM" --kernel "$tmp/vmlinuz-cut-$((size / 2))" 2>&1 >/dev/null)
	if [[ $out == *"truncated bzImage"* ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: half a kernel: $out"; fi
else
	echo "SKIP: truncated real kernel cases (no readable /boot/vmlinuz-*)"
fi

# ---- files that are not files ----
mkfifo "$tmp/fifo"
ln -s loop2 "$tmp/loop1"; ln -s loop1 "$tmp/loop2"
: > "$tmp/empty"
long=$tmp/$(printf 'a%.0s' {1..300})/$(printf 'b%.0s' {1..300})
expect_error "--kernel $tmp: not a regular file" --kernel "$tmp"
expect_error "--kernel $tmp/fifo: not a regular file" --kernel "$tmp/fifo"
expect_error "--kernel /dev/null: not a regular file" --kernel /dev/null
expect_error "--kernel $tmp/loop1: Too many levels of symbolic links" --kernel "$tmp/loop1"
expect_error "--kernel $tmp/empty: file is empty" --kernel "$tmp/empty"
expect_error "File name too long" --kernel "$(printf '/x%.0s' {1..3000})$(printf 'y%.0s' {1..300})"
expect_error "--kernel $tmp/aaa" --kernel "$long"
expect_error "$(printf 'b%.0s' {1..300}): File name too long" --kernel "$long"
expect_error "--kernel" --kernel ""
expect_error "--kernel $tmp/a?b: No such file" --kernel "$tmp/a"$'\n'"b"

# ---- initrd ----
k=$tmp/bz-init-size-huge     # probes fine; the initrd is looked at first
truncate -s 300M "$tmp/big.initrd"
truncate -s 20M "$tmp/mid.initrd"
expect_error "--initrd $tmp/big.initrd: 300 MiB does not fit in --mem 256" --kernel "$k" --initrd "$tmp/big.initrd"
expect_error "--initrd $tmp/mid.initrd: 20 MiB does not fit in --mem 16" --kernel "$k" --mem 16 --initrd "$tmp/mid.initrd"
expect_error "--initrd $tmp: not a regular file" --kernel "$k" --initrd "$tmp"
expect_error "--initrd $tmp/fifo: not a regular file" --kernel "$k" --initrd "$tmp/fifo"
expect_error "--initrd $tmp/empty: file is empty" --kernel "$k" --initrd "$tmp/empty"
expect_error "--initrd $tmp/nope: No such file" --kernel "$k" --initrd "$tmp/nope"
expect_error "--initrd $tmp/loop1: Too many levels" --kernel "$k" --initrd "$tmp/loop1"

# unreadable files: as root, drop to nobody (root reads anything)
printf 'x' > "$tmp/secret"; chmod 000 "$tmp/secret"
if [[ $(id -u) -ne 0 ]]; then
	expect_error "--kernel $tmp/secret: Permission denied" --kernel "$tmp/secret"
	expect_error "--initrd $tmp/secret: Permission denied" --kernel "$k" --initrd "$tmp/secret"
elif command -v setpriv >/dev/null; then
	chmod 755 "$tmp"; chmod 644 "$k"
	real_minivmm=$MINIVMM
	MINIVMM=$tmp/as-nobody
	printf '#!/bin/sh\nexec setpriv --reuid=65534 --regid=65534 --clear-groups "%s" "$@"\n' "$(readlink -f "$real_minivmm")" > "$MINIVMM"
	chmod 755 "$MINIVMM"
	if setpriv --reuid=65534 --regid=65534 --clear-groups test -x "$(readlink -f "$real_minivmm")"; then
		expect_error "--kernel $tmp/secret: Permission denied" --kernel "$tmp/secret"
		expect_error "--initrd $tmp/secret: Permission denied" --kernel "$k" --initrd "$tmp/secret"
	else
		echo "SKIP: unreadable-file cases (user nobody cannot run $real_minivmm)"
	fi
	MINIVMM=$real_minivmm
else
	echo "SKIP: unreadable-file cases (running as root without setpriv)"
fi

# ---- absurd numbers ----
expect_error "--mem 18446744073709551615" --kernel "$k" --mem 18446744073709551615
expect_error "--mem 99999999999999999999" --kernel "$k" --mem 99999999999999999999
expect_error "--mem 2000000" --kernel "$k" --mem 2000000
expect_error "--mem -1" --kernel "$k" --mem -1
expect_error "--mem 0x100" --kernel "$k" --mem 0x100
expect_error "--mem" --kernel "$k" --mem ""
expect_error "--mem 15" --kernel "$k" --mem 15
expect_error "--cpus 4294967297" --kernel "$k" --cpus 4294967297
expect_error "--cpus -1" --kernel "$k" --cpus -1
expect_error "--cpus 1e3" --kernel "$k" --cpus 1e3
expect_error "--cpus 99999999999999999999" --kernel "$k" --cpus 99999999999999999999
expect_error "--disk" --kernel "$k" --disk "$(printf 'd%.0s' {1..1100})"
expect_error "--net" --kernel "$k" --net "averyveryverylongtapname0"
expect_error "--net" --kernel "$k" --net "tap0,queues=4294967297"
expect_error "--net" --kernel "$k" --net "tap0,mac=ff:ff:ff:ff:ff:ff:ff"

# ---- load stage: needs KVM (the VM exists before the kernel is copied in) ----
if [[ -n $TINY && -r /dev/kvm && -w /dev/kvm ]]; then
	# A Linux bzImage on a PVM host is refused before loading unless allowed.
	export MINIVMM_ALLOW_PVM=1
	expect_error "--kernel $tmp/bz-init-size-huge: kernel needs 4096 MiB from 1 MiB up: guest memory too small" \
		--kernel "$tmp/bz-init-size-huge" --console none
	expect_error "--kernel $tmp/elf-paddr-outside-ram: ELF segment 0 at 0x7fff00000000" \
		--kernel "$tmp/elf-paddr-outside-ram" --console none
	expect_error "--kernel $tmp/elf-paddr-wraps: ELF segment 0 at 0xfffffffffffff000" \
		--kernel "$tmp/elf-paddr-wraps" --console none
	expect_error "--kernel $tmp/elf-entry-outside: ELF entry point 0x900000 is not inside a loaded segment" \
		--kernel "$tmp/elf-entry-outside" --console none
	expect_error "--cmdline" --kernel "$TINY" --console none --cmdline "$(printf 'c%.0s' {1..3000})"
	# below --mem, so past the first check, but no room above the kernel
	truncate -s 199M "$tmp/199.initrd"
	expect_error "--initrd $tmp/199.initrd: initrd of 200 MiB does not fit in guest memory above the kernel" \
		--kernel "$TINY" --mem 200 --console none --initrd "$tmp/199.initrd"
	expect_error "--disk: image $tmp: not a regular file" --kernel "$TINY" --disk "$tmp,transport=mmio" --console none
	expect_error "--disk: image $tmp/fifo" --kernel "$TINY" --disk "$tmp/fifo,transport=mmio" --console none
	unset MINIVMM_ALLOW_PVM
else
	echo "SKIP: load-stage cases (no usable /dev/kvm or no test guest)"
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
