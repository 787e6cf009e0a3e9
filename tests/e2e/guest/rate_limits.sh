#!/bin/sh
# Guest side of the rate-limit scenario (tests/e2e/rate_limits.sh): measures
# what the limits let through, after a ramp that takes the one-time burst:
#   /dev/vda (bw= limit): 1 MiB sequential reads   -> MVTEST rate disk_bw BYTES/s
#   /dev/vdb (iops= limit): 4 KiB random reads      -> MVTEST rate disk_iops IOPS
#   eth0 (bw= limit): iperf3 both ways, 1 stream   -> MVTEST rate net_tx|net_rx BITS/s
status=0
# fio's complaint goes to stderr: stdout is the caller's numbers.
fio_rate() { # fio_rate DEV RW BS: "bytes/s iops" over 5 s after a 2 s ramp
    fio --name=rate --filename="$1" --direct=1 --ioengine=libaio --rw="$2" --bs="$3" --iodepth=8 --size=48M \
        --time_based --ramp_time=2 --runtime=5 --output-format=terse --terse-version=3 >/tmp/rate.out 2>&1 ||
        { tail -n 5 /tmp/rate.out | sed 's/^/MVTEST rate fio: /' >&2; return 1; }
    awk -F';' '/^3;/ { printf "%d %d\n", $7 * 1024, $8 }' /tmp/rate.out
}
if r=$(fio_rate /dev/vda read 1M); then set -- $r; echo "MVTEST rate disk_bw $1"; else status=1; fi
if r=$(fio_rate /dev/vdb randread 4k); then set -- $r; echo "MVTEST rate disk_iops $2"; else status=1; fi

IP=/sbin/ip
$IP link set lo up
$IP link set eth0 up && $IP addr add 10.0.2.2/24 dev eth0 || { echo "MVTEST rate: no eth0"; exit 1; }
i=0
while ! ping -c 1 -W 1 10.0.2.1 >/dev/null 2>&1 && [ $i -lt 10 ]; do i=$((i + 1)); done
# iperf3's receiver figure in bits/s, the first 2 s (the burst) omitted.
bits() {
    iperf3 -c 10.0.2.1 -t 6 -O 2 "$@" 2>&1 | grep -E 'receiver' | tail -n 1 |
        sed -n 's/.* \([0-9.]*\) \([KMG]\)bits\/sec.*/\1 \2/p' |
        awk '{ v = $1; if ($2 == "K") v *= 1e3; if ($2 == "M") v *= 1e6; if ($2 == "G") v *= 1e9; printf "%d", v }'
}
tx=$(bits) rx=$(bits -R)
[ -n "$tx" ] && echo "MVTEST rate net_tx $tx" || status=1
[ -n "$rx" ] && echo "MVTEST rate net_rx $rx" || status=1
exit $status
