#!/bin/sh
# Guest side of fault_blk's disk-full case: the image lives on a host file
# system with less free space than the disk's size. Pattern A (1 MiB at 0)
# is written and flushed, then 1 MiB chunks (O_DIRECT, so the error comes
# back from the write itself) until the device fails one: the guest must
# get an I/O error, and the device must go on working: A reads back, and a
# write into space the host has already allocated succeeds.
dev=/dev/vda
pat() { seq -w "$1" $(($1 + 600000)) | head -c $(($2 * 1048576)); }
pat 1000000 1 >/tmp/a
dd if=/tmp/a of=$dev bs=1M conv=notrunc,fsync 2>/dev/null || { echo "MVTEST full: writing pattern A failed"; exit 1; }
echo "MVTEST full A written"
pat 4000000 1 >/tmp/chunk   # not zeros: the host stores every byte
mib=$(($(cat /sys/block/vda/size) / 2048))
i=1
err=
while [ $i -lt $mib ]; do
    if ! dd if=/tmp/chunk of=$dev bs=1M seek=$i oflag=direct conv=notrunc 2>/tmp/dd.err; then
        err=$i
        break
    fi
    i=$((i + 1))
done
[ -n "$err" ] || { echo "MVTEST full: all $mib MiB written without an error"; exit 2; }
echo "MVTEST full error at MiB $err: $(grep -v records /tmp/dd.err | tail -n 1)"
blockdev --flushbufs $dev
echo 3 >/proc/sys/vm/drop_caches
echo "MVTEST full A read back md5=$(dd if=$dev bs=1M count=1 iflag=direct 2>/dev/null | md5sum | cut -d' ' -f1) want=$(md5sum </tmp/a | cut -d' ' -f1)"
dd if=/tmp/a of=$dev bs=1M oflag=direct conv=notrunc,fsync 2>/dev/null && echo "MVTEST full rewrite of A ok"
echo "MVTEST full done"
