#!/bin/sh
# function_runner.sh: run shell commands, each in its own microVM, all at once, and collect
# every command's exit status, stdout and stderr. See README.md next to this file.
#
#   function_runner.sh [options] -f FILE        (one command per line)
#   function_runner.sh [options] -- CMD...      (one command per argument)
#
# POSIX sh with busybox or coreutils tools: it runs on a host with hardware KVM and inside the
# nested rig's L1 (dash + busybox).
set -u

usage() {
	cat <<'EOF'
usage: function_runner.sh [options] (-f FILE | -- CMD...)
  -f FILE         commands, one per line (blank lines and lines starting with # skipped)
  --kernel PATH   guest kernel (default $MINIMAL_KERNEL, else $DEBIAN_KERNEL)
  --initrd PATH   guest initramfs with mvrun= support (default $GUEST_INITRD)
  --vmm minivmm|qemu   which VMM starts the microVMs (default minivmm; qemu: QEMU microvm,
                  for comparison)
  --minivmm PATH  (default $MINIVMM, else build/minivmm of this checkout)
  --qemu PATH     (default $QEMU, else qemu-system-x86_64)
  --mem MiB       guest memory per VM (default 128)
  --jobs N        at most N VMs at a time (default: all commands at once)
  --timeout S     seconds one VM may take before it is stopped (default 120)
  --out DIR       where the results go (default: a new directory under ${TMPDIR:-/tmp})
  --append STR    more kernel command line (default "quiet")
  --quiet         no result table, only the summary line
Results: DIR/results.tsv (one line per command), DIR/summary (the figures of the last line)
and DIR/N/{command,stdout,stderr,status,console.log,vmm.log}. Exit status: 0 when every VM returned a verified status (whatever the
commands' statuses were), 1 when some did not (timeout, VMM error, output lost), 2 usage.
EOF
}

die() { echo "function_runner: error: $*" >&2; exit 2; }
now() { cut -d' ' -f1 /proc/uptime; }

HERE=$(cd "$(dirname "$0")" && pwd)
KERNEL=${MINIMAL_KERNEL:-${DEBIAN_KERNEL:-}}
INITRD=${GUEST_INITRD:-}
VMM=minivmm
MINIVMM_BIN=${MINIVMM:-$HERE/../../build/minivmm}
QEMU_BIN=${QEMU:-qemu-system-x86_64}
MEM=128
JOBS=0
TIMEOUT=120
OUT=
APPEND=quiet
QUIET=0
CMDFILE=

while [ $# -gt 0 ]; do
	case $1 in
	-f) [ $# -ge 2 ] || die "-f needs a file"; CMDFILE=$2; shift 2 ;;
	--kernel) KERNEL=$2; shift 2 ;;
	--initrd) INITRD=$2; shift 2 ;;
	--vmm) VMM=$2; shift 2 ;;
	--minivmm) MINIVMM_BIN=$2; shift 2 ;;
	--qemu) QEMU_BIN=$2; shift 2 ;;
	--mem) MEM=$2; shift 2 ;;
	--jobs) JOBS=$2; shift 2 ;;
	--timeout) TIMEOUT=$2; shift 2 ;;
	--out) OUT=$2; shift 2 ;;
	--append) APPEND=$2; shift 2 ;;
	--quiet) QUIET=1; shift ;;
	-h|--help) usage; exit 0 ;;
	--) shift; break ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done

is_uint() { case $1 in '' | *[!0-9]*) return 1 ;; esac; }
is_uint "$MEM" && [ "$MEM" -gt 0 ] || die "--mem: not a size in MiB: $MEM"
is_uint "$JOBS" || die "--jobs: not a number: $JOBS"
is_uint "$TIMEOUT" && [ "$TIMEOUT" -gt 0 ] || die "--timeout: not a number of seconds: $TIMEOUT"
[ -n "$KERNEL" ] || die "no guest kernel: give --kernel (or set MINIMAL_KERNEL/DEBIAN_KERNEL)"
[ -f "$KERNEL" ] || die "--kernel: no such file: $KERNEL"
[ -n "$INITRD" ] || die "no guest initramfs: give --initrd (or set GUEST_INITRD)"
[ -f "$INITRD" ] || die "--initrd: no such file: $INITRD"
case $VMM in
minivmm) [ -x "$MINIVMM_BIN" ] || die "--minivmm: not an executable: $MINIVMM_BIN" ;;
qemu) command -v "$QEMU_BIN" >/dev/null || die "--qemu: not found: $QEMU_BIN" ;;
*) die "--vmm: minivmm or qemu, not $VMM" ;;
esac
if [ -n "$CMDFILE" ]; then
	[ $# -eq 0 ] || die "give commands with -f FILE or after --, not both"
	[ -r "$CMDFILE" ] || die "-f: cannot read $CMDFILE"
fi

if [ -z "$OUT" ]; then
	OUT=$(mktemp -d "${TMPDIR:-/tmp}/function-runner.XXXXXX") || die "cannot make a results directory"
fi
mkdir -p "$OUT" || die "cannot create $OUT"
[ -z "$(ls -A "$OUT")" ] || die "--out: $OUT is not empty"

# Number the commands: DIR/N/command holds command N exactly (no trailing newline added).
N=0
add_command() {
	N=$((N + 1))
	mkdir "$OUT/$N" || die "cannot create $OUT/$N"
	printf '%s' "$1" >"$OUT/$N/command"
}
if [ -n "$CMDFILE" ]; then
	while IFS= read -r line || [ -n "$line" ]; do
		case $line in '' | '#'*) continue ;; esac
		add_command "$line"
	done <"$CMDFILE"
