#!/bin/sh
# Guest side of the datapath comparison benchmarks (tests/bench/rig/
# datapath_blk.sh and datapath_net.sh): a fixed list of cells, each between
# "MVTEST dp begin NAME" and "MVTEST dp end NAME" lines, so that the host can
# read KVM's and the VMM's counters at both ends, then one result line:
#   MVTEST dp cell NAME value=V unit=U reqs=R irqs=I
# V: IOPS (4 KiB cells), MB/s (1 MiB cells) or Mbit/s (iperf3); R: requests
# (fio I/Os) or packets (eth0's both ways) in the cell; I: virtio interrupts
# the guest handled in the cell (/proc/interrupts), all CPUs.
# Knobs from the kernel command line: dp=blk|net, dp_secs (per cell, default
# 4), dp_cells=NAME,NAME (only those cells; default all).
secs=${dp_secs:-4}

virtio_irqs() {
    awk '/virtio/ { for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { print s + 0 }' /proc/interrupts
}

# irq_counts: "NAME COUNT" per virtio interrupt line (all CPUs); several
# lines of one name (mmio's "virtio0" on each CPU list) are added up.
irq_counts() {
    awk '/virtio/ { s = 0; for (i = 2; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i; n[$NF] += s }
        END { for (k in n) print k, n[k] }' /proc/interrupts | sort
}

# net_counts: eth0's packets each way.
net_counts() {
    [ -d /sys/class/net/eth0 ] || return 0
    echo "tx_packets $(cat /sys/class/net/eth0/statistics/tx_packets)"
    echo "rx_packets $(cat /sys/class/net/eth0/statistics/rx_packets)"
}

# guest_counts: the guest's own page faults, context switches, CPU time by
# kind (t_*: USER_HZ ticks, all CPUs; t_steal: runnable but not run by the
# host) and network softirqs: what its time per request went to.
guest_counts() {
    awk '$1 == "pgfault" { print "pgfault", $2 }' /proc/vmstat
    awk '$1 == "ctxt" { print "ctxt", $2 }
        $1 == "cpu" { print "t_user", $2 + $3; print "t_sys", $4; print "t_idle", $5 + $6; print "t_irq", $7; print "t_softirq", $8; print "t_steal", $9 }' /proc/stat
    awk '$1 == "NET_RX:" || $1 == "NET_TX:" { s = 0; for (i = 2; i <= NF; i++) s += $i; n = $1; sub(/:/, "", n); print n, s }' /proc/softirqs
    # TCP segments that came out of order (queued until the gap filled) and
    # duplicate ACKs and SACKs this side sent for them (the sender's cue to
    # retransmit)
    awk '$1 == "TcpExt:" { if (!h) { for (i = 2; i <= NF; i++) k[i] = $i; h = 1; next }
        for (i = 2; i <= NF; i++) if (k[i] == "TCPOFOQueue" || k[i] == "TCPOFOMerge" || k[i] == "TCPDSACKOldSent" || k[i] == "TCPDSACKOfoSent") print k[i], $i }' /proc/net/netstat 2>/dev/null
}

# cell NAME CMD...: CMD prints "VALUE UNIT REQS" (or nothing when it failed).
status=0
cell() {
    name=$1; shift
    case ,${dp_cells:-$name}, in
    *,"$name",*) ;;
    *) return ;;
    esac
    i0=$(virtio_irqs)
    { irq_counts; net_counts; guest_counts; } >/tmp/dp-counts0
    echo "MVTEST dp begin $name"
    set -- $("$@")
    echo "MVTEST dp end $name"
    i1=$(virtio_irqs)
    # Where the interrupts and packets went (per queue on pci), for reading
    # the console log: "MVTEST dp detail NAME input.0=N ... tx_packets=N ...
    # pgfault=N ctxt=N NET_RX=N NET_TX=N".
    { irq_counts; net_counts; guest_counts; } | awk -v name="$name" 'NR == FNR { a[$1] = $2; next }
        { d = $2 - a[$1]; if (d) s = s " " $1 "=" d } END { print "MVTEST dp detail " name s }' /tmp/dp-counts0 -
    if [ $# -ne 3 ]; then
        echo "MVTEST dp cell $name FAILED"
        status=1
        return
    fi
    echo "MVTEST dp cell $name value=$1 unit=$2 reqs=$3 irqs=$((i1 - i0))"
}

