#!/bin/sh
# Fault: the tap is deleted (ip link del) while the guest sends through it
# (iperf3 UDP out, ping both ways). minivmm must log one line for it (not
# one per frame or per queue), keep running, and tell the guest (link down);
# the guest stays up, powers off normally, and minivmm exits 0. For the
# worker backend and vhost-net, with 2 queue pairs on virtio-pci.
# rig-timeout: 500
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD
[ -c /dev/net/tun ] || skip "no /dev/net/tun"
command -v iperf3 >/dev/null 2>&1 || skip "iperf3 missing"
IP=/usr/sbin/ip
[ -x $IP ] || IP=$(command -v ip)

trap 'iperf_server_stop; $IP link del tap0 2>/dev/null' EXIT
VHOSTS=${NET_VHOST_MODES:-off on}
[ -c /dev/vhost-net ] || { note "no /dev/vhost-net here: vhost=on not run"; VHOSTS=off; }
summary=
retried=
for vh in $VHOSTS; do
	name=tapdel-vhost-$vh
	n=0
	while :; do
		$IP link del tap0 2>/dev/null
		$IP tuntap add tap0 mode tap multi_queue || fail "cannot create tap0"
		$IP addr add 10.0.2.1/24 dev tap0
		$IP link set tap0 up
		iperf_server_start 10.0.2.1
		start_guest "$name" --cpus 2 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
			--net "tap0,queues=2,vhost=$vh" --cmdline "console=ttyS0 panic=-1 mvtest=net_tap_deleted"
		if watch_for '^MVTEST tapdel sending' 150; then
			sleep 2   # mid-stream
			$IP link del tap0 || fail "$name: ip link del tap0 failed"
			t_del=$(now)
			note "$name: tap0 deleted"
			wait_guest 90
		else
			wait_guest 5
			t_del=
		fi
		iperf_server_stop
		# Seen before the rig ran L1's KVM without nested paging: with
		# vhost=on the guest hung right after the delete (one vCPU running,
		# every minivmm thread idle in poll, nothing more on the console).
		# Booted again, with its log kept, only when RIG_REBOOTS asks.
		if [ $n -lt "$RIG_REBOOTS" ] && [ -n "$t_del" ] && [ "$GUEST_RC" = 124 ] &&
			! tr -d '\r' <"$GUEST_LOG" | grep -q '^MVTEST tapdel iperf3'; then
			why="guest silent after the delete, killed"
		else
			[ $n -lt $RIG_REBOOTS ] && why=$(rig_guest_died "$GUEST_LOG") || break
		fi
		n=$((n + 1))
		retried="$retried $name($why)"
		note "$name: $why; booting it once more"
		mv "$GUEST_LOG" "$LOGDIR/$name-died-$n.log"
	done
	if [ -z "$t_del" ]; then
		show_tail "$GUEST_LOG"
		fail "$name: the guest never started sending"
	fi
	expect_line "$GUEST_LOG" '^MVTEST tapdel carrier=1 before' "$name: link was not up at first"
	expect_line "$GUEST_LOG" '^MVTEST tapdel carrier=0 after' "$name: the guest never saw its link go down"
	expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test net_tap_deleted exit=0' "$name: guest test failed"
	expect_line "$GUEST_LOG" '^minivmm: guest powered off' "$name: the guest did not power off"
	expect_rc 0 "minivmm $name"
	# One line, naming the tap, for the whole device; nothing else from the
	# net device (its pairs, reset and poweroff say nothing more).
	expect_count "$GUEST_LOG" '^minivmm: .*tap tap0 is gone' 1 "$name: 'tap is gone' lines"
	expect_count "$GUEST_LOG" "^minivmm: (warning|error): net0" 1 "$name: warnings from the net device"
	expect_no_line "$GUEST_LOG" '^minivmm: (warning|error): (net0-|vhost)' "$name: a pair complained"
	no_sanitizer_report "$GUEST_LOG"
	drops=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^MVTEST tapdel tx_dropped=\([0-9]*\).*/\1/p')
	summary="$summary vhost=$vh: exit 0, 1 log line, guest link down, ${GUEST_SECS}s;"
	note "$name: $(tr -d '\r' <"$GUEST_LOG" | grep -E '^MVTEST tapdel (iperf3|ping)' | tr '\n' ' ') guest tx_dropped=$drops; poweroff $(elapsed "$t_del")s after the delete"
done
pass "tap deleted mid-stream:$summary${retried:+ (re-booted:$retried)}"
