#!/bin/sh
# Guest side of the blk scenario: the disk (/dev/vda, or /dev/$1: blk_all.sh
# names the vdX it found by serial) gets an ext4 file system and a file with
# known contents, flushed to disk; the host then reads the file back out of
# the image and compares checksums.
vd=${1:-vda}
dev=/dev/$vd
if [ ! -b $dev ]; then
    echo "MVTEST blk: no $dev"
    exit 1
fi
echo "MVTEST blk sectors=$(cat /sys/block/$vd/size) queues=$(ls /sys/block/$vd/mq | wc -l)"
mkfs.ext4 -q -F $dev || exit 2
mkdir -p /mnt
mount -t ext4 $dev /mnt || exit 3
seq 1 200000 >/mnt/data.txt
sync
echo "MVTEST blk md5=$(md5sum /mnt/data.txt | cut -d' ' -f1)"
umount /mnt || exit 4
echo "MVTEST blk done"
