#!/bin/sh
# Benchmark (rig scenario, not a pass/fail test): snapshot and restore against
# a cold boot, and against QEMU's migration to a file and -incoming, in one L1.
# The guest (Debian kernel, initramfs, 1 vCPU, 256 MiB, no disk or NIC: QEMU
# microvm migrates those too, but the figure is the VMMs' own work) writes
# boot marker 42 to the guest port every 5 ms once it is up (mvtest=snapbench
# mvmark_ms=5; every 2 ms, L1 wedged twice in a row: issue 12); marktime times
# each VMM from exec to the second marker it sees (a stray write of the same
# byte early in a boot was seen once; both VMMs pay the one period for it):
#   - cold boot: to the guest marking;
#   - restore: to the guest marking again after the restore, i.e. running (minivmm: --restore, memory mapped and copied; QEMU: -incoming
#     "exec:cat FILE" from its "migrate" to a file);
#   - snapshot: minivmm's "ctl snapshot" of the paused VM (wall), QEMU's
#     migration to a file ("info migrate" total time: QEMU migrates a running
#     VM and stops it for the last pass; one paused before stays paused after
#     -incoming), and the files' sizes (apparent, and what the memory file takes on disk: it is sparse);
#   - memory: summed PSS of $BENCH_CLONES (10; 0: skipped) minivmm VMs
#     restored from one snapshot, and of as many cold-booted ones, each at its
#     first marker.
# Run with:
#   tests/rig/rig.sh --with-qemu --scenario-dir tests/bench/rig restore_compare
# rig-timeout: 2400
# rig-needs: qemu
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"
. "$(dirname "$0")/bench.inc"

need_minivmm
need_qemu
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
[ -n "$MARKTIME" ] && [ -x "$MARKTIME" ] || skip "marktime helper missing (${MARKTIME:-MARKTIME unset})"
RUNS=${BENCH_RUNS:-3}
CLONES=${BENCH_CLONES:-10}
CMDLINE="console=ttyS0 panic=-1 mvtest=snapbench mvmark_ms=5"
MV_MARK="boot marker 42 "
Q_MARK="*"   # byte 42, as QEMU's debugcon writes it
export MINIVMM_BOOT_MARKERS=1

d=$(mktemp -d /tmp/restore.XXXXXX) || fail "cannot make a directory in /tmp"
chmod 777 "$d"   # minivmm runs as nobody: it removes its socket
trap 'pkill -TERM -f "$d" 2>/dev/null; sleep 1; rm -rf "$d"' EXIT
sock=$d/vm.sock
MV_BOOT="--cpus 1 --mem 256 --kernel $DEBIAN_KERNEL --initrd $GUEST_INITRD"
Q_ARGS="-enable-kvm -M microvm -cpu host -smp 1 -m 256 -nographic -no-reboot -kernel $DEBIAN_KERNEL
	-initrd $GUEST_INITRD -device isa-debugcon,iobase=0x4f1,chardev=mark"

