#!/bin/sh
# Network payloads end to end (net_iperf only measures them): a 4-vCPU guest
# with --net tap0,queues=4 sends 4 TCP streams of random bytes to the host
# side of tap0, one from each CPU so that each leaves on its own TX queue,
# then receives 4 from it. Every stream must arrive whole: the same size and
# md5 on both sides. Every one of the 4 queue pairs must carry packets and
# the guest must power off cleanly. For vhost=off (on virtio-pci) and
# vhost=on (on virtio-mmio); NET_TRANSPORTS="pci mmio" runs each backend on
# both. NET_VERIFY_MB: MiB each way per guest, over
# the 4 streams (default 32). The streams are busybox nc (see
# tests/e2e/guest/net_verify.sh): the guest connects, the host listens on
# ports 5310-5313 (guest->host) and 5320-5323 (host->guest).
# rig-timeout: 900
# rig-last: heavy I/O, where the rig's L1 has died most: run after the others
# Before lib.sh (its default is 120 s): a guest here moves 2 x NET_VERIFY_MB MiB.
NET_VERIFY_MB=${NET_VERIFY_MB:-32}
GUEST_TIMEOUT=${GUEST_TIMEOUT:-$((180 + 3 * NET_VERIFY_MB))}
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
# busybox's nc by name: a Debian host's nc (openbsd, traditional) differs.
busybox --list 2>/dev/null | grep -qx nc || skip "busybox nc missing on the host side"
host_tap

mb=$NET_VERIFY_MB
per=$((mb * 1048576 / 4))
mem=$((448 + 2 * mb))   # the guest keeps a direction's streams in its tmpfs
VHOSTS=${NET_VHOST_MODES:-off on}
if [ ! -c /dev/vhost-net ]; then
	case " $VHOSTS " in *" on "*) note "no /dev/vhost-net here: vhost=on not run" ;; esac
	VHOSTS=$(echo "$VHOSTS" | tr ' ' '\n' | grep -vx on | tr '\n' ' ')
	[ -n "$VHOSTS" ] || skip "no /dev/vhost-net for vhost=on"
fi

dir=$(mktemp -d /tmp/net-verify.XXXXXX) || fail "cannot make a directory in /tmp"
listeners=
trap 'listeners_stop; rm -rf "$dir"; $IP link del tap0 2>/dev/null' EXIT

md5() { md5sum <"$1" | cut -d' ' -f1; }
size() { echo $(($(wc -c <"$1"))); }

# The host's streams: random bytes, the same for every guest.
t0=$(now)
for n in 0 1 2 3; do
	head -c $per /dev/urandom >"$dir/tx.$n"
	[ "$(size "$dir/tx.$n")" = $per ] || fail "cannot write $per random bytes to $dir/tx.$n"
	md5 "$dir/tx.$n" >"$dir/tx.$n.md5"
done
note "host streams: 4 x $per random bytes, md5 taken, in $(elapsed "$t0")s"

# The ports in /proc/net/tcp's hex, and how many of them something listens on.
ports=
for n in 0 1 2 3; do ports="$ports $(printf '%04X %04X' $((5310 + n)) $((5320 + n)))"; done
listening() {
	cat /proc/net/tcp /proc/net/tcp6 2>/dev/null | awk -v want="$ports " '$4 == "0A" {
		p = substr($2, length($2) - 3)
		if (index(want, " " p " ") && !(p in seen)) { seen[p] = 1; n++ }
	} END { print n + 0 }'
}

# listeners_start: a fresh busybox nc for each port, this shell's children
# ($listeners: PID:PORT ...); the accept times out with the guest. Port
# 5310+N saves what it gets to rx.N, 5320+N sends tx.N (-e: cat writes it
# and ends, which closes the socket; see the guest side on why not <tx.N).
listeners_start() {
	listeners_stop
	[ "$(listening)" = 0 ] || fail "TCP ports 5310-5313/5320-5323 already taken on the host side"
	for n in 0 1 2 3; do
		rm -f "$dir/rx.$n"
		busybox nc -w "$GUEST_TIMEOUT" -l -p $((5310 + n)) </dev/null >"$dir/rx.$n" 2>"$dir/rx.$n.err" &
		listeners="$listeners $!:$((5310 + n))"
		busybox nc -w "$GUEST_TIMEOUT" -l -p $((5320 + n)) -e cat "$dir/tx.$n" </dev/null >/dev/null 2>"$dir/tx.$n.err" &
		listeners="$listeners $!:$((5320 + n))"
	done
	_i=0
	while [ "$(listening)" -lt 8 ]; do
		_i=$((_i + 1))
		[ $_i -le 50 ] || fail "the nc listeners did not start: $(cat "$dir"/*.err | tr '\n' ' ')"
		sleep 0.1
	done
}

# listeners_stop: kill (busybox has no pkill: by pid) and reap them.
listeners_stop() {
	for _l in $listeners; do kill "${_l%%:*}" 2>/dev/null; done
	for _l in $listeners; do wait "${_l%%:*}" 2>/dev/null; done
	listeners=
}

