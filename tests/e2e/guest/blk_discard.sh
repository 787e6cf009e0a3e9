#!/bin/sh
# Guest side of the discard check: the disk (/dev/vda, or /dev/$1: blk_all.sh
# names the vdX it found by serial) shows the serial the host set (serial=)
# and offers discard and write zeroes; 32 MiB of text written to
# it, then its first 16 MiB discarded (busybox blkdiscard, BLKDISCARD). The
# host then finds zeros there, the text after, and the image's allocated
# blocks down to about 16 MiB.
vd=${1:-vda}
dev=/dev/$vd
[ -b $dev ] || { echo "MVTEST discard: no $dev"; exit 1; }
q=/sys/block/$vd/queue
echo "MVTEST discard serial=$(cat /sys/block/$vd/serial 2>/dev/null)"
echo "MVTEST discard max=$(cat $q/discard_max_bytes) zeroes_max=$(cat $q/write_zeroes_max_bytes) granularity=$(cat $q/discard_granularity)"
yes minivmm | dd of=$dev bs=1M count=32 iflag=fullblock conv=fsync 2>/tmp/err || {
    echo "MVTEST discard write failed: $(tail -n 1 /tmp/err)"; exit 2; }
echo "MVTEST discard written"
blkdiscard -o 0 -l 16777216 $dev 2>/tmp/err || { echo "MVTEST discard blkdiscard failed: $(head -n 1 /tmp/err)"; exit 3; }
sync
echo "MVTEST discard done"
