#!/bin/sh
# The hostile guest against virtio-net with vhost=on, on both transports:
# with vhost the kernel's vhost-net walks the rings, so the malformed ring
# attacks it meets (a descriptor loop, next and head indexes out of range, a
# buffer outside guest RAM, an available index jumping past the ring) must
# come back to minivmm through the vq's error eventfd (VHOST_SET_VRING_ERR):
# one warning naming the pair and queue, DEVICE_NEEDS_RESET with a config
# notification (checked by the guest program), a reset makes the NIC work
# again, minivmm keeps running and exits 0. Each attack runs on TX and on RX;
# vhost reads the RX ring only when a frame waits on the tap, so L1 keeps
# frames coming (pings to an absent neighbour: ARP broadcasts).
# rig-timeout: 400
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD
[ -c /dev/vhost-net ] || skip "no /dev/vhost-net here"
command -v ip >/dev/null 2>&1 || skip "ip (iproute2) missing: cannot make the taps"

CASES=loop,next_out_of_range,head_out_of_range,addr_outside_ram,avail_idx_jump
dmesg_before=$(dmesg | wc -l)
pingers=
trap 'kill $pingers 2>/dev/null; ip link del hostile0 2>/dev/null; ip link del hostile1 2>/dev/null' EXIT
i=0
for t in hostile0 hostile1; do
	ip link del "$t" 2>/dev/null
	ip tuntap add "$t" mode tap multi_queue || fail "ip tuntap add $t failed"
	ip addr add "10.7.$i.1/24" dev "$t"
	ip link set "$t" up || fail "ip link set $t up failed"
	ping -q -i 0.2 "10.7.$i.2" >/dev/null 2>&1 &
	pingers="$pingers $!"
	i=$((i + 1))
done

GUEST_TIMEOUT=${HOSTILE_TIMEOUT:-300}
# Every warning counts here: no rate limit on those the guest causes.
export MINIVMM_GUEST_WARNINGS=all
run_guest hostile-vhost --cpus 1 --mem 256 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
	--net hostile0,vhost=on,transport=mmio --net hostile1,vhost=on,transport=pci \
	--cmdline "console=ttyS0 panic=-1 iomem=relaxed mvtest=hostile mvcases=$CASES"
log=$GUEST_LOG
tr -d '\r' <"$log" >"$LOGDIR/hostile-vhost.clean.log"
clean=$LOGDIR/hostile-vhost.clean.log

no_sanitizer_report "$log"
expect_line "$log" '^MVTEST hostile unbound=2' "the guest did not unbind 2 virtio-net devices"
expect_rc 0 "minivmm"
expect_line "$log" 'minivmm: guest powered off' "no clean poweroff"
expect_no_line "$log" 'vhost-net: .*(failed|cannot)|backend failed' "a vhost-net set-up error"

n_cases=$(echo "$CASES" | tr , ' ' | wc -w)
want=$((n_cases * 2 * 2))   # each case on TX and RX, on two NICs
got=$(grep -c '^HOSTILE-CASE ' "$clean")
[ "$got" = "$want" ] || { show_tail "$log" 40; fail "$got hostile cases ran, want $want"; }
if grep '^HOSTILE-CASE .* FAIL' "$clean" >&2; then
	fail "guest-side failures (no DEVICE_NEEDS_RESET, or the NIC did not recover)"
fi
# One warning per attack: vhost stops the queue and signals once per case
# (the device is reset before the next).
for dev in net0 net1; do
	for q in TX RX; do
		n=$(grep -c "^minivmm: warning: $dev-qp0: vhost-net stopped the $q queue .*malformed" "$clean")
		[ "$n" = "$n_cases" ] || { show_tail "$log" 40; fail "$dev $q: $n vhost error warnings, want $n_cases"; }
	done
done
expect_line "$log" '^MVTEST hostile after rebind disks=0 nics=2' "NICs not usable after the attacks and a rebind"
expect_line "$log" 'MINIVMM-GUEST: test hostile exit=0' "guest test script failed"
for t in hostile0 hostile1; do
	ip link show "$t" >/dev/null 2>&1 || fail "tap $t vanished"
done
# vhost's own complaints about the rings are expected in L1's log; a kernel
# bug is not.
dmesg | tail -n +"$((dmesg_before + 1))" >"$LOGDIR/hostile-vhost.dmesg"
if grep -E 'BUG:|Oops|general protection|WARNING: CPU' "$LOGDIR/hostile-vhost.dmesg" >&2; then
	fail "host kernel log has complaints since the run began"
fi
pass "$got ring attacks on vhost-net (TX and RX, mmio and pci): each reported by vhost, one warning, DEVICE_NEEDS_RESET, NIC usable after reset; exit 0 in ${GUEST_SECS:-?}s"
