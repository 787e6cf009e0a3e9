#!/bin/bash
# Nested end-to-end test rig for minivmm. See tests/rig/README.md.
#
#   tests/rig/rig.sh [options] SCENARIO...
#
# Runs tests/e2e/SCENARIO.sh for each SCENARIO and prints
#   RIG-RESULT <scenario> PASS|FAIL|SKIP <reason>
# per scenario, then "N passed, N failed, N skipped". Exit status 1 if any
# failed, 2 if the rig itself could not run.
#
# With hardware KVM (kvm_intel/kvm_amd, no kvm_pvm) the scenarios run right
# here. Otherwise (PVM host) one L1 VM is booted under QEMU TCG with an
# emulated AMD SVM CPU; the scenarios run inside it against L1's real KVM,
# and their logs come back through a raw virtio disk holding a tar archive.
#
# --arch arm64 does the same for the arm64 port: the L1 VM is Debian's arm64
# kernel under qemu-system-aarch64 (TCG, virt machine with EL2, GICv3), with
# arm64 KVM inside; the scenarios are the tests/e2e/*.sh with "# rig-arch: arm64".
set -u
set -o pipefail

usage() {
	cat <<'EOF'
usage: tests/rig/rig.sh [options] SCENARIO...       (SCENARIO = tests/e2e/SCENARIO.sh)
  --logdir DIR     where logs go (default build/rig-logs)
  --with-qemu      put qemu-system-x86_64 into L1 (sets $QEMU; for benchmarks; turned on
                   by itself for scenarios with a "# rig-needs: qemu" line)
  --mode M         auto (default) | host | nested
  --arch A         x86_64 (default) | arm64: the L1 VM's (and minivmm's, and the guests')
                   architecture; --all and --list take the scenarios of that architecture
                   (a "# rig-arch: arm64" line; none means x86_64)
  --timeout S      limit for the whole L1 run (default: 120 + the scenarios' limits)
  --no-build       do not run cmake; use build/minivmm (or $MINIVMM) as it is
  --scenario-dir D take scenarios from D instead of tests/e2e (benchmarks: tests/bench/rig)
  --interactive    no scenarios: boot the default guest under minivmm in L1 with its
                   console on this terminal (what guest-images/boot-default.sh does here)
  --all            run every tests/e2e/*.sh
  --list           list scenarios and exit
Environment overrides: MINIVMM, DEBIAN_KERNEL, MINIMAL_KERNEL, GUEST_INITRD (a path,
  or "none" to not build that image), L1_KERNEL_VERSION, L1_MEM (MiB), L1_SMP,
  L1_APPEND (added to L1's kernel command line; x86_64 default mitigations=off),
  L1_KVM_AMD_PARAMS (L1's kvm-amd module parameters; default npt=0),
  L1_TCG_THREAD (multi, the default, or single: one host thread runs all of L1's
  CPUs, to count the silent wedges against; slower), MINIVMM_CACHE, MINIVMM_ALT (a
  second binary for the datapath benchmarks' alt-* configs: an A/B in one L1); passed on to the
  scenarios: GUEST_TIMEOUT, RIG_REBOOTS, BLK_TRANSPORTS, NET_TRANSPORTS,
  NET_VHOST_MODES, BENCH_RUNS.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
RIG_SRC=$ROOT/tests/rig
E2E_SRC=$ROOT/tests/e2e
WORK=$ROOT/build/rig
CACHE=${MINIVMM_CACHE:-$HOME/.cache/minivmm}/rig
LOGDIR=$ROOT/build/rig-logs
WITH_QEMU=0
MODE=auto
L1_TIMEOUT=
DO_BUILD=1
INTERACTIVE=0
SCENARIOS=()
ARCH=${RIG_ARCH:-x86_64}
LOGDIR_SET=0
ALL=0
LIST=0

die() { echo "rig: error: $*" >&2; exit 2; }
say() { echo "rig: $*" >&2; }

while [ $# -gt 0 ]; do
	case $1 in
	--logdir) LOGDIR=$2; LOGDIR_SET=1; shift 2 ;;
	--logdir=*) LOGDIR=${1#*=}; LOGDIR_SET=1; shift ;;
	--with-qemu) WITH_QEMU=1; shift ;;
	--mode) MODE=$2; shift 2 ;;
	--timeout) L1_TIMEOUT=$2; shift 2 ;;
	--no-build) DO_BUILD=0; shift ;;
	--interactive) INTERACTIVE=1; shift ;;
	--scenario-dir) E2E_SRC=$(cd "$2" && pwd) || exit 2; export E2E_DIR=$E2E_SRC; shift 2 ;;
	--arch) ARCH=$2; shift 2 ;;
	--arch=*) ARCH=${1#*=}; shift ;;
	--all) ALL=1; shift ;;
	--list) LIST=1; shift ;;
	-h|--help) usage; exit 0 ;;
	-*) usage >&2; exit 2 ;;
	*) SCENARIOS+=("${1%.sh}"); shift ;;
	esac
done
case $ARCH in x86_64|arm64) ;; aarch64) ARCH=arm64 ;; *) die "bad --arch $ARCH (x86_64 or arm64)" ;; esac
# scenario_arch FILE: the architecture a scenario is for ("# rig-arch: A", default x86_64).
scenario_arch() {
	local a
	a=$(sed -n 's/^# rig-arch: *\([a-z0-9_]*\).*/\1/p' "$1" | head -n 1)
	echo "${a:-x86_64}"
}
if [ $ALL = 1 ] || [ $LIST = 1 ]; then
	for f in "$E2E_SRC"/*.sh; do
		[ "$(scenario_arch "$f")" = "$ARCH" ] || continue
		if [ $LIST = 1 ]; then basename "$f" .sh; else SCENARIOS+=("$(basename "$f" .sh)"); fi
	done
	[ $LIST = 1 ] && exit 0
fi
[ ${#SCENARIOS[@]} -gt 0 ] || [ $INTERACTIVE = 1 ] || { usage >&2; exit 2; }
# Per-architecture places: cross-built binaries and their pieces never mix.
MINIVMM_BUILD=$ROOT/build
if [ "$ARCH" = arm64 ]; then
	WORK=$ROOT/build/rig-arm64
	MINIVMM_BUILD=$ROOT/build-arm64
	[ $LOGDIR_SET = 1 ] || LOGDIR=$ROOT/build/rig-logs-arm64
	[ $INTERACTIVE = 0 ] || die "--interactive is x86_64 only for now"
fi
for s in "${SCENARIOS[@]}"; do
	[ -f "$E2E_SRC/$s.sh" ] && [ "$(scenario_arch "$E2E_SRC/$s.sh")" != "$ARCH" ] \
		&& die "scenario $s is for $(scenario_arch "$E2E_SRC/$s.sh"), this run is --arch $ARCH"
done
case $MODE in auto|host|nested) ;; *) die "bad --mode $MODE" ;; esac
# A scenario that needs QEMU says so with a "# rig-needs: qemu" line; one that
# runs the CTest tests needing real KVM, with "# rig-needs: unit-tests".
WITH_UNIT_TESTS=0
for s in "${SCENARIOS[@]}"; do
	if grep -q '^# rig-needs:.*\<qemu\>' "$E2E_SRC/$s.sh" 2>/dev/null && [ $WITH_QEMU = 0 ]; then
		say "$s needs QEMU: turning on --with-qemu"
		WITH_QEMU=1
	fi
	grep -q '^# rig-needs:.*\<unit-tests\>' "$E2E_SRC/$s.sh" 2>/dev/null && WITH_UNIT_TESTS=1
done

T_START=$(date +%s.%N)
mkdir -p "$WORK" "$CACHE"

# One rig run at a time on this machine (the lock sits in the shared cache, so
# it holds across checkouts too): two nested VMs on a small machine would only
# slow each other down past their time limits.
exec 9>"$CACHE/run.lock"
if ! flock -n 9; then
	say "another rig run holds $CACHE/run.lock; waiting for it"
	flock 9 || die "cannot lock $CACHE/run.lock"
	T_START=$(date +%s.%N)
fi
RUN_TMP=$(mktemp -d "$WORK/run.XXXXXX")
trap '[ -n "${L1_PID:-}" ] && kill "$L1_PID" 2>/dev/null; rm -rf "$RUN_TMP"' EXIT
trap 'exit 130' INT TERM
tsince() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# ---------------------------------------------------------------- log dir
# The log dir is wiped at the start of a run only if a previous run marked it.
mkdir -p "$LOGDIR" || die "cannot create $LOGDIR"
LOGDIR=$(cd "$LOGDIR" && pwd)
if [ -f "$LOGDIR/.rig-logdir" ]; then
	find "$LOGDIR" -mindepth 1 -maxdepth 1 ! -name .rig-logdir -exec rm -rf {} +
elif [ -n "$(ls -A "$LOGDIR")" ]; then
	die "$LOGDIR is not empty and was not made by the rig; pick another --logdir"
fi
touch "$LOGDIR/.rig-logdir"
RESULTS=$LOGDIR/results.txt
: >"$RESULTS"
PRE_FAILS=()   # rig-level failures (build steps), reported like scenarios

# ---------------------------------------------------------------- minivmm
if [ "$ARCH" = arm64 ] && [ ! -f "$ROOT/arch/arm64/cross-build.sh" ] && [ -z "${MINIVMM:-}" ]; then
	say "no arch/arm64/cross-build.sh in this tree (the arm64 port): no arm64 minivmm to build"
	DO_BUILD=0 MINIVMM=none
fi
if [ $DO_BUILD = 1 ] && [ -z "${MINIVMM:-}" ] && [ "$ARCH" = arm64 ] && [ -f "$ROOT/arch/arm64/cross-build.sh" ]; then
	# The port's own static cross build (it fetches the arm64 libfdt it links).
	say "cross-building minivmm for arm64 (log $LOGDIR/build-minivmm.log)"
	if ! bash "$ROOT/arch/arm64/cross-build.sh" "$MINIVMM_BUILD" >"$LOGDIR/build-minivmm.log" 2>&1; then
		tail -n 15 "$LOGDIR/build-minivmm.log" | sed 's/^/  | /' >&2
		say "arm64 minivmm build FAILED: scenarios that need minivmm will be skipped"
		PRE_FAILS+=("build-minivmm FAIL arch/arm64/cross-build.sh failed (see build-minivmm.log)")
		MINIVMM=none
	fi
elif [ $DO_BUILD = 1 ] && [ -z "${MINIVMM:-}" ] && [ -f "$ROOT/CMakeLists.txt" ]; then
	say "building minivmm for $ARCH (log $LOGDIR/build-minivmm.log)"
	if ! { cmake -S "$ROOT" -B "$MINIVMM_BUILD" && cmake --build "$MINIVMM_BUILD" -j2; } \
		>"$LOGDIR/build-minivmm.log" 2>&1; then
		tail -n 15 "$LOGDIR/build-minivmm.log" | sed 's/^/  | /' >&2
		say "minivmm build FAILED: scenarios that need minivmm will be skipped"
		PRE_FAILS+=("build-minivmm FAIL cmake build failed (see build-minivmm.log)")
		MINIVMM=none
	fi
fi
MINIVMM=${MINIVMM:-$MINIVMM_BUILD/minivmm}
if [ "$MINIVMM" = none ]; then
	MINIVMM=
elif [ ! -x "$MINIVMM" ]; then
	say "no minivmm binary at $MINIVMM: scenarios that need it will be skipped"
	MINIVMM=
elif [ "$ARCH" = arm64 ] && ! LC_ALL=C readelf -h "$MINIVMM" 2>/dev/null | grep -q 'Machine:.*AArch64'; then
	die "$MINIVMM is not an arm64 binary (--arch arm64 wants the cross-built one, e.g. build-arm64/minivmm)"
fi

# ---------------------------------------------------------------- helpers
# tool NAME SRC: compile SRC static for $ARCH into $WORK/NAME unless it is up to date.
tool() {
	local cc=cc out=$WORK/$1
	[ "$ARCH" = arm64 ] && cc=aarch64-linux-gnu-gcc
	if [ ! -x "$out" ] || [ "$2" -nt "$out" ]; then
		"$cc" -static -O2 -Wall -Wextra -o "$RUN_TMP/$1" "$2" && mv "$RUN_TMP/$1" "$out" \
			|| die "cannot build $1 with $cc (needs the static libc: libc6-dev, or libc6-dev-arm64-cross)"
	fi
}
tool ptydrive "$RIG_SRC/ptydrive.c"
PTYDRIVE=$WORK/ptydrive MARKTIME=$WORK/marktime
tool marktime "$RIG_SRC/marktime.c"
tool udscat "$RIG_SRC/udscat.c"
UDSCAT=$WORK/udscat
tool kvmhold "$RIG_SRC/kvmhold.c"
[ "$ARCH" = arm64 ] && tool kvm-check "$RIG_SRC/arm64/kvm-check.c"

# ---------------------------------------------------------------- guest images
KVER=${L1_KERNEL_VERSION:-}
if [ -z "$KVER" ]; then
	for k in $(ls -1 /boot/vmlinuz-*-amd64 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V -r); do
		[ -d "/lib/modules/$k" ] && { KVER=$k; break; }
	done
fi

guest_image() {
	# guest_image VAR NAME: set VAR (unless given in the environment) to the
	# path guest-images/build.sh NAME prints on its last stdout line.
	local var=$1 name=$2 out
	if [ "${!var:-}" = none ]; then   # VAR=none: do not build it
		printf -v "$var" '%s' ""
		return 0
	fi
	[ -n "${!var:-}" ] && return 0
	say "guest image $name (log $LOGDIR/guest-image-$name.log)"
	: >"$LOGDIR/guest-image-$name.log"   # both streams append to it, stdout also to $out
	# shellcheck disable=SC2094
	if out=$("$ROOT/guest-images/build.sh" "$name" 2>>"$LOGDIR/guest-image-$name.log" \
		| tee -a "$LOGDIR/guest-image-$name.log" | tail -n 1) && [ -f "$out" ]; then
		printf -v "$var" '%s' "$out"
	else
		tail -n 20 "$LOGDIR/guest-image-$name.log" >&2
		PRE_FAILS+=("guest-image:$name FAIL guest-images/build.sh $name failed (see guest-image-$name.log)")
		printf -v "$var" '%s' ""
	fi
}

if [ "$ARCH" = arm64 ]; then
	# One Debian arm64 kernel Image is both L1's kernel and the L2 guests'.
	guest_image L1_ARM64_KERNEL arm64-kernel
	guest_image L1_ARM64_INITRAMFS arm64-initramfs
	[ -n "$L1_ARM64_KERNEL" ] && [ -n "$L1_ARM64_INITRAMFS" ] \
		|| die "no arm64 kernel or busybox (see $LOGDIR/guest-image-arm64-*.log)"
	DEBIAN_KERNEL=${DEBIAN_KERNEL:-$L1_ARM64_KERNEL}
	GUEST_INITRD=${GUEST_INITRD:-$L1_ARM64_INITRAMFS}
	[ "$GUEST_INITRD" = none ] && GUEST_INITRD=
	[ "$DEBIAN_KERNEL" = none ] && DEBIAN_KERNEL=
	MINIMAL_KERNEL=   # the minimal kernel config is x86 only
elif [ -x "$ROOT/guest-images/build.sh" ]; then
	guest_image DEBIAN_KERNEL debian-kernel
	guest_image MINIMAL_KERNEL minimal-kernel
	guest_image GUEST_INITRD initramfs
else
	# Stand-ins until guest-images/ exists: the host's Debian kernel and a
	# busybox initramfs with tests/rig/dev-guest/init.
	say "guest-images/build.sh missing: using /boot/vmlinuz-$KVER and the rig's stand-in initramfs"
	DEBIAN_KERNEL=${DEBIAN_KERNEL:-/boot/vmlinuz-$KVER}
	MINIMAL_KERNEL=${MINIMAL_KERNEL:-}
	if [ -z "${GUEST_INITRD:-}" ]; then
		GUEST_INITRD=$WORK/dev-guest.cpio.gz
		if [ ! -f "$GUEST_INITRD" ] || [ "$RIG_SRC/dev-guest/init" -nt "$GUEST_INITRD" ]; then
			d=$WORK/dev-guest
			rm -rf "$d"; mkdir -p "$d/bin" "$d/sbin" "$d/proc" "$d/sys" "$d/dev" "$d/tmp" "$d/root"
			cp /bin/busybox "$d/bin/busybox"
			for a in $(/bin/busybox --list); do
				[ "$a" = busybox ] || ln -s busybox "$d/bin/$a"
			done
			rm -f "$d/bin/poweroff"
			printf '#!/bin/sh\nexec /bin/busybox poweroff -f "$@"\n' >"$d/bin/poweroff"
			chmod +x "$d/bin/poweroff"
			cp "$RIG_SRC/dev-guest/init" "$d/init"
			(cd "$d" && find . | sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 >"$GUEST_INITRD.tmp") \
				&& mv "$GUEST_INITRD.tmp" "$GUEST_INITRD" || die "cannot build the stand-in initramfs"
		fi
	fi
fi
say "DEBIAN_KERNEL=${DEBIAN_KERNEL:-} MINIMAL_KERNEL=${MINIMAL_KERNEL:-} GUEST_INITRD=${GUEST_INITRD:-}"

# ---------------------------------------------------------------- mode
if [ "$MODE" = auto ] && [ "$ARCH" = arm64 ] && [ "$(uname -m)" != aarch64 ]; then
	MODE=nested
	say "arm64 scenarios on a $(uname -m) host: using the nested arm64 L1 rig"
fi
if [ "$MODE" = auto ]; then
	if [ -c /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ] \
		&& { [ -d /sys/module/kvm_intel ] || [ -d /sys/module/kvm_amd ]; }; then
		MODE=host
	else
		MODE=nested
		if [ -d /sys/module/kvm_pvm ]; then
			say "host KVM is PVM (kvm_pvm): unmodified Linux guests cannot run on it; using the nested L1 rig"
		else
			say "no hardware KVM here: using the nested L1 rig"
		fi
	fi
fi

# ---------------------------------------------------------------- summary
summarise() {
	local pass=0 failn=0 skip=0 line name status
	echo
	for line in "${PRE_FAILS[@]}"; do
		echo "RIG-RESULT $line"
		failn=$((failn + 1))
	done
	for name in "${SCENARIOS[@]}"; do
		line=$(grep "^RIG-RESULT $name " "$RESULTS" | tail -n 1)
		if [ -z "$line" ] && [ "$(cat "$RUN_TMP/l1-wedged" 2>/dev/null)" = "$name" ]; then
			line="RIG-RESULT $name FAIL no result came back: L1 wedged during it and the host stopped L1 (see $LOGDIR/l1-console.log)"
		fi
		[ -n "$line" ] || line="RIG-RESULT $name FAIL no result came back (rig crashed or timed out; see $LOGDIR/l1-console.log)"
		echo "$line"
		status=$(echo "$line" | cut -d' ' -f3)
		case $status in
		PASS) pass=$((pass + 1)) ;;
		SKIP) skip=$((skip + 1)) ;;
		*)
			failn=$((failn + 1))
			if [ -f "$LOGDIR/$name.out" ]; then
				echo "---- tail of $LOGDIR/$name.out ----"
				tail -n 40 "$LOGDIR/$name.out" | tr -d '\r' | sed 's/^/  | /'
			fi
			;;
		esac
	done
	echo "$pass passed, $failn failed, $skip skipped   (rig total $(tsince "$T_START")s; logs in $LOGDIR)"
	[ $failn -eq 0 ]
}

# The CTest tests whose real half needs /dev/kvm or /dev/vhost-net (which only
# L1 has on hosts like ours), built beside minivmm (x86_64 only: the arm64
# build has no tests); the kvm_unit_tests scenario runs them. SRC<TAB>NAME.
KVM_UNIT_TESTS=
if [ $WITH_UNIT_TESTS = 1 ] && [ -n "$MINIVMM" ] && [ "$ARCH" = x86_64 ]; then
	b=$(dirname "$MINIVMM")
	for f in tests/unit/test_net_vhost tests/unit/test_vm_lifecycle tests/unit/test_pci_msix \
		tests/guests/tiny_guest.elf; do
		[ -f "$b/$f" ] && KVM_UNIT_TESTS="$KVM_UNIT_TESTS$b/$f	${f##*/}
