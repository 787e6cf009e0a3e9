#!/bin/sh
# Snapshot and restore of a real Linux guest, on both transports and both
# network backends (SNAP_CASES, default "mmio:off pci:on": virtio-mmio with
# the worker backend, virtio-pci with vhost-net): a 2-vCPU guest with a disk
# and a NIC writes a file, counts on its console and waits; it is paused for
# SNAP_PAUSE_S seconds (30) and resumed (no lockup or stall report may
# follow), paused again, snapshotted through the control socket and stopped.
# Restored, it must go on counting where it was, read its file back whole,
# have every CPU online, sleep 1 s in about 1 s, run iperf3 and power off
# with exit 0. Then three clones restored at once from one snapshot, each on
# its own tap in its own network namespace, each answering a ping and
# powering off.
# rig-timeout: 900
GUEST_TIMEOUT=${GUEST_TIMEOUT:-240}
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
busybox --list 2>/dev/null | grep -qx nc || skip "busybox nc missing on the host side"
host_tap --iperf
CASES=${SNAP_CASES:-mmio:off pci:on}
PAUSE_S=${SNAP_PAUSE_S:-30}
if [ ! -c /dev/vhost-net ]; then
	note "no /dev/vhost-net: the vhost=on cases run with vhost=off"
	CASES=$(echo "$CASES" | sed 's/:on/:off/g')
fi

