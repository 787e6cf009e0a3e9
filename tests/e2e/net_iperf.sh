#!/bin/sh
# The CI boot-and-iperf smoke test: a 4-vCPU guest with --net tap0,queues=4
# brings eth0 up and runs iperf3 -P 4 against a server on the host side of
# tap0, both directions; every one of the 4 queue pairs must carry packets,
# turning pairs 1-3 off and on again (ethtool -L, VQ_PAIRS_SET: their
# backends stopped and started from the ring positions) must keep them
# working, and the guest must power off cleanly. For vhost=off and vhost=on,
# over virtio-pci and virtio-mmio; prints a table. With vhost=on minivmm must
# hold one /dev/vhost-net fd per queue pair (pci: vhost signals the MSI-X
# irqfds itself; mmio: the backend forwards interrupts), and log no vhost
# error.
# rig-timeout: 600
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD
host_tap --iperf

VHOSTS=${NET_VHOST_MODES:-off on}
[ -c /dev/vhost-net ] || { note "no /dev/vhost-net here: vhost=on not run"; VHOSTS=off; }
# vhost_fds PID: how many /dev/vhost-net fds minivmm PID holds now.
vhost_fds() {
	n=0
	for f in /proc/"$1"/fd/*; do
		[ "$(readlink "$f" 2>/dev/null)" = /dev/vhost-net ] && n=$((n + 1))
	done
	echo $n
}
watch_pid=
# host_tap's clean-up (the iperf3 server, tap0) and the fd watcher's.
trap '[ -n "$watch_pid" ] && kill "$watch_pid" 2>/dev/null; host_tap_stop' EXIT
retried=
table="mode        transport  tx           rx           queues (rx/tx packets)"
for vh in $VHOSTS; do
	for tr in ${NET_TRANSPORTS:-pci mmio}; do
		name="net-$vh-$tr"
		boot() {
			run_guest "$1" --cpus 4 --mem 512 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
				--net "tap0,queues=4,vhost=$vh,transport=$tr" \
				--cmdline "console=ttyS0 panic=-1 quiet mvtest=net_iperf"
		}
		# The most vhost fds a minivmm process held at one time during the run.
		max_file=$LOGDIR/$name.vhost-fds
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
		boot_retrying "$name"
		kill "$watch_pid" 2>/dev/null
		wait "$watch_pid" 2>/dev/null
		watch_pid=
		expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test net_iperf exit=0' "$name: guest test did not finish"
		expect_rc 0 "minivmm $name"
		expect_no_line "$GUEST_LOG" 'backend failed|vhost-net: ' "$name: a backend error"
		expect_line "$GUEST_LOG" '^MVTEST net pairs-cycled ping=ok' "$name: no traffic from CPU 3 after pairs 1-3 went off and on"
		fds=$(cat "$max_file")
		want=0
		[ "$vh" = on ] && want=4
		[ "$fds" = $want ] || fail "$name: minivmm held at most $fds /dev/vhost-net fds, want $want (one per queue pair with vhost=on)"
		log=$(tr -d '\r' <"$GUEST_LOG")
		tx=$(echo "$log" | sed -n 's/^MVTEST net tx: \(.*\)/\1/p')
		rx=$(echo "$log" | sed -n 's/^MVTEST net rx: \(.*\)/\1/p')
		case $tx in [0-9]*bit/s) ;; *) show_tail "$GUEST_LOG"; fail "$name: no traffic guest->host ($tx)" ;; esac
		case $rx in [0-9]*bit/s) ;; *) show_tail "$GUEST_LOG"; fail "$name: no traffic host->guest ($rx)" ;; esac
		q=
		for i in 0 1 2 3; do
			r=$(echo "$log" | sed -n "s/^MVTEST net stat rx_queue_${i}_packets: *\([0-9]*\).*/\1/p")
			t=$(echo "$log" | sed -n "s/^MVTEST net stat tx_queue_${i}_packets: *\([0-9]*\).*/\1/p")
			[ "${r:-0}" -gt 0 ] && [ "${t:-0}" -gt 0 ] || { show_tail "$GUEST_LOG"; fail "$name: queue pair $i carried rx=${r:-none} tx=${t:-none} packets"; }
			q="$q $r/$t"
		done
		table="$table
vhost=$(printf '%-5s' $vh) $(printf '%-10s' $tr) $(printf '%-12s' "$tx") $(printf '%-12s' "$rx")$q"
	done
done
[ -n "$retried" ] && table="$table
re-booted after the rig killed the guest:$retried"
echo "$table" | tee "$LOGDIR/net_iperf.txt"
pass "iperf3 -P 4 both ways, all 4 queue pairs carried packets, pairs cycled, one vhost fd per pair: $(echo "$table" | grep '^vhost=' | awk '{print $1 "/" $2 " " $3 $4 " " $5 $6}' | tr '\n' ';')${retried:+ (re-booted:$retried)}"
