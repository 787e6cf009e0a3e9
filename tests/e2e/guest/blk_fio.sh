#!/bin/sh
# Guest side of the verified block load (scenario blk_verify, benchmark
# death_rates): fio on /dev/vda, direct I/O with libaio, in three phases:
#   1. FIO_JOBS jobs of 4 KiB random writes at queue depth 16, each on its
#      own FIO_SIZE slice of the disk, every block checked with crc32c
#      when read back (verify_fatal: the first bad block fails the job);
#   2. 4 KiB random reads, same jobs, FIO_READ_SECS seconds;
#   3. 1 MiB sequential writes, same jobs, one slice each.
# Knobs come from the kernel command line (the kernel gives unknown
# name=value arguments to init as environment variables):
#   fio_jobs (default 4), fio_size (per job, default 48M), fio_read_secs (10),
#   fio_phases (default "verify read seqwrite").
# Prints "MVTEST fio PHASE ok ..." with fio's figures, or "MVTEST fio PHASE
# FAILED rc=N" and the tail of fio's output; exits non-zero on any failure.
dev=/dev/vda
jobs=${fio_jobs:-4}
size=${fio_size:-48M}
read_secs=${fio_read_secs:-10}
phases=${fio_phases:-verify read seqwrite}
[ -b $dev ] || { echo "MVTEST fio: no $dev"; exit 1; }
command -v fio >/dev/null || { echo "MVTEST fio: no fio in the image"; exit 1; }
echo "MVTEST fio start: $(nproc) cpus, $jobs jobs of $size on $dev ($(cat /sys/block/vda/size) sectors)"

common="--filename=$dev --direct=1 --ioengine=libaio --numjobs=$jobs --size=$size --offset_increment=$size --group_reporting --output-format=terse --terse-version=3"
status=0
# run PHASE FIO-ARGS...: one fio run; its terse line gives the figures:
# field 8 read IOPS, 49 write IOPS (terse v3), 7 read KiB/s, 48 write KiB/s.
run() {
    phase=$1; shift
    out=/tmp/fio-$phase.out
    # shellcheck disable=SC2086
    fio --name="$phase" $common "$@" >$out 2>&1
    rc=$?
    if [ $rc -ne 0 ] || grep -qiE 'verify: bad|crc32c: verify failed|bad magic|io_u error' $out; then
        echo "MVTEST fio $phase FAILED rc=$rc"
        tail -n 20 $out | sed 's/^/MVTEST fio out: /'
        status=1
        return 1
    fi
    awk -F';' -v p="$phase" '/^3;/ { printf "MVTEST fio %s ok read_iops=%s read_kibs=%s write_iops=%s write_kibs=%s errors=%s\n", p, $8, $7, $49, $48, $5 }' $out
}
for phase in $phases; do
    case $phase in
        verify) run verify --rw=randwrite --bs=4k --iodepth=16 --verify=crc32c --verify_fatal=1 \
                    --verify_backlog=1024 --do_verify=1 ;;
        read) run read --rw=randread --bs=4k --iodepth=16 --time_based --runtime="$read_secs" ;;
        seqwrite) run seqwrite --rw=write --bs=1M --iodepth=8 ;;
        *) echo "MVTEST fio: unknown phase $phase"; status=1 ;;
    esac
done
echo "MVTEST fio done status=$status"
exit $status
