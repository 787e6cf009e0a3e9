#!/bin/sh
# A hostile guest against both transports and all device kinds: the guest
# program tests/e2e/guest/hostile.c drives a virtio-blk and a virtio-net on
# virtio-mmio and on virtio-pci, and a virtio-vsock, by hand with malformed
# descriptor chains, absurd queue sizes and addresses, notifies of
# unconfigured queues and config accesses out of range; the vsock also with
# packets of no connection, lying headers, absurd credit, a credit overrun
# and a flood while it gives no RX buffer. The guest checks what the spec
# asks of the device (DEVICE_NEEDS_RESET plus a config change notification,
# then a reset makes it usable again; the vsock's packets must cost no reset,
# and it must go on answering); here we check the VMM side: a warning naming
# the device for every case that broke it, exit 0 after the guest's
# poweroff, no sanitizer report (run the rig with MINIVMM=build-asan/minivmm
# for that), and L1 (the host) still fine: its taps are there and its kernel
# log clean. Host side of the vsock: an echo server at its port 5000 for the
# guest's cases that need an open connection, and, while the guest holds its
# host_clients case open, clients of its socket: one that says nothing, one
# that sends garbage, one for a guest port that refuses, one the guest never
# answers, one killed mid-stream, one echoed across all the others.
# iomem=relaxed: Debian's IO_STRICT_DEVMEM refuses to map (through /dev/mem or
# a PCI resource file) an address range a driver holds; the guest program
# maps only devices it unbound, but the PCI BAR stayed refused here without it.
# rig-timeout: 400
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD
command -v ip >/dev/null 2>&1 || skip "ip (iproute2) missing: cannot make the taps"
[ -x "${UDSCAT:-}" ] || skip "udscat helper missing (${UDSCAT:-UDSCAT unset}): no vsock host side"

GUEST_TIMEOUT=${HOSTILE_TIMEOUT:-300}
dmesg >/dev/null 2>&1 || skip "dmesg does not work here: cannot check the host kernel log"
dmesg_before=$(dmesg | wc -l)
for t in hostile0 hostile1; do
	ip link del "$t" 2>/dev/null
	ip tuntap add "$t" mode tap multi_queue || fail "ip tuntap add $t failed"
	ip link set "$t" up || fail "ip link set $t up failed"
done
for i in 0 1; do
	img=/tmp/hostile-disk$i.img
	rm -f $img
	truncate -s 16M $img
	printf 'HOSTILE-DISK-%s' $i | dd of=$img conv=notrunc 2>/dev/null
done

# One vsock per VM, so on one transport: pci (x86's default) unless
# HOSTILE_VSOCK_TRANSPORT=mmio. minivmm runs as nobody: it removes its socket
# from the directory at exit, and connects to the echo server's (umask 0).
vsock_tr=${HOSTILE_VSOCK_TRANSPORT:-pci}
dir=$(mktemp -d /tmp/hostile-vsock.XXXXXX) || fail "cannot make a directory in /tmp"
chmod 777 "$dir"
sock=$dir/v.sock
# SIGPIPE ignored: the device resets a connection under it on purpose.
(trap '' PIPE; umask 0; exec "$UDSCAT" -l "${sock}_5000" 64) >/dev/null 2>"$dir/echo-server.err" &
echo_pid=$!
clients=
feeders=
trap 'kill $echo_pid $clients $feeders 2>/dev/null; rm -rf "$dir"' EXIT

# vsock_client NAME IN CMD...: CMD in the background, stdin from IN (named
# here: an asynchronous list's stdin is /dev/null), its output in
# $dir/NAME.out and .err, "rc=STATUS secs=SECONDS" in $dir/NAME.res at its end.
vsock_client() {
	_c=$1 _in=$2
	shift 2
	(
		_t=$(now)
		"$@" <"$_in" >"$dir/$_c.out" 2>"$dir/$_c.err"
		echo "rc=$? secs=$(elapsed "$_t")" >"$dir/$_c.res"
	) &
	clients="$clients $!"
}

# vsock_feed NAME TEXT...: a FIFO $dir/NAME.in that gives the TEXTs (printf
# %b), 7 s apart, then holds on without an EOF until the clients are done
# ("EOF" as the last TEXT: the EOF instead).
vsock_feed() {
	_f=$dir/$1.in
	shift
	mkfifo "$_f" || fail "mkfifo $_f failed"
	(
		printf '%b' "$1"
		shift
		for _t in "$@"; do
			[ "$_t" = EOF ] && exit 0
			sleep 7
			printf '%b' "$_t"
		done
		exec sleep 60
	) >"$_f" 2>/dev/null &
	feeders="$feeders $!"
}

