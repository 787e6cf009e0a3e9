#!/bin/sh
# --cpus N reaches the guest: with --cpus 1 and --cpus 4 the guest counts
# its processors (mvtest=cpus) and prints "MVTEST cpus=N"; with --cpus 4 and
# acpi=off it finds them in the MP table.
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
# The MP table: Linux finds it where minivmm puts it (without it, it scans
# the BIOS area, seconds under nested paging), and with acpi=off it is what
# brings up the CPUs. The guest's exit status is its CPU count (mvrun).
# shellcheck disable=SC2016  # expanded by the guest's shell, not here
count=$(printf 'exit $(grep -c ^processor /proc/cpuinfo)' | base64 | tr -d '\n')
boot() {
	run_guest "$1" --cpus 4 --kernel "$MINIMAL_KERNEL" --initrd "$GUEST_INITRD" \
		--cmdline "console=ttyS0 panic=-1 acpi=off mvrun=$count"
}
boot_retrying cpus-4-acpi-off
expect_line "$GUEST_LOG" 'found SMP MP-table at \[mem 0x0009fc00-0x0009fc0f\]' "Linux did not find the MP table"
expect_rc 4 "minivmm --cpus 4 with acpi=off (its status: the CPUs the guest saw)"
times="$times acpi=off:${GUEST_SECS}s"
pass "guest saw 1 and 4 CPUs, and 4 from the MP table with acpi=off,$times${retried:+ (re-booted:$retried)}"
