#!/bin/sh
# Faults on virtio-blk, on each transport:
#  - disk full: the image is a sparse 64 MiB file on a 16 MiB tmpfs. The
#    guest writes until a write fails: it gets an I/O error, minivmm logs
#    one line and keeps serving (what was written reads back, a rewrite of
#    allocated space works), the guest powers off, exit 0.
#  - SIGKILL right after a FLUSH returned: the guest writes pattern B,
#    fsyncs (a FLUSH, counted in the guest's /sys/block/vda/stat), prints a
#    marker; minivmm is SIGKILLed the moment the marker is seen, and B must
#    be in the image.
#  - SIGTERM under heavy writes: after a flushed pattern C, two writers run
#    flat out; SIGTERM must end minivmm with status 143 within 10 s, leave
#    no process behind, and C must be intact.
# The pattern check is tested first on images that lack (part of) the
# pattern, so that it is known to catch a lost write.
# rig-timeout: 900
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD

TRANSPORTS=${BLK_TRANSPORTS:-pci mmio}
CMDLINE="console=ttyS0 panic=-1 quiet"
img=/tmp/fault-blk.img
full=/tmp/fault-blk-full

# The guest writes the same patterns (tests/e2e/guest/blk_*.sh): lines of
# 7-digit numbers from START, cut to MIB MiB.
pat() { seq -w "$1" $(($1 + 600000)) | head -c $(($2 * 1048576)); }
# has_pattern FILE AT_MIB START MIB: FILE holds `pat START MIB` at AT_MIB MiB.
has_pattern() {
	[ "$(dd if="$1" bs=1M skip="$2" count="$4" 2>/dev/null | md5sum | cut -d' ' -f1)" = \
		"$(pat "$3" "$4" | md5sum | cut -d' ' -f1)" ]
}

# ---- the check itself can fail ----
rm -f $img
truncate -s 64M $img
has_pattern $img 8 2000000 4 && fail "pattern check passes on an empty image: it could not see a lost write"
pat 2000000 4 >/tmp/fault-blk-pat
has_pattern /tmp/fault-blk-pat 0 2000000 4 || fail "pattern check fails on the pattern itself"
dd if=/dev/zero of=/tmp/fault-blk-pat bs=4096 seek=700 count=1 conv=notrunc 2>/dev/null
has_pattern /tmp/fault-blk-pat 0 2000000 4 && fail "pattern check misses one lost 4 KiB block"
rm -f /tmp/fault-blk-pat
note "pattern check: fails on an empty image and on one lost 4 KiB block, passes on the pattern"

trap 'umount $full 2>/dev/null; rm -f $img' EXIT
summary=
for tr in $TRANSPORTS; do
	# ---- disk full ----
	mkdir -p $full
	mount -t tmpfs -o size=16m tmpfs $full || fail "cannot mount a 16 MiB tmpfs on $full"
	truncate -s 64M $full/disk.img
	run_guest "blk-full-$tr" --cpus 2 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
		--disk "$full/disk.img,transport=$tr" --cmdline "$CMDLINE mvtest=blk_full"
	expect_line "$GUEST_LOG" '^MVTEST full A written' "$tr: pattern A could not be written"
	expect_line "$GUEST_LOG" '^MVTEST full error at MiB [0-9]+: .*Input/output error' "$tr: the guest saw no I/O error"
	at=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^MVTEST full error at MiB \([0-9]*\).*/\1/p')
	[ "$at" -ge 8 ] && [ "$at" -le 16 ] || fail "$tr: first failed write at MiB $at; the 16 MiB file system fills at 15-16"
	expect_line "$GUEST_LOG" '^MVTEST full A read back md5=([0-9a-f]+) want=\1' "$tr: pattern A did not read back"
	expect_line "$GUEST_LOG" '^MVTEST full rewrite of A ok' "$tr: the device stopped working after the error"
	expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test blk_full exit=0' "$tr: guest test failed"
	expect_rc 0 "minivmm (disk full, $tr)"
	expect_count "$GUEST_LOG" '^minivmm: warning: blk0: write .*No space left on device' 1 "$tr: disk-full warnings"
	expect_count "$GUEST_LOG" '^minivmm: (warning|error):' 1 "$tr: warnings and errors"
	no_sanitizer_report "$GUEST_LOG"
	has_pattern $full/disk.img 0 1000000 1 || fail "$tr: pattern A is not in the image after the disk filled"
	full_secs=$GUEST_SECS
	umount $full || fail "cannot unmount $full"

	# ---- SIGKILL right after a flush ----
	rm -f $img
	truncate -s 64M $img
	start_guest "blk-kill-$tr" --cpus 2 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
		--disk "$img,transport=$tr" --cmdline "$CMDLINE mvtest=blk_kill"
	watch_for '^MVTEST kill flushed' 150 KILL
	wait_guest 10
	expect_line "$GUEST_LOG" '^MVTEST kill flushed flushes=[1-9]' "$tr: no FLUSH reached the device before the marker"
	expect_rc 137 "minivmm (SIGKILL, $tr)"
	has_pattern $img 8 2000000 4 || fail "$tr: flushed pattern B is not in the image after SIGKILL"
	note "$tr: SIGKILL after the flush: pattern B intact"

	# ---- SIGTERM under heavy writes ----
	rm -f $img
	truncate -s 64M $img
	before=" $(pidof minivmm) "   # on a host, other minivmm may run: only ours counts
	start_guest "blk-term-$tr" --cpus 2 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
		--disk "$img,transport=$tr" --cmdline "$CMDLINE mvtest=blk_term"
	if ! watch_for '^MVTEST term heavy' 150; then
		wait_guest 5
		show_tail "$GUEST_LOG"
		fail "$tr: the heavy writes never started"
	fi
	sleep 1
	kill -TERM "$GUEST_PID"
	t_term=$(now)
	wait_guest 30
	term_secs=$(awk -v a="$t_term" -v b="$GUEST_END" 'BEGIN { printf "%.1f", b - a }')
	expect_line "$GUEST_LOG" '^MVTEST term flushed flushes=[1-9]' "$tr: no FLUSH reached the device"
	expect_no_line "$GUEST_LOG" '^MVTEST term: ' "$tr: the writers stopped before SIGTERM"
	expect_rc 143 "minivmm (SIGTERM, $tr)"
	expect_line "$GUEST_LOG" '^minivmm: stopped by signal 15' "$tr: no word of the signal"
	awk -v s="$term_secs" 'BEGIN { exit !(s < 10) }' || fail "$tr: minivmm took ${term_secs}s to exit after SIGTERM"
	for p in $(pidof minivmm); do
		case $before in *" $p "*) ;; *) fail "$tr: a minivmm process ($p) is left after SIGTERM" ;; esac
	done
	expect_no_line "$GUEST_LOG" '^minivmm: (warning|error):' "$tr: minivmm complained while stopping"
	no_sanitizer_report "$GUEST_LOG"
	[ "$(wc -c <$img)" -eq 67108864 ] || fail "$tr: the image changed size"
	has_pattern $img 16 3000000 4 || fail "$tr: flushed pattern C damaged after SIGTERM under load"
	summary="$summary $tr: full ${full_secs}s (IOERR at MiB $at), kill ok, term exit in ${term_secs}s;"
done
pass "disk full, SIGKILL after flush, SIGTERM under load:$summary"
