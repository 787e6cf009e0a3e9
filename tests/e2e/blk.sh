#!/bin/sh
# virtio-blk end to end, on each transport, in one guest with three disks
# (the guest finds each by the serial given with serial=: guest/blk_all.sh).
# On the first the guest makes an ext4 file system, writes a file and syncs;
# the host reads the file back out of the image (debugfs) and compares
# checksums. The second is read-only: it refuses writes (and offers no
# discard) and its image stays byte for byte the same. On the third a discard
# (blkdiscard in the guest) punches a hole in the image: zeros there, the
# guest's data after it, fewer blocks allocated; and the guest shows the
# serial given with serial=.
# rig-timeout: 420
# Before lib.sh, which defaults it to 120: one guest does the work of three.
GUEST_TIMEOUT=${GUEST_TIMEOUT:-180}
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD
command -v debugfs >/dev/null 2>&1 || skip "debugfs (e2fsprogs) missing: cannot check the image"

TRANSPORTS=${BLK_TRANSPORTS:-mmio pci}
want=$(seq 1 200000 | md5sum | cut -d' ' -f1)
# The three images are in one directory: minivmm's warning that an image
# cannot punch holes (the note below), whichever disk it names (the guest's
# mkfs.ext4 discards the rw disk too), holds for the discard image as well.
img=/tmp/blk-test.img
ro_img=/tmp/blk-ro.img
discard_img=/tmp/blk-discard.img
summary=
for tr in $TRANSPORTS; do
	rm -f $img $ro_img $discard_img
	truncate -s 64M $img
	truncate -s 64M $discard_img
	# The read-only image: text in its first MiB, where the guest's refused
	# writes of zeros would land, then a hole up to 64 MiB.
	yes mvtest-ro-image | head -c 1048576 >$ro_img
	truncate -s 64M $ro_img
	before=$(md5sum <$ro_img)
	run_guest "blk-$tr" --cpus 2 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
		--disk "$img,transport=$tr,serial=mvtest-rw-$tr" \
		--disk "$ro_img,ro,transport=$tr,serial=mvtest-ro-$tr" \
		--disk "$discard_img,transport=$tr,serial=mvtest-discard-$tr" \
		--cmdline "console=ttyS0 panic=-1 mvtest=blk_all blk_rw_serial=mvtest-rw-$tr blk_ro_serial=mvtest-ro-$tr blk_discard_serial=mvtest-discard-$tr"
	expect_line "$GUEST_LOG" '^MVTEST blk sectors=131072 ' "$tr: guest did not see a 64 MiB disk with serial mvtest-rw-$tr"
	expect_line "$GUEST_LOG" "^MVTEST blk md5=$want" "$tr: guest's file checksum is wrong"
	expect_line "$GUEST_LOG" '^MVTEST blk done' "$tr: unmount failed"
	expect_line "$GUEST_LOG" '^MVTEST ro flag=1' "$tr: read-only flag not seen by the guest"
	expect_line "$GUEST_LOG" '^MVTEST ro write=refused' "$tr: write to a read-only disk was allowed"
	expect_line "$GUEST_LOG" '^MVTEST ro device-write=refused' "$tr: device accepted a write on a read-only disk"
	expect_line "$GUEST_LOG" '^MVTEST ro discard_max=0$' "$tr: a read-only disk offers discard"
	expect_line "$GUEST_LOG" "^MVTEST discard serial=mvtest-discard-$tr\$" "$tr: the guest does not show the disk's serial"
	expect_line "$GUEST_LOG" '^MVTEST discard max=1073741824 zeroes_max=33554432 ' "$tr: discard or write zeroes not offered"
	expect_line "$GUEST_LOG" '^MVTEST discard done' "$tr: blkdiscard failed in the guest"
	expect_rc 0 "minivmm ($tr)"

	got=$(debugfs -R "cat /data.txt" $img 2>/dev/null | md5sum | cut -d' ' -f1)
	[ "$got" = "$want" ] || fail "$tr: file read back from the image has md5 $got, want $want"
	[ "$(md5sum <$ro_img)" = "$before" ] || fail "$tr: read-only image changed"
	[ "$(head -c 16777216 $discard_img | tr -d '\0' | wc -c)" = 0 ] || fail "$tr: the discarded 16 MiB do not read as zeros"
	[ "$(dd if=$discard_img bs=1M skip=16 count=16 2>/dev/null | tr -d 'minvm\n' | wc -c)" = 0 ] ||
		fail "$tr: the 16 MiB after the discarded range lost the guest's data"
	kib=$(du -k $discard_img | cut -f1)
	if grep -q "cannot punch holes" "$GUEST_LOG"; then
		note "$tr: the image's file system cannot punch holes: its allocation is not checked"
	elif [ "$kib" -gt 20480 ] || [ "$kib" -lt 12288 ]; then
		fail "$tr: the image holds $kib KiB after 32 MiB written and 16 MiB discarded, want about 16384"
	fi
	summary="$summary $tr:${GUEST_SECS}s discard:${kib}KiB"
done
rm -f $img $ro_img $discard_img
pass "ext4 written by the guest read back on the host; ro refused; discard punched a hole;$summary"
