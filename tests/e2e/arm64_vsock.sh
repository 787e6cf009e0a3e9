#!/bin/sh
# arm64: virtio-vsock on each transport (ARM64_VSOCK_TRANSPORTS, default
# "mmio pci"), one guest each with --vsock cid=3,uds=PATH (1 vCPU): the guest
# finds the device on its transport (sysfs path: the virtio-mmio node of the
# device tree, or 00:0N.0 under the ECAM host); host to guest, 1 MiB through
# "CONNECT 1234" on PATH to the guest's echo server comes back byte for byte;
# guest to host, 1 MiB to CID 2 port 5000 (minivmm connects to PATH_5000,
# an echo server here) comes back whole, and port 5001, where nothing
# listens, is refused; the device's interrupts are a GIC SPI
# (edge) on mmio and ITS MSIs on pci; the guest powers off, minivmm exits 0.
# The x86 scenario with more cases is tests/e2e/vsock.sh; this one is short
# because the arm64 rig is TCG.
# rig-arch: arm64
# rig-timeout: 600
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

[ "$(uname -m)" = aarch64 ] || skip "arm64 scenario, this is $(uname -m) (run with tests/rig/rig.sh --arch arm64)"
need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
[ -n "$UDSCAT" ] && [ -x "$UDSCAT" ] || skip "udscat helper missing (${UDSCAT:-UDSCAT unset})"
GUEST_TIMEOUT=${GUEST_TIMEOUT_ARM64:-270}

dir=$(mktemp -d /tmp/armvsock.XXXXXX) || fail "cannot make a directory in /tmp"
chmod 777 "$dir"   # minivmm runs as nobody: it makes and removes its socket there
echo_pid=
trap 'kill $echo_pid 2>/dev/null; [ -z "$GUEST_PID" ] || kill $GUEST_PID 2>/dev/null; rm -rf "$dir"' EXIT
sock=$dir/v.sock
head -c 1048576 /dev/urandom >"$dir/big"
line() { tr -d '\r' <"$GUEST_LOG" | sed -n "s/^ARMVSOCK $1 *//p" | tail -n 1; }
# not_sandboxed TRANSPORT: fail naming the call if the seccomp filter stopped minivmm.
not_sandboxed() {
	_v=$(tr -d '\r' <"$GUEST_LOG" | grep -m 1 'minivmm: error: seccomp: ')
	[ -z "$_v" ] || fail "$1: ${_v#minivmm: error: }"
}