"
	done
	for f in smoke/test_tiny_guest.sh smoke/test_snapshot.sh cli/test_cli_errors.sh cli/test_bad_images.sh cli/expect.sh; do
		KVM_UNIT_TESTS="$KVM_UNIT_TESTS$ROOT/tests/$f	${f##*/}
"
	done
fi
UNIT_TESTS_DIR=
if [ "$MODE" = host ] && [ -n "$KVM_UNIT_TESTS" ]; then
	UNIT_TESTS_DIR=$RUN_TMP/kvm-unit-tests; mkdir -p "$UNIT_TESTS_DIR"
	printf '%s' "$KVM_UNIT_TESTS" | while IFS='	' read -r src name; do ln -s "$src" "$UNIT_TESTS_DIR/$name"; done
fi
export MINIVMM DEBIAN_KERNEL MINIMAL_KERNEL GUEST_INITRD LOGDIR PTYDRIVE MARKTIME UDSCAT UNIT_TESTS_DIR
[ -n "${GUEST_TIMEOUT:-}" ] && export GUEST_TIMEOUT

# ---------------------------------------------------------------- host mode
if [ "$MODE" = host ]; then
	QEMU=
	[ $WITH_QEMU = 1 ] && QEMU=$(command -v qemu-system-x86_64 || true)
	export QEMU
	say "running on this host: ${SCENARIOS[*]}"
	sh "$RIG_SRC/runner.sh" --results "$RESULTS" "${SCENARIOS[@]}" \
		| grep --line-buffered -E '^RIG-(START|RESULT)' | while IFS= read -r l; do
			echo "[+$(tsince "$T_START")s] $l"
		done
	summarise
	exit $?