# The host's clients, while the guest's end (hostile.c, vs_host_clients)
# holds its window open: all at once, then 9999 says we are done. Only the
# device may close the silent and the garbage ones.
vsock_clients() {
	vsock_feed echo 'ping-1\n' 'ping-2\n' EOF
	vsock_feed silent ''
	vsock_feed garbage 'HELLO there\n'
	vsock_client echo "$dir/echo.in" timeout 30 "$UDSCAT" "$sock" 7002
	vsock_client silent "$dir/silent.in" timeout 20 "$UDSCAT" "$sock"
	vsock_client garbage "$dir/garbage.in" timeout 20 "$UDSCAT" "$sock"
	vsock_client refused /dev/null timeout 20 "$UDSCAT" "$sock" 1234
	vsock_client ignored /dev/null timeout 20 "$UDSCAT" "$sock" 1235
	vsock_client cut /dev/zero timeout -s KILL 3 "$UDSCAT" "$sock" 7001
	# shellcheck disable=SC2086  # lists of pids
	wait $clients
	# shellcheck disable=SC2086
	kill $feeders 2>/dev/null
	clients=
	feeders=
	timeout 20 "$UDSCAT" "$sock" 9999 </dev/null >/dev/null 2>&1
}

# vsock_secs NAME LO HI: whether client NAME lived LO to HI seconds.
vsock_secs() {
	sed -n 's/.*secs=//p' "$dir/$1.res" 2>/dev/null | awk -v lo="$2" -v hi="$3" '{ ok = $1 >= lo && $1 <= hi } END { exit !ok }'
}

# Every warning counts here: no rate limit on those the guest causes.
export MINIVMM_GUEST_WARNINGS=all
start_guest hostile --cpus 1 --mem 256 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
	--disk /tmp/hostile-disk0.img,transport=mmio --disk /tmp/hostile-disk1.img,transport=pci \
	--net hostile0,vhost=off,transport=mmio --net hostile1,vhost=off,transport=pci \
	--vsock "cid=3,uds=$sock,transport=$vsock_tr" \
	--cmdline "console=ttyS0 panic=-1 iomem=relaxed mvtest=hostile mvvsockhost=1"
window=
if watch_for 'HOSTILE-VSOCK-WINDOW open' "$GUEST_TIMEOUT"; then
	window=yes
	vsock_clients
fi
wait_guest "$GUEST_TIMEOUT"
log=$GUEST_LOG
secs=$GUEST_SECS

expect_no_line "$log" 'ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|SUMMARY: UndefinedBehaviorSanitizer' \
	"sanitizer report from minivmm"
expect_line "$log" '^MVTEST hostile unbound=5' "the guest did not unbind 5 virtio devices"
expect_line "$log" '^HOSTILE-SUMMARY ' "the hostile program did not finish"
expect_rc 0 "minivmm"
expect_line "$log" 'minivmm: guest powered off' "no clean poweroff"

# Every case passed in the guest; for each (device, expected warning) pair
# minivmm logged at least as many warnings naming the device as cases
# expected one. Names: --disk/--net order, so blk0/net0 are on mmio,
# blk1/net1 on pci; the vsock is vsock0.
tr -d '\r' <"$log" >"$LOGDIR/hostile.clean.log"
report=$(awk '
	/^HOSTILE-CASE / {
		n++
		for (i = 2; i <= NF; i++) { split($i, kv, "="); f[kv[1]] = kv[2] }
		if ($0 !~ / PASS/) { bad = bad " " f["tr"] "-" f["dev"] ":" f["case"]; next }
		p = index($0, " log=")
		if (p) {
			name = f["dev"] == "vsock" ? "vsock0" : f["dev"] (f["tr"] == "mmio" ? 0 : 1)
			want[name SUBSEP substr($0, p + 5)]++
		}
		next
	}
	/minivmm: warning: / { warn[++nw] = substr($0, index($0, "minivmm: warning: ")) }
	END {
		missing = ""
		for (k in want) {
			split(k, nk, SUBSEP)
			got = 0
			for (i = 1; i <= nw; i++)
				if (index(warn[i], nk[1] " ") || index(warn[i], nk[1] ":") || index(warn[i], nk[1] "-"))
					if (index(warn[i], nk[2])) got++
			if (got < want[k]) missing = missing " " nk[1] ":\"" nk[2] "\"(" got "/" want[k] ")"
		}
		printf "cases=%d failed=[%s] missing_warnings=[%s]\n", n, bad, missing
	}' "$LOGDIR/hostile.clean.log")
note "$report"
cases=$(echo "$report" | sed -n 's/^cases=\([0-9]*\).*/\1/p')
[ "${cases:-0}" -ge 196 ] || { show_tail "$log" 60; fail "only ${cases:-0} hostile cases ran (want 196: 26 per disk, 26 on TX and 18 on RX per NIC, 26 on TX, 16 on RX and 14 packet cases on the vsock)"; }
case $report in
*"failed=[]"*) ;;
*) grep '^HOSTILE-CASE .* FAIL' "$LOGDIR/hostile.clean.log" | head -20 >&2; fail "guest-side failures: $report" ;;
esac
case $report in
*"missing_warnings=[]"*) ;;
*) fail "minivmm did not log a warning naming the device: $report" ;;
esac
expect_line "$log" '^MVTEST hostile after rebind disks=2 nics=2 vsocks=1' "devices not usable after the attacks and a rebind"
expect_line "$log" 'MINIVMM-GUEST: test hostile exit=0' "guest test script failed"