hires() { awk '{ printf "%.3f", $1 }' /proc/uptime; }   # same clock as now(), 3 decimals for awk
secs_since() { awk -v a="$1" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { printf "%.2f", b - a }'; }

# wait_ms FILE PID WHAT [LOG]: wait until marktime (PID) printed its time into
# FILE (and, with LOG, until the guest said on its console that it marks: the
# snapshot is taken in that state).
wait_ms() {
	while [ ! -s "$1" ] || { [ -n "${4:-}" ] && ! grep -q 'MVTEST snapbench marking' "$4"; }; do
		kill -0 "$2" 2>/dev/null || fail "$3: ended before its marker (see its log)"
		sleep 0.1
	done
}

# child_of PID: marktime's one child, the VMM.
child_of() { cat "/proc/$1/task/$1/children" 2>/dev/null | awk '{ print $1 }'; }
pss_kib() { awk '/^Pss:/ { print $2 }' "/proc/$1/smaps_rollup"; }

# qmon CMD: one HMP command to the QEMU whose monitor is $d/mon.
qmon() { echo "$*" >"$d/mon.in"; }

mv_boot= mv_map= mv_copy= mv_snap= q_boot= q_rest= q_snap=
i=0
while [ $i -lt "$RUNS" ]; do
	# minivmm: cold boot to the marker, pause, snapshot, stop; restore twice.
	rm -rf "$d/snap"
	"$MARKTIME" --count 2 "$LOGDIR/mv-boot-$i.log" "$MV_MARK" -- "$MINIVMM" $MV_BOOT --cmdline "$CMDLINE" \
		--api-sock "$sock" >"$d/ms" &
	mt=$!
	wait_ms "$d/ms" $mt "minivmm cold boot $i" "$LOGDIR/mv-boot-$i.log"
	mv_boot="$mv_boot $(cat "$d/ms")"
	"$MINIVMM" ctl "$sock" pause >/dev/null || fail "pause failed"
	t0=$(hires)
	"$MINIVMM" ctl "$sock" snapshot "$d/snap" >/dev/null || fail "snapshot failed"
	mv_snap="$mv_snap $(secs_since "$t0")"
	"$MINIVMM" ctl "$sock" stop >/dev/null
	wait $mt || fail "minivmm cold boot $i: marktime failed"
	sync
	"$MARKTIME" --stop --timeout 120 --count 2 "$LOGDIR/mv-restore-$i.log" "$MV_MARK" -- "$MINIVMM" --restore "$d/snap" >"$d/ms" \
		|| fail "minivmm restore $i (map): no marker"
	mv_map="$mv_map $(cat "$d/ms")"
	"$MARKTIME" --stop --timeout 120 --count 2 "$LOGDIR/mv-restore-copy-$i.log" "$MV_MARK" -- "$MINIVMM" --restore "$d/snap" \
		--restore-mem copy >"$d/ms" || fail "minivmm restore $i (copy): no marker"
	mv_copy="$mv_copy $(cat "$d/ms")"

	# QEMU microvm: the same guest; migrate to a file, quit; -incoming from it.
	rm -f "$d/q.mig" "$d/mon.in" "$d/mon.out"
	mkfifo "$d/mon.in" "$d/mon.out" || fail "mkfifo"
	"$MARKTIME" --count 2 --watch "$d/q.mark" "$LOGDIR/q-boot-$i.log" "$Q_MARK" -- "$QEMU" $Q_ARGS -append "$CMDLINE" \
		-chardev "file,id=mark,path=$d/q.mark" -monitor "pipe:$d/mon" >"$d/ms" &
	mt=$!
	cat "$d/mon.out" >"$LOGDIR/q-monitor-$i.log" &
	cat_pid=$!
	wait_ms "$d/ms" $mt "QEMU cold boot $i" "$LOGDIR/q-boot-$i.log"
	q_boot="$q_boot $(cat "$d/ms")"
	# Not stopped first: QEMU keeps a VM that was paused at migration paused
	# after -incoming too. "migrate" stops it itself for its last pass.
	qmon "migrate \"exec:cat >$d/q.mig\""
	n=0
	until grep -q 'Migration status: completed' "$LOGDIR/q-monitor-$i.log"; do
		grep -q 'Migration status: failed' "$LOGDIR/q-monitor-$i.log" && fail "QEMU migration failed (q-monitor-$i.log)"
		[ $n -lt 600 ] || fail "QEMU migration did not complete in 60 s (q-monitor-$i.log)"
		qmon "info migrate"
		sleep 0.1
		n=$((n + 1))
	done
	q_snap="$q_snap $(tr -d '\r' <"$LOGDIR/q-monitor-$i.log" | sed -n 's/^total time: \([0-9]*\) ms.*/\1/p' | tail -n 1 | awk '{ printf "%.2f", $1 / 1000 }')"
	qmon quit
	wait $mt
	kill $cat_pid 2>/dev/null
	"$MARKTIME" --stop --timeout 120 --count 2 --watch "$d/q.mark" "$LOGDIR/q-restore-$i.log" "$Q_MARK" -- "$QEMU" $Q_ARGS \
		-append "$CMDLINE" -chardev "file,id=mark,path=$d/q.mark" -incoming "exec:cat $d/q.mig" >"$d/ms" \
		|| { ls -l "$d"; od -c "$d/q.mark" | head -n 5; fail "QEMU restore $i: no marker (q-restore-$i.log)"; }
	q_rest="$q_rest $(cat "$d/ms")"
	i=$((i + 1))
done
mem_apparent=$(($(wc -c <"$d/snap/memory") / 1024))
mem_disk=$(du -k "$d/snap/memory" | cut -f1)
state_size=$(wc -c <"$d/snap/state")
q_size=$(($(wc -c <"$d/q.mig") / 1024))

# Memory: CLONES VMs at once, each summed at its first marker.
# many_vms KIND CMD...: starts CLONES of CMD under marktime, waits for every
# marker, prints the summed PSS of the VMMs in KiB, stops them.
many_vms() {
	_kind=$1; shift
	_pids=
	_j=0
	while [ $_j -lt "$CLONES" ]; do
		"$MARKTIME" --timeout 1200 --count 2 "$LOGDIR/$_kind-$_j.log" "$MV_MARK" -- "$@" >"$d/$_kind-$_j.ms" &
		_pids="$_pids $!"
		_j=$((_j + 1))
	done
	_j=0
	for _p in $_pids; do
		wait_ms "$d/$_kind-$_j.ms" "$_p" "$_kind $_j"
		_j=$((_j + 1))
	done
	_sum=0
	for _p in $_pids; do
		_c=$(child_of "$_p")
		[ -n "$_c" ] || fail "$_kind: no VMM under marktime $_p"
		_sum=$((_sum + $(pss_kib "$_c")))
	done
	for _p in $_pids; do kill -TERM "$(child_of "$_p")" 2>/dev/null; done
	for _p in $_pids; do wait "$_p"; done
	echo "$_sum"
}
pss_clones=0 pss_cold=0
[ "$CLONES" -gt 0 ] && pss_clones=$(many_vms clone "$MINIVMM" --restore "$d/snap" --console none)
# Cold boots mark every 50 ms instead of 5: ten guests marking at 200 Hz would
# slow the ones still booting, and the period changes nothing in memory.
[ "$CLONES" -gt 0 ] && pss_cold=$(many_vms cold "$MINIVMM" $MV_BOOT --console none --cmdline "${CMDLINE% *} mvmark_ms=50")

r() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", a / b }'; }
mb=$(median $mv_boot); mm=$(median $mv_map); mc=$(median $mv_copy); ms=$(median $mv_snap)
qb=$(median $q_boot); qr=$(median $q_rest); qs=$(median $q_snap)
{
	echo "restore benchmark in L1 (TCG-emulated SVM; absolute times are emulator speed), $RUNS runs each, medians"
	echo "  minivmm cold boot to marker: $mb ms (runs:$mv_boot)"
	echo "  minivmm restore (map) to marker: $mm ms (runs:$mv_map)"
	echo "  minivmm restore (copy) to marker: $mc ms (runs:$mv_copy)"
	echo "  qemu microvm cold boot to marker: $qb ms (runs:$q_boot)"
	echo "  qemu microvm -incoming to marker: $qr ms (runs:$q_rest)"
	echo "  ratio restore(map)/cold boot, minivmm: $(r "$mm" "$mb") (1/$(r "$mb" "$mm"))"
	echo "  ratio restore(copy)/cold boot, minivmm: $(r "$mc" "$mb")"
	echo "  ratio minivmm restore(map)/qemu restore: $(r "$mm" "$qr")"
	echo "  ratio minivmm restore(copy)/qemu restore: $(r "$mc" "$qr")"
	echo "  snapshot of the 256 MiB guest: minivmm $ms s (runs:$mv_snap), qemu migrate to file $qs s (runs:$q_snap), ratio $(r "$ms" "$qs")"
	echo "  snapshot files: minivmm memory $mem_apparent KiB apparent, $mem_disk KiB on disk, state $state_size bytes; qemu migration file $q_size KiB"
	[ "$CLONES" -gt 0 ] && echo "  PSS of $CLONES VMMs at their first marker: restored clones $pss_clones KiB, cold boots $pss_cold KiB, ratio $(r "$pss_clones" "$pss_cold")"
} | tee "$LOGDIR/restore_compare.txt"
pass "restore/cold boot $(r "$mm" "$mb"), minivmm/qemu restore $(r "$mm" "$qr")$([ "$CLONES" -gt 0 ] && echo ", PSS clones/cold $(r "$pss_clones" "$pss_cold")") (see restore_compare.txt)"
