#!/bin/sh
# virtio-vsock on both transports (VSOCK_TRANSPORTS, default "mmio pci"): a
# guest with --vsock cid=3,uds=PATH. Host to guest: "CONNECT 1234" through
# PATH reaches the guest's echo server and 4 MiB come back byte for byte,
# then a small second stream; a port nobody listens on gets no "OK"; a host
# client that sends a bad line is closed (hostile_guest has the silent one). Guest to host:
# 1 MiB through host port 5000 (PATH_5000, an echo server here) comes back
# whole; port 5001, where nothing listens, is refused. The stats count the
# host's connections; a third, empty connection tells the guest the host is
# done (it stays up until then), and it powers off with exit 0.
# rig-timeout: 600
GUEST_TIMEOUT=${GUEST_TIMEOUT:-240}
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD
[ -n "$UDSCAT" ] && [ -x "$UDSCAT" ] || skip "udscat helper missing (${UDSCAT:-UDSCAT unset})"
dir=$(mktemp -d /tmp/vsock.XXXXXX) || fail "cannot make a directory in /tmp"
chmod 777 "$dir"   # minivmm runs as nobody: it makes and removes its sockets there
echo_pid=
holder=
guest=
trap 'kill $echo_pid $holder $guest 2>/dev/null; rm -rf "$dir"' EXIT
sock=$dir/v.sock
head -c 4194304 /dev/urandom >"$dir/big"

# wait_line REGEX SECS: until a line of the guest's log matches.
wait_line() {
	_n=0
	while ! tr -d '\r' <"$GUEST_LOG" | grep -Eq -- "$1"; do
		[ $_n -lt $(($2 * 10)) ] || return 1
		kill -0 "$GUEST_PID" 2>/dev/null || return 1
		sleep 0.1
		_n=$((_n + 1))
	done
}
line() { tr -d '\r' <"$GUEST_LOG" | sed -n "s/^MVTEST vsock $1 *//p" | tail -n 1; }

