#!/bin/sh
# arm64: Debian's arm64 kernel under minivmm with 2 vCPUs (the second one
# started by the guest through PSCI CPU_ON), a virtio-mmio disk (GICv3 SPI,
# edge) and a virtio-pci disk (MSI-X through the GICv3 ITS, requester ID as
# device ID), and a virtio-net NIC on each transport (worker threads on
# mmio, vhost-net on pci when L1 has it) that the guest pings L1 through.
# The guest finds each disk on its transport, writes to both;
# the host reads the writes back out of the images and compares checksums
# of what the guest read; every queue interrupt fired; the guest leaves
# through the MMIO guest port with status 7, which minivmm exits with.
# rig-arch: arm64
# rig-timeout: 400
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

[ "$(uname -m)" = aarch64 ] || skip "arm64 scenario, this is $(uname -m) (run with tests/rig/rig.sh --arch arm64)"
need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
GUEST_TIMEOUT=${GUEST_TIMEOUT_ARM64:-360}

d=$(mktemp -d)
dd if=/dev/zero of="$d/mmio.img" bs=1M count=8 2>/dev/null
printf 'MMIO-DISK-OK' | dd of="$d/mmio.img" conv=notrunc 2>/dev/null
dd if=/dev/zero of="$d/pci.img" bs=1M count=8 2>/dev/null
printf 'PCI--DISK-OK' | dd of="$d/pci.img" conv=notrunc 2>/dev/null

# The NICs' taps are made by minivmm (L1 has busybox's ip, which cannot);
# they get their addresses here once they exist. vhost-net on the pci one
# when L1 has it.
vh=off
[ -c /dev/vhost-net ] && vh=on
trap 'ip link del armtap0 2>/dev/null; ip link del armtap1 2>/dev/null' EXIT
start_guest arm64-devices --cpus 2 --mem 256 --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
	--disk "$d/mmio.img,transport=mmio" --disk "$d/pci.img,transport=pci" \
	--net armtap0,transport=mmio,vhost=off --net "armtap1,transport=pci,vhost=$vh" \
	--cmdline "console=ttyS0 earlycon panic=-1 mvtest=arm64_devices"
for i in 0 1; do
	n=0
	until ip link show armtap$i >/dev/null 2>&1 || [ $n -ge 100 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	ip addr add 10.8.$i.1/24 dev armtap$i && ip link set armtap$i up || note "cannot set up armtap$i"
done
wait_guest "$GUEST_TIMEOUT"
L=$GUEST_LOG
expect_no_line "$L" '^ARMDEV no virtio_blk' "the arm64 initramfs has no virtio modules (guest-images)"
expect_line "$L" '^ARMDEV cpus=2' "the guest did not bring up 2 CPUs (PSCI CPU_ON)"
expect_line "$L" '^ARMDEV disk vda sig=MMIO-DISK-OK path=.*/a000000\.virtio/' "vda is not the virtio-mmio disk"
expect_line "$L" '^ARMDEV disk vdb sig=PCI--DISK-OK path=.*/3f000000\.pcie/.*0000:00:01\.0/' \
	"vdb is not the virtio-pci disk at 00:01.0"
expect_line "$L" '^ARMDEV irq .* GICv3 +48 Edge +virtio0' "virtio-mmio interrupt is not GIC SPI 16 (INTID 48), edge"
expect_line "$L" '^ARMDEV irq .* ITS-MSI .* virtio[0-9]-req\.0' "virtio-pci queue interrupt is not an ITS MSI"
expect_line "$L" '^ARMDEV net mmio eth[0-9] ping=ok' "no ping through the virtio-mmio NIC (worker threads)"
expect_line "$L" '^ARMDEV net pci eth[0-9] ping=ok' "no ping through the virtio-pci NIC (vhost=$vh)"
expect_line "$L" '^ARMDEV irq .* GICv3 +33 Level +ttyS0' "UART interrupt is not GIC SPI 1, level"
# every virtio interrupt line fired at least once on some CPU (the config one may not)
tr -d '\r' <"$L" | grep -E '^ARMDEV irq .*virtio[0-9]-req|^ARMDEV irq .*virtio[0-9]$' |
	awk '{ s = 0; for (i = 4; i <= 5; i++) s += $i; if (s == 0) { print; bad = 1 } } END { exit bad }' ||
	fail "a virtio queue interrupt never fired"
expect_line "$L" '^minivmm: guest exited with status 7' "no exit through the guest port"
expect_rc 7 "minivmm"
for n in mmio:vda pci:vdb; do
	img=$d/${n%%:*}.img dev=${n#*:}
	want=$(tr -d '\r' <"$L" | sed -n "s/^ARMDEV md5 $dev //p")
	got=$(dd if="$img" bs=1M count=4 2>/dev/null | md5sum | cut -d' ' -f1)
	[ -n "$want" ] && [ "$want" = "$got" ] || fail "$dev: guest read md5 '$want', image has $got"
	dd if="$img" bs=512 skip=8 count=1 2>/dev/null | grep -q "written-by-guest-$dev" ||
		fail "$dev: the guest's write is not in $img"
done
rm -rf "$d"
pass "2 vCPUs, virtio-mmio (SPI) + virtio-pci (ITS MSI-X) disks written and read back, pings through a NIC on each (mmio workers, pci vhost=$vh), guest port exit 7 in ${GUEST_SECS}s"
