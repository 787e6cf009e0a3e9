#!/bin/sh
# --cpus N reaches the guest: with --cpus 1 and --cpus 4 the guest counts
# its processors (mvtest=cpus) and prints "MVTEST cpus=N".
# rig-timeout: 300
# shellcheck source=tests/rig/lib.sh
. "${RIG_LIB:-$(dirname "$0")/../rig/lib.sh}"

need_minivmm
need_minimal_kernel
need_file GUEST_INITRD

times=
retried=
for n in 1 4; do
	# A guest the rig killed (rig_guest_died) boots again, and the result says so.
	boot() {
		run_guest "$1" --cpus "$n" --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
			--cmdline "console=ttyS0 panic=-1 mvtest=cpus"
	}
	boot_retrying "cpus-$n"
	expect_line "$GUEST_LOG" "$GUEST_MARKER" "guest /init never started with --cpus $n"
	got=$(tr -d '\r' <"$GUEST_LOG" | sed -n 's/^MVTEST cpus=\([0-9]*\).*/\1/p' | tail -n 1)
	if [ "$got" != "$n" ]; then
		show_tail "$GUEST_LOG"
		fail "--cpus $n: guest saw ${got:-no} CPUs"
	fi
	expect_rc 0 "minivmm --cpus $n"
	times="$times cpus=$n:${GUEST_SECS}s"
done
pass "guest saw 1 and 4 CPUs,$times${retried:+ (re-booted:$retried)}"
