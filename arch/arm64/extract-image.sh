#!/bin/bash
# Unpacks the arm64 Image that minivmm boots from what distributions ship as
# vmlinuz: a gzip-compressed Image (Debian 12's linux-image-*-arm64) or an
# EFI zboot image (CONFIG_EFI_ZBOOT: a PE file with a compressed Image
# inside, its offset and size at bytes 8 and 12, the compression at 24).
# An Image that is already uncompressed is copied as it is.
# Usage: arch/arm64/extract-image.sh VMLINUZ OUT_IMAGE
set -euo pipefail
in=$1 out=$2
[[ -f $in ]] || { echo "extract-image: $in: no such file" >&2; exit 1; }

magic=$(head -c 8 "$in" | od -An -tx1 | tr -d ' \n')
le32() { od -An -tu4 -j "$1" -N 4 "$in" | tr -d ' '; }
decompress() { # TYPE: stdin -> stdout
	case $1 in
	gzip) gzip -dc ;;
	zstd) zstd -dc ;;
	xz) xz -dc ;;
	lzma) xz --format=lzma -dc ;;
	bzip2) bzip2 -dc ;;
	lz4) lz4 -dc ;;
	*) echo "extract-image: $in: unknown compression '$1'" >&2; return 1 ;;
	esac
}

if [[ $magic == 1f8b* ]]; then
	gzip -dc "$in" >"$out.tmp"
elif [[ ${magic:0:4} == 4d5a && ${magic:8:8} == 7a696d67 ]]; then   # "MZ" .. "zimg"
	off=$(le32 8) size=$(le32 12)
	comp=$(dd if="$in" bs=1 skip=24 count=8 status=none | tr -d '\0')
	tail -c +"$((off + 1))" "$in" | head -c "$size" | decompress "$comp" >"$out.tmp"
else
	cp "$in" "$out.tmp"
fi
# The result must be an arm64 Image: "ARM\x64" at offset 56.
if [[ $(od -An -tx1 -j 56 -N 4 "$out.tmp" | tr -d ' \n') != 41524d64 ]]; then
	rm -f "$out.tmp"
	echo "extract-image: $in: no arm64 Image inside (no ARM\\x64 magic at offset 56)" >&2
	exit 1
fi
mv "$out.tmp" "$out"
