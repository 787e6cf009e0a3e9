#!/bin/sh
# /init of the minivmm guest initramfs (PID 1), put there by build.sh. /bin/sh is dash (see
# build.sh: busybox sh would run busybox's ip instead of iproute2's); the tools are busybox's.
#
# With "mvtest=NAME" on the kernel command line it runs /etc/mvtest/NAME.sh (tests/e2e/guest/ in
# the repo), prints "MINIVMM-GUEST: test NAME exit=STATUS" and powers off; the e2e tests read the
# console for these lines. With "mvrun=BASE64" it runs one shell command for the function runner
# (tests/runner/, see run_command below). With "mvagent=1" it runs the function runner's guest
# agent (runner/agent/mvagent.c: jobs over vsock, see run_agent below). Without any, it gives an
# interactive shell.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
export HOME=/root

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# DEVTMPFS_MOUNT does not apply to an initramfs root: mount /dev ourselves.
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /tmp
mkdir -p /mnt   # for tests that mount a disk

# Debian's kernel has virtio and ext4 as modules; the minimal kernel has them built in and no
# modules at all, so there is nothing for it under /lib/modules/$(uname -r) and this is skipped.
moddir=/lib/modules/$(uname -r)
if [ -r "$moddir/minivmm-load-order" ]; then
    while read -r mod; do
        insmod "$moddir/$mod" 2>/dev/null   # a module may legitimately fail (crc32c_intel)
    done <"$moddir/minivmm-load-order"
fi

hostname minivmm-guest
ip link set lo up 2>/dev/null
echo "MINIVMM-GUEST: init started"

# mvrun=BASE64: run the shell command BASE64 decodes to (sh, cwd /, stdin /dev/null), then
# print its stdout and stderr base64-encoded between MVRUN- lines, so that the host gets them
# byte for byte whatever they contain (no CR/LF translation by the tty, no confusion with
# kernel messages or with our own lines), and end the VM with the command's exit status
# through the guest port (mvexit). The END line carries the byte counts: the host checks the
# decoded output against them.
run_command() {
    unset mvrun mvtest   # the kernel hands unknown name=value arguments to init as variables
    if ! printf '%s' "$1" | base64 -d >/tmp/mvrun.sh 2>/dev/null; then
        echo "MVRUN-ERROR mvrun= is not valid base64"
        return 126
    fi
    (cd / && sh /tmp/mvrun.sh </dev/null >/tmp/mvrun.out 2>/tmp/mvrun.err)
    status=$?
    echo "MVRUN-BEGIN"
    base64 /tmp/mvrun.out | sed 's/^/MVRUN-OUT /'
    base64 /tmp/mvrun.err | sed 's/^/MVRUN-ERR /'
    echo "MVRUN-END status=$status out=$(wc -c </tmp/mvrun.out) err=$(wc -c </tmp/mvrun.err)"
    return $status
}

# mvagent=1: the function runner's agent as this VM's only job. It listens on vsock port 52 and
# serves each host connection (one job each) in a child of its own; it never exits unless it
# cannot listen. Debian's kernel has vsock as modules (insmod'ed above from the load order; the
# modprobe is for a kernel whose modules were not in that list); the minimal kernel has it built
# in, and modprobe fails quietly.
run_agent() {
    unset mvagent mvtest mvrun   # the kernel hands unknown name=value arguments to init as variables
    modprobe -q vmw_vsock_virtio_transport 2>/dev/null
    mvagent </dev/null
    echo "MINIVMM-GUEST: mvagent exited with status $?" >&2
}

test_name='' run_b64='' agent=''
read -r cmdline </proc/cmdline
for arg in $cmdline; do
    case $arg in
        mvtest=*) test_name=${arg#mvtest=} ;;
        mvrun=*) run_b64=${arg#mvrun=} ;;
        mvagent=1) agent=1 ;;
    esac
done

if [ -n "$run_b64" ]; then
    run_command "$run_b64"
    # Only returns when nothing listens at the guest port; then power off as below.
    mvexit $?
elif [ -n "$agent" ]; then
    run_agent
elif [ -n "$test_name" ]; then
    script=/etc/mvtest/$test_name.sh
    if [ -f "$script" ]; then
        sh "$script"
        status=$?
    else
        echo "MINIVMM-GUEST: no test script $script" >&2
        status=127
    fi
    echo "MINIVMM-GUEST: test $test_name exit=$status"
else
    # "poweroff"/"reboot" without -f signal PID 1 and expect an init daemon to act on it; this
    # script cannot (a trap set here runs only after the shell below has exited). So the shell
    # gets functions that do it directly. ENV is read by interactive shells.
    cat >/etc/shrc <<'SHRC'
poweroff() { sync; command poweroff -f; }
reboot() { sync; command reboot -f; }
halt() { sync; command halt -f; }
PS1='minivmm-guest:$PWD# '
SHRC
    echo "minivmm guest shell; type poweroff to leave"
    # setsid + cttyhack: a new session whose controlling tty is the console, for job control
    # (Ctrl-C, Ctrl-Z); /dev/console itself cannot be a controlling tty. The full path matters:
    # busybox applets that run a program pick their own applet for a bare name ("sh" = ash).
    ENV=/etc/shrc setsid cttyhack /bin/sh
fi

# -f: no init daemon to ask; power off right away (via ACPI on minivmm and QEMU). busybox syncs.
poweroff -f
# Only reached if powering off failed: PID 1 must not exit (that panics the kernel).
echo "MINIVMM-GUEST: poweroff failed" >&2
while :; do sleep 3600; done