summary=
for tr in ${ARM64_VSOCK_TRANSPORTS:-mmio pci}; do
	case $tr in
	mmio) where='/a000000\.virtio/' irq='GICv3 +48 Edge +virtio0$' ;;   # the only mmio device: slot 0, SPI 16
	pci) where='/3f000000\.pcie/.*/0000:00:0[0-9a-f]\.0/' irq='ITS-MSI .* virtio0-' ;;
	*) fail "ARM64_VSOCK_TRANSPORTS: '$tr' is not mmio or pci" ;;
	esac
	# The host's echo server for the guest's connection (umask 0: minivmm,
	# as nobody, must be able to connect to it).
	(umask 0; exec "$UDSCAT" -l "${sock}_5000" 1) >/dev/null 2>"$dir/echo.err" &
	echo_pid=$!
	start_guest "arm64-vsock-$tr" --cpus 1 --mem 256 --kernel "$DEBIAN_KERNEL" --initrd "$GUEST_INITRD" \
		--vsock "cid=3,uds=$sock,transport=$tr" \
		--cmdline "console=ttyS0 earlycon panic=-1 mvtest=arm64_vsock"
	watch_for '^ARMVSOCK (listening|no device)' "$GUEST_TIMEOUT" ||
		{ wait_guest 10; not_sandboxed "$tr"; show_tail "$GUEST_LOG"; fail "$tr: the guest never got to its echo server"; }
	expect_no_line "$GUEST_LOG" '^ARMVSOCK no device' \
		"$tr: no virtio-vsock device bound in the guest (the vsock modules, or the device tree / PCI function)"
	[ -S "$sock" ] || fail "$tr: no socket at $sock"

	# Host to guest: -n keeps udscat's write side open until all came back.
	t0=$(now)
	timeout 120 "$UDSCAT" -n 1048576 "$sock" 1234 <"$dir/big" >"$dir/big.back" 2>"$dir/c1.err"; rc=$?
	back=$(wc -c <"$dir/big.back")
	not_sandboxed "$tr"
	[ $rc -eq 0 ] || fail "$tr: host->guest 1 MiB echo stalled or broke: $back of 1048576 bytes back in" \
		"$(elapsed "$t0")s (rc $rc: $(tr '\n' ' ' <"$dir/c1.err"))"
	cmp -s "$dir/big" "$dir/big.back" || fail "$tr: host->guest 1 MiB echo came back different ($back bytes)"
	h2g=$(elapsed "$t0")

	wait_guest 120
	GUEST_PID=
	not_sandboxed "$tr"
	expect_line "$GUEST_LOG" '^ARMVSOCK done' "$tr: the guest script did not finish"
	expect_line "$GUEST_LOG" '^MINIVMM-GUEST: test arm64_vsock exit=0' "$tr: the guest script failed"
	expect_rc 0 "$tr: minivmm"
	# The echo server ends after its one connection (the guest's, over by
	# now); one still waiting never got it.
	n=0
	while kill -0 $echo_pid 2>/dev/null && [ $n -lt 50 ]; do
		sleep 0.1
		n=$((n + 1))
	done
	kill $echo_pid 2>/dev/null
	wait $echo_pid; erc=$?
	echo_pid=
	expect_line "$GUEST_LOG" "^ARMVSOCK device virtio[0-9]+ path=.*$where" "$tr: the vsock device is not on virtio-$tr"
	[ "$(line server)" = "rc=0" ] || fail "$tr: the guest's echo server: $(line server)"
	r=$(line to-host)
	case $r in
	"rc=0 sent="*)
		s=${r#*sent=}; s=${s%% *}; b=${r#*back=}; b=${b%% *}
		[ "$s" = "$b" ] || fail "$tr: guest->host (CID 2 port 5000) 1 MiB echo came back different: $r" ;;
	*) fail "$tr: guest->host connection to CID 2 port 5000 (${sock}_5000): ${r:-no result line}" \
		"(host echo server: rc $erc $(tr '\n' ' ' <"$dir/echo.err"))" ;;
	esac
	r=$(line refused)
	case $r in
	"rc=1 "*) ;;
	*) fail "$tr: connecting to CID 2 port 5001 (no listener) was not refused: ${r:-no result line}" ;;
	esac
	[ "$erc" = 0 ] || fail "$tr: the host's echo server on ${sock}_5000 exited $erc: $(tr '\n' ' ' <"$dir/echo.err")"
	expect_line "$GUEST_LOG" "^ARMVSOCK irq .*$irq" "$tr: no /$irq/ line for the vsock device in /proc/interrupts"
	# the device's queue interrupts fired
	tr -d '\r' <"$GUEST_LOG" | grep -E "^ARMVSOCK irq .*$irq" |
		awk '{ for (i = 4; i <= NF && $i ~ /^[0-9]+$/; i++) s += $i } END { exit !(s > 0) }' ||
		fail "$tr: the vsock device's interrupts never fired"
	expect_no_line "$GUEST_LOG" '^ARMVSOCK kernel said' "$tr: the guest's kernel complained"
	[ ! -e "$sock" ] || fail "$tr: minivmm left its socket $sock behind"
	summary="$summary $tr: 1 MiB host->guest echo in ${h2g}s, 1 MiB guest->host echoed, port 5001 refused, guest run ${GUEST_SECS}s;"
done
pass "virtio-vsock on arm64,${summary%;}"
