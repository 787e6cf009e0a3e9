#!/bin/bash
# The datapath table from the "DP-ROW" lines of an L1 console log, for a
# datapath_blk or datapath_net run whose L1 died before its logs came back:
#   tests/bench/rig/dp_table.sh LOGDIR/l1-console.log blk|net
# The rows are the ones datapath.inc wrote to DP_TSV; the pairs (which config
# is set against which) are the scenario's.
set -euo pipefail
[ $# = 2 ] || { echo "usage: $0 L1_CONSOLE_LOG blk|net" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
pairs=$(sed -n '/^\t"mv-/{s/^\t"\(.*\)"$/\1/p}' "$here/datapath_$2.sh")
[ -n "$pairs" ] || { echo "no pairs in $here/datapath_$2.sh" >&2; exit 2; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
tr -d '\r' <"$1" | sed -n 's/^DP-ROW\t//p' >"$tmp/rows.tsv"
[ -s "$tmp/rows.tsv" ] || { echo "no DP-ROW lines in $1" >&2; exit 1; }
# dp_report from datapath.inc, without the rest of it (its set-up is L1's).
eval "$(sed -n '/^dp_report() {/,/^}/p; /^dp_exit_report() {/,/^}/p' "$here/datapath.inc")"
DP_TSV=$tmp/rows.tsv
dp_report "$pairs"
DP_SVM=1 dp_exit_report   # the x86 rig's CPU is AMD's
