#!/bin/sh
# Guest side of hostile_guest: takes every virtio device away from its
# driver, runs /usr/bin/hostile (tests/e2e/guest/hostile.c: malformed chains,
# absurd queue setups, out-of-range accesses on each device), gives the
# devices back to their drivers and checks they work: each disk reads its
# marker (written by the host script at offset 0), each NIC comes up, each
# vsock has its driver again.
# Kernel messages off the console: one landing inside a result line would
# break it for the host script (the messages stay in dmesg).
dmesg -n 1
unbound=
for dev in /sys/bus/platform/drivers/virtio-mmio/LNRO* /sys/bus/pci/drivers/virtio-pci/0000:*; do
    [ -e "$dev" ] || continue
    drv=$(dirname "$dev")
    name=$(basename "$dev")
    echo "$name" >"$drv/unbind" || { echo "MVTEST hostile: cannot unbind $name"; exit 1; }
    unbound="$unbound $drv:$name"
done
echo "MVTEST hostile unbound=$(echo $unbound | wc -w)"

# mvcases=a,b,...: only those cases (one run of the program each), e.g. the
# ring attacks that the kernel's vhost-net meets (hostile_vhost).
# mvvsockhost=1: the host side of the vsock cases is there (hostile -H: an
# echo server at host port 5000, host clients during host_clients).
host=
[ -n "$mvvsockhost" ] && host=-H
if [ -n "$mvcases" ]; then
    rc=0
    for c in $(echo "$mvcases" | tr , ' '); do
        hostile -v $host "$c"
        r=$?
        [ $r -gt $rc ] && rc=$r
    done
else
    hostile -v $host
    rc=$?
fi
echo "MVTEST hostile program exit=$rc"
[ $rc = 2 ] && sed 's/^/MVTEST iomem: /' /proc/iomem

for pair in $unbound; do
    echo "${pair#*:}" >"${pair%%:*}/bind" || echo "MVTEST hostile: cannot rebind ${pair#*:}"
done
# the drivers probe asynchronously: give the block devices a moment
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ "$(ls -d /sys/block/vd* 2>/dev/null | wc -l)" -ge 2 ] && break
    sleep 1
done
disks=0
for b in /sys/block/vd*; do
    [ -e "$b" ] || continue
    marker=$(dd if=/dev/$(basename "$b") bs=512 count=1 2>/dev/null | head -c 16)
    echo "MVTEST hostile read /dev/$(basename "$b"): $marker"
    case $marker in HOSTILE-DISK-*) disks=$((disks + 1)) ;; esac
done
nics=0
for n in /sys/class/net/eth*; do
    [ -e "$n" ] || continue
    ip link set "$(basename "$n")" up && nics=$((nics + 1))
done
vsocks=0
# the vsock driver's name is its module's, vmw_vsock_virtio_transport
for v in /sys/bus/virtio/drivers/*vsock*/virtio*; do
    [ -e "$v" ] && vsocks=$((vsocks + 1))
done
echo "MVTEST hostile after rebind disks=$disks nics=$nics vsocks=$vsocks"
exit $rc
