#!/bin/sh
# Failure rates under load (rig scenario, run by tests/bench/death_rates.sh,
# one L1 per round): the same guest workload under minivmm and under QEMU
# microvm, alternated in one L1, each run classified by how it ended.
#
#   DEATH_CASES="fio:mmio:4 fio:pci:4 fio:mmio:4:queues=1 boot:mmio:4 iperf:pci:4:vhost=on ..."
#       (WORKLOAD:TRANSPORT:VCPUS[:OPTION]; fio's disk has one queue per vCPU under
#       both VMMs unless queues=N says otherwise)
#   DEATH_VMMS="minivmm qemu"     (QEMU is microvm on its virtio-mmio; pci cases run it
#                                  with -M microvm,pcie=on only with DEATH_QEMU_PCI=1; "minivmm/VAR=VALUE"
#                                  runs minivmm with VAR=VALUE in its environment, "qemu/ARG"
#                                  QEMU with ARG added)
#   BENCH_RUNS=N                  (runs of each case per VMM in this L1)
#
# Workloads: fio = tests/e2e/guest/blk_fio.sh (crc32c-verified random writes,
# random reads, sequential writes) on a 200 MiB raw image on L1's tmpfs;
# boot = boot to init and power off; iperf = tests/e2e/guest/net_iperf.sh
# over a 4-queue tap (workers or vhost-net).
#
# Each run prints "RIG-RUN <case> <vmm> <n> <outcome> <secs> <detail>" on
# L1's console as soon as it ends ("RIG-RUNSTART ..." before it starts), so
# the host can attribute an L1 death to the run it interrupted. Outcomes: ok,
# verify (fio found bad data or failed), triple (L2 triple fault), panic (L2
# oops/panic), hang-rcu / hang-lockup / hang (timed out: RCU stall, soft
# lockup, neither), vmm-error, other.
# rig-timeout: 7200
# rig-needs: qemu
GUEST_TIMEOUT=${GUEST_TIMEOUT:-900}   # before lib.sh, which defaults it to 120
. "${RIG_LIB:-$(dirname "$0")/../../rig/lib.sh}"

need_minivmm
need_file DEBIAN_KERNEL
need_file GUEST_INITRD
CASES=${DEATH_CASES:-fio:mmio:4}
VMMS=${DEATH_VMMS:-minivmm qemu}
RUNS=${BENCH_RUNS:-1}
MEM=512
img=/tmp/death.img

# DEATH_TRACE=1 (L1 only): KVM's tracepoints (exits, injected interrupts,
# NPT faults) recorded during each run in L1's ring buffer; a run that does
# not end ok keeps the last 3000 lines as LOGDIR/NAME.trace.
TRACE=
if [ "${DEATH_TRACE:-0}" = 1 ]; then
	TRACE=/sys/kernel/tracing
	[ -d $TRACE/events ] || mount -t tracefs tracefs $TRACE 2>/dev/null
	if [ -d $TRACE/events/kvm ]; then
		echo 4096 >$TRACE/buffer_size_kb
		for e in kvm_exit kvm_emulate_insn kvm_inj_virq kvm_inj_exception kvm_page_fault kvm_mmio kvm_pio kvm_apic_accept_irq kvm_set_irq kvm_ioapic_set_irq kvm_msi_set_irq kvm_eoi kvm_pv_eoi; do
			[ -d $TRACE/events/kvm/$e ] && echo 1 >$TRACE/events/kvm/$e/enable
		done
	else
		note "DEATH_TRACE: no KVM tracepoints in $TRACE"; TRACE=
	fi
fi

# progress LINE: to this scenario's output and, in L1, live on the console.
progress() {
	echo "$*"
	[ -e /rig/env ] && [ -w /dev/console ] && echo "$*" >/dev/console
	return 0
}

# classify LOG RC: prints "outcome detail".
classify() {
	_l=$(tr -d '\r' <"$1")
	_has() { printf '%s\n' "$_l" | grep -Eq -- "$1"; }
	_first() { printf '%s\n' "$_l" | grep -E -- "$1" | head -n 1 | cut -c1-90 | tr ' ' '_'; }
	if [ "$2" = 124 ]; then
		if _has 'rcu: INFO: rcu_(preempt|sched) (self-)?detected stall|rcu_preempt kthread timer wakeup'; then
			echo "hang-rcu $(_first 'timer wakeup|detected stall')"
		elif _has 'soft lockup'; then
			echo "hang-lockup $(_first 'soft lockup')"
		else
			echo "hang $(printf '%s\n' "$_l" | grep -v '^\[' | grep . | tail -n 1 | cut -c1-60 | tr ' ' '_')"
		fi
		return
	fi
	if _has 'Kernel panic|Oops|BUG: |general protection fault'; then
		echo "panic $(_first 'Kernel panic|Oops|BUG: |general protection')"
	elif _has 'MVTEST fio [a-z]* FAILED|MVTEST fio: '; then
		echo "verify $(_first 'FAILED|MVTEST fio: ')"
	elif _has 'guest triple fault'; then
		echo "triple $(_first 'guest triple fault')"
	elif _has '^minivmm: error'; then
		echo "vmm-error $(_first '^minivmm: error')"
	elif [ "$2" != 0 ] && _has '^qemu-system-[a-z0-9_]+: '; then
		# QEMU refused its command line or failed to start: not a guest death.
		echo "vmm-error $(_first '^qemu-system-[a-z0-9_]+: ')"
	elif [ "$3" = ok ]; then
		echo "ok -"
	elif ! _has 'reboot: (Power down|Restarting)'; then
		# QEMU says nothing on a triple fault (-no-reboot: it just exits 0);
		# the kernel always says "reboot: ..." before its own reset or poweroff.
		echo "triple silent-reset_after:$(printf '%s\n' "$_l" | grep . | tail -n 1 | cut -c1-50 | tr ' ' '_')"
	else
		echo "other rc=$2"
	fi
}

