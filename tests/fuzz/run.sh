#!/bin/bash
# Builds the libFuzzer targets with clang + ASan/UBSan and runs each for a
# fixed share of the time given, then prints one result line per target:
#   fuzz_virtq   the split virtqueue (chain parsing) over hostile guest RAM
#   fuzz_config  guest register accesses: PCI config mechanism 1, the
#                virtio-pci BAR, the virtio-mmio window
#   fuzz_kernel  the x86 kernel image probe and loader (bzImage, ELF) on a
#                fake guest RAM, with the initrd placement and boot_params
#   fuzz_options the command-line parser
#   fuzz_blk     virtio-blk's request path on hostile rings and buffers
#   fuzz_platform the 8250 UART, i8042, ACPI power control and guest port
#   fuzz_net_worker virtio-net's worker: TX chains to tap frames, tap frames
#                to RX chains (mergeable or not), on hostile rings
#   fuzz_net_ctrl virtio-net's control queue (RX mode, MAC table and address,
#                VQ_PAIRS_SET) over a fake backend
#   fuzz_arm64_boot the arm64 Image parser, RAM placement and device tree
#   fuzz_snapshot the snapshot state file's parser (--restore)
#   fuzz_vsock_pkt virtio-vsock's packet parser: headers cut across buffers,
#                the checks, the credit arithmetic, the host's CONNECT line
#   fuzz_runner_proto the function runner's wire protocol (runner/proto.c):
#                frame headers and every payload decoder
# Exit status: 0 when every target ran without a crash, 1 when one crashed
# (or leaked, timed out, failed a check), 2 when none crashed but one could
# not be built or seeded.
#
# Usage: tests/fuzz/run.sh [SECONDS]           (default 30: the total, split evenly)
#   OUT=dir (default build-fuzz): binaries, corpora (kept between runs), crash
#   artifacts, full logs. Reproduce a crash: $OUT/fuzz_xxx $OUT/artifacts/crash-...
# Needs clang and libFuzzer's runtime (Debian: clang, libclang-rt-14-dev).
set -uo pipefail
cd "$(dirname "$0")/../.." || exit 2
SECS=${1:-30}
OUT=${OUT:-build-fuzz}
CC=${CC:-clang}
TARGETS=(fuzz_virtq fuzz_config fuzz_kernel fuzz_options fuzz_blk fuzz_platform fuzz_net_worker fuzz_net_ctrl fuzz_arm64_boot
	fuzz_snapshot fuzz_vsock_pkt fuzz_runner_proto)

