#!/bin/sh
# Verified block load on each transport: a 4-vCPU guest runs fio on a
# 4-queue virtio-blk disk (tests/e2e/guest/blk_fio.sh: 4 jobs of 4 KiB random
# writes at queue depth 16, every block read back and checked with crc32c,
# then random reads and 1 MiB sequential writes; BLK_FIO_SIZE per job,
# default 24M: tests/bench/death_rates.sh runs the 48M of issue 12). Passes only if every phase
# passes and the guest powers off: a guest that dies (triple fault, hang,
# panic) fails the scenario, it is never booted again.
# rig-timeout: 600
# rig-last: heavy I/O, where the rig's L1 has died most: run after the others
GUEST_TIMEOUT=${GUEST_TIMEOUT:-240}   # before lib.sh, which defaults it to 120 (a guest takes 40-60 s)
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
img=/tmp/blk-verify.img
summary=
for tr in ${BLK_TRANSPORTS:-mmio pci}; do
	rm -f $img
	truncate -s 200M $img
	run_guest "blk-verify-$tr" --cpus 4 --mem 512 --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
		--disk "$img,transport=$tr" \
		--cmdline "console=ttyS0 panic=-1 mvtest=blk_fio fio_size=${BLK_FIO_SIZE:-24M} fio_read_secs=5"
	expect_line "$GUEST_LOG" '^MVTEST fio start: 4 cpus' "$tr: fio did not start on 4 CPUs"
	expect_no_line "$GUEST_LOG" 'FAILED|MVTEST fio: ' "$tr: fio failed"
	expect_line "$GUEST_LOG" '^MVTEST fio verify ok' "$tr: the crc32c-verified writes did not complete"
	expect_line "$GUEST_LOG" '^MVTEST fio seqwrite ok' "$tr: the sequential writes did not complete"
	expect_line "$GUEST_LOG" '^MVTEST fio done status=0' "$tr: fio did not finish"
	expect_no_line "$GUEST_LOG" 'guest triple fault|Kernel panic|Oops|BUG: |rcu: INFO: rcu_(preempt|sched) (self-)?detected stall' "$tr: the guest died"
	expect_rc 0 "minivmm ($tr)"
	expect_line "$GUEST_LOG" '^minivmm: guest powered off' "$tr: guest did not power off"
	iops=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^MVTEST fio read ok read_iops=\([0-9]*\).*/\1/p')
	summary="$summary $tr: ${GUEST_SECS}s, ${iops:-?} random-read IOPS;"
done
rm -f $img
pass "4 vCPUs, 4 fio jobs verified with crc32c;$summary"