dir=$(mktemp -d /tmp/snapshot.XXXXXX) || fail "cannot make a directory in /tmp"
chmod 777 "$dir"   # minivmm runs as nobody: it removes its socket
go_pid=
trap 'kill $go_pid 2>/dev/null; iperf_server_stop; $IP link del tap0 2>/dev/null; rm -rf "$dir"' EXIT
sock=$dir/vm.sock
ctl() { "$MINIVMM" ctl "$sock" "$@" 2>&1; }
# go_start: one listener that answers "go" to the one guest that asks; $go_pid is
# nc itself, so go_stop leaves nothing behind. (A loop in a subshell, killed,
# left its nc listening: the next case's guest got "go" before its snapshot.)
echo go >"$dir/go"
go_start() { busybox nc -l -p 5400 <"$dir/go" >/dev/null 2>&1 & go_pid=$!; }
go_stop() { kill $go_pid 2>/dev/null; wait $go_pid 2>/dev/null; go_pid=; }
line() { tr -d '\r' <"$GUEST_LOG" | sed -n "s/^MVTEST snap $1 *//p" | tail -n 1; }
summary=
for c in $CASES; do
	tr=${c%%:*} vh=${c#*:}
	name=$tr-vhost$vh
	rm -rf "$dir/snap"
	truncate -s 64M "$dir/disk.img"
	start_guest "$name" --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" --cpus 2 --mem 256 \
		--disk "$dir/disk.img,transport=$tr" --net "tap0,transport=$tr,vhost=$vh" --api-sock "$sock" \
		--cmdline "console=ttyS0 panic=-1 mvtest=snapshot"
	watch_for '^MVTEST snap ready' 180 || { wait_guest 10; show_tail "$GUEST_LOG"; fail "$name: the guest never got ready"; }
	md5=$(line "file md5")
	if [ -z "$summary" ]; then   # the long pause once: it costs its length
		out=$(ctl pause) || fail "$name: pause: $out"
		sleep "$PAUSE_S"
		out=$(ctl resume) || fail "$name: resume: $out"
		sleep 3
		summary=" paused ${PAUSE_S}s and resumed ($name);"
	fi
	out=$(ctl pause) || fail "$name: second pause: $out"
	before=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^MVTEST snap count //p' | tail -n 1)
	t0=$(now)
	out=$(ctl snapshot "$dir/snap") || fail "$name: snapshot: $out"
	snap_s=$(elapsed "$t0")
	note "$name: snapshot in ${snap_s}s: $out; at count $before"
	cp "$dir/disk.img" "$dir/disk-at-snap.img"   # the clones' disks: as the snapshot's guest left it
	out=$(ctl stop) || fail "$name: stop: $out"
	wait_guest 30
	expect_rc 0 "$name: the snapshotted VM after stop"
	expect_no_line "$GUEST_LOG" '^MVTEST snap restored' "$name: the guest was told to go on before its snapshot"

	go_start
	start_guest "$name-restored" --restore "$dir/snap" --disk "$dir/disk.img,transport=$tr" \
		--net "tap0,transport=$tr,vhost=$vh" --api-sock "$sock"
	wait_guest "$GUEST_TIMEOUT"
	go_stop
	expect_rc 0 "$name: the restored VM"
	expect_line "$GUEST_LOG" '^MVTEST snap restored' "$name: the restored guest did not go on"
	first=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^MVTEST snap count //p' | head -n 1)
	[ -n "$first" ] && [ "$first" -gt "$before" ] && [ "$first" -le $((before + 2)) ] ||
		fail "$name: the counter was at $before, the restored guest printed $first first"
	after=$(line "file md5 after")
	[ "$after" = "$md5" ] || fail "$name: the file's md5 was $md5 before, $after after restore"
	[ "$(line online)" = 0-1 ] || fail "$name: CPUs online after restore: $(line online)"
	s1=$(line sleep1)
	awk -v s="$s1" 'BEGIN { exit !(s >= 0.9 && s <= 1.6) }' || fail "$name: sleep 1 took ${s1}s after restore"
	iperf=$(line iperf)
	[ -n "$iperf" ] || fail "$name: iperf3 did not run after restore"
	expect_no_line "$GUEST_LOG" 'MVTEST snap kernel said' "$name: a lockup or stall report after the pause"
	expect_line "$GUEST_LOG" '^MVTEST snap done' "$name: the guest did not finish"
	summary="$summary $name: snapshot ${snap_s}s, count $before->$first, md5 ok, sleep 1 = ${s1}s, iperf $iperf;"
done

# Three clones of the last snapshot at once, each in its own network
# namespace (the guests all are 10.0.2.2) with its own tap0 there.
if ! $IP netns add mvsnap-probe 2>/dev/null; then
	pass "$summary clones not run: no network namespaces here (ip netns add failed)"
fi
$IP netns del mvsnap-probe
pids=
for k in 1 2 3; do
	ns=mvsnap$k
	$IP netns add $ns
	$IP netns exec $ns sh -c "ip link set lo up; ip tuntap add tap0 mode tap multi_queue; ip addr add 10.0.2.1/24 dev tap0; ip link set tap0 up"
	cp "$dir/disk-at-snap.img" "$dir/clone$k.img"
	$IP netns exec $ns "$MINIVMM" --console "$LOGDIR/clone$k.log" --guest-exit --restore "$dir/snap" \
		--disk "$dir/clone$k.img,transport=$tr" --net "tap0,transport=$tr,vhost=$vh" \
		--api-sock "$dir/clone$k.sock" </dev/null 2>"$LOGDIR/clone$k.err" &
	pids="$pids $!"
done
ok=0
for k in 1 2 3; do
	i=0
	while [ $i -lt 60 ]; do
		$IP netns exec mvsnap$k ping -c 1 -W 1 10.0.2.2 >/dev/null 2>&1 && { ok=$((ok + 1)); break; }
		i=$((i + 1))
	done
done
# Let them go on: each gets "go" in its namespace and powers off.
gos=
for k in 1 2 3; do
	$IP netns exec mvsnap$k busybox nc -l -p 5400 <"$dir/go" >/dev/null 2>&1 &
	gos="$gos $!"   # ip netns exec runs nc in its own process: this is nc
done
rcs=
for p in $pids; do wait "$p"; rcs="$rcs $?"; done
for g in $gos; do kill "$g" 2>/dev/null; wait "$g" 2>/dev/null; done
for k in 1 2 3; do $IP netns del mvsnap$k; done
[ "$ok" = 3 ] || fail "$summary clones: $ok of 3 answered a ping ($(cat "$LOGDIR"/clone*.err | tr '\n' ' '))"
[ "$rcs" = " 0 0 0" ] || fail "$summary clones: exit statuses$rcs ($(cat "$LOGDIR"/clone*.err | tr '\n' ' '))"
for k in 1 2 3; do
	expect_line "$LOGDIR/clone$k.log" '^MVTEST snap done' "clone $k did not finish"
done
pass "$summary 3 clones at once: each pinged, each powered off with exit 0"
