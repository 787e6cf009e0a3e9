#!/bin/sh
# Guest side of the sandbox test: use the disk (direct I/O, flushed) and the
# network (two queue pairs, so that the control queue starts a second pair
# after boot), then wait while the host inspects minivmm's threads, then
# drop back to one pair (a pair stops under the filters too).
IP=/sbin/ip
$IP link set lo up
$IP link set eth0 up || { echo "MVTEST sandbox: no eth0"; exit 1; }
$IP addr add 10.0.2.2/24 dev eth0
ethtool -L eth0 combined 2 || { echo "MVTEST sandbox: ethtool -L combined 2 failed"; exit 1; }
dd if=/dev/urandom of=/tmp/pattern bs=1M count=4 2>/dev/null
dd if=/tmp/pattern of=/dev/vda bs=1M oflag=direct conv=fsync 2>/dev/null || { echo "MVTEST sandbox: disk write failed"; exit 1; }
dd if=/dev/vda of=/tmp/back bs=1M count=4 iflag=direct 2>/dev/null
cmp -s /tmp/pattern /tmp/back && echo "MVTEST sandbox disk ok" || echo "MVTEST sandbox disk mismatch"
i=0
while ! ping -c 1 -W 1 10.0.2.1 >/dev/null 2>&1 && [ $i -lt 10 ]; do i=$((i + 1)); done
for cpu in 0 1; do taskset -c $cpu ping -c 2 -W 3 10.0.2.1 >/dev/null 2>&1 && echo "MVTEST sandbox ping cpu$cpu ok"; done
echo "MVTEST sandbox inspect"
sleep "${SANDBOX_INSPECT_SECS:-10}"
ethtool -L eth0 combined 1 && ping -c 1 -W 3 10.0.2.1 >/dev/null 2>&1 && echo "MVTEST sandbox one pair ok"
echo "MVTEST sandbox done"