# fio_cell RW BS QD JOBS: one time-based fio run on /dev/vda (direct I/O,
# libaio), each job on its own 32 MiB slice.
fio_cell() {
    rw=$1 bs=$2 qd=$3 jobs=$4
    out=/tmp/fio-dp.out
    fio --name=dp --filename=/dev/vda --direct=1 --ioengine=libaio --rw="$rw" --bs="$bs" --iodepth="$qd" \
        --numjobs="$jobs" --size=32M --offset_increment=32M --time_based --runtime="$secs" --group_reporting \
        --output-format=terse --terse-version=3 >$out 2>&1 || { tail -n 5 $out | sed 's/^/MVTEST dp fio: /' >&2; return; }
    # terse v3: 6 read KiB, 7 read KiB/s, 8 read IOPS; 47 write KiB, 48 write KiB/s, 49 write IOPS.
    awk -F';' -v bs="$bs" '/^3;/ {
        kib = $6 + $47; kibs = $7 + $48; iops = $8 + $49
        bk = bs; sub(/[kK]$/, "", bk); if (bs ~ /[mM]$/) { bk = bs; sub(/[mM]$/, "", bk); bk *= 1024 }
        bk += 0
        if (bk >= 1024) printf "%.1f MB/s %d\n", kibs * 1024 / 1e6, kib / bk
        else printf "%d IOPS %d\n", iops, kib / bk
    }' $out
}

pkts() { echo $(($(cat /sys/class/net/eth0/statistics/tx_packets) + $(cat /sys/class/net/eth0/statistics/rx_packets))); }

# iperf_cell STREAMS [-R]: iperf3 to the host side of the tap.
iperf_cell() {
    p0=$(pkts)
    iperf3 -c 10.0.2.1 -P "$1" -t "$secs" $2 >/tmp/iperf-dp.out 2>&1
    # Each second's total, for reading the console log (a stall shows).
    echo "MVTEST dp seconds: $(grep -E '^\[SUM\] +[0-9.]+-[0-9.]+ +sec' /tmp/iperf-dp.out | grep -v -e sender -e receiver |
        awk '{ print $6 $7 }' | tr '\n' ' ')" >&2
    mb=$(grep -E 'receiver' /tmp/iperf-dp.out | tail -n 1 |
        sed -n 's/.* \([0-9.]*\) \([KMG]\)bits\/sec.*/\1 \2/p' |
        awk '{ v = $1; if ($2 == "K") v /= 1000; if ($2 == "G") v *= 1000; printf "%.1f", v }')
    [ -n "$mb" ] && echo "$mb Mbit/s $(($(pkts) - p0))"
}

case ${dp:-} in
blk)
    [ -b /dev/vda ] || { echo "MVTEST dp: no /dev/vda"; exit 1; }
    echo "MVTEST dp start: $(nproc) cpus, /dev/vda $(cat /sys/block/vda/size) sectors, ${secs}s a cell"
    for jobs in 1 4; do
        for qd in 1 32; do
            cell "randread-4k-qd$qd-j$jobs" fio_cell randread 4k $qd $jobs
            cell "randwrite-4k-qd$qd-j$jobs" fio_cell randwrite 4k $qd $jobs
        done
        cell "read-1m-qd8-j$jobs" fio_cell read 1M 8 $jobs
        cell "write-1m-qd8-j$jobs" fio_cell write 1M 8 $jobs
    done
    ;;
net)
    IP=/sbin/ip
    $IP link set lo up
    $IP link set eth0 up || { echo "MVTEST dp: no eth0"; exit 1; }
    $IP addr add 10.0.2.2/24 dev eth0
    i=0
    while ! ping -c 1 -W 1 10.0.2.1 >/dev/null 2>&1 && [ $i -lt 10 ]; do i=$((i + 1)); done
    echo "MVTEST dp start: $(nproc) cpus, eth0 $(ethtool -l eth0 2>/dev/null | sed -n '/Current/,$p' | grep -i combined), ${secs}s a cell"
    for p in 1 4; do
        cell "tx-P$p" iperf_cell $p
        cell "rx-P$p" iperf_cell $p -R
    done
    ;;
*)
    echo "MVTEST dp: dp=blk or dp=net on the kernel command line"
    exit 1
    ;;
esac
# The host reads its counters when it sees the last end line: the VM must
# still be there then.
sleep 2
echo "MVTEST dp done status=$status"
exit $status
