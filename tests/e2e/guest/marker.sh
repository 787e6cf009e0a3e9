#!/bin/sh
# Guest half of the smoke test: proves a guest script ran, and under which kernel; and, when
# the VM has a virtio-rng (--rng), that the kernel took it as its hardware RNG and reads from it.
echo "MVTEST marker uname=$(uname -r)"
if [ -d /sys/class/misc/hw_random ]; then
    cur=$(cat /sys/class/misc/hw_random/rng_current 2>/dev/null)
    n=$(dd if=/dev/hwrng bs=4096 count=4 2>/dev/null | wc -c)
    uniq=$(dd if=/dev/hwrng bs=4096 count=1 2>/dev/null | od -An -tx1 -v | tr -s ' \n' '\n\n' | grep . | sort -u | wc -l)
    echo "MVTEST rng current=$cur bytes=$n distinct=$uniq"
fi
