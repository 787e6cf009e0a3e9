#!/bin/sh
# Guest side of fault_blk's SIGTERM case: pattern C (4 MiB at 16 MiB)
# written and flushed, then two writers at full speed on other parts of
# the disk (O_DIRECT and buffered+fsync, so writes and flushes are in
# flight on both queues) until the host stops minivmm with SIGTERM.
dev=/dev/vda
pat() { seq -w "$1" $(($1 + 600000)) | head -c $(($2 * 1048576)); }
flushes() { awk '{ print $16 }' /sys/block/vda/stat; }
pat 3000000 4 >/tmp/c
f0=$(flushes)
dd if=/tmp/c of=$dev bs=1M seek=16 conv=notrunc,fsync 2>/dev/null || { echo "MVTEST term: write failed"; exit 1; }
echo "MVTEST term flushed flushes=$(($(flushes) - f0))"
pat 5000000 4 >/tmp/h
writer() {
    n=0
    while [ $n -lt 1000 ]; do
        dd if=/tmp/h of=$dev bs=1M seek="$1" $2 2>/dev/null || { echo "MVTEST term: writer $1 failed"; return 1; }
        n=$((n + 1))
    done
}
writer 24 "oflag=direct conv=notrunc" &
writer 32 conv=notrunc,fsync &
sleep 1
echo "MVTEST term heavy"
wait
echo "MVTEST term: the writers finished before the host stopped minivmm"
