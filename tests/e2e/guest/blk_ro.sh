#!/bin/sh
# Guest side of the read-only disk check: the disk (/dev/vda, or /dev/$1:
# blk_all.sh names the vdX it found by serial) says it is read-only, offers
# no discard, and a write to it fails.
vd=${1:-vda}
dev=/dev/$vd
[ -b $dev ] || { echo "MVTEST ro: no $dev"; exit 1; }
echo "MVTEST ro flag=$(cat /sys/block/$vd/ro)"
echo "MVTEST ro discard_max=$(cat /sys/block/$vd/queue/discard_max_bytes)"
if dd if=/dev/zero of=$dev bs=4096 count=16 conv=fsync 2>/tmp/err; then
    echo "MVTEST ro write=allowed"
else
    echo "MVTEST ro write=refused ($(head -n 1 /tmp/err))"
fi
# Bypass the block layer's read-only flag too: the device itself must refuse.
blockdev --setrw $dev 2>/dev/null
if dd if=/dev/zero of=$dev bs=4096 count=16 oflag=direct 2>/tmp/err2; then
    echo "MVTEST ro device-write=allowed"
else
    echo "MVTEST ro device-write=refused ($(head -n 1 /tmp/err2))"
fi