else
	for c in "$@"; do add_command "$c"; done
fi
[ "$N" -gt 0 ] || die "no commands"
[ "$JOBS" -eq 0 ] && JOBS=$N

# The command goes to the guest's /init as mvrun=<base64> on the kernel command line (see
# guest-images/init.sh). Base64 needs no quoting anywhere on the way (its alphabet has no
# blank, quote or glob character) and keeps every byte. Linux takes at most 2047 bytes of
# command line on x86 (COMMAND_LINE_SIZE 2048), which leaves about 1.4 KiB for the command.
CMDLINE_MAX=2047
i=1
while [ $i -le "$N" ]; do
	b64=$(base64 <"$OUT/$i/command" | tr -d '\n')
	line="console=ttyS0 panic=-1 $APPEND mvrun=$b64"
	[ ${#line} -le $CMDLINE_MAX ] ||
		die "command $i is too long: its kernel command line would be ${#line} bytes, at most $CMDLINE_MAX (about 1.4 KiB of command)"
	printf '%s' "$line" >"$OUT/$i/cmdline"
	i=$((i + 1))
done

# run_vm I: boot VM I, wait for it, record its exit code and start/end times.
run_vm() {
	d=$OUT/$1
	cmdline=$(cat "$d/cmdline")
	t0=$(now)
	case $VMM in
	minivmm)
		timeout -s TERM -k 5 "$TIMEOUT" "$MINIVMM_BIN" --guest-exit --cpus 1 --mem "$MEM" \
			--kernel "$KERNEL" --initrd "$INITRD" --cmdline "$cmdline" \
			--console "$d/console.log" </dev/null >"$d/vmm.log" 2>&1
		;;
	qemu)
		# isa-debug-exit at minivmm's guest port: the guest's mvexit works unchanged.
		timeout -s TERM -k 5 "$TIMEOUT" "$QEMU_BIN" -enable-kvm -M microvm -cpu host \
			-smp 1 -m "$MEM" -no-reboot -nodefaults -no-user-config -display none \
			-monitor none -serial "file:$d/console.log" \
			-device isa-debug-exit,iobase=0x4f0,iosize=1 \
			-kernel "$KERNEL" -initrd "$INITRD" -append "$cmdline" \
			</dev/null >"$d/vmm.log" 2>&1
		;;
	esac
	echo $? >"$d/rc"
	echo "$t0 $(now)" >"$d/times"
}

# worker W: runs VMs W, W+JOBS, W+2*JOBS... one after the other.
worker() {
	i=$1
	while [ "$i" -le "$N" ]; do
		run_vm "$i"
		i=$((i + JOBS))
	done
}

T0=$(now)
pids=
w=1
while [ $w -le "$JOBS" ] && [ $w -le "$N" ]; do
	worker $w &
	pids="$pids $!"
	w=$((w + 1))
done
# shellcheck disable=SC2086
wait $pids
T1=$(now)

