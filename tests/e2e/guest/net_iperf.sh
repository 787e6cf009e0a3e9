#!/bin/sh
# Guest side of the CI smoke test: bring eth0 up, iperf3 -P 4 to the iperf3
# server on the host side of the tap, both directions, then print how many
# packets each queue pair carried; turns pairs 1-3 off and on again and pings
# from CPU 3. (/sbin/ip: iproute2's, not busybox's.)
IP=/sbin/ip
$IP link set lo up
$IP link set eth0 up || { echo "MVTEST net: no eth0"; exit 1; }
$IP addr add 10.0.2.2/24 dev eth0
echo "MVTEST net channels: $(ethtool -l eth0 2>/dev/null | sed -n '/Current/,$p' | grep -i combined)"
secs=${IPERF_SECS:-3}
sum() { grep -E '\[SUM\].*receiver' | tail -n 1 | sed 's/.* \([0-9.]*\) \([KMG]\)bits\/sec.*/\1 \2bit\/s/'; }
i=0
while ! ping -c 1 -W 1 10.0.2.1 >/dev/null 2>&1 && [ $i -lt 10 ]; do i=$((i + 1)); done
# Traffic from every CPU: XPS maps each CPU to its own TX queue, and tun
# sends the replies back on the queue the flow came from, so every pair is
# used whatever CPUs the iperf3 streams land on.
for cpu in 0 1 2 3; do
    taskset -c $cpu ping -c 3 -W 5 10.0.2.1 >/dev/null 2>&1 || echo "MVTEST net ping from cpu $cpu failed"
done
echo "MVTEST net tx: $(iperf3 -c 10.0.2.1 -P 4 -t "$secs" 2>&1 | sum)"
echo "MVTEST net rx: $(iperf3 -c 10.0.2.1 -P 4 -t "$secs" -R 2>&1 | sum)"
ethtool -S eth0 | grep -E '^ *(rx|tx)_queue_[0-9]+_packets' | sed 's/^ */MVTEST net stat /'
# Pairs 1-3 off and on again (VQ_PAIRS_SET: the device stops their backends,
# vhost-net or workers, and starts them again from where the rings are),
# then traffic from the last CPU, whose TX queue is one of those.
if ethtool -L eth0 combined 1 && ethtool -L eth0 combined 4 &&
    taskset -c 3 ping -c 3 -W 5 10.0.2.1 >/tmp/ping-cycled.log 2>&1; then
    echo "MVTEST net pairs-cycled ping=ok"
else
    cat /tmp/ping-cycled.log
    echo "MVTEST net pairs-cycled ping=failed"
fi
