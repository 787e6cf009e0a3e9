#!/bin/sh
# Guest side of tests/e2e/blk.sh, all in one boot: three disks, each found by
# the serial the host gave it (--disk ...,serial=NAME, which the guest shows
# in /sys/block/vdX/serial; which vdX a disk becomes need not follow the order
# of the host's --disk options), named on the kernel command line:
#   blk_rw_serial=NAME       blk_rw.sh runs on it (ext4, a file, sync)
#   blk_ro_serial=NAME       blk_ro.sh (read-only: writes refused, no discard)
#   blk_discard_serial=NAME  blk_discard.sh (32 MiB written, 16 discarded)
# The parts run one after the other (they share /tmp/err), each one even when
# one before it failed; the exit status is the first failing part's.
here=$(dirname "$0")
rw='' ro='' discard=''
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in
        blk_rw_serial=*) rw=${arg#*=} ;;
        blk_ro_serial=*) ro=${arg#*=} ;;
        blk_discard_serial=*) discard=${arg#*=} ;;
    esac
done

# disk_by_serial NAME: print the vdX whose serial is NAME. The driver may
# still be probing the disks: look again each second, for up to 10 s.
disk_by_serial() {
    [ -n "$1" ] || return 1
    for _ in 1 2 3 4 5 6 7 8 9 10; do
        for b in /sys/block/vd*; do
            [ "$(cat "$b/serial" 2>/dev/null)" = "$1" ] && { basename "$b"; return 0; }
        done
        sleep 1
    done
    return 1
}

status=0
# part NAME SERIAL: run blk_NAME.sh on the disk with that serial.
part() {
    if vd=$(disk_by_serial "$2"); then
        echo "MVTEST blk_all $1: /dev/$vd (serial $2)"
        sh "$here/blk_$1.sh" "$vd"
        rc=$?
    else
        echo "MVTEST blk_all $1: no disk with serial '$2' (blk_$1_serial= on the command line)"
        for b in /sys/block/vd*; do
            [ -e "$b" ] && echo "MVTEST blk_all $1: $(basename "$b") has serial '$(cat "$b/serial" 2>/dev/null)'"
        done
        rc=1
    fi
    echo "MVTEST blk_all $1 exit=$rc"
    [ "$status" != 0 ] || status=$rc
}

part rw "$rw"
part ro "$ro"
part discard "$discard"
exit "$status"