# collect I: decode VM I's output and decide its outcome. Writes DIR/I/{stdout,stderr,status}
# and prints "outcome status secs out_bytes err_bytes".
#   ok         the guest's END line and the VMM's exit code agree on the status
#   timeout    stopped after --timeout seconds
#   no-status  the VM ended without the END line (guest crashed, powered off, VMM error)
#   mismatch   the VMM's exit code is not the status the guest printed
#   garbled    the decoded output does not have the byte counts the guest printed
collect() {
	d=$OUT/$1
	rc=$(cat "$d/rc")
	set -- $(cat "$d/times")
	secs=$(awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }')
	if [ -f "$d/console.log" ]; then tr -d '\r' <"$d/console.log" >"$d/console.txt"; else : >"$d/console.txt"; fi
	sed -n 's/^MVRUN-OUT //p' "$d/console.txt" | base64 -d >"$d/stdout" 2>/dev/null
	sed -n 's/^MVRUN-ERR //p' "$d/console.txt" | base64 -d >"$d/stderr" 2>/dev/null
	end=$(sed -n 's/^MVRUN-END status=\([0-9]*\) out=\([0-9]*\) err=\([0-9]*\)$/\1 \2 \3/p' "$d/console.txt" | tail -n 1)
	rm -f "$d/console.txt"
	outb=$(wc -c <"$d/stdout" | tr -d ' ')
	errb=$(wc -c <"$d/stderr" | tr -d ' ')
	status=-
	if awk -v s="$secs" -v t="$TIMEOUT" 'BEGIN { exit !(s >= t) }'; then
		outcome=timeout
	elif [ -z "$end" ]; then
		outcome=no-status
	else
		set -- $end
		status=$1
		case $VMM in
		minivmm) want_rc=$status ;;
		qemu) want_rc=$(((status * 2 + 1) % 256)) ;;   # isa-debug-exit: (value << 1) | 1
		esac
		if [ "$rc" != "$want_rc" ]; then
			outcome=mismatch
		elif [ "$outb" != "$2" ] || [ "$errb" != "$3" ]; then
			outcome=garbled
		else
			outcome=ok
		fi
	fi
	echo "$status" >"$d/status"
	echo "$outcome $status $secs $outb $errb"
}

# show FILE WIDTH: the first bytes of FILE on one line, at most WIDTH characters, newlines as \n,
# other control bytes and non-ASCII as ?.
show() {
	_s=$(head -c "$2" "$1" | od -An -v -tu1 | awk '
		{ for (i = 1; i <= NF; i++) {
			c = $i + 0
			if (c == 10) s = s "\\n"
			else if (c >= 32 && c < 127) s = s sprintf("%c", c)
			else s = s "?"
		} }
		END { print s }')
	if [ ${#_s} -gt "$2" ] || [ "$(wc -c <"$1")" -gt "$2" ]; then
		printf '%s...' "$(printf '%s' "$_s" | cut -c "1-$(($2 - 3))")"
	else
		printf '%s' "$_s"
	fi
}

failed=0
secs_sum=0
printf 'n\toutcome\tstatus\tsecs\tstdout_bytes\tstderr_bytes\n' >"$OUT/results.tsv"
[ $QUIET = 1 ] || printf '%3s %-9s %6s %7s  %-28s %-16s %s\n' '#' outcome status secs stdout stderr command
i=1
while [ $i -le "$N" ]; do
	r=$(collect $i)
	set -- $r
	printf '%s\t%s\t%s\t%s\t%s\t%s\n' $i "$1" "$2" "$3" "$4" "$5" >>"$OUT/results.tsv"
	[ "$1" = ok ] || failed=$((failed + 1))
	secs_sum=$(awk -v a="$secs_sum" -v b="$3" 'BEGIN { print a + b }')
	if [ $QUIET = 0 ]; then
		printf '%3s %-9s %6s %7s  %-28s %-16s %s\n' $i "$1" "$2" "$3" \
			"$(show "$OUT/$i/stdout" 28)" "$(show "$OUT/$i/stderr" 16)" "$(show "$OUT/$i/command" 40)"
	fi
	i=$((i + 1))
done
# The same figures for scripts (the benchmark): DIR/summary, "name=value" lines.
awk -v n="$N" -v j="$JOBS" -v f="$failed" -v w="$(awk -v a="$T0" -v b="$T1" 'BEGIN { print b - a }')" \
	-v s="$secs_sum" -v vmm="$VMM" 'BEGIN {
	printf "vms=%d\nvmm=%s\njobs=%d\nwall_secs=%.2f\nvms_per_sec=%.3f\nmean_vm_secs=%.2f\nwithout_status=%d\n",
		n, vmm, j, w, (w > 0 ? n / w : 0), s / n, f }' >"$OUT/summary"
. "$OUT/summary"
echo "function_runner: $vms VMs ($vmm, $jobs at a time) in $wall_secs s: $vms_per_sec VMs/s," \
	"$mean_vm_secs s per VM on average, $without_status without a verified status; results in $OUT"
[ $failed -eq 0 ]
