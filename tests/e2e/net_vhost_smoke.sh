#!/bin/sh
# vhost-net end to end, on each transport: a guest with 2 vCPUs and
# --net TAP,queues=2,vhost=on pings and runs iperf3 both ways to L1 over a
# multi-queue tap; both queue pairs carry traffic; turning pair 1 off and on
# again (ethtool -L, i.e. VQ_PAIRS_SET: vhost stop, then start from the ring
# positions it read back) keeps it working. While the guest runs minivmm
# must hold one /dev/vhost-net fd per queue pair (pci: vhost signals the
# MSI-X irqfds itself; mmio: the backend forwards interrupts).
# rig-timeout: 600
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file MINIMAL_KERNEL "guest-images/build.sh minimal-kernel did not give one"
need_file GUEST_INITRD
[ -c /dev/vhost-net ] || skip "/dev/vhost-net missing (modprobe vhost_net)"
[ -c /dev/net/tun ] || skip "/dev/net/tun missing"
command -v iperf3 >/dev/null 2>&1 || skip "iperf3 missing on the host side"

TAP=mvvhost0
HOST_IP=10.0.2.1
TRANSPORTS=${NET_TRANSPORTS:-pci mmio}

cleanup() {
	[ -n "${watch_pid:-}" ] && kill "$watch_pid" 2>/dev/null
	iperf_server_stop
	ip link del "$TAP" 2>/dev/null
}
trap cleanup EXIT

ip link del "$TAP" 2>/dev/null
ip tuntap add "$TAP" mode tap multi_queue || fail "ip tuntap add $TAP failed"
ip addr add "$HOST_IP/24" dev "$TAP" || fail "ip addr add failed"
ip link set "$TAP" up || fail "ip link set up failed"
iperf_server_start "$HOST_IP"

# vhost_fds PID: how many /dev/vhost-net fds minivmm PID holds now (one per
# running queue pair).
vhost_fds() {
	n=0
	for f in /proc/"$1"/fd/*; do
		[ "$(readlink "$f" 2>/dev/null)" = /dev/vhost-net ] && n=$((n + 1))
	done
	echo $n
}

summary=
retried=
for tr in $TRANSPORTS; do
	# The most vhost fds any minivmm process had at one time during the run.
	max_file=$LOGDIR/net-vhost-$tr.vhost-fds
	echo 0 >"$max_file"
	(
		max=0
		while :; do
			for p in $(pidof minivmm 2>/dev/null); do
				n=$(vhost_fds "$p")
				[ "$n" -gt "$max" ] && { max=$n; echo "$max" >"$max_file"; }
			done
			sleep 0.5
		done
	) &
	watch_pid=$!
	boot() {
		run_guest "$1" --cpus 2 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
			--net "$TAP,queues=2,vhost=on,transport=$tr" \
			--cmdline "console=ttyS0 panic=-1 mvtest=net_vhost_smoke mvhost=$HOST_IP"
	}
	boot_retrying "net-vhost-$tr"
	kill "$watch_pid" 2>/dev/null
	wait "$watch_pid" 2>/dev/null
	watch_pid=
	if grep -q 'net is not implemented' "$GUEST_LOG"; then
		skip "this minivmm has no --net yet"
	fi
	expect_no_line "$GUEST_LOG" 'backend failed|vhost-net: ' "$tr: a vhost-net error"
	expect_line "$GUEST_LOG" "$GUEST_MARKER" "$tr: guest /init never started"
	expect_line "$GUEST_LOG" '^MVTEST net queues=2' "$tr: guest did not get 2 queue pairs"
	expect_line "$GUEST_LOG" '^MVTEST net ping=ok' "$tr: ping to $HOST_IP failed"
	expect_line "$GUEST_LOG" '^MVTEST net iperf-tx=ok' "$tr: iperf3 guest to host failed"
	expect_line "$GUEST_LOG" '^MVTEST net iperf-rx=ok' "$tr: iperf3 host to guest failed"
	expect_line "$GUEST_LOG" '^MVTEST net rx-queues=2 ' "$tr: not every RX queue carried traffic"
	expect_line "$GUEST_LOG" '^MVTEST net rx-queues=[0-9]+ tx-queues=2$' "$tr: not every TX queue carried traffic"
	expect_line "$GUEST_LOG" '^MVTEST net pairs-cycled ping=ok' "$tr: no traffic after pair 1 went off and on"
	expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test net_vhost_smoke exit=0' "$tr: guest test failed"
	expect_rc 0 "minivmm ($tr)"
	fds=$(cat "$max_file")
	[ "$fds" = 2 ] || fail "$tr: minivmm held at most $fds /dev/vhost-net fds, want 2 (one per queue pair)"
	tx=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^MVTEST net iperf-tx=ok \([0-9.]*\).*/\1/p')
	rx=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^MVTEST net iperf-rx=ok \([0-9.]*\).*/\1/p')
	summary="$summary $tr: tx ${tx} rx ${rx} Mbit/s;"
done
pass "vhost-net, 2 pairs, both queues used, pair cycled:$summary${retried:+ (re-booted:$retried)}"
