#!/bin/sh
# Guest side of the block throughput benchmark: sequential direct-I/O write
# then read of 64 MiB on /dev/vda, timed with /proc/uptime (10 ms steps;
# each transfer takes seconds here).
dev=/dev/vda
[ -b $dev ] || { echo "MVTEST bench: no $dev"; exit 1; }
up() { cut -d' ' -f1 /proc/uptime; }
timed() { # timed KIND dd-args...: prints "MVTEST bench KIND: S s, R MB/s"
    kind=$1; shift
    t0=$(up)
    dd "$@" bs=1M count=64 2>/dev/null || { echo "MVTEST bench $kind: dd failed"; return 1; }
    t1=$(up)
    awk -v k="$kind" -v a="$t0" -v b="$t1" 'BEGIN { s = b - a; if (s <= 0) s = 0.01;
        printf "MVTEST bench %s: %.2f s, %.1fMB/s\n", k, s, 64 / s }'
}
timed write if=/dev/zero of=$dev oflag=direct
timed read if=$dev of=/dev/null iflag=direct
