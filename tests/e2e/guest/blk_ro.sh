#!/bin/sh
# Guest side of the read-only disk check: the disk says it is read-only, and
# a write to it fails.
dev=/dev/vda
[ -b $dev ] || { echo "MVTEST ro: no $dev"; exit 1; }
echo "MVTEST ro flag=$(cat /sys/block/vda/ro)"
echo "MVTEST ro discard_max=$(cat /sys/block/vda/queue/discard_max_bytes)"
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