# Per target: the product sources it links (no KVM code: the targets bring
# fakes), its longest input, and how its seed inputs are written to $2.
srcs() {
	case $1 in
	fuzz_virtq) echo devices/virtio/virtq.c vmm/base/guest_mem.c vmm/base/log_limit.c ;;
	fuzz_config) echo devices/pci/pci_host.c devices/pci/pci_dev.c devices/pci/msix.c devices/virtio/pci.c \
		devices/virtio/mmio.c devices/virtio/transport.c devices/virtio/virtq.c vmm/base/guest_mem.c vmm/base/io_bus.c \
		vmm/base/log_limit.c vmm/base/snap_format.c ;;
	fuzz_kernel) echo arch/x86/boot.c vmm/base/guest_mem.c ;;
	fuzz_options) echo vmm/options.c ;;
	fuzz_platform) echo devices/serial_8250.c devices/i8042.c devices/power_ctl.c devices/debug_port.c \
		vmm/base/io_bus.c vmm/base/snap_format.c ;;
	fuzz_net_worker) echo devices/virtio/virtq.c devices/virtio/iov.c devices/virtio/queue_worker.c vmm/base/thread_start.c devices/net/tap.c \
		devices/net/net_hdr.c vmm/base/guest_mem.c vmm/base/log_limit.c vmm/base/token_bucket.c ;;   # worker.c is included by the target
	fuzz_net_ctrl) echo devices/virtio/virtq.c devices/virtio/iov.c devices/virtio/queue_worker.c vmm/base/thread_start.c devices/net/tap.c \
		devices/net/net_hdr.c devices/net/worker.c devices/net/vhost.c vmm/base/guest_mem.c vmm/base/log_limit.c \
		vmm/base/snap_format.c vmm/base/token_bucket.c ;;   # virtio_net.c: included
	fuzz_arm64_boot) echo arch/arm64/boot.c arch/arm64/fdt.c -lfdt ;;
	fuzz_snapshot) echo vmm/snapshot_parse.c vmm/base/snap_format.c arch/x86/snapshot.c arch/x86/cpu.c \
		devices/virtio/transport.c devices/virtio/virtq.c vmm/base/guest_mem.c vmm/base/log_limit.c ;;
	fuzz_blk) echo devices/virtio/virtq.c devices/virtio/iov.c devices/virtio/queue_worker.c vmm/base/thread_start.c \
		vmm/base/guest_mem.c vmm/base/log_limit.c vmm/base/snap_format.c vmm/base/token_bucket.c \
		devices/virtio/blk_image.c devices/virtio/blk_ranges.c devices/virtio/blk_rate.c devices/virtio/blk_uring.c devices/virtio/blk_poll.c \
		-luring ;;   # blk.c itself is included by the target
	fuzz_vsock_pkt) echo devices/vsock/vsock_pkt.c devices/virtio/iov.c ;;
	fuzz_runner_proto) echo runner/proto.c ;;
	esac
}
max_len() {
	case $1 in
	fuzz_virtq) echo 20496 ;;   # header + the guest RAM image
	fuzz_config) echo 4084 ;;   # header + 340 accesses
	fuzz_kernel) echo 65540 ;;  # header + a 64 KiB image
	fuzz_options) echo 4096 ;;
	fuzz_blk) echo 16388 ;;     # header + the guest RAM image
	fuzz_platform) echo 4096 ;; # 1024 accesses
	fuzz_net_worker) echo 16404 ;;   # header, 8 frame lengths, the guest RAM image
	fuzz_net_ctrl) echo 16388 ;;     # header + the guest RAM image
	fuzz_arm64_boot) echo 8192 ;;    # header, command line, Image
	fuzz_snapshot) echo 65536 ;;     # a one-vCPU state payload is ~20 KiB
	fuzz_vsock_pkt) echo 4160 ;;     # header, a 44-byte packet header, 4 KiB of payload
	fuzz_runner_proto) echo 4096 ;;  # a stream of frames (SEED and ERROR payloads are the longest checked)
	esac
}
make_seeds() {
	case $1 in
	fuzz_virtq) python3 tests/fuzz/make_seeds.py "$2" ;;
	fuzz_config) FUZZ_CONFIG_WRITE_SEEDS=$2 "$OUT/fuzz_config" ;;
	fuzz_kernel) FUZZ_KERNEL_WRITE_SEEDS=$2 "$OUT/fuzz_kernel" ;;
	fuzz_options) FUZZ_OPTIONS_WRITE_SEEDS=$2 "$OUT/fuzz_options" ;;
	fuzz_blk) mkdir -p "$2" && FUZZ_BLK_WRITE_SEEDS=$2 "$OUT/fuzz_blk" ;;
	fuzz_platform) mkdir -p "$2" && FUZZ_PLATFORM_WRITE_SEEDS=$2 "$OUT/fuzz_platform" ;;
	fuzz_net_worker) mkdir -p "$2" && FUZZ_NET_WORKER_WRITE_SEEDS=$2 "$OUT/fuzz_net_worker" ;;
	fuzz_net_ctrl) mkdir -p "$2" && FUZZ_NET_CTRL_WRITE_SEEDS=$2 "$OUT/fuzz_net_ctrl" ;;
	fuzz_arm64_boot) mkdir -p "$2" && FUZZ_ARM64_BOOT_WRITE_SEEDS=$2 "$OUT/fuzz_arm64_boot" ;;
	fuzz_snapshot) mkdir -p "$2" && FUZZ_SNAPSHOT_WRITE_SEEDS=$2 "$OUT/fuzz_snapshot" ;;
	fuzz_vsock_pkt) mkdir -p "$2" && FUZZ_VSOCK_PKT_WRITE_SEEDS=$2 "$OUT/fuzz_vsock_pkt" ;;
	fuzz_runner_proto) mkdir -p "$2" && FUZZ_RUNNER_PROTO_WRITE_SEEDS=$2 "$OUT/fuzz_runner_proto" ;;
	esac
}