fi

# ---------------------------------------------------------------- nested mode
if [ "$ARCH" = arm64 ]; then
	L1_KERNEL=$L1_ARM64_KERNEL
	L1_KDIR=$(dirname "$L1_KERNEL")
	KVER=$(cat "$L1_KDIR/release")
	HOST_QEMU=$(command -v qemu-system-aarch64) || die "qemu-system-aarch64 missing (apt-get install qemu-system-arm)"
	# TCG arm64 with EL2 (so L1's KVM gets hyp mode, VHE with -cpu max) and a GICv3
	# (KVM's vGICv3 needs the system-register interface); the results disk on
	# virtio-mmio, the virt machine's own transport. pauth-impdef: the same pointer
	# authentication, with QEMU's cheap hash instead of emulating QARMA, which
	# made the whole L1 3-4x slower (L1 boot to /init 11.1 s -> 3.2 s here).
	L1_MACHINE=(-machine virt,virtualization=on,gic-version=3 -cpu max,pauth-impdef=on)
	L1_DISK=(-drive "file=@OUT@,format=raw,if=none,id=results,cache=unsafe" -device virtio-blk-device,drive=results)
	L1_CONSOLE=ttyAMA0
	PIECE_SUFFIX=-arm64
else
	[ -n "$KVER" ] || die "no /boot/vmlinuz-*-amd64 with modules in /lib/modules (apt-get install linux-image-amd64)"
	L1_KERNEL=/boot/vmlinuz-$KVER
	HOST_QEMU=$(command -v qemu-system-x86_64) || die "qemu-system-x86_64 missing (apt-get install qemu-system-x86)"
	L1_MACHINE=(-machine q35 -cpu EPYC,+svm,+npt)
	# L1 without CPU-bug mitigations (it is a test harness): with Debian's
	# 6.1.192 as L1 on this emulated Zen 1 CPU, L1 died under network load
	# (kernel stack overflow at error_entry in a vCPU thread's KVM_RUN, right
	# after a VM exit) in 4 of 6 runs of net_iperf's traffic on 2026-11-22;
	# with mitigations=off in 0 of 2 (12 guest boots), and net_iperf took
	# 125 s instead of 167 s. See "Known problems" in docs/testing.md.
	L1_APPEND=${L1_APPEND-mitigations=off}
	# L1's KVM runs its guests with shadow paging, not on the emulated CPU's
	# nested paging: with NPT, L2 guests under fio load triple-faulted in 12
	# of 27 runs and L1 died in 4 (a #PF recursion on a %gs access after a VM
	# exit, or a soft lockup in a vCPU thread), under QEMU as the L2 VMM as
	# under minivmm; with npt=0 no L2 guest died in 26 runs of fio, boots and
	# iperf3, at the same speed. docs/rig-failure-rates.md.
	L1_KVM_AMD_PARAMS=${L1_KVM_AMD_PARAMS-npt=0}
	# A wedged L1 is read through the monitor (l1_cpu_dump.py): nokaslr keeps
	# its symbols where the last L1 of this kernel found them.
	L1_KALLSYMS=$CACHE/l1-kallsyms-$KVER.txt
	L1_APPEND_RIG=nokaslr
	L1_DISK=(-drive "file=@OUT@,format=raw,if=virtio,cache=unsafe")
	L1_CONSOLE=ttyS0
	PIECE_SUFFIX=
