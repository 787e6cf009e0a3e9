#!/bin/sh
# Guest side of tests/e2e/arm64_devices.sh: CPUs brought up by PSCI, one
# virtio-mmio and one virtio-pci disk (which is which, by sysfs path), a
# write to each, checksums, a ping to L1 through a NIC on each transport,
# the interrupts each uses, then exit status 7
# through the arm64 guest port (README, "Guest port").
if ! ls /sys/bus/virtio/drivers/virtio_blk >/dev/null 2>&1; then
	echo "ARMDEV no virtio_blk driver (the initramfs lacks the virtio modules)"
	exit 1
fi
echo "ARMDEV cpus=$(grep -c ^processor /proc/cpuinfo)"
for d in /sys/block/vd*; do
	n=$(basename "$d")
	echo "ARMDEV disk $n sig=$(head -c 12 /dev/$n) path=$(readlink -f $d/device)"
done
for n in vda vdb; do
	echo "written-by-guest-$n" | dd of=/dev/$n bs=512 seek=8 conv=fsync 2>/dev/null
	echo "ARMDEV md5 $n $(dd if=/dev/$n bs=1M count=4 2>/dev/null | md5sum | cut -d' ' -f1)"
done
sync
# The NICs: 10.8.0.2 on the virtio-mmio one, 10.8.1.2 on the virtio-pci one
# (which is which by sysfs path); L1 answers on .1 once minivmm made its taps.
for n in /sys/class/net/eth*; do
	[ -e "$n" ] || continue
	dev=$(basename "$n")
	case $(readlink -f "$n/device") in *pcie*) net=1 tr=pci ;; *) net=0 tr=mmio ;; esac
	ip addr add 10.8.$net.2/24 dev "$dev"
	ip link set "$dev" up
	i=0
	until ping -c 1 -W 2 10.8.$net.1 >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 30 ] || break
	done
	echo "ARMDEV net $tr $dev ping=$(ping -c 3 -W 2 10.8.$net.1 >/dev/null 2>&1 && echo ok || echo failed)"
done
grep -E "virtio|ttyS0" /proc/interrupts | sed 's/^/ARMDEV irq /'
echo "ARMDEV exiting with 7 through the guest port"
# The console is a tty: what we printed may still sit in its buffer, and the
# guest-port write ends the VM at once. Give the UART time to drain first.
sleep 2
devmem 0x09010000 8 7
echo "ARMDEV still running after the guest port write"