# listeners_end: once the guest is gone, every listener should be done:
# waits up to 5 s for them, then stops the rest; $stuck says whose ports.
running() { _st=$(cut -d' ' -f3 /proc/"$1"/stat 2>/dev/null) && [ -n "$_st" ] && [ "$_st" != Z ]; }
listeners_end() {
	_i=0
	while :; do
		stuck=
		for _l in $listeners; do running "${_l%%:*}" && stuck="$stuck ${_l#*:}"; done
		if [ -z "$stuck" ] || [ $_i -ge 25 ]; then break; fi
		_i=$((_i + 1))
		sleep 0.2
	done
	listeners_stop
}

# check NAME: the guest's lines in $GUEST_LOG against the host's streams;
# fails with every difference; sets q (the queues' rx/tx packets), out, in.
check() {
	log=$(tr -d '\r' <"$GUEST_LOG")
	echo "$log" | grep '^MVTEST netv' | sed "s/^/[$SCENARIO] $1: /"
	bad=
	for n in 0 1 2 3; do
		g=$(echo "$log" | sed -n "s/^MVTEST netv sent $n: \([0-9]* bytes md5 [0-9a-f]*\).*/\1/p" | tail -n 1)
		h="$(size "$dir/rx.$n") bytes md5 $(md5 "$dir/rx.$n")"
		[ "$g" = "$h" ] || bad="$bad; guest->host stream $n: guest sent ${g:-?}, host got $h"
		g=$(echo "$log" | sed -n "s/^MVTEST netv received $n: \([0-9]* bytes md5 [0-9a-f]*\).*/\1/p" | tail -n 1)
		h="$per bytes md5 $(cat "$dir/tx.$n.md5")"
		[ "$g" = "$h" ] || bad="$bad; host->guest stream $n: host sent $h, guest got ${g:-?}"
	done
	q=
	for i in 0 1 2 3; do
		r=$(echo "$log" | sed -n "s/^MVTEST netv stat rx_queue_${i}_packets: *\([0-9]*\).*/\1/p" | tail -n 1)
		t=$(echo "$log" | sed -n "s/^MVTEST netv stat tx_queue_${i}_packets: *\([0-9]*\).*/\1/p" | tail -n 1)
		[ "${r:-0}" -gt 0 ] && [ "${t:-0}" -gt 0 ] || bad="$bad; queue pair $i carried rx=${r:-none} tx=${t:-none} packets"
		q="$q ${r:-?}/${t:-?}"
	done
	errs=$(echo "$log" | sed -n 's/^MVTEST netv error: //p' | tr '\n' ';')
	[ -z "$errs" ] || bad="$bad; the guest said: ${errs%;}"
	[ -z "$stuck" ] || bad="$bad; host listeners on ports$stuck never finished"
	if [ -n "$bad" ]; then
		show_tail "$GUEST_LOG"
		case $GUEST_RC in
		0) how= ;;
		124) how="the guest timed out after ${GUEST_TIMEOUT}s; " ;;
		*) how="minivmm exited $GUEST_RC; " ;;
		esac
		echo "$log" | grep -q '^MVTEST netv cpus:' ||
			fail "$1: ${how}the guest test never started${errs:+ (the guest said: ${errs%;})}"
		fail "$1: $how${bad#; }"
	fi
	expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test net_verify exit=0' "$1: the guest test did not finish"
	expect_rc 0 "minivmm $1"
	expect_line "$GUEST_LOG" '^minivmm: guest powered off' "$1: the guest did not power off"
	out=$(echo "$log" | sed -n 's/^MVTEST netv tx done: [0-9]* bytes in \([0-9.]* s ([0-9.]* Mbit\/s)\).*/\1/p' | tail -n 1)
	in=$(echo "$log" | sed -n 's/^MVTEST netv rx done: [0-9]* bytes in \([0-9.]* s ([0-9.]* Mbit\/s)\).*/\1/p' | tail -n 1)
}

summary=
table="mode        transport  guest->host             host->guest             run     queues (rx/tx packets)"
for vh in $VHOSTS; do
	# Each backend on one transport by default (the CI's time budget):
	# workers on pci, vhost-net on mmio; NET_TRANSPORTS="pci mmio" for all four.
	trs=${NET_TRANSPORTS:-}
	[ -n "$trs" ] || { [ "$vh" = off ] && trs=pci || trs=mmio; }
	for tr in $trs; do
		name="netv-$vh-$tr"
		boot() {
			listeners_start
			run_guest "$1" --cpus 4 --mem $mem --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
				--net "tap0,queues=4,vhost=$vh,transport=$tr" \
				--cmdline "console=ttyS0 panic=-1 quiet mvtest=net_verify netv_mb=$mb"
			listeners_end
		}
		# No re-boot: a guest that dies here is a failure (issue 12).
		boot "$name"
		check "$name"
		table="$table
vhost=$(printf '%-5s' "$vh") $(printf '%-10s' "$tr") $(printf '%-23s' "$out") $(printf '%-23s' "$in") $(printf '%-7s' "${GUEST_SECS}s")$q"
		summary="$summary vhost=$vh/$tr 2x$((4 * per)) bytes verified, out ${out%% (*}, in ${in%% (*}, run ${GUEST_SECS} s;"
	done
done
echo "$table" | tee "$LOGDIR/net_verify.txt"
pass "4+4 TCP streams of $per random bytes arrived whole (size and md5 on both sides), all 4 queue pairs carried packets:${summary%;}"
