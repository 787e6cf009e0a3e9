#!/bin/sh
# virtio-blk end to end, on each transport: the guest makes an ext4 file
# system, writes a file and syncs; the host reads the file back out of the
# image (debugfs) and compares checksums. A read-only disk refuses writes
# (and offers no discard) and the image stays byte for byte the same. A
# discard (blkdiscard in the guest) punches a hole in the image: zeros there,
# the guest's data around it, fewer blocks allocated; and the guest shows
# the serial given with serial=.
# rig-timeout: 600
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
command -v debugfs >/dev/null 2>&1 || skip "debugfs (e2fsprogs) missing: cannot check the image"

TRANSPORTS=${BLK_TRANSPORTS:-mmio pci}
want=$(seq 1 200000 | md5sum | cut -d' ' -f1)
img=/tmp/blk-test.img
summary=
for tr in $TRANSPORTS; do
	rm -f $img
	truncate -s 64M $img
	run_guest "blk-rw-$tr" --cpus 2 --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
		--disk "$img,transport=$tr" --cmdline "console=ttyS0 panic=-1 mvtest=blk_rw"
	expect_line "$GUEST_LOG" '^MVTEST blk sectors=131072 ' "$tr: guest did not see a 64 MiB /dev/vda"
	expect_line "$GUEST_LOG" "^MVTEST blk md5=$want" "$tr: guest's file checksum is wrong"
	expect_line "$GUEST_LOG" '^MVTEST blk done' "$tr: unmount failed"
	expect_rc 0 "minivmm ($tr)"
	got=$(debugfs -R "cat /data.txt" $img 2>/dev/null | md5sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "$tr: file read back from the image has md5 $got, want $want"
	rw_secs=$GUEST_SECS

	before=$(md5sum <$img)
	run_guest "blk-ro-$tr" --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
		--disk "$img,ro,transport=$tr" --cmdline "console=ttyS0 panic=-1 mvtest=blk_ro"
	expect_line "$GUEST_LOG" '^MVTEST ro flag=1' "$tr: read-only flag not seen by the guest"
	expect_line "$GUEST_LOG" '^MVTEST ro write=refused' "$tr: write to a read-only disk was allowed"
	expect_line "$GUEST_LOG" '^MVTEST ro device-write=refused' "$tr: device accepted a write on a read-only disk"
	expect_line "$GUEST_LOG" '^MVTEST ro discard_max=0$' "$tr: a read-only disk offers discard"
	expect_rc 0 "minivmm ro ($tr)"
	[ "$(md5sum <$img)" = "$before" ] || fail "$tr: read-only image changed"

	rm -f $img
	truncate -s 64M $img
	run_guest "blk-discard-$tr" --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
		--disk "$img,transport=$tr,serial=mvtest-disk-$tr" --cmdline "console=ttyS0 panic=-1 mvtest=blk_discard"
	expect_line "$GUEST_LOG" "^MVTEST discard serial=mvtest-disk-$tr\$" "$tr: the guest does not show the disk's serial"
	expect_line "$GUEST_LOG" '^MVTEST discard max=1073741824 zeroes_max=33554432 ' "$tr: discard or write zeroes not offered"
	expect_line "$GUEST_LOG" '^MVTEST discard done' "$tr: blkdiscard failed in the guest"
	expect_rc 0 "minivmm discard ($tr)"
	[ "$(head -c 16777216 $img | tr -d '\0' | wc -c)" = 0 ] || fail "$tr: the discarded 16 MiB do not read as zeros"
	[ "$(dd if=$img bs=1M skip=16 count=16 2>/dev/null | tr -d 'minvm\n' | wc -c)" = 0 ] ||
		fail "$tr: the 16 MiB after the discarded range lost the guest's data"
	kib=$(du -k $img | cut -f1)
	if grep -q "cannot punch holes" "$GUEST_LOG"; then
		note "$tr: the image's file system cannot punch holes: its allocation is not checked"
	elif [ "$kib" -gt 20480 ] || [ "$kib" -lt 12288 ]; then
		fail "$tr: the image holds $kib KiB after 32 MiB written and 16 MiB discarded, want about 16384"
	fi
	summary="$summary $tr:rw ${rw_secs}s discard:${kib}KiB"
done
rm -f $img
pass "ext4 written by the guest read back on the host; ro refused; discard punched a hole;$summary"
