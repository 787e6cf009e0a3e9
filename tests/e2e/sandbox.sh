#!/bin/sh
# The sandbox in use: a guest with a disk and a 2-pair NIC under
# --user 65534 --group 65534 (nobody; L1 has no passwd file) --chroot DIR and the default --seccomp on, for each
# transport (pci with vhost-net, mmio with worker threads). While the guest
# runs, every thread of minivmm must have the seccomp filter (the control
# thread: 1 filter, the union of all roles; the others, main included: 2,
# their own on top), no capabilities, uid/gid 65534, and the
# chroot as its root; the expected threads (vcpus, blk queue workers, net
# pair threads: workers, or watchers with vhost; the control queue thread)
# must be there.
# The guest's disk and network work, and it powers off with exit 0.
# rig-timeout: 500
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD

root=$(mktemp -d /tmp/minivmm-root.XXXXXX)
chmod 755 "$root"
img=/tmp/sandbox-disk.img
host_tap
trap '$IP link del tap0 2>/dev/null; rm -rf "$root" $img' EXIT

modes="pci:on mmio:off"
[ -c /dev/vhost-net ] || { note "no /dev/vhost-net: pci runs with vhost=off"; modes="pci:off mmio:off"; }
summary=
for m in $modes; do
	tr=${m%:*} vh=${m#*:}
	name=sandbox-$tr
	rm -f $img; truncate -s 16M $img
	log=$LOGDIR/$name.log
	: >"$log"
	note "run $name"
	"$MINIVMM" --cpus 2 --mem 384 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" --console stdio --guest-exit \
		--disk "$img,transport=$tr" --net "tap0,queues=2,vhost=$vh,transport=$tr" \
		--user 65534 --group 65534 --chroot "$root" \
		--cmdline "console=ttyS0 panic=-1 quiet mvtest=sandbox" </dev/null >"$log" 2>&1 &
	pid=$!
	t=0
	while ! grep -q '^MVTEST sandbox inspect' "$log" 2>/dev/null; do
		kill -0 $pid 2>/dev/null || { show_tail "$log"; fail "$name: minivmm exited before the guest got to the check"; }
		[ $t -ge 300 ] && { kill -9 $pid; show_tail "$log"; fail "$name: guest did not reach the check in 300 s"; }
		sleep 1; t=$((t + 1))
	done
	threads=
	for task in /proc/$pid/task/*; do
		comm=$(cat $task/comm)
		case $comm in kvm-*|vhost-*) continue ;; esac   # KVM's and vhost's kernel workers (newer kernels)
X
		filters=$(sed -n 's/^Seccomp_filters:[[:space:]]*//p' $task/status)
		mode=$(sed -n 's/^Seccomp:[[:space:]]*//p' $task/status)
		capeff=$(sed -n 's/^CapEff:[[:space:]]*//p' $task/status)
		capbnd=$(sed -n 's/^CapBnd:[[:space:]]*//p' $task/status)
		uids=$(sed -n 's/^Uid:[[:space:]]*//p' $task/status | tr -s '\t ' ' ')
		want=2; [ "$comm" = control ] && want=1   # the union; every other thread adds its own
		[ "$mode" = 2 ] || fail "$name: thread $comm runs without a seccomp filter (Seccomp: $mode)"
		[ "$filters" = "$want" ] || fail "$name: thread $comm has $filters filters, want $want"
		[ "$capeff" = 0000000000000000 ] && [ "$capbnd" = 0000000000000000 ] ||
			fail "$name: thread $comm keeps capabilities (CapEff $capeff, CapBnd $capbnd)"
		[ "$uids" = "65534 65534 65534 65534" ] || fail "$name: thread $comm has uids $uids"
		threads="$threads $comm"
	done
	[ "$(readlink /proc/$pid/root)" = "$root" ] || fail "$name: root is $(readlink /proc/$pid/root), want $root"
	for want in control vcpu0 vcpu1 blk0-q0 blk0-q1 net0-ctrl; do
		case " $threads " in *" $want "*) ;; *) fail "$name: no thread $want among:$threads" ;; esac
	done
	# net0-qpN: the pair's worker, or with vhost the pair's watcher thread
	for want in net0-qp0 net0-qp1; do
		case " $threads " in *" $want "*) ;; *) fail "$name: no thread $want among:$threads" ;; esac
	done
	note "$name threads:$threads"
	wait $pid
	rc=$?
	[ $rc = 0 ] || { show_tail "$log"; fail "$name: minivmm exited $rc, want 0"; }
	for l in 'disk ok' 'ping cpu0 ok' 'ping cpu1 ok' 'one pair ok' 'done'; do
		expect_line "$log" "^MVTEST sandbox $l" "$name: guest did not report '$l'"
	done
	expect_no_line "$log" 'seccomp' "$name: a seccomp message"
	summary="$summary $tr/vhost=$vh:$(echo $threads | wc -w) threads"
done
pass "every thread filtered, no capabilities, uid 65534, chrooted; disk and 2-pair net work;$summary"
