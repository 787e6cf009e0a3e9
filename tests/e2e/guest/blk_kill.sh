#!/bin/sh
# Guest side of fault_blk's SIGKILL case: pattern B (4 MiB at 8 MiB) through
# the page cache, then fsync (the block layer sends a FLUSH: the counter in
# /sys/block/vda/stat shows it), then the marker; the host SIGKILLs minivmm
# the moment it sees the marker and looks for B in the image.
dev=/dev/vda
pat() { seq -w "$1" $(($1 + 600000)) | head -c $(($2 * 1048576)); }
flushes() { awk '{ print $16 }' /sys/block/vda/stat; }
pat 2000000 4 >/tmp/b
f0=$(flushes)
dd if=/tmp/b of=$dev bs=1M seek=8 conv=notrunc,fsync 2>/dev/null || { echo "MVTEST kill: write failed"; exit 1; }
echo "MVTEST kill flushed flushes=$(($(flushes) - f0))"
sleep 60
echo "MVTEST kill: still running 60 s after the marker"