summary=
for tr in ${VSOCK_TRANSPORTS:-mmio pci}; do
	# umask 0: minivmm runs as nobody and must be able to connect to it.
	(umask 0; exec "$UDSCAT" -l "${sock}_5000" 1) >/dev/null 2>"$dir/echo.err" &
	echo_pid=$!
	start_guest "vsock-$tr" --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" --cpus 2 --mem 256 \
		--vsock "cid=3,uds=$sock,transport=$tr" --api-sock "$dir/api.sock" \
		--cmdline "console=ttyS0 panic=-1 mvtest=vsock"
	guest=$GUEST_PID
	watch_for '^MVTEST vsock (listening|:)' 180 || { wait_guest 10; show_tail "$GUEST_LOG"; fail "$tr: the guest never listened"; }
	[ -S "$sock" ] || fail "$tr: no socket at $sock"

	# Host to guest. udscat never blocks in a write while the echo waits to
	# be read: when it did, this stalled in some runs once a little over
	# 0.5 MiB were in flight, every buffer on the way full (see shuttle() in
	# tests/rig/udscat.c). -n: its write side stays open until all came back,
	# so the echo server never sees a half-closed stream.
	t0=$(now)
	timeout 120 "$UDSCAT" -n 4194304 "$sock" 1234 <"$dir/big" >"$dir/big.back" 2>"$dir/c1.err"; rc=$?
	back=$(wc -c <"$dir/big.back")
	[ $rc -eq 0 ] || fail "$tr: the 4 MiB echo stalled or broke: $back of 4194304 bytes back in $(elapsed "$t0")s" \
		"(rc $rc: $(tr '\n' ' ' <"$dir/c1.err"))"
	cmp -s "$dir/big" "$dir/big.back" || fail "$tr: the 4 MiB echo came back different ($back bytes)"
	big="4 MiB echoed in $(elapsed "$t0")s"
	out=$(echo hello | timeout 60 "$UDSCAT" "$sock" 1234 2>"$dir/c2.err")
	[ "$out" = hello ] || fail "$tr: second stream gave '$out': $(cat "$dir/c2.err")"
	grep -q '^udscat: OK [0-9]' "$dir/c2.err" || fail "$tr: no 'OK <port>' line: $(cat "$dir/c2.err")"
	if timeout 60 "$UDSCAT" "$sock" 9999 </dev/null >/dev/null 2>"$dir/c3.err"; then
		fail "$tr: CONNECT to a port nobody listens on was answered: $(cat "$dir/c3.err")"
	fi
	grep -q 'no OK line' "$dir/c3.err" || fail "$tr: refused CONNECT: $(cat "$dir/c3.err")"
	# The guest's own connections are done once it says how the refused
	# one went; it then prints nothing until the host's last connection, so
	# minivmm's warning about the bad line below cannot cut into one of its
	# lines (console and stderr share the log).
	wait_line '^MVTEST vsock refused' 120 || { wait_guest 10; show_tail "$GUEST_LOG"; fail "$tr: the guest's own connections did not finish"; }
	# A client that sends a bad line must be closed by minivmm: udscat ends
	# at its EOF. Its stdin stays open (a FIFO held by a sleeper), so that
	# only the device can end it. (busybox timeout exits 143 when it has to
	# kill. A client that says nothing is hostile_guest's case.)
	rm -f "$dir/hold"; mkfifo "$dir/hold"
	(printf 'HELLO there\n'; exec sleep 60) >"$dir/hold" &
	holder=$!
	t0=$(now)
	timeout 20 "$UDSCAT" "$sock" <"$dir/hold" >/dev/null 2>"$dir/c4.err"; rc=$?
	[ $rc -eq 0 ] || fail "$tr: a host client with a bad line was not closed within 20 s (rc $rc: $(cat "$dir/c4.err"))"
	bad_s=$(elapsed "$t0")
	kill $holder 2>/dev/null
	stats=$("$MINIVMM" ctl "$dir/api.sock" stats 2>&1)

	# Done: the empty third connection lets the guest's echo server end.
	timeout 60 "$UDSCAT" "$sock" 1234 </dev/null >/dev/null 2>"$dir/c5.err" ||
		fail "$tr: the last connection failed: $(cat "$dir/c5.err")"
	wait_line '^MVTEST vsock done' 120 || { wait_guest 10; show_tail "$GUEST_LOG"; fail "$tr: the guest did not finish"; }
	wait_guest 60
	guest=
	expect_rc 0 "$tr: minivmm"
	wait $echo_pid
	echo_pid=
	r=$(line to-host)
	case $r in
	"rc=0 sent="*) s=${r#*sent=}; s=${s%% *}; b=${r#*back=}; [ "$s" = "$b" ] || fail "$tr: guest->host 1 MiB came back different: $r" ;;
	*) fail "$tr: guest->host stream: ${r:-no result line}" ;;
	esac
	r=$(line refused)
	case $r in
	"rc=1 "*) ;;
	*) fail "$tr: connecting to host port 5001 (no listener) was not refused: ${r:-no result line}" ;;
	esac
	[ "$(line 'server')" = "rc=0" ] || fail "$tr: the guest's echo server: $(line server)"
	expect_no_line "$GUEST_LOG" '^MVTEST vsock kernel said' "$tr: the guest's kernel complained"
	no_sanitizer_report "$GUEST_LOG"
	conns=$(echo "$stats" | sed -n 's/.*"vsock0": *{ *"connections": *\([0-9]*\).*/\1/p')
	[ -n "$conns" ] && [ "$conns" -ge 2 ] || fail "$tr: stats count ${conns:-no} connections (want the 2 echoed, or more): $stats"
	summary="$summary $tr: $big, bad line closed after ${bad_s}s, $conns connections;"
done
pass "${summary% ;}"