fi
[ -r "$L1_KERNEL" ] || die "cannot read $L1_KERNEL"
PIECE_FORMAT=1   # bump when the layout of a piece changes

# add FILE [DEST]: one "src<TAB>dest" line of the current piece's list.
add() { printf '%s\t%s\n' "$1" "${2:-$1}" >>"$LIST"; }
# add_dir DIR [DEST]: every file under DIR (symlinks followed, dangling skipped).
add_dir() {
	local src=$1 dst=${2-$1} f
	while IFS= read -r f; do
		[ -e "$f" ] && add "$f" "$dst${f#"$src"}"
	done < <(find "$src" \( -type f -o -type l \) | sort)
}
# add_bin FILE [DEST]: FILE plus the shared libraries ldd lists for it.
add_bin() {
	add "$1" "${2:-$1}"
	[ "$ARCH" = arm64 ] && { add_arm64_libs "$1"; return; }
	ldd "$1" 2>/dev/null | awk '/=> \// { print $3 } /^[ \t]*\/[^ ]+ \(/ { print $1 }' \
		| while read -r lib; do add "$lib"; done
}

# add_arm64_libs FILE: the libraries a dynamically linked arm64 FILE needs, from
# Debian's cross libc (/usr/aarch64-linux-gnu/lib), at their arm64 Debian paths
# (ldd cannot run a foreign binary; a static one needs nothing).
add_arm64_libs() {
	local lib want todo=("$1") seen=" " f
	while [ ${#todo[@]} -gt 0 ]; do
		f=${todo[0]}; todo=("${todo[@]:1}")
		aarch64-linux-gnu-readelf -l "$f" 2>/dev/null | grep -q 'Requesting program interpreter' \
			&& add /usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1 /lib/ld-linux-aarch64.so.1
		for want in $(aarch64-linux-gnu-readelf -d "$f" 2>/dev/null | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
			case $seen in *" $want "*) continue ;; esac
			seen="$seen$want "
			lib=/usr/aarch64-linux-gnu/lib/$want
			[ -e "$lib" ] || die "$1 needs $want, not in /usr/aarch64-linux-gnu/lib (link it static, or install the arm64 cross library)"
			add "$lib" "/lib/aarch64-linux-gnu/$want"
			todo+=("$lib")
		done
	done
}

# piece NAME [DIR]: turn $LIST into a gzip'd newc cpio in DIR (default
# $CACHE), named by a hash of every file's content, mode and destination, so
# an unchanged piece is reused. Prints the archive's path.
piece() {
	local name=$1 dir=${2:-$CACHE} key out stage src dst
	sort -u -t$'\t' -k2,2 "$LIST" -o "$LIST"
	key=$( { echo "format $PIECE_FORMAT"; while IFS=$'\t' read -r src dst; do
			echo "$dst $(sha256sum <"$src" | cut -c1-64) $(stat -L -c %a "$src")"
		done <"$LIST"; } | sha256sum | cut -c1-16)
	name=$name$PIECE_SUFFIX
	out=$dir/$name-$key.cpio.gz
	if [ ! -f "$out" ]; then
		say "packing L1 piece $name ($(wc -l <"$LIST") files)"
		stage=$WORK/stage-$name
		rm -rf "$stage"; mkdir -p "$stage"
		while IFS=$'\t' read -r src dst; do
			mkdir -p "$stage$(dirname "$dst")"
			cp -L --preserve=mode "$src" "$stage$dst"
		done <"$LIST"
		[ -n "${EXTRA_STAGE:-}" ] && $EXTRA_STAGE "$stage"
		(cd "$stage" && find . | sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 >"$out.tmp.$$") \
			&& mv "$out.tmp.$$" "$out" || die "cannot pack piece $name"
		rm -rf "$stage"
		# keep the two newest versions of each piece
		ls -1t "$dir/$name"-*.cpio.gz | tail -n +3 | xargs -r rm -f
	fi
	echo "$out"
}

# Modules for KVM (AMD, as emulated by TCG), tap/vhost networking, and
# virtio-blk for the results disk, with their dependencies first.
MODS_WANTED="irqbypass kvm ccp kvm-amd tun tap vhost_iotlb vhost vhost_net
	virtio_ring virtio virtio_pci_modern_dev virtio_pci_legacy_dev virtio_pci virtio_blk"
declare -A MOD_SEEN=()
MOD_ORDER=()
mod_add() {
	local m=$1 d
	[ -n "${MOD_SEEN[$m]:-}" ] && return 0
	MOD_SEEN[$m]=1
	for d in $(modinfo -k "$KVER" -F depends "$m" 2>/dev/null | tr ',' ' '); do
		mod_add "$d"
	done
	local f; f=$(modinfo -k "$KVER" -n "$m" 2>/dev/null) || die "module $m not found for $KVER"
	case $f in /*) MOD_ORDER+=("$f") ;; esac   # "(builtin)" needs nothing
}
[ "$ARCH" = x86_64 ] && for m in $MODS_WANTED; do mod_add "$m"; done

LIST=$WORK/list-sys; : >"$LIST"
if [ "$ARCH" = arm64 ]; then
# Piece "sys" (arm64): Debian's arm64 busybox (its applet links are made by
# l1-init.sh at boot: this host cannot run it to list them) as /bin/sh too,
# and the modules arm64-kernel picked (virtio-mmio/blk, tun, vhost-net).
add "$(dirname "$L1_ARM64_INITRAMFS")/busybox" /bin/busybox
while IFS= read -r m; do
	add "$L1_KDIR/modules/$m" "/lib/modules/$KVER/$m"
	MOD_ORDER+=("/lib/modules/$KVER/$m")
done <"$L1_KDIR/modules.load"
stage_sys() {
	mkdir -p "$1/bin" "$1/sbin" "$1/usr/bin" "$1/usr/sbin" "$1/proc" "$1/sys" "$1/dev" \
		"$1/tmp" "$1/run" "$1/root" "$1/var/tmp"
	ln -s busybox "$1/bin/sh"
}
else
# Piece "sys": busybox, modules, iproute2 ip, iperf3.
add /bin/busybox
# /bin/sh is dash, as on a Debian host: Debian's busybox ash runs its own
# applets before searching PATH, so under it "ip" would be busybox's ip
# (no tuntap) instead of iproute2's.
add_bin /bin/dash /bin/sh
for m in "${MOD_ORDER[@]}"; do add "$m"; done
add_bin "$(command -v ip)" /usr/sbin/ip        # iproute2; keep the name "ip"
add_bin "$(command -v iperf3)" /usr/bin/iperf3
# Tools scenarios use on the L1 side, when the host has them.
for t in debugfs mke2fs e2fsck ethtool; do
	p=$(command -v "$t") && add_bin "$p" "/usr/sbin/$t"
done
[ -f /etc/mke2fs.conf ] && add /etc/mke2fs.conf
stage_sys() {
	local a
	mkdir -p "$1/bin" "$1/sbin" "$1/usr/bin" "$1/usr/sbin" "$1/proc" "$1/sys" "$1/dev" \
		"$1/tmp" "$1/run" "$1/root" "$1/var/tmp"
	for a in $(/bin/busybox --list); do
		case $a in busybox|ip|sh) ;; *) ln -s busybox "$1/bin/$a" ;; esac
	done
}
fi
printf '%s\n' "${MOD_ORDER[@]}" >"$WORK/modules.order"
add "$WORK/modules.order" /rig/modules.order
EXTRA_STAGE=stage_sys
p=$(piece sys) || exit 2
PIECES=("$p")
EXTRA_STAGE=

# Piece "qemu" (with --with-qemu): the binary, its libraries, firmware.
if [ $WITH_QEMU = 1 ] && [ "$ARCH" = arm64 ]; then
	# Debian's arm64 qemu-system-aarch64 and its libraries (guest-images/arm64.sh);
	# no firmware: it boots the kernel directly.
	guest_image ARM64_QEMU arm64-qemu
	[ -n "$ARM64_QEMU" ] || die "no arm64 QEMU (see $LOGDIR/guest-image-arm64-qemu.log)"
	LIST=$WORK/list-qemu; : >"$LIST"
	add_dir "${ARM64_QEMU%/usr/bin/qemu-system-aarch64}" ""
	p=$(piece qemu) || exit 2
	PIECES+=("$p")
elif [ $WITH_QEMU = 1 ]; then
	LIST=$WORK/list-qemu; : >"$LIST"
	add_bin "$HOST_QEMU" /usr/bin/qemu-system-x86_64
	add_dir /usr/share/qemu
	add_dir /usr/share/seabios
	p=$(piece qemu) || exit 2
	PIECES+=("$p")
fi

# Piece "images": the guest kernels and initramfs.
LIST=$WORK/list-images; : >"$LIST"
L1_DEBIAN_KERNEL='' L1_MINIMAL_KERNEL='' L1_GUEST_INITRD=
[ -n "${DEBIAN_KERNEL:-}" ] && { add "$DEBIAN_KERNEL" /rig/images/debian-kernel; L1_DEBIAN_KERNEL=/rig/images/debian-kernel; }
[ -n "${MINIMAL_KERNEL:-}" ] && { add "$MINIMAL_KERNEL" /rig/images/minimal-kernel; L1_MINIMAL_KERNEL=/rig/images/minimal-kernel; }
[ -n "${GUEST_INITRD:-}" ] && { add "$GUEST_INITRD" /rig/images/initramfs.cpio.gz; L1_GUEST_INITRD=/rig/images/initramfs.cpio.gz; }
if [ -s "$LIST" ]; then
	p=$(piece images) || exit 2
	PIECES+=("$p")
fi

# Piece "run" (never cached, always small): init, scripts, minivmm, settings.
LIST=$WORK/list-run; : >"$LIST"
add "$RIG_SRC/l1-init.sh" /init
add "$RIG_SRC/runner.sh" /rig/tests/rig/runner.sh
add "$RIG_SRC/lib.sh" /rig/tests/rig/lib.sh
add "$ROOT/guest-images/run-default.sh" /rig/guest-images/run-default.sh
add "$PTYDRIVE" /rig/bin/ptydrive
add "$WORK/marktime" /rig/bin/marktime
add "$UDSCAT" /rig/bin/udscat
add "$WORK/kvmhold" /rig/bin/kvmhold
L1_KVM_CHECK=
[ "$ARCH" = arm64 ] && { add "$WORK/kvm-check" /rig/bin/kvm-check; L1_KVM_CHECK=/rig/bin/kvm-check; }
while IFS= read -r f; do
	add "$f" "/rig/tests/e2e/${f#"$E2E_SRC"/}"
done < <(find "$E2E_SRC" -path "$E2E_SRC/guest" -prune -o -type f -print | sort)
# The function runner (tests/runner/), which its scenario and benchmark run inside L1.
while IFS= read -r f; do
	add "$f" "/rig/tests/runner/${f#"$ROOT/tests/runner/"}"
done < <(find "$ROOT/tests/runner" -type f | sort)
L1_MINIVMM=
if [ -n "$MINIVMM" ]; then add_bin "$MINIVMM" /rig/bin/minivmm; L1_MINIVMM=/rig/bin/minivmm; fi
# MINIVMM_ALT: a second binary, for A/B benchmarks in one L1 (the datapath
# benchmarks' alt-* configs).
L1_MINIVMM_ALT=
if [ -n "${MINIVMM_ALT:-}" ]; then add_bin "$MINIVMM_ALT" /rig/bin/minivmm-alt; L1_MINIVMM_ALT=/rig/bin/minivmm-alt; fi
# minivmm-runner (runner/), built beside minivmm; it finds minivmm beside itself in L1 too.
L1_RUNNER=
if [ -n "$MINIVMM" ] && [ -x "$(dirname "$MINIVMM")/minivmm-runner" ]; then
	add_bin "$(dirname "$MINIVMM")/minivmm-runner" /rig/bin/minivmm-runner
	L1_RUNNER=/rig/bin/minivmm-runner
fi
L1_UNIT_TESTS_DIR=
if [ -n "$KVM_UNIT_TESTS" ]; then
	while IFS='	' read -r src name; do
		add_bin "$src" "/rig/unit-tests/$name"
	done < <(printf '%s' "$KVM_UNIT_TESTS")
	add_bin /bin/bash /bin/bash     # the test scripts
	# The CLI scripts' images, made here: they are written with Python, which L1 has not.
	mkdir -p "$RUN_TMP/cli-images"
	for f in test_cli_errors.sh test_bad_images.sh; do
		CLI_IMAGES_OUT=$RUN_TMP/cli-images bash "$ROOT/tests/cli/$f" "$MINIVMM" >"$RUN_TMP/cli-images.log" 2>&1 \
			|| { cat "$RUN_TMP/cli-images.log" >&2; die "tests/cli/$f could not make its images"; }
	done
	add_dir "$RUN_TMP/cli-images" /rig/unit-tests/cli-images
	L1_UNIT_TESTS_DIR=/rig/unit-tests
fi
L1_QEMU=
[ $WITH_QEMU = 1 ] && L1_QEMU=/usr/bin/qemu-system-x86_64
[ $WITH_QEMU = 1 ] && [ "$ARCH" = arm64 ] && L1_QEMU=/usr/bin/qemu-system-aarch64
{
	q() { printf "%s='%s'\n" "$1" "$2"; }
	q KVER "$KVER"
	q MINIVMM "$L1_MINIVMM"
	q DEBIAN_KERNEL "$L1_DEBIAN_KERNEL"
	q MINIMAL_KERNEL "$L1_MINIMAL_KERNEL"
	q GUEST_INITRD "$L1_GUEST_INITRD"
	q PTYDRIVE /rig/bin/ptydrive
	q MARKTIME /rig/bin/marktime
	q UDSCAT /rig/bin/udscat
	q RUNNER "$L1_RUNNER"
	q KVM_CHECK "$L1_KVM_CHECK"
	q RIG_ARCH "$ARCH"
	q QEMU "$L1_QEMU"
	q UNIT_TESTS_DIR "$L1_UNIT_TESTS_DIR"
	q LOGDIR /rig-logs
	q SCENARIOS "${SCENARIOS[*]}"
	q INTERACTIVE "$INTERACTIVE"
	# The scenarios' own knobs, when set here, reach them in L1 too.
	knobs=
	for v in GUEST_TIMEOUT RIG_REBOOTS BLK_TRANSPORTS NET_TRANSPORTS NET_VHOST_MODES BENCH_RUNS BENCH_CLONES DEATH_CASES DEATH_VMMS DEATH_TRACE DEATH_QEMU_PCI DP_SECS DP_CONFIGS DP_CELLS DP_EXIT_REASONS NET_VERIFY_MB L1_KVM_AMD_PARAMS; do
		[ -n "${!v:-}" ] && { q "$v" "${!v}"; knobs="$knobs $v"; }
	done
	[ -n "$L1_MINIVMM_ALT" ] && { q MINIVMM_ALT "$L1_MINIVMM_ALT"; knobs="$knobs MINIVMM_ALT"; }
	echo "export KVER MINIVMM DEBIAN_KERNEL MINIMAL_KERNEL GUEST_INITRD PTYDRIVE MARKTIME UDSCAT RUNNER KVM_CHECK RIG_ARCH QEMU UNIT_TESTS_DIR LOGDIR$knobs"
} >"$WORK/env"
add "$WORK/env" /rig/env
p=$(piece run "$WORK") || exit 2
PIECES+=("$p")

# The kernel unpacks concatenated compressed cpio archives in order.
L1_INITRD=$WORK/l1.cpio.gz
cat "${PIECES[@]}" >"$L1_INITRD"
say "L1 initramfs $(du -h "$L1_INITRD" | cut -f1) ready after $(tsince "$T_START")s"

# Results disk: L1 writes a tar archive of its log dir onto it, raw.
OUT_IMG=$RUN_TMP/results.img
truncate -s 256M "$OUT_IMG"

if [ -z "$L1_TIMEOUT" ]; then
	L1_TIMEOUT=120
	for s in "${SCENARIOS[@]}"; do
		lim=$(sed -n 's/^# rig-timeout: *\([0-9][0-9]*\).*/\1/p' "$E2E_SRC/$s.sh" 2>/dev/null | head -n 1)
		L1_TIMEOUT=$((L1_TIMEOUT + ${lim:-300}))
	done
fi

if [ $INTERACTIVE = 1 ]; then
	# The L1 serial port is this terminal, with no QEMU escape character,
	# so minivmm's own Ctrl-A x reaches it; L1 powers off when it exits.
	say "booting L1 (TCG); the guest shell appears in ~30 s; Ctrl-A x or 'poweroff' to leave"
	"$HOST_QEMU" -machine q35 -cpu EPYC,+svm,+npt -smp "${L1_SMP:-2}" -m "${L1_MEM:-4096}" \
		-display none -serial stdio -monitor none -no-reboot \
		-kernel "$L1_KERNEL" -initrd "$L1_INITRD" -append "console=ttyS0 panic=-1 quiet loglevel=1${L1_APPEND:+ $L1_APPEND}" \
		-nic none 2>"$LOGDIR/l1-qemu-stderr.log"
	exit $?
fi

# watch_l1 PID: echoes L1's RIG- lines as they come, and stops an L1 that has
# wedged. L1 enforces each scenario's limit itself; when it does not (its
# kernel hung under TCG: no panic, no exit), QEMU would otherwise run to the
# whole run's limit, past what CI allows. So: a scenario gets its limit + 90 s
# from its RIG-START, the step after a result 180 s, L1's boot 300 s; and
# once L1's heartbeat (an "L1-ALIVE" line every 30 s) has started, 180 s
# without one is a wedge too.
watch_l1() {
	local pid=$1 l now cur=boot deadline=$(($(date +%s) + 300)) alive=0 cons
	exec {cons}< <(tail -n +1 -F --pid="$pid" "$LOGDIR/l1-console.log" 2>/dev/null)
	while :; do
		if IFS= read -r -t 5 -u "$cons" l; then
			l=${l%$'\r'}
			now=$(date +%s)
			case $l in
			# The heartbeat, and anything from L1's init before it starts
			# (a wedge before the first heartbeat counts too).
			L1-ALIVE*|*RIG-L1:*) alive=$now ;;
			*RIG-START*)
				if [[ $l =~ RIG-START\ ([^ ]+)\ \(limit\ ([0-9]+)s\) ]]; then
					cur=${BASH_REMATCH[1]}
					deadline=$((now + BASH_REMATCH[2] + 90))
				fi ;;
			*RIG-RESULT*) cur="the step after ${cur}"; deadline=$((now + 180)) ;;
			esac
			case $l in
			*RIG-*) echo "[+$(tsince "$T_L1")s] RIG-${l#*RIG-}" ;;
			*"Kernel panic"*) echo "[+$(tsince "$T_L1")s] $l" ;;
			esac
		elif (($? <= 128)); then
			break   # tail ended: QEMU is gone
		elif now=$(date +%s); { ((now > deadline)) || ((alive && now - alive > 180)); } \
			&& kill -0 "$pid" 2>/dev/null; then
			if ((now > deadline)); then
				say "L1 is wedged: nothing from $cur within its limit (+ grace); stopping it"
			else
				say "L1 is wedged: no heartbeat for $((now - alive)) s during $cur; stopping it"
			fi
			echo "$cur" >"$RUN_TMP/l1-wedged"
			l1_dump_cpus "$pid"
			kill "$pid" 2>/dev/null
			deadline=$(($(date +%s) + 3600))
		fi
	done
	exec {cons}<&-
}

