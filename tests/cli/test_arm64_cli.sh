#!/bin/bash
# The cross-built arm64 minivmm, run on this x86 host under qemu-user (or
# natively on arm64): everything it does before touching KVM. Every bad
# kernel gives exit 1 and one error line naming the file; a good Image gets
# past parsing to the KVM device. Also checks arch/arm64/extract-image.sh on
# gzip and EFI zboot packagings of an Image.
# Usage: tests/cli/test_arm64_cli.sh BUILD_ARM64/minivmm
set -u
MINIVMM=$1
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

run=()
if [[ $(uname -m) != aarch64 ]]; then
	if command -v qemu-aarch64 >/dev/null; then
		run=(qemu-aarch64)
	elif command -v qemu-aarch64-static >/dev/null; then
		run=(qemu-aarch64-static)
	else
		echo "FAIL: neither qemu-aarch64 (Debian: qemu-user) nor an arm64 host: the arm64 binary cannot run here"
		exit 1
	fi
fi

# Under qemu-user the binary sees this x86 host's /sys, where a PVM KVM
# module may be loaded: that check is not what is tested here.
RUN=(env MINIVMM_ALLOW_PVM=1 MINIVMM_KVM_DEVICE="$tmp/no-kvm" ${run[@]+"${run[@]}"})
. "$(dirname "$0")/expect.sh"
check() { # DESCRIPTION COMMAND...
	local what=$1; shift
	if "$@"; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $what"; fi
}

# Synthetic kernels: a good Image (text_offset 0, image_size 2 MiB), the
# same gzip'd and inside an EFI zboot wrapper, and broken ones.
python3 - "$tmp" <<'PY'
import struct, sys, gzip
d = sys.argv[1]
def image(text_offset=0, image_size=2 << 20, flags=0xa, magic=b'ARM\x64', length=1 << 16):
    img = bytearray(length)
    img[0:2] = b'MZ'
    struct.pack_into('<QQQ', img, 8, text_offset, image_size, flags)
    img[56:60] = magic
    img[64:] = bytes((i * 7) & 0xff for i in range(length - 64))
    return bytes(img)
good = image()
open(f'{d}/Image', 'wb').write(good)
open(f'{d}/vmlinuz.gz', 'wb').write(gzip.compress(good))
payload = gzip.compress(good)
hdr = bytearray(0x1000)
hdr[0:2] = b'MZ'; hdr[4:8] = b'zimg'
struct.pack_into('<II', hdr, 8, len(hdr), len(payload))
hdr[24:28] = b'gzip'
open(f'{d}/vmlinuz.zboot', 'wb').write(bytes(hdr) + payload)
open(f'{d}/bad-magic', 'wb').write(image(magic=b'ARM\x65'))
open(f'{d}/big-endian', 'wb').write(image(flags=1))
open(f'{d}/odd-offset', 'wb').write(image(text_offset=0x801))
open(f'{d}/truncated', 'wb').write(good[:40])
bz = bytearray(0x400); bz[0x202:0x206] = b'HdrS'
open(f'{d}/bzImage', 'wb').write(bytes(bz))
PY

out=$("${run[@]}" "$MINIVMM" --version 2>&1); rc=$?
check "--version ($out)" test $rc -eq 0 -a "${out%% *}" = minivmm
out=$("${run[@]}" "$MINIVMM" --help 2>&1); rc=$?
check "--help mentions the arm64 Image" test $rc -eq 0 -a "${out/arm64 Image/}" != "$out"

expect_error "--kernel $tmp/vmlinuz.gz: gzip-compressed" --kernel "$tmp/vmlinuz.gz"
expect_error "--kernel $tmp/vmlinuz.zboot: EFI zboot image (gzip payload" --kernel "$tmp/vmlinuz.zboot"
expect_error "--kernel $tmp/bad-magic: not an arm64 Linux Image" --kernel "$tmp/bad-magic"
expect_error "x86 bzImage" --kernel "$tmp/bzImage"
expect_error "--kernel $tmp/big-endian: big-endian" --kernel "$tmp/big-endian"
expect_error "--kernel $tmp/odd-offset: Image header has text_offset 0x801" --kernel "$tmp/odd-offset"
expect_error "--kernel $tmp/truncated: truncated: 40 bytes" --kernel "$tmp/truncated"
# A good Image passes every check before KVM: the next error is the device.
expect_error "$tmp/no-kvm does not exist" --kernel "$tmp/Image" --cpus 2 --mem 128
expect_error "--cpus 0" --kernel "$tmp/Image" --cpus 0
# No snapshots on arm64 yet: --restore says so first, whatever the directory holds.
expect_error "--restore $tmp: snapshots are not supported on arm64 yet" --restore "$tmp"

# extract-image.sh gives back the very Image from both packagings, and
# refuses what holds none.
check "extract-image: gzip" bash arch/arm64/extract-image.sh "$tmp/vmlinuz.gz" "$tmp/out1"
check "extract-image: gzip gives the Image" cmp -s "$tmp/out1" "$tmp/Image"
check "extract-image: zboot" bash arch/arm64/extract-image.sh "$tmp/vmlinuz.zboot" "$tmp/out2"
check "extract-image: zboot gives the Image" cmp -s "$tmp/out2" "$tmp/Image"
check "extract-image: refuses a bzImage" bash -c "! bash arch/arm64/extract-image.sh '$tmp/bzImage' '$tmp/out3' 2>/dev/null"
check "extract-image: leaves nothing behind on failure" test ! -e "$tmp/out3" -a ! -e "$tmp/out3.tmp"

echo "arm64 cli: $pass passed, $fail failed${run:+ (under ${run[*]})}"
[[ $fail -eq 0 ]]
