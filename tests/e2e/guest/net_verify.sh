#!/bin/sh
# Guest side of net_verify: bring eth0 up, send 4 streams of random bytes to
# the host side of the tap (one per CPU, so that XPS puts each on its own TX
# queue), receive 4 from it, and print the size and md5 of every stream
# ("MVTEST netv sent|received N: BYTES bytes md5 MD5") for the host to
# compare with its own, then the packets each queue pair carried.
# netv_mb=MiB on the kernel command line: bytes each way, over the 4 streams
# (default 32). The host listens: ports 5310+N take stream N from the guest,
# 5320+N send stream N to it.
#
# busybox nc: "nc HOST PORT -e cat FILE" sends FILE and closes the socket
# when cat ends. (Not "nc HOST PORT <FILE": busybox nc exits as soon as the
# other side shuts down its half, and a receiver with nothing to say does
# that at once, cutting the stream short.) /sbin/ip is iproute2's.
IP=/sbin/ip
HOST=10.0.2.1
mb=32
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in netv_mb=*) mb=${arg#netv_mb=} ;; esac
done
per=$((mb * 1048576 / 4))
cpus=$(grep -c '^processor' /proc/cpuinfo)
# Seconds each direction may take: a stream still going then is stuck (the
# host gives the whole run 180 + 3 s per MiB).
limit=$((45 + mb))
status=0
err() { echo "MVTEST netv error: $*"; status=1; }
now() { cut -d' ' -f1 /proc/uptime; }
# rate T0 BYTES: seconds since T0 and Mbit/s.
rate() { awk -v a="$1" -v b="$(now)" -v n="$2" 'BEGIN { s = b - a; if (s <= 0) s = 0.01; printf "%.2f s (%.1f Mbit/s)", s, n * 8 / s / 1e6 }'; }
md5() { md5sum <"$1" | cut -d' ' -f1; }
size() { echo $(($(wc -c <"$1"))); }

$IP link set lo up
$IP link set eth0 up || { echo "MVTEST netv error: no eth0"; exit 1; }
$IP addr add 10.0.2.2/24 dev eth0
echo "MVTEST netv cpus: $cpus, $(ethtool -l eth0 2>/dev/null | sed -n '/Current/,$p' | grep -i combined | tr -s ' \t' ' '), $per bytes per stream"
i=0
while ! ping -c 1 -W 1 $HOST >/dev/null 2>&1 && [ $i -lt 10 ]; do i=$((i + 1)); done

for n in 0 1 2 3; do
    head -c $per /dev/urandom >/tmp/netv-tx.$n || err "cannot write /tmp/netv-tx.$n"
    echo "MVTEST netv sent $n: $(size /tmp/netv-tx.$n) bytes md5 $(md5 /tmp/netv-tx.$n)"
done

# Guest -> host: stream N from CPU N (N mod the CPU count, should there be fewer).
t0=$(now)
pids=
for n in 0 1 2 3; do
    taskset -c $((n % cpus)) timeout $limit nc $HOST $((5310 + n)) -e cat /tmp/netv-tx.$n </dev/null &
    pids="$pids $!"
done
n=0
for p in $pids; do
    wait "$p" || err "guest->host stream $n: nc exited $? (143: still going after ${limit}s)"
    n=$((n + 1))
done
# cat's end only means the rest is in the socket buffers: wait for the host
# to acknowledge it all (the sockets leave FIN_WAIT1, CLOSING and LAST_ACK).
ports=$(printf ':%04X :%04X :%04X :%04X' 5310 5311 5312 5313)
unacked() {
    awk -v want="$ports " '$4 == "04" || $4 == "0B" || $4 == "09" {
        if (index(want, substr($3, length($3) - 4) " ")) n++
    } END { print n + 0 }' /proc/net/tcp
}
i=0
while [ "$(unacked)" != 0 ]; do
    i=$((i + 1))
    [ $i -le $((limit * 10)) ] || { err "guest->host: $(unacked) streams still unacknowledged"; break; }
    sleep 0.1
done
echo "MVTEST netv tx done: $((4 * per)) bytes in $(rate "$t0" $((4 * per)))"
rm -f /tmp/netv-tx.*

# Host -> guest: the receiver on CPU N (its ACKs leave on TX queue N, and
# tun sends a flow's packets back on the queue the flow last came from).
t0=$(now)
pids=
for n in 0 1 2 3; do
    taskset -c $((n % cpus)) timeout $limit nc $HOST $((5320 + n)) </dev/null >/tmp/netv-rx.$n &
    pids="$pids $!"
done
n=0
for p in $pids; do
    wait "$p" || err "host->guest stream $n: nc exited $? (143: still going after ${limit}s)"
    n=$((n + 1))
done
total=0
for n in 0 1 2 3; do total=$((total + $(size /tmp/netv-rx.$n))); done
echo "MVTEST netv rx done: $total bytes in $(rate "$t0" $total)"
for n in 0 1 2 3; do
    echo "MVTEST netv received $n: $(size /tmp/netv-rx.$n) bytes md5 $(md5 /tmp/netv-rx.$n)"
done
rm -f /tmp/netv-rx.*

stats=$(ethtool -S eth0 | grep -E '^ *(rx|tx)_queue_[0-9]+_packets')
echo "$stats" | sed 's/^ */MVTEST netv stat /'
for q in 0 1 2 3; do
    for d in rx tx; do
        c=$(echo "$stats" | sed -n "s/^ *${d}_queue_${q}_packets: *\([0-9]*\).*/\1/p")
        [ "${c:-0}" -gt 0 ] || err "${d}_queue_${q}_packets is ${c:-missing}"
    done
done
exit $status
