#!/bin/sh
# A stand-in for minivmm for function_runner's self-test (selftest.sh): it takes the options the
# runner passes, runs the guest /init's own run_command (cut out of guest-images/init.sh) on this
# host instead of in a VM, writes the console as a serial tty would (CR LF), and exits with the
# command's status as minivmm does for a guest-port write. No KVM needed.
#
# Faults, to check that the runner notices them, chosen by a word in the command:
#   FAKE-NOSTATUS  no END line (as if the guest crashed)    FAKE-GARBLE  one output line damaged
#   FAKE-MISMATCH  exit code differs from the END line       FAKE-HANG    never ends
#   FAKE-TRIPLE    with FAKE_TRIPLE_ONCE set, see below   FAKE-SILENT  with FAKE_SILENT_ONCE set
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
INIT=$HERE/../../guest-images/init.sh

cmdline= console=
while [ $# -gt 0 ]; do
	case $1 in
	--cmdline) cmdline=$2; shift 2 ;;
	--console) console=$2; shift 2 ;;
	--guest-exit) shift ;;
	--*) shift 2 ;;
	*) echo "fake_vmm: unexpected argument $1" >&2; exit 1 ;;
	esac
done
[ -n "$console" ] || { echo "fake_vmm: no --console" >&2; exit 1; }

b64=
for arg in $cmdline; do
	case $arg in mvrun=*) b64=${arg#mvrun=} ;; esac
done

cmd=$(printf '%s' "$b64" | base64 -d)
case $cmd in *FAKE-HANG*) exec sleep 100000 ;; esac
# FAKE_TRIPLE_ONCE=FILE: the first command containing FAKE-TRIPLE (or "uname", for example.sh)
# gets the rig's known boot failure, a triple fault before /init; FILE records that it happened.
if [ -n "${FAKE_TRIPLE_ONCE:-}" ] && [ ! -e "$FAKE_TRIPLE_ONCE" ]; then
	case $cmd in *FAKE-TRIPLE* | *uname*)
		: >"$FAKE_TRIPLE_ONCE"; : >"$console"
		echo "minivmm: vcpu0: guest triple fault" >&2
		echo "minivmm: guest requested a reboot: VM stopped (minivmm does not restart guests)" >&2
		exit 0 ;;
	esac
fi

# FAKE_SILENT_ONCE=FILE: the first command containing FAKE-SILENT (or "cd /tmp", for example.sh)
# gets the other failure seen before /init in the rig: a guest that prints nothing until the
# runner's --timeout stops it.
if [ -n "${FAKE_SILENT_ONCE:-}" ] && [ ! -e "$FAKE_SILENT_ONCE" ]; then
	case $cmd in *FAKE-SILENT* | "cd /tmp"*)
		: >"$FAKE_SILENT_ONCE"; : >"$console"
		exec sleep 100000 ;;
	esac
fi

priv=$(mktemp -d "${TMPDIR:-/tmp}/fake-vmm.XXXXXX")
trap 'rm -rf "$priv"' EXIT
# The guest's function, with its /tmp made private to this fake VM.
sed -n '/^run_command() {/,/^}/p' "$INIT" | sed "s|/tmp/|$priv/|g" >"$priv/fn.sh"
. "$priv/fn.sh"

{
	echo "MINIVMM-GUEST: init started"
	run_command "$b64"
	echo $? >"$priv/status"
} | sed 's/$/\r/' >"$priv/console"
status=$(cat "$priv/status")
case $cmd in
*FAKE-NOSTATUS*) grep -v '^MVRUN-END' "$priv/console" >"$console"; exit 0 ;;
*FAKE-GARBLE*) sed '0,/^MVRUN-OUT /s/^MVRUN-OUT ..../MVRUN-OUT /' "$priv/console" >"$console" ;;
*) cp "$priv/console" "$console" ;;
esac
case $cmd in *FAKE-MISMATCH*) status=$(((status + 1) % 256)) ;; esac
[ "$status" = 0 ] || echo "minivmm: guest exited with status $status" >&2
exit "$status"