mkdir -p "$OUT/artifacts"
if ! echo 'int LLVMFuzzerTestOneInput(const unsigned char *d, unsigned long n) { return 0; }' |
	"$CC" -x c -fsanitize=fuzzer - -o "$OUT/.probe" >/dev/null 2>&1; then
	for t in "${TARGETS[@]}"; do
		echo "$t: ERROR: $CC cannot link libFuzzer (Debian: apt-get install clang libclang-rt-14-dev)"
	done
	exit 2
fi
rm -f "$OUT/.probe"

# The product is warning-clean with gcc; clang's -Wextra also wants every
# field of a positional initializer.
# shellcheck disable=SC2054  # the commas are in -fsanitize=
CFLAGS=(-std=gnu11 -g -O1 -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers
	-Wno-gnu-variable-sized-type-not-at-end
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -I.)

# Builds and runs one target for $2 seconds; prints its result line.
# Returns 0, 1 (crash) or 2 (cannot build or seed).
run_target() {
	local name=$1 secs=$2 short=${1#fuzz_}
	local corpus=$OUT/corpus-$short seeds=$OUT/seeds-$short log=$OUT/$name.log
	mkdir -p "$corpus"
	# shellcheck disable=SC2046
	if ! "$CC" "${CFLAGS[@]}" "tests/fuzz/$name.c" $(srcs "$name") -o "$OUT/$name" >"$OUT/$name.build.log" 2>&1; then
		echo "$name: BUILD FAILED (log: $OUT/$name.build.log)"
		head -5 "$OUT/$name.build.log"
		return 2
	fi
	rm -rf "$seeds"
	make_seeds "$name" "$seeds" || { echo "$name: seed generation failed"; return 2; }

	# -close_fd_mask=2: the product's warnings (one per broken queue, bad
	# ring, failed registration) are dropped; libFuzzer's and the sanitizers'
	# reports still reach the log, and so do the targets' failed checks.
	# New inputs go to the first corpus directory; the seeds are only read.
	touch "$OUT/.start-$name"
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
		"$OUT/$name" -max_total_time="$secs" -timeout=10 -rss_limit_mb=1024 -max_len="$(max_len "$name")" \
		-close_fd_mask=2 -print_final_stats=1 -artifact_prefix="$OUT/artifacts/" \
		"$corpus" "$seeds" >"$log" 2>&1
	local rc=$?

	local runs secs_done eps cov files
	runs=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\1/p' "$log" | tail -1)
	secs_done=$(sed -n 's/^Done \([0-9]*\) runs in \([0-9]*\) second.*/\2/p' "$log" | tail -1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
	files=$(find "$corpus" -type f | wc -l)
	if ((rc == 0)); then
		echo "$name: OK: ${runs:-?} runs in ${secs_done:-?} s (${eps:-?} exec/s), ${cov:-cov: ?}, corpus $files inputs, no crash"
		return 0
	fi
	[[ -n $runs ]] || runs=$(grep -o '^#[0-9]*' "$log" | tail -1 | tr -d '#')
	echo "$name: FAILED (exit $rc) after about ${runs:-?} runs; log: $log"
	grep -E "^(==[0-9]+==ERROR|SUMMARY|$name: check failed|.*runtime error)" "$log" | head -5
	find "$OUT/artifacts" -type f -newer "$OUT/.start-$name" | sed "s|^|  artifact: |"
	return 1
}

share=$((SECS / ${#TARGETS[@]}))
((share >= 1)) || share=1
status=0
for t in "${TARGETS[@]}"; do
	run_target "$t" "$share"
	rc=$?
	if ((rc == 1)); then
		status=1
	elif ((rc == 2 && status == 0)); then
		status=2
	fi
done
exit $status
