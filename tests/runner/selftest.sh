#!/bin/sh
# Self-test of function_runner.sh on any host, no KVM: fake_vmm.sh stands in for minivmm and
# runs the guest /init's own run_command here. Checks that commands with quotes, binary output
# and no final newline come back byte for byte with their statuses, that every way a VM can
# fail to report (no status, damaged output, exit code not matching, hang) is reported as such
# with exit status 1, that the example passes and runs a guest that died before /init once
# more, and that bad options and over-long commands are refused with exit 2.
# Run by CTest (function_runner_selftest).
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
RUNNER=$HERE/function_runner.sh
T=$(mktemp -d "${TMPDIR:-/tmp}/runner-selftest.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
: >"$T/kernel"
: >"$T/initrd"
COMMON="--minivmm $HERE/fake_vmm.sh --kernel $T/kernel --initrd $T/initrd"

pass=0 failn=0
check() {   # check WHAT CONDITION...
	_what=$1; shift
	if "$@"; then pass=$((pass + 1)); else failn=$((failn + 1)); echo "FAIL: $_what"; shown_log "$LOG"; fi
}
# The log of the run a failed check is about, once: its tail says why.
shown=
shown_log() {
	case " $shown " in *" $1 "*) return ;; esac
	shown="$shown $1"
	echo "--- last lines of $(basename "$1"):"
	tail -n 15 "$1" 2>/dev/null | sed 's/^/    /'
}
field() { awk -F'\t' -v i="$2" -v c="$3" '$1 == i { print $c }' "$1/results.tsv"; }
not() { ! "$@"; }

# The timeouts leave room for a loaded machine (CI runs this beside ASan tests
# and fuzzers on 2 cores): every VM of a run starts at once.
# 1. Good commands: exact bytes and statuses.
LOG=$T/good.log
# shellcheck disable=SC2086
sh "$RUNNER" $COMMON --out "$T/good" -- \
	'echo "a  b" '"'c\"d'" 'printf "\001\377no newline"; exit 200' 'echo err >&2; kill -9 $$' \
	>"$T/good.log" 2>&1
check "good commands: runner exit 0" [ $? = 0 ]
printf 'a  b c"d\n' >"$T/want1"
printf '\001\377no newline' >"$T/want2"
check "stdout with quotes" cmp -s "$T/good/1/stdout" "$T/want1"
check "binary stdout, no final newline" cmp -s "$T/good/2/stdout" "$T/want2"
check "stderr" [ "$(cat "$T/good/3/stderr")" = err ]
check "statuses 0 200 137" [ "$(field "$T/good" 1 3) $(field "$T/good" 2 3) $(field "$T/good" 3 3)" = "0 200 137" ]
check "summary file" grep -q '^vms=3$' "$T/good/summary"

# 2. Every kind of VM that does not report properly.
LOG=$T/bad.log
# shellcheck disable=SC2086
sh "$RUNNER" $COMMON --timeout 10 --out "$T/bad" -- \
	'true' 'echo x FAKE-NOSTATUS' 'echo x FAKE-GARBLE' 'echo x FAKE-MISMATCH' 'FAKE-HANG' \
	>"$T/bad.log" 2>&1
check "failed VMs: runner exit 1" [ $? = 1 ]
got=$(awk -F'\t' 'NR > 1 { printf "%s ", $2 }' "$T/bad/results.tsv")
check "outcomes (got: $got)" [ "$got" = "ok no-status garbled mismatch timeout " ]
check "summary counts 4 failures" grep -q '^without_status=4$' "$T/bad/summary"

# 3. example.sh: all 20 commands right; a guest that died before /init fails the example,
#    and with EXAMPLE_RETRY_DIED=1 guests that died before /init (a triple fault; a guest
#    silent until --timeout) run once more, saying so.
#    The fake VMM runs the commands on this host: not the one that counts the guest's CPUs.
grep -v '/proc/cpuinfo' "$HERE/example.cmds" >"$T/example.cmds"
LOG=$T/example0.log
# shellcheck disable=SC2086
EXAMPLE_CMDS=$T/example.cmds FAKE_TRIPLE_ONCE=$T/triple0 sh "$HERE/example.sh" \
	$COMMON --timeout 30 --out "$T/example0" >"$T/example0.log" 2>&1
check "example with a guest dead before /init, no retry asked: exit 1" [ $? = 1 ]
check "example: nothing ran again" not grep -q 'running it once more' "$T/example0.log"
LOG=$T/example.log
# shellcheck disable=SC2086
EXAMPLE_RETRY_DIED=1 EXAMPLE_CMDS=$T/example.cmds FAKE_TRIPLE_ONCE=$T/triple FAKE_SILENT_ONCE=$T/silent \
	sh "$HERE/example.sh" $COMMON --timeout 30 --out "$T/example" >"$T/example.log" 2>&1
check "example with 2 guests dead before /init: exit 0" [ $? = 0 ]
check "example: both ran again" grep -q '^example: PASS: 19 commands.*(ran again after the guest died before init: 16 17)$' "$T/example.log"
check "example: the silent one was stopped at its timeout" [ "$(field "$T/example" 17 2)" = timeout ]

# 4. Refused before any VM starts.
refused() {   # refused WHAT MESSAGE-REGEX ARGS...
	_what=$1 _re=$2 LOG=$T/refused.log; shift 2
	sh "$RUNNER" "$@" >"$T/refused.log" 2>&1
	_rc=$?
	check "$_what: exit 2 (got $_rc)" [ $_rc = 2 ]
	check "$_what: message" grep -Eq "$_re" "$T/refused.log"
}
long=$(head -c 1600 /dev/zero | tr '\0' x)
# shellcheck disable=SC2086
refused "over-long command" '^function_runner: error: command 1 is too long' $COMMON --out "$T/long" -- "echo $long"
# shellcheck disable=SC2086
refused "bad --mem" '^function_runner: error: --mem' $COMMON --mem 12x -- true
refused "missing kernel" '^function_runner: error: --kernel: no such file' --kernel "$T/nope" --initrd "$T/initrd" -- true
# shellcheck disable=SC2086
refused "no commands" '^function_runner: error: no commands' $COMMON --out "$T/none" --
# shellcheck disable=SC2086
refused "unknown VMM" '^function_runner: error: --vmm' $COMMON --vmm xen -- true

echo "$pass passed, $failn failed"
[ $failn = 0 ]
