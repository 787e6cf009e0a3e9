#!/bin/bash
# Every bad invocation must end with exit status 1 and exactly one line on
# stderr, "minivmm: error: ...", naming the culprit; never a crash.
set -u
MINIVMM=$1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pass=0 fail=0

. "$(dirname "$0")/expect.sh"

printf 'not a kernel at all\n' > "$tmp/text"
: > "$tmp/empty"
# A bzImage header cut short: boot flag and HdrS present, then nothing.
if ! images_from_host; then
python3 - "$tmp/trunc.bz" <<'PY'
import struct, sys
img = bytearray(0x300)
img[0x1f1] = 2                               # setup_sects
struct.pack_into('<I', img, 0x1f4, 0x10000)  # syssize: 1 MiB of code we do not have
struct.pack_into('<H', img, 0x1fe, 0xaa55)
img[0x200:0x202] = b'\xeb\x66'
img[0x202:0x206] = b'HdrS'
struct.pack_into('<H', img, 0x206, 0x20f)
struct.pack_into('<H', img, 0x236, 1)        # xloadflags: 64-bit entry
open(sys.argv[1], 'wb').write(img)
PY
fi
images_made
truncate -s 300M "$tmp/big.initrd"

expect_error "missing --kernel"
expect_error "unknown option '--frob'" --kernel "$tmp/text" --frob
expect_error "No such file" --kernel "$tmp/nope"
expect_error "not a regular file" --kernel "$tmp"
expect_error "file is empty" --kernel "$tmp/empty"
expect_error "not a kernel" --kernel "$tmp/text"
expect_error "truncated bzImage" --kernel "$tmp/trunc.bz"
expect_error "--cpus 0" --kernel "$tmp/trunc.bz" --cpus 0
expect_error "--cpus 300" --kernel "$tmp/trunc.bz" --cpus 300
expect_error "--disk: serial=123456789012345678901 is not 1 to 20 characters" --kernel "$tmp/trunc.bz" --disk "$tmp/d.img,serial=123456789012345678901"
expect_error "--disk: iops=fast is not a number" --kernel "$tmp/trunc.bz" --disk "$tmp/d.img,iops=fast"
expect_error "--disk: engine=aio is not uring, sync or auto" --kernel "$tmp/trunc.bz" --disk "$tmp/d.img,engine=aio"
expect_error "--mem 4" --kernel "$tmp/trunc.bz" --mem 4
expect_error "--mem lots" --kernel "$tmp/trunc.bz" --mem lots
expect_error "--initrd $tmp/nope" --kernel "$tmp/trunc.bz" --initrd "$tmp/nope"
expect_error "--seccomp" --kernel "$tmp/text" --seccomp sometimes
# The sandbox options are checked before any file is read: the kernel here is junk on purpose.
expect_error "--user no-such-user-minivmm: no such user" --kernel "$tmp/text" --user no-such-user-minivmm
expect_error "--group no-such-group-minivmm: no such group" --kernel "$tmp/text" --group no-such-group-minivmm
expect_error "--chroot $tmp/none: No such file or directory" --kernel "$tmp/text" --chroot "$tmp/none"
expect_error "--chroot $tmp/text: Not a directory" --kernel "$tmp/text" --chroot "$tmp/text"
expect_error "--user: empty value" --kernel "$tmp/text" --user ""
expect_error "--net" --kernel "$tmp/text" --net "tap0,queues=99"
expect_error "option --cmdline needs a value" --kernel "$tmp/text" --cmdline
expect_error "--vsock: cid=2 is not a number from 3" --kernel "$tmp/text" --vsock "cid=2,uds=$tmp/v.sock"
expect_error "--vsock 'cid=3': needs cid=N and uds=PATH" --kernel "$tmp/text" --vsock cid=3
expect_error "--rng: bw=lots is not a number of bytes per second" --kernel "$tmp/text" --rng bw=lots
expect_error "--rng: bw=2000000000000 is not a number" --kernel "$tmp/text" --rng=bw=2000000000000
expect_error "--rng: transport 'usb' is not mmio or pci" --kernel "$tmp/text" --rng transport=usb
expect_error "--rng: unknown setting 'rate'" --kernel "$tmp/text" --rng rate=5
expect_error "--rng: setting 'bw' needs a value" --kernel "$tmp/text" --rng bw
expect_error "--rng: one per VM" --kernel "$tmp/text" --rng --rng=bw=0

out=$("$MINIVMM" --help); rc=$?
if [[ $rc -eq 0 && $out == *"usage: minivmm --kernel PATH"* ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: --help"; fi
out=$("$MINIVMM" --version); rc=$?
if [[ $rc -eq 0 && $out == "minivmm "[0-9]* ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: --version"; fi

# The rest needs a kernel minivmm accepts, and reaches KVM for the limits.
TINY=${2:-}
if [[ -n $TINY && -r /dev/kvm && -w /dev/kvm ]]; then
	expect_error "--initrd $tmp/big.initrd" --kernel "$TINY" --mem 256 --initrd "$tmp/big.initrd"
	expect_error "allows at most" --kernel "$TINY" --cpus 255
	expect_error "more than this host" --kernel "$TINY" --mem 1000000
	# The vsock socket's path is checked when the device is made: its directory, and what is there.
	expect_error "--vsock: vsock socket $tmp/none/v.sock: its directory: No such file" --kernel "$TINY" --vsock "cid=3,uds=$tmp/none/v.sock"
	expect_error "--vsock: vsock socket $tmp/text: exists and is not a socket" --kernel "$TINY" --vsock "cid=3,uds=$tmp/text"
	expect_error "--console $tmp/no/such/dir" --kernel "$TINY" --console "$tmp/no/such/dir"
	# A symlink at the console path is not followed: its target stays as it was.
	echo keep >"$tmp/target"
	ln -s "$tmp/target" "$tmp/console-link"
	expect_error "--console $tmp/console-link: is a symbolic link" --kernel "$TINY" --console "$tmp/console-link"
	if [[ $(cat "$tmp/target") == keep ]]; then pass=$((pass + 1)); else fail=$((fail + 1)); echo "FAIL: the console symlink's target was written"; fi
	expect_error "--disk: image $tmp/nope.img" --kernel "$TINY" --disk "$tmp/nope.img,transport=mmio"
	head -c 1000 /dev/zero > "$tmp/odd.img"
	expect_error "not a multiple of 512" --kernel "$TINY" --disk "$tmp/odd.img,transport=mmio"
	expect_error "--disk: image $tmp: not a regular file" --kernel "$TINY" --disk "$tmp,transport=mmio"
else
	echo "SKIP: KVM-dependent error cases (no usable /dev/kvm or no test guest)"
fi

echo "$pass passed, $fail failed"
[[ $fail -eq 0 ]]
