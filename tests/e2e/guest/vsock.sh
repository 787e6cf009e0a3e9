#!/bin/sh
# Guest side of the vsock scenario (tests/e2e/vsock.sh). An echo server on
# vsock port 1234 for the host's three connections (4 MiB, a small stream,
# and an empty one that says the host is done: until then the guest stays
# up, so that the host's later checks find minivmm still running); then the
# guest's own connections to the host: 1 MiB to host port 5000 (the host
# echoes it) and one to port 5001, where nobody listens.
drv=/sys/bus/virtio/drivers/vmw_vsock_virtio_transport
if ! ls "$drv" 2>/dev/null | grep -q '^virtio'; then
    echo "MVTEST vsock: no device bound to $drv: drivers $(ls /sys/bus/virtio/drivers | tr '\n' ' ')" \
        "devices $(cat /sys/bus/virtio/devices/*/device 2>/dev/null | tr '\n' ' ')"
    exit 1
fi
vsockcat -l 1234 3 &
srv=$!
sleep 1
echo "MVTEST vsock listening"
head -c 1048576 /dev/urandom >/tmp/out
vsockcat 2 5000 </tmp/out >/tmp/back
rc=$?
echo "MVTEST vsock to-host rc=$rc sent=$(md5sum </tmp/out | cut -d' ' -f1) back=$(md5sum </tmp/back | cut -d' ' -f1)"
vsockcat 2 5001 </dev/null >/dev/null 2>/tmp/err
echo "MVTEST vsock refused rc=$? $(cat /tmp/err)"
wait $srv
echo "MVTEST vsock server rc=$?"
dmesg | grep -iE '(vsock|virtio).*(error|fail|warn|bug)' | sed 's/^/MVTEST vsock kernel said: /'
echo "MVTEST vsock done"