# Where a wedged L1's CPUs are (it printed nothing): LOGDIR/l1-wedge-cpus.txt,
# its last sample on this output.
l1_dump_cpus() {
	local out=$LOGDIR/l1-wedge-cpus.txt
	if ! command -v python3 >/dev/null; then
		say "no python3: L1's CPUs are not read (tests/rig/l1_cpu_dump.py)"
		return
	fi
	timeout 60 python3 "$ROOT/tests/rig/l1_cpu_dump.py" "$RUN_TMP/l1-monitor.sock" "${L1_KALLSYMS:-}" >"$out" 2>&1
	[ -s "${L1_KALLSYMS:-}" ] || echo "(no symbols yet: ${L1_KALLSYMS:-none} comes from the first L1 that finishes)" >>"$out"
	say "L1's CPUs when it wedged ($out):"
	awk '/^== sample/ { last = "" } /^cpu[0-9]+:/ { last = last "  | " $0 "\n" } END { printf "%s", last }' "$out"
	# Where the emulator's own threads wait (a TCG vCPU thread asleep while
	# its CPU has code to run waits inside QEMU: docs/rig-failure-rates.md).
	local qpid
	qpid=$(pgrep -P "$1" -f qemu-system 2>/dev/null | head -n 1)
	if [ -n "$qpid" ] && command -v gdb >/dev/null; then
		timeout 90 gdb -p "$qpid" -batch -nx -ex "thread apply all bt 12" >"$LOGDIR/l1-wedge-qemu-threads.txt" 2>&1
		say "host QEMU's threads when L1 wedged: $LOGDIR/l1-wedge-qemu-threads.txt ($(grep -c '^Thread ' "$LOGDIR/l1-wedge-qemu-threads.txt") threads)"
	else
		say "host QEMU's threads not read (${qpid:+no gdb}${qpid:-no QEMU process under $1})"
	fi
}