# one CASE VMM N: one run.
one() {
	_case=$1 _vmm=$2 _n=$3
	_w=$(echo "$_case" | cut -d: -f1) _tr=$(echo "$_case" | cut -d: -f2) _cpus=$(echo "$_case" | cut -d: -f3)
	_opt=$(echo "$_case" | cut -d: -f4)
	_name=death-$(echo "$_case-$_vmm" | tr ':=,/' '----')-$_n
	_cmd="console=ttyS0 panic=-1"
	_mdev= _qdev= _ok='MINIVMM-GUEST: init started'
	# QEMU: microvm's own virtio-mmio, or its PCIe host bridge (pcie=on) for pci.
	_qbus=device _qmach=microvm
	[ "$_tr" = pci ] && _qbus=pci _qmach=microvm,pcie=on
	case $_w in
	fio)
		rm -f $img
		truncate -s 200M $img
		_cmd="$_cmd mvtest=blk_fio"
		# Like for like: as many queues under both VMMs (minivmm's default is
		# one per vCPU; QEMU's virtio-blk-device has one unless told).
		_q=$_cpus
		case $_opt in queues=*) _q=${_opt#queues=} ;; esac
		_mdev="--disk $img,queues=$_q,transport=$_tr"
		_qdev="-drive id=d0,file=$img,format=raw,if=none,cache=writeback,aio=threads -device virtio-blk-$_qbus,drive=d0,num-queues=$_q"
		_ok='MVTEST fio done status=0'
		;;
	boot)
		_cmd="$_cmd mvtest=marker"   # /init without a test would wait at a shell
		_ok='MINIVMM-GUEST: test marker exit=0'
		;;
	iperf)
		_cmd="$_cmd mvtest=net_iperf"
		_mdev="--net tap0,queues=4,$_opt,transport=$_tr"
		_qv=off; [ "$_opt" = vhost=on ] && _qv=on
		_qdev="-netdev tap,id=n0,ifname=tap0,script=no,downscript=no,queues=4,vhost=$_qv -device virtio-net-$_qbus,netdev=n0,mq=on"
		# romfile=: no option ROM (microvm has no firmware to run it).
		[ "$_tr" = pci ] && _qdev="$_qdev,vectors=10,romfile="
		_ok='MVTEST net rx: [0-9.]+ [KMG]bit/s'
		iperf_server_start 10.0.2.1
		;;
	esac
	progress "RIG-RUNSTART $_case $_vmm $_n"
	[ -n "$TRACE" ] && { : >$TRACE/trace; echo 1 >$TRACE/tracing_on; }
	case $_vmm in
	qemu*)
		# "qemu/ARG": QEMU with one more argument (A/B experiments, e.g. qemu/-mem-prealloc).
		_qarg=
		case $_vmm in qemu/*) _qarg=${_vmm#qemu/} ;; esac
		# shellcheck disable=SC2086
		run_cmd "$_name" "$QEMU" -enable-kvm -M $_qmach -cpu host -smp "$_cpus" -m $MEM -nographic \
			-no-reboot -kernel "$DEBIAN_KERNEL" -initrd "$GUEST_INITRD" -append "$_cmd" $_qdev $_qarg
		;;
	*)
		# "minivmm/VAR=VALUE": minivmm with VAR=VALUE in its environment (A/B experiments).
		_env=
		case $_vmm in minivmm/*) _env=${_vmm#minivmm/} ;; esac
		# shellcheck disable=SC2086
		run_cmd "$_name" env $_env "$MINIVMM" --console stdio --guest-exit --cpus "$_cpus" --mem $MEM --kernel "$DEBIAN_KERNEL" \
			--initrd "$GUEST_INITRD" --cmdline "$_cmd" $_mdev
		;;
	esac
	_res=
	tr -d '\r' <"$GUEST_LOG" | grep -Eq -- "$_ok" && _res=ok
	[ "$_w" = boot ] && ! tr -d '\r' <"$GUEST_LOG" | grep -q 'reboot: Power down' && _res=
	set -- $(classify "$GUEST_LOG" "$GUEST_RC" "$_res")
	if [ -n "$TRACE" ]; then
		echo 0 >$TRACE/tracing_on
		[ "$1" = ok ] || tail -n 3000 $TRACE/trace >"$LOGDIR/$_name.trace"
	fi
	progress "RIG-RUN $_case $_vmm $_n $1 $GUEST_SECS $2"
	# A dead L1 takes the logs with it: the console keeps the end of a bad run's.
	[ "$1" = ok ] || tr -d '\r' <"$GUEST_LOG" | grep . | tail -n 12 | cut -c1-150 | sed 's/^/RIG-TAIL /' |
		while IFS= read -r _t; do progress "$_t"; done
	[ "$_w" = iperf ] && iperf_server_stop
	return 0
}

case " $CASES " in *" iperf:"*) host_tap ;; esac
for _v in $VMMS; do case $_v in qemu*) need_qemu ;; esac; done
i=0
while [ $i -lt "$RUNS" ]; do
	for c in $CASES; do
		for v in $VMMS; do
			# QEMU's pci (microvm,pcie=on) only when asked: its first run
			# wedged L1 on 2026-12-06 (docs/rig-failure-rates.md).
			case $v in qemu*) [ "$(echo "$c" | cut -d: -f2)" = pci ] && [ "${DEATH_QEMU_PCI:-0}" != 1 ] && continue ;; esac
			one "$c" "$v" "$i"
		done
	done
	i=$((i + 1))
done
rm -f $img
pass "see the RIG-RUN lines in death_rates.out"
