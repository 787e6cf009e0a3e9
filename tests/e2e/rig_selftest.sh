#!/bin/sh
# Rig self-test, no guest boot (a few seconds): the machine the scenarios run
# on has a usable /dev/kvm, /dev/net/tun, /dev/vhost-net, iproute2's ip can
# make a multi-queue tap, iperf3 and ptydrive run.
# rig-timeout: 60
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_kvm
[ -c /dev/net/tun ] || fail "/dev/net/tun missing"
[ -c /dev/vhost-net ] || fail "/dev/vhost-net missing"
ip tuntap add rigtap0 mode tap multi_queue 2>"$LOGDIR/rig-selftest-ip.log" \
	|| { show_tail "$LOGDIR/rig-selftest-ip.log"; fail "ip tuntap add failed (busybox ip instead of iproute2?)"; }
ip link del rigtap0
iperf3 --version >/dev/null 2>&1 || fail "iperf3 does not run"
need_ptydrive
"$PTYDRIVE" --timeout 10 --expect 'ptydrive-ok' -- sh -c 'echo ptydrive-$1' sh ok >/dev/null 2>&1 \
	|| fail "ptydrive does not work"
pass "kvm, tun, vhost-net, ip tuntap, iperf3, ptydrive all usable"
