#!/bin/bash
# Snapshot and restore of the bare test guest in "tick" mode (it prints
# t01, t02... from a counter in guest memory): the restored guest goes on
# counting where it was paused, as a copy-on-write map and as a copy, three
# clones at once; the memory file is sparse; every bad snapshot or command
# line is refused with one error line naming the file, exit 1.
set -u
MINIVMM=$(realpath "$1") TINY=$(realpath "$2")
if [[ ! -r /dev/kvm || ! -w /dev/kvm ]]; then
	echo "SKIP: no usable /dev/kvm: the snapshot test needs KVM"
	exit 77
fi
pass=0 fail=0
check() { # check NAME CONDITION-RESULT DETAIL
	if [[ $2 == 0 ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: $1: $3"; fi
}
dir=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$dir"' EXIT
[[ $(id -u) -eq 0 ]] && chown 65534:65534 "$dir"   # minivmm runs as nobody: it removes its socket
cd "$dir" || exit 1
truncate -s 8M disk.img
ctl() { "$MINIVMM" ctl "$dir/vm.sock" "$@" 2>>ctl.err; }
# The highest tick in a console file (hex), or -1.
last_tick() { grep -ao 't[0-9a-f][0-9a-f]$' "$1" 2>/dev/null | tail -n 1 | { read -r t && echo $((16#${t#t})) || echo -1; }; }
first_tick() { grep -ao '^t[0-9a-f][0-9a-f]$' "$1" 2>/dev/null | head -n 1 | { read -r t && echo $((16#${t#t})) || echo -1; }; }
wait_tick() { # wait_tick FILE N: until tick N or 15 s
	for _ in $(seq 150); do (($(last_tick "$1") >= $2)) && return 0; sleep 0.1; done
	return 1
}

"$MINIVMM" --kernel "$TINY" --cmdline tick --cpus 2 --mem 64 --disk disk.img --console out0 \
	--api-sock "$dir/vm.sock" </dev/null 2>err0 &
pid=$!
wait_tick out0 2; check "the guest ticks" $? "$(cat err0 out0)"
out=$(ctl snapshot "$dir/snap"); rc=$?
[[ $rc -eq 1 && $out == *"the VM is running (pause it first)"* && ! -e snap/state ]]
check "snapshot of a running VM refused" $? "rc=$rc $out"
ctl pause >/dev/null
before=$(last_tick out0)
out=$(ctl snapshot "$dir/snap"); rc=$?
[[ $rc -eq 0 && $out == *'"memory_bytes":67108864'* && -s snap/state && -s snap/memory ]]
check "snapshot of the paused VM" $? "rc=$rc $out $(cat ctl.err)"
[[ ! -e snap/state.new && ! -e snap/memory.new ]]; check "no .new files left" $? "$(ls snap)"
used=$(du -k snap/memory | cut -f1)
((used < 1024)); check "memory file is sparse (64 MiB guest, ${used} KiB on disk)" $? "$used KiB"
sleep 1
(($(last_tick out0) == before)); check "paused: no tick" $? "before $before now $(last_tick out0)"
out=$(ctl resume); check "resume" $? "$out"
wait_tick out0 $((before + 1)); check "resumed: ticks again" $? "$(tail -n 2 out0)"
ctl stop >/dev/null
wait $pid; rc=$?
check "the snapshotted VM exits 0 on stop" $rc "rc=$rc $(cat err0)"

restore() { # restore CONSOLE [args]: runs a restored VM for a while
	local con=$1; shift
	timeout 60 "$MINIVMM" --restore snap --console "$con" "$@" </dev/null 2>"$con.err" &
}
# The console of a restored VM starts where the snapshot's stopped.
truncate -s 8M disk2.img
restore out1 --disk disk2.img; p1=$!
wait_tick out1 $((before + 2)); r=$?
first=$(first_tick out1)
[[ $r -eq 0 ]] && ((first >= before + 1 && first <= before + 2))
check "restored (map): counts on from $before" $? "first $first last $(last_tick out1) $(cat out1.err)"
kill $p1; wait $p1 2>/dev/null
restore out2 --disk disk.img --restore-mem copy; p2=$!
wait_tick out2 $((before + 2)); r=$?
first=$(first_tick out2)
[[ $r -eq 0 ]] && ((first >= before + 1 && first <= before + 2))
check "restored (copy): counts on from $before" $? "first $first $(cat out2.err)"
kill $p2; wait $p2 2>/dev/null
pids=()
for i in 1 2 3; do truncate -s 8M "c$i.img"; restore "clone$i" --disk "c$i.img"; pids+=($!); done
ok=0
for i in 1 2 3; do wait_tick "clone$i" $((before + 2)) && ok=$((ok + 1)); done
((ok == 3)); check "three clones at once" $? "$ok of 3: $(cat clone*.err)"
kill "${pids[@]}"; wait "${pids[@]}" 2>/dev/null

# A VM with an rng (no state of its own): restored with --rng on the same
# transport; without it, or on another transport, refused in one line.
"$MINIVMM" --kernel "$TINY" --cmdline tick --mem 64 --rng transport=pci --console rng0 --api-sock "$dir/vm.sock" \
	</dev/null 2>rng0.err &
pid=$!
wait_tick rng0 1; check "the guest with an rng ticks" $? "$(cat rng0.err)"
ctl pause >/dev/null && ctl snapshot "$dir/snapR" >/dev/null && ctl stop >/dev/null
wait $pid; check "the VM with an rng: snapshot and stop" $? "$(cat rng0.err ctl.err)"
rbefore=$(last_tick rng0)
timeout 60 "$MINIVMM" --restore snapR --console rng1 --rng </dev/null 2>rng1.err &
p=$!
wait_tick rng1 $((rbefore + 1)); check "restored with --rng: counts on from $rbefore" $? "$(cat rng1.err)"
kill $p; wait $p 2>/dev/null

# An exit the pause left half done (KVM completes an OUT in the next
# KVM_RUN: until then RIP is on the instruction) must be completed before
# the state is saved, or the restored guest does it again. The guest prints
# a..z as fast as it can, so a pause often catches its vCPU in such an exit:
# the restored one must go on with the letter after the last one printed,
# never print that one twice. Five rounds: one is caught by chance.
next_letter() { local c=$(printf '%d' "'$1"); ((c == 122)) && echo a || printf "\\$(printf '%03o' $((c + 1)))"; }
bad=
for round in 1 2 3 4 5; do
	rm -rf snapA abcd0 abcd1
	"$MINIVMM" --kernel "$TINY" --cmdline abcd --mem 64 --console abcd0 --api-sock "$dir/vm.sock" </dev/null 2>abcd0.err &
	pid=$!
	for _ in $(seq 100); do (($(stat -c %s abcd0 2>/dev/null || echo 0) > 100)) && break; sleep 0.05; done
	ctl pause >/dev/null && ctl snapshot "$dir/snapA" >/dev/null && ctl stop >/dev/null
	wait $pid
	last=$(tail -c 1 abcd0)
	timeout 60 "$MINIVMM" --restore snapA --console abcd1 </dev/null 2>abcd1.err &
	p=$!
	for _ in $(seq 100); do [[ -s abcd1 ]] && break; sleep 0.05; done
	kill $p; wait $p 2>/dev/null
	first=$(head -c 1 abcd1)
	[[ -n $last && $first == "$(next_letter "$last")" ]] || bad+="round $round: last letter before the snapshot '$last', first after the restore '$first'; "
done
[[ -z $bad ]]; check "restored guest does not repeat the access the pause interrupted" $? "$bad $(cat abcd0.err abcd1.err)"

# Bad input: one line naming what is wrong, exit 1, no console output.
expect_error() { # expect_error NAME PART ARGS...
	local name=$1 part=$2; shift 2
	timeout 20 "$MINIVMM" --console bad.out "$@" </dev/null >/dev/null 2>bad.err; local rc=$?
	[[ $rc -eq 1 && $(wc -l <bad.err) -eq 1 && $(cat bad.err) == "minivmm: error: "*"$part"* && ! -s bad.out ]]
	check "$name" $? "rc=$rc $(cat bad.err)"
	rm -f bad.out
}
bad() { rm -rf bad; cp -r snap bad; }
expect_error "missing directory" "--restore $dir/nope: No such file or directory" --restore "$dir/nope" --disk disk.img
expect_error "--kernel with --restore" "--kernel: not with --restore" --restore snap --kernel "$TINY"
expect_error "--cpus with --restore" "--cpus: not with --restore" --restore snap --cpus 2
expect_error "device missing" "the snapshot has 1 devices, the command line 0" --restore snap
expect_error "an rng the snapshot lacks" "the snapshot has 1 devices, the command line 2" --restore snap --disk disk.img --rng
expect_error "rng missing" "the snapshot has 1 devices, the command line 0" --restore snapR
expect_error "rng on another transport" "device 0 (rng0) is virtio-rng on mmio, the snapshot's is virtio-rng on pci" \
	--restore snapR --rng transport=mmio
truncate -s 16M big.img
expect_error "disk of another size" "blk0: " --restore snap --disk big.img
bad; truncate -s 100 bad/state
expect_error "truncated state file" "bad/state: truncated" --restore bad --disk disk.img
bad; printf '\x5a' | dd of=bad/state bs=1 seek=3000 conv=notrunc status=none
expect_error "flipped byte in the state" "bad/state: corrupted: the state's checksum does not match" \
	--restore bad --disk disk.img
bad; printf '\x5a' | dd of=bad/state bs=1 seek=20 conv=notrunc status=none
expect_error "flipped byte in the header" "bad/state: corrupted: the header's checksum" --restore bad --disk disk.img
bad; truncate -s 1M bad/memory
expect_error "short memory file" "bad/memory: 1048576 bytes, shorter than" --restore bad --disk disk.img
bad; rm bad/memory
expect_error "missing memory file" "bad/memory" --restore bad --disk disk.img
if command -v python3 >/dev/null; then
	# A header that is whole (its checksum right) but says another version or architecture.
	rehead() { # rehead OFFSET VALUE
		python3 - bad/state "$1" "$2" <<'PY'
import struct, sys
def crc32c(b, crc=0):
    crc ^= 0xffffffff
    for x in b:
        crc ^= x
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 & -(crc & 1))
    return crc ^ 0xffffffff
p, off, val = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
d = bytearray(open(p, "rb").read())
d[off:off + 4] = struct.pack("<I", val)
d[68:72] = struct.pack("<I", crc32c(bytes(d[:68])))
open(p, "wb").write(d)
PY
	}
	bad; rehead 8 2
	expect_error "another format version" "format version 2" --restore bad --disk disk.img
	bad; rehead 44 2
	expect_error "another architecture" "a snapshot of an arm64 VM" --restore bad --disk disk.img
else
	echo "NOT RUN: another format version, another architecture (they rewrite the header with python3, which is missing here)"
fi
echo "snapshot: $pass passed, $fail failed"
((fail == 0))
