#!/bin/sh
# Guest side of fault_tap_deleted: traffic to the host over eth0 (iperf3
# UDP out, ping both ways) while the host deletes the tap. The guest must
# stay up, see its link go down (carrier 0), and power off normally.
IP=/sbin/ip
$IP link set eth0 up || { echo "MVTEST tapdel: no eth0"; exit 1; }
$IP addr add 10.0.2.2/24 dev eth0
i=0
while ! ping -c 1 -W 1 10.0.2.1 >/dev/null 2>&1; do
    i=$((i + 1))
    [ $i -lt 15 ] || { echo "MVTEST tapdel: host 10.0.2.1 unreachable"; exit 2; }
done
echo "MVTEST tapdel carrier=$(cat /sys/class/net/eth0/carrier) before"
ping -q -i 0.02 -s 1000 -w 12 10.0.2.1 >/tmp/ping.out 2>&1 &
pingpid=$!
# The host deletes the tap when it sees this line.
echo "MVTEST tapdel sending"
timeout 14 iperf3 -c 10.0.2.1 -u -b 100M -l 1400 -t 8 >/tmp/iperf.out 2>&1
echo "MVTEST tapdel iperf3 exit=$? $(grep -E 'sender|error' /tmp/iperf.out | tail -n 1)"
wait $pingpid
echo "MVTEST tapdel ping: $(grep 'packets transmitted' /tmp/ping.out)"
# The device takes the link down when it finds the tap gone.
i=0
while [ "$(cat /sys/class/net/eth0/carrier)" != 0 ] && [ $i -lt 50 ]; do
    sleep 0.2
    i=$((i + 1))
done
echo "MVTEST tapdel carrier=$(cat /sys/class/net/eth0/carrier) after"
# Sending on a link that is down fails at once; nothing hangs.
ping -c 2 -W 1 10.0.2.1 >/dev/null 2>&1 && echo "MVTEST tapdel: ping still answered"
echo "MVTEST tapdel tx_dropped=$(cat /sys/class/net/eth0/statistics/tx_dropped) done"
