#!/bin/sh
# /init of the nested rig's L1 VM (busybox ash). Built into l1.cpio.gz by
# tests/rig/rig.sh. Loads KVM and friends, runs the requested scenarios,
# writes its log dir as a tar archive onto the raw results disk (/dev/vda),
# and powers off. Everything it prints goes to the L1 console (ttyS0), which
# the host keeps as l1-console.log; the lines starting with RIG- are the
# protocol.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:/rig/bin
export HOME=/root TERM=dumb
# The arm64 L1 has busybox alone, as /bin/busybox and /bin/sh: make its applet links.
[ -e /bin/mount ] || /bin/busybox --install -s

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o ptmxmode=666 devpts /dev/pts
mount -t tmpfs tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp

up() { cut -d' ' -f1 /proc/uptime; }
echo "RIG-L1: init started at $(up)s of L1 uptime"

. /rig/env
for m in $(cat /rig/modules.order); do
	# L1_KVM_AMD_PARAMS (rig.sh's environment): kvm-amd's module parameters,
	# e.g. "vgif=0 vls=0", to tell the emulated CPU's features apart.
	params=
	case $m in */kvm-amd.ko*) params=${L1_KVM_AMD_PARAMS:-} ;; esac
	# shellcheck disable=SC2086
	insmod "$m" $params 2>/tmp/insmod.err || echo "RIG-L1: insmod $m $params failed: $(cat /tmp/insmod.err)"
done
[ -n "${L1_KVM_AMD_PARAMS:-}" ] && echo "RIG-L1: kvm-amd loaded with $L1_KVM_AMD_PARAMS"
ip link set lo up 2>/dev/null
# When L1 wedges (issue 12: soft lockups, RCU stalls, no trace under
# "quiet"), its console is all that comes back: from here on the kernel
# prints the stacks of every CPU at a soft lockup, and oopses in full.
echo 1 >/proc/sys/kernel/softlockup_all_cpu_backtrace 2>/dev/null
# A wedge that prints nothing is read from outside, through the host QEMU's
# monitor (tests/rig/l1_cpu_dump.py); its addresses are named from this copy
# of the symbols (the host keeps it for the next L1 of the same kernel: with
# nokaslr they do not move).
mkdir -p "$LOGDIR"
cat /proc/kallsyms >"$LOGDIR/l1-kallsyms.txt" 2>/tmp/kallsyms.err ||
	echo "RIG-L1: cannot copy /proc/kallsyms: $(cat /tmp/kallsyms.err)"
echo "L1 kallsyms: $(wc -l <"$LOGDIR/l1-kallsyms.txt") lines"
echo 7 >/proc/sys/kernel/printk 2>/dev/null
# One VM and vCPU held for L1's life, so that KVM's static keys never switch
# (the kernel text rewrites that wedged L1: tests/rig/kvmhold.c).
[ -c /dev/kvm ] && kvmhold &

mkdir -p "$LOGDIR"
{
	echo "L1 kernel $(uname -r), $(nproc) CPUs, $(awk '/MemTotal/ { print $2 " kB" }' /proc/meminfo)"
	lsmod
	ls -l /dev/kvm /dev/net/tun /dev/vhost-net
	echo "KVM's boot messages:"
	dmesg | grep -i -E 'kvm|hyp mode|EL2'
} >"$LOGDIR/l1-info.log" 2>&1
if [ -c /dev/kvm ]; then
	echo "RIG-L1: ready at $(up)s: /dev/kvm present ($(grep -c '^processor' /proc/cpuinfo) CPUs)"
else
	echo "RIG-L1: ready at $(up)s: /dev/kvm MISSING (see l1-info.log)"
fi

if [ "${INTERACTIVE:-0}" = 1 ]; then
	# guest-images/boot-default.sh on a PVM host: the user's terminal is our
	# console; hand it to minivmm (a session of its own, ttyS0 as its tty).
	echo "RIG-L1: starting minivmm with the default guest; Ctrl-A x or 'poweroff' in the guest to leave"
	# run-default.sh adds a disk and a 2-queue NIC on a tap it makes here.
	setsid cttyhack sh /rig/guest-images/run-default.sh "$MINIVMM" "$DEBIAN_KERNEL" "$GUEST_INITRD"
	echo "RIG-L1: minivmm exited with status $?"
	poweroff -f
fi
# A heartbeat on the console: an L1 that wedges (busy, its own timers no
# longer firing, seen under TCG) stops it, and the host stops L1 after 180 s
# of silence instead of waiting out the scenario's whole limit.
(while sleep 30; do echo "L1-ALIVE $(up)"; done) &
sh /rig/tests/rig/runner.sh --results "$LOGDIR/results.txt" $SCENARIOS
echo "RIG-L1: scenarios done at $(up)s"

dmesg >"$LOGDIR/l1-dmesg.log" 2>&1
if [ -b /dev/vda ]; then
	tar -cf /dev/vda -C "$LOGDIR" . && sync \
		&& echo "RIG-L1: logs written to the results disk" \
		|| echo "RIG-L1: writing the logs to /dev/vda failed"
else
	echo "RIG-L1: no results disk (/dev/vda); the console is all there is"
fi
echo "RIG-L1: poweroff at $(up)s"
poweroff -f
sleep 10
