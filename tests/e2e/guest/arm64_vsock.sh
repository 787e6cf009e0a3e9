#!/bin/sh
# Guest side of tests/e2e/arm64_vsock.sh: which transport the vsock device is
# on (sysfs path), an echo server on vsock port 1234 for the host's one
# connection, then the guest's own connections to the host (CID 2): 1 MiB
# to port 5000, which the host echoes back, and one to port 5001, where
# nobody listens; the interrupts the device used.
drv=/sys/bus/virtio/drivers/vmw_vsock_virtio_transport
dev=
for d in "$drv"/virtio*; do
	[ -e "$d" ] && dev=$d && break
done
if [ -z "$dev" ]; then
	echo "ARMVSOCK no device bound to $drv: drivers $(echo /sys/bus/virtio/drivers/*)" \
		"modules $(cut -d' ' -f1 /proc/modules | tr '\n' ' ')"
	exit 1
fi
echo "ARMVSOCK device $(basename "$dev") path=$(readlink -f "$dev")"
vsockcat -l 1234 1 &
srv=$!
sleep 1
echo "ARMVSOCK listening"
wait $srv
echo "ARMVSOCK server rc=$?"
head -c 1048576 /dev/urandom >/tmp/out
vsockcat 2 5000 </tmp/out >/tmp/back 2>/tmp/err
rc=$?
echo "ARMVSOCK to-host rc=$rc sent=$(md5sum </tmp/out | cut -d' ' -f1) back=$(md5sum </tmp/back | cut -d' ' -f1)" \
	"bytes=$(wc -c </tmp/back) $(tr '\n' ' ' </tmp/err)"
vsockcat 2 5001 </dev/null >/dev/null 2>/tmp/err
echo "ARMVSOCK refused rc=$? $(cat /tmp/err)"
grep virtio /proc/interrupts | sed 's/^/ARMVSOCK irq /'
dmesg | grep -iE '(vsock|virtio).*(error|fail|warn|bug)' | sed 's/^/ARMVSOCK kernel said: /'
echo "ARMVSOCK done"
