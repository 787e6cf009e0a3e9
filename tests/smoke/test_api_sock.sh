#!/bin/bash
# The control socket on a running VM (the bare test guest, which hangs):
# info, pause, resume, bad requests, stop; exit 0, mode 0600, file removed.
set -u
MINIVMM=$1 TINY=$2
if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "SKIP: no usable /dev/kvm: the control socket test needs KVM"
	exit 77
fi
pass=0 fail=0
check() { # check NAME CONDITION-RESULT DETAIL
	if [[ $2 == 0 ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1: $3"; fi
}
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
# As root minivmm runs as nobody once devices are open: that user removes the socket at the end.
[[ $(id -u) -eq 0 ]] && chown 65534:65534 "$dir"
sock=$dir/vm.sock
timeout 20 "$MINIVMM" --kernel "$TINY" --cmdline hang --cpus 2 --console none --api-sock "$sock" \
	--rng bw=4096,transport=mmio </dev/null 2>"$dir/err" &
pid=$!
for _ in $(seq 50); do [[ -S $sock ]] && break; sleep 0.1; done
[[ $(stat -c %a "$sock" 2>/dev/null) == 600 ]]; check "socket mode 0600" $? "$(stat -c %a "$sock" 2>&1)"

ctl() { "$MINIVMM" ctl "$sock" "$@" 2>"$dir/ctl.err"; }
out=$(ctl info); rc=$?
[[ $rc -eq 0 && $out == *'"state":"running"'* && $out == *'"vcpus":2'* ]]; check "info" $? "rc=$rc $out"
[[ $out == *'"rng0"'* && $out == *'"virtio-rng"'* && $out == *'"mmio"'* ]]; check "info: the rng device" $? "$out"
out=$(ctl stats); rc=$?
[[ $rc -eq 0 && $out == *'"rng0":{"requests":0,"bytes":0,"throttled":0,"errors":0}'* ]]
check "stats: the rng device" $? "rc=$rc $out"
out=$(ctl pause); rc=$?
[[ $rc -eq 0 && $out == *'"state":"paused"'* ]]; check "pause" $? "rc=$rc $out"
out=$(ctl pause); rc=$?
[[ $rc -eq 1 && $out == *'"error":"pause: the VM is paused already"'* ]] && grep -q '^minivmm: error: ' "$dir/ctl.err"
check "pause when paused: error reply, exit 1" $? "rc=$rc $out $(cat "$dir/ctl.err")"
out=$(ctl resume); rc=$?
[[ $rc -eq 0 && $out == *'"state":"running"'* ]]; check "resume" $? "rc=$rc $out"
out=$(ctl --raw 'garbage'); rc=$?
[[ $rc -eq 1 && $out == '{"error":"not JSON'* ]]; check "not JSON" $? "rc=$rc $out"
out=$(ctl frobnicate); rc=$?
[[ $rc -eq 1 && $out == *"unknown command 'frobnicate'"* ]]; check "unknown command" $? "rc=$rc $out"
out=$(ctl --raw '{"cmd":"snapshot"}'); rc=$?
[[ $rc -eq 1 && $out == *"the VM is running (pause it first)"* ]]; check "snapshot of a running VM" $? "rc=$rc $out"
# A line over the limit, and a silent client, with python3 (no socat needed).
if command -v python3 >/dev/null; then
	out=$(python3 - "$sock" <<'PY'
import socket, sys
quiet = socket.socket(socket.AF_UNIX); quiet.connect(sys.argv[1])   # says nothing
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.settimeout(5)
s.sendall(b"x" * 5000)
print(s.recv(4096).decode().strip())
PY
)
	[[ $out == *"longer than 4096 bytes"* ]]; check "line over the limit, beside a silent client" $? "$out"
fi
kill -0 $pid 2>/dev/null; check "the VM runs on after bad requests" $? "gone: $(cat "$dir/err")"
out=$("$MINIVMM" ctl "$dir/nope.sock" info 2>&1); rc=$?
[[ $rc -eq 1 && $out == "minivmm: error: $dir/nope.sock: cannot connect: "* ]]; check "no such socket" $? "rc=$rc $out"

out=$(ctl stop); rc=$?
[[ $rc -eq 0 && $out == '{"ok":true}' ]]; check "stop" $? "rc=$rc $out"
wait $pid; rc=$?
[[ $rc -eq 0 ]] && grep -q "stopped through the control socket" "$dir/err"; check "exit 0 after stop" $? "rc=$rc $(cat "$dir/err")"
[[ ! -e $sock ]]; check "socket file removed" $? "$(ls -l "$sock" 2>&1)"

echo "control socket: $pass passed, $fail failed"
[[ $fail -eq 0 ]]
