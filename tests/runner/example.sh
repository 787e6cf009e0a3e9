#!/bin/sh
# The function runner's example: the 20 commands of example.cmds, each in its own microVM, all
# started at once; then every exit status, stdout and stderr is checked against example.cmds,
# and so is that the 20 VMs really ran at the same time (each started before any ended).
#
#   example.sh [function_runner options...]     e.g. --kernel K --initrd I --out DIR
#
# Prints the runner's table, then one line per mismatch and "example: PASS ..." or
# "example: FAIL ..."; exit 0 only when all 20 results are right.
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
CMDS=$HERE/example.cmds

OUT=
prev=
for a in "$@"; do
	[ "$prev" = --out ] && OUT=$a
	prev=$a
done
if [ -z "$OUT" ]; then
	OUT=$(mktemp -d "${TMPDIR:-/tmp}/function-runner-example.XXXXXX") || exit 2
	set -- "$@" --out "$OUT"
fi
WORK=$(mktemp -d "${TMPDIR:-/tmp}/example-expect.XXXXXX") || exit 2
trap 'rm -rf "$WORK"' EXIT

# Split example.cmds into the runner's command list and the expected results (N.status,
# N.stdout, N.stderr), numbered as the runner numbers them.
# expected SPEC FILE: write what an example.cmds field says a stream must hold.
# shellcheck disable=SC2059  # a field is a printf format
expected() {
	case $1 in
	-) : >"$2" ;;
	@*) sh -c "${1#@}" >"$2" ;;
	*) printf "$1" >"$2" ;;   # the field is a printf format
	esac
}
tab=$(printf '\t')
n=0
: >"$WORK/commands"
while IFS=$tab read -r st out err cmd; do
	case $st in '' | '#'*) continue ;; esac
	n=$((n + 1))
	printf '%s\n' "$cmd" >>"$WORK/commands"
	echo "$st" >"$WORK/$n.status"
	expected "$out" "$WORK/$n.stdout"
	expected "$err" "$WORK/$n.stderr"
done <"$CMDS"

sh "$HERE/function_runner.sh" "$@" -f "$WORK/commands"
runner_rc=$?

bad=0
complain() { printf 'example: command %s (%s): %s\n' "$1" "$(cat "$OUT/$1/command")" "$2"; bad=$((bad + 1)); }
i=1
while [ $i -le $n ]; do
	d=$OUT/$i
	if [ ! -f "$d/status" ]; then
		complain $i "no result"
	else
		outcome=$(awk -F'\t' -v i=$i '$1 == i { print $2 }' "$OUT/results.tsv")
		[ "$outcome" = ok ] || complain $i "outcome $outcome, want ok (console: $d/console.log, VMM: $d/vmm.log)"
		[ "$(cat "$d/status")" = "$(cat "$WORK/$i.status")" ] ||
			complain $i "status $(cat "$d/status"), want $(cat "$WORK/$i.status")"
		for s in stdout stderr; do
			cmp -s "$d/$s" "$WORK/$i.$s" ||
				complain $i "$s differs: got $(od -An -c "$d/$s" | head -n 2 | tr -s ' \n' ' '), want $(od -An -c "$WORK/$i.$s" | head -n 2 | tr -s ' \n' ' ')"
		done
	fi
	i=$((i + 1))
done

# All at once: the last VM to start started before the first VM to end ended.
overlap=$(cat "$OUT"/*/times 2>/dev/null | awk '
	NR == 1 || $1 > s { s = $1 } NR == 1 || $2 < e { e = $2 }
	END { if (NR == 0) print "none"; else if (s < e) print "yes"; else printf "no (last start %.2f s after first end)", s - e }')
[ "$overlap" = yes ] || { echo "example: the $n VMs did not all run at the same time: $overlap"; bad=$((bad + 1)); }

if [ $bad -eq 0 ] && [ $runner_rc -eq 0 ]; then
	echo "example: PASS: $n commands in $n concurrent microVMs, every status, stdout and stderr as expected"
	exit 0
fi
echo "example: FAIL: $bad wrong result(s), runner exit status $runner_rc (results in $OUT)"
exit 1
