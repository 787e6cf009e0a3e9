#!/usr/bin/env python3
"""Where L1's CPUs are, read through the host QEMU's monitor: for a wedged L1
that printed nothing (no soft-lockup report, no panic), this is the only
trace there is.

Usage: l1_cpu_dump.py MONITOR_SOCKET [KALLSYMS [SAMPLES]]

Takes SAMPLES (default 5) snapshots 0.5 s apart of every CPU's state ("info
cpus", the host thread behind each; RIP, RSP, CR3, HLT, EFLAGS and the
interrupt shadow from "info registers -a"), then the last sample's registers
whole, each CPU's local APIC ("info lapic": timer, IRR, ISR) and stack (64
words at RSP). Addresses are named from KALLSYMS, a copy of
/proc/kallsyms from an earlier L1 of the same kernel and modules: L1 runs
with nokaslr, so the kernel's and the modules' addresses are the same in
every boot. The stack words that name kernel text are the likely return
addresses, a rough backtrace. A CPU whose RIP does not move across the
samples is spinning or halted there; one whose RIP moves is running (a loop,
or progress).
"""
import bisect
import re
import socket
import sys
import time


def load_symbols(path):
    """[(address, name)] of the text symbols in a kallsyms-format file, the
    module's name added to a module's symbols."""
    syms = []
    try:
        with open(path) as f:
            for line in f:
                p = line.split()
                if len(p) >= 3 and p[1] in "tTwW":
                    syms.append((int(p[0], 16), p[2] + (" " + p[3] if len(p) > 3 else "")))
    except (OSError, ValueError) as e:
        print(f"(no symbols: {e})")
    syms = sorted(s for s in syms if s[0])
    return syms


def name(syms, addr):
    if not syms or addr < syms[0][0] or addr >= syms[-1][0] + 0x10000:
        return None
    i = bisect.bisect_right(syms, (addr, "\uffff")) - 1
    base, sym = syms[i]
    return f"{sym}+0x{addr - base:x}" if addr - base < 0x10000 else None


class Monitor:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        self.s.connect(path)
        self.read_prompt()

    def read_prompt(self):
        buf = b""
        while not buf.endswith(b"(qemu) "):
            chunk = self.s.recv(65536)
            if not chunk:
                break
            buf += chunk
        return buf.decode(errors="replace")

    def cmd(self, c):
        self.s.sendall(c.encode() + b"\n")
        out = self.read_prompt()
        # The monitor echoes the command line (with terminal escapes) first.
        out = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", out)
        lines = out.replace("\r", "").split("\n")
        return "\n".join(l for l in lines[1:] if l != "(qemu) ")


def sample(mon, syms, last):
    """One look at every CPU; sets last[cpu] = (RIP, RSP)."""
    cpus = mon.cmd("info cpus").strip()
    print(cpus)
    # The host threads behind the vCPUs: a halted vCPU's sleeps in a futex.
    for tid in re.findall(r"thread_id=(\d+)", cpus):
        try:
            stat = open(f"/proc/{tid}/task/{tid}/stat").read().rsplit(")", 1)[1].split()
            wchan = open(f"/proc/{tid}/task/{tid}/wchan").read().strip()
            print(f"  thread {tid}: state {stat[0]}, wchan {wchan or '-'}, utime {stat[11]} stime {stat[12]}")
        except OSError:
            pass
    regs = mon.cmd("info registers -a")
    for cpu, block in re.findall(r"CPU#(\d+)\n(.*?)(?=\nCPU#|\Z)", regs, re.S):
        rip = re.search(r"RIP=([0-9a-f]+)", block)
        rsp = re.search(r"RSP=([0-9a-f]+)", block)
        cr3 = re.search(r"CR3=([0-9a-f]+)", block)
        hlt = re.search(r"HLT=(\d)", block)
        efl = re.search(r"[RE]FL=([0-9a-f]+) \[([^\]]*)\]", block)
        ii = re.search(r"II=(\d)", block)
        if not rip:
            continue
        r = int(rip.group(1), 16)
        last[cpu] = (r, int(rsp.group(1), 16) if rsp else 0)
        print(f"cpu{cpu}: RIP {r:016x} {name(syms, r) or '(not kernel text)'}"
              f" RSP {last[cpu][1]:016x} CR3 {cr3.group(1) if cr3 else '?'}"
              f" HLT {hlt.group(1) if hlt else '?'}"
              f" EFL {efl.group(1) + (' IF' if int(efl.group(1), 16) & 0x200 else ' no-IF') if efl else '?'}"
              f" II {ii.group(1) if ii else '?'}")


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        return 2
    syms = load_symbols(sys.argv[2]) if len(sys.argv) > 2 else []
    samples = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    mon = Monitor(sys.argv[1])
    last = {}
    for n in range(samples):
        print(f"== sample {n + 1} of {samples}")
        sample(mon, syms, last)
        time.sleep(0.5)
    print("== the last sample's registers, whole")
    print("\n".join(l for l in mon.cmd("info registers -a").strip().split("\n")
                    if not l.startswith(("YMM", "XMM", "FPR", "FCW"))))
    for cpu in sorted(last):
        # The local APIC: the timer's mode and count, and IRR/ISR (a vector
        # stuck in service masks every vector below it).
        print(f"== cpu{cpu}: local APIC")
        mon.cmd(f"cpu {cpu}")
        print(mon.cmd("info lapic").strip())
    for cpu, (rip, rsp) in sorted(last.items()):
        print(f"== cpu{cpu}: stack at {rsp:016x}, kernel text words (likely return addresses)")
        mon.cmd(f"cpu {cpu}")
        words = []
        for line in mon.cmd(f"x/64gx 0x{rsp:x}").split("\n"):
            words += [int(w, 16) for w in re.findall(r"0x([0-9a-f]{16})", line.split(":", 1)[-1])]
        for i, w in enumerate(words):
            nm = name(syms, w)
            if nm:
                print(f"  [rsp+0x{8 * i:x}] {w:016x} {nm}")
    # Last, an NMI to every CPU (the monitor's "nmi"), then where they are:
    # a halted CPU that wakes for it had its interrupts pending but was not
    # woken for them (a lost wake-up); one that does not had NMIs blocked
    # too (the global interrupt flag, or the NMI mask). The rig stops L1
    # after this either way.
    print("== 2 s after an NMI to every CPU (the monitor's nmi)")
    mon.cmd("nmi")
    time.sleep(2)
    sample(mon, syms, {})
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (OSError, socket.timeout) as e:
        print(f"l1_cpu_dump: {e}")
        sys.exit(1)
