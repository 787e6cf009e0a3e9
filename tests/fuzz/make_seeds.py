#!/usr/bin/env python3
"""Writes seed inputs for fuzz_virtq (layout: see the top of fuzz_virtq.c):
well-formed queues the fuzzer can start mutating from, so it does not have to
discover the ring layout by itself. Usage: make_seeds.py DIR"""
import os
import struct
import sys

RAM_A, RAM_B_GPA, RAM_B = 0x4000, 0x8000, 0x1000
RAM_C_GPA = 0x10000    # RAM A repeated four times
DESC, AVAIL, USED, TABLE, BUF = 0x0000, 0x1000, 0x2000, 0x2900, 0x3000
NEXT, WRITE, INDIRECT = 1, 2, 4


class Guest:
    def __init__(self, size_log2, event_idx=False, indirect=False, unpop=False, start=0,
                 rings=(DESC, AVAIL, USED)):
        self.desc_gpa, self.avail_gpa, self.used_gpa = rings
        self.size = 1 << size_log2
        self.flags = (1 if event_idx else 0) | (2 if indirect else 0) | (4 if unpop else 0)
        self.size_log2 = size_log2
        self.start = start
        self.idx = start
        self.ram = bytearray(RAM_A + RAM_B)
        self.rounds = [start, start, start]

    def put(self, gpa, data):
        off = gpa if gpa < RAM_A else RAM_A + gpa - RAM_B_GPA
        self.ram[off:off + len(data)] = data

    def desc(self, i, addr, length, flags=0, nxt=0, table=None):
        table = self.desc_gpa if table is None else table
        self.put(table + 16 * i, struct.pack("<QIHH", addr, length, flags, nxt))

    def add(self, head):
        self.put(self.avail_gpa + 4 + 2 * (self.idx % self.size), struct.pack("<H", head))
        self.idx = (self.idx + 1) & 0xffff
        self.put(self.avail_gpa + 2, struct.pack("<H", self.idx))
        self.put(self.used_gpa + 2, struct.pack("<H", self.start))

    def bytes(self):
        hdr = struct.pack("<BBHHHHHHH", self.size_log2, self.flags, self.start, self.desc_gpa,
                          self.avail_gpa, self.used_gpa, *self.rounds)
        return hdr + bytes(self.ram)


def seeds():
    g = Guest(4)                       # out + in
    g.desc(3, BUF, 100, NEXT, 7)
    g.desc(7, BUF + 0x100, 200, NEXT, 1)
    g.desc(1, RAM_B_GPA + 0x10, 50, WRITE)
    g.add(3)
    yield "simple", g

    g = Guest(4, indirect=True)        # one indirect chain, one direct
    g.desc(0, BUF, 10, NEXT, 2, table=TABLE)
    g.desc(2, BUF + 0x10, 20, NEXT, 1, table=TABLE)
    g.desc(1, RAM_B_GPA, 30, WRITE, table=TABLE)
    g.desc(4, TABLE, 48, INDIRECT)
    g.desc(5, BUF + 0x200, 8, WRITE)
    g.add(4)
    g.add(5)
    yield "indirect", g

    g = Guest(4, indirect=True)        # direct descriptors, then an indirect table
    g.desc(0, BUF, 8, NEXT, 9)
    g.desc(9, TABLE, 32, INDIRECT)
    g.desc(0, BUF + 8, 8, NEXT, 1, table=TABLE)
    g.desc(1, BUF + 16, 100, WRITE, table=TABLE)
    g.add(0)
    yield "direct_then_indirect", g

    g = Guest(3, event_idx=True, start=65533)   # indices wrapping, more in later rounds
    for h in range(8):
        g.desc(h, BUF + 0x40 * h, 0x20, NEXT | WRITE if h % 2 == 0 else WRITE, h + 1)
    g.add(0)
    g.add(2)
    g.rounds = [(65533 + 4) & 0xffff, (65533 + 6) & 0xffff, (65533 + 8) & 0xffff]
    for k in range(3):
        g.put(AVAIL + 4 + 2 * ((65533 + 2 + k) % 8), struct.pack("<H", 4))
    yield "event_idx_wrap", g

    g = Guest(8, unpop=True)           # a full ring of 256 one-descriptor chains
    for h in range(256):
        g.desc(h, BUF + 16 * h, 16, WRITE if h % 3 else 0)
        g.add(h)
    yield "full_ring", g

    # Rings in RAM B; RAM A holds a 1024-entry indirect table, seen through
    # RAM C: exactly VIRTQ_MAX_IOV descriptors, then one too many.
    for name, entries, last_flags in (("max_iov", 1024, 0), ("too_many", 1100, NEXT)):
        g = Guest(4, indirect=True, rings=(RAM_B_GPA, RAM_B_GPA + 0x100, RAM_B_GPA + 0x200))
        for k in range(1024):
            g.desc(k, BUF + k, 1, NEXT if k < 1023 else last_flags, k + 1, table=0)
        g.desc(0, RAM_C_GPA, 16 * entries, INDIRECT)
        g.add(0)
        yield name, g

    g = Guest(4)                       # a loop
    g.desc(0, BUF, 4, NEXT, 1)
    g.desc(1, BUF, 4, NEXT, 0)
    g.add(0)
    yield "loop", g


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for name, g in seeds():
        with open(os.path.join(out, name), "wb") as f:
            f.write(g.bytes())


if __name__ == "__main__":
    main()
