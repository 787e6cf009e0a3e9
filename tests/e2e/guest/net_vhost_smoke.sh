#!/bin/sh
# Guest half of net_vhost_smoke: eth0 (virtio-net, 2 queue pairs) gets
# 10.0.2.2/24; ping, iperf3 both ways to the host given as mvhost=IP, per-queue
# counters, then pair 1 off and on again (VQ_PAIRS_SET) and ping from CPU 1.
dev=eth0
host=10.0.2.1
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in mvhost=*) host=${arg#mvhost=} ;; esac
done
if [ ! -d /sys/class/net/$dev ]; then
    echo "MVTEST net: no $dev"
    exit 1
fi
ip addr add 10.0.2.2/24 dev $dev || exit 2
ip link set $dev up || exit 3
ethtool -L $dev combined 2 2>/dev/null
echo "MVTEST net queues=$(ethtool -l $dev 2>/dev/null | awk '/^Current/ { c = 1 } c && /^Combined/ { print $2 }')"

# ping from each CPU: XPS picks the TX queue of the sending CPU
ok=ok
for cpu in 0 1; do
    taskset -c $cpu ping -c 3 -W 5 "$host" >/tmp/ping$cpu.log 2>&1 || { cat /tmp/ping$cpu.log; ok=failed; }
done
echo "MVTEST net ping=$ok"

# summary_mbits LOG: the receiver's SUM line of an iperf3 -P run, in Mbit/s
summary_mbits() {
    awk '/SUM.*receiver/ { for (i = 1; i <= NF; i++) if ($i ~ /bits\/sec/) { v = $(i - 1); u = $i } }
         END { if (u == "Gbits/sec") v *= 1000; if (u == "Kbits/sec") v /= 1000; if (v != "") print v }' "$1"
}
if iperf3 -c "$host" -t 3 -P 4 -f m >/tmp/iperf-tx.log 2>&1; then
    echo "MVTEST net iperf-tx=ok $(summary_mbits /tmp/iperf-tx.log) Mbit/s"
else
    cat /tmp/iperf-tx.log
    echo "MVTEST net iperf-tx=failed"
fi
if iperf3 -c "$host" -t 3 -P 4 -R -f m >/tmp/iperf-rx.log 2>&1; then
    echo "MVTEST net iperf-rx=ok $(summary_mbits /tmp/iperf-rx.log) Mbit/s"
else
    cat /tmp/iperf-rx.log
    echo "MVTEST net iperf-rx=failed"
fi

# queues that carried packets, from the driver's per-queue counters
ethtool -S $dev >/tmp/stats.log 2>&1
used() {
    awk -v k="$1" '$1 ~ "^" k "_queue_[0-9]+_packets:$" && $2 > 0 { n++ } END { print n + 0 }' /tmp/stats.log
}
echo "MVTEST net rx-queues=$(used rx) tx-queues=$(used tx)"
grep -E '_queue_[0-9]+_packets' /tmp/stats.log

# pair 1 off and on: the device stops its backend and starts it again
ethtool -L $dev combined 1 && ethtool -L $dev combined 2 || echo "MVTEST net: ethtool -L failed"
if taskset -c 1 ping -c 3 -W 5 "$host" >/tmp/ping-cycled.log 2>&1; then
    echo "MVTEST net pairs-cycled ping=ok"
else
    cat /tmp/ping-cycled.log
    echo "MVTEST net pairs-cycled ping=failed"
fi
ip link set $dev down