# The vsock's host side: each client closed as it should be, the echo whole,
# one warning for each client the device closed; the guest's flood (2000
# packets of no connection) answered, not logged packet by packet.
[ -n "$window" ] || fail "the guest never opened its vsock host window (case host_clients)"
vsock_secs silent 4 10 || fail "a vsock host client that sent nothing was not closed after 5 s: $(cat "$dir/silent.res")"
vsock_secs garbage 0 3 || fail "a vsock host client that sent garbage was not closed at once: $(cat "$dir/garbage.res")"
if ! vsock_secs refused 0 5 || ! grep -q 'no OK line' "$dir/refused.err"; then
	fail "CONNECT 1234 (refused by the guest): $(cat "$dir/refused.res" "$dir/refused.err")"
fi
if ! vsock_secs ignored 4 10 || ! grep -q 'no OK line' "$dir/ignored.err"; then
	fail "CONNECT 1235 (never answered by the guest) not closed after 5 s: $(cat "$dir/ignored.res" "$dir/ignored.err")"
fi
grep -q '^udscat: OK ' "$dir/cut.err" || fail "CONNECT 7001 (killed mid-stream) never got its OK: $(cat "$dir/cut.err")"
if [ "$(cat "$dir/echo.out")" != "$(printf 'ping-1\nping-2')" ] || ! grep -q '^rc=0 ' "$dir/echo.res"; then
	fail "the vsock echo across the other clients: '$(cat "$dir/echo.out")' $(cat "$dir/echo.res" "$dir/echo.err")"
fi
expect_line "$log" 'warning: vsock0: host client on .* sent no CONNECT line in 5 s' "no warning for the silent vsock client"
expect_line "$log" 'warning: vsock0: host client on .* closed: not a "CONNECT' "no warning for the garbage vsock client"
expect_line "$log" 'warning: vsock0: the guest did not answer a connection to its port 1235 in 5 s' \
	"no warning for the unanswered vsock client"
vsock_warnings=$(grep -c 'minivmm: warning: .*vsock0' "$LOGDIR/hostile.clean.log")
[ "$vsock_warnings" -lt 200 ] || fail "$vsock_warnings warnings name vsock0 (a line per packet of the flood?)"

# The host (L1 here) is intact: taps still there, no kernel complaint since we started.
for t in hostile0 hostile1; do
	ip link show "$t" >/dev/null 2>&1 || fail "tap $t vanished"
	ip link del "$t" 2>/dev/null
done
if dmesg | tail -n +"$((dmesg_before + 1))" | grep -E 'BUG:|Oops|general protection|WARNING: CPU' >"$LOGDIR/hostile.dmesg"; then
	cat "$LOGDIR/hostile.dmesg" >&2
	fail "host kernel log has complaints since the run began"
fi
rm -f /tmp/hostile-disk0.img /tmp/hostile-disk1.img
warnings=$(grep -c 'minivmm: warning: ' "$LOGDIR/hostile.clean.log")
pass "$cases hostile cases on blk+net x mmio+pci and vsock ($vsock_tr) passed; vsock host clients closed as due; $warnings VMM warnings, devices usable after reset and rebind, exit 0, no sanitizer report; ${secs}s"
