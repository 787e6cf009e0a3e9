#!/bin/sh
# The CI boot-and-iperf smoke test: a 4-vCPU guest with --net tap0,queues=4
# brings eth0 up and runs iperf3 -P 4 against a server on the host side of
# tap0, both directions; every one of the 4 queue pairs must carry packets
# and the guest must power off cleanly. For vhost=off and vhost=on, over
# virtio-pci and virtio-mmio; prints a table.
# rig-timeout: 600
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file MINIMAL_KERNEL "guest-images/build.sh minimal-kernel did not give one"
need_file GUEST_INITRD
host_tap --iperf

VHOSTS=${NET_VHOST_MODES:-off on}
[ -c /dev/vhost-net ] || { note "no /dev/vhost-net here: vhost=on not run"; VHOSTS=off; }
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
		boot_retrying "$name"
		expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test net_iperf exit=0' "$name: guest test did not finish"
		expect_rc 0 "minivmm $name"
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
pass "iperf3 -P 4 both ways, all 4 queue pairs carried packets: $(echo "$table" | grep '^vhost=' | awk '{print $1 "/" $2 " " $3 $4 " " $5 $6}' | tr '\n' ';')${retried:+ (re-booted:$retried)}"
