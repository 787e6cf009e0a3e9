#!/bin/sh
# Guest side of the snapshot scenario. Before the snapshot: eth0 up, a file
# of random bytes written to the disk (ext4) with its md5, a counter on the
# console every second, "ready". Then it asks the host side for "go" once a
# second (nc to 10.0.2.1:5400): nothing listens there until the VM was
# snapshotted, stopped and restored. After "go": the counter goes on, the
# file reads back (caches dropped) with the same md5, every CPU is online,
# "sleep 1" takes about a second, iperf3 runs, no lockup or stall report,
# and the guest powers off.
IP=/sbin/ip
$IP link set lo up
$IP link set eth0 up || { echo "MVTEST snap: no eth0"; exit 1; }
$IP addr add 10.0.2.2/24 dev eth0
mkfs.ext4 -q -F /dev/vda || exit 2
mount -t ext4 /dev/vda /mnt || exit 3
head -c 4194304 /dev/urandom >/mnt/data
sync
echo "MVTEST snap file md5 $(md5sum </mnt/data | cut -d' ' -f1)"
( n=0; while :; do n=$((n + 1)); echo "MVTEST snap count $n"; sleep 1; done ) &
sleep 2
echo "MVTEST snap ready cpus=$(grep -c ^processor /proc/cpuinfo)"
while :; do
    go=$(nc 10.0.2.1 5400 </dev/null 2>/dev/null)
    [ "$go" = go ] && break
    sleep 1
done
echo "MVTEST snap restored"
sleep 2
sync
echo 3 >/proc/sys/vm/drop_caches
echo "MVTEST snap file md5 after $(md5sum </mnt/data | cut -d' ' -f1)"
echo "MVTEST snap online $(cat /sys/devices/system/cpu/online)"
t0=$(cut -d' ' -f1 /proc/uptime)
sleep 1
echo "MVTEST snap sleep1 $(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.2f", b - a }')"
sum() { grep -E 'receiver' | tail -n 1 | sed 's/.* \([0-9.]*\) \([KMG]\)bits\/sec.*/\1 \2bit\/s/'; }
echo "MVTEST snap iperf $(iperf3 -c 10.0.2.1 -t 2 2>&1 | sum)"
dmesg | grep -E 'soft lockup|rcu.*stall|hung_task' | sed 's/^/MVTEST snap kernel said: /'
umount /mnt
echo "MVTEST snap done"
