#!/usr/bin/env python3
"""A stand-in for minivmm and the guest agent, for testing minivmm-runner on any host.

The runner starts it as it would start minivmm (--vsock cid=3,uds=PATH ..., or ctl SOCK CMD
[ARG]); it listens on PATH and speaks the device's CONNECT/OK handshake and the agent's frames
(runner/proto.h), behaving as FAKE_AGENT says:
  ok        a good agent: READY; after RUN, stdin comes back as stdout, ARGs as stderr lines,
            then EXIT with the status in the first ARG if it is a number (else 0)
  silent    answers CONNECT, then never sends anything
  refuse    closes every connection at once (nobody listens in the guest)
  lie-len   after RUN, a STDOUT header announcing 2 GiB
  lie-exit  after RUN, an EXIT frame of 3 bytes
  bad-type  answers HELLO with a STDOUT frame
  die       exits (status 3) when RUN arrives, as a VMM that fails mid-job
  flood     after RUN, STDOUT frames without end
Each start appends its argv to FAKE_LOG if set. `ctl SOCK snapshot DIR` makes DIR/state.
"""
import os
import socket
import struct
import sys
import threading
import time

HDR = struct.Struct("<BBHI")
HELLO, SEED, ARG, ENV, CWD, FILE, FILE_DATA, RUN, STDIN, STDIN_EOF = range(1, 11)
READY, STDOUT, STDERR, EXIT, ERROR = 0x81, 0x82, 0x83, 0x84, 0x85


def log_start():
    path = os.environ.get("FAKE_LOG")
    if path:
        with open(path, "a") as f:
            f.write(" ".join(sys.argv[1:]) + "\n")


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        part = c.recv(n - len(buf))
        if not part:
            raise EOFError
        buf += part
    return buf


def recv_frame(c):
    t, _, _, n = HDR.unpack(recv_exact(c, HDR.size))
    return t, recv_exact(c, n)


def send_frame(c, t, payload=b""):
    c.sendall(HDR.pack(t, 0, 0, len(payload)) + payload)


def serve_conn(c, mode):
    line = b""
    while not line.endswith(b"\n"):
        line += recv_exact(c, 1)
    if mode == "refuse":
        return
    c.sendall(b"OK 1024\n")
    if mode == "silent":
        time.sleep(3600)
    t, p = recv_frame(c)
    assert t == HELLO
    if mode == "bad-type":
        send_frame(c, STDOUT, b"x")
        return
    send_frame(c, READY, struct.pack("<I", 1))
    args, stdin = [], b""
    while True:
        try:
            t, p = recv_frame(c)
        except EOFError:
            return  # a probe
        if t == ARG:
            args.append(p)
        if t == RUN:
            break
    if mode == "die":
        os._exit(3)
    if mode == "lie-len":
        c.sendall(HDR.pack(STDOUT, 0, 0, 0x7FFFFFFF) + b"x" * 100)
        time.sleep(3600)
    if mode == "lie-exit":
        send_frame(c, EXIT, b"\0\0\0")
        time.sleep(3600)
    if mode == "flood":
        while True:
            send_frame(c, STDOUT, b"y" * 65536)
    while True:
        t, p = recv_frame(c)
        if t == STDIN:
            stdin += p
        if t == STDIN_EOF:
            break
    for i in range(0, len(stdin), 65536):
        send_frame(c, STDOUT, stdin[i:i + 65536])
    for a in args:
        send_frame(c, STDERR, a + b"\n")
    status = int(args[0]) if args and args[0].isdigit() else 0
    send_frame(c, EXIT, bytes([0, status & 255]))
    time.sleep(3600)  # the runner stops the "VM"


def main():
    log_start()
    argv = sys.argv[1:]
    if argv and argv[0] == "ctl":
        if argv[2] == "snapshot":
            os.makedirs(argv[3])
            open(os.path.join(argv[3], "state"), "w").write("fake\n")
        return 0
    uds = next(a.split("uds=", 1)[1].split(",")[0] for a in argv if "uds=" in a)
    mode = os.environ.get("FAKE_AGENT", "ok")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(uds)
    s.listen(16)
    while True:
        c, _ = s.accept()
        # Threads, not processes: they all end with this "VM" when the runner stops it.
        threading.Thread(target=conn_thread, args=(c, mode), daemon=True).start()


def conn_thread(c, mode):
    try:
        serve_conn(c, mode)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        pass
    c.close()


if __name__ == "__main__":
    sys.exit(main())