say "booting L1 ($L1_KERNEL, TCG, limit ${L1_TIMEOUT}s): ${SCENARIOS[*]}"
T_L1=$(date +%s.%N)
: >"$LOGDIR/l1-console.log"
timeout -k 10 "$L1_TIMEOUT" "$HOST_QEMU" \
	"${L1_MACHINE[@]}" -accel "tcg,thread=${L1_TCG_THREAD:-multi}" -smp "${L1_SMP:-2}" -m "${L1_MEM:-4096}" \
	-nographic -no-reboot \
	-kernel "$L1_KERNEL" -initrd "$L1_INITRD" \
	-append "console=$L1_CONSOLE panic=-1 quiet${L1_APPEND_RIG:+ $L1_APPEND_RIG}${L1_APPEND:+ $L1_APPEND}" \
	-nic none "${L1_DISK[@]/@OUT@/$OUT_IMG}" -monitor "unix:$RUN_TMP/l1-monitor.sock,server=on,wait=off" \
	</dev/null >"$LOGDIR/l1-console.log" 2>"$LOGDIR/l1-qemu-stderr.log" &
L1_PID=$!
watch_l1 "$L1_PID"
wait "$L1_PID"
L1_RC=$?
L1_PID=
say "L1 exited with status $L1_RC after $(tsince "$T_L1")s"
[ $L1_RC = 124 ] && say "L1 TIMED OUT after ${L1_TIMEOUT}s"

if ! tar -xf "$OUT_IMG" -C "$LOGDIR" 2>"$RUN_TMP/untar.err" || [ ! -s "$LOGDIR/results.txt" ]; then
	say "no log archive came back from L1 (status $L1_RC; $(head -n 1 "$RUN_TMP/untar.err")); using the console"
	echo "---- tail of $LOGDIR/l1-console.log ----"
	tail -n 25 "$LOGDIR/l1-console.log" | tr -d '\r' | sed 's/^/  | /'
fi
# L1's symbols, for the next wedge (l1_dump_cpus); moved, not kept in LOGDIR.
if [ -n "${L1_KALLSYMS:-}" ] && [ -s "$LOGDIR/l1-kallsyms.txt" ]; then
	mv -f "$LOGDIR/l1-kallsyms.txt" "$L1_KALLSYMS"
fi
rm -f "$LOGDIR/l1-kallsyms.txt"
if [ ! -s "$RESULTS" ]; then
	tr -d '\r' <"$LOGDIR/l1-console.log" | sed -n 's/.*\(RIG-RESULT \)/\1/p' >"$RESULTS"
fi
summarise
